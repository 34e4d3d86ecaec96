r"""Spiking networks: a multi-step leaky integrate-and-fire (LIF) neuron, encoders and two builders.

Tensors carry time first: ``[T, B, ...]``. Stateless layers (convolution, batch norm, linear,
pooling) run on all ``T`` steps at once by folding time into the batch (:class:`Folded`); only the
membrane recurrence of :class:`LIF` loops over ``T``. A network takes static inputs ``[B, ...]`` through an
encoder (``"direct"``, ``"rate"``) or spike trains ``[B, T, ...]`` directly (``"spikes"``:
:class:`SpikeInput`, no encoder, as for :mod:`htaf.data.randman` or event data).

LIF dynamics (membrane :math:`V`, input current :math:`X_t`, leak :math:`\lambda = 1 - 1/\tau`,
threshold :math:`\theta`, :math:`V_{-1} = 0`, reset potential 0):

.. math::

    H_t &= \lambda V_{t-1} + c\,X_t, \qquad c = 1/\tau \text{ (decay\_input) or } 1 \\
    S_t &= \Theta(H_t - \theta) \\
    V_t &= H_t - \theta S_t \quad \text{(soft reset: subtract the threshold)} \\
    V_t &= H_t\,(1 - S_t) \quad \text{(hard reset: back to 0)}

With ``decay_input=True`` and ``tau=2`` this is SpikingJelly's ``LIFNode`` (``v_reset=0`` for the hard
reset, ``v_reset=None`` for the soft one); ``tau=inf`` gives the integrate-and-fire neuron (``IFNode``:
:math:`\lambda = 1, c = 1`). :math:`\Theta` is :func:`htaf.functional.spike`: the exact step forward
(1 at :math:`H_t \ge \theta`) and a surrogate's derivative :math:`g(H_t - \theta)` backward.
``detach_reset`` stops the gradient through the :math:`S_t` that enters the reset (Zenke & Vogels 2021).

The recurrence runs in ``htaf._lif`` (the private LIF kernel engine: a fused autograd function with the exact
adjoint recurrence, optional ``torch.compile``'d kernels, and a plain-autograd reference loop), chosen by
``backend``: ``"auto"`` (default, :func:`resolve_backend`), ``"fused"``, ``"compiled"`` or ``"loop"``.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from .. import surrogates
from .._lif import (
    AUTO_COMPILE_MIN_NEURONS,
    BACKENDS,
    RESETS,
    _choice,
    _leak,
    _lif_forward,
    compiled_available,
    lif_multistep,
    resolve_backend,
)
from .._validation import check_float_tensor, compute_dtype

__all__ = [
    "RESETS",
    "ENCODINGS",
    "READOUTS",
    "BACKENDS",
    "AUTO_COMPILE_MIN_NEURONS",
    "compiled_available",
    "resolve_backend",
    "lif_multistep",
    "LIF",
    "Folded",
    "DirectEncoder",
    "RateEncoder",
    "SpikeInput",
    "make_encoder",
    "SpikingNet",
    "fc_snn",
    "csnn",
    "lif_layers",
    "spike_rates",
]

ENCODINGS = ("direct", "rate", "spikes")
READOUTS = ("rate", "potential")


# --------------------------------------------------------------------------------------------
# Modules
# --------------------------------------------------------------------------------------------


class LIF(nn.Module):
    """Multi-step LIF layer: ``[T, B, ...]`` currents in, ``[T, B, ...]`` binary spikes out.

    Holds no state between calls (every call starts from :math:`V = 0`), so no ``reset_net`` is needed.
    When ``recording`` is True, the layer accumulates its spike count and neuron-step count
    (read with :attr:`rate`; cleared with :meth:`clear_record`).

    >>> lif = LIF("atan", tau=2.0, reset="soft")
    >>> lif(torch.tensor([[1.5], [1.5], [1.5]])).flatten().tolist()   # H = 0.75, 1.125, 0.8125
    [0.0, 1.0, 0.0]
    """

    #: read by :mod:`htaf.metrics`: the outputs are binary spikes, time-major ``[T, B, ...]``
    binary_unit = True
    time_major = True

    def __init__(
        self,
        surrogate: str | surrogates.Surrogate = "htaf",
        tau: float = 2.0,
        threshold: float = 1.0,
        reset: str = "hard",
        detach_reset: bool = False,
        decay_input: bool = True,
        backend: str = "auto",
    ):
        super().__init__()
        self.surrogate = surrogates.get(surrogate)
        _leak(tau)
        self.tau = float(tau)
        self.threshold = float(threshold)
        if not self.threshold > 0:
            raise ValueError(f"threshold must be > 0, got {threshold!r}")
        self.reset = _choice("reset", reset, RESETS)
        self.detach_reset = bool(detach_reset)
        self.decay_input = bool(decay_input)
        self.backend = _choice("backend", backend, BACKENDS)
        self.recording = False
        self.clear_record()

    def clear_record(self) -> None:
        """Zero the spike and neuron-step counters."""
        self._spikes = 0.0
        self._count = 0

    @property
    def rate(self) -> float:
        """Recorded spikes per neuron per time step (NaN if nothing was recorded)."""
        total = float(self._spikes) if isinstance(self._spikes, torch.Tensor) else self._spikes
        return total / self._count if self._count else float("nan")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = lif_multistep(
            x, self.surrogate, self.tau, self.threshold, self.reset,
            self.detach_reset, self.decay_input, self.backend,
        )
        if self.recording:
            self._spikes = self._spikes + s.detach().sum(dtype=torch.float64)
            self._count += s.numel()
        return s

    @torch.no_grad()
    def surrogate_input(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`H_t - \\theta` for the currents ``x`` (``[T, ...]``): where the backward pass evaluates the
        surrogate's derivative, at every step (read by :func:`htaf.metrics.surrogate_gradient_statistics`)."""
        check_float_tensor(x, "LIF.surrogate_input")
        if x.dim() < 2:
            raise ValueError(f"LIF.surrogate_input expects a [T, B, ...] tensor, got shape {tuple(x.shape)}")
        leak, gain = _leak(self.tau)
        _, potentials = _lif_forward(x.to(compute_dtype(x.dtype)), leak, gain if self.decay_input else 1.0,
                                     self.threshold, self.reset == "hard")
        return potentials - self.threshold

    def extra_repr(self) -> str:
        return (
            f"{self.surrogate!r}, tau={self.tau}, threshold={self.threshold}, reset={self.reset!r}, "
            f"detach_reset={self.detach_reset}, decay_input={self.decay_input}, backend={self.backend!r}"
        )


