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

from . import _kernels
from ._validation import check_fits_dtype, check_float_tensor, check_positive

__all__ = [
    "Surrogate",
    "register",
    "unregister",
    "get",
    "available",
    "ede_t",
    "with_peak_slope",
    "SLOPE_PARAMETER",
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
_DEFAULT_INSTANCES: dict[type["Surrogate"], "Surrogate"] = {}

#: colours given, in order, to a registered family that does not choose its own (see :func:`register`)
_SPARE_COLORS = ("#77aadd", "#ee8866", "#eedd88", "#ffaabb", "#99ddff", "#44bb99", "#bbcc33", "#aaaa00")  # Tol light


class Surrogate:
    r"""Base class: a smooth approximation ``primitive`` of the step and its closed-form ``derivative``.

    A family is one subclass, registered with :func:`register`; everything else (the symbolic theory of
    :mod:`htaf.theory`, matched peak slopes, plot styles of :mod:`htaf.plotting`) derives from it. A subclass
    sets:

    * ``name``: registry name; ``defaults``: parameter name -> default value (every parameter is a positive
      real); ``origin``: the paper or library it comes from;
    * ``slope_parameter``: the parameter its peak slope is proportional to, which :func:`with_peak_slope`
      rescales (``None`` when it has none, like the STE);
    * ``label``, ``color``, ``marker``, ``linestyle``: how figures show it;
    * :meth:`primitive` and :meth:`derivative` with plain tensor math (finite for every input, 0 at
      :math:`\pm\infty`), and optionally :meth:`symbolic`, its SymPy form.

    Parameters are read as attributes (``sg.alpha``); treat instances as immutable values.
    """

    name: ClassVar[str]
    defaults: ClassVar[dict[str, float]]
    #: where the family comes from (paper or library), for tables and docs
    origin: ClassVar[str] = ""
    #: the parameter the peak slope is proportional to (rescaled by :func:`with_peak_slope`), or None
    slope_parameter: ClassVar[str | None] = None
    #: display name, colour, marker and line style in the book's figures (:mod:`htaf.plotting`)
    label: ClassVar[str]
    color: ClassVar[str]
    marker: ClassVar[str] = "o"
    linestyle: ClassVar[str] = "-"

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
        # derivative(0), computed here rather than on first use: reading a tensor's value inside a
        # torch.compile'd function would be a data-dependent graph break
        self._peak = float(self.derivative(torch.zeros((), dtype=torch.float64)))

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

    @classmethod
    def symbolic(cls):
        """The family's SymPy form, a :class:`htaf.theory.Family` (primitive, derivative, masses, tail).

        Build it with the symbols of :mod:`htaf.theory` (``x``, ``eps``, ``T``) and SymPy symbols named
        like the parameters (``positive=True``); import SymPy inside this method, so that ``import htaf``
        stays light. :mod:`htaf.theory` checks nothing of it at registration, but its tests (and yours)
        compare it with the torch forms.
        """
        raise NotImplementedError(
            f"surrogate family '{cls.name}' has no symbolic form; define the classmethod symbolic() "
            "returning an htaf.theory.Family"
        )

    @property
    def peak_slope(self) -> float:
        """``derivative(0)``: the slope at threshold."""
        return self._peak

    def check_dtype(self, dtype: torch.dtype) -> None:
        """Raise ``ValueError`` if this surrogate's parameters or peak slope overflow inputs of ``dtype``.

        >>> get("sigmoid", alpha=1e39).check_dtype(torch.float32)
        Traceback (most recent call last):
        ...
        ValueError: alpha = 1e+39 of Sigmoid(alpha=1e+39) is too large for torch.float32 inputs (largest finite value 3.4e+38); use a smaller alpha, or float64 inputs
        """
        check_fits_dtype(self.__repr__, self.params, self.peak_slope, dtype)

    def spike(self, x: torch.Tensor) -> torch.Tensor:
        """Exact step forward, this surrogate's derivative backward (see :func:`htaf.functional.spike`)."""
        check_float_tensor(x, "spike")
        self.check_dtype(x.dtype)
        return _kernels.apply(_kernels._SpikeFunction, x, self, False)

    def sign_spike(self, x: torch.Tensor) -> torch.Tensor:
        """Exact sign forward, twice this surrogate's derivative backward."""
        check_float_tensor(x, "sign_spike")
        self.check_dtype(x.dtype)
        return _kernels.apply(_kernels._SpikeFunction, x, self, True)

    __call__ = spike


def register(cls: type[Surrogate]) -> type[Surrogate]:
    """Class decorator adding a surrogate family to the registry under ``cls.name``.

    Checks that ``name`` is free and ``slope_parameter`` (if any) is one of ``defaults``; a class that sets no
    ``label``, ``color`` or ``marker`` of its own gets its name, an unused spare colour and ``"o"``.
    """
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name or name != name.lower().replace("-", "_"):
        raise ValueError(f"a surrogate family needs a lower-case name without '-', got {name!r}")
    if name in _REGISTRY:
        raise ValueError(f"a surrogate named '{name}' is already registered")
    if cls.slope_parameter is not None and cls.slope_parameter not in cls.defaults:
        raise ValueError(f"slope_parameter {cls.slope_parameter!r} of surrogate '{name}' is not one of its "
                         f"parameters ({', '.join(cls.defaults) or 'none'})")
    own = vars(cls)
    if "label" not in own:
        cls.label = name
    if "color" not in own:
        taken = {c.color for c in _REGISTRY.values()}
        cls.color = next((c for c in _SPARE_COLORS if c not in taken), "#7f7f7f")
    if "marker" not in own:
        cls.marker = "o"
    _REGISTRY[name] = cls
    return cls


def unregister(name: str) -> type[Surrogate]:
    """Remove the family ``name`` from the registry (for tests and interactive work); returns its class."""
    try:
        cls = _REGISTRY.pop(name)
    except KeyError:
        raise ValueError(f"unknown surrogate '{name}'; available: {', '.join(available())}") from None
    _DEFAULT_INSTANCES.pop(cls, None)
    return cls


def available() -> list[str]:
    """Names of all registered surrogate families, sorted."""
    return sorted(_REGISTRY)


def _registry_state() -> tuple:
    """What the unit table of :func:`htaf.nn.unit_registry` is derived from: every family's name, class and label."""
    return tuple((name, cls, cls.label) for name, cls in sorted(_REGISTRY.items()))


def family_class(name: str) -> type[Surrogate]:
    """The registered class of family ``name`` (names are matched like :func:`get` does)."""
    if not isinstance(name, str):
        raise TypeError(f"surrogate must be a name from available() or a Surrogate, got {type(name).__name__}")
    key = name.lower().replace("-", "_")
    if key not in _REGISTRY:
        raise ValueError(f"unknown surrogate '{name}'; available: {', '.join(available())}")
    return _REGISTRY[key]


def get(name: str | Surrogate, **params) -> Surrogate:
    """Build the surrogate ``name`` with ``params`` overriding its defaults.

    A :class:`Surrogate` passes through unchanged, or as a copy with ``params`` overridden.

    >>> get("sigmoid", alpha=10.0)
    Sigmoid(alpha=10.0)
    """
    if isinstance(name, Surrogate):
        return type(name)(**{**name.params, **params}) if params else name
    cls = family_class(name)
    if params:
        return cls(**params)
    # instances are immutable values: share one with the default parameters per class (spike(x, "atan"))
    if cls not in _DEFAULT_INSTANCES:
        _DEFAULT_INSTANCES[cls] = cls()
    return _DEFAULT_INSTANCES[cls]


def __getattr__(name: str):
    # SLOPE_PARAMETER is derived from the registry at every access, so it can never go stale.
    if name == "SLOPE_PARAMETER":
        return {key: cls.slope_parameter for key, cls in sorted(_REGISTRY.items()) if cls.slope_parameter}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def with_peak_slope(name: str, peak_slope: float | None, scale: str | None = None, **params) -> Surrogate:
    r"""Family ``name`` with ``params``, one parameter rescaled so that ``derivative(0) == peak_slope``.

    ``peak_slope=None`` rescales nothing: ``get(name, **params)``. This is the meaning of the experiments'
    ``peak_slope`` config key (``None``: the parameters as given).

    The rescaled parameter is ``scale``, else the family's ``slope_parameter`` (for HTAF the tail rate
    ``beta`` with ``alpha`` kept; pass ``scale="alpha"`` to keep ``beta``). ``SLOPE_PARAMETER`` maps every
    family to it. The peak slope is proportional to it (sigmoid :math:`\alpha/4`, atan :math:`\alpha/2`,
    fast sigmoid :math:`k/2`, triangle and rectangle :math:`\alpha`, erf :math:`\alpha/\sqrt\pi`, SignSwish
    :math:`\beta/2`, HTAF :math:`\alpha\beta/4`), except EDE's :math:`\max(t, 1)/2`, which cannot go below
    1/2; STE has no parameter.

    >>> with_peak_slope("sigmoid", 1.0), with_peak_slope("htaf", 2.0), with_peak_slope("htaf", 1.0, "alpha", beta=2.0)
    (Sigmoid(alpha=4.0), HTAF(alpha=4.0, beta=2.0), HTAF(alpha=2.0, beta=2.0))
    >>> with_peak_slope("atan", None, alpha=3.0)
    Atan(alpha=3.0)
    """
    if peak_slope is None:
        return get(name, **params)
    target = check_positive("peak_slope", peak_slope)
    base = get(name, **params)
    key = scale or type(base).slope_parameter
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
#
# Each family's symbolic() imports SymPy and the symbols of htaf._symbolic on first use (``import htaf``
# never loads SymPy); htaf.theory evaluates these forms and the tests compare them with the torch code.
# --------------------------------------------------------------------------------------------


@register
class HTAF(Surrogate):
    r"""HTAF: :math:`F(x) = \sigma(\alpha\tanh(\beta x))`,
    :math:`F'(x) = \alpha\beta\,F(1-F)\,\mathrm{sech}^2(\beta x)`; peak slope :math:`\alpha\beta/4`.

    The tail decays like :math:`e^{-2\beta|x|}`, set independently of the sharpness ``alpha``.
    """

    name = "htaf"
    defaults = {"alpha": _kernels.HTAF_ALPHA, "beta": _kernels.HTAF_BETA}
    origin = "this project (sigmoid-tanh composite)"
    slope_parameter = "beta"  # matching a peak slope keeps the sharpness alpha
    label, color, marker = "HTAF", "#d55e00", "o"

    def primitive(self, x):
        return _kernels.htaf_value(x, self.alpha, self.beta)

    def derivative(self, x):
        return _kernels.htaf_derivative(x, self.alpha, self.beta)

    def grad_input(self, x, grad_output):
        return _kernels.htaf_backward_inplace(x, grad_output, self.alpha, self.beta)

    @classmethod
    def symbolic(cls):
        import sympy as sp
        from sympy.codegen.cfunctions import expm1

        from ._symbolic import Family, T, eps, sigmoid, x

        a, b = sp.symbols("alpha beta", positive=True)
        u = a * sp.tanh(b * x)
        return Family(
            cls.name,
            (a, b),
            primitive=sigmoid(u),
            derivative=a * b * sigmoid(u) * sigmoid(-u) * sp.sech(b * x) ** 2,
            mass=sp.tanh(a * sp.tanh(b * eps) / 2),
            # 2(sigma(a) - sigma(a tanh bT)) written without cancellation:
            # a - a tanh(bT) = 2a/(1 + e^{2bT}) and sigma(a) - sigma(v) = sigma(a) sigma(-v) (1 - e^{-(a - v)}).
            tail=-2 * sigmoid(a) * sigmoid(-a * sp.tanh(b * T)) * expm1(-2 * a / (1 + sp.exp(2 * b * T))),
            total=sp.tanh(a / 2),
            tail_kind="exponential, rate 2*beta (independent of the peak slope)",
        )


@register
class Sigmoid(Surrogate):
    r"""Sigmoid: :math:`F(x) = \sigma(\alpha x)`, :math:`F'(x) = \alpha\,\sigma(\alpha x)\sigma(-\alpha x)`;
    peak slope :math:`\alpha/4`, tail :math:`\alpha e^{-\alpha|x|}` (SpikingJelly default ``alpha=4``).
    """

    name = "sigmoid"
    defaults = {"alpha": 4.0}
    origin = "SpikingJelly surrogate.Sigmoid; snnTorch sigmoid (slope)"
    slope_parameter = "alpha"
    label, color, marker = "sigmoid", "#0072b2", "s"

    def primitive(self, x):
        return torch.sigmoid(self.alpha * x)

    def derivative(self, x):
        return self.alpha * torch.sigmoid(self.alpha * x) * torch.sigmoid(-self.alpha * x)

    @classmethod
    def symbolic(cls):
        import sympy as sp

        from ._symbolic import Family, T, eps, sigmoid, x

        a = sp.Symbol("alpha", positive=True)
        return Family(
            cls.name,
            (a,),
            primitive=sigmoid(a * x),
            derivative=a * sigmoid(a * x) * sigmoid(-a * x),
            mass=sp.tanh(a * eps / 2),
            tail=2 * sigmoid(-a * T),
            total=sp.Integer(1),
            tail_kind="exponential, rate alpha = 4 x peak slope",
        )


@register
class Atan(Surrogate):
    r"""Arctangent: :math:`F(x) = \tfrac12 + \tfrac1\pi\arctan(\tfrac\pi2\alpha x)`,
    :math:`F'(x) = \dfrac{\alpha/2}{1 + (\tfrac\pi2\alpha x)^2}`; peak slope :math:`\alpha/2`,
    tail :math:`\propto x^{-2}` (snnTorch and SpikingJelly convention, default ``alpha=2``).
    """

    name = "atan"
    defaults = {"alpha": 2.0}
    origin = "SpikingJelly surrogate.ATan; snnTorch atan (Fang et al. 2021)"
    slope_parameter = "alpha"
    label, color, marker = "atan", "#009e73", "^"

    def primitive(self, x):
        return 0.5 + torch.atan(0.5 * math.pi * self.alpha * x) / math.pi

    def derivative(self, x):
        return 0.5 * self.alpha / (1.0 + (0.5 * math.pi * self.alpha * x) ** 2)

    @classmethod
    def symbolic(cls):
        import sympy as sp

        from ._symbolic import Family, T, eps, x

        a = sp.Symbol("alpha", positive=True)
        return Family(
            cls.name,
            (a,),
            primitive=sp.Rational(1, 2) + sp.atan(sp.pi * a * x / 2) / sp.pi,
            derivative=(a / 2) / (1 + (sp.pi * a * x / 2) ** 2),
            mass=2 * sp.atan(sp.pi * a * eps / 2) / sp.pi,
            tail=2 * sp.acot(sp.pi * a * T / 2) / sp.pi,
            total=sp.Integer(1),
            tail_kind="power law, x^-2",
        )


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
    slope_parameter = "slope"
    label, color, marker = "fast sigmoid", "#999933", "v"

    def primitive(self, x):
        # kx/(1+|kx|) would be inf/inf at x = +-inf: map +-inf to the largest finite value, where it is +-1
        kx = torch.nan_to_num(self.slope * x, nan=math.nan)
        return 0.5 + 0.5 * kx / (1.0 + kx.abs())

    def derivative(self, x):
        return 0.5 * self.slope / (1.0 + self.slope * x.abs()) ** 2

    @classmethod
    def symbolic(cls):
        import sympy as sp

        from ._symbolic import Family, T, eps, x

        k = sp.Symbol("slope", positive=True)
        return Family(
            cls.name,
            (k,),
            primitive=sp.Rational(1, 2) + k * x / (2 * (1 + k * sp.Abs(x))),
            derivative=(k / 2) / (1 + k * sp.Abs(x)) ** 2,
            mass=k * eps / (1 + k * eps),
            tail=1 / (1 + k * T),
            total=sp.Integer(1),
            kinks=(sp.Integer(0),),
            tail_kind="power law, x^-2",
        )


@register
class Triangle(Surrogate):
    r"""Triangle (piecewise quadratic primitive): :math:`F'(x) = \alpha\max(0, 1 - \alpha|x|)`,
    :math:`F` the matching piecewise quadratic; peak slope :math:`\alpha`, zero beyond :math:`|x| = 1/\alpha`.
    """

    name = "triangle"
    defaults = {"alpha": 1.0}
    origin = "Esser et al. 2016; Bellec et al. 2018; SpikingJelly PiecewiseQuadratic"
    slope_parameter = "alpha"
    label, color, marker = "triangle", "#aa4499", "<"

    def primitive(self, x):
        u = (self.alpha * x).clamp(-1.0, 1.0)
        return 0.5 + u - 0.5 * u * u.abs()

    def derivative(self, x):
        return self.alpha * (1.0 - self.alpha * x.abs()).clamp_min(0.0)

    @classmethod
    def symbolic(cls):
        import sympy as sp

        from ._symbolic import Family, T, eps, x

        a = sp.Symbol("alpha", positive=True)
        ua = a * x
        return Family(
            cls.name,
            (a,),
            primitive=sp.Piecewise(
                (0, x <= -1 / a), (1, x >= 1 / a), (sp.Rational(1, 2) + ua - ua * sp.Abs(ua) / 2, True)
            ),
            derivative=sp.Piecewise((a * (1 - a * sp.Abs(x)), sp.Abs(x) < 1 / a), (0, True)),
            mass=sp.Piecewise((2 * a * eps - (a * eps) ** 2, a * eps < 1), (1, True)),
            tail=sp.Piecewise(((1 - a * T) ** 2, a * T < 1), (0, True)),
            total=sp.Integer(1),
            kinks=(sp.Integer(0), 1 / a),
            tail_kind="compact support |x| < 1/alpha",
        )


@register
class Rectangle(Surrogate):
    r"""Rectangle (clipped straight-through): :math:`F'(x) = \alpha\,\mathbb 1[|x| < 1/(2\alpha)]`,
    :math:`F(x) = \mathrm{clip}(\alpha x + \tfrac12, 0, 1)`; peak slope :math:`\alpha`.
    """

    name = "rectangle"
    defaults = {"alpha": 1.0}
    origin = "Wu et al. 2018 (STBP rectangular pseudo-derivative)"
    slope_parameter = "alpha"
    label, color, marker = "rectangle", "#44aa99", ">"

    def primitive(self, x):
        return (self.alpha * x + 0.5).clamp(0.0, 1.0)

    def derivative(self, x):
        return self.alpha * (x.abs() < 0.5 / self.alpha).to(x.dtype)

    @classmethod
    def symbolic(cls):
        import sympy as sp

        from ._symbolic import Family, T, eps, x

        a = sp.Symbol("alpha", positive=True)
        return Family(
            cls.name,
            (a,),
            primitive=sp.Piecewise((0, x <= -1 / (2 * a)), (1, x >= 1 / (2 * a)), (a * x + sp.Rational(1, 2), True)),
            derivative=sp.Piecewise((a, sp.Abs(x) < 1 / (2 * a)), (0, True)),
            mass=sp.Min(2 * a * eps, 1),
            tail=sp.Max(1 - 2 * a * T, 0),
            total=sp.Integer(1),
            kinks=(1 / (2 * a),),
            tail_kind="compact support |x| < 1/(2 alpha)",
        )


@register
class Erf(Surrogate):
    r"""Gaussian / error function: :math:`F(x) = \tfrac12\operatorname{erfc}(-\alpha x)`,
    :math:`F'(x) = \tfrac{\alpha}{\sqrt\pi} e^{-\alpha^2x^2}`; peak slope :math:`\alpha/\sqrt\pi`
    (SpikingJelly default ``alpha=2``).
    """

    name = "erf"
    defaults = {"alpha": 2.0}
    origin = "SpikingJelly surrogate.Erf"
    slope_parameter = "alpha"
    label, color, marker = "erf (Gaussian)", "#332288", "d"

    def primitive(self, x):
        return 0.5 * torch.erfc(-self.alpha * x)

    def derivative(self, x):
        return self.alpha / math.sqrt(math.pi) * torch.exp(-((self.alpha * x) ** 2))

    @classmethod
    def symbolic(cls):
        import sympy as sp

        from ._symbolic import Family, T, eps, x

        a = sp.Symbol("alpha", positive=True)
        return Family(
            cls.name,
            (a,),
            primitive=sp.erfc(-a * x) / 2,
            derivative=a / sp.sqrt(sp.pi) * sp.exp(-((a * x) ** 2)),
            mass=sp.erf(a * eps),
            tail=sp.erfc(a * T),
            total=sp.Integer(1),
            tail_kind="Gaussian, exp(-alpha^2 x^2)",
        )


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
    slope_parameter = None  # peak slope 1/2, nothing to scale
    label, color, marker = "STE", "#555555", "X"

    def primitive(self, x):
        return (0.5 * x + 0.5).clamp(0.0, 1.0)

    def derivative(self, x):
        return 0.5 * (x.abs() <= 1.0).to(x.dtype)

    @classmethod
    def symbolic(cls):
        import sympy as sp

        from ._symbolic import Family, T, eps, x

        return Family(
            cls.name,
            (),
            primitive=sp.Piecewise((0, x <= -1), (1, x >= 1), ((x + 1) / 2, True)),
            derivative=sp.Piecewise((sp.Rational(1, 2), sp.Abs(x) <= 1), (0, True)),
            mass=sp.Min(eps, 1),
            tail=sp.Max(1 - T, 0),
            total=sp.Integer(1),
            kinks=(sp.Integer(1),),
            tail_kind="compact support |x| <= 1",
            note="= rectangle(alpha=1/2)",
        )


@register
class ApproxSign(Triangle):
    r"""ApproxSign of Bi-Real Net: for ``sign``, :math:`S'(x) = 2 - 2|x|` on :math:`|x| < 1`;
    in step convention this is exactly :class:`Triangle` with ``alpha = 1`` (kept under its own name).
    """

    name = "approx_sign"
    defaults = {"alpha": 1.0}
    origin = "Liu et al. 2018 (Bi-Real Net)"
    slope_parameter = "alpha"
    label, color, marker = "ApproxSign", "#cc79a7", "P"

    @classmethod
    def symbolic(cls):
        import dataclasses

        return dataclasses.replace(super().symbolic(), note="= triangle")


@register
class SwishSign(Surrogate):
    r"""SignSwish of BNN+: for ``sign``, :math:`S(x) = 2\sigma(\beta x)[1 + \beta x(1 - \sigma(\beta x))] - 1`;
    here :math:`F(x) = \sigma(y) + y\,\sigma(y)\sigma(-y)` with :math:`y = \beta x`, and
    :math:`F'(x) = \beta\,\dfrac{2 - y\tanh(y/2)}{2(1 + \cosh y)}`. Not monotone: it overshoots 0 and 1.
    """

    name = "swish_sign"
    defaults = {"beta": 5.0}
    origin = "Darabi et al. 2018 (BNN+)"
    slope_parameter = "beta"
    label, color, marker = "SignSwish", "#ddcc77", "*"

    # Beyond |y| = 1000 both y*sigma(-|y|) and the derivative are below the smallest float64 (e^-1000 ~ 1e-434):
    # clamping y there changes no value, and keeps y*exp(-|y|) from becoming inf*0 = NaN at y = +-inf.
    _Y_MAX = 1e3

    def primitive(self, x):
        y = (self.beta * x).clamp(-self._Y_MAX, self._Y_MAX)
        return torch.sigmoid(y) + y * torch.sigmoid(y) * torch.sigmoid(-y)

    def derivative(self, x):
        # 1 / (2 (1 + cosh y)) = e / (1 + e)^2 with e = exp(-|y|): stable for any |y|.
        y = (self.beta * x).clamp(-self._Y_MAX, self._Y_MAX)
        e = torch.exp(-y.abs())
        return self.beta * (2.0 * e - y * torch.tanh(0.5 * y) * e) / (1.0 + e) ** 2

    @classmethod
    def symbolic(cls):
        import sympy as sp
        from scipy import optimize

        from ._symbolic import Family, T, eps, sigmoid, x

        b = sp.Symbol("beta", positive=True)
        y = b * x
        # F' changes sign at |y| = y0, the root of y tanh(y/2) = 2; F overshoots 1 beyond it.
        y0 = sp.Float(optimize.brentq(lambda v: v * math.tanh(v / 2) - 2.0, 1.0, 4.0), 30)

        def F(v):
            return sigmoid(v) + v * sigmoid(v) * sigmoid(-v)

        def one_minus_F(v):  # 1 - F(v) = sigma(-v) (1 - v sigma(v)), stable for large v
            return sigmoid(-v) * (1 - v * sigmoid(v))

        yT = b * T
        return Family(
            cls.name,
            (b,),
            primitive=F(y),
            derivative=b * (2 - y * sp.tanh(y / 2)) / (2 * (1 + sp.cosh(y))),
            mass=2 * F(b * eps) - 1,
            tail=2 * sp.Piecewise((-one_minus_F(yT), yT >= y0), ((F(y0) - F(yT)) + (F(y0) - 1), True)),
            total=sp.Integer(1),
            kinks=(y0 / b,),
            tail_kind="exponential, rate beta, with a negative lobe (F overshoots 0 and 1)",
        )


@register
class EDE(Surrogate):
    r"""Error decay estimator of IR-Net: for ``sign``, :math:`S(x) = k\tanh(tx)` with
    :math:`k = \max(1/t, 1)`; here :math:`F = (S+1)/2`, :math:`F'(x) = \tfrac12 kt\,\mathrm{sech}^2(tx)`.

    ``t`` is annealed from ``t_min=0.1`` to ``t_max=10`` during training with :func:`ede_t`.
    """

    name = "ede"
    defaults = {"t": 1.0}
    origin = "Qin et al. 2020 (IR-Net)"
    slope_parameter = "t"  # peak slope max(t, 1)/2: reachable down to 1/2 only
    label, color, marker = "EDE", "#117733", "h"

    @property
    def k(self) -> float:
        return max(1.0 / self.t, 1.0)

    def primitive(self, x):
        return 0.5 + 0.5 * self.k * torch.tanh(self.t * x)

    def derivative(self, x):
        return _kernels.sech2(self.t * x, 0.5 * self.k * self.t)

    @classmethod
    def symbolic(cls):
        import sympy as sp

        from ._symbolic import Family, T, eps, x

        t = sp.Symbol("t", positive=True)
        kk = sp.Max(1 / t, 1)
        return Family(
            cls.name,
            (t,),
            primitive=sp.Rational(1, 2) + kk * sp.tanh(t * x) / 2,
            derivative=kk * t * sp.sech(t * x) ** 2 / 2,
            mass=kk * sp.tanh(t * eps),
            tail=2 * kk / (1 + sp.exp(2 * t * T)),
            total=kk,
            tail_kind="exponential, rate 2t",
            note="= sigmoid(alpha=2t) for t >= 1",
        )


def ede_t(progress: float, t_min: float = 0.1, t_max: float = 10.0) -> float:
    r"""IR-Net's schedule :math:`t = t_{min}\,10^{\,p \log_{10}(t_{max}/t_{min})}` at training progress ``p`` in [0, 1]."""
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"progress must lie in [0, 1], got {progress!r}")
    t_min, t_max = check_positive("t_min", t_min), check_positive("t_max", t_max)
    return t_min * 10.0 ** (progress * math.log10(t_max / t_min))
