r"""``bnn``: binary neural networks (binary weights and activations, :mod:`htaf.models.bnn`) trained with HTAF
and the standard sign surrogates.

Config keys (besides the engine's):

* ``arch``: ``"mlp"`` (``hidden`` widths), ``"cnn"`` (``channels``, ``fc_hidden``), ``"vgg_small"``, ``"resnet18"``.
* ``method``: the activations' surrogate (``htaf``, ``ste``, ``approx_sign``, ``swish_sign``, ``ede``, any
  zoo name: :func:`htaf.nn.unit_methods` with ``model="sign"``) or ``"full_precision"`` (real weights, ReLU: the
  reference twin).
* ``peak_slope``: rescale the surrogate so that its step-convention derivative at 0 is this
  (:func:`htaf.nn.make_unit`; ``None``: ``surrogate_params`` or the family's defaults).
  STE's is 0.5 (the sign's slope 1), so ``peak_slope=0.5`` matches every method to BinaryNet's STE.
* ``surrogate_params``, ``scale`` (``"none"`` | ``"mean"``: XNOR-Net's per-channel weight scale),
  ``binary_first``, ``binary_last`` (binary weights in the first / last layer).
* ``ede_t_min``, ``ede_t_max``: IR-Net's schedule of EDE's ``t`` (:func:`htaf.surrogates.ede_t`), set at the
  start of every epoch for ``method="ede"``.

After every optimiser step the latent weights are clipped to [-1, 1] (BinaryNet) and two quantities are
averaged over the epoch into the history (:class:`BinaryWeightHooks`, shared with the ``domains`` and
``sensitivity_bnn`` experiments): ``flip_ratio`` (share of binary weights whose sign changed in
that step, :class:`htaf.metrics.FlipCounter`) and ``clip_share`` (share of latent weights at the bound
:math:`|W| = 1`). Per-layer gradient norms are recorded as ``grad_norm_fc<k>`` / ``grad_norm_conv<k>``
(:func:`htaf.metrics.gradient_norms`). At the end, for binary methods: ``packed_matches`` (the bit-packed
XNOR-popcount model gives exactly the float model's outputs on the first test batch), the storage
``bits_float32`` and ``bits_packed``, and the inference time of both paths on that batch
(``infer_ms_float``, ``infer_ms_packed``).

>>> from htaf.experiments import get, resolve_config
>>> model = get("bnn").build_model(resolve_config("bnn", "smoke"))
>>> [name for name, _ in binary_layers(model)]
['body.1.0', 'body.2.0']
"""

from __future__ import annotations

import time
import weakref
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from htaf import data, metrics, surrogates
from htaf.experiments import (MAX_WIDTH, Config, ConfigError, Experiment, check_int, check_method, check_widths, register,
                              SEEDS, TUNING_SEEDS, tuning_sweeps)
from htaf.models import bnn
from htaf.nn import binary_layers, clip_latent_weights_, storage_bits

#: the sign surrogates the chapter compares, at STE's peak slope and at their own defaults
MATCHED = ["htaf", "ste", "approx_sign", "swish_sign"]
DEFAULTS = ["htaf", "approx_sign", "swish_sign", "ede"]

MODEL_DEFAULTS: dict[str, Any] = {
    "arch": "mlp",
    "hidden": [256, 256, 256],
    "channels": 16,
    "fc_hidden": 128,
    "method": "htaf",
    "peak_slope": 0.5,
    "surrogate_params": {},
    "scale": "none",
    "binary_first": False,
    "binary_last": False,
    "ede_t_min": 0.1,
    "ede_t_max": 10.0,
}


def _model_options(config: Config) -> dict[str, Any]:
    options = dict(method=config["method"], peak_slope=config["peak_slope"],
                   surrogate_params=config["surrogate_params"], scale=config["scale"],
                   binary_first=config["binary_first"], binary_last=config["binary_last"])
    if config["arch"] == "mlp":
        options["hidden"] = config["hidden"]
    elif config["arch"] == "cnn":
        options.update(channels=config["channels"], fc_hidden=config["fc_hidden"])
    return options


def build_model(config: Config) -> bnn.BinaryNet:
    """The ``arch`` network of ``config`` for its dataset."""
    info = data.describe(config["dataset"], **config["data_kwargs"])
    if info.task != "classification" or len(info.input_shape) != 3:
        raise ConfigError(f"the bnn experiment needs an image classification dataset, got {config['dataset']!r}")
    return bnn.build(config["arch"], info.input_shape, info.num_outputs, **_model_options(config))


