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

from . import _kernels
from . import surrogates as _surrogates
from ._kernels import HTAF_ALPHA, HTAF_BETA, sech2
from ._validation import check_float_tensor, check_positive

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
# Public functions
# --------------------------------------------------------------------------------------------


def htaf(x: torch.Tensor, alpha: float = HTAF_ALPHA, beta: float = HTAF_BETA) -> torch.Tensor:
    r"""HTAF, the sigmoid-tanh approximation of the Heaviside step, applied elementwise.

    .. math:: \mathrm{HTAF}_{\alpha,\beta}(x) = \sigma(\alpha \tanh(\beta x))

    Values lie in :math:`(\sigma(-\alpha), \sigma(\alpha))`; :math:`f(-x) = 1 - f(x)`; the peak slope
    at 0 is :math:`\alpha\beta/4`. The backward pass uses the closed form :func:`htaf_grad`.

    Args:
        x: floating-point tensor (float16, bfloat16, float32 or float64, any device).
        alpha: sharpness, finite and > 0.
        beta: tail rate, finite and > 0.

    Raises:
        ValueError: ``alpha`` or ``beta`` is not positive and finite, or overflows ``x``'s dtype
            (``alpha = 1e300`` in float32, or a peak slope ``alpha*beta/4`` above 1/16 of the dtype's largest
            value, where the backward pass would return ``inf``/``NaN``); the message names the limit.

    Example:
        >>> import torch, htaf.functional as F
        >>> F.htaf(torch.tensor([-10.0, 0.0, 10.0]), alpha=8.0).round(decimals=4)
        tensor([3.0000e-04, 5.0000e-01, 9.9970e-01])
    """
    check_float_tensor(x, "htaf")
    alpha = check_positive("alpha", alpha)
    beta = check_positive("beta", beta)
    _kernels.check_htaf_fits(alpha, beta, x.dtype)
    return _kernels.apply(_kernels._HTAFFunction, x, alpha, beta)


def htaf_grad(x: torch.Tensor, alpha: float = HTAF_ALPHA, beta: float = HTAF_BETA) -> torch.Tensor:
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
    _kernels.check_htaf_fits(alpha, beta, x.dtype)
    return _kernels.htaf_derivative(x, alpha, beta)


def htaf_sign(x: torch.Tensor, alpha: float = HTAF_ALPHA, beta: float = HTAF_BETA) -> torch.Tensor:
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
    return _kernels.step(x.detach())


def sign(x: torch.Tensor) -> torch.Tensor:
    """The exact sign with the same convention as :func:`heaviside`: +1 where ``x >= 0``, -1 below."""
    return 2.0 * heaviside(x) - 1.0


def spike(x: torch.Tensor, surrogate="htaf") -> torch.Tensor:
    r"""Exact Heaviside step forward, the surrogate's derivative backward.

    This is the spike function of spiking networks: ``forward = heaviside(x)``,
    ``backward = grad * surrogate.derivative(x)``.

    Args:
        x: floating-point tensor (for SNNs, membrane potential minus threshold).
        surrogate: a :class:`htaf.surrogates.Surrogate` or a registry name (default parameters).

    The gradient is finite for every input, :math:`\pm\infty` included (every family's derivative is 0
    there); parameters that overflow ``x``'s dtype raise ``ValueError`` (see
    :meth:`htaf.surrogates.Surrogate.check_dtype`).

    Example:
        >>> import torch, htaf
        >>> x = torch.tensor([-0.5, 0.5], requires_grad=True)
        >>> y = htaf.functional.spike(x, htaf.surrogates.get("htaf", alpha=4.0, beta=1.0))
        >>> y
        tensor([0., 1.], grad_fn=<_SpikeFunctionBackward>)
    """
    return _surrogates.get(surrogate).spike(x)


def sign_spike(x: torch.Tensor, surrogate="htaf") -> torch.Tensor:
    r"""Exact ``sign`` forward (+1 at ``x >= 0``), twice the surrogate's derivative backward.

    The binarizer of binary neural networks. Since :math:`\mathrm{sign} = 2H - 1`, a surrogate of
    the step :math:`H` with derivative :math:`g` is a surrogate of ``sign`` with derivative
    :math:`2g`; with ``surrogate="ste"`` this is BinaryNet's clipped straight-through estimator.
    """
    return _surrogates.get(surrogate).sign_spike(x)
