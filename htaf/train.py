"""The one training loop every experiment family runs through, and cached runs.

>>> import tempfile
>>> record = run("mlp", "smoke", results_dir=f"{tempfile.mkdtemp()}/results", epochs=1)
>>> sorted(record["metrics"]), record["history"][0]["epoch"]
(['test_accuracy', 'test_loss', 'train_accuracy', 'train_loss'], 1)

:func:`fit` trains one config in four steps a reader can follow: :func:`set_up` (seed, data, model,
optimizer), :func:`resume` (from a checkpoint, if one is usable), :func:`train_epoch` (once per epoch)
and :func:`finish` (final metrics). The experiment's hooks (see :class:`htaf.experiments.Experiment`)
decide what a batch carries, how the loss is formed and what is measured.

:func:`run` trains a config once: a finished result (same experiment, profile and config hash) is read
back instead of retrained, an interrupted run resumes from its last per-epoch checkpoint, and a run that
another process is training is waited for, never trained twice. :func:`sweep` does this for a grid and
:func:`htaf.reproduction.reproduce` for every chapter of the book. What an experiment and this loop agree
on (batches, the default loss, evaluation, the start of a run) lives in :mod:`htaf.engine`.

Progress: on a terminal or in a Jupyter notebook, one updating bar per run (``tqdm.auto``: a widget in
Jupyter when ipywidgets is installed, one line on a terminal) over the run's batches, with the last epoch's
metrics and time beside it, removed when the run ends; otherwise (a log file, a pipe) one line per epoch on stderr
(run, epoch, metrics, time). ``HTAF_QUIET=1`` silences both.
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import logging
import os
import pickle
import random
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from htaf import data, distributed, experiments, results
from htaf.engine import _autocast, _sums, _summarise, evaluate, seed_everything, select_device, start
from htaf.experiments import Config, Experiment

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "EpochCallback", "Session", "build_optimizer", "build_scheduler", "evaluate", "finish", "fit", "resume", "run",
    "save_checkpoint", "seed_everything", "select_device", "set_up", "sweep", "train_epoch",
]

EpochCallback = Callable[[int, dict[str, float]], None]
logger = logging.getLogger("htaf")
#: keys of a checkpoint file
CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "history", "rng")


def quiet() -> bool:
    """``HTAF_QUIET=1``: no progress bars, no per-epoch lines."""
    return os.environ.get("HTAF_QUIET") == "1"


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (its stderr is no terminal, but it renders a progress bar)."""
    ipython = sys.modules.get("IPython")
    try:
        shell = ipython.get_ipython() if ipython is not None else None
        return shell is not None and "IPKernelApp" in shell.config
    except Exception:  # noqa: BLE001 - an IPython too old or too new for this check: no notebook
        return False


def progress_enabled(ctx: distributed.DistContext) -> bool:
    """Progress bars only on rank 0, on a terminal or in a Jupyter notebook, and unless ``HTAF_QUIET=1``."""
    return ctx.is_main and (sys.stderr.isatty() or in_notebook()) and not quiet()


def _reporting(ctx: distributed.DistContext, progress: bool | None) -> str:
    """How :func:`fit` reports epochs: ``"bar"`` (a terminal or a notebook), ``"log"`` (a line per epoch) or
    ``"off"``."""
    if progress is False or not ctx.is_main or quiet():
        return "off"
    return "bar" if progress_enabled(ctx) else "log"


def build_optimizer(parameters: Any, config: Config) -> torch.optim.Optimizer:
    name, lr, decay = config["optimizer"], config["lr"], config["weight_decay"]
    if name == "adam":
        return torch.optim.Adam(parameters, lr=lr, weight_decay=decay)
    if name == "adamw":
        return torch.optim.AdamW(parameters, lr=lr, weight_decay=decay)
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=lr, weight_decay=decay, momentum=config["momentum"])
    raise experiments.UnknownChoiceError("optimizer", name, list(experiments.CHOICES["optimizer"]))


def build_scheduler(optimizer: torch.optim.Optimizer, config: Config) -> torch.optim.lr_scheduler.LRScheduler:
    """Stepped once per epoch."""
    if config["lr_schedule"] == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)
    if config["lr_schedule"] == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config["epochs"])
    raise experiments.UnknownChoiceError("lr_schedule", config["lr_schedule"], list(experiments.CHOICES["lr_schedule"]))


# --------------------------------------------------------------------------------------------
# Per-epoch averages of the hooks' values
# --------------------------------------------------------------------------------------------


