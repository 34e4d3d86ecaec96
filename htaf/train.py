"""The one training loop every experiment family runs through, and cached runs.

>>> import tempfile
>>> record = run("mlp", "smoke", results_dir=f"{tempfile.mkdtemp()}/results", epochs=1)
>>> sorted(record["metrics"]), record["history"][0]["epoch"]
(['test_accuracy', 'test_loss', 'train_accuracy', 'train_loss'], 1)

:func:`run` trains a config once: a finished result (same experiment, profile
and config hash) is read back instead of retrained, and an interrupted run
resumes from its last per-epoch checkpoint. :func:`sweep` does this for a grid.
"""

from __future__ import annotations

import datetime
import itertools
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from htaf import data, distributed, experiments, results
from htaf.experiments import Config, Experiment

EpochCallback = Callable[[int, dict[str, float]], None]
RESULT_SCHEMA = 1


def select_device(local_rank: int = 0) -> torch.device:
    """``$HTAF_DEVICE`` if set, else CUDA device ``local_rank`` when CUDA is present, else the CPU."""
    if os.environ.get("HTAF_DEVICE"):
        return torch.device(os.environ["HTAF_DEVICE"])
    return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch; with ``deterministic``, ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()) != (
        deterministic,
        True,
    ):  # the first switch imports torch._inductor (seconds), so only switch when needed
        torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.benchmark = not deterministic


def progress_enabled(ctx: distributed.DistContext) -> bool:
    """Progress bars only on rank 0, on a terminal, and unless ``HTAF_QUIET=1``."""
    return ctx.is_main and sys.stderr.isatty() and os.environ.get("HTAF_QUIET") != "1"


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


def compute_loss(outputs: torch.Tensor, targets: torch.Tensor, task: str) -> torch.Tensor:
    """Cross entropy for ``'classification'``, mean squared error for ``'regression'`` (in float32)."""
    if task == "classification":
        return F.cross_entropy(outputs.float(), targets)
    if task == "regression":
        return F.mse_loss(outputs.float(), targets)
    raise ValueError(f"unknown task {task!r}; choose 'classification' or 'regression'")


def _sums(outputs: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor, task: str) -> torch.Tensor:
    """Per-batch ``[loss * n, correct, n]`` kept on device (no host sync per batch)."""
    n = targets.shape[0]
    correct = (outputs.argmax(dim=1) == targets).sum() if task == "classification" else torch.zeros((), device=loss.device)
    return torch.stack([loss.detach().float() * n, correct.float(), torch.tensor(float(n), device=loss.device)])


def _summarise(sums: torch.Tensor, prefix: str, task: str) -> dict[str, float]:
    loss_sum, correct, count = sums.tolist()
    summary = {f"{prefix}_loss": loss_sum / count}
    if task == "classification":
        summary[f"{prefix}_accuracy"] = correct / count
    return summary


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device: torch.device, config: Config) -> dict[str, float]:
    """Mean test loss (and accuracy for classification) over ``loader``."""
    model.eval()
    totals = torch.zeros(3, device=device)
    for inputs, targets in loader:
        inputs, targets = inputs.to(device), targets.to(device)
        with _autocast(device, config):
            outputs = model(inputs)
        totals += _sums(outputs, targets, compute_loss(outputs, targets, config["task"]), config["task"])
    return _summarise(totals, "test", config["task"])


def _autocast(device: torch.device, config: Config) -> torch.autocast:
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda" and config["amp"])