class Folded(nn.Module):
    """Apply a stateless module to every time step at once: ``[T, B, ...] -> [T*B, ...] -> [T, B, ...]``."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.module(x.flatten(0, 1))
        return y.unflatten(0, x.shape[:2])


class DirectEncoder(nn.Module):
    """Direct encoding: the static input repeated ``T`` times, ``[B, ...] -> [T, B, ...]`` (a view)."""

    def __init__(self, T: int):
        super().__init__()
        self.T = _check_T(T)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(0).expand(self.T, *x.shape)

    def extra_repr(self) -> str:
        return f"T={self.T}"


class RateEncoder(nn.Module):
    r"""Rate (Bernoulli) encoding: :math:`S_t \sim \mathrm{Bernoulli}(\mathrm{clip}(x, 0, 1))` i.i.d. over ``t``.

    Inputs are intensities; values outside ``[0, 1]`` are clipped. Standardised inputs
    :math:`(x - m)/s` are mapped back first with ``mean`` :math:`m` and ``std`` :math:`s` (scalars or
    tensors broadcastable to one sample, e.g. ``[C, 1, 1]``). Draws come from a private generator
    seeded with ``seed`` (one per device), so a run is reproducible and the global RNG is untouched.
    """

    def __init__(self, T: int, seed: int = 0, mean: float | torch.Tensor = 0.0, std: float | torch.Tensor = 1.0):
        super().__init__()
        self.T = _check_T(T)
        self.seed = int(seed)
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32), persistent=False)
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32), persistent=False)
        self._generators: dict[torch.device, torch.Generator] = {}

    def _generator(self, device: torch.device) -> torch.Generator:
        if device not in self._generators:
            self._generators[device] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[device]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = (x * self.std + self.mean).clamp(0.0, 1.0).unsqueeze(0).expand(self.T, *x.shape)
        return torch.bernoulli(p, generator=self._generator(x.device))

    # The generators' states travel in state_dict(), so a run resumed from a checkpoint draws the same
    # spikes as an uninterrupted one.
    def get_extra_state(self) -> dict[str, torch.Tensor]:
        return {str(device): generator.get_state() for device, generator in self._generators.items()}

    def set_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        for device, generator_state in state.items():
            self._generator(torch.device(device)).set_state(generator_state.cpu())

    def extra_repr(self) -> str:
        return f"T={self.T}, seed={self.seed}"


class SpikeInput(nn.Module):
    """No encoder: the input already is spike trains, batch first ``[B, T, ...]``; returns ``[T, B, ...]``.

    The networks of this module are time-major, data sets batch-major (a sample is ``[T, channels]``), so
    this only swaps the first two axes (a view). ``T`` is the number of steps the network was built for;
    an input with another number of steps raises a ``ValueError`` that says so.

    >>> SpikeInput(3)(torch.zeros(2, 3, 5)).shape
    torch.Size([3, 2, 5])
    """

    def __init__(self, T: int):
        super().__init__()
        self.T = _check_T(T)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 3 or x.shape[1] != self.T:
            raise ValueError(f"SpikeInput expects spike trains [B, T={self.T}, ...] (batch first, then time), got "
                             f"shape {tuple(x.shape)}; build the network with T equal to the data's number of steps")
        return x.transpose(0, 1)

    def extra_repr(self) -> str:
        return f"T={self.T}"


def _check_T(T: int) -> int:
    if isinstance(T, bool) or int(T) != T or int(T) < 1:
        raise ValueError(f"T (number of time steps) must be a positive integer, got {T!r}")
    return int(T)


def make_encoder(
    encoding: str,
    T: int,
    seed: int = 0,
    mean: float | torch.Tensor = 0.0,
    std: float | torch.Tensor = 1.0,
) -> nn.Module:
    """``"direct"`` -> :class:`DirectEncoder`, ``"rate"`` -> :class:`RateEncoder` (seeded; ``mean``/``std`` undo
    input standardisation), ``"spikes"`` -> :class:`SpikeInput` (the input already is spike trains ``[B, T, ...]``)."""
    encoding = _choice("encoding", encoding, ENCODINGS)
    if encoding == "direct":
        return DirectEncoder(T)
    if encoding == "spikes":
        return SpikeInput(T)
    return RateEncoder(T, seed, mean, std)


class SpikingNet(nn.Module):
    r"""Encoder, spiking body and readout: static input ``[B, ...]`` (or, with :class:`SpikeInput`, spike trains
    ``[B, T, ...]``) in, class scores ``[B, K]`` out.

    * ``stem``: the stateless layers before the first :class:`LIF`. With direct encoding they see the
      same input at every step, so they run once on ``[B, ...]`` and the result is repeated ``T`` times
      (identical output; batch-norm statistics over ``B`` equal those over ``T`` copies).
    * ``body``: time-major modules (:class:`Folded` layers and :class:`LIF`), ending in a linear layer
      producing ``[T, B, K]``.
    * ``readout``: ``"rate"`` puts a final :class:`LIF` layer on the scores and returns its firing rate
      :math:`\frac1T\sum_t S_t` (SpikingJelly's output); ``"potential"`` returns the mean score over time
      :math:`\frac1T\sum_t W s_t` (a non-spiking integrator; suits cross-entropy).
    """

    def __init__(
        self,
        stem: nn.Module,
        body: nn.Module,
        encoder: nn.Module,
        readout: str = "potential",
        out_lif: LIF | None = None,
    ):
        super().__init__()
        self.encoder = encoder
        self.stem = stem
        self.body = body
        self.readout = _choice("readout", readout, READOUTS)
        if self.readout == "rate" and out_lif is None:
            raise ValueError("readout='rate' needs an output LIF layer")
        self.out_lif = out_lif if self.readout == "rate" else None

    @property
    def T(self) -> int:
        return self.encoder.T

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.encoder, DirectEncoder):
            h = self.encoder(self.stem(x))
        else:
            e = self.encoder(x)
            h = self.stem(e.flatten(0, 1)).unflatten(0, e.shape[:2])
        scores = self.body(h)
        if self.out_lif is not None:
            scores = self.out_lif(scores)
        return scores.mean(0)


def fc_snn(
    in_features: int,
    num_classes: int,
    hidden: Iterable[int] = (256,),
    T: int = 4,
    encoding: str = "direct",
    readout: str = "potential",
    norm: bool = True,
    seed: int = 0,
    input_mean: float | torch.Tensor = 0.0,
    input_std: float | torch.Tensor = 1.0,
    **lif,
) -> SpikingNet:
    """Fully connected SNN: flatten, ``[Linear -> BN -> LIF]`` per hidden width, ``Linear`` to the classes.

    With ``norm`` (default) each hidden layer is ``Linear(bias=False) -> BatchNorm1d``, as the CSNN's
    conv-BN blocks: with PyTorch's default initialisation and a unit threshold, the input currents of a
    plain deep FC-SNN are too small to reach threshold and the deeper layers fall silent.
    ``norm=False`` gives plain ``Linear`` layers with bias.

    ``lif`` keyword arguments go to every :class:`LIF` (surrogate, tau, threshold, reset, ...);
    ``seed``, ``input_mean`` and ``input_std`` configure the rate encoder (see :class:`RateEncoder`).
    With ``encoding="spikes"`` the input is spike trains ``[B, T, ...]`` and ``in_features`` the size of one
    time step (for ``[B, T, channels]``: ``channels``).

    >>> net = fc_snn(20, 3, hidden=[16], T=10, encoding="spikes")
    >>> net(torch.zeros(4, 10, 20)).shape
    torch.Size([4, 3])
    """
    hidden = [int(h) for h in hidden]
    if not hidden or min(hidden) < 1:
        raise ValueError(f"hidden must list at least one positive width, got {hidden!r}")
    widths = [int(in_features), *hidden]

    def dense(a: int, b: int) -> nn.Sequential:
        if norm:
            return nn.Sequential(nn.Linear(a, b, bias=False), nn.BatchNorm1d(b))
        return nn.Sequential(nn.Linear(a, b))

    stem = nn.Sequential(nn.Flatten(), dense(widths[0], widths[1]))
    body: list[nn.Module] = [LIF(**lif)]
    for a, b in zip(widths[1:-1], widths[2:]):
        body += [Folded(dense(a, b)), LIF(**lif)]
    body.append(Folded(nn.Linear(widths[-1], num_classes)))
    out = LIF(**lif) if readout == "rate" else None
    return SpikingNet(stem, nn.Sequential(*body), make_encoder(encoding, T, seed, input_mean, input_std), readout, out)


def csnn(
    in_channels: int,
    num_classes: int,
    image_size: int = 28,
    channels: int = 128,
    fc_hidden: int | None = None,
    T: int = 4,
    encoding: str = "direct",
    readout: str = "rate",
    seed: int = 0,
    input_mean: float | torch.Tensor = 0.0,
    input_std: float | torch.Tensor = 1.0,
    **lif,
) -> SpikingNet:
    """Convolutional SNN of SpikingJelly's Fashion-MNIST example (``conv_fashion_mnist``).

    ``[Conv3x3(no bias) -> BN -> LIF -> MaxPool2]`` twice, flatten,
    ``Linear(C*(s/4)^2 -> fc_hidden, no bias) -> LIF -> Linear(fc_hidden -> K, no bias)`` and the
    readout. ``fc_hidden`` defaults to ``16*C`` as there (``channels*4*4``). ``image_size`` must be divisible by 4.
    Other keyword arguments as in :func:`fc_snn`.
    """
    if image_size % 4:
        raise ValueError(f"image_size must be divisible by 4 (two 2x2 poolings), got {image_size}")
    c = int(channels)
    fc_hidden = 16 * c if fc_hidden is None else int(fc_hidden)
    flat = c * (image_size // 4) ** 2

    def conv(cin: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))

    stem = conv(in_channels)
    body = nn.Sequential(
        LIF(**lif),
        Folded(nn.MaxPool2d(2)),
        Folded(conv(c)),
        LIF(**lif),
        Folded(nn.MaxPool2d(2)),
        Folded(nn.Sequential(nn.Flatten(), nn.Linear(flat, fc_hidden, bias=False))),
        LIF(**lif),
        Folded(nn.Linear(fc_hidden, num_classes, bias=False)),
    )
    out = LIF(**lif) if readout == "rate" else None
    return SpikingNet(stem, body, make_encoder(encoding, T, seed, input_mean, input_std), readout, out)


# --------------------------------------------------------------------------------------------
# Inspection helpers
# --------------------------------------------------------------------------------------------


def lif_layers(model: nn.Module) -> dict[str, LIF]:
    """The :class:`LIF` layers of ``model`` in forward order, named ``lif1``, ``lif2``, ..."""
    return {f"lif{i}": m for i, m in enumerate((m for m in model.modules() if isinstance(m, LIF)), 1)}


@torch.no_grad()
def spike_rates(model: nn.Module, batches: Iterable[torch.Tensor]) -> dict[str, float]:
    """Mean firing rate (spikes per neuron per step) of every LIF layer over ``batches`` of inputs.

    The model is put in eval mode for the measurement and its previous mode is restored.
    """
    layers = lif_layers(model)
    was_training = model.training
    model.eval()
    try:
        for m in layers.values():
            m.clear_record()
            m.recording = True
        for x in batches:
            model(x)
        return {name: m.rate for name, m in layers.items()}
    finally:
        for m in layers.values():
            m.recording = False
        model.train(was_training)
