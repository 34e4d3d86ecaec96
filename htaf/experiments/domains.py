r"""``domains``: HTAF beyond images: spike-timing patterns (Randman, SHD) and 1-D signals (MNIST-1D).

One experiment, four model families chosen by ``family``:

* ``"snn"``: a feed-forward spiking network (:func:`htaf.models.snn.fc_snn`) that takes the spike trains
  ``[B, T, channels]`` of ``randman`` or ``shd`` directly (``encoding="spikes"``, no encoder):
  ``[Linear -> BN -> LIF]`` per ``hidden`` width and a linear readout averaged over time (cross-entropy).
* ``"dhn"``: a deep Heaviside network on ``mnist1d``: backbone ``"mlp"`` (:class:`htaf.models.dhn.DHN`, ``hidden``
  widths, all equal, ``variant``) or ``"conv"`` (:func:`htaf.models.domains.conv1d_net`, ``channels``).
* ``"bnn"``: a binary neural network on ``mnist1d``: ``"mlp"`` (:func:`htaf.models.bnn.binary_mlp`) or ``"conv"``
  (:func:`htaf.models.domains.conv1d_net`); ``method="full_precision"`` is the real-valued ReLU twin.
* ``"icbm"``: an implicit concept bottleneck (:class:`htaf.models.icbm.ICBM`) of ``num_concepts`` binary
  concepts on the real-valued 1-D convolutional backbone (:func:`htaf.models.domains.conv1d_backbone`); the
  unit ``method="relu"`` gives the continuous *standard model*.

``method`` is the unit (the LIF spike's surrogate, the threshold unit, the sign surrogate, the concept unit) and
``peak_slope`` matches every method's derivative at the threshold (:func:`htaf.nn.make_unit`;
``None``: ``surrogate_params`` or the family's defaults): 1 in the SNN, as in the ``snn`` chapter, and STE's
0.5 in the other families (STE has no parameter), as in the ``bnn`` chapter.

SNN keys: ``tau_window`` (the membrane time constant as a fraction of the input window: ``tau_window * T``
steps, so that a sweep over ``T`` changes the time resolution only; ``None`` for integrate-and-fire),
``threshold``, ``reset``, ``detach_reset``, ``decay_input``, ``lif_backend``.

Per epoch: ``grad_norm_<layer>`` (:func:`htaf.metrics.gradient_norms`); ``bnn`` also ``flip_ratio`` and
``clip_share`` (latent weights are clipped to [-1, 1] after every step). At the end, on the first
``rate_samples`` test samples, :func:`htaf.metrics.firing_summary` of the binary units under the exact step
(``dead_share``, ``always_on_share``, ``mean_firing_rate``), ``spike_rate_<lif>`` for the SNN, and for the
families with smooth units (``htaf`` in ``dhn`` and ``icbm``) :func:`htaf.metrics.switch_metrics`
(``accuracy_step`` = ``test_accuracy``, ``accuracy_smooth``, ``switch_gap``).

>>> from htaf.experiments import get, resolve_config
>>> model = get("domains").build_model(resolve_config("domains", "smoke"))
>>> type(model.encoder).__name__
'SpikeInput'
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
    MAX_WIDTH,
    check_choice,
    check_int,
    check_method,
    check_number,
    check_widths,
    register,
    tuning_sweeps,
    SEEDS,
    TUNING_SEEDS,
)
from htaf.experiments.bnn import WEIGHT_HOOKS
from htaf.models import bnn, domains, icbm, snn
from htaf.models.dhn import DHN, VARIANTS
from htaf.nn import SWITCHABLE, make_unit, unit_family

FAMILIES = ("snn", "dhn", "bnn", "icbm")
#: the kind of network (:data:`htaf.nn.MODEL_KINDS`) whose units each family accepts
MODELS = {"snn": "spiking", "dhn": "threshold", "bnn": "sign", "icbm": "threshold"}
BACKBONES = ("mlp", "conv")
#: datasets of spike trains ``(T, channels)`` (the SNN) and of 1-D signals ``(channels, length)`` (the others)
SPIKE_DATASETS = ("randman", "shd")
SIGNAL_DATASETS = ("mnist1d",)
#: the surrogates of the SNN comparison (as in the ``snn`` chapter) and of its sweeps over difficulty and T
SURROGATES = ["htaf", "atan", "sigmoid", "fast_sigmoid", "triangle", "rectangle"]
SWEEP_SURROGATES = ["htaf", "atan", "fast_sigmoid"]
#: the units of the 1-D families, all at STE's peak slope 0.5
DHN_METHODS = ["htaf", "htaf_hard", "ste", "atan"]
BNN_METHODS = ["htaf", "ste", "approx_sign", "swish_sign"]
ICBM_METHODS = ["htaf", "htaf_hard", "ste"]

#: Randman of the cpu profile: 10 classes on 2-D manifolds in the firing times of 20 channels, 50 steps
RANDMAN: dict[str, Any] = {"channels": 20, "classes": 10, "dim": 2, "T": 50, "alpha": 2.0, "jitter": 0.0,
                           "spikes": 1, "n_train": 2000, "n_test": 1000, "seed": 0}
#: the published MNIST-1D set (4000 training, 1000 test signals of length 40)
MNIST1D: dict[str, Any] = {"n_train": 4000, "n_test": 1000, "seed": 42}

MODEL_DEFAULTS: dict[str, Any] = {
    "family": "snn",
    "backbone": "mlp",
    "method": "htaf",
    "peak_slope": 1.0,
    "surrogate_params": {},
    "hidden": [128],
    "channels": 32,
    "variant": "plain",
    "num_concepts": 32,
    "tau_window": 0.2,
    "threshold": 1.0,
    "reset": "soft",
    "detach_reset": False,
    "decay_input": False,
    "lif_backend": "fused",
    "rate_samples": 1000,
}


def build_model(config: Config) -> nn.Module:
    """The ``family`` network of ``config`` for its dataset (see the module docstring)."""
    info = data.describe(config["dataset"], **config["data_kwargs"])
    family, k = config["family"], info.num_outputs
    if family == "snn":
        T, channels = info.input_shape
        tau = math.inf if config["tau_window"] is None else max(1.0, config["tau_window"] * T)
        return snn.fc_snn(channels, k, config["hidden"], T=T, encoding="spikes", readout="potential",
                          surrogate=make_unit(config["method"], peak_slope=config["peak_slope"],
                                              surrogate_params=config["surrogate_params"]).surrogate, tau=tau, threshold=config["threshold"],
                          reset=config["reset"], detach_reset=config["detach_reset"],
                          decay_input=config["decay_input"], backend=config["lif_backend"])
    in_channels, length = info.input_shape
    if family == "icbm":
        backbone, features = domains.conv1d_backbone(in_channels, length, config["channels"])
        unit = make_unit(config["method"], peak_slope=config["peak_slope"], surrogate_params=config["surrogate_params"])
        return icbm.ICBM(backbone, features, config["num_concepts"], k, unit)
    if config["backbone"] == "conv":
        return domains.conv1d_net(family, in_channels, length, k, config["channels"], method=config["method"],
                                  peak_slope=config["peak_slope"], surrogate_params=config["surrogate_params"])
    if family == "bnn":
        return bnn.binary_mlp(in_channels * length, k, config["hidden"], method=config["method"],
                              peak_slope=config["peak_slope"], surrogate_params=config["surrogate_params"])
    return DHN(in_channels * length, k, width=config["hidden"][0], depth=len(config["hidden"]),
               variant=config["variant"], method=config["method"], surrogate_params=config["surrogate_params"],
               peak_slope=config["peak_slope"])


def validate(config: Config) -> None:
    """Every model key, and that the dataset suits the family (called before any data loads)."""
    check_choice(config, "family", FAMILIES, "family")
    check_choice(config, "backbone", BACKBONES, "backbone")
    check_widths(config, "hidden")
    check_int(config, "channels", 1, MAX_WIDTH)
    check_int(config, "num_concepts", 1, MAX_WIDTH)
    check_int(config, "rate_samples", 1)
    check_choice(config, "variant", VARIANTS, "DHN variant")
    check_choice(config, "reset", snn.RESETS, "reset")
    check_choice(config, "lif_backend", snn.BACKENDS, "lif_backend")
    check_number(config, "tau_window", nullable=True)
    check_number(config, "threshold")
    check_number(config, "peak_slope", nullable=True)
    family, dataset = config["family"], config["dataset"]
    wanted = SPIKE_DATASETS if family == "snn" else SIGNAL_DATASETS
    if dataset not in wanted:
        kind = "spike trains" if family == "snn" else "1-D signals"
        raise ConfigError(f"family {family!r} needs a dataset of {kind} ({', '.join(wanted)}), got {dataset!r}")
    if family == "snn" and config["backbone"] != "mlp":
        raise ConfigError("family 'snn' has only the fully connected backbone; set backbone='mlp'")
    if family == "icbm" and config["backbone"] != "conv":
        raise ConfigError("family 'icbm' has only the convolutional backbone; set backbone='conv'")
    if family == "dhn" and config["backbone"] == "mlp" and len(set(config["hidden"])) != 1:
        raise ConfigError(f"the DHN's hidden layers share one width; got hidden={config['hidden']!r}")
    check_method(config, MODELS[family], f"{family} method")
    if family == "dhn" and unit_family(config["method"]) is None:
        raise ConfigError(f"family 'dhn' needs a binary unit; {config['method']!r} is a continuous activation")
    try:
        build_model(config)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"invalid domains config ({family}, {config['method']!r}): {error}") from None


def eval_metrics(model: nn.Module, loader: DataLoader, device: torch.device, config: Config) -> dict[str, Any]:
    """Firing of the binary units, SNN spike rates, and the smooth-to-step switch where units are smooth."""
    found: dict[str, Any] = {}
    limited = list(metrics.first_inputs(loader, config["rate_samples"]))
    if metrics.binary_units(model):
        summary = metrics.firing_summary(metrics.firing_rates(model, limited, device))
        found.update({key: summary[key] for key in ("dead_share", "always_on_share", "mean_firing_rate")})
    if config["family"] == "snn":
        rates = snn.spike_rates(model, (x.to(device) for x in limited))
        found.update({f"spike_rate_{name}": rate for name, rate in rates.items()})
    if any(isinstance(m, SWITCHABLE) for m in model.modules()):
        found.update(metrics.switch_metrics(model, loader, device, config))
    return found


# --------------------------------------------------------------------------------------------
# Profiles and the chapter's sweeps
# --------------------------------------------------------------------------------------------

PROFILES: dict[str, Config] = {
    # CI: a tiny Randman (4 classes, 10 channels, 10 steps), a small SNN, seconds per run
    "smoke": {**MODEL_DEFAULTS, "dataset": "randman", "batch_size": 32, "epochs": 2, "lr": 3e-3, "seed": 0,
              "data_kwargs": {**RANDMAN, "channels": 10, "classes": 4, "dim": 1, "T": 10, "n_train": 200,
                              "n_test": 100},
              "hidden": [32], "rate_samples": 100},
    # 2-core CPU: Randman (2000 / 1000 samples), FC-SNN 20-128-10, 20 epochs (each run a few seconds); the
    # readout averages the output current over T, so its logits start small: lr 1e-2 (3e-3 left it undertrained)
    "cpu": {**MODEL_DEFAULTS, "dataset": "randman", "batch_size": 64, "epochs": 20, "lr": 1e-2, "seed": 0,
            "lr_schedule": "cosine", "data_kwargs": dict(RANDMAN)},
    # one GPU: the Spiking Heidelberg Digits (100 steps of 10 ms, 700 channels), FC-SNN 700-256-256-20,
    # 100 epochs, float32 (exact spikes of bf16 membranes can flip near threshold)
    "gpu": {**MODEL_DEFAULTS, "dataset": "shd", "batch_size": 128, "epochs": 100, "lr": 1e-3, "seed": 0,
            "lr_schedule": "cosine", "amp": False, "data_kwargs": {"T": 100, "max_time": 1.0},
            "hidden": [256, 256], "rate_samples": 2264},
}


def _mnist1d(family: str, methods: list[str], backbones: list[str], seeds: list[int], epochs: int, **fixed):
    return {"dataset": ["mnist1d"], "data_kwargs": [dict(MNIST1D)], "family": [family], "backbone": backbones,
            "method": methods, "peak_slope": [0.5], "seed": seeds, "epochs": [epochs], "lr": [3e-3],
            "hidden": [[256, 256, 256]]
            if family == "bnn" else [[256, 256]], **fixed}


def _grids(seeds: list[int], randman: dict[str, Any], dims: list[int], steps: list[int], epochs: int,
           surrogates_: list[str], sweep_surrogates: list[str], mnist_kwargs: dict[str, Any]) -> dict[str, dict]:
    def mnist(family, methods, backbones, **fixed):
        grid = _mnist1d(family, methods, backbones, seeds, epochs, **fixed)
        grid["data_kwargs"] = [mnist_kwargs]
        return grid

    return {
        # the SNN on Randman: every surrogate at peak slope 1
        "randman": {"dataset": ["randman"], "data_kwargs": [randman], "method": surrogates_, "seed": seeds},
        # accuracy against difficulty (the manifold dimension) and against the number of steps T
        "randman_dim": {"dataset": ["randman"], "data_kwargs": [{**randman, "dim": d} for d in dims],
                        "method": sweep_surrogates, "seed": seeds},
        "randman_T": {"dataset": ["randman"], "data_kwargs": [{**randman, "T": t} for t in steps],
                      "method": sweep_surrogates, "seed": seeds},
        # MNIST-1D: three binary families on MLP and 1-D convolutional backbones, all at STE's peak slope
        "mnist1d_dhn": mnist("dhn", DHN_METHODS, ["mlp", "conv"]),
        "mnist1d_bnn": mnist("bnn", BNN_METHODS, ["mlp", "conv"]),
        "mnist1d_icbm": mnist("icbm", ICBM_METHODS, ["conv"]),
        # the real-valued references: the BNN's full-precision twins and ICBM's continuous standard model
        "mnist1d_reference": mnist("bnn", ["full_precision"], ["mlp", "conv"], peak_slope=[None]),
        "mnist1d_standard": mnist("icbm", ["relu"], ["conv"], peak_slope=[None]),
    }


#: the tuned comparison on MNIST-1D's convolutional threshold network (the ``dhn`` family on the ``conv`` backbone,
#: sweeps ``mnist1d_conv_tuning*`` and ``mnist1d_conv_tuned_<method>``): every unit of :data:`DHN_METHODS` at each peak
#: slope and learning rate of ``TUNING["cpu"]`` (STE at its own slope 1/2), two seeds disjoint from the test seeds,
#: trained without the last ``TUNING_VALIDATION`` of the 4000 training samples and scored on them; each unit's best
#: setting on that validation accuracy (:data:`TUNED`) is then trained with five seeds on all 4000 and compared on the
#: test samples (:func:`htaf.experiments.tuning_sweeps`)
TUNING = {"cpu": {"peak_slope": [0.5, 1.0, 2.0, 4.0], "lr": [1e-3, 3e-3, 1e-2, 3e-2, 1e-1]}}
#: the prefix of the tuned comparison's sweep names
TUNED_PREFIX = "mnist1d_conv_"
#: training samples the tuning runs hold out and are scored on (a fifth of MNIST-1D's 4000)
TUNING_VALIDATION = 800

#: each unit's tuned setting: the peak slope and learning rate of best mean validation accuracy in the ``cpu`` tuning
#: sweeps (:func:`htaf.findings.tuning`; a test and the chapter assert that this is still the choice)
TUNED: dict[str, dict[str, float]] = {
    "htaf": {"peak_slope": 2.0, "lr": 3e-2},
    "htaf_hard": {"peak_slope": 1.0, "lr": 3e-2},
    "ste": {"peak_slope": 0.5, "lr": 3e-2},
    "atan": {"peak_slope": 0.5, "lr": 1e-1},
}


def _conv_tuning(profile: str, seeds: list[int], epochs: int) -> dict[str, dict[str, list[Any]]]:
    network = {"dataset": ["mnist1d"], "data_kwargs": [dict(MNIST1D)], "family": ["dhn"], "backbone": ["conv"],
               "epochs": [epochs], "hidden": [[256, 256]]}
    sweeps = tuning_sweeps(network, DHN_METHODS, TUNING[profile], TUNING_VALIDATION, TUNING_SEEDS, seeds, TUNED,
                           own_slope={"ste": 0.5})
    return {f"{TUNED_PREFIX}{name}": grid for name, grid in sweeps.items()}


#: the chapter's sweeps: ``GRIDS["domains"][profile][sweep] = grid``
GRIDS: dict[str, dict[str, dict[str, dict[str, list[Any]]]]] = {
    "domains": {
        "smoke": _grids([0, 1], PROFILES["smoke"]["data_kwargs"], [2], [5], 2, ["htaf", "atan"], ["htaf"],
                        {"n_train": 300, "n_test": 100, "seed": 42}),
        "cpu": {**_grids(SEEDS, RANDMAN, [1, 3], [10, 25, 100], 30, SURROGATES, SWEEP_SURROGATES, MNIST1D),
                **_conv_tuning("cpu", SEEDS, 30)},
        "gpu": {
            # the Spiking Heidelberg Digits: every surrogate at peak slope 1 (needs the shd extra and the data)
            "shd": {"dataset": ["shd"], "method": SURROGATES, "seed": [0, 1, 2]},
            **_grids(SEEDS, RANDMAN, [1, 3, 4], [10, 25, 100, 200], 60, SURROGATES, SURROGATES,
                     MNIST1D),
        },
    },
}

EXPERIMENT = register(
    Experiment(
        name="domains",
        description="HTAF beyond images: SNN on spike-timing data (Randman, SHD), DHN/BNN/ICBM on MNIST-1D",
        profiles=PROFILES,
        build_model=build_model,
        validate=validate,
        train_metrics=metrics.gradient_norms,
        on_epoch_start=WEIGHT_HOOKS.on_epoch_start,
        after_step=WEIGHT_HOOKS.after_step,
        eval_metrics=eval_metrics,
        nullable=("peak_slope", "tau_window"),
        grids=GRIDS["domains"],
    )
)
