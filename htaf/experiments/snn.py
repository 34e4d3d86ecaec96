r"""``snn``: spiking networks (LIF, exact spikes) trained with HTAF and the standard surrogate gradients.

The surrogate is the only thing that changes between the runs of a comparison. By default every
surrogate is used at the same peak slope :math:`g(0) = 1` (``peak_slope=1.0``, see
:func:`htaf.nn.make_unit`): this is exactly the default of SpikingJelly's
``Sigmoid(alpha=4)`` and ``ATan(alpha=2)``, of HTAF's ``alpha=4, beta=1``, of triangle and rectangle
with ``alpha=1``, and the fast sigmoid with ``slope=2`` (snnTorch's ``slope=25`` is an unnormalised
derivative with peak 1; normalised to unit area its peak would be 12.5). ``peak_slope=None`` uses
``surrogate_params`` as given instead.

Config keys (besides the engine's):

* ``arch``: ``"fc"`` (``hidden`` widths, ``norm``: batch norm after each hidden linear layer) or ``"conv"`` (SpikingJelly's Fashion-MNIST CSNN; ``channels``,
  ``fc_hidden``).
* ``T``, ``encoding`` (``"direct"`` | ``"rate"``), ``readout`` (``"potential"`` | ``"rate"``; the engine's
  loss is cross-entropy, so ``"potential"``, the time-averaged output current, is the default).
* ``method`` (the surrogate of the LIF spike: a name of :func:`htaf.surrogates.available`,
  :func:`htaf.nn.unit_methods` with ``model="spiking"``; the key that chooses the unit in every family),
  ``surrogate_params`` (HTAF's ``alpha`` and ``beta`` too), ``peak_slope``.
* LIF: ``tau`` (``None`` for integrate-and-fire), ``threshold``, ``reset`` (``"soft"`` | ``"hard"``),
  ``detach_reset``, ``decay_input``, ``lif_backend`` (``"fused"`` | ``"loop"``).
* ``rate_samples``: test samples used to measure the spike rates at the end.

Per epoch, ``grad_norm_<layer>`` is the L2 norm of each weight layer's gradient (mean over batches;
:func:`htaf.metrics.gradient_norms`); at the end ``spike_rate_<lif>`` is each LIF layer's spikes per
neuron per step on the first ``rate_samples`` test images (2000 of 10 000 in the ``cpu`` profile).

>>> from htaf.experiments import get, resolve_config
>>> model = get("snn").build_model(resolve_config("snn", "smoke"))
>>> [name for name in metrics.weight_layers(model)]
['fc1', 'fc2', 'fc3']
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from htaf import data, metrics
from htaf.experiments import (
    Batch,
    Config,
    ConfigError,
    Experiment,
    MAX_WIDTH,
    check_choice,
    check_int,
    check_method,
    check_number,
    check_widths,
    default_loss,
    register,
    tuning_sweeps,
    SEEDS,
    TUNING_SEEDS,
)
from htaf.models import snn
from htaf.nn import make_unit

ARCHS = ("fc", "conv")
#: the surrogates compared in the chapter
SURROGATES = ["htaf", "atan", "sigmoid", "fast_sigmoid", "triangle", "rectangle"]


def _input_stats(config: Config) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std the loaders standardise with (needed to rate-encode intensities)."""
    if not config["data_kwargs"].get("normalise", True):
        return torch.zeros(()), torch.ones(())  # the loaders hand out intensities already
    kwargs = {**config["data_kwargs"], "normalise": False}
    images = data.load(config["dataset"], "train", **kwargs).tensors[0]
    return images.mean(dim=(0, 2, 3))[:, None, None], images.std(dim=(0, 2, 3)).clamp_min(1e-6)[:, None, None]


def validate(config: Config) -> None:
    """Every model key of an SNN config (called before any data loads)."""
    info = data.describe(config["dataset"], **config["data_kwargs"])
    if info.task != "classification" or len(info.input_shape) != 3:
        raise ConfigError(f"the snn experiment needs an image classification dataset, got {config['dataset']!r}")
    check_choice(config, "arch", ARCHS, "arch")
    check_widths(config, "hidden")
    check_int(config, "channels", 1, MAX_WIDTH)
    check_int(config, "fc_hidden", 1, MAX_WIDTH, nullable=True)
    check_int(config, "T", 1)
    check_choice(config, "encoding", snn.ENCODINGS, "encoding")
    check_choice(config, "readout", snn.READOUTS, "readout")
    check_choice(config, "reset", snn.RESETS, "reset")
    check_choice(config, "lif_backend", snn.BACKENDS, "lif_backend")
    check_number(config, "tau", 1.0, strict=False, nullable=True)
    check_number(config, "threshold")
    check_number(config, "peak_slope", nullable=True)
    check_int(config, "rate_samples", 1)
    check_method(config, "spiking", "surrogate")
    if config["arch"] == "conv" and info.input_shape[1] % 4:
        raise ConfigError(f"arch 'conv' needs an image size divisible by 4, got {info.input_shape[1]}")


