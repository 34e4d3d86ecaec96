"""Experiment registry, run configs and the experiment contract (the engine's side of it: :mod:`htaf.engine`).

An experiment is a named model builder, one default config per profile, the sweeps of its book chapter
(:attr:`Experiment.grids`) and optional hooks. Every module in this folder is imported on first use of
the registry (:func:`get`, :func:`available`), so adding a file that calls :func:`register` is enough
to make an experiment available::

    from htaf.experiments import Experiment, register

    register(Experiment(
        name="my_exp",
        description="one line for `python -m htaf list`",
        profiles={"smoke": {"dataset": "digits", "batch_size": 64, "epochs": 2,
                            "lr": 1e-2, "seed": 0, "width": 16}},
        build_model=lambda config: ...,
        validate=lambda config: check_int(config, "width", 1),
    ))

Profiles: ``smoke`` (each run < 30 s on 2 CPU cores; what CI runs), ``cpu``
(a chapter's runs on a 2-core laptop), ``gpu`` (paper scale on one GPU). The
profile comes from an argument, else ``$HTAF_PROFILE``, else ``smoke``.

The config key that chooses the unit of a model (HTAF, a surrogate, a real activation) is ``method``
in every family, with ``surrogate_params`` for the surrogate's parameters (HTAF's ``alpha`` and ``beta`` too) and
``peak_slope`` where the family matches slopes; :func:`htaf.nn.make_unit` turns them into the unit and
:func:`check_method` checks them. :func:`resolve_config` stores ``surrogate_params`` in one canonical form
(:func:`htaf.nn.canonical_surrogate_params`: floats, the family's defaults left out), so that one computation has
one config and one hash.
"""

from __future__ import annotations

import copy
import importlib
import json
import math
import numbers
import pkgutil
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader

from htaf import data
from htaf.engine import (
    PROFILES,
    Batch,
    Config,
    ConfigError,
    UnknownChoiceError,
    default_loss,
    default_prepare_batch,
    resolve_profile,
)
from htaf.results import RENAMED_KEYS
from htaf import nn as units

__all__ = [
    "Batch",
    "Config",
    "ConfigError",
    "ENGINE_DEFAULTS",
    "PROFILES",
    "REQUIRED_KEYS",
    "Experiment",
    "UnknownChoiceError",
    "available",
    "check_choice",
    "check_int",
    "check_method",
    "check_number",
    "check_widths",
    "MAX_DEPTH",
    "MAX_WIDTH",
    "default_loss",
    "default_prepare_batch",
    "get",
    "grids",
    "register",
    "tuning_sweeps",
    "SEEDS",
    "TUNING_SEEDS",
    "resolve_config",
    "resolve_configs",
    "resolve_profile",
    "validate_configs",
]

REQUIRED_KEYS = ("dataset", "batch_size", "epochs", "lr", "seed")
ENGINE_DEFAULTS: dict[str, Any] = {
    "optimizer": "adam",  # 'adam' | 'adamw' | 'sgd'
    "weight_decay": 0.0,
    "momentum": 0.0,  # used by 'sgd' only
    "lr_schedule": "constant",  # 'constant' | 'cosine' (per epoch)
    "task": None,  # 'classification' | 'regression'; None: the dataset's task
    "subset": None,  # train on the first N training samples
    "validation": None,  # hold the last N training samples out as a validation set (val_* metrics)
    "data_kwargs": {},  # passed to htaf.data.load (generated datasets)
    "deterministic": True,
    "amp": True,  # bf16 autocast when on CUDA
}
#: seeds must fit NumPy's legacy seeding
MAX_SEED = 2**32 - 1
#: the widest layer (units, channels, concepts) a config may ask for: wider ones would exhaust memory while the model
#: is built, after the data loaded
MAX_WIDTH = 2**16
#: the deepest network (hidden layers) a config may ask for
MAX_DEPTH = 1024
#: learning rates at or above this diverge with every optimizer here (a typo such as ``lr=1e3`` fails at once)
MAX_LR = 10.0