def validate(config: Config) -> None:
    """Check the model keys before any data loads (the model is built on the dataset's shapes)."""
    if config["arch"] not in bnn.ARCHS:
        raise ConfigError(f"unknown value of 'arch' {config['arch']!r}; valid choices: {', '.join(bnn.ARCHS)}")
    check_method(config, "sign")
    check_widths(config, "hidden")
    check_int(config, "channels", 1, MAX_WIDTH)
    check_int(config, "fc_hidden", 1, MAX_WIDTH)
    if not 0 < config["ede_t_min"] <= config["ede_t_max"]:
        raise ConfigError(f"need 0 < ede_t_min <= ede_t_max, got {config['ede_t_min']!r}, {config['ede_t_max']!r}")
    try:
        build_model(config)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"invalid bnn config: {error}") from None


class BinaryWeightHooks:
    """The engine hooks of every network with binary weights (``bnn``, ``domains``, ``sensitivity_bnn``).

    :meth:`on_epoch_start` starts the model's sign-flip counter (:class:`htaf.metrics.FlipCounter`) before its first
    step; :meth:`after_step` clips the latent weights to [-1, 1] (BinaryNet) and returns the step's ``flip_ratio``
    and ``clip_share`` (share of latent weights at the bound), nothing for a model without binary layers. The
    per-run state (the counter) lives here, keyed weakly by the model (it goes with the model), not in the model.
    """

    def __init__(self):
        self._counters: weakref.WeakKeyDictionary[nn.Module, metrics.FlipCounter] = weakref.WeakKeyDictionary()

    def on_epoch_start(self, model: nn.Module, epoch: int, config: Config) -> None:
        weights = [layer.weight for _, layer in binary_layers(model)]
        if weights and model not in self._counters:
            self._counters[model] = metrics.FlipCounter(weights)

    def after_step(self, model: nn.Module, config: Config) -> dict[str, float] | None:
        weights = [layer.weight for _, layer in binary_layers(model)]
        if not weights:
            return None
        clip_latent_weights_(model)
        at_bound = sum(int((w.detach().abs() >= 1.0).sum()) for w in weights)
        return {"flip_ratio": self._counters[model].update(), "clip_share": at_bound / sum(w.numel() for w in weights)}


#: the one instance the experiments share
WEIGHT_HOOKS = BinaryWeightHooks()


def on_epoch_start(model: nn.Module, epoch: int, config: Config) -> None:
    """EDE: IR-Net's ``t`` for this epoch (``ede_t_min`` at the first epoch, ``ede_t_max`` at the last).

    Also starts the model's sign-flip counter (:data:`WEIGHT_HOOKS`) before its first step.
    """
    if config["method"] == "ede":
        progress = epoch / max(config["epochs"] - 1, 1)
        t = surrogates.ede_t(min(progress, 1.0), config["ede_t_min"], config["ede_t_max"])
        bnn.set_surrogate(model, surrogates.get("ede", **{**config["surrogate_params"], "t": t}))
    WEIGHT_HOOKS.on_epoch_start(model, epoch, config)


def train_metrics(model: nn.Module) -> dict[str, float]:
    """Per-layer gradient norms (after backward, before the step)."""
    return metrics.gradient_norms(model)


def after_step(model: nn.Module, config: Config) -> dict[str, float] | None:
    """Clip the latent weights to [-1, 1]; the step's flip ratio and the share of weights at the bound
    (:meth:`BinaryWeightHooks.after_step` of :data:`WEIGHT_HOOKS`)."""
    return WEIGHT_HOOKS.after_step(model, config)


