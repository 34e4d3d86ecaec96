r"""``dhn`` and ``dhn_regression``: deep Heaviside networks (:mod:`htaf.models.dhn`) trained with HTAF or a surrogate.

``dhn`` classifies images (``digits``, ``mnist``, ``fashion_mnist``); ``dhn_regression`` fits a smooth
function on :math:`[0,1]^d` from noisy samples (``regression_product`` by default) and is scored on
the noiseless target, so its test MSE estimates the excess risk :math:`E(\hat f(X) - f(X))^2`.

Config keys (besides the engine's): ``width``, ``depth``, ``variant`` (``plain``/``skip``/``linear``),
``linear_share`` (``linear`` variant only), ``method`` (``htaf``, ``htaf_anneal``, ``htaf_hard``, a
surrogate name such as ``ste``, ``rectangle``, ``sigmoid``, ``atan``, or ``<surrogate>_smooth``; any
binary unit of :func:`htaf.nn.unit_methods`), ``alpha`` and ``beta`` (HTAF;
for ``htaf_anneal`` ``alpha`` is the starting sharpness), ``alpha_end`` (``htaf_anneal``'s final
sharpness) and ``surrogate_params`` (parameters of a surrogate method, e.g. ``{"alpha": 4.0}``).

Metrics added at the end of training (:func:`eval_metrics`), all computed on the test set:

* :func:`htaf.metrics.switch_metrics`: classification ``accuracy_step`` (exact step at inference, the
  DHN's accuracy; equals the engine's ``test_accuracy``), ``accuracy_smooth`` (same weights, every smooth
  unit smooth; HTAF and ``*_smooth`` methods only) and ``switch_gap = accuracy_smooth - accuracy_step``;
  regression ``mse_step``, ``mse_smooth`` and ``switch_gap = mse_step - mse_smooth`` (both gaps are
  positive when switching to the exact step hurts);
* firing statistics of the threshold units under the exact step (:func:`htaf.metrics.firing_summary`):
  ``dead_share`` (never fire on the test set), ``always_on_share``, ``mean_firing_rate`` and per-layer lists.

:data:`GRIDS` holds the sweeps the book chapter runs per profile: ``GRIDS[experiment][profile][sweep]``.

>>> from htaf.experiments import get, resolve_config
>>> config = resolve_config("dhn", "smoke", depth=3, variant="linear")
>>> model = get("dhn").build_model(config)
>>> model.binary_units, model.linear_units
([24, 24, 24], [8, 8, 8])
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from htaf import data, metrics
from htaf.experiments import (
    Config,
    ConfigError,
    Experiment,
    UnknownChoiceError,
    check_choice,
    check_int,
    check_number,
    register,
)
from htaf.models.dhn import DHN, HTAF_METHODS, VARIANTS, anneal_alpha, n_linear_units, set_alpha
from htaf.nn import HTAF, make_unit, unit_methods

MODEL_DEFAULTS: dict[str, Any] = {
    "width": 64,
    "depth": 2,
    "variant": "plain",
    "linear_share": 0.25,
    "method": "htaf",
    "alpha": 4.0,
    "beta": 1.0,
    "alpha_end": 32.0,
    "surrogate_params": {},
}


def build_model(config: Config) -> DHN:
    """The DHN described by ``config`` (input and output sizes from the dataset)."""
    info = data.describe(config["dataset"], **config["data_kwargs"])
    return DHN(
        in_features=math.prod(info.input_shape),
        out_features=info.num_outputs,
        width=config["width"],
        depth=config["depth"],
        variant=config["variant"],
        method=config["method"],
        linear_share=config["linear_share"],
        alpha=config["alpha"],
        beta=config["beta"],
        surrogate_params=config["surrogate_params"],
    )


def on_epoch_start(model: nn.Module, epoch: int, config: Config) -> None:
    """``htaf_anneal``: set HTAF's sharpness to :func:`htaf.models.dhn.anneal_alpha` (``alpha`` -> ``alpha_end``)."""
    if config["method"] == "htaf_anneal":
        set_alpha(model, anneal_alpha(epoch, config["epochs"], config["alpha"], config["alpha_end"]))


