r"""The surrogate zoo: smooth stand-ins for the Heaviside step and their derivatives.

Every family approximates the step :math:`H(x)` (0 below threshold, 1 above) with a *primitive*
:math:`F(x)` and supplies its closed-form *derivative* :math:`F'(x)`, which :func:`htaf.functional.spike`
uses in the backward pass. Surrogates that the binary-network literature defines for ``sign``
(:math:`S = 2H - 1`) are stored here in the same step convention, :math:`F = (S + 1)/2`, so their
derivative is half the one written in those papers; :func:`htaf.functional.sign_spike` multiplies it back by 2.

All SNN surrogates are normalised so that :math:`F(-\infty) = 0` and :math:`F(+\infty) = 1`
(the derivative integrates to one), which makes their gradient mass directly comparable; HTAF is the
exception, with bounds :math:`\sigma(\mp\alpha)`.

>>> import htaf
>>> htaf.surrogates.available()[:4]
['approx_sign', 'atan', 'ede', 'erf']
>>> sg = htaf.surrogates.get("atan", alpha=2.0)
>>> sg
Atan(alpha=2.0)
>>> float(sg.peak_slope)
1.0
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch

from . import functional as F
from ._validation import check_positive

__all__ = [
    "Surrogate",
    "register",
    "get",
    "available",
    "ede_t",
    "with_peak_slope",
    "HTAF",
    "Sigmoid",
    "Atan",
    "FastSigmoid",
    "Triangle",
    "Rectangle",
    "Erf",
    "STE",
    "ApproxSign",
    "SwishSign",
    "EDE",
]

_REGISTRY: dict[str, type["Surrogate"]] = {}


class Surrogate:
    """Base class: a smooth approximation ``primitive`` of the step and its closed-form ``derivative``.

    Subclasses set ``name``, ``defaults`` (parameter name -> default value; every parameter is a
    positive real) and implement :meth:`primitive` and :meth:`derivative` with plain tensor math.
    Parameters are read as attributes (``sg.alpha``); treat instances as immutable values.
    """

    name: ClassVar[str]
    defaults: ClassVar[dict[str, float]]
    #: where the family comes from (paper or library), for tables and docs
    origin: ClassVar[str] = ""

    def __init__(self, **params):
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            valid = ", ".join(self.defaults) or "none"
            raise TypeError(
                f"unknown parameter(s) {', '.join(unknown)} for surrogate '{self.name}'; valid: {valid}"
            )
        values = {**self.defaults, **params}
        self.params = {key: check_positive(key, value) for key, value in values.items()}
        for key, value in self.params.items():
            setattr(self, key, value)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.params == other.params

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted(self.params.items()))))

    def primitive(self, x: torch.Tensor) -> torch.Tensor:
        """The smooth approximation of the step."""
        raise NotImplementedError

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        """The closed-form derivative of :meth:`primitive` (used in the backward pass)."""
        raise NotImplementedError

    def grad_input(self, x: torch.Tensor, grad_output: torch.Tensor) -> torch.Tensor:
        """``grad_output * derivative(x)``: the spike's backward pass; a family may fuse it for speed."""
        return grad_output * self.derivative(x)

    @property
    def peak_slope(self) -> float:
        """``derivative(0)``: the slope at threshold."""
        return float(self.derivative(torch.zeros((), dtype=torch.float64)))

    def spike(self, x: torch.Tensor) -> torch.Tensor:
        """Exact step forward, this surrogate's derivative backward (see :func:`htaf.functional.spike`)."""
        return F.spike(x, self)

    def sign_spike(self, x: torch.Tensor) -> torch.Tensor:
        """Exact sign forward, twice this surrogate's derivative backward."""
        return F.sign_spike(x, self)

    __call__ = spike


def register(cls: type[Surrogate]) -> type[Surrogate]:
    """Class decorator adding a surrogate family to the registry under ``cls.name``."""
    if cls.name in _REGISTRY:
        raise ValueError(f"a surrogate named '{cls.name}' is already registered")
    _REGISTRY[cls.name] = cls
    return cls


def available() -> list[str]:
    """Names of all registered surrogate families, sorted."""
    return sorted(_REGISTRY)


