"""The measured benchmark results the book and the README quote, shipped with the package.

Each file of this folder is the raw output of a script of the repository's ``benchmarks/`` folder, measured once
on the machine it names: ``snn_libs_*.json`` from ``benchmarks/bench_snn_libs.py --json`` (one SNN training step in
htaf, snnTorch and SpikingJelly), ``h200_bench_htaf.json`` from ``benchmarks/bench_htaf.py``,
``profile_cost_cpu.json`` from ``benchmarks/bench_profile_cost.py`` (what the ``cpu`` profile costs on one idle core,
from a retrained sample of its runs), and the ``.txt``
files the printed reports and environment of the H200 runs. They ship inside the package (package data), so a
chapter that quotes them runs from a pip-installed htaf too, outside the repository.

>>> "snn_libs_cpu_idle" in available()
True
>>> report = load("snn_libs_cpu_idle")
>>> sorted(report)
['config', 'machine', 'results']
>>> path("snn_libs_cpu_idle").name
'snn_libs_cpu_idle.json'

A new measurement is written here directly:
``python benchmarks/bench_snn_libs.py --json htaf/benchmarks/<name>.json``.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["available", "load", "path"]


def _folder():
    return resources.files(__name__)


def available() -> list[str]:
    """The names of the JSON results (file names without ``.json``), sorted."""
    return sorted(entry.name.removesuffix(".json") for entry in _folder().iterdir() if entry.name.endswith(".json"))


def _entry(name: str):
    entry = _folder().joinpath(f"{name}.json")
    if not entry.is_file():
        raise FileNotFoundError(f"no benchmark result {name!r}; available: {', '.join(available())}")
    return entry


def path(name: str) -> Path:
    """The file of the JSON result ``name`` (``FileNotFoundError`` naming the available ones when absent)."""
    return Path(str(_entry(name)))


def load(name: str) -> dict[str, Any]:
    """The JSON result ``name`` (see :func:`available`) as a dict: for ``snn_libs_*``, ``machine`` (CPU or GPU,
    library versions, threads), ``config`` (channels, batch, rounds, steps) and ``results`` (one row per device,
    ``T`` and library: ``ms_per_step``, ``peak_mib``, ...)."""
    return json.loads(_entry(name).read_text(encoding="utf-8"))
