"""Experiment registry, profiles and run configs.

An experiment is a named model builder plus one default config per profile.
Every module in this folder is imported automatically, so adding a file that
calls :func:`register` is enough to make an experiment available::

    from htaf.experiments import Experiment, register

    register(Experiment(
        name="my_exp",
        description="one line for `python -m htaf list`",
        profiles={"smoke": {"dataset": "digits", "batch_size": 64, "epochs": 2,
                            "lr": 1e-2, "seed": 0, "width": 16}},
        build_model=lambda config: ...,
    ))

Profiles: ``smoke`` (each run < 30 s on 2 CPU cores; what CI runs), ``cpu``
(a chapter's runs in about 15 min on a 2-core laptop), ``gpu`` (paper scale on
one GPU). The profile comes from an argument, else ``$HTAF_PROFILE``, else
``smoke``.
"""

from __future__ import annotations

import copy
import importlib
import os
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch import nn
from torch.utils.data import DataLoader

from htaf import data

__all__ = [
    "Config",
    "ConfigError",
    "ENGINE_DEFAULTS",
    "PROFILES",
    "REQUIRED_KEYS",
    "Experiment",
    "UnknownChoiceError",
    "available",
    "get",
    "register",
    "resolve_config",
    "resolve_profile",
]

PROFILES = ("smoke", "cpu", "gpu")
REQUIRED_KEYS = ("dataset", "batch_size", "epochs", "lr", "seed")
ENGINE_DEFAULTS: dict[str, Any] = {
    "optimizer": "adam",  # 'adam' | 'adamw' | 'sgd'
    "weight_decay": 0.0,
    "momentum": 0.0,  # used by 'sgd' only
    "lr_schedule": "constant",  # 'constant' | 'cosine' (per epoch)
    "task": None,  # 'classification' | 'regression'; None: the dataset's task
    "subset": None,  # train on the first N training samples
    "data_kwargs": {},  # passed to htaf.data.load (generated datasets)
    "deterministic": True,
    "amp": True,  # bf16 autocast when on CUDA
}

Config = dict[str, Any]


class ConfigError(ValueError):
    """A config value of the wrong type or outside its allowed range; the message says which and why."""


class UnknownChoiceError(ConfigError):
    """An unknown experiment, profile, config key or value; the message lists the valid choices."""

    def __init__(self, kind: str, value: str, choices: list[str]):
        super().__init__(f"unknown {kind} {value!r}; valid choices: {', '.join(choices) or '(none)'}")
        self.kind, self.value, self.choices = kind, value, choices


#: allowed values of the engine's string-valued keys
CHOICES: dict[str, tuple] = {
    "optimizer": ("adam", "adamw", "sgd"),
    "lr_schedule": ("constant", "cosine"),
    "task": (None, "classification", "regression"),
}


def _coerce(key: str, default: Any, value: Any, nullable: tuple[str, ...] = ()) -> Any:
    """``value`` converted to the type of the profile's ``default`` (int <-> integral float), else ConfigError.

    ``None`` is accepted where the default is ``None``, for engine keys whose default is ``None``, and for
    the experiment's ``nullable`` keys.
    """
    if default is None or (value is None and (key in nullable or ENGINE_DEFAULTS.get(key, ...) is None)):
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(value, type(default)):
        return value
    raise ConfigError(
        f"config key {key!r} expects {type(default).__name__} (default {default!r}), got {value!r}"
    )


def _check_values(config: Config) -> None:
    for key, allowed in CHOICES.items():
        if config[key] not in allowed:
            raise UnknownChoiceError(f"value of {key!r}", config[key], [str(a) for a in allowed])
    if config["dataset"] not in data.available():
        raise UnknownChoiceError("dataset", config["dataset"], data.available())
    for key in ("epochs", "batch_size"):
        if config[key] < 1:
            raise ConfigError(f"config key {key!r} must be at least 1, got {config[key]!r}")
    if not config["lr"] > 0:
        raise ConfigError(f"config key 'lr' must be greater than 0, got {config['lr']!r}")