def get(name: str | Surrogate, **params) -> Surrogate:
    """Build the surrogate ``name`` with ``params`` overriding its defaults.

    A :class:`Surrogate` passes through unchanged, or as a copy with ``params`` overridden.

    >>> get("sigmoid", alpha=10.0)
    Sigmoid(alpha=10.0)
    """
    if isinstance(name, Surrogate):
        return type(name)(**{**name.params, **params}) if params else name
    if not isinstance(name, str):
        raise TypeError(f"surrogate must be a name from available() or a Surrogate, got {type(name).__name__}")
    key = name.lower().replace("-", "_")
    if key not in _REGISTRY:
        raise ValueError(f"unknown surrogate '{name}'; available: {', '.join(available())}")
    return _REGISTRY[key](**params)


#: the parameter each family's peak slope is proportional to (HTAF: beta, keeping the sharpness alpha)
SLOPE_PARAMETER = {
    "htaf": "beta", "sigmoid": "alpha", "atan": "alpha", "fast_sigmoid": "slope", "triangle": "alpha",
    "approx_sign": "alpha", "rectangle": "alpha", "erf": "alpha", "swish_sign": "beta", "ede": "t",
}


def with_peak_slope(name: str, peak_slope: float, scale: str | None = None, **params) -> Surrogate:
    r"""Family ``name`` with ``params``, one parameter rescaled so that ``derivative(0) == peak_slope``.

    The rescaled parameter is ``scale``, else :data:`SLOPE_PARAMETER` (for HTAF the tail rate ``beta``
    with ``alpha`` kept; pass ``scale="alpha"`` to keep ``beta``). The peak slope is proportional to it
    (sigmoid :math:`\alpha/4`, atan :math:`\alpha/2`, fast sigmoid :math:`k/2`, triangle and rectangle
    :math:`\alpha`, erf :math:`\alpha/\sqrt\pi`, SignSwish :math:`\beta/2`, HTAF :math:`\alpha\beta/4`),
    except EDE's :math:`\max(t, 1)/2`, which cannot go below 1/2; STE has no parameter.

    >>> with_peak_slope("sigmoid", 1.0), with_peak_slope("htaf", 2.0), with_peak_slope("htaf", 1.0, "alpha", beta=2.0)
    (Sigmoid(alpha=4.0), HTAF(alpha=4.0, beta=2.0), HTAF(alpha=2.0, beta=2.0))
    """
    target = check_positive("peak_slope", peak_slope)
    base = get(name, **params)
    key = scale or SLOPE_PARAMETER.get(base.name)
    if key is None and math.isclose(base.peak_slope, target, rel_tol=1e-12):
        return base  # STE: nothing to scale, and nothing to do
    if key not in base.params:
        what = f"no parameter {key!r}" if key else "no parameter"
        raise ValueError(f"surrogate '{base.name}' has {what} to match a peak slope with "
                         f"(parameters: {', '.join(base.params) or 'none'}; its peak slope is {base.peak_slope:g})")
    matched = get(base.name, **{**base.params, key: base.params[key] * target / base.peak_slope})
    if not math.isclose(matched.peak_slope, target, rel_tol=1e-9):
        raise ValueError(f"surrogate '{base.name}' cannot reach peak slope {target:g} through {key!r} "
                         f"(it reaches {matched.peak_slope:g})")
    return matched


# --------------------------------------------------------------------------------------------
# Spiking-network surrogates (step convention)
# --------------------------------------------------------------------------------------------


@register
class HTAF(Surrogate):
    r"""HTAF: :math:`F(x) = \sigma(\alpha\tanh(\beta x))`,
    :math:`F'(x) = \alpha\beta\,F(1-F)\,\mathrm{sech}^2(\beta x)`; peak slope :math:`\alpha\beta/4`.

    The tail decays like :math:`e^{-2\beta|x|}`, set independently of the sharpness ``alpha``.
    """

    name = "htaf"
    defaults = {"alpha": 4.0, "beta": 1.0}
    origin = "this project (sigmoid-tanh composite)"

    def primitive(self, x):
        return F._htaf_value(x, self.alpha, self.beta)

    def derivative(self, x):
        return F._htaf_derivative(x, self.alpha, self.beta)

    def grad_input(self, x, grad_output):
        return F._htaf_backward_inplace(x, grad_output, self.alpha, self.beta)