#: config keys removed in results schema 3, when HTAF's parameters moved into ``surrogate_params`` in every
#: experiment: ``REMOVED_KEYS[key]`` says what to give instead (formatted with the value given)
REMOVED_KEYS: dict[str, str] = {
    "alpha": "HTAF's parameters are surrogate parameters: give surrogate_params={{'alpha': {value!r}}}",
    "beta": "HTAF's parameters are surrogate parameters: give surrogate_params={{'beta': {value!r}}}",
    "alpha_start": ("htaf_anneal starts at its unit's alpha: give surrogate_params={{'alpha': {value!r}}} "
                    "(and alpha_end, the final sharpness)"),
}

#: allowed values of the engine's string-valued keys
CHOICES: dict[str, tuple] = {
    "optimizer": ("adam", "adamw", "sgd"),
    "lr_schedule": ("constant", "cosine"),
    "task": (None, "classification", "regression"),
}


# --------------------------------------------------------------------------------------------
# The experiment contract
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Experiment:
    """A named experiment: how to build its model, its default config per profile, its sweeps and hooks.

    Hooks (all optional; the engine calls them in this order):

    - ``validate(config)``: check the experiment's own keys of a resolved config and raise
      :class:`ConfigError`; called before any data loads (the engine checks its own keys first).
    - ``on_epoch_start(model, epoch, config)``: e.g. annealing schedules;
      ``epoch`` counts from 0 (the history and ``on_epoch_end`` count from 1).
    - ``prepare_batch(batch, device) -> Batch``: a loader's batch on the device (default
      :func:`default_prepare_batch`: ``(x, y[, attributes])``).
    - ``loss(outputs, batch, config) -> tensor``: the training objective (default :func:`default_loss`,
      the task's cross entropy or MSE); also the reported ``train_loss`` and ``test_loss``.
    - ``train_metrics(model) -> dict``: called after each backward, before the optimizer step
      (e.g. per-layer gradient norms); values are averaged over the epoch into the history.
    - ``after_step(model, config) -> dict | None``: called after each optimizer step (e.g. clip latent
      binary weights, measure sign flips); returned values are averaged over the epoch like
      ``train_metrics``.
    - ``evaluate(model, test_loader, device, config) -> dict``: extra test metrics computed after every
      epoch (the model in eval mode is the hook's to set), stored as ``test_<key>`` in the history row
      and the final metrics.
    - ``eval_metrics(model, test_loader, device, config) -> dict``: called once at the end, merged into
      the final metrics (e.g. spike rates, switch gaps).

    ``grids[profile][sweep name]`` is a ``grid`` for :func:`htaf.sweep`: the runs of the experiment's
    book chapter (what :func:`htaf.reproduce` runs).
    """

    name: str
    description: str
    profiles: Mapping[str, Config]
    build_model: Callable[[Config], nn.Module]
    train_metrics: Callable[[nn.Module], dict[str, float]] | None = None
    eval_metrics: Callable[[nn.Module, DataLoader, torch.device, Config], dict[str, Any]] | None = None
    on_epoch_start: Callable[[nn.Module, int, Config], None] | None = None
    #: config keys that may also be set to ``None`` (for example "no time constant": integrate-and-fire)
    nullable: tuple[str, ...] = ()
    validate: Callable[[Config], None] | None = None
    prepare_batch: Callable[[Sequence[torch.Tensor], torch.device], Batch] = default_prepare_batch
    loss: Callable[[Any, Batch, Config], torch.Tensor] = default_loss
    after_step: Callable[[nn.Module, Config], dict[str, float] | None] | None = None
    evaluate: Callable[[nn.Module, DataLoader, torch.device, Config], dict[str, float]] | None = None
    grids: Mapping[str, Mapping[str, Mapping[str, list[Any]]]] = field(default_factory=dict)


_REGISTRY: dict[str, Experiment] = {}
_DISCOVERED = False


