r"""Functional interface: HTAF, its derivative, the exact step and the spike (straight-through) functions.

Definition used throughout this project (the paper's exact formula is not public; see the book):

.. math::

    \mathrm{HTAF}_{\alpha,\beta}(x) = \sigma\big(\alpha \tanh(\beta x)\big), \qquad \alpha, \beta > 0,

with :math:`\sigma` the logistic sigmoid. ``alpha`` sets the sharpness (the gradient mass near zero),
``beta`` the tail: the derivative decays like :math:`e^{-2\beta|x|}`.

Conventions:

* :func:`heaviside` is 1 at ``x >= 0`` and 0 below (a unit fires when it reaches its threshold);
  :func:`sign` is its +/-1 form, ``+1`` at ``x >= 0``. Both map NaN to NaN.
* Closed forms are evaluated in float32 for float16/bfloat16 inputs and cast back, so the output dtype
  always equals the input dtype.
* Every autograd function saves only its input for backward.
"""

from __future__ import annotations

import torch

from ._validation import check_float_tensor, check_positive, compute_dtype

__all__ = [
    "htaf",
    "htaf_grad",
    "htaf_sign",
    "heaviside",
    "sign",
    "spike",
    "sign_spike",
    "sech2",
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


def _htaf_value(x: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    work = x.to(compute_dtype(x.dtype))
    return torch.sigmoid(alpha * torch.tanh(beta * work)).to(x.dtype)


def _htaf_derivative(x: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    # alpha*beta * s(1-s) * sech^2(beta x), with s(1-s) from PyTorch's fused sigmoid_backward kernel.
    work = x.to(compute_dtype(x.dtype))
    z = work if beta == 1.0 else beta * work
    s = torch.sigmoid(alpha * torch.tanh(z))
    return torch.ops.aten.sigmoid_backward(sech2(z, alpha * beta), s).to(x.dtype)


# Fast twins of the two closed forms above, for the autograd function when no graph is being recorded.
# On CPU, allocating intermediates costs more than the arithmetic (3x for the forward): the backward
# therefore works in place and evaluates sech^2 as 1 - tanh^2 inside PyTorch's fused tanh_backward kernel. That differs from the precise form by less than
# one rounding unit of the peak slope (absolute), so it only loses relative precision deep in the tails,
# where the gradient is below ~1e-6 (float32) or ~1e-15 (float64) of its peak. tests/test_functional.py
# checks each twin against its differentiable original.


def _tanh_of_scaled(x: torch.Tensor, beta: float) -> torch.Tensor:
    """A new tensor ``tanh(beta * x)`` in the compute dtype (one pass fewer for the default beta = 1)."""
    work = x.to(compute_dtype(x.dtype))
    return torch.tanh(work) if beta == 1.0 else torch.mul(work, beta).tanh_()


def _htaf_value_inplace(x: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    return _tanh_of_scaled(x, beta).mul_(alpha).sigmoid_().to(x.dtype)


def _htaf_backward_inplace(x: torch.Tensor, grad_output: torch.Tensor, alpha: float, beta: float):
    dtype = compute_dtype(x.dtype)
    t = _tanh_of_scaled(x, beta)
    s = torch.mul(t, alpha).sigmoid_()
    grad = torch.ops.aten.sigmoid_backward.grad_input(grad_output.to(dtype), s, grad_input=s)
    grad = torch.ops.aten.tanh_backward.grad_input(grad, t, grad_input=grad)
    return grad.mul_(alpha * beta).to(x.dtype)


def _step(x: torch.Tensor) -> torch.Tensor:
    return torch.where(torch.isnan(x), x, (x >= 0).to(x.dtype))


# --------------------------------------------------------------------------------------------
# Autograd functions
# --------------------------------------------------------------------------------------------


class _HTAFFunction(torch.autograd.Function):
    """Smooth HTAF forward, closed-form derivative backward (input saved, nothing else)."""

    @staticmethod
    def forward(x, alpha, beta):
        return _htaf_value_inplace(x, alpha, beta)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, alpha, beta = inputs
        ctx.save_for_backward(x)
        ctx.alpha, ctx.beta = alpha, beta

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: keep the backward itself differentiable
            return grad_output * _htaf_derivative(x, ctx.alpha, ctx.beta), None, None
        return _htaf_backward_inplace(x, grad_output, ctx.alpha, ctx.beta), None, None


class _SpikeFunction(torch.autograd.Function):
    """Exact step (0/1 or +/-1) forward, a surrogate's closed-form derivative backward."""

    @staticmethod
    def forward(x, surrogate, signed):
        step = _step(x)
        return 2.0 * step - 1.0 if signed else step

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


# --------------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------------


def htaf(x: torch.Tensor, alpha: float = 4.0, beta: float = 1.0) -> torch.Tensor:
    r"""HTAF, the sigmoid-tanh approximation of the Heaviside step, applied elementwise.

    .. math:: \mathrm{HTAF}_{\alpha,\beta}(x) = \sigma(\alpha \tanh(\beta x))

    Values lie in :math:`(\sigma(-\alpha), \sigma(\alpha))`; :math:`f(-x) = 1 - f(x)`; the peak slope
    at 0 is :math:`\alpha\beta/4`. The backward pass uses the closed form :func:`htaf_grad`.

    Args:
        x: floating-point tensor (float16, bfloat16, float32 or float64, any device).
        alpha: sharpness, finite and > 0.
        beta: tail rate, finite and > 0.

    Example:
        >>> import torch, htaf.functional as F
        >>> F.htaf(torch.tensor([-10.0, 0.0, 10.0]), alpha=8.0).round(decimals=4)
        tensor([3.0000e-04, 5.0000e-01, 9.9970e-01])
    """
    check_float_tensor(x, "htaf")
    alpha = check_positive("alpha", alpha)
    beta = check_positive("beta", beta)
    return _HTAFFunction.apply(x, alpha, beta)


def htaf_grad(x: torch.Tensor, alpha: float = 4.0, beta: float = 1.0) -> torch.Tensor:
    r"""Closed-form derivative of :func:`htaf` with respect to ``x``.

    .. math:: f'(x) = \alpha\beta\, s(1-s)\,(1-\tanh^2(\beta x)), \quad s = f(x)

    ``1 - tanh^2`` is evaluated as :func:`sech2`, exact in the tails, where
    :math:`f'(x) \sim 4\alpha\beta\,\sigma'(\alpha)\,e^{-2\beta|x|}`. (The backward pass of :func:`htaf`
    uses PyTorch's fused ``1 - tanh^2`` kernel for speed; the two agree to within one rounding unit of the
    peak slope.)
    """
    check_float_tensor(x, "htaf_grad")
    alpha = check_positive("alpha", alpha)
    beta = check_positive("beta", beta)
    return _htaf_derivative(x, alpha, beta)


def htaf_sign(x: torch.Tensor, alpha: float = 4.0, beta: float = 1.0) -> torch.Tensor:
    r"""The +/-1 form of HTAF, a smooth approximation of ``sign``: :math:`2f(x) - 1 = \tanh(\alpha\tanh(\beta x)/2)`.

    Its derivative is ``2 * htaf_grad(x)``; autograd uses that closed form.
    """
    return 2.0 * htaf(x, alpha, beta) - 1.0


def heaviside(x: torch.Tensor) -> torch.Tensor:
    """The exact Heaviside step: 1 where ``x >= 0``, 0 where ``x < 0``, NaN where ``x`` is NaN.

    The result is detached from autograd: the step's derivative is zero almost everywhere, so use
    :func:`spike` (or :func:`htaf`) to train through it.
    """
    check_float_tensor(x, "heaviside")
    return _step(x.detach())


def sign(x: torch.Tensor) -> torch.Tensor:
    """The exact sign with the same convention as :func:`heaviside`: +1 where ``x >= 0``, -1 below."""
    return 2.0 * heaviside(x) - 1.0


def _resolve(surrogate):
    from . import surrogates  # local import: surrogates builds on this module

    return surrogates.get(surrogate)


def spike(x: torch.Tensor, surrogate="htaf") -> torch.Tensor:
    r"""Exact Heaviside step forward, the surrogate's derivative backward.

    This is the spike function of spiking networks: ``forward = heaviside(x)``,
    ``backward = grad * surrogate.derivative(x)``.

    Args:
        x: floating-point tensor (for SNNs, membrane potential minus threshold).
        surrogate: a :class:`htaf.surrogates.Surrogate` or a registry name (default parameters).

    Example:
        >>> import torch, htaf
        >>> x = torch.tensor([-0.5, 0.5], requires_grad=True)
        >>> y = htaf.functional.spike(x, htaf.surrogates.get("htaf", alpha=4.0, beta=1.0))
        >>> y
        tensor([0., 1.], grad_fn=<_SpikeFunctionBackward>)
    """
    check_float_tensor(x, "spike")
    return _SpikeFunction.apply(x, _resolve(surrogate), False)


def sign_spike(x: torch.Tensor, surrogate="htaf") -> torch.Tensor:
    r"""Exact ``sign`` forward (+1 at ``x >= 0``), twice the surrogate's derivative backward.

    The binarizer of binary neural networks. Since :math:`\mathrm{sign} = 2H - 1`, a surrogate of
    the step :math:`H` with derivative :math:`g` is a surrogate of ``sign`` with derivative
    :math:`2g`; with ``surrogate="ste"`` this is BinaryNet's clipped straight-through estimator.
    """
    check_float_tensor(x, "sign_spike")
    return _SpikeFunction.apply(x, _resolve(surrogate), True)