@dataclass(frozen=True)
class Experiment:
    """A named experiment: how to build its model, and its default config per profile.

    Hooks (all optional):

    - ``train_metrics(model) -> dict``: called after each backward, before the
      optimizer step; values are averaged over the epoch into the history
      (e.g. per-layer gradient norms).
    - ``eval_metrics(model, test_loader, device, config) -> dict``: called once
      at the end, merged into the final test metrics (e.g. spike rates).
    - ``on_epoch_start(model, epoch, config)``: e.g. annealing schedules;
      ``epoch`` counts from 0 (the history and ``on_epoch_end`` count from 1).
    """

    name: str
    description: str
    profiles: Mapping[str, Config]
    build_model: Callable[[Config], nn.Module]
    train_metrics: Callable[[nn.Module], dict[str, float]] | None = None
    eval_metrics: Callable[[nn.Module, DataLoader, torch.device, Config], dict[str, float]] | None = None
    on_epoch_start: Callable[[nn.Module, int, Config], None] | None = None
    #: config keys that may also be set to ``None`` (for example "no time constant": integrate-and-fire)
    nullable: tuple[str, ...] = ()


_REGISTRY: dict[str, Experiment] = {}


def register(experiment: Experiment) -> Experiment:
    """Add an experiment to the registry (replacing one of the same name) and return it."""
    for profile, config in experiment.profiles.items():
        if profile not in PROFILES:
            raise UnknownChoiceError(f"profile in experiment {experiment.name!r}", profile, list(PROFILES))
        missing = [key for key in REQUIRED_KEYS if key not in config]
        if missing:
            raise ValueError(f"experiment {experiment.name!r}, profile {profile!r} lacks config keys {missing}")
    _REGISTRY[experiment.name] = experiment
    return experiment


def available() -> list[str]:
    """Names of the registered experiments, sorted."""
    return sorted(_REGISTRY)


def get(name: str | Experiment) -> Experiment:
    """The registered experiment called ``name`` (an :class:`Experiment` passes through)."""
    if isinstance(name, Experiment):
        return name
    if name not in _REGISTRY:
        raise UnknownChoiceError("experiment", name, available())
    return _REGISTRY[name]


def resolve_profile(profile: str | None = None) -> str:
    """``profile``, else ``$HTAF_PROFILE``, else ``'smoke'``; checked against :data:`PROFILES`."""
    chosen = profile or os.environ.get("HTAF_PROFILE") or "smoke"
    if chosen not in PROFILES:
        raise UnknownChoiceError("profile", chosen, list(PROFILES))
    return chosen


def resolve_config(experiment: str | Experiment, profile: str | None = None, **overrides: Any) -> Config:
    """The full config of one run: engine defaults < profile defaults < ``overrides``.

    Only known keys may be overridden, with values of the default's type: an int
    given for a float default becomes a float (``lr=1`` and ``lr=1.0`` name the
    same run) and an integral float for an int default an int; anything else,
    and values outside the allowed choices, raise :class:`ConfigError`.
    ``task=None`` resolves to the dataset's task.

    >>> config = resolve_config("mlp", "smoke", epochs=1)
    >>> config["epochs"], config["dataset"], config["task"]
    (1, 'digits', 'classification')
    """
    exp = get(experiment)
    profile = resolve_profile(profile)
    if profile not in exp.profiles:
        raise UnknownChoiceError(f"profile for experiment {exp.name!r}", profile, list(exp.profiles))
    config = {**copy.deepcopy(ENGINE_DEFAULTS), **copy.deepcopy(dict(exp.profiles[profile]))}
    for key, value in overrides.items():
        if key not in config:
            raise UnknownChoiceError(f"config key for {exp.name!r}", key, sorted(config))
        config[key] = _coerce(key, config[key], value, exp.nullable)
    _check_values(config)
    if config["task"] is None:
        config["task"] = data.describe(config["dataset"], **config["data_kwargs"]).task
    return config


def _import_experiment_modules() -> None:
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


_import_experiment_modules()
