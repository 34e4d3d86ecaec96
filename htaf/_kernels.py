r"""Closed forms and fast kernels shared by :mod:`htaf.surrogates` and :mod:`htaf.functional`.

The one home of the arithmetic: HTAF's value and derivative (differentiable closed forms and their in-place
twins), :func:`sech2`, the exact step, and the two autograd functions (smooth HTAF; step forward with a
surrogate's derivative backward), called through :func:`apply` (their classic form in eager mode, a third of the
per-call cost). It depends on :mod:`htaf._validation` only, so that the package's
dependencies run one way::

    _validation, _kernels  <-  surrogates  <-  functional  <-  nn

Public names are re-exported by :mod:`htaf.functional` (``sech2``); everything else here is private.
"""

from __future__ import annotations

import torch

from ._validation import check_fits_dtype, compute_dtype

#: HTAF's default parameters, declared here once (the lowest module): every default of the package reads them
#: (:func:`htaf.functional.htaf`, :class:`htaf.nn.HTAF`, ``htaf.surrogates.HTAF.defaults``, the experiments through
#: the surrogate's defaults); ``tests/test_units.py`` checks that no other module spells them out
HTAF_ALPHA = 4.0
HTAF_BETA = 1.0

__all__ = [
    "HTAF_ALPHA",
    "HTAF_BETA",
    "sech2",
    "htaf_value",
    "htaf_derivative",
    "htaf_value_inplace",
    "htaf_backward_inplace",
    "step",
    "check_htaf_fits",
    "_HTAFFunction",
    "_SpikeFunction",
    "apply",
]


# --------------------------------------------------------------------------------------------
# Closed forms (plain tensor math; differentiable, so double backward works through them)
# --------------------------------------------------------------------------------------------


