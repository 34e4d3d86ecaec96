"""Reproducing the book: the plan of every chapter's runs, and training the missing ones.

:func:`plan` lists every run of every experiment's sweeps (:attr:`htaf.experiments.Experiment.grids`) under
a profile, each distinct run once, with its results file and whether it is finished; :func:`run_counts`
counts them per experiment (the one source of the run counts the book states); :func:`reproduce` runs them
through the cache of :func:`htaf.train.run` (only missing runs train), one after another, in a pool of
worker processes, or on a Dask cluster (``cluster=``; the optional extra ``htaf[cluster]``).
"""

from __future__ import annotations

import contextlib
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

__all__ = ["PlannedRun", "estimate", "plan", "reproduce", "run_counts"]


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


def estimate(profile: str, measured: str = "cpu", only: Iterable[str] | None = None,
             results_dir: str | os.PathLike | None = None) -> dict[str, dict[str, Any]]:
    """An estimate of the training time of ``profile``'s runs from the times recorded under ``measured``: per
    experiment, the epochs of ``profile``'s runs times the seconds per epoch of ``measured``'s finished runs.

    Returns per experiment ``runs`` and ``epochs`` (of ``profile``), ``measured_runs``, ``measured_epochs`` and
    ``measured_s`` (the finished runs of ``measured`` that trained on a CPU, their epochs and recorded time; a run
    trained on a GPU says nothing about a CPU core's speed), ``seconds_per_epoch``,
    ``estimate_s`` (``epochs * seconds_per_epoch``; ``None`` without a measured run) and ``longest_run_s`` (the
    estimate of ``profile``'s longest run). It scales by epochs only: what an epoch of ``profile`` costs beside
    one of ``measured`` (more data, larger models, another device) is not known to it. No model is built.
    """
    profile, measured = experiments.resolve_profile(profile), experiments.resolve_profile(measured)
    found: dict[str, dict[str, Any]] = {}
    for name, _, _, config, _ in _runs(profile, only):
        entry = found.setdefault(name, {"runs": 0, "epochs": 0, "measured_runs": 0, "measured_epochs": 0,
                                        "measured_s": 0.0, "longest_epochs": 0})
        entry["runs"] += 1
        entry["epochs"] += config["epochs"]
        entry["longest_epochs"] = max(entry["longest_epochs"], config["epochs"])
    for name, _, _, config, digest in _runs(measured, list(found)):
        path = results.result_path(name, measured, digest, results_dir)
        seconds = results.recorded_time(path)
        if seconds is not None and results.read_result(path)["environment"].get("device_type", "cpu") == "cpu":
            entry = found[name]
            entry["measured_runs"] += 1
            entry["measured_epochs"] += config["epochs"]
            entry["measured_s"] += seconds
    for entry in found.values():
        per_epoch = entry["measured_s"] / entry["measured_epochs"] if entry["measured_epochs"] else None
        longest = entry.pop("longest_epochs")
        entry["seconds_per_epoch"] = per_epoch
        entry["estimate_s"] = None if per_epoch is None else entry["epochs"] * per_epoch
        entry["longest_run_s"] = None if per_epoch is None else longest * per_epoch
    return found


def _run_planned(experiment: str, profile: str, results_dir: str | os.PathLike | None, overrides: dict[str, Any],
                 progress: bool | None = False) -> tuple[dict[str, Any], bool]:
    """One planned run through :func:`htaf.train.run`: its record, and whether this process trained any of it (a
    run that another process finished meanwhile is read, and neither counted as trained here nor timed twice)."""
    trained = []
    record = train.run(experiment, profile, results_dir, on_epoch_end=lambda epoch, row: trained.append(epoch),
                       progress=progress, announce=False, **overrides)
    return record, bool(trained)


def _train_planned(experiment: str, profile: str, results_dir: str | None,
                   overrides: dict[str, Any]) -> tuple[float, bool]:
    """Worker of :func:`reproduce` with ``jobs > 1``: one run in this process; its recorded time and whether it
    trained here."""
    record, trained = _run_planned(experiment, profile, results_dir, overrides)
    return record["wall_time_s"], trained