def _rng_state() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` through :func:`htaf.results.atomic_write`: a kill never leaves a torn checkpoint."""
    results.atomic_write(path, lambda fh: torch.save(state, fh))


def fit(
    experiment: Experiment,
    config: Config,
    checkpoint: Path | None = None,
    on_epoch_end: EpochCallback | None = None,
) -> dict[str, Any]:
    """Train ``experiment``'s model under ``config`` and evaluate it on the test set.

    Resumes from ``checkpoint`` when the file exists and rewrites it after every
    epoch. ``on_epoch_end(epoch, metrics)`` runs after each epoch's checkpoint.
    Returns ``history`` (per-epoch metrics), final ``metrics``, ``num_params``,
    ``wall_time_s`` (training and evaluation time summed over every session
    of the run), ``resumed_from_epoch`` and ``environment``.
    """
    if config["epochs"] < 1:
        raise ValueError(f"epochs must be at least 1, got {config['epochs']}")
    device = select_device(distributed.from_env().local_rank)
    ctx = distributed.setup(device)
    seed_everything(config["seed"], config["deterministic"])
    train_loader, test_loader = data.get_loaders(config, ctx.rank, ctx.world_size)
    network = experiment.build_model(config).to(device)
    optimizer = build_optimizer(network.parameters(), config)
    scheduler = build_scheduler(optimizer, config)
    history: list[dict[str, float]] = []
    resumed_from_epoch = None
    if checkpoint is not None and checkpoint.is_file():
        # our own file, holding RNG states and optimizer state (not only weights)
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        network.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history = state["history"]
        resumed_from_epoch = len(history)
        _restore_rng_state(state["rng"])
    model = distributed.wrap(network, ctx, device)

    for epoch in range(len(history), config["epochs"]):
        started = time.perf_counter()
        train_loader.sampler.set_epoch(epoch)
        if experiment.on_epoch_start is not None:
            experiment.on_epoch_start(network, epoch, config)
        lr = optimizer.param_groups[0]["lr"]
        model.train()
        totals = torch.zeros(3, device=device)
        hook_totals: dict[str, float] = {}
        batches = tqdm(train_loader, desc=f"{experiment.name} {epoch + 1}/{config['epochs']}",
                       disable=not progress_enabled(ctx), leave=False)
        for inputs, targets in batches:
            inputs, targets = inputs.to(device), targets.to(device)
            with _autocast(device, config):
                outputs = model(inputs)
            loss = compute_loss(outputs, targets, config["task"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if experiment.train_metrics is not None:
                for key, value in experiment.train_metrics(network).items():
                    hook_totals[key] = hook_totals.get(key, 0.0) + value
            optimizer.step()
            totals += _sums(outputs, targets, loss, config["task"])
        scheduler.step()
        train_seconds = time.perf_counter() - started
        hooks = torch.tensor(list(hook_totals.values()), dtype=torch.float64, device=device)
        reduced = distributed.sum_across_ranks(torch.cat([totals.double(), hooks]), ctx)
        totals, hook_means = reduced[:3], reduced[3:] / (len(train_loader) * ctx.world_size)
        row = {
            "epoch": epoch + 1,
            "lr": lr,
            **_summarise(totals, "train", config["task"]),
            **dict(zip(hook_totals, hook_means.tolist())),
            **evaluate(model, test_loader, device, config),
            "samples_per_s": totals[2].item() / train_seconds,
            "epoch_time_s": time.perf_counter() - started,
        }
        history.append(row)
        if checkpoint is not None and ctx.is_main:
            save_checkpoint(checkpoint, {
                "model": network.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "history": history,
                "rng": _rng_state(),
            })
        distributed.barrier(ctx)
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, row)

    started = time.perf_counter()
    final = history[-1]
    metrics = {key: value for key, value in final.items() if key.startswith(("train_", "test_"))}
    if experiment.eval_metrics is not None:
        metrics.update(experiment.eval_metrics(network, test_loader, device, config))
    return {
        "history": history,
        "metrics": metrics,
        "num_params": sum(p.numel() for p in network.parameters()),
        "wall_time_s": sum(row["epoch_time_s"] for row in history) + time.perf_counter() - started,
        "resumed_from_epoch": resumed_from_epoch,
        "environment": results.environment(device, ctx.world_size),
    }


def run(
    experiment: str | Experiment,
    profile: str | None = None,
    results_dir: str | os.PathLike | None = None,
    *,
    on_epoch_end: EpochCallback | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Result of one run, training it only if no finished result has the same config hash.

    ``profile`` defaults to ``$HTAF_PROFILE``, else ``'smoke'``; ``overrides``
    replace profile defaults (known keys only). The returned record (also the
    JSON file at ``<results>/<experiment>/<profile>/<hash>.json``) holds
    ``experiment``, ``profile``, ``hash``, ``config``, ``history``,
    ``metrics``, ``num_params``, ``wall_time_s``, ``environment`` and ``date``.
    Under torchrun only rank 0 writes files.
    """
    exp = experiments.get(experiment)
    profile = experiments.resolve_profile(profile)
    config = experiments.resolve_config(exp, profile, **overrides)
    digest = results.config_hash(exp.name, config)
    path = results.result_path(exp.name, profile, digest, results_dir)
    if path.is_file():
        return results.read_json(path)
    checkpoint = results.checkpoint_path(exp.name, profile, digest, results_dir)
    outcome = fit(exp, config, checkpoint, on_epoch_end)
    record = {
        "schema": RESULT_SCHEMA,
        "experiment": exp.name,
        "profile": profile,
        "hash": digest,
        "config": config,
        **outcome,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if distributed.from_env().is_main:
        results.write_json(path, record)
        checkpoint.unlink(missing_ok=True)
    return record


def sweep(
    experiment: str | Experiment,
    profile: str | None = None,
    grid: dict[str, list[Any]] | None = None,
    results_dir: str | os.PathLike | None = None,
    **overrides: Any,
) -> pd.DataFrame:
    """Run every combination of ``grid`` (training only missing runs); one row per run.

    Columns: the grid keys, ``hash``, the final metrics and ``wall_time_s``.

    >>> import tempfile
    >>> frame = sweep("mlp", "smoke", grid={"seed": [0, 1]}, results_dir=f"{tempfile.mkdtemp()}/results", epochs=1)
    >>> frame["seed"].tolist()
    [0, 1]
    """
    grid = grid or {}
    both = sorted(set(grid) & set(overrides))
    if both:
        raise experiments.ConfigError(f"{', '.join(both)} given both in grid and as an override; give each key once")
    rows = []
    for values in itertools.product(*grid.values()):
        varied = dict(zip(grid, values))
        record = run(experiment, profile, results_dir, **overrides, **varied)
        rows.append({
            **{key: results.cell(value) for key, value in varied.items()},
            "hash": record["hash"],
            **record["metrics"],
            "wall_time_s": record["wall_time_s"],
        })
    return pd.DataFrame(rows)