@torch.no_grad()
def _median_ms(fn, x: torch.Tensor, repeats: int = 5) -> float:
    fn(x)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - started)
    return 1e3 * sorted(times)[len(times) // 2]


def eval_metrics(model: nn.Module, loader: DataLoader, device: torch.device, config: Config) -> dict[str, Any]:
    """Storage, exactness and speed of the bit-packed inference form (binary methods), and EDE's final ``t``."""
    on_epoch_start(model, config["epochs"] - 1, config)
    model.eval()
    out: dict[str, Any] = {}
    if config["method"] == "full_precision" or not bnn.packable(model):
        return out
    inputs = next(iter(loader))[0].to(device).float()
    packed = bnn.packed(model)
    with torch.no_grad():
        out["packed_matches"] = bool(torch.equal(packed(inputs), model(inputs)))
    bits = storage_bits(model)
    out["bits_float32"], out["bits_packed"] = bits["float32"], bits["packed"]
    out["infer_ms_float"] = _median_ms(model, inputs)
    out["infer_ms_packed"] = _median_ms(packed, inputs)
    return out


PROFILES: dict[str, Config] = {
    # CI: sklearn digits, a small MLP, a few seconds per run
    "smoke": {**MODEL_DEFAULTS, "dataset": "digits", "subset": 512, "batch_size": 64, "epochs": 2, "lr": 3e-3, "seed": 0,
              "hidden": [64, 64, 64]},
    # 2-core CPU: BinaryNet's MLP shape with Brevitas' SFC widths (3x256), all 60k training images, 10 epochs
    "cpu": {**MODEL_DEFAULTS, "dataset": "mnist", "batch_size": 128, "epochs": 10, "lr": 3e-3, "seed": 0,
            "lr_schedule": "cosine"},
    # one GPU: VGG-small on full CIFAR-10 (IR-Net's setting), XNOR-Net scaling, 200 epochs, cosine
    "gpu": {**MODEL_DEFAULTS, "dataset": "cifar10", "batch_size": 256, "epochs": 200, "lr": 1e-3, "seed": 0,
            "lr_schedule": "cosine", "arch": "vgg_small", "scale": "mean"},
}

_METHODS = {"matched": {"method": MATCHED, "peak_slope": [0.5]},
            "defaults": {"method": DEFAULTS, "peak_slope": [None]},
            "reference": {"method": ["full_precision"], "peak_slope": [None]}}


def _grids(datasets: list[str], seeds: list[int], **fixed: list[Any]) -> dict[str, dict[str, list[Any]]]:
    return {f"{name}": {"dataset": datasets, "seed": seeds, **fixed, **methods} for name, methods in _METHODS.items()}


#: the tuned comparison on Fashion-MNIST (the ``cpu`` profile's MLP): every method of :data:`MATCHED` and
#: :data:`DEFAULTS` at each peak slope and learning rate of ``TUNING[profile]`` (STE at its own slope 1/2 and EDE on its
#: own schedule of ``t``, each at every learning rate), two seeds disjoint from the test seeds, trained without the last
#: ``VALIDATION[profile]`` training images and scored on them; each method's best setting on that validation accuracy
#: (:data:`TUNED`) is then trained with the five test seeds on all the training images and compared on the test set
#: (:func:`htaf.experiments.tuning_sweeps`)
TUNED_METHODS = list(dict.fromkeys(MATCHED + DEFAULTS))
#: the peak slopes and learning rates the tuning sweeps try, per profile
TUNING = {"smoke": {"peak_slope": [0.5, 1.0], "lr": [3e-3]},
          "cpu": {"peak_slope": [0.5, 1.0, 2.0], "lr": [1e-3, 3e-3, 1e-2]}}
VALIDATION = {"smoke": 288, "cpu": 10_000}
#: the methods whose slope is their own: STE's is 1/2 (the sign's 1), EDE's follows its schedule of ``t``
OWN_SLOPE = {"ste": 0.5, "ede": None}

#: each method's tuned setting: the peak slope and learning rate of best mean validation accuracy in the ``cpu``
#: tuning sweeps (:func:`htaf.findings.tuning`; a test and the chapter assert that this is still the choice)
TUNED: dict[str, dict[str, float | None]] = {
    "htaf": {"peak_slope": 2.0, "lr": 3e-3},
    "ste": {"peak_slope": 0.5, "lr": 1e-2},
    "approx_sign": {"peak_slope": 1.0, "lr": 3e-3},
    "swish_sign": {"peak_slope": 2.0, "lr": 3e-3},
    "ede": {"peak_slope": None, "lr": 1e-2},
}


def _tuning(profile: str, dataset: str, methods: list[str], seeds: list[int], tuning_seeds: list[int]):
    return tuning_sweeps({"dataset": [dataset]}, methods, TUNING[profile], VALIDATION[profile], tuning_seeds, seeds,
                         TUNED, own_slope={m: s for m, s in OWN_SLOPE.items() if m in methods})


#: the chapter's sweeps: ``GRIDS["bnn"][profile][sweep] = grid``
GRIDS: dict[str, dict[str, dict[str, dict[str, list[Any]]]]] = {
    "bnn": {
        "smoke": {**_grids(["digits"], [0, 1, 2]), **_tuning("smoke", "digits", ["htaf", "ste", "ede"], [0, 1, 2], [10])},
        "cpu": {
            **_grids(["mnist", "fashion_mnist"], SEEDS),
            **_tuning("cpu", "fashion_mnist", TUNED_METHODS, SEEDS, TUNING_SEEDS),
            # the CIFAR-10 subset (4000 training images) with the small binary CNN
            **{f"cifar_{name}": grid for name, grid in _grids(
                ["cifar10_subset"], SEEDS, arch=["cnn"], epochs=[15]).items()},
        },
        "gpu": {
            **{f"vgg_{name}": grid for name, grid in _grids(["cifar10"], [0, 1, 2]).items()},
            **{f"resnet_{name}": grid for name, grid in _grids(["cifar10"], [0, 1, 2], arch=["resnet18"]).items()},
        },
    },
}

EXPERIMENT = register(
    Experiment(
        name="bnn",
        description="binary neural networks (binary weights and activations) trained with HTAF vs sign surrogates",
        profiles=PROFILES,
        build_model=build_model,
        validate=validate,
        train_metrics=train_metrics,
        after_step=after_step,
        eval_metrics=eval_metrics,
        on_epoch_start=on_epoch_start,
        nullable=("peak_slope",),
        grids=GRIDS["bnn"],
    )
)