def _train_on_cluster(experiment: str, profile: str, results_dir: str, checkpoints_dir: str,
                      overrides: dict[str, Any], threads: int, device: str) -> tuple[float, bool, str]:
    """Task of :func:`reproduce` with a cluster: :func:`_train_planned` on a Dask worker, with ``threads`` torch
    threads, on ``device``, with the client's results and checkpoint folders; its recorded time, whether it trained
    here, and ``""``. A run in progress elsewhere is not waited for (``HTAF_LOCK_TIMEOUT=0``): ``(0.0, False,
    the reason)`` at once."""
    from dask.distributed import get_worker

    worker = get_worker()
    if worker.state.nthreads > 1:
        raise RuntimeError(f"the Dask worker {worker.address} runs {worker.state.nthreads} tasks at once; torch's "
                           "thread count and the device are settings of a process: start workers with --nthreads 1")
    settings = {"HTAF_CHECKPOINTS": checkpoints_dir, "HTAF_LOCK_TIMEOUT": "0"}
    if os.environ.get("HTAF_DEVICE", "").split(":")[0] != device:  # a worker's own cuda:<index> is kept
        settings["HTAF_DEVICE"] = device
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        with _torch_threads(threads):
            return (*_train_planned(experiment, profile, results_dir, overrides), "")
    except results.RunInProgressError as error:
        return 0.0, False, str(error)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


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


def _check_cluster(cluster: str | None, jobs: int, device: str | None) -> None:
    """One-line errors for a cluster asked for wrongly, before any data loads; Dask must be importable."""
    if cluster is None:
        if device is not None:
            raise experiments.ConfigError("--device chooses the device of a cluster's runs; without --cluster "
                                          "set HTAF_DEVICE instead")
        return
    if not isinstance(cluster, str) or not cluster.strip():
        raise experiments.ConfigError(f"cluster must be 'local' or a Dask scheduler's address, got {cluster!r}")
    if cluster != "local" and jobs > 1:
        raise experiments.ConfigError(f"--jobs {jobs} counts the worker processes of --cluster local; the cluster "
                                      f"at {cluster} runs as many runs at once as it has workers: drop --jobs")
    if device not in (None, "cpu", "cuda"):
        raise experiments.ConfigError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if cluster == "local" and device == "cuda" and not torch.cuda.is_available():
        raise experiments.ConfigError("--device cuda with --cluster local asks for CUDA, which this machine's torch "
                                      "cannot use; pass --device cpu")
    try:
        import dask.distributed  # noqa: F401
    except ImportError:
        raise experiments.ConfigError("--cluster needs Dask, the optional extra htaf[cluster]: "
                                      "pip install 'htaf[cluster]'") from None