@register
class Sigmoid(Surrogate):
    r"""Sigmoid: :math:`F(x) = \sigma(\alpha x)`, :math:`F'(x) = \alpha\,\sigma(\alpha x)\sigma(-\alpha x)`;
    peak slope :math:`\alpha/4`, tail :math:`\alpha e^{-\alpha|x|}` (SpikingJelly default ``alpha=4``).
    """

    name = "sigmoid"
    defaults = {"alpha": 4.0}
    origin = "SpikingJelly surrogate.Sigmoid; snnTorch sigmoid (slope)"

    def primitive(self, x):
        return torch.sigmoid(self.alpha * x)

    def derivative(self, x):
        return self.alpha * torch.sigmoid(self.alpha * x) * torch.sigmoid(-self.alpha * x)


@register
class Atan(Surrogate):
    r"""Arctangent: :math:`F(x) = \tfrac12 + \tfrac1\pi\arctan(\tfrac\pi2\alpha x)`,
    :math:`F'(x) = \dfrac{\alpha/2}{1 + (\tfrac\pi2\alpha x)^2}`; peak slope :math:`\alpha/2`,
    tail :math:`\propto x^{-2}` (snnTorch and SpikingJelly convention, default ``alpha=2``).
    """

    name = "atan"
    defaults = {"alpha": 2.0}
    origin = "SpikingJelly surrogate.ATan; snnTorch atan (Fang et al. 2021)"

    def primitive(self, x):
        return 0.5 + torch.atan(0.5 * math.pi * self.alpha * x) / math.pi

    def derivative(self, x):
        return 0.5 * self.alpha / (1.0 + (0.5 * math.pi * self.alpha * x) ** 2)


@register
class FastSigmoid(Surrogate):
    r"""Fast sigmoid (SuperSpike): :math:`F(x) = \tfrac12 + \dfrac{kx}{2(1+k|x|)}`,
    :math:`F'(x) = \dfrac{k/2}{(1+k|x|)^2}`; peak slope :math:`k/2`, tail :math:`\propto x^{-2}`.

    snnTorch's ``fast_sigmoid(slope=25)`` uses :math:`1/(1+k|x|)^2`, which is this derivative times
    :math:`2/k` (not normalised); default ``slope=25`` as there.
    """

    name = "fast_sigmoid"
    defaults = {"slope": 25.0}
    origin = "Zenke & Ganguli 2018 (SuperSpike); snnTorch fast_sigmoid"

    def primitive(self, x):
        kx = self.slope * x
        return 0.5 + 0.5 * kx / (1.0 + kx.abs())

    def derivative(self, x):
        return 0.5 * self.slope / (1.0 + self.slope * x.abs()) ** 2


@register
class Triangle(Surrogate):
    r"""Triangle (piecewise quadratic primitive): :math:`F'(x) = \alpha\max(0, 1 - \alpha|x|)`,
    :math:`F` the matching piecewise quadratic; peak slope :math:`\alpha`, zero beyond :math:`|x| = 1/\alpha`.
    """

    name = "triangle"
    defaults = {"alpha": 1.0}
    origin = "Esser et al. 2016; Bellec et al. 2018; SpikingJelly PiecewiseQuadratic"

    def primitive(self, x):
        u = (self.alpha * x).clamp(-1.0, 1.0)
        return 0.5 + u - 0.5 * u * u.abs()

    def derivative(self, x):
        return self.alpha * (1.0 - self.alpha * x.abs()).clamp_min(0.0)


@register
class Rectangle(Surrogate):
    r"""Rectangle (clipped straight-through): :math:`F'(x) = \alpha\,\mathbb 1[|x| < 1/(2\alpha)]`,
    :math:`F(x) = \mathrm{clip}(\alpha x + \tfrac12, 0, 1)`; peak slope :math:`\alpha`.
    """

    name = "rectangle"
    defaults = {"alpha": 1.0}
    origin = "Wu et al. 2018 (STBP rectangular pseudo-derivative)"

    def primitive(self, x):
        return (self.alpha * x + 0.5).clamp(0.0, 1.0)

    def derivative(self, x):
        return self.alpha * (x.abs() < 0.5 / self.alpha).to(x.dtype)


