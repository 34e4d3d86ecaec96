r"""``snn``: spiking networks (LIF, exact spikes) trained with HTAF and the standard surrogate gradients.

The surrogate is the only thing that changes between the runs of a comparison. By default every
surrogate is used at the same peak slope :math:`g(0) = 1` (``peak_slope=1.0``, see
:func:`htaf.surrogates.with_peak_slope`): this is exactly the default of SpikingJelly's
``Sigmoid(alpha=4)`` and ``ATan(alpha=2)``, of HTAF's ``alpha=4, beta=1``, of triangle and rectangle
with ``alpha=1``, and the fast sigmoid with ``slope=2`` (snnTorch's ``slope=25`` is an unnormalised
derivative with peak 1; normalised to unit area its peak would be 12.5). ``peak_slope=None`` uses
``surrogate_params`` as given instead.

Config keys (besides the engine's):

* ``arch``: ``"fc"`` (``hidden`` widths, ``norm``: batch norm after each hidden linear layer) or ``"conv"`` (SpikingJelly's Fashion-MNIST CSNN; ``channels``,
  ``fc_hidden``).
* ``T``, ``encoding`` (``"direct"`` | ``"rate"``), ``readout`` (``"potential"`` | ``"rate"``; the engine's
  loss is cross-entropy, so ``"potential"``, the time-averaged output current, is the default).
* ``surrogate``, ``surrogate_params``, ``peak_slope``.
* LIF: ``tau`` (``None`` for integrate-and-fire), ``threshold``, ``reset`` (``"soft"`` | ``"hard"``),
  ``detach_reset``, ``decay_input``, ``lif_backend`` (``"fused"`` | ``"loop"``).
* ``rate_samples``: test samples used to measure the spike rates at the end.

Per epoch, ``grad_norm_<layer>`` is the L2 norm of each weight layer's gradient (mean over batches);
at the end ``spike_rate_<lif>`` is each LIF layer's spikes per neuron per step on the first
``rate_samples`` test images (2000 of 10 000 in the ``cpu`` profile).

>>> from htaf.experiments import get, resolve_config
>>> model = get("snn").build_model(resolve_config("snn", "smoke"))
>>> [name for name in layer_names(model)]
['fc1', 'fc2', 'fc3']
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from htaf import data, surrogates
from htaf.experiments import Config, Experiment, register
from htaf.models import snn

ARCHS = ("fc", "conv")
#: the surrogates compared in the chapter
SURROGATES = ["htaf", "atan", "sigmoid", "fast_sigmoid", "triangle", "rectangle"]


def _input_stats(config: Config) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std the loaders standardise with (needed to rate-encode intensities)."""
    images = data.load(config["dataset"], "train", normalise=False, **config["data_kwargs"]).tensors[0]
    return images.mean(dim=(0, 2, 3))[:, None, None], images.std(dim=(0, 2, 3)).clamp_min(1e-6)[:, None, None]


def build_model(config: Config) -> snn.SpikingNet:
    """The FC-SNN or CSNN of ``config`` (see the module docstring for the keys)."""
    if config["rate_samples"] < 1:
        raise ValueError(f"rate_samples must be at least 1, got {config['rate_samples']!r}")
    info = data.describe(config["dataset"], **config["data_kwargs"])
    if info.task != "classification" or len(info.input_shape) != 3:
        raise ValueError(f"the snn experiment needs an image classification dataset, got {config['dataset']!r}")
    name, params = config["surrogate"], config["surrogate_params"]
    peak = config["peak_slope"]
    surrogate = surrogates.get(name, **params) if peak is None else surrogates.with_peak_slope(name, peak, **params)
    tau = math.inf if config["tau"] is None else config["tau"]
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
    if config["arch"] == "conv":
        return snn.csnn(channels, info.num_outputs, size, config["channels"], config["fc_hidden"], **common)
    raise ValueError(f"unknown arch {config['arch']!r}; choose one of {', '.join(ARCHS)}")