def validate(config: Config) -> None:
    """Every model key of a DHN config (called before any data loads)."""
    check_int(config, "width", 1)
    check_int(config, "depth", 1)
    check_choice(config, "variant", VARIANTS, "DHN variant")
    if config["variant"] == "linear":
        try:
            n_linear_units(config["width"], config["linear_share"])
        except ValueError as error:
            raise ConfigError(str(error)) from None
    methods = unit_methods(binary=True)
    if config["method"] not in methods:
        raise UnknownChoiceError("DHN method", config["method"], methods)
    for key in ("alpha", "beta", "alpha_end"):
        check_number(config, key)
    try:
        make_unit(config["method"], alpha=config["alpha"], beta=config["beta"],
                  surrogate_params=config["surrogate_params"])
    except (TypeError, ValueError) as error:
        raise ConfigError(f"surrogate_params for method {config['method']!r}: {error}") from None


def eval_metrics(model: nn.Module, loader: DataLoader, device: torch.device, config: Config) -> dict[str, Any]:
    """End-of-training metrics: :func:`htaf.metrics.switch_metrics` and the firing statistics of the threshold units."""
    on_epoch_start(model, config["epochs"] - 1, config)  # the last epoch's alpha, also for a run resumed at its end
    found: dict[str, Any] = metrics.switch_metrics(model, loader, device, config)
    found.update(metrics.firing_summary(metrics.firing_rates(model, loader, device)))
    if config["method"] in HTAF_METHODS:
        found["final_alpha"] = next(m.alpha for m in model.modules() if isinstance(m, HTAF))
    return found


# --------------------------------------------------------------------------------------------
# Profiles
# --------------------------------------------------------------------------------------------

CLASSIFICATION_PROFILES: dict[str, Config] = {
    # CI: sklearn digits (1440 train / 357 test), a few seconds per run
    "smoke": {"dataset": "digits", "batch_size": 64, "epochs": 4, "lr": 3e-3, "seed": 0,
              **MODEL_DEFAULTS, "width": 32},
    # 2-core laptop: the first 10k training images, full 10k test set
    "cpu": {"dataset": "mnist", "subset": 10_000, "batch_size": 128, "epochs": 4, "lr": 1e-3, "seed": 0,
            **MODEL_DEFAULTS},
    # one GPU: all 60k training images, wider, longer, cosine schedule, float32 (no autocast: the
    # exact step of a bf16 pre-activation can flip units near threshold)
    "gpu": {"dataset": "mnist", "batch_size": 256, "epochs": 30, "lr": 1e-3, "seed": 0,
            "lr_schedule": "cosine", "amp": False, **MODEL_DEFAULTS, "width": 256},
}

REGRESSION_PROFILES: dict[str, Config] = {
    "smoke": {"dataset": "regression_product", "batch_size": 64, "epochs": 10, "lr": 3e-3, "seed": 0,
              "data_kwargs": {"d": 2, "n_train": 500, "n_test": 500, "noise": 0.1},
              **MODEL_DEFAULTS, "width": 16},
    "cpu": {"dataset": "regression_product", "batch_size": 64, "epochs": 20, "lr": 3e-3, "seed": 0,
            "data_kwargs": {"d": 2, "n_train": 2000, "n_test": 2000, "noise": 0.1},
            **MODEL_DEFAULTS},
    "gpu": {"dataset": "regression_product", "batch_size": 128, "epochs": 100, "lr": 1e-3, "seed": 0,
            "lr_schedule": "cosine", "amp": False,
            "data_kwargs": {"d": 2, "n_train": 20000, "n_test": 10000, "noise": 0.1},
            **MODEL_DEFAULTS},
}