class _HookAverages:
    """Per-epoch means of the values the ``train_metrics`` and ``after_step`` hooks return."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, values: dict[str, float] | None) -> None:
        for key, value in (values or {}).items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value)
            self.counts[key] = self.counts.get(key, 0) + 1

    def means(self, ctx: distributed.DistContext, device: torch.device) -> dict[str, float]:
        keys = list(self.sums)
        if not keys:
            return {}
        local = torch.tensor([[self.sums[k] for k in keys], [float(self.counts[k]) for k in keys]],
                             dtype=torch.float64, device=device)
        total = distributed.sum_across_ranks(local, ctx)
        return dict(zip(keys, (total[0] / total[1]).tolist()))


# --------------------------------------------------------------------------------------------
# fit: set up, resume, one epoch, finish
# --------------------------------------------------------------------------------------------


@dataclass
class Session:
    """Everything the training of one run needs, built by :func:`set_up`."""

    experiment: Experiment
    config: Config
    device: torch.device
    ctx: distributed.DistContext
    network: nn.Module  # the model itself
    model: nn.Module  # the model as trained (DDP-wrapped under torchrun)
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    train_loader: DataLoader
    test_loader: DataLoader
    val_loader: DataLoader | None = None  # the config's validation set (``validation``), else None
    history: list[dict[str, float]] = field(default_factory=list)
    resumed_from_epoch: int | None = None
    label: str = ""

    def state(self) -> dict[str, Any]:
        """What a checkpoint holds: weights, optimizer and scheduler state, history and RNG states."""
        return {
            "model": self.network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "history": self.history,
            "rng": _rng_state(),
        }


def set_up(experiment: Experiment, config: Config, label: str = "") -> Session:
    """Seed, load the data, build the model, optimizer and scheduler of a fresh run."""
    if config["epochs"] < 1:
        raise ValueError(f"epochs must be at least 1, got {config['epochs']}")
    device = select_device(distributed.from_env().local_rank)
    ctx = distributed.setup(device)
    network, train_loader, test_loader = start(experiment, config, device, ctx.rank, ctx.world_size)
    optimizer = build_optimizer(network.parameters(), config)
    scheduler = build_scheduler(optimizer, config)
    return Session(experiment, config, device, ctx, network, distributed.wrap(network, ctx, device), optimizer,
                   scheduler, train_loader, test_loader, data.validation_loader(config), label=label or experiment.name)


def resume(session: Session, checkpoint: Path) -> Session:
    """``session`` restored from ``checkpoint``; a damaged checkpoint is moved aside (with a warning) and
    a fresh session is returned, so the run starts from scratch instead of failing forever."""
    try:
        # weights_only: tensors and plain Python values only, so a planted file cannot run code while loading
        state = torch.load(checkpoint, map_location=session.device, weights_only=True)
        missing = [key for key in CHECKPOINT_KEYS if not isinstance(state, dict) or key not in state]
        if missing:
            raise KeyError(f"lacks {', '.join(missing)}")
        session.network.load_state_dict(state["model"])
        session.optimizer.load_state_dict(state["optimizer"])
        session.scheduler.load_state_dict(state["scheduler"])
        history = list(state["history"])
        _restore_rng_state(state["rng"])
    except Exception as error:  # noqa: BLE001 - any damage: truncation, garbage, a foreign file
        moved = results.quarantine(checkpoint) if session.ctx.is_main else checkpoint
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        if isinstance(error, pickle.UnpicklingError):  # weights_only refused it: not a file fit wrote
            reason = "holds objects other than tensors and plain values, which are never unpickled"
        warnings.warn(f"checkpoint {checkpoint} is damaged ({type(error).__name__}: {reason}); moved it to "
                      f"{moved.name} and starting {session.label} from scratch", results.ResultsWarning, stacklevel=2)
        return set_up(session.experiment, session.config, session.label)
    session.history = history
    session.resumed_from_epoch = len(history)
    return session


def _progress_bar(**kwargs: Any) -> Any:
    """A ``tqdm.auto`` bar: a widget in Jupyter (with ipywidgets; without, the text bar and no warning about it),
    a bar on one line elsewhere."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tqdm's notice that ipywidgets is missing (it falls back to text)
        from tqdm.auto import tqdm

    return tqdm(**kwargs)