def register(experiment: Experiment) -> Experiment:
    """Add an experiment to the registry (replacing one of the same name) and return it."""
    for kind, table in (("profile", experiment.profiles), ("grid profile", experiment.grids)):
        for profile in table:
            if profile not in PROFILES:
                raise UnknownChoiceError(f"{kind} in experiment {experiment.name!r}", profile, list(PROFILES))
    for profile, config in experiment.profiles.items():
        missing = [key for key in REQUIRED_KEYS if key not in config]
        if missing:
            raise ValueError(f"experiment {experiment.name!r}, profile {profile!r} lacks config keys {missing}")
    _REGISTRY[experiment.name] = experiment
    return experiment


def _discover() -> None:
    """Import every experiment module of this package once (they register themselves)."""
    global _DISCOVERED
    if not _DISCOVERED:
        _DISCOVERED = True
        for module in pkgutil.iter_modules(__path__):
            if not module.name.startswith("_"):
                importlib.import_module(f"{__name__}.{module.name}")


def available() -> list[str]:
    """Names of the registered experiments, sorted."""
    _discover()
    return sorted(_REGISTRY)


def get(name: str | Experiment) -> Experiment:
    """The registered experiment called ``name`` (an :class:`Experiment` passes through)."""
    if isinstance(name, Experiment):
        return name
    _discover()
    if name not in _REGISTRY:
        raise UnknownChoiceError("experiment", name, available())
    return _REGISTRY[name]


def grids(experiment: str | Experiment, profile: str | None = None) -> dict[str, dict[str, list[Any]]]:
    """The sweeps of an experiment's chapter under ``profile``: ``{sweep name: grid}`` (empty if none).

    >>> sorted(grids("sensitivity_bnn", "smoke"))
    ['map', 'map_selection']
    """
    return {name: dict(grid) for name, grid in get(experiment).grids.get(resolve_profile(profile), {}).items()}


#: the test seeds of every comparison a chapter states: five, what a paired comparison needs (:data:`htaf.stats.MIN_SEEDS`)
SEEDS = [0, 1, 2, 3, 4]
#: the seeds of every chapter's tuning runs, disjoint from :data:`SEEDS`, so that no tuned run compared on the test set
#: is one that validation picked
TUNING_SEEDS = [10, 11]


def tuning_sweeps(network: dict[str, list[Any]], methods: Sequence[str], grid: dict[str, list[Any]], validation: int,
                  tuning_seeds: Sequence[int], seeds: Sequence[int], tuned: dict[str, dict[str, Any]],
                  own_slope: dict[str, Any] | None = None) -> dict[str, dict[str, list[Any]]]:
    """A chapter's tuned comparison as sweeps: how every family tunes its methods before comparing them on test data.

    ``tuning``: every method not in ``own_slope`` at each peak slope and learning rate of ``grid``
    (``{"peak_slope": [...], "lr": [...]}``), with ``tuning_seeds``, trained without the last ``validation`` training
    samples and scored on them (``val_accuracy``); ``tuning_<method>``: each method of ``own_slope`` (whose slope is
    its own, ``{method: peak_slope}``, e.g. STE's 1/2) at each learning rate only; ``tuned_<method>``: each method at
    its ``tuned`` setting (``{"peak_slope": ..., "lr": ...}``, chosen on that validation accuracy by
    :func:`htaf.findings.tuned_settings`), with ``seeds`` and no validation set. ``network`` fixes the rest (dataset,
    architecture). The tuning seeds must be disjoint from the test seeds, so that no test run is one validation
    picked.

    >>> sweeps = tuning_sweeps({"dataset": ["digits"]}, ["htaf", "ste"], {"peak_slope": [0.5, 1.0], "lr": [1e-3]}, 288,
    ...                        [10, 11], [0, 1], {"htaf": {"peak_slope": 1.0, "lr": 1e-3},
    ...                                           "ste": {"peak_slope": 0.5, "lr": 1e-3}}, own_slope={"ste": 0.5})
    >>> sorted(sweeps), sweeps["tuning"]["method"], sweeps["tuning_ste"]["peak_slope"]
    (['tuned_htaf', 'tuned_ste', 'tuning', 'tuning_ste'], ['htaf'], [0.5])
    """
    own_slope = own_slope or {}
    if set(tuning_seeds) & set(seeds):
        raise ValueError(f"tuning seeds {sorted(tuning_seeds)} overlap the test seeds {sorted(seeds)}")
    missing = [m for m in methods if m not in tuned]
    if missing:  # every method is compared at its tuned setting (a smaller profile's grid may not contain it)
        raise ValueError(f"no tuned setting for {', '.join(map(repr, missing))}: add its validation choice "
                         f"(htaf.findings.tuning) to the chapter's TUNED")
    common = {**network, "seed": list(tuning_seeds), "validation": [validation], "lr": list(grid["lr"])}
    sweeps = {"tuning": {**common, "method": [m for m in methods if m not in own_slope],
                         "peak_slope": list(grid["peak_slope"])}}
    sweeps.update({f"tuning_{m}": {**common, "method": [m], "peak_slope": [slope]} for m, slope in own_slope.items()})
    sweeps.update({f"tuned_{m}": {**network, "seed": list(seeds), "method": [m], "peak_slope": [tuned[m]["peak_slope"]],
                                  "lr": [tuned[m]["lr"]]} for m in methods})
    return sweeps


