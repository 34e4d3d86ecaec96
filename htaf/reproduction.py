"""Reproducing the book: the plan of every chapter's runs, and training the missing ones.

:func:`plan` lists every run of every experiment's sweeps (:attr:`htaf.experiments.Experiment.grids`) under
a profile, each distinct run once, with its results file and whether it is finished; :func:`run_counts`
counts them per experiment (the one source of the run counts the book states); :func:`reproduce` runs them
through the cache of :func:`htaf.train.run` (only missing runs train), one after another or in a pool of
worker processes.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import torch

from htaf import distributed, experiments, results, train
from htaf.engine import Config

__all__ = ["PlannedRun", "plan", "reproduce", "run_counts"]


@dataclass(frozen=True)
class PlannedRun:
    """One run of a chapter's sweeps: its experiment, sweep, overrides, results file and whether it is done."""

    experiment: str
    sweep: str
    overrides: dict[str, Any]
    path: Path
    cached: bool
    recorded_time_s: float  # the wall time recorded in its results file (0 when missing)


def _runs(profile: str, only: Iterable[str] | None) -> list[tuple[str, str, dict[str, Any], Config, str]]:
    """``(experiment, sweep, overrides, config, config hash)`` of every distinct run of the plan, in order; the
    engine's keys of every config are checked, not yet the experiment's (:func:`htaf.experiments.validate_configs`)."""
    if isinstance(only, (str, experiments.Experiment)):  # one experiment, not the letters of its name
        only = [only]
    names = experiments.available() if only is None else [experiments.get(name).name for name in only]
    runs, seen = [], set()
    for name in names:
        sweeps = [(sweep_name, overrides) for sweep_name, grid in experiments.grids(name, profile).items()
                  for overrides in train._combinations(grid)]
        configs = experiments.resolve_configs(name, profile, [overrides for _, overrides in sweeps], validate=False)
        for (sweep_name, overrides), config in zip(sweeps, configs):
            digest = results.config_hash(name, config)
            if (name, digest) not in seen:
                seen.add((name, digest))
                runs.append((name, sweep_name, overrides, config, digest))
    return runs


def plan(profile: str | None = None, only: Iterable[str] | None = None,
         results_dir: str | os.PathLike | None = None) -> list[PlannedRun]:
    """Every run of every experiment's sweeps (:attr:`htaf.experiments.Experiment.grids`) under
    ``profile``, restricted to the experiments in ``only``; each distinct run once.

    No model is built and no dataset loaded. A run counts as ``cached`` when its results file ends like a finished
    one (:func:`htaf.results.recorded_time`); :func:`htaf.train.run` reads the file fully when the run is asked for
    (and trains the run again if the file is damaged). The config of every run that would train is checked
    (:func:`htaf.experiments.validate_configs`), so that a bad grid fails here, before any training; a cached run's
    config was checked when it trained, and is checked again whenever it is asked for.
    """
    profile = experiments.resolve_profile(profile)
    folder = results.results_root(results_dir)
    planned, missing = [], {}
    for name, sweep_name, overrides, config, digest in _runs(profile, only):
        path = results.result_path(name, profile, digest, folder)
        seconds = results.recorded_time(path)
        planned.append(PlannedRun(name, sweep_name, overrides, path, seconds is not None, seconds or 0.0))
        if seconds is None:
            missing.setdefault(name, []).append(config)
    for name, configs in missing.items():
        experiments.validate_configs(name, configs)
    return planned


def run_counts(profile: str | None = None, only: Iterable[str] | None = None) -> dict[str, int]:
    """The number of distinct runs of each experiment's chapter under ``profile`` (the runs of :func:`plan`),
    computed from the sweeps alone: no results file is read, no model built.

    >>> run_counts("smoke", only=["mlp"])
    {'mlp': 1}
    """
    profile = experiments.resolve_profile(profile)
    counts: dict[str, int] = {}
    for name, *_ in _runs(profile, only):
        counts[name] = counts.get(name, 0) + 1
    return counts


def _run_planned(experiment: str, profile: str, results_dir: str | os.PathLike | None, overrides: dict[str, Any],
                 progress: bool | None = False) -> tuple[dict[str, Any], bool]:
    """One planned run through :func:`htaf.train.run`: its record, and whether this process trained any of it (a
    run that another process finished meanwhile is read, and neither counted as trained here nor timed twice)."""
    trained = []
    record = train.run(experiment, profile, results_dir, on_epoch_end=lambda epoch, row: trained.append(epoch),
                       progress=progress, **overrides)
    return record, bool(trained)


def _train_planned(experiment: str, profile: str, results_dir: str | None,
                   overrides: dict[str, Any]) -> tuple[float, bool]:
    """Worker of :func:`reproduce` with ``jobs > 1``: one run in this process; its recorded time and whether it
    trained here."""
    record, trained = _run_planned(experiment, profile, results_dir, overrides)
    return record["wall_time_s"], trained


