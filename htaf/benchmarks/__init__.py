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

__all__ = ["available", "load", "path", "snn_margins"]


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
    ``T`` and library: ``ms_per_step``, ``peak_mib``, ``page_faults_per_step`` (the median minor page faults per step;
    reports measured before the benchmark counted them have none), ...)."""
    return json.loads(_entry(name).read_text(encoding="utf-8"))


def snn_margins(name: str) -> list[dict[str, Any]]:
    """htaf's step against the fastest other spiking variant and the neuron-free ``floor`` of the ``snn_libs_*``
    result ``name`` that measured them (``benchmarks/bench_snn_libs.py --libs ...,floor``): one row per device and
    ``T`` with ``threads``, ``htaf (ms)``, ``strongest variant`` (the fastest library other than htaf and the floor),
    ``htaf faster by`` (its time over htaf's), ``strongest / floor`` and ``htaf / floor`` (time ratios) and
    ``htaf least memory`` (htaf's peak below every variant's; ``None`` where peak memory was not measured), and where
    the report measured it (``--memory-warm``) ``htaf least memory (warm)``, the same after the process's one-time
    costs.

    >>> row = snn_margins("snn_libs_cpu_hoisted_idle")[0]
    >>> row["T"], row["strongest variant"], round(row["htaf faster by"], 2), row["htaf least memory"]
    (4, 'snntorch_hoisted', 1.57, True)
    """
    report = load(name)
    by_key = {(row["device"], row["T"], row["library"]): row for row in report["results"]}
    rows = []
    for device, T in sorted({(device, T) for device, T, _ in by_key}):
        htaf, floor = by_key[device, T, "htaf"], by_key[device, T, "floor"]
        variants = [by_key[key] for key in by_key if key[:2] == (device, T) and key[2] not in ("htaf", "floor")]
        strongest = min(variants, key=lambda row: row["ms_per_step"])
        rows.append({"device": device, "threads": int(report["config"]["threads"]), "T": T,
                     "htaf (ms)": htaf["ms_per_step"], "strongest variant": strongest["library"],
                     "htaf faster by": strongest["htaf_speedup"],
                     "strongest / floor": strongest["ms_per_step"] / floor["ms_per_step"],
                     "htaf / floor": htaf["ms_per_step"] / floor["ms_per_step"],
                     "htaf least memory": None if htaf["peak_mib"] is None
                     else all(htaf["peak_mib"] < row["peak_mib"] for row in variants)})
        if htaf.get("peak_mib_warm") is not None:  # measured after the process's one-time costs (--memory-warm)
            rows[-1]["htaf least memory (warm)"] = all(htaf["peak_mib_warm"] < row["peak_mib_warm"] for row in variants)
    return rows