# --------------------------------------------------------------------------------------------
# Checking configs
# --------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """NumPy (or other) scalars as the Python ``bool``, ``int`` or ``float`` they stand for, inside lists and dicts
    too; anything else as it is."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if type(value).__name__ in ("bool_", "bool"):  # numpy.bool_
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return value


def _coerce(key: str, default: Any, value: Any, nullable: tuple[str, ...] = ()) -> Any:
    """``value`` converted to the type of the profile's ``default`` (int <-> integral float), else ConfigError.

    ``None`` is accepted where the default is ``None``, for engine keys whose default is ``None``, and for
    the experiment's ``nullable`` keys.
    """
    if default is None or (value is None and (key in nullable or ENGINE_DEFAULTS.get(key, ...) is None)):
        return value
    value = _plain(value)
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


def _non_finite(value: Any, path: str) -> str | None:
    """The path of the first NaN or infinite float inside ``value``, else ``None``."""
    if isinstance(value, float) and not math.isfinite(value):
        return path
    items: Iterable = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if type(item) in _SCALARS and (type(item) is not float or math.isfinite(item)):
            continue  # the common case, without a call
        found = _non_finite(item, f"{path}[{key!r}]")
        if found:
            return found
    return None


_SCALARS = frozenset({str, int, float, bool, type(None)})


def check_int(config: Config, key: str, minimum: int, maximum: int | None = None, nullable: bool = False) -> None:
    """``config[key]`` is an integer in ``[minimum, maximum]`` (or ``None`` when ``nullable``)."""
    value = config[key]
    if value is None and nullable:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (maximum is not None and value > maximum):
        bound = f"at least {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise ConfigError(f"config key {key!r} must be an integer {bound}, got {value!r}")


def check_number(config: Config, key: str, minimum: float = 0.0, strict: bool = True, nullable: bool = False,
                 below: float | None = None) -> None:
    """``config[key]`` is a finite number ``> minimum`` (``>=`` unless ``strict``), ``< below`` if given."""
    value = config[key]
    if value is None and nullable:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > minimum if strict else value >= minimum) and (below is None or value < below)
    if not ok:
        bound = f"{'greater than' if strict else 'at least'} {minimum:g}" + (f" and below {below:g}" if below else "")
        raise ConfigError(f"config key {key!r} must be a finite number {bound}, got {value!r}")


def check_choice(config: Config, key: str, choices: Sequence[Any], kind: str | None = None) -> None:
    """``config[key]`` is one of ``choices``, else :class:`UnknownChoiceError` ("unknown <kind> ...; valid
    choices: ...", ``kind`` defaulting to the key)."""
    if config[key] not in choices:
        raise UnknownChoiceError(kind or key, config[key], [str(c) for c in choices])