def train_epoch(session: Session, epoch: int, bar: Any = False) -> dict[str, float]:
    """Train one epoch (``epoch`` counts from 0), evaluate, and return the epoch's history row.

    ``bar``: a progress bar to advance by one per batch (what :func:`fit` passes), ``True`` for a bar of this
    epoch's batches, or ``False``.
    """
    s, config, exp = session, session.config, session.experiment
    started = time.perf_counter()
    s.train_loader.sampler.set_epoch(epoch)
    if exp.on_epoch_start is not None:
        exp.on_epoch_start(s.network, epoch, config)
    lr = s.optimizer.param_groups[0]["lr"]
    s.model.train()
    totals = torch.zeros(3, device=s.device)
    hooks = _HookAverages()
    batches = s.train_loader
    advance = None if isinstance(bar, bool) else bar  # a bar of the caller's
    if bar is True:
        batches = _progress_bar(iterable=batches, desc=f"{s.label} {epoch + 1}/{config['epochs']}", leave=False)
    for raw in batches:
        if advance is not None:
            advance.update(1)
        batch = exp.prepare_batch(raw, s.device)
        with _autocast(s.device, config):
            outputs = s.model(batch.inputs)
        loss = exp.loss(outputs, batch, config)
        s.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if exp.train_metrics is not None:
            hooks.add(exp.train_metrics(s.network))
        s.optimizer.step()
        if exp.after_step is not None:
            hooks.add(exp.after_step(s.network, config))
        totals += _sums(outputs, batch, loss, config["task"])
    s.scheduler.step()
    train_seconds = time.perf_counter() - started
    totals = distributed.sum_across_ranks(totals.double(), s.ctx)
    tested = evaluate(s.model, s.test_loader, s.device, config, exp)
    if exp.evaluate is not None:
        tested.update({f"test_{key}": value for key, value in exp.evaluate(s.model, s.test_loader, s.device, config).items()})
    if s.val_loader is not None:  # after the test set, so that a run's test metrics do not depend on it
        tested.update(evaluate(s.model, s.val_loader, s.device, config, exp, prefix="val"))
    return {
        "epoch": epoch + 1,
        "lr": lr,
        **_summarise(totals, "train", config["task"]),
        **hooks.means(s.ctx, s.device),
        **tested,
        "samples_per_s": totals[2].item() / train_seconds,
        "epoch_time_s": time.perf_counter() - started,
    }


def finish(session: Session) -> dict[str, Any]:
    """The outcome of a trained session: history, final metrics (the last epoch's ``train_*``, ``test_*`` and ``val_*``
    metrics, the ``evaluate`` hook's among them, and the ``eval_metrics`` hook's), parameter count, wall
    time, environment."""
    s = session
    started = time.perf_counter()
    metrics = {key: value for key, value in s.history[-1].items() if key.startswith(("train_", "test_", "val_"))}
    if s.experiment.eval_metrics is not None:
        metrics.update(s.experiment.eval_metrics(s.network, s.test_loader, s.device, s.config))
    return {
        "history": s.history,
        "metrics": metrics,
        "num_params": sum(p.numel() for p in s.network.parameters()),
        "wall_time_s": sum(row["epoch_time_s"] for row in s.history) + time.perf_counter() - started,
        "resumed_from_epoch": s.resumed_from_epoch,
        "environment": results.environment(s.device, s.ctx.world_size),
    }


#: the per-epoch log line shows the engine's own loss and accuracy; hook metrics (per-layer statistics and the
#: like, possibly hundreds) stay in the history only
LOGGED = tuple(f"{prefix}_{metric}" for prefix in ("train", "val", "test") for metric in ("loss", "accuracy"))


def _epoch_summary(session: Session, row: dict[str, float]) -> str:
    """``epoch 2/3: train_loss 0.41, train_accuracy 0.87, ... (1.2 s)``: what a log line and a bar show."""
    shown = [key for key in LOGGED if key in row]
    metrics = ", ".join(f"{key} {row[key]:.4g}" for key in shown)
    return f"epoch {row['epoch']}/{session.config['epochs']}: {metrics} ({row['epoch_time_s']:.1f} s)"


def _log_epoch(session: Session, row: dict[str, float]) -> None:
    print(f"{session.label} {_epoch_summary(session, row)}", file=sys.stderr, flush=True)


