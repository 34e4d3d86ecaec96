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

The ``"fused"`` backend runs the whole recurrence inside one autograd function: the forward pass loops
over ``T`` without building a graph and saves only :math:`H`; the backward pass runs the exact adjoint
recurrence (with :math:`\bar X_t = \partial L/\partial X_t` etc.)

.. math::

    \bar V_t &= \lambda \bar H_{t+1}, \qquad \bar V_{T-1} = 0, \qquad g_t = g(H_t - \theta) \\
    \bar H_t &= \bar S_t\, g_t + \bar V_t \,(1 - \theta g_t) \quad \text{(soft; } 1 \text{ if detached)} \\
    \bar H_t &= \bar S_t\, g_t + \bar V_t \,\big((1 - S_t) - H_t g_t\big) \quad \text{(hard; } 1 - S_t \text{ if detached)} \\
    \bar X_t &= c\, \bar H_t.

Each step is a few in-place element-wise kernels (one fused multiply-add carries the membrane or the
adjoint); only the outputs are allocated at full ``[T, ...]`` size, since on the CPU a fresh large buffer
costs a page fault per page, more than the arithmetic. The ``"compiled"`` backend runs the same two
recurrences through ``torch.compile`` (inductor), which fuses each into a single loop over ``T`` per
neuron: the forward pass reads :math:`X` once and writes :math:`S` and :math:`H`, the backward pass reads
:math:`\bar S` and :math:`H` and writes :math:`\bar X`. It needs a C++ compiler at run time (on the CPU)
and compiles once per configuration; when compiling fails it warns and uses ``"fused"``.
The default ``"auto"`` picks ``"compiled"`` for CPU inputs with at least
:data:`AUTO_COMPILE_MIN_NEURONS` neurons per step where ``torch.compile`` works, and ``"fused"`` otherwise
(small layers, CUDA, inside an enclosing ``torch.compile``); see :func:`resolve_backend`.

The ``"loop"`` backend writes the same recurrence with ordinary autograd ops (the reference the tests
compare against).
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import torch
from torch import nn

from .. import functional as HF
from .. import surrogates
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

RESETS = ("soft", "hard")
ENCODINGS = ("direct", "rate", "spikes")
READOUTS = ("rate", "potential")
BACKENDS = ("auto", "fused", "compiled", "loop")


def _choice(kind: str, value: str, options: Sequence[str]) -> str:
    if value not in options:
        raise ValueError(f"unknown {kind} {value!r}; choose one of {', '.join(options)}")
    return value


def _leak(tau: float) -> tuple[float, float]:
    """``(lambda, c)`` for time constant ``tau``: ``lambda = 1 - 1/tau``; ``tau = inf`` is the IF neuron."""
    tau = float(tau)
    if math.isnan(tau) or tau < 1.0:
        raise ValueError(f"tau must be >= 1 (leak 1 - 1/tau in [0, 1]); got {tau!r}; use inf for IF neurons")
    return (1.0, 1.0) if math.isinf(tau) else (1.0 - 1.0 / tau, 1.0 / tau)


# --------------------------------------------------------------------------------------------
# The recurrence: fused autograd function and the plain-autograd reference loop
# --------------------------------------------------------------------------------------------


def _lif_forward(x, leak, gain, threshold, hard):
    """Graph-free forward recurrence: ``(spikes, potentials H)``, both ``[T, ...]``.

    ``H`` starts as ``gain * x`` (one pass over the whole sequence); each step then adds the carried
    membrane with one fused multiply-add (``addcmul``) and records which neurons stay below threshold.
    """
    potentials = torch.empty(x.shape, dtype=x.dtype, device=x.device)  # dense even when x is an expanded view
    torch.mul(x, gain, out=potentials) if gain != 1.0 else potentials.copy_(x)
    below = torch.empty_like(potentials)  # 1 - S_t (float)
    scratch = None if hard else torch.empty_like(potentials[0])
    steps = potentials.shape[0]
    for t in range(steps):
        h = potentials[t]
        if t + 1 == steps:
            break
        if hard:  # V_t = H_t (1 - S_t)
            torch.lt(h, threshold, out=below[t])
            potentials[t + 1].addcmul_(h, below[t], value=leak)
        else:  # V_t = H_t - theta S_t
            torch.ge(h, threshold, out=below[t])  # here: S_t
            torch.sub(h, below[t], alpha=threshold, out=scratch)
            potentials[t + 1].add_(scratch, alpha=leak)
    spikes = torch.ge(potentials, threshold, out=below)  # all steps at once (NaN does not fire)
    return spikes, potentials