def check_method(config: Config, model: str = "threshold", kind: str = "method") -> None:
    """``config["method"]`` is a unit a ``model`` network accepts (:func:`htaf.nn.unit_methods`; ``"threshold"``,
    ``"spiking"`` or ``"sign"``), else :class:`UnknownChoiceError` listing them; and the unit builds with the
    config's ``surrogate_params`` and ``peak_slope`` (:func:`htaf.nn.make_unit`), else :class:`ConfigError`.
    Every experiment's ``validate`` checks its ``method`` here."""
    valid = units.unit_methods(model=model)
    if config["method"] not in valid:
        raise UnknownChoiceError(kind, config["method"], valid)
    try:
        unit = units.make_unit(config["method"], peak_slope=config.get("peak_slope"),
                               surrogate_params=config.get("surrogate_params"))
        if hasattr(unit, "surrogate"):  # finite in float32, the dtype of training (autocast computes units in it)
            unit.surrogate.check_dtype(torch.float32)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"unit of method {config['method']!r}: {error}") from None


def _canonical_surrogate_params(config: Config) -> None:
    """Store ``surrogate_params`` in its canonical form (:func:`htaf.nn.canonical_surrogate_params`)."""
    if isinstance(config.get("surrogate_params"), dict) and config.get("method") in units.unit_registry():
        try:
            config["surrogate_params"] = units.canonical_surrogate_params(config["method"], config["surrogate_params"])
        except ValueError as error:
            raise ConfigError(f"config key 'surrogate_params': {error}") from None


def check_widths(config: Config, key: str) -> None:
    """``config[key]`` lists one or more layer widths, each an integer between 1 and :data:`MAX_WIDTH`."""
    value = config[key]
    if not isinstance(value, list) or not value or any(
            isinstance(w, bool) or not isinstance(w, int) or not 1 <= w <= MAX_WIDTH for w in value):
        raise ConfigError(f"config key {key!r} must list one or more layer widths (integers between 1 and "
                          f"{MAX_WIDTH}), got {value!r}")