def sech2(z: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    r"""``scale * sech(z)**2``, computed as :math:`4q(1-q)` with :math:`q = \sigma(-2|z|)`.

    Since :math:`q \le 1/2`, neither factor cancels: unlike ``1 - tanh(z)**2`` this keeps full relative
    precision in the tails, so the slow :math:`e^{-2\beta|x|}` decay of HTAF's gradient is represented down
    to the smallest normal number instead of rounding to zero once ``tanh`` rounds to 1. The product runs
    in PyTorch's fused ``sigmoid_backward`` kernel (``torch.cosh`` would be some 30 times slower on CPU).
    """
    q = torch.sigmoid(-2.0 * z.abs())
    return torch.ops.aten.sigmoid_backward(torch.full_like(q, 4.0 * scale), q)


def htaf_value(x: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    r""":math:`\sigma(\alpha\tanh(\beta x))` in the compute dtype, cast back to ``x.dtype``."""
    work = x.to(compute_dtype(x.dtype))
    value = torch.sigmoid(alpha * torch.tanh(beta * work))
    # no no-op .to(): it would return `value` itself, an alias torch 2.11's Dynamo mishandles (see _HTAFFunction)
    return value if value.dtype == x.dtype else value.to(x.dtype)


def htaf_derivative(x: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    r""":math:`\alpha\beta\,s(1-s)\,\mathrm{sech}^2(\beta x)`, :math:`s = \sigma(\alpha\tanh\beta x)`; exact in the tails."""
    # s(1-s) from PyTorch's fused sigmoid_backward kernel, sech^2 from sech2 (no cancellation).
    work = x.to(compute_dtype(x.dtype))
    z = work if beta == 1.0 else beta * work
    s = torch.sigmoid(alpha * torch.tanh(z))
    return torch.ops.aten.sigmoid_backward(sech2(z, alpha * beta), s).to(x.dtype)


# Fast twins of the two closed forms above, for the autograd function when no graph is being recorded.
# On CPU, allocating intermediates costs more than the arithmetic (3x for the forward): the backward
# therefore works in place and evaluates sech^2 as 1 - tanh^2 inside PyTorch's fused tanh_backward kernel.
# That differs from the precise form by less than one rounding unit of the peak slope (absolute), so it only
# loses relative precision deep in the tails, where the gradient is below ~1e-6 (float32) or ~1e-15
# (float64) of its peak. tests/test_functional.py checks each twin against its differentiable original.


def _tanh_of_scaled(x: torch.Tensor, beta: float) -> torch.Tensor:
    """A new tensor ``tanh(beta * x)`` in the compute dtype (one pass fewer for the default beta = 1)."""
    work = x.to(compute_dtype(x.dtype))
    return torch.tanh(work) if beta == 1.0 else torch.mul(work, beta).tanh_()


def htaf_value_inplace(x: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """:func:`htaf_value` with in-place intermediates (``x`` itself is left untouched)."""
    return _tanh_of_scaled(x, beta).mul_(alpha).sigmoid_().to(x.dtype)


def htaf_backward_inplace(x: torch.Tensor, grad_output: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """``grad_output * htaf_derivative(x)`` with in-place intermediates and fused PyTorch kernels."""
    dtype = compute_dtype(x.dtype)
    t = _tanh_of_scaled(x, beta)
    s = torch.mul(t, alpha).sigmoid_()
    grad = torch.ops.aten.sigmoid_backward.grad_input(grad_output.to(dtype), s, grad_input=s)
    grad = torch.ops.aten.tanh_backward.grad_input(grad, t, grad_input=grad)
    return grad.mul_(alpha * beta).to(x.dtype)


def step(x: torch.Tensor) -> torch.Tensor:
    """The exact Heaviside step, 1 at ``x >= 0``; NaN stays NaN."""
    return torch.where(torch.isnan(x), x, (x >= 0).to(x.dtype))


def check_htaf_fits(alpha: float, beta: float, dtype: torch.dtype) -> None:
    """Refuse ``alpha``/``beta`` whose value, peak slope or intermediates overflow ``dtype`` (see
    :func:`htaf._validation.check_fits_dtype`)."""
    owner = lambda: f"HTAF(alpha={alpha:g}, beta={beta:g})"  # noqa: E731 (formatted only for an error)
    check_fits_dtype(owner, {"alpha": alpha, "beta": beta}, alpha * beta / 4.0, dtype)


# --------------------------------------------------------------------------------------------
# Autograd functions (underscored: the names show in ``grad_fn``, e.g. ``<_SpikeFunctionBackward>``)
# --------------------------------------------------------------------------------------------


class _HTAFFunction(torch.autograd.Function):
    """Smooth HTAF forward, closed-form derivative backward (input saved, nothing else)."""

    @staticmethod
    def forward(x, alpha, beta):
        if torch.compiler.is_compiling():
            # Under torch.compile, the out-of-place closed form. Torch 2.11's Dynamo silently returns a zero
            # gradient when the forward returns a tensor that is also an earlier intermediate (the result of
            # an in-place op like sigmoid_(), or of a no-op .to()): it records it as two graph outputs and
            # routes the gradient to the wrong one (pytorch/pytorch#180642, fixed in 2.12). A compiled graph
            # gains nothing from in-place ops anyway (AOTAutograd functionalizes them).
            return htaf_value(x, alpha, beta)
        return htaf_value_inplace(x, alpha, beta)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, alpha, beta = inputs
        ctx.save_for_backward(x)
        ctx.alpha, ctx.beta = alpha, beta

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: keep the backward itself differentiable
            return grad_output * htaf_derivative(x, ctx.alpha, ctx.beta), None, None
        return htaf_backward_inplace(x, grad_output, ctx.alpha, ctx.beta), None, None


class _SpikeFunction(torch.autograd.Function):
    """Exact step (0/1 or +/-1) forward, a surrogate's closed-form derivative backward.

    ``surrogate`` is any object with ``derivative(x)`` and ``grad_input(x, grad_output)`` (a
    :class:`htaf.surrogates.Surrogate`); this module does not need to know the class.
    """

    @staticmethod
    def forward(x, surrogate, signed):
        out = step(x)
        return 2.0 * out - 1.0 if signed else out

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, surrogate, signed = inputs
        ctx.save_for_backward(x)
        ctx.surrogate, ctx.signed = surrogate, signed

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        work = x.to(compute_dtype(x.dtype))
        grad_output = grad_output.to(work.dtype)
        if torch.is_grad_enabled():  # create_graph=True: keep the backward itself differentiable
            grad = grad_output * ctx.surrogate.derivative(work)
        else:
            grad = ctx.surrogate.grad_input(work, grad_output)
        if ctx.signed:
            grad = 2.0 * grad
        return grad.to(x.dtype), None, None


def sync_inductor_determinism(load: bool = False) -> None:
    """Copy torch's deterministic flag into ``torch._inductor.config.deterministic`` (what
    ``torch.use_deterministic_algorithms`` does as well): when inductor is loaded already, or with ``load``, before
    compiling. :func:`htaf.engine.set_deterministic` sets torch's flag without importing inductor (seconds)."""
    import importlib
    import sys

    if load:
        importlib.import_module("torch._inductor.config")
    inductor_config = sys.modules.get("torch._inductor.config")
    if inductor_config is not None:
        inductor_config.deterministic = torch.are_deterministic_algorithms_enabled()


# --------------------------------------------------------------------------------------------
# Calling them: the classic form in eager mode, the setup_context form where torch needs it
# --------------------------------------------------------------------------------------------


def _classic(function: type[torch.autograd.Function]) -> type[torch.autograd.Function]:
    """``function`` (a ``forward`` without ``ctx`` and a separate ``setup_context``) in the classic form,
    ``forward(ctx, *inputs)``, with the same forward, context and backward, and the same name (``grad_fn`` shows
    ``<_SpikeFunctionBackward>`` either way). Its ``apply`` costs about a third: for the separate form torch binds the
    forward's default arguments by ``inspect.signature`` at every call (about 16 us, a tenth of a small network's
    training step). torch.func's transforms (``grad``, ``jacrev``, ...) accept only the separate form."""

    def forward(ctx, *inputs):
        output = function.forward(*inputs)
        function.setup_context(ctx, inputs, output)
        return output

    namespace = {"forward": staticmethod(forward), "backward": staticmethod(function.backward),
                 "__doc__": function.__doc__, "__module__": function.__module__}
    return type(function.__name__, (torch.autograd.Function,), namespace)


_CLASSIC = {function: _classic(function) for function in (_HTAFFunction, _SpikeFunction)}
_wrapped = getattr(getattr(torch._C, "_functorch", None), "is_functorch_wrapped_tensor", None)


def apply(function: type[torch.autograd.Function], x: torch.Tensor, *args):
    """``function.apply(x, *args)``: the classic form (:func:`_classic`) in plain eager mode; ``function`` itself (the
    separate ``setup_context`` form) under ``torch.compile``, for the tensors of torch.func's transforms, and where
    this torch cannot tell those tensors apart."""
    if torch.compiler.is_compiling() or _wrapped is None or _wrapped(x):
        return function.apply(x, *args)
    return _CLASSIC[function].apply(x, *args)

