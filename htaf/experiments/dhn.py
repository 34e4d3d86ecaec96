r"""``dhn`` and ``dhn_regression``: deep Heaviside networks (:mod:`htaf.models.dhn`) trained with HTAF or a surrogate.

``dhn`` classifies images (``digits``, ``mnist``, ``fashion_mnist``); ``dhn_regression`` fits a smooth
function on :math:`[0,1]^d` from noisy samples (``regression_product`` by default) and is scored on
the noiseless target, so its test MSE estimates the excess risk :math:`E(\hat f(X) - f(X))^2`.

Config keys (besides the engine's): ``width``, ``depth``, ``variant`` (``plain``/``skip``/``linear``),
``linear_share`` (``linear`` variant only), ``method`` (``htaf``, ``htaf_anneal``, ``htaf_hard``, a
surrogate name such as ``ste``, ``rectangle``, ``sigmoid``, ``atan``, or ``<surrogate>_smooth``; any
binary unit of :func:`htaf.nn.unit_methods`; or a real activation such as ``relu``, the non-binary
reference network of the same shape), ``surrogate_params`` (parameters of the unit's surrogate family, HTAF's
too: ``{"alpha": 8.0, "beta": 0.5}``; for ``htaf_anneal`` its ``alpha`` is the starting sharpness; stored
without the family's defaults), ``alpha_end`` (``htaf_anneal``'s final sharpness, :func:`htaf.nn.anneal`) and
``peak_slope``: rescale the unit's derivative so that its value at the threshold is this
(:func:`htaf.nn.make_unit`; for the HTAF methods ``beta`` is rescaled and ``alpha`` kept, so
``htaf_anneal`` starts at this slope; ``None``: the parameters as given). BinaryNet's STE has slope 1/2 and
no parameter, so ``peak_slope=0.5`` (the ``cpu`` profile) matches every method to it.

Per epoch, ``grad_norm_fc<k>`` is the L2 norm of the gradient of the k-th linear layer's weight, averaged over
the epoch's steps (:func:`htaf.metrics.gradient_norms`): ``fc1`` .. ``fc<depth>`` are the hidden layers, then
the skip weights of the ``skip`` variant (depth > 1), and the read-out last.

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
    MAX_DEPTH,
    MAX_WIDTH,
    check_choice,
    check_int,
    check_method,
    check_number,
    register,
    tuning_sweeps,
    SEEDS,
    TUNING_SEEDS,
)
from htaf.models.dhn import DHN, VARIANTS, n_linear_units
from htaf.nn import ANNEAL_ALPHA_END, HTAF, anneal

MODEL_DEFAULTS: dict[str, Any] = {
    "width": 64,
    "depth": 2,
    "variant": "plain",
    "linear_share": 0.25,
    "method": "htaf",
    "alpha_end": ANNEAL_ALPHA_END,
    "surrogate_params": {},
    "peak_slope": None,
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
        surrogate_params=config["surrogate_params"],
        peak_slope=config["peak_slope"],
    )


def on_epoch_start(model: nn.Module, epoch: int, config: Config) -> None:
    """``htaf_anneal``: set HTAF's sharpness by :func:`htaf.nn.anneal` (the unit's ``alpha`` -> ``alpha_end``)."""
    anneal(model, epoch, config)


def validate(config: Config) -> None:
    """Every model key of a DHN config (called before any data loads)."""
    check_int(config, "width", 1, MAX_WIDTH)
    check_int(config, "depth", 1, MAX_DEPTH)
    check_choice(config, "variant", VARIANTS, "DHN variant")
    if config["variant"] == "linear":
        try:
            n_linear_units(config["width"], config["linear_share"])
        except ValueError as error:
            raise ConfigError(str(error)) from None
    check_number(config, "alpha_end")
    check_number(config, "peak_slope", nullable=True)
    check_method(config, kind="DHN method")


def eval_metrics(model: nn.Module, loader: DataLoader, device: torch.device, config: Config) -> dict[str, Any]:
    """End-of-training metrics: :func:`htaf.metrics.switch_metrics` and the firing statistics of the threshold units."""
    on_epoch_start(model, config["epochs"] - 1, config)  # the last epoch's alpha, also for a run resumed at its end
    found: dict[str, Any] = metrics.switch_metrics(model, loader, device, config)
    if metrics.binary_units(model):  # a real-activation reference network has none
        found.update(metrics.firing_summary(metrics.firing_rates(model, loader, device)))
    units = [m for m in model.modules() if isinstance(m, HTAF)]
    if units:
        found["final_alpha"] = units[0].alpha
    return found


# --------------------------------------------------------------------------------------------
# Profiles
# --------------------------------------------------------------------------------------------

CLASSIFICATION_PROFILES: dict[str, Config] = {
    # CI: sklearn digits (1440 train / 357 test), a few seconds per run
    "smoke": {"dataset": "digits", "subset": 512, "batch_size": 64, "epochs": 2, "lr": 3e-3, "seed": 0,
              **MODEL_DEFAULTS, "width": 32},
    # 2-core laptop: the first 5k training images (10k before three seeds per cell), full 10k test set; every
    # unit at STE's peak slope 1/2
    "cpu": {"dataset": "mnist", "subset": 5_000, "batch_size": 128, "epochs": 4, "lr": 1e-3, "seed": 0,
            **MODEL_DEFAULTS, "peak_slope": 0.5},
    # one GPU: all 60k training images, wider, longer, cosine schedule, float32 (no autocast: the
    # exact step of a bf16 pre-activation can flip units near threshold)
    "gpu": {"dataset": "mnist", "batch_size": 256, "epochs": 30, "lr": 1e-3, "seed": 0,
            "lr_schedule": "cosine", "amp": False, **MODEL_DEFAULTS, "width": 256},
}

REGRESSION_PROFILES: dict[str, Config] = {
    "smoke": {"dataset": "regression_product", "batch_size": 64, "epochs": 3, "lr": 3e-3, "seed": 0,
              "data_kwargs": {"d": 2, "n_train": 500, "n_test": 500, "noise": 0.1},
              **MODEL_DEFAULTS, "width": 16},
    "cpu": {"dataset": "regression_product", "batch_size": 64, "epochs": 20, "lr": 3e-3, "seed": 0,
            "data_kwargs": {"d": 2, "n_train": 2000, "n_test": 2000, "noise": 0.1},
            **MODEL_DEFAULTS, "peak_slope": 0.5},
    "gpu": {"dataset": "regression_product", "batch_size": 128, "epochs": 100, "lr": 1e-3, "seed": 0,
            "lr_schedule": "cosine", "amp": False,
            "data_kwargs": {"d": 2, "n_train": 20000, "n_test": 10000, "noise": 0.1},
            **MODEL_DEFAULTS},
}

#: the binary training methods of the chapter's classification sweeps (``cpu``) and of its regression sweeps
METHODS = ["htaf", "htaf_anneal", "htaf_hard", "ste", "atan"]
REGRESSION_METHODS = ["htaf", "htaf_anneal", "htaf_hard", "ste"]
#: the real-valued reference network of the same shape
REFERENCE = "relu"


def _depth_sweeps(depths: list[int], methods: list[str], **fixed: list[Any]) -> dict[str, dict[str, list[Any]]]:
    """Plain and linear DHNs at every depth, skip DHNs from depth 2 (at depth 1 a skip DHN *is* the plain one, so
    it is trained and counted once), and the ReLU reference network (plain) at every depth."""
    return {
        "depth": {**fixed, "method": methods, "variant": ["plain", "linear"], "depth": depths},
        "skip": {**fixed, "method": methods, "variant": ["skip"], "depth": [d for d in depths if d > 1]},
        "reference": {**fixed, "method": [REFERENCE], "variant": ["plain"], "depth": depths},
    }


#: the tuned comparison, on the chapter's default classification network (plain, depth 2, width 64) and Fashion-MNIST:
#: every method at each peak slope and learning rate of ``TUNING[profile]`` (STE, whose slope is fixed at 1/2, at each
#: learning rate), two seeds, trained without the last ``VALIDATION[profile]`` training images and scored on them by
#: the exact step (sweeps ``tuning`` and ``tuning_ste``); each method's best setting on that validation accuracy
#: (:data:`TUNED`) is then trained with :data:`SEEDS` on the chapter's training images and compared on the test set
#: (sweeps ``tuned_<method>``). The ``cpu`` runs train on the first 5000 training images, the validation images are
#: the last 10,000: the tuning and the final runs see the same training images.
TUNING = {"smoke": {"peak_slope": [0.5, 1.0], "lr": [3e-3]},
          "cpu": {"peak_slope": [0.5, 1.0, 2.0, 4.0], "lr": [3e-4, 1e-3, 3e-3, 1e-2]}}
VALIDATION = {"smoke": 288, "cpu": 10_000}


#: each method's tuned setting: the peak slope and learning rate of best mean validation accuracy in the ``cpu``
#: tuning sweeps (:func:`htaf.findings.dhn_tuning`; a test and the chapter assert that this is still the choice)
TUNED: dict[str, dict[str, float]] = {
    "htaf": {"peak_slope": 0.5, "lr": 3e-3},
    "htaf_anneal": {"peak_slope": 0.5, "lr": 1e-3},
    "htaf_hard": {"peak_slope": 0.5, "lr": 3e-3},
    "ste": {"peak_slope": 0.5, "lr": 3e-3},
    "atan": {"peak_slope": 1.0, "lr": 1e-3},
}


def _tuning(profile: str, methods: list[str], dataset: str, seeds: list[int]) -> dict[str, dict[str, list[Any]]]:
    """The tuning sweeps (``tuning``: every method but STE at every peak slope; ``tuning_ste``) and the tuned ones
    (``tuned_<method>``: each method at its :data:`TUNED` setting with ``seeds``, without a validation set):
    :func:`htaf.experiments.tuning_sweeps`."""
    network = {"dataset": [dataset], "variant": ["plain"], "depth": [MODEL_DEFAULTS["depth"]]}
    return tuning_sweeps(network, methods, TUNING[profile], VALIDATION[profile], TUNING_SEEDS, seeds, TUNED,
                         own_slope={"ste": 0.5})


#: The chapter's sweeps per profile: ``GRIDS[experiment][profile][sweep name]`` is a ``grid`` for
#: :func:`htaf.train.sweep`. Every key is a config key.
GRIDS: dict[str, dict[str, dict[str, dict[str, list[Any]]]]] = {
    "dhn": {
        "smoke": {**_depth_sweeps([1, 4], ["htaf", "htaf_hard", "ste"], dataset=["digits"], seed=[0, 1]),
                  **_tuning("smoke", ["htaf", "htaf_hard", "ste"], "digits", [0, 1])},
        # 2 datasets x SEEDS x (5 methods x 14 networks + 5 reference networks); the count: htaf.reproduction.run_counts
        "cpu": {**_depth_sweeps([1, 2, 4, 8, 16], METHODS, dataset=["mnist", "fashion_mnist"], seed=SEEDS),
                **_tuning("cpu", METHODS, "fashion_mnist", SEEDS)},
        "gpu": _depth_sweeps([1, 2, 4, 8, 16, 32], ["htaf", "htaf_anneal", "htaf_hard", "ste", "rectangle", "sigmoid", "atan"],
                             dataset=["mnist", "fashion_mnist"], seed=SEEDS),
    },
    "dhn_regression": {
        "smoke": {
            "width": {"method": ["htaf", "htaf_hard"], "variant": ["plain", "skip", "linear"],
                      "width": [8, 16], "depth": [2], "seed": [0, 1]},
            **_depth_sweeps([1, 2], ["htaf", "htaf_hard"], width=[16], seed=[0, 1]),
            "width_reference": {"method": [REFERENCE], "variant": ["plain"], "width": [8, 16], "depth": [2],
                                "seed": [0, 1]},
        },
        # SEEDS x (4 methods x 17 distinct (variant, width, depth) networks + 6 reference networks)
        "cpu": {
            "width": {"method": REGRESSION_METHODS, "variant": ["plain", "skip", "linear"],
                      "width": [8, 32, 128], "depth": [2], "seed": SEEDS},
            **_depth_sweeps([1, 2, 4, 8], REGRESSION_METHODS, width=[32], seed=SEEDS),
            "width_reference": {"method": [REFERENCE], "variant": ["plain"], "width": [8, 32, 128], "depth": [2],
                                "seed": SEEDS},
        },
        "gpu": {
            "width": {"method": ["htaf", "htaf_anneal", "htaf_hard", "ste", "sigmoid", "atan"],
                      "variant": ["plain", "skip", "linear"],
                      "width": [8, 16, 32, 64, 128, 256, 512], "depth": [2], "seed": SEEDS},
            **_depth_sweeps([1, 2, 4, 8, 16], ["htaf", "htaf_anneal", "htaf_hard", "ste", "sigmoid", "atan"],
                            width=[64], seed=SEEDS),
            "width_reference": {"method": [REFERENCE], "variant": ["plain"], "width": [8, 16, 32, 64, 128, 256, 512],
                                "depth": [2], "seed": SEEDS},
        },
    },
}

EXPERIMENT = register(
    Experiment(
        name="dhn",
        description="deep Heaviside network classifier (plain/skip/linear) trained with HTAF or a surrogate",
        profiles=CLASSIFICATION_PROFILES,
        build_model=build_model,
        train_metrics=metrics.gradient_norms,
        eval_metrics=eval_metrics,
        on_epoch_start=on_epoch_start,
        validate=validate,
        nullable=("peak_slope",),
        grids=GRIDS["dhn"],
    )
)

REGRESSION_EXPERIMENT = register(
    Experiment(
        name="dhn_regression",
        description="deep Heaviside network regression of a smooth function on [0,1]^d (excess risk)",
        profiles=REGRESSION_PROFILES,
        build_model=build_model,
        train_metrics=metrics.gradient_norms,
        eval_metrics=eval_metrics,
        on_epoch_start=on_epoch_start,
        validate=validate,
        nullable=("peak_slope",),
        grids=GRIDS["dhn_regression"],
    )
)