def _check_engine_keys(config: Config) -> None:
    found = _non_finite(config, "config")
    if found:
        raise ConfigError(f"{found} is not a finite number; NaN and infinity are not allowed in a config")
    for key, allowed in CHOICES.items():
        check_choice(config, key, allowed)
    if config["dataset"] not in data.available():
        raise UnknownChoiceError("dataset", config["dataset"], data.available())
    for key in ("epochs", "batch_size"):
        if config[key] < 1:
            raise ConfigError(f"config key {key!r} must be at least 1, got {config[key]!r}")
    if not config["lr"] > 0:
        raise ConfigError(f"config key 'lr' must be greater than 0, got {config['lr']!r}")
    check_number(config, "lr", below=MAX_LR)
    check_number(config, "weight_decay", strict=False)
    check_number(config, "momentum", strict=False, below=1.0)
    check_int(config, "seed", 0, MAX_SEED)
    check_int(config, "subset", 1, nullable=True)
    check_int(config, "validation", 1, nullable=True)
    if not isinstance(config["data_kwargs"], dict):
        raise ConfigError(f"config key 'data_kwargs' must be a dict, got {config['data_kwargs']!r}")
    try:
        data.check_kwargs(config["dataset"], config["data_kwargs"])
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _renamed(name: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """``overrides`` with the keys renamed in schema 2 replaced by their new names (with a FutureWarning)."""
    renamed = RENAMED_KEYS.get(name, {})
    result = {}
    for key, value in overrides.items():
        if key in renamed:
            warnings.warn(f"config key {key!r} of {name!r} is now called {renamed[key]!r}; the old name will go",
                          FutureWarning, stacklevel=5)
            if renamed[key] in overrides:
                raise ConfigError(f"{key!r} and {renamed[key]!r} name the same key; give {renamed[key]!r} only")
            key = renamed[key]
        result[key] = value
    return result


def resolve_config(experiment: str | Experiment, profile: str | None = None, **overrides: Any) -> Config:
    """The full, checked config of one run: engine defaults < profile defaults < ``overrides``.

    Only known keys may be overridden, with values of the default's type: an int
    given for a float default becomes a float (``lr=1`` and ``lr=1.0`` name the
    same run) and an integral float for an int default an int. Every key is then
    checked, the engine's and the experiment's (its ``validate`` hook), before any
    data is loaded; anything wrong raises :class:`ConfigError`. ``surrogate_params``
    is stored in its canonical form (floats, without the family's defaults), and a
    key removed in schema 3 (``alpha``, ``beta``, ``alpha_start``) raises a
    :class:`ConfigError` that says what to give instead.
    ``task=None`` resolves to the dataset's task.

    >>> config = resolve_config("mlp", "smoke", epochs=1)
    >>> config["epochs"], config["dataset"], config["task"]
    (1, 'digits', 'classification')
    """
    exp = get(experiment)
    config = _merged(exp, profile, overrides)
    _validate(exp, config)
    return config


def _copied(value: Any) -> Any:
    """A deep copy of plain config data (dicts, lists, tuples of scalars), faster than ``copy.deepcopy``."""
    if isinstance(value, dict):
        return {key: item if type(item) in _SCALARS else _copied(item) for key, item in value.items()}
    if isinstance(value, list):
        return [item if type(item) in _SCALARS else _copied(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_copied(item) for item in value)
    if value is None or isinstance(value, (str, int, float)):
        return value
    return copy.deepcopy(value)


def _merged(exp: Experiment, profile: str | None, overrides: dict[str, Any]) -> Config:
    """:func:`resolve_config` up to the experiment's ``validate`` hook: merged, coerced, engine keys checked."""
    profile = resolve_profile(profile)
    if profile not in exp.profiles:
        raise UnknownChoiceError(f"profile for experiment {exp.name!r}", profile, list(exp.profiles))
    config = {**_copied(ENGINE_DEFAULTS), **_copied(dict(exp.profiles[profile]))}
    for key, value in _renamed(exp.name, overrides).items():
        if key not in config:
            if key in REMOVED_KEYS:
                raise ConfigError(f"config key {key!r} of {exp.name!r} is gone: "
                                  + REMOVED_KEYS[key].format(value=value))
            raise UnknownChoiceError(f"config key for {exp.name!r}", key, sorted(config))
        config[key] = _coerce(key, config[key], value, exp.nullable)
    _check_engine_keys(config)
    _canonical_surrogate_params(config)
    task = data.describe(config["dataset"], **config["data_kwargs"]).task
    if config["task"] is None:
        config["task"] = task
    elif config["task"] != task:
        raise ConfigError(f"task {config['task']!r} does not match the dataset {config['dataset']!r}, a {task} "
                          "dataset; leave task unset (the dataset's task) or choose a dataset of that task")
    return config


def _validate(exp: Experiment, config: Config) -> None:
    """Run ``exp``'s ``validate`` hook on a merged config; its errors become :class:`ConfigError`."""
    if exp.validate is not None:
        try:
            exp.validate(config)
        except ConfigError:
            raise
        except (ValueError, TypeError) as error:  # a model builder's own check
            raise ConfigError(f"invalid config for {exp.name!r}: {error}") from None


def resolve_configs(experiment: str | Experiment, profile: str | None, overrides: Iterable[dict[str, Any]],
                    validate: bool = True) -> list[Config]:
    """:func:`resolve_config` of each of ``overrides``, for a whole sweep at once.

    The same configs, checked the same way (see :func:`validate_configs`); with ``validate=False`` the
    experiment's ``validate`` hook is left out (the engine's keys are still checked), for callers that only
    need the configs' hashes or check the configs later.
    """
    exp = get(experiment)
    configs = [_merged(exp, profile, given) for given in overrides]
    if validate:
        validate_configs(exp, configs)
    return configs


def validate_configs(experiment: str | Experiment, configs: Iterable[Config]) -> None:
    """Run the experiment's ``validate`` hook on resolved ``configs``, once per distinct config up to its ``seed``:
    a hook checks the model's keys and the engine every seed, so a chapter's seeds share one check."""
    exp = get(experiment)
    checked: set[str] = set()
    for config in configs:
        key = json.dumps({k: v for k, v in config.items() if k != "seed"}, sort_keys=True, default=repr)
        if key not in checked:
            _validate(exp, config)
            checked.add(key)