def _lif_backward(grad_spikes, potentials, derivative, leak, gain, threshold, hard, detach_reset):
    """Adjoint recurrence, one time step at a time (``dH_t = dS_t g_t + leak * dV_t/dH_t * dH_{t+1}``).

    Only the result is allocated at full ``[T, ...]`` size: the surrogate derivative and the coefficients
    are formed per step in step-sized temporaries, which the allocator reuses (fresh full-size buffers
    cost a page fault per page, more than the arithmetic itself on the CPU).
    """
    work = compute_dtype(potentials.dtype)
    grad = torch.empty(potentials.shape, dtype=potentials.dtype, device=potentials.device)
    for t in range(potentials.shape[0] - 1, -1, -1):
        h = potentials[t]
        g = derivative((h - threshold).to(work)).to(h.dtype)
        out = torch.mul(grad_spikes[t], g, out=grad[t])  # dL/dS_t * g_t
        if t + 1 == potentials.shape[0]:
            continue
        later = grad[t + 1]  # dL/dH_{t+1}; dL/dV_t = leak * later
        if hard:  # dV/dH = (1 - S) - H g   (detached: 1 - S)
            coef = torch.lt(h, threshold).to(h.dtype)
            if not detach_reset:
                coef.addcmul_(h, g, value=-1.0)
            out.addcmul_(coef, later, value=leak)
        elif detach_reset:  # dV/dH = 1
            out.add_(later, alpha=leak)
        else:  # dV/dH = 1 - theta g
            out.addcmul_(g.mul_(-threshold).add_(1.0), later, value=leak)
    if gain != 1.0:
        grad.mul_(gain)
    return grad


class _LIFFunction(torch.autograd.Function):
    """Whole-sequence LIF: graph-free forward loop, hand-written adjoint loop backward (saves H only).

    ``kernels`` is ``(forward, backward)``: the eager :func:`_lif_forward` / :func:`_lif_backward` or
    their ``torch.compile``'d counterparts (backend ``"compiled"``).
    """

    @staticmethod
    def forward(ctx, x, derivative, leak, gain, threshold, hard, detach_reset, kernels=None):
        fwd = _lif_forward if kernels is None else kernels[0]
        spikes, potentials = fwd(x, leak, gain, threshold, hard)
        ctx.save_for_backward(potentials)
        ctx.derivative, ctx.leak, ctx.gain = derivative, leak, gain
        ctx.threshold, ctx.hard, ctx.detach_reset = threshold, hard, detach_reset
        ctx.kernels, ctx.shape = kernels, x.shape
        return spikes.view(x.shape)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_spikes):
        (potentials,) = ctx.saved_tensors
        args = (grad_spikes.reshape(potentials.shape), potentials, ctx.derivative, ctx.leak, ctx.gain,
                ctx.threshold, ctx.hard, ctx.detach_reset)
        grad = None
        if ctx.kernels is not None:
            try:
                grad = ctx.kernels[1](*args)
            except Exception as err:  # compiling the backward failed: the eager adjoint gives the same result
                _compile_failed(ctx.kernels, err)
        if grad is None:
            grad = _lif_backward(*args)
        return grad.view(ctx.shape), None, None, None, None, None, None, None


# --------------------------------------------------------------------------------------------
# Optional compiled kernels (torch.compile / inductor): one fused loop over T per element
# --------------------------------------------------------------------------------------------


