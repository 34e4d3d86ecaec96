"""The contract between an experiment and the training loop: configs, batches, the default loss, evaluation.

A low module: it imports torch, :mod:`htaf.data` and :mod:`htaf.distributed`, never the training loop
(:mod:`htaf.train`), the experiment registry (:mod:`htaf.experiments`), :mod:`htaf.results` or
:mod:`htaf.metrics`; those import from here. :mod:`htaf.experiments` re-exports the names an experiment
module needs (:class:`Batch`, :data:`Config`, :func:`default_prepare_batch`, :func:`default_loss`,
:class:`ConfigError`, :class:`UnknownChoiceError`, :data:`PROFILES`, :func:`resolve_profile`).

>>> batch = Batch(torch.zeros(4, 2), torch.tensor([0, 1, 1, 0]))
>>> len(batch), float(default_loss(torch.zeros(4, 2), batch, {"task": "classification"}))
(4, 0.6931471824645996)
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Any, Iterable, Protocol, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from htaf import _kernels, data
from htaf._errors import PicklableError

__all__ = [
    "Batch",
    "Config",
    "ConfigError",
    "PROFILES",
    "UnknownChoiceError",
    "default_loss",
    "default_prepare_batch",
    "evaluate",
    "resolve_profile",
    "seed_everything",
    "select_device",
    "start",
]

#: the profiles every experiment may define: ``smoke`` (CI), ``cpu`` (a 2-core laptop), ``gpu`` (paper scale)
PROFILES = ("smoke", "cpu", "gpu")

Config = dict[str, Any]


class ConfigError(PicklableError, ValueError):
    """A config value of the wrong type or outside its allowed range; the message says which and why."""


class UnknownChoiceError(ConfigError):
    """An unknown experiment, profile, config key or value; the message lists the valid choices."""

    def __init__(self, kind: str, value: str, choices: list[str]):
        super().__init__(f"unknown {kind} {value!r}; valid choices: {', '.join(choices) or '(none)'}")
        self.kind, self.value, self.choices = kind, value, choices


def resolve_profile(profile: str | None = None) -> str:
    """``profile``, else ``$HTAF_PROFILE``, else ``'smoke'``; checked against :data:`PROFILES`."""
    chosen = profile or os.environ.get("HTAF_PROFILE") or "smoke"
    if chosen not in PROFILES:
        raise UnknownChoiceError("profile", chosen, list(PROFILES))
    return chosen


# --------------------------------------------------------------------------------------------
# Batches and the default loss: what the engine does unless an experiment says otherwise
# --------------------------------------------------------------------------------------------


@dataclass
class Batch:
    """One batch on its device: ``inputs``, ``targets`` and, for an attribute dataset, ``attributes``."""

    inputs: torch.Tensor
    targets: torch.Tensor
    attributes: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.targets.shape[0]


def default_prepare_batch(batch: Sequence[torch.Tensor], device: torch.device) -> Batch:
    """``(x, y)`` or ``(x, y, attributes)`` from a loader, moved to ``device``."""
    moved = [tensor.to(device, non_blocking=True) for tensor in batch]
    return Batch(*moved)


def default_loss(outputs: torch.Tensor, batch: Batch, config: Config) -> torch.Tensor:
    """Cross entropy for ``'classification'``, mean squared error for ``'regression'`` (in float32)."""
    if config["task"] == "classification":
        return F.cross_entropy(outputs.float(), batch.targets)
    if config["task"] == "regression":
        return F.mse_loss(outputs.float(), batch.targets)
    raise ConfigError(f"unknown task {config['task']!r}; choose 'classification' or 'regression'")


class Hooks(Protocol):
    """What :func:`evaluate` and :func:`start` read of an experiment (:class:`htaf.experiments.Experiment`)."""

    prepare_batch: Any
    loss: Any
    build_model: Any


# --------------------------------------------------------------------------------------------
# The start of a run: device, seeds, data and model
# --------------------------------------------------------------------------------------------


def select_device(local_rank: int = 0) -> torch.device:
    """``$HTAF_DEVICE`` if set, else CUDA device ``local_rank`` when CUDA is present, else the CPU.

    Raises:
        ConfigError: ``$HTAF_DEVICE`` names no torch device, or a CUDA device where CUDA is not available.
    """
    name = os.environ.get("HTAF_DEVICE")
    if name:
        try:
            device = torch.device(name)
        except (RuntimeError, ValueError):
            raise ConfigError(f"HTAF_DEVICE={name!r} is not a torch device; use cpu, cuda or cuda:<index>") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"HTAF_DEVICE={name!r} asks for CUDA, which this machine's torch cannot use; "
                              "unset it or use cpu")
        return device
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
    ):
        set_deterministic(deterministic)
    torch.backends.cudnn.benchmark = not deterministic


def set_deterministic(mode: bool) -> None:
    """``torch.use_deterministic_algorithms(mode, warn_only=True)``, without importing ``torch._inductor``.

    torch's function imports inductor (about 4 s, a large part of a short run's process) only to copy ``mode``
    into ``torch._inductor.config.deterministic``. The same two settings here: torch's flag now, inductor's when
    inductor is loaded already, and otherwise before anything compiles
    (:func:`htaf._kernels.sync_inductor_determinism`, called by :mod:`htaf._lif`, the only compiling code).
    """
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None:  # a torch without the private setter: the public function
        torch.use_deterministic_algorithms(mode, warn_only=True)
        return
    setter(mode, warn_only=True)
    _kernels.sync_inductor_determinism()


def start(experiment: Hooks, config: Config, device: torch.device, rank: int = 0,
          world_size: int = 1) -> tuple[nn.Module, DataLoader, DataLoader]:
    """The start of every run, in this order: seed, load the data (``rank``'s shard of ``world_size``), build
    ``experiment``'s model on ``device``. Returns ``(network, train_loader, test_loader)``."""
    seed_everything(config["seed"], config["deterministic"])
    train_loader, test_loader = data.get_loaders(config, rank, world_size)
    network = experiment.build_model(config).to(device)
    return network, train_loader, test_loader


# --------------------------------------------------------------------------------------------
# Per-batch bookkeeping and evaluation
# --------------------------------------------------------------------------------------------


def _sums(outputs: torch.Tensor, batch: Batch, loss: torch.Tensor, task: str) -> torch.Tensor:
    """Per-batch ``[loss * n, correct, n]`` kept on device (no host sync per batch)."""
    n = len(batch)
    correct = ((outputs.argmax(dim=1) == batch.targets).sum() if task == "classification"
               else torch.zeros((), device=loss.device))
    return torch.stack([loss.detach().float() * n, correct.float(), torch.tensor(float(n), device=loss.device)])


def _summarise(sums: torch.Tensor, prefix: str, task: str) -> dict[str, float]:
    loss_sum, correct, count = sums.tolist()
    summary = {f"{prefix}_loss": loss_sum / count}
    if task == "classification":
        summary[f"{prefix}_accuracy"] = correct / count
    return summary


def _autocast(device: torch.device, config: Config) -> torch.autocast:
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda" and config.get("amp", True))


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader | Iterable, device: torch.device, config: Config,
             experiment: Hooks | None = None, prefix: str = "test") -> dict[str, float]:
    """Mean loss (and accuracy for classification) of ``model`` in eval mode over ``loader``, as
    ``<prefix>_loss`` and ``<prefix>_accuracy`` (``prefix``: ``"test"``, or ``"val"`` for a validation set).

    Batches and loss come from ``experiment``'s hooks (the engine's defaults when ``None``). The model
    is left in eval mode.
    """
    prepare = experiment.prepare_batch if experiment is not None else default_prepare_batch
    loss_fn = experiment.loss if experiment is not None else default_loss
    model.eval()
    totals = torch.zeros(3, device=device)
    for raw in loader:
        batch = prepare(raw, device)
        with _autocast(device, config):
            outputs = model(batch.inputs)
        totals += _sums(outputs, batch, loss_fn(outputs, batch, config), config["task"])
    return _summarise(totals, prefix, config["task"])