@register
class Erf(Surrogate):
    r"""Gaussian / error function: :math:`F(x) = \tfrac12\operatorname{erfc}(-\alpha x)`,
    :math:`F'(x) = \tfrac{\alpha}{\sqrt\pi} e^{-\alpha^2x^2}`; peak slope :math:`\alpha/\sqrt\pi`
    (SpikingJelly default ``alpha=2``).
    """

    name = "erf"
    defaults = {"alpha": 2.0}
    origin = "SpikingJelly surrogate.Erf"

    def primitive(self, x):
        return 0.5 * torch.erfc(-self.alpha * x)

    def derivative(self, x):
        return self.alpha / math.sqrt(math.pi) * torch.exp(-((self.alpha * x) ** 2))


# --------------------------------------------------------------------------------------------
# Binary-network surrogates (defined in the papers for sign = 2H - 1; stored in step convention)
# --------------------------------------------------------------------------------------------


@register
class STE(Surrogate):
    r"""Clipped straight-through estimator of BinaryNet: for ``sign``, :math:`S'(x) = \mathbb 1[|x| \le 1]`;
    here :math:`F(x) = \mathrm{clip}((x+1)/2, 0, 1)`, :math:`F'(x) = \tfrac12\mathbb 1[|x| \le 1]`.
    """

    name = "ste"
    defaults: ClassVar[dict[str, float]] = {}
    origin = "Courbariaux et al. 2016 (BinaryNet); Hubara et al. 2016"

    def primitive(self, x):
        return (0.5 * x + 0.5).clamp(0.0, 1.0)

    def derivative(self, x):
        return 0.5 * (x.abs() <= 1.0).to(x.dtype)


@register
class ApproxSign(Triangle):
    r"""ApproxSign of Bi-Real Net: for ``sign``, :math:`S'(x) = 2 - 2|x|` on :math:`|x| < 1`;
    in step convention this is exactly :class:`Triangle` with ``alpha = 1`` (kept under its own name).
    """

    name = "approx_sign"
    defaults = {"alpha": 1.0}
    origin = "Liu et al. 2018 (Bi-Real Net)"


@register
class SwishSign(Surrogate):
    r"""SignSwish of BNN+: for ``sign``, :math:`S(x) = 2\sigma(\beta x)[1 + \beta x(1 - \sigma(\beta x))] - 1`;
    here :math:`F(x) = \sigma(y) + y\,\sigma(y)\sigma(-y)` with :math:`y = \beta x`, and
    :math:`F'(x) = \beta\,\dfrac{2 - y\tanh(y/2)}{2(1 + \cosh y)}`. Not monotone: it overshoots 0 and 1.
    """

    name = "swish_sign"
    defaults = {"beta": 5.0}
    origin = "Darabi et al. 2018 (BNN+)"

    def primitive(self, x):
        y = self.beta * x
        return torch.sigmoid(y) + y * torch.sigmoid(y) * torch.sigmoid(-y)

    def derivative(self, x):
        # 1 / (2 (1 + cosh y)) = e / (1 + e)^2 with e = exp(-|y|): stable for any |y|.
        y = self.beta * x
        e = torch.exp(-y.abs())
        return self.beta * (2.0 * e - y * torch.tanh(0.5 * y) * e) / (1.0 + e) ** 2


@register
class EDE(Surrogate):
    r"""Error decay estimator of IR-Net: for ``sign``, :math:`S(x) = k\tanh(tx)` with
    :math:`k = \max(1/t, 1)`; here :math:`F = (S+1)/2`, :math:`F'(x) = \tfrac12 kt\,\mathrm{sech}^2(tx)`.

    ``t`` is annealed from ``t_min=0.1`` to ``t_max=10`` during training with :func:`ede_t`.
    """

    name = "ede"
    defaults = {"t": 1.0}
    origin = "Qin et al. 2020 (IR-Net)"

    @property
    def k(self) -> float:
        return max(1.0 / self.t, 1.0)

    def primitive(self, x):
        return 0.5 + 0.5 * self.k * torch.tanh(self.t * x)

    def derivative(self, x):
        return F.sech2(self.t * x, 0.5 * self.k * self.t)


def ede_t(progress: float, t_min: float = 0.1, t_max: float = 10.0) -> float:
    r"""IR-Net's schedule :math:`t = t_{min}\,10^{\,p \log_{10}(t_{max}/t_{min})}` at training progress ``p`` in [0, 1]."""
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"progress must lie in [0, 1], got {progress!r}")
    t_min, t_max = check_positive("t_min", t_min), check_positive("t_max", t_max)
    return t_min * 10.0 ** (progress * math.log10(t_max / t_min))