def _lif_forward_unrolled(x, leak, gain, threshold, hard):
    # x: [T, N]. Written step by step so that inductor fuses the whole recurrence into one kernel.
    v = None
    spikes, potentials = [], []
    for t in range(x.shape[0]):
        h = gain * x[t] if v is None else leak * v + gain * x[t]
        s = (h >= threshold).to(x.dtype)
        v = h * (1.0 - s) if hard else h - threshold * s
        spikes.append(s)
        potentials.append(h)
    return torch.stack(spikes), torch.stack(potentials)


def _lif_backward_unrolled(grad_spikes, potentials, derivative, leak, gain, threshold, hard, detach_reset):
    grads = []  # filled from t = T-1 down to 0 (append only: Dynamo 2.11 cannot trace list item assignment)
    carried = None  # dL/dV_t
    for t in range(potentials.shape[0] - 1, -1, -1):
        h = potentials[t]
        g = derivative(h - threshold)
        grad_h = grad_spikes[t] * g
        if carried is not None:
            if hard:
                dv = (h < threshold).to(h.dtype)
                if not detach_reset:
                    dv = dv - h * g
            else:
                dv = 1.0 if detach_reset else 1.0 - threshold * g
            grad_h = grad_h + carried * dv
        grads.append(gain * grad_h)
        carried = leak * grad_h
    return torch.stack(grads[::-1])


#: configurations compiled so far -> (forward, backward), or None where compiling failed
_COMPILED: dict[tuple, tuple | None] = {}
#: most configurations given compiled kernels (torch._dynamo recompiles per configuration and, by default,
#: stops at 8 graphs per function); later configurations run the eager kernels
_MAX_COMPILED = 4
#: below this many neurons per step the eager kernels win (the compiled call's fixed cost dominates)
AUTO_COMPILE_MIN_NEURONS = 1 << 16
_COMPILER_OK: bool | None = None


def compiled_available() -> bool:
    """True when the ``"compiled"`` backend can run here: ``torch.compile`` with inductor and a C++ compiler."""
    global _COMPILER_OK
    if _COMPILER_OK is None:
        import shutil

        try:
            import torch._inductor  # noqa: F401
            _COMPILER_OK = hasattr(torch, "compile") and any(
                shutil.which(c) for c in (__import__("os").environ.get("CXX", "g++"), "g++", "c++", "clang++"))
        except Exception:
            _COMPILER_OK = False
    return _COMPILER_OK


def _compiled_kernels(key: tuple):
    """The compiled ``(forward, backward)`` for ``key``, or None (too many configurations, or compiling failed)."""
    if key in _COMPILED:
        return _COMPILED[key]
    if len(_COMPILED) >= _MAX_COMPILED or not compiled_available():
        return None
    fwd_graph = torch.compile(_lif_forward_unrolled, fullgraph=True)
    bwd_graph = torch.compile(_lif_backward_unrolled, fullgraph=True)
    mark = getattr(torch._dynamo, "maybe_mark_dynamic", None)

    def fwd(x, *args):
        if mark is not None:
            mark(x, 1)  # one graph for every layer width (no recompiling per layer)
        return fwd_graph(x, *args)

    def bwd(grad_spikes, potentials, *args):
        if mark is not None:
            mark(grad_spikes, 1)
            mark(potentials, 1)
        return bwd_graph(grad_spikes, potentials, *args)

    _COMPILED[key] = (fwd, bwd)
    return _COMPILED[key]


def _compile_failed(kernels: tuple, err: Exception) -> None:
    """Warn once and stop using ``kernels`` (their configuration runs the eager kernels from now on)."""
    import warnings

    for key, value in _COMPILED.items():
        if value is kernels:
            _COMPILED[key] = None
    warnings.warn(f"htaf LIF: compiled backend unavailable ({type(err).__name__}: {err}); using the eager "
                  "kernels", RuntimeWarning, stacklevel=3)


