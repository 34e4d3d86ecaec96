"""Run results on disk: config hashes, atomic JSON files, and tables for the book.

Layout: ``<results root>/<experiment>/<profile>/<config hash>.json``, where the
root is an argument, else ``$HTAF_RESULTS``, else ``results/`` at the
repository root. Checkpoints of unfinished runs live elsewhere (see
:func:`checkpoints_root`) and are deleted when a run finishes.

>>> config_hash("mlp", {"lr": 0.001, "seed": 0}) == config_hash("mlp", {"seed": 0, "lr": 1e-3})
True
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import IO, Any, Callable

import numpy as np
import pandas as pd
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
HASH_LENGTH = 16


def results_root(results_dir: str | os.PathLike | None = None) -> Path:
    """``results_dir``, else ``$HTAF_RESULTS``, else ``<repo>/results``."""
    return Path(results_dir or os.environ.get("HTAF_RESULTS") or REPO_ROOT / "results")


def checkpoints_root(results_dir: str | os.PathLike | None = None) -> Path:
    """``$HTAF_CHECKPOINTS``, else ``.checkpoints/`` inside the results root (git-ignored).

    Inside the results root, so that two results folders never share (or overwrite) checkpoints.
    """
    override = os.environ.get("HTAF_CHECKPOINTS")
    return Path(override) if override else results_root(results_dir) / ".checkpoints"


def config_hash(experiment: str, config: dict[str, Any]) -> str:
    """Stable hash of an experiment name and its config (key order and ``1e-3`` vs ``0.001`` do not matter)."""
    canonical = json.dumps({"experiment": experiment, "config": config}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:HASH_LENGTH]


def result_path(experiment: str, profile: str, digest: str, results_dir: str | os.PathLike | None = None) -> Path:
    return results_root(results_dir) / experiment / profile / f"{digest}.json"


def checkpoint_path(experiment: str, profile: str, digest: str, results_dir: str | os.PathLike | None = None) -> Path:
    return checkpoints_root(results_dir) / experiment / profile / f"{digest}.pt"


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, flush it to disk, then rename it over ``path``.

    A reader (or a run killed mid-write) sees either the old file or the new one, never a torn one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False) as fh:
        try:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        except BaseException:
            os.unlink(fh.name)
            raise
    os.replace(fh.name, path)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically (see :func:`atomic_write`)."""
    text = json.dumps(payload, indent=1, sort_keys=True) + "\n"
    atomic_write(path, lambda fh: fh.write(text.encode()))


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def device_name(device: torch.device) -> str:
    """GPU name, or the CPU model read from ``/proc/cpuinfo`` (falling back to ``platform``)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def environment(device: torch.device, world_size: int = 1) -> dict[str, Any]:
    """Where a run happened: device, process count, CPU threads and library versions."""
    try:
        htaf_version = metadata.version("htaf")
    except metadata.PackageNotFoundError:
        htaf_version = "not installed"
    return {
        "device": device_name(device),
        "device_type": device.type,
        "world_size": world_size,
        "cpu_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "htaf": htaf_version,
    }


def cell(value: Any) -> Any:
    """A DataFrame-friendly value: lists and dicts become their JSON text."""
    return json.dumps(value, sort_keys=True) if isinstance(value, (list, dict)) else value


def records(experiment: str, profile: str, results_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Every finished run of ``experiment`` under ``profile``, sorted by hash."""
    folder = results_root(results_dir) / experiment / profile
    return [read_json(path) for path in sorted(folder.glob("*.json"))]


def load(experiment: str, profile: str, results_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per finished run: ``hash``, every config key, the final metrics,
    ``num_params`` and ``wall_time_s``.

    >>> load("no_such_experiment", "smoke").empty
    True
    """
    rows = [
        {
            "hash": record["hash"],
            **{key: cell(value) for key, value in record["config"].items()},
            **record["metrics"],
            "num_params": record["num_params"],
            "wall_time_s": record["wall_time_s"],
        }
        for record in records(experiment, profile, results_dir)
    ]
    return pd.DataFrame(rows)


def load_history(experiment: str, profile: str, results_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per (run, epoch): ``hash``, every config key and that epoch's metrics (for curves)."""
    rows = [
        {"hash": record["hash"], **{key: cell(value) for key, value in record["config"].items()}, **epoch}
        for record in records(experiment, profile, results_dir)
        for epoch in record["history"]
    ]
    return pd.DataFrame(rows)


def table(experiment: str, profile: str, results_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Compact results table: ``hash``, the config keys that vary between runs, final metrics, wall time."""
    frame = load(experiment, profile, results_dir)
    config_keys = set().union(*(record["config"] for record in records(experiment, profile, results_dir)))
    varied = [key for key in frame.columns if key in config_keys and frame[key].astype(str).nunique() > 1]
    outcomes = [column for column in frame.columns if column not in config_keys and column != "hash"]
    return frame[["hash", *varied, *outcomes]] if not frame.empty else frame