#: The chapter's sweeps per profile: ``GRIDS[experiment][profile][sweep name]`` is a ``grid`` for
#: :func:`htaf.train.sweep`. Every key is a config key.
GRIDS: dict[str, dict[str, dict[str, dict[str, list[Any]]]]] = {
    "dhn": {
        "smoke": {
            "depth": {"dataset": ["digits"], "method": ["htaf", "htaf_hard", "ste"],
                      "variant": ["plain", "skip", "linear"], "depth": [1, 4]},
        },
        "cpu": {
            "depth": {"dataset": ["mnist", "fashion_mnist"],
                      "method": ["htaf", "htaf_anneal", "htaf_hard", "ste", "sigmoid", "atan"],
                      "variant": ["plain", "skip", "linear"], "depth": [1, 2, 4, 8, 16]},
            "seeds": {"dataset": ["mnist"], "method": ["htaf", "htaf_hard", "ste"],
                      "variant": ["plain", "skip", "linear"], "depth": [2, 8], "seed": [1]},
            # does a plain DHN of depth 16 train with almost 4x the epochs?
            "long": {"dataset": ["mnist"], "method": ["htaf", "htaf_hard", "ste"], "variant": ["plain"],
                     "depth": [16], "epochs": [15]},
        },
        "gpu": {
            "depth": {"dataset": ["mnist", "fashion_mnist"],
                      "method": ["htaf", "htaf_anneal", "htaf_hard", "ste", "rectangle", "sigmoid", "atan"],
                      "variant": ["plain", "skip", "linear"], "depth": [1, 2, 4, 8, 16, 32],
                      "seed": [0, 1, 2]},
        },
    },
    "dhn_regression": {
        "smoke": {
            "width": {"method": ["htaf", "htaf_hard"], "variant": ["plain", "skip", "linear"],
                      "width": [8, 16], "depth": [2]},
            "depth": {"method": ["htaf", "htaf_hard"], "variant": ["plain", "skip", "linear"],
                      "width": [16], "depth": [1, 2]},
        },
        "cpu": {
            "width": {"method": ["htaf", "htaf_anneal", "htaf_hard", "ste"], "variant": ["plain", "skip", "linear"],
                      "width": [8, 32, 128], "depth": [2]},
            "depth": {"method": ["htaf", "htaf_anneal", "htaf_hard", "ste"], "variant": ["plain", "skip", "linear"],
                      "width": [32], "depth": [1, 2, 4, 8]},
        },
        "gpu": {
            "width": {"method": ["htaf", "htaf_anneal", "htaf_hard", "ste", "sigmoid", "atan"],
                      "variant": ["plain", "skip", "linear"],
                      "width": [8, 16, 32, 64, 128, 256, 512], "depth": [2], "seed": [0, 1, 2]},
            "depth": {"method": ["htaf", "htaf_anneal", "htaf_hard", "ste", "sigmoid", "atan"],
                      "variant": ["plain", "skip", "linear"],
                      "width": [64], "depth": [1, 2, 4, 8, 16], "seed": [0, 1, 2]},
        },
    },
}

EXPERIMENT = register(
    Experiment(
        name="dhn",
        description="deep Heaviside network classifier (plain/skip/linear) trained with HTAF or a surrogate",
        profiles=CLASSIFICATION_PROFILES,
        build_model=build_model,
        eval_metrics=eval_metrics,
        on_epoch_start=on_epoch_start,
        validate=validate,
        grids=GRIDS["dhn"],
    )
)

REGRESSION_EXPERIMENT = register(
    Experiment(
        name="dhn_regression",
        description="deep Heaviside network regression of a smooth function on [0,1]^d (excess risk)",
        profiles=REGRESSION_PROFILES,
        build_model=build_model,
        eval_metrics=eval_metrics,
        on_epoch_start=on_epoch_start,
        validate=validate,
        grids=GRIDS["dhn_regression"],
    )
)