def _lif_compiled(x, sg, leak, gain, threshold, hard, detach_reset):
    """The recurrence with compiled kernels; falls back to the eager ones (with a warning) if compiling fails."""
    key = (x.device.type, x.dtype, x.shape[0], sg, leak, gain, threshold, hard, detach_reset)
    kernels = _compiled_kernels(key)
    if kernels is not None:
        flat = x.flatten(1)
        try:
            # compile (first call) and run the forward now, so that a failure falls back cleanly
            spikes = _LIFFunction.apply(flat, sg.derivative, leak, gain, threshold, hard, detach_reset, kernels)
            return spikes.view(x.shape)
        except Exception as err:  # no working C++ compiler, an inductor limitation, ...
            _compile_failed(kernels, err)
    return _LIFFunction.apply(x, sg.derivative, leak, gain, threshold, hard, detach_reset)


def resolve_backend(backend: str, x: torch.Tensor) -> str:
    """The backend ``"auto"`` picks for input ``x`` (other names pass through).

    ``"compiled"`` for large CPU inputs (at least :data:`AUTO_COMPILE_MIN_NEURONS` neurons per step)
    where ``torch.compile`` works, outside an enclosing ``torch.compile`` trace; ``"fused"`` otherwise.
    """
    if backend != "auto":
        return backend
    if (x.device.type == "cpu" and x[0].numel() >= AUTO_COMPILE_MIN_NEURONS
            and not torch.compiler.is_compiling() and compiled_available()):
        return "compiled"
    return "fused"


def _lif_loop(x, surrogate, leak, gain, threshold, hard, detach_reset):
    """Reference: the same recurrence with plain autograd ops (one graph node per op and step)."""
    v = torch.zeros_like(x[0])
    out = []
    for t in range(x.shape[0]):
        h = leak * v + gain * x[t]
        s = HF.spike(h - threshold, surrogate)
        r = s.detach() if detach_reset else s
        v = h * (1.0 - r) if hard else h - threshold * r
        out.append(s)
    return torch.stack(out)


def lif_multistep(
    x: torch.Tensor,
    surrogate: str | surrogates.Surrogate = "htaf",
    tau: float = 2.0,
    threshold: float = 1.0,
    reset: str = "hard",
    detach_reset: bool = False,
    decay_input: bool = True,
    backend: str = "auto",
) -> torch.Tensor:
    r"""Spikes :math:`S_t` of LIF neurons driven by ``x`` of shape ``[T, ...]`` (see the module docstring).

    Args:
        x: input currents, time first, floating point.
        surrogate: registry name or :class:`htaf.surrogates.Surrogate` used in the backward pass.
        tau: membrane time constant (>= 1; ``inf`` for integrate-and-fire).
        threshold: firing threshold :math:`\theta > 0`.
        reset: ``"soft"`` (subtract :math:`\theta`) or ``"hard"`` (to 0).
        detach_reset: no gradient through the reset term.
        decay_input: scale the input by :math:`1/\tau` (SpikingJelly's convention) instead of 1.
        backend: ``"auto"`` (default: :func:`resolve_backend`), ``"fused"`` (one autograd node, eager
            kernels), ``"compiled"`` (one autograd node, ``torch.compile``'d kernels) or ``"loop"``
            (plain autograd, the reference).

    float16/bfloat16 inputs are integrated in float32 (a 16-bit membrane drifts); the spikes are
    returned in the input dtype (0 and 1 are exact).
    """
    check_float_tensor(x, "lif_multistep")
    if x.dim() < 2:
        raise ValueError(f"lif_multistep expects a [T, B, ...] tensor, got shape {tuple(x.shape)}")
    sg = surrogates.get(surrogate)
    leak, gain = _leak(tau)
    if not decay_input:
        gain = 1.0
    threshold = float(threshold)
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0, got {threshold!r}")
    hard = _choice("reset", reset, RESETS) == "hard"
    work = x.to(compute_dtype(x.dtype))  # 16-bit inputs (autocast): the membrane runs in float32
    backend = resolve_backend(_choice("backend", backend, BACKENDS), work)
    if backend == "loop":
        spikes = _lif_loop(work, sg, leak, gain, threshold, hard, bool(detach_reset))
    elif backend == "compiled":
        spikes = _lif_compiled(work, sg, leak, gain, threshold, hard, bool(detach_reset))
    else:
        spikes = _LIFFunction.apply(work, sg.derivative, leak, gain, threshold, hard, bool(detach_reset))
    return spikes.to(x.dtype)


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