def fit(
    experiment: Experiment,
    config: Config,
    checkpoint: Path | None = None,
    on_epoch_end: EpochCallback | None = None,
    progress: bool | None = None,
    label: str = "",
) -> dict[str, Any]:
    """Train ``experiment``'s model under ``config`` and evaluate it on the test set.

    Resumes from ``checkpoint`` when the file exists (and is usable) and rewrites it after every
    epoch. ``on_epoch_end(epoch, metrics)`` runs after each epoch's checkpoint. ``progress``: ``None``
    reports each epoch (one bar for the run on a terminal or in a notebook, else a line per epoch on stderr),
    ``False`` stays silent; ``label``
    names the run in those reports. Returns ``history`` (per-epoch metrics), final ``metrics``,
    ``num_params``, ``wall_time_s`` (training and evaluation time summed over every session of the
    run), ``resumed_from_epoch`` and ``environment``.
    """
    session = set_up(experiment, config, label)
    if checkpoint is not None and checkpoint.is_file():
        session = resume(session, checkpoint)
    report = _reporting(session.ctx, progress)
    bar = None
    if report == "bar":  # one bar for the whole run, over its batches; gone when the run ends
        per_epoch = len(session.train_loader)
        bar = _progress_bar(total=config["epochs"] * per_epoch, initial=len(session.history) * per_epoch,
                            desc=session.label, unit="batch", leave=False, dynamic_ncols=True)
    try:
        for epoch in range(len(session.history), config["epochs"]):
            row = train_epoch(session, epoch, bar=bar if bar is not None else False)
            session.history.append(row)
            if checkpoint is not None and session.ctx.is_main:
                save_checkpoint(checkpoint, session.state())
            distributed.barrier(session.ctx)
            if report == "log":
                _log_epoch(session, row)
            elif bar is not None:
                bar.set_postfix_str(_epoch_summary(session, row))
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, row)
    finally:
        if bar is not None:
            bar.close()
    return finish(session)