def build_model(config: Config) -> snn.SpikingNet:
    """The FC-SNN or CSNN of ``config`` (see the module docstring for the keys)."""
    validate(config)
    info = data.describe(config["dataset"], **config["data_kwargs"])
    tau = math.inf if config["tau"] is None else config["tau"]
    # the LIF spike's surrogate: the resolved unit's (``method``, ``surrogate_params``, ``peak_slope``)
    surrogate = make_unit(config["method"], peak_slope=config["peak_slope"],
                          surrogate_params=config["surrogate_params"]).surrogate
    lif = dict(surrogate=surrogate, tau=tau, threshold=config["threshold"], reset=config["reset"],
               detach_reset=config["detach_reset"], decay_input=config["decay_input"],
               backend=config["lif_backend"])
    mean, std = _input_stats(config) if config["encoding"] == "rate" else (0.0, 1.0)
    common = dict(T=config["T"], encoding=config["encoding"], readout=config["readout"], seed=config["seed"],
                  input_mean=mean, input_std=std, **lif)
    channels, size = info.input_shape[0], info.input_shape[1]
    if config["arch"] == "fc":
        return snn.fc_snn(math.prod(info.input_shape), info.num_outputs, config["hidden"], norm=config["norm"],
                          **common)
    return snn.csnn(channels, info.num_outputs, size, config["channels"], config["fc_hidden"], **common)


def loss(outputs: torch.Tensor, batch: Batch, config: Config) -> torch.Tensor:
    """The loss of the readout: cross-entropy of the mean output current (``readout="potential"``), or
    SpikingJelly's mean squared error between the output firing rate and the one-hot label (``"rate"``)."""
    if config["readout"] == "rate":
        target = torch.nn.functional.one_hot(batch.targets, outputs.shape[1]).to(torch.float32)
        return torch.nn.functional.mse_loss(outputs.float(), target)
    return default_loss(outputs, batch, config)


def spike_rate_metrics(model: nn.Module, loader: DataLoader, device: torch.device, config: Config) -> dict[str, float]:
    """``spike_rate_<lif>``: spikes per neuron per step of each LIF layer on the first ``rate_samples`` test inputs."""
    inputs = (x.to(device) for x in metrics.first_inputs(loader, config["rate_samples"]))
    return {f"spike_rate_{name}": rate for name, rate in snn.spike_rates(model, inputs).items()}


MODEL_DEFAULTS: dict[str, Any] = {
    "arch": "fc",
    "hidden": [256, 256],
    "norm": True,
    "channels": 128,
    "fc_hidden": None,
    "T": 4,
    "encoding": "direct",
    "readout": "potential",
    "method": "htaf",
    "surrogate_params": {},
    "peak_slope": 1.0,
    "tau": 2.0,
    "threshold": 1.0,
    "reset": "hard",
    "detach_reset": False,
    "decay_input": True,
    "lif_backend": "fused",
    "rate_samples": 2000,
}

PROFILES: dict[str, Config] = {
    # CI: sklearn digits (8x8), a small FC-SNN; a few seconds per run
    "smoke": {**MODEL_DEFAULTS, "dataset": "digits", "batch_size": 64, "epochs": 2, "lr": 3e-3, "seed": 0,
              "hidden": [64, 64], "rate_samples": 360},
    # 2-core CPU: FC-SNN 784-256-256-10 (BN), T=4, 4 epochs over the first 30k training images, full test set
    "cpu": {**MODEL_DEFAULTS, "dataset": "fashion_mnist", "batch_size": 128, "epochs": 4, "lr": 1e-3, "seed": 0,
            "subset": 30000, "lr_schedule": "cosine"},
    # paper scale: SpikingJelly's Fashion-MNIST CSNN (128 channels, T=4), full data, 64 epochs, cosine
    "gpu": {**MODEL_DEFAULTS, "dataset": "fashion_mnist", "batch_size": 128, "epochs": 64, "lr": 1e-3, "seed": 0,
            "arch": "conv", "lr_schedule": "cosine", "rate_samples": 10000},
}