def _start_worker(parent: int, threads: int) -> None:
    """A pool worker: Ctrl-C is the parent's to handle (it stops the pool), and the worker exits when its parent
    is gone (``kill -9`` of the parent must not leave workers training)."""
    import signal
    import threading

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)

    def exit_with_parent() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=exit_with_parent, name="htaf-exit-with-parent", daemon=True).start()


def _stop_pool(pool) -> None:
    """Cancel every pending run and end the workers now (a worker's finished epochs stay in its checkpoint)."""
    pool.shutdown(wait=False, cancel_futures=True)
    workers = list((getattr(pool, "_processes", None) or {}).values())
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.join(timeout=10)


def reproduce(profile: str | None = None, only: Iterable[str] | None = None,
              results_dir: str | os.PathLike | None = None, dry_run: bool = False,
              jobs: int = 1, threads: int | None = None) -> dict[str, dict[str, Any]]:
    """Run every chapter's sweeps under ``profile`` through the cache: only missing runs train.

    One progress bar counts all runs (on a terminal; per-epoch bars are off). Returns per experiment:
    ``runs``, ``cached`` (finished before), ``missing``, ``trained``, ``recorded_time_s`` (the training
    time recorded in the results files, after the call), ``wall_time_s`` (this call's time) and
    ``folder``. With ``dry_run`` nothing trains (``trained`` is 0).

    ``jobs > 1`` trains that many missing runs at once in worker processes (each with ``threads`` torch
    threads, default 1): on a machine with many cores the small models of the ``cpu`` profile train
    several times faster this way than one after another. ``wall_time_s`` is then the wall time of the
    whole pool, shared by the experiments in proportion to their runs' recorded time.
    """
    profile = experiments.resolve_profile(profile)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise experiments.ConfigError(f"jobs must be a positive integer, got {jobs!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise experiments.ConfigError(f"threads must be a positive integer, got {threads!r}")
    planned = plan(profile, only, results_dir)
    if not dry_run:  # before training, a finished run is read fully (plan only looked at its file's end)
        planned = [item if not item.cached or train._finished(item.path, repair=False) is not None
                   else dataclasses.replace(item, cached=False, recorded_time_s=0.0) for item in planned]
    summary: dict[str, dict[str, Any]] = {}
    for item in planned:
        entry = summary.setdefault(item.experiment, {
            "runs": 0, "cached": 0, "missing": 0, "trained": 0, "recorded_time_s": 0.0, "wall_time_s": 0.0,
            "folder": item.path.parent,
        })
        entry["runs"] += 1
        entry["cached" if item.cached else "missing"] += 1
        entry["recorded_time_s"] += item.recorded_time_s
    if dry_run:
        return summary
    from tqdm.auto import tqdm

    drawing = train.progress_enabled(distributed.from_env())
    with tqdm(total=len(planned), desc=f"reproduce {profile}", unit="run", disable=not drawing) as bar:
        if jobs > 1:
            _reproduce_in_pool(planned, summary, profile, results_dir, jobs, threads or 1, bar)
            return summary
        for item in planned:
            entry = summary[item.experiment]
            started = time.perf_counter()
            bar.set_postfix_str(f"{item.experiment}/{item.sweep}", refresh=False)
            record, trained = _run_planned(item.experiment, profile, results_dir, item.overrides,
                                           progress=False if drawing else None)
            entry["wall_time_s"] += time.perf_counter() - started
            if not item.cached:
                entry["trained"] += trained
                entry["recorded_time_s"] += record["wall_time_s"]
            bar.update()
    return summary


def _reproduce_in_pool(planned: list[PlannedRun], summary: dict[str, dict[str, Any]], profile: str,
                       results_dir: str | os.PathLike | None, jobs: int, threads: int, bar) -> None:
    import concurrent.futures
    import multiprocessing

    started = time.perf_counter()
    bar.update(sum(item.cached for item in planned))
    missing = [item for item in planned if not item.cached]
    folder = None if results_dir is None else str(results_dir)
    context = multiprocessing.get_context("spawn")  # fresh interpreters: no forked torch thread pools
    fresh = dict.fromkeys(summary, 0.0)  # training time of this call's runs, per experiment
    pool = concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_start_worker,
                                                  initargs=(os.getpid(), threads))
    done = 0
    try:
        futures = {pool.submit(_train_planned, item.experiment, profile, folder, item.overrides): item
                   for item in missing}
        for future in concurrent.futures.as_completed(futures):
            item = futures[future]
            seconds, trained = future.result()
            entry = summary[item.experiment]
            entry["trained"] += trained
            entry["recorded_time_s"] += seconds
            fresh[item.experiment] += seconds if trained else 0.0
            done += 1
            bar.update()
    except BaseException:  # Ctrl-C, or a run that failed: stop every worker now, keep what finished
        _stop_pool(pool)
        print(f"reproduce stopped: {done} of {len(missing)} missing runs finished in this call and are kept "
              f"(checkpoints keep the epochs of unfinished ones); run it again to train the rest",
              file=sys.stderr, flush=True)
        raise
    pool.shutdown()
    elapsed = time.perf_counter() - started
    total = sum(fresh.values()) or 1.0
    for name, entry in summary.items():
        entry["wall_time_s"] = elapsed * fresh[name] / total
