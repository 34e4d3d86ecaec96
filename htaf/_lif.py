r"""The LIF kernel engine: the membrane recurrence of :class:`htaf.models.snn.LIF` over ``T`` time steps.

Private: the model zoo (:mod:`htaf.models.snn`) builds on :func:`lif_multistep` and re-exports the names of
its public API (:func:`lif_multistep`, :data:`BACKENDS`, :data:`RESETS`, :func:`resolve_backend`,
:func:`compiled_available`, :data:`AUTO_COMPILE_MIN_NEURONS`); the dynamics are described there.

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
from typing import Sequence

import torch

from . import _kernels
from . import functional as HF
from . import surrogates
from ._validation import check_float_tensor, compute_dtype

__all__ = ["AUTO_COMPILE_MIN_NEURONS", "BACKENDS", "RESETS", "compiled_available", "lif_multistep", "resolve_backend"]

RESETS = ("soft", "hard")
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
        from htaf._extras import cxx_compiler

        try:
            import torch._inductor  # noqa: F401
            _COMPILER_OK = hasattr(torch, "compile") and cxx_compiler() is not None
        except Exception:
            _COMPILER_OK = False
    return _COMPILER_OK


def _compiled_kernels(key: tuple):
    """The compiled ``(forward, backward)`` for ``key``, or None (too many configurations, or compiling failed)."""
    if key in _COMPILED:
        return _COMPILED[key]
    if len(_COMPILED) >= _MAX_COMPILED or not compiled_available():
        return None
    _kernels.sync_inductor_determinism(load=True)  # htaf.engine.set_deterministic leaves inductor's flag to here
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
    sg.check_dtype(x.dtype)  # parameters that overflow or underflow the input's dtype would give non-finite gradients
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