def reproduce(profile: str | None = None, only: Iterable[str] | None = None,
              results_dir: str | os.PathLike | None = None, dry_run: bool = False,
              jobs: int = 1, threads: int | None = None, cluster: str | None = None,
              device: str | None = None) -> dict[str, dict[str, Any]]:
    """Run every chapter's sweeps under ``profile`` through the cache: only missing runs train.

    One progress bar counts all runs (on a terminal; per-epoch bars are off). Returns per experiment:
    ``runs``, ``cached`` (finished before), ``missing``, ``trained``, ``recorded_time_s`` (the training
    time recorded in the results files, after the call), ``wall_time_s`` (this call's time) and
    ``folder``. With ``dry_run`` nothing trains (``trained`` is 0).

    Every run trains with ``threads`` torch threads (default 1, as the committed ``cpu`` runs did, so that a run
    retrained on the same machine and torch version matches its results file bit for bit). ``jobs > 1`` trains
    that many missing runs at once in worker processes; with ``jobs=1`` they train one after another in this
    process (torch's own thread setting is restored afterwards). On a machine with many cores the small models of
    the ``cpu`` profile train several times faster in a pool than one after another; ``wall_time_s`` is then the
    wall time of the whole pool, shared by the experiments in proportion to their runs' recorded time.

    ``cluster`` sends every missing run to a Dask cluster (the extra ``htaf[cluster]``), one task per run:
    ``"local"`` starts one on this machine with ``jobs`` worker processes, else it is the address of a running
    scheduler (``tcp://host:8786``) or the file that ``dask scheduler --scheduler-file`` writes (``*.json``).
    Each task trains with ``threads`` torch threads (default 1) on ``device`` (``"cuda"`` for the ``gpu``
    profile, else ``"cpu"``; a cuda run asks for the worker resource ``GPU=1``).
    The results folder must be one that every worker sees at the same path, with locks seen across machines
    (checked before any run is sent). A run that fails is reported (its config and the worker's error) and
    counted in ``failed`` while the others go on; a run in progress elsewhere is not waited for, and counted
    in ``held``.
    """
    profile = experiments.resolve_profile(profile)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise experiments.ConfigError(f"jobs must be a positive integer, got {jobs!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise experiments.ConfigError(f"threads must be a positive integer, got {threads!r}")
    _check_cluster(cluster, jobs, device)
    if cluster is not None:
        device = device or ("cuda" if profile == "gpu" else "cpu")
    planned = plan(profile, only, results_dir)
    if not dry_run:  # before training, a finished run is read fully (plan only looked at its file's end)
        planned = [item if not item.cached or train._finished(item.path, repair=False) is not None
                   else dataclasses.replace(item, cached=False, recorded_time_s=0.0) for item in planned]
    summary: dict[str, dict[str, Any]] = {}
    for item in planned:
        entry = summary.setdefault(item.experiment, {
            "runs": 0, "cached": 0, "missing": 0, "trained": 0, "failed": 0, "held": 0, "recorded_time_s": 0.0,
            "wall_time_s": 0.0, "folder": item.path.parent,
        })
        entry["runs"] += 1
        entry["cached" if item.cached else "missing"] += 1
        entry["recorded_time_s"] += item.recorded_time_s
    if dry_run:
        return summary
    from tqdm.auto import tqdm

    drawing = train.progress_enabled(distributed.from_env())
    with tqdm(total=len(planned), desc=f"reproduce {profile}", unit="run", disable=not drawing) as bar:
        if cluster is not None:
            _reproduce_on_cluster(planned, summary, profile, results_dir, cluster, jobs, threads or 1, device, bar)
            return summary
        if jobs > 1:
            _reproduce_in_pool(planned, summary, profile, results_dir, jobs, threads or 1, bar)
            return summary
        with _torch_threads(threads or 1):
            _reproduce_here(planned, summary, profile, results_dir, drawing, bar)
    return summary


@contextlib.contextmanager
def _torch_threads(threads: int):
    """``threads`` torch threads inside the block; torch's own setting again after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _reproduce_here(planned, summary, profile, results_dir, drawing, bar) -> None:
    """Every run of ``planned`` one after another in this process: a cached one is read, a missing one trains."""
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
    _share_wall_time(summary, fresh, time.perf_counter() - started)


def _share_wall_time(summary: dict[str, dict[str, Any]], fresh: dict[str, float], elapsed: float) -> None:
    """The wall time of runs trained at once, shared by the experiments in proportion to their training time."""
    total = sum(fresh.values()) or 1.0
    for name, entry in summary.items():
        entry["wall_time_s"] = elapsed * fresh[name] / total


def _probe_folder(probe: str) -> tuple[str, bool | None]:
    """On a worker: its host, and whether it could take the lock ``probe`` that the client holds (``None``: it
    does not see the file)."""
    import socket

    return socket.gethostname(), results.lock_is_free(Path(probe))


def _connect(cluster: str, jobs: int, device: str):
    """``(client, local cluster or None)``: a Dask client of the cluster (a new local one for ``"local"``)."""
    import logging

    from dask.distributed import Client, LocalCluster

    if cluster == "local":
        resources = {"GPU": 1} if device == "cuda" else None
        local = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=None,
                             silence_logs=logging.ERROR, resources=resources)
        return Client(local), local
    scheduler_file = cluster.endswith(".json")  # dask scheduler --scheduler-file FILE
    if scheduler_file and not Path(cluster).is_file():
        raise experiments.ConfigError(f"no Dask scheduler file {cluster}: give the --scheduler-file that "
                                      "`dask scheduler` writes, or the scheduler's address")
    try:  # waits as long as Dask's distributed.comm.timeouts.connect (30 s unless configured)
        return (Client(scheduler_file=cluster) if scheduler_file else Client(cluster)), None
    except (OSError, TimeoutError, ValueError) as error:
        raise experiments.ConfigError(f"cannot reach the Dask scheduler at {cluster}: {error}") from None


def _check_workers(client, cluster: str, folder: Path, device: str) -> None:
    """One-line errors before any run is sent: workers that run several tasks at once, no worker with a GPU for
    cuda runs, a results folder that a worker does not see, or whose locks are not seen across machines."""
    import socket
    import uuid

    workers = client.scheduler_info(n_workers=-1)["workers"]
    if not workers:
        print(f"waiting for a worker to join the Dask cluster at {cluster}", file=sys.stderr, flush=True)
        client.wait_for_workers(1)
        workers = client.scheduler_info(n_workers=-1)["workers"]
    crowded = sorted(address for address, info in workers.items() if info.get("nthreads", 1) > 1)
    if crowded:
        raise experiments.ConfigError(f"the Dask worker {crowded[0]} runs several tasks at once; torch's thread "
                                      "count and the device are settings of a process: start workers with "
                                      "--nthreads 1 (and --nworkers N for N runs at once)")
    if device == "cuda" and not any(info.get("resources", {}).get("GPU", 0) >= 1 for info in workers.values()):
        raise experiments.ConfigError("cuda runs ask for one GPU each, and no worker of the cluster offers one: "
                                      "start one worker per GPU with --resources GPU=1 (or pass --device cpu)")
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / f".htaf-probe-{uuid.uuid4().hex}.json"  # never written: only its lock file, removed after
    with results.run_lock(marker, timeout=0):  # this process holds the lock that every worker tries to take
        seen = client.run(_probe_folder, str(results.lock_path(marker)))
    here = socket.gethostname()
    for address, (host, free) in sorted(seen.items()):
        if free is None:
            raise experiments.ConfigError(f"the Dask worker {address} on {host} does not see the results folder "
                                          f"{folder}: use a folder that every worker mounts at the same path "
                                          "(--results-dir or HTAF_RESULTS)")
        if free:
            raise experiments.ConfigError(f"the Dask worker {address} on {host} could lock a file in {folder} "
                                          f"that this process on {here} holds: that filesystem's locks are not "
                                          "seen across machines (see the README: supported filesystems)")


def _describe(item: PlannedRun) -> str:
    settings = ", ".join(f"{key}={value!r}" for key, value in item.overrides.items())
    return f"{item.experiment}/{item.sweep} ({settings}; results file {item.path.name})"


def _reproduce_on_cluster(planned: list[PlannedRun], summary: dict[str, dict[str, Any]], profile: str,
                          results_dir: str | os.PathLike | None, cluster: str, jobs: int, threads: int, device: str,
                          bar) -> None:
    """Every missing run of ``planned`` as one Dask task (:func:`_train_on_cluster`); the others go on when one
    fails. Results are written by the workers (atomically, under the run's lock), so that a client that stops
    or a worker that is lost keeps every finished run."""
    from dask.distributed import as_completed

    started = time.perf_counter()
    bar.update(sum(item.cached for item in planned))
    missing = [item for item in planned if not item.cached]
    if not missing:  # nothing to send: the cluster is not needed
        return
    folder = results.results_root(results_dir).resolve()
    checkpoints = str(results.checkpoints_root(results_dir).resolve())
    fresh = dict.fromkeys(summary, 0.0)
    client, local = _connect(cluster, jobs, device)
    counts = {"done": 0, "failed": 0, "held": 0}

    def show() -> None:
        in_flight = len(missing) - sum(counts.values())
        held = f", held elsewhere {counts['held']}" if counts["held"] else ""
        bar.set_postfix_str(f"done {counts['done']}, failed {counts['failed']}{held}, in flight {in_flight}")

    try:
        _check_workers(client, cluster, folder, device)
        resources = {"GPU": 1} if device == "cuda" else None
        futures = {client.submit(_train_on_cluster, item.experiment, profile, str(folder), checkpoints,
                                 item.overrides, threads, device, key=f"htaf-{item.experiment}-{profile}-"
                                 f"{item.path.stem}", resources=resources, retries=0): item for item in missing}
        show()
        for future in as_completed(futures):
            item = futures[future]
            entry = summary[item.experiment]
            error = future.exception() if future.status == "error" else None
            seconds, trained, held = future.result() if future.status == "finished" else (0.0, False, "")
            if held:
                counts["held"] += 1
                entry["held"] += 1
                bar.write(f"skipped {_describe(item)}: {held}", file=sys.stderr)
            elif future.status != "finished":  # the run raised, or its worker was lost too often (KilledWorker)
                counts["failed"] += 1
                entry["failed"] += 1
                reason = f"{type(error).__name__}: {error}" if error is not None else future.status
                bar.write(f"failed {_describe(item)}: {reason}", file=sys.stderr)
            else:
                counts["done"] += 1
                entry["trained"] += trained
                entry["recorded_time_s"] += seconds
                fresh[item.experiment] += seconds if trained else 0.0
            future.release()
            bar.update()
            show()
    except KeyboardInterrupt:  # the queued runs are cancelled, the running ones finish on their workers
        print(f"reproduce stopped: {counts['done']} of {len(missing)} missing runs finished in this call and "
              f"are kept ({'its workers stop with it' if local is not None else 'runs that started go on there'}); "
              "run it again to train the rest",
              file=sys.stderr, flush=True)
        raise
    finally:
        client.close()
        if local is not None:
            local.close()
    _share_wall_time(summary, fresh, time.perf_counter() - started)