def _rng_state() -> dict[str, Any]:
    """Every RNG state as tensors and plain values (loadable with ``torch.load(..., weights_only=True)``)."""
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss),
                  float(cached_gaussian)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _restore_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, cached_gaussian = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached_gaussian))
    torch.set_rng_state(state["torch"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` through :func:`htaf.results.atomic_write`: a kill never leaves a torn checkpoint."""
    results.atomic_write(path, lambda fh: torch.save(state, fh))


# --------------------------------------------------------------------------------------------
# Cached runs
# --------------------------------------------------------------------------------------------


def _finished(path: Path, repair: bool) -> dict[str, Any] | None:
    """The finished result at ``path``, or ``None``; a damaged file (or a folder or link in its place) is moved
    aside (when ``repair``)."""
    if not os.path.lexists(path):
        return None
    try:
        return results.read_result(path)
    except results.CorruptResultError as error:
        if repair:
            moved = results.quarantine(path)
            warnings.warn(f"{error}; moved it to {moved.name} and training the run again",
                          results.ResultsWarning, stacklevel=3)
        return None


def run(
    experiment: str | Experiment,
    profile: str | None = None,
    results_dir: str | os.PathLike | None = None,
    *,
    on_epoch_end: EpochCallback | None = None,
    progress: bool | None = None,
    announce: bool = True,
    **overrides: Any,
) -> dict[str, Any]:
    """Result of one run, training it only if no finished result has the same config hash.

    With ``announce`` (the default; :func:`sweep` and ``reproduce`` turn it off and report once), one line on stderr
    says where the result is: ``htaf: <experiment>/<profile>/<hash>: result written to <path>`` for a run trained
    here, ``... read from <path>`` for a finished one (silent with ``HTAF_QUIET=1`` and on ranks other than 0).

    ``profile`` defaults to ``$HTAF_PROFILE``, else ``'smoke'``; ``overrides``
    replace profile defaults (known keys only); the whole config is checked before
    any data loads. The returned record (also the JSON file at
    ``<results>/<experiment>/<profile>/<hash>.json``) holds ``schema``,
    ``experiment``, ``profile``, ``hash``, ``config``, ``history``, ``metrics``,
    ``num_params``, ``wall_time_s``, ``resumed_from_epoch``, ``environment`` and
    ``date``. The results folder must be writable before training starts; one
    process trains a run at a time (a second one waits for the result, see
    :func:`htaf.results.run_lock`). Under torchrun only rank 0 writes files, and
    the world size is part of the run's hash. The record is a
    :class:`htaf.results.RunRecord`: a dict whose ``path`` attribute is that
    file (a freshly written one is also logged on the ``htaf`` logger, level INFO).
    Without ``results_dir`` or ``$HTAF_RESULTS``, results go to the book's
    ``results/`` inside a checkout of this repository, else to htaf's user data
    folder, which one line on stderr names once per process.
    """
    exp = experiments.get(experiment)
    profile = experiments.resolve_profile(profile)
    config = experiments.resolve_config(exp, profile, **overrides)
    ctx = distributed.from_env()
    digest = results.config_hash(exp.name, config, ctx.world_size)
    path = results.result_path(exp.name, profile, digest, results_dir)
    record = _finished(path, repair=ctx.is_main)
    if record is not None:
        return _announced(results.RunRecord(record, path), announce and ctx.is_main, fresh=False)
    select_device(ctx.local_rank)  # a bad HTAF_DEVICE fails here, before any data loads
    if "dataset" in config:  # so does a missing optional package (torchvision, tonic): one line naming the extra
        data.check_dependencies(config["dataset"])
    checkpoint = results.checkpoint_path(exp.name, profile, digest, results_dir)
    if ctx.is_main:
        results.refuse_links(path, results.results_root(results_dir))
        results.refuse_links(checkpoint, results.checkpoints_root(results_dir))
        results.check_writable(path.parent)
        results.check_writable(checkpoint.parent)
    with results.run_lock(path) if ctx.is_main else contextlib.nullcontext() as held:
        record = _finished(path, repair=ctx.is_main)  # another process may have finished it meanwhile
        if record is not None:
            return _announced(results.RunRecord(record, path), announce and ctx.is_main, fresh=False)
        if ctx.is_main:  # temporary files of writes a kill interrupted (only the lock holder writes this run's files)
            for target in (path, checkpoint):
                for orphan in target.parent.glob(f".{target.name}.*.tmp"):
                    orphan.unlink(missing_ok=True)
        def epoch_done(epoch: int, row: dict[str, float]) -> None:
            if held is not None:  # a results folder replaced during the run: its lock is taken again there
                held.check()
            if on_epoch_end is not None:
                on_epoch_end(epoch, row)

        outcome = fit(exp, config, checkpoint, epoch_done, progress=progress, label=f"{exp.name}/{profile}/{digest}")
        record = results.json_safe({
            "schema": results.SCHEMA,
            "experiment": exp.name,
            "profile": profile,
            "hash": digest,
            "config": config,
            **outcome,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        })
        if ctx.is_main:
            if held is not None:
                held.check()
            results.write_json(path, record)
            checkpoint.unlink(missing_ok=True)
            logger.info("%s/%s/%s: result written to %s", exp.name, profile, digest, path)
    return _announced(results.RunRecord(record, path), announce and ctx.is_main, fresh=True)


def _announced(record: results.RunRecord, announce: bool, fresh: bool) -> results.RunRecord:
    """``record``, after one line on stderr saying where its file is (see :func:`run`'s ``announce``)."""
    if announce and not quiet():
        print(f"htaf: {record['experiment']}/{record['profile']}/{record['hash']}: result "
              f"{'written to' if fresh else 'read from'} {record.path}", file=sys.stderr)
    return record


def _combinations(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


def sweep(
    experiment: str | Experiment,
    profile: str | None = None,
    grid: dict[str, list[Any]] | None = None,
    results_dir: str | os.PathLike | None = None,
    **overrides: Any,
) -> pd.DataFrame:
    """Run every combination of ``grid`` (training only missing runs); one row per run. When any run trained, one
    line on stderr says how many and where their results are.

    Columns: the grid keys, ``hash``, the final metrics and ``wall_time_s``.

    >>> import tempfile
    >>> frame = sweep("mlp", "smoke", grid={"seed": [0, 1]}, results_dir=f"{tempfile.mkdtemp()}/results", epochs=1)
    >>> frame["seed"].tolist()
    [0, 1]
    """
    import pandas as pd

    grid = grid or {}
    both = sorted(set(grid) & set(overrides))
    if both:
        raise experiments.ConfigError(f"{', '.join(both)} given both in grid and as an override; give each key once")
    rows, trained, folder = [], 0, None
    for varied in _combinations(grid):
        epochs: list[int] = []
        record = run(experiment, profile, results_dir, announce=False,
                     on_epoch_end=lambda epoch, row, done=epochs: done.append(epoch), **overrides, **varied)
        trained, folder = trained + bool(epochs), record.path.parent
        rows.append({
            **{key: results.cell(value) for key, value in varied.items()},
            "hash": record["hash"],
            **record["metrics"],
            "wall_time_s": record["wall_time_s"],
        })
    if trained and not quiet() and distributed.from_env().is_main:  # one line for the sweep, not one per run
        print(f"htaf: {experiments.get(experiment).name}: {trained} of {len(rows)} runs trained, results in {folder}",
              file=sys.stderr)
    return pd.DataFrame(rows)