def layer_names(model: nn.Module) -> dict[str, nn.Module]:
    """Weight layers in forward order: ``conv1, conv2, ..., fc1, fc2, ...``."""
    names: dict[str, nn.Module] = {}
    counts = {"conv": 0, "fc": 0}
    for module in model.modules():
        kind = "conv" if isinstance(module, nn.Conv2d) else "fc" if isinstance(module, nn.Linear) else None
        if kind:
            counts[kind] += 1
            names[f"{kind}{counts[kind]}"] = module
    return names


def gradient_norms(model: nn.Module) -> dict[str, float]:
    """``grad_norm_<layer>``: L2 norm of each weight layer's gradient (one host sync for all layers)."""
    layers = layer_names(model)
    norms = torch.stack([m.weight.grad.detach().float().norm() if m.weight.grad is not None
                         else torch.zeros((), device=m.weight.device) for m in layers.values()])
    return {f"grad_norm_{name}": value for name, value in zip(layers, norms.tolist())}


def spike_rate_metrics(model: nn.Module, loader: DataLoader, device: torch.device, config: Config) -> dict[str, float]:
    """``spike_rate_<lif>``: spikes per neuron per step of each LIF layer on the first ``rate_samples`` test inputs."""
    def inputs():
        seen = 0
        for x, _ in loader:
            if seen >= config["rate_samples"]:
                return
            x = x[: config["rate_samples"] - seen]
            seen += len(x)
            yield x.to(device)

    rates = snn.spike_rates(model, inputs())
    return {f"spike_rate_{name}": rate for name, rate in rates.items()}


MODEL_DEFAULTS: dict[str, Any] = {
    "arch": "fc",
    "hidden": [256, 256],
    "norm": True,
    "channels": 128,
    "fc_hidden": None,
    "T": 4,
    "encoding": "direct",
    "readout": "potential",
    "surrogate": "htaf",
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
    "smoke": {**MODEL_DEFAULTS, "dataset": "digits", "batch_size": 64, "epochs": 3, "lr": 3e-3, "seed": 0,
              "hidden": [64, 64], "rate_samples": 360},
    # 2-core CPU: FC-SNN 784-256-256-10 (BN), T=4, 4 epochs over the first 30k training images, full test set
    "cpu": {**MODEL_DEFAULTS, "dataset": "fashion_mnist", "batch_size": 128, "epochs": 4, "lr": 1e-3, "seed": 0,
            "subset": 30000, "lr_schedule": "cosine"},
    # paper scale: SpikingJelly's Fashion-MNIST CSNN (128 channels, T=4), full data, 64 epochs, cosine
    "gpu": {**MODEL_DEFAULTS, "dataset": "fashion_mnist", "batch_size": 128, "epochs": 64, "lr": 1e-3, "seed": 0,
            "arch": "conv", "lr_schedule": "cosine", "rate_samples": 10000},
}

#: the runs of the chapter per profile: ``"main"`` is the surrogate comparison (direct encoding),
#: ``"rate"`` repeats it with Bernoulli rate encoding on one dataset
GRIDS: dict[str, dict[str, dict[str, list[Any]]]] = {
    "smoke": {
        "main": {"dataset": ["digits"], "seed": [0, 1], "surrogate": SURROGATES},
        "rate": {"dataset": ["digits"], "seed": [0], "encoding": ["rate"], "surrogate": SURROGATES},
    },
    "cpu": {
        "main": {"dataset": ["fashion_mnist", "mnist"], "seed": [0, 1, 2], "surrogate": SURROGATES},
        "rate": {"dataset": ["fashion_mnist"], "seed": [0], "encoding": ["rate"], "surrogate": SURROGATES},
    },
    "gpu": {
        "main": {"dataset": ["fashion_mnist", "mnist"], "seed": [0, 1, 2], "surrogate": SURROGATES},
        "rate": {"dataset": ["fashion_mnist"], "seed": [0], "encoding": ["rate"], "surrogate": SURROGATES},
    },
}

EXPERIMENT = register(
    Experiment(
        name="snn",
        description="LIF spiking networks (FC / CSNN) trained with HTAF vs standard surrogate gradients",
        profiles=PROFILES,
        build_model=build_model,
        train_metrics=gradient_norms,
        eval_metrics=spike_rate_metrics,
        nullable=("tau", "peak_slope"),
    )
)