#: the tuned comparison on Fashion-MNIST: every surrogate at each of these peak slopes and learning rates, two seeds,
#: trained without the last ``VALIDATION[profile]`` training images and scored on them (sweep ``tuning``); each
#: surrogate's best setting on that validation accuracy is then trained with five seeds on the same training images
#: and compared on the test set (sweeps ``tuned_<surrogate>``, settings :data:`TUNED`)
TUNING = {"smoke": {"peak_slope": [0.5, 1.0], "lr": [3e-3]},
          "cpu": {"peak_slope": [0.5, 1.0, 2.0, 4.0], "lr": [1e-3, 3e-3, 1e-2]},
          "gpu": {"peak_slope": [0.5, 1.0, 2.0, 4.0], "lr": [1e-3, 3e-3, 1e-2]}}
#: training images the tuning runs hold out (the ``cpu`` profile trains on the first 30,000 of Fashion-MNIST's 60,000,
#: so its tuning and final runs train on the same images)
VALIDATION = {"smoke": 288, "cpu": 10_000, "gpu": 10_000}


#: each surrogate's tuned setting: the peak slope and learning rate of best mean validation accuracy in the ``cpu``
#: tuning sweep (:func:`htaf.findings.tuned_settings`; the SNN chapter asserts that this is still the choice)
TUNED: dict[str, dict[str, float]] = {
    "htaf": {"peak_slope": 2.0, "lr": 1e-3},
    "atan": {"peak_slope": 2.0, "lr": 1e-2},
    "sigmoid": {"peak_slope": 2.0, "lr": 3e-3},
    "fast_sigmoid": {"peak_slope": 2.0, "lr": 3e-3},
    "triangle": {"peak_slope": 2.0, "lr": 3e-3},
    "rectangle": {"peak_slope": 2.0, "lr": 1e-2},
}


def _tuning(profile: str, dataset: str, seeds: list[int], tuning_seeds: list[int]) -> dict[str, dict[str, list[Any]]]:
    """The sweep ``tuning`` (every surrogate at every peak slope and learning rate of :data:`TUNING`) and the sweeps
    ``tuned_<surrogate>`` (each at its :data:`TUNED` setting, with ``seeds``): :func:`htaf.experiments.tuning_sweeps`."""
    return tuning_sweeps({"dataset": [dataset]}, SURROGATES, TUNING[profile], VALIDATION[profile], tuning_seeds,
                         seeds, TUNED)


#: the runs of the chapter, ``GRIDS["snn"][profile][sweep]``: ``"main"`` is the surrogate comparison (direct
#: encoding), ``"rate"`` repeats it with Bernoulli rate encoding on one dataset
GRIDS: dict[str, dict[str, dict[str, dict[str, list[Any]]]]] = {
    "snn": {
        "smoke": {
            "main": {"dataset": ["digits"], "seed": [0, 1], "method": SURROGATES},
            "rate": {"dataset": ["digits"], "seed": [0], "encoding": ["rate"], "method": SURROGATES},
            **_tuning("smoke", "digits", [0, 1], [10]),
        },
        "cpu": {
            "main": {"dataset": ["fashion_mnist", "mnist"], "seed": SEEDS, "method": SURROGATES},
            "rate": {"dataset": ["fashion_mnist"], "seed": [0], "encoding": ["rate"], "method": SURROGATES},
            **_tuning("cpu", "fashion_mnist", SEEDS, TUNING_SEEDS),
        },
        "gpu": {
            "main": {"dataset": ["fashion_mnist", "mnist"], "seed": SEEDS, "method": SURROGATES},
            "rate": {"dataset": ["fashion_mnist"], "seed": [0], "encoding": ["rate"], "method": SURROGATES},
            # SpikingJelly's Fashion-MNIST example (examples/conv_fashion_mnist.py, 93.08 %): IF neurons,
            # rate readout with MSE to the one-hot label, SGD (lr 0.1, momentum 0.9), cosine over 64 epochs,
            # unstandardised pixels; atan (its surrogate) against HTAF at the same peak slope
            "spikingjelly": {"dataset": ["fashion_mnist"], "seed": [0, 1, 2], "method": ["atan", "htaf"],
                             "tau": [None], "readout": ["rate"], "optimizer": ["sgd"], "lr": [0.1],
                             "momentum": [0.9], "data_kwargs": [{"normalise": False}]},
        },
    },
}

EXPERIMENT = register(
    Experiment(
        name="snn",
        description="LIF spiking networks (FC / CSNN) trained with HTAF vs standard surrogate gradients",
        profiles=PROFILES,
        build_model=build_model,
        train_metrics=metrics.gradient_norms,
        eval_metrics=spike_rate_metrics,
        nullable=("tau", "peak_slope"),
        validate=validate,
        loss=loss,
        grids=GRIDS["snn"],
    )
)
