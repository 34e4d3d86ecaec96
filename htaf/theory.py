r"""Theory of HTAF: symbolic forms, gradient mass, tail decay, dead units and deep-stack gradients.

This module is the single home of the mathematics shown in the book's theory chapters. Everything is
written in the Heaviside-step convention of :mod:`htaf.surrogates`: a surrogate is a smooth *primitive*
:math:`F \approx H` with derivative :math:`F'` used in the backward pass.

HTAF, as defined by this project (the paper's exact formula is not public), is

.. math::

    f(x) = \mathrm{HTAF}_{\alpha,\beta}(x) = \sigma(\alpha\tanh(\beta x)), \qquad
    f'(x) = \alpha\beta\,\sigma(u)\,\sigma(-u)\,\mathrm{sech}^2(\beta x), \quad u = \alpha\tanh(\beta x).

Quantities used throughout (all closed forms; :func:`quad_mass` and :func:`quad_tail` re-derive them
with :func:`scipy.integrate.quad`):

* **peak slope** :math:`F'(0)`; for HTAF :math:`\alpha\beta/4`.
* **gradient mass near zero** :math:`M(\varepsilon) = \int_{-\varepsilon}^{\varepsilon} F' = F(\varepsilon) - F(-\varepsilon)`;
  for HTAF :math:`\tanh(\tfrac{\alpha}{2}\tanh(\beta\varepsilon))`.
* **tail mass** :math:`\mathrm{Tail}(T) = \int_{|x| \ge T} |F'(x)|\,dx`; for HTAF
  :math:`2(\sigma(\alpha) - \sigma(\alpha\tanh\beta T))`.
* **total mass** :math:`M(\infty)`: 1 for the normalised SNN surrogates, :math:`\tanh(\alpha/2)` for HTAF.
* **dead-unit fraction** for pre-activations :math:`X \sim \mathcal N(0, s^2)`:
  :math:`P(|F'(X)| < \kappa F'(0))`, see :func:`dead_fraction`.
* **per-layer gradient gain** of a deep stack of sign units, :math:`\chi(s) = s^2\,E[(2F'(sZ))^2]`,
  see :func:`gain` and :func:`simulate_stack`.

Numerical evaluation goes through :func:`numeric`, which lambdifies the SymPy expressions once per
parameter set; the tests check these against the torch implementations in :mod:`htaf.surrogates`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

import numpy as np
import sympy as sp
from scipy import integrate, optimize, special
from sympy.codegen.cfunctions import expm1

__all__ = [
    "x",
    "eps",
    "T",
    "sigmoid",
    "Family",
    "FAMILIES",
    "COMPARED",
    "family",
    "numeric",
    "Numeric",
    "matched_params",
    "mass_near_zero",
    "tail_mass",
    "total_mass",
    "quad_mass",
    "quad_tail",
    "htaf_tail_constant",
    "equal_rate_crossover",
    "derivative_crossover",
    "usable_radius",
    "best_alpha_for_radius",
    "LABELS",
    "COLORS",
    "usable_intervals",
    "dead_fraction",
    "gain",
    "critical_scale",
    "simulate_stack",
    "htaf_profile",
    "alpha_beta_map",
    "best_alpha_for_tail",
]

#: the input variable (real), the half-width of the "near zero" window and the tail threshold
x = sp.Symbol("x", real=True)
eps = sp.Symbol("epsilon", positive=True)
T = sp.Symbol("T", positive=True)


def sigmoid(z):
    r"""The logistic sigmoid :math:`\sigma(z) = 1/(1 + e^{-z})` as a SymPy expression."""
    return 1 / (1 + sp.exp(-z))


@dataclass(frozen=True)
class Family:
    """Symbolic description of one surrogate family (step convention).

    Attributes:
        name: registry name in :mod:`htaf.surrogates`.
        symbols: the family's parameters, in the order of ``htaf.surrogates.get(name).params``.
        primitive: :math:`F(x)`.
        derivative: :math:`F'(x)`, written in a numerically stable form.
        mass: :math:`M(\\varepsilon) = F(\\varepsilon) - F(-\\varepsilon)` in closed form (symbol :data:`eps`).
        tail: :math:`\\int_{|x|\\ge T}|F'|` in closed form (symbol :data:`T`), numerically stable.
        total: :math:`F(+\\infty) - F(-\\infty)`.
        kinks: points (functions of the parameters) where :math:`F'` is not smooth, for quadrature.
        tail_kind: a few words on how :math:`F'` decays.
    """

    name: str
    symbols: tuple[sp.Symbol, ...]
    primitive: sp.Expr
    derivative: sp.Expr
    mass: sp.Expr
    tail: sp.Expr
    total: sp.Expr
    kinks: tuple[sp.Expr, ...] = ()
    tail_kind: str = ""
    note: str = ""

    @property
    def peak_slope(self) -> sp.Expr:
        """:math:`F'(0)` as a SymPy expression of the parameters."""
        return sp.simplify(self.derivative.subs(x, 0))

    def subs(self, expr: sp.Expr, **params) -> sp.Expr:
        """``expr`` with this family's parameters replaced by numbers."""
        return expr.subs({s: sp.Float(params[s.name]) for s in self.symbols})


def _families() -> dict[str, Family]:
    a, b = sp.symbols("alpha beta", positive=True)
    k = sp.Symbol("slope", positive=True)
    t = sp.Symbol("t", positive=True)
    fam: dict[str, Family] = {}

    u = a * sp.tanh(b * x)
    fam["htaf"] = Family(
        "htaf",
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
    fam["sigmoid"] = Family(
        "sigmoid",
        (a,),
        primitive=sigmoid(a * x),
        derivative=a * sigmoid(a * x) * sigmoid(-a * x),
        mass=sp.tanh(a * eps / 2),
        tail=2 * sigmoid(-a * T),
        total=sp.Integer(1),
        tail_kind="exponential, rate alpha = 4 x peak slope",
    )
    fam["atan"] = Family(
        "atan",
        (a,),
        primitive=sp.Rational(1, 2) + sp.atan(sp.pi * a * x / 2) / sp.pi,
        derivative=(a / 2) / (1 + (sp.pi * a * x / 2) ** 2),
        mass=2 * sp.atan(sp.pi * a * eps / 2) / sp.pi,
        tail=2 * sp.acot(sp.pi * a * T / 2) / sp.pi,
        total=sp.Integer(1),
        tail_kind="power law, x^-2",
    )
    fam["fast_sigmoid"] = Family(
        "fast_sigmoid",
        (k,),
        primitive=sp.Rational(1, 2) + k * x / (2 * (1 + k * sp.Abs(x))),
        derivative=(k / 2) / (1 + k * sp.Abs(x)) ** 2,
        mass=k * eps / (1 + k * eps),
        tail=1 / (1 + k * T),
        total=sp.Integer(1),
        kinks=(sp.Integer(0),),
        tail_kind="power law, x^-2",
    )
    ua = a * x
    tri = Family(
        "triangle",
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
    fam["triangle"] = tri
    fam["rectangle"] = Family(
        "rectangle",
        (a,),
        primitive=sp.Piecewise((0, x <= -1 / (2 * a)), (1, x >= 1 / (2 * a)), (a * x + sp.Rational(1, 2), True)),
        derivative=sp.Piecewise((a, sp.Abs(x) < 1 / (2 * a)), (0, True)),
        mass=sp.Min(2 * a * eps, 1),
        tail=sp.Max(1 - 2 * a * T, 0),
        total=sp.Integer(1),
        kinks=(1 / (2 * a),),
        tail_kind="compact support |x| < 1/(2 alpha)",
    )
    fam["erf"] = Family(
        "erf",
        (a,),
        primitive=sp.erfc(-a * x) / 2,
        derivative=a / sp.sqrt(sp.pi) * sp.exp(-((a * x) ** 2)),
        mass=sp.erf(a * eps),
        tail=sp.erfc(a * T),
        total=sp.Integer(1),
        tail_kind="Gaussian, exp(-alpha^2 x^2)",
    )
    fam["ste"] = Family(
        "ste",
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
    fam["approx_sign"] = Family(
        "approx_sign",
        (a,),
        primitive=tri.primitive,
        derivative=tri.derivative,
        mass=tri.mass,
        tail=tri.tail,
        total=tri.total,
        kinks=tri.kinks,
        tail_kind=tri.tail_kind,
        note="= triangle",
    )
    y = b * x
    # SignSwish: F' changes sign at |y| = y0, the root of y tanh(y/2) = 2; F overshoots 1 beyond it.
    y0 = sp.Float(optimize.brentq(lambda v: v * math.tanh(v / 2) - 2.0, 1.0, 4.0), 30)
    F_sw = lambda v: sigmoid(v) + v * sigmoid(v) * sigmoid(-v)  # noqa: E731
    # 1 - F(v) = sigma(-v) (1 - v sigma(v)), stable for large v
    one_minus = lambda v: sigmoid(-v) * (1 - v * sigmoid(v))  # noqa: E731
    yT = b * T
    fam["swish_sign"] = Family(
        "swish_sign",
        (b,),
        primitive=F_sw(y),
        derivative=b * (2 - y * sp.tanh(y / 2)) / (2 * (1 + sp.cosh(y))),
        mass=2 * F_sw(b * eps) - 1,
        tail=2
        * sp.Piecewise(
            (-one_minus(yT), yT >= y0),
            ((F_sw(y0) - F_sw(yT)) + (F_sw(y0) - 1), True),
        ),
        total=sp.Integer(1),
        kinks=(y0 / b,),
        tail_kind="exponential, rate beta, with a negative lobe (F overshoots 0 and 1)",
    )
    kk = sp.Max(1 / t, 1)
    fam["ede"] = Family(
        "ede",
        (t,),
        primitive=sp.Rational(1, 2) + kk * sp.tanh(t * x) / 2,
        derivative=kk * t * sp.sech(t * x) ** 2 / 2,
        mass=kk * sp.tanh(t * eps),
        tail=2 * kk / (1 + sp.exp(2 * t * T)),
        total=kk,
        tail_kind="exponential, rate 2t",
        note="= sigmoid(alpha=2t) for t >= 1",
    )
    return fam


_FAMILIES = _families()

#: display names and colours used by the book's figures
LABELS = {
    "htaf": "HTAF",
    "sigmoid": "sigmoid",
    "erf": "erf (Gaussian)",
    "atan": "atan",
    "fast_sigmoid": "fast sigmoid",
    "triangle": "triangle",
    "rectangle": "rectangle",
    "swish_sign": "SignSwish",
    "ste": "STE",
    "approx_sign": "ApproxSign",
    "ede": "EDE",
}
COLORS = {
    "htaf": "#d62728",
    "sigmoid": "#1f77b4",
    "erf": "#17becf",
    "atan": "#2ca02c",
    "fast_sigmoid": "#bcbd22",
    "triangle": "#9467bd",
    "rectangle": "#8c564b",
    "swish_sign": "#e377c2",
    "ste": "#7f7f7f",
    "approx_sign": "#9467bd",
    "ede": "#ff7f0e",
}

#: every family of :mod:`htaf.surrogates`, in registry order
FAMILIES: tuple[str, ...] = tuple(sorted(_FAMILIES))

#: the families the chapters compare at matched peak slope (STE, ApproxSign and EDE coincide with
#: rectangle, triangle and sigmoid there; see :func:`matched_params`)
COMPARED: tuple[str, ...] = ("htaf", "sigmoid", "erf", "atan", "fast_sigmoid", "triangle", "rectangle", "swish_sign")


def family(name: str) -> Family:
    """The symbolic :class:`Family` registered as ``name``."""
    try:
        return _FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown family '{name}'; available: {', '.join(FAMILIES)}") from None


# ------------------------------------------------------------------------------------------------
# Numerical evaluation
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Numeric:
    """Vectorised numpy functions of one surrogate with fixed parameters (see :func:`numeric`)."""

    name: str
    params: tuple[tuple[str, float], ...]
    primitive: Callable[[np.ndarray], np.ndarray]
    derivative: Callable[[np.ndarray], np.ndarray]
    mass: Callable[[np.ndarray], np.ndarray]
    tail: Callable[[np.ndarray], np.ndarray]
    total: float
    peak_slope: float
    kinks: tuple[float, ...] = field(default=())


def _vectorise(fn):
    def wrapped(v):
        arr = np.asarray(v, dtype=np.float64)
        with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
            out = np.asarray(fn(arr), dtype=np.float64)
        return np.broadcast_to(out, arr.shape).copy() if out.shape != arr.shape else out

    return wrapped


@lru_cache(maxsize=512)
def _numeric(name: str, params: tuple[tuple[str, float], ...]) -> Numeric:
    fam = family(name)
    pd = dict(params)
    missing = [s.name for s in fam.symbols if s.name not in pd]
    if missing:
        raise TypeError(f"{name} needs parameter(s) {', '.join(missing)}")
    mods = ["numpy", "scipy"]
    lam = lambda var, e: _vectorise(sp.lambdify(var, fam.subs(e, **pd), modules=mods))  # noqa: E731
    return Numeric(
        name=name,
        params=params,
        primitive=lam(x, fam.primitive),
        derivative=lam(x, fam.derivative),
        mass=lam(eps, fam.mass),
        tail=lam(T, fam.tail),
        total=float(fam.subs(fam.total, **pd)),
        peak_slope=float(fam.subs(fam.peak_slope, **pd)),
        kinks=tuple(sorted(float(fam.subs(kp, **pd)) for kp in fam.kinks)),
    )


def numeric(name: str, **params) -> Numeric:
    """Numpy versions of family ``name`` with ``params`` (defaults from :mod:`htaf.surrogates`).

    >>> n = numeric("htaf", alpha=4.0, beta=1.0)
    >>> round(n.peak_slope, 12), round(float(n.mass(0.5)), 6)
    (1.0, 0.727894)
    """
    from . import surrogates

    full = surrogates.get(name, **params).params
    return _numeric(name, tuple(sorted((k, float(v)) for k, v in full.items())))


def matched_params(name: str, peak_slope: float = 1.0, alpha: float | None = None, beta: float | None = None) -> dict:
    r"""Parameters giving family ``name`` the peak slope :math:`F'(0) =` ``peak_slope``.

    ===============  =======================================  ==================
    family           peak slope                               matched parameter
    ===============  =======================================  ==================
    htaf             :math:`\alpha\beta/4`                    :math:`\beta = 4s/\alpha` (``alpha`` given, default 4) or :math:`\alpha = 4s/\beta`
    sigmoid          :math:`\alpha/4`                         :math:`\alpha = 4s`
    atan             :math:`\alpha/2`                         :math:`\alpha = 2s`
    fast_sigmoid     :math:`k/2`                              :math:`k = 2s`
    triangle         :math:`\alpha`                           :math:`\alpha = s`
    approx_sign      :math:`\alpha`                           :math:`\alpha = s`
    rectangle        :math:`\alpha`                           :math:`\alpha = s`
    erf              :math:`\alpha/\sqrt\pi`                  :math:`\alpha = s\sqrt\pi`
    swish_sign       :math:`\beta/2`                          :math:`\beta = 2s`
    ede              :math:`\max(t, 1)/2`                     :math:`t = 2s` (needs :math:`s \ge 1/2`)
    ste              :math:`1/2`                              only :math:`s = 1/2`
    ===============  =======================================  ==================

    (A thin wrapper of :func:`htaf.surrogates.with_peak_slope`, returning the parameters.)
    """
    from . import surrogates

    if name == "htaf":
        if alpha is not None and beta is not None:
            raise ValueError("give alpha or beta for htaf, not both")
        if beta is not None:
            return surrogates.with_peak_slope("htaf", peak_slope, scale="alpha", beta=beta).params
        return surrogates.with_peak_slope("htaf", peak_slope, alpha=4.0 if alpha is None else alpha).params
    if name not in FAMILIES:
        raise ValueError(f"unknown family '{name}'; available: {', '.join(FAMILIES)}")
    return surrogates.with_peak_slope(name, peak_slope).params


def mass_near_zero(name: str, epsilon, **params) -> np.ndarray:
    r"""Closed-form :math:`M(\varepsilon) = F(\varepsilon) - F(-\varepsilon)`, vectorised in ``epsilon``."""
    return numeric(name, **params).mass(epsilon)


def tail_mass(name: str, threshold, **params) -> np.ndarray:
    r"""Closed-form :math:`\int_{|x|\ge T}|F'(x)|\,dx`, vectorised in ``threshold`` (:math:`T > 0`)."""
    return numeric(name, **params).tail(threshold)


def total_mass(name: str, **params) -> float:
    r""":math:`\int F' = F(\infty) - F(-\infty)`: 1 for the normalised surrogates, :math:`\tanh(\alpha/2)` for HTAF."""
    return numeric(name, **params).total


def _quad(fn, lo, hi, points=()):
    pts = sorted(p for p in points if lo < p < hi)
    edges = [lo, *pts, hi]
    total = 0.0
    for l, r in zip(edges[:-1], edges[1:]):
        val, _ = integrate.quad(fn, l, r, limit=400, epsabs=0.0, epsrel=1e-12)
        total += val
    return total


def quad_mass(name: str, epsilon: float, **params) -> float:
    r""":math:`\int_{-\varepsilon}^{\varepsilon} F'(x)\,dx` by :func:`scipy.integrate.quad` (cross-check of :func:`mass_near_zero`)."""
    n = numeric(name, **params)
    f = lambda v: float(n.derivative(v))  # noqa: E731
    return 2.0 * _quad(f, 0.0, float(epsilon), n.kinks)


def quad_tail(name: str, threshold: float, **params) -> float:
    r""":math:`2\int_T^\infty |F'(x)|\,dx` by :func:`scipy.integrate.quad` (cross-check of :func:`tail_mass`)."""
    n = numeric(name, **params)
    f = lambda v: abs(float(n.derivative(v)))  # noqa: E731
    t0 = float(threshold)
    width = 1.0 / n.peak_slope
    # finite pieces first (so quad sees the bulk of the mass), then the infinite remainder
    stops = [t0 + c * width for c in (1.0, 4.0, 16.0, 64.0)]
    return 2.0 * _quad(f, t0, math.inf, [*n.kinks, *stops])


def htaf_tail_constant(alpha: float, beta: float) -> float:
    r"""The constant :math:`C = 4\alpha\beta\,\sigma'(\alpha)` of the HTAF tail :math:`f'(x) \sim C e^{-2\beta|x|}`."""
    s = special.expit(alpha)
    return 4.0 * alpha * beta * s * (1.0 - s)


def equal_rate_crossover(alpha: float, beta: float = 1.0) -> float:
    r"""Where HTAF's near-zero mass falls below that of the sigmoid with the same tail rate (:math:`k = 2\beta`).

    :math:`\tanh(\tfrac\alpha2\tanh\beta\varepsilon) > \tanh(\beta\varepsilon)` iff :math:`\alpha\tanh u > 2u` with
    :math:`u = \beta\varepsilon`, which holds on :math:`0 < u < u^*(\alpha)` when :math:`\alpha > 2` and never
    when :math:`\alpha \le 2`. Returns :math:`\varepsilon^* = u^*/\beta` (``0.0`` when :math:`\alpha \le 2`).
    """
    if alpha <= 2.0:
        return 0.0
    u = optimize.brentq(lambda v: alpha * math.tanh(v) - 2.0 * v, 1e-9, alpha, xtol=1e-15)
    return u / beta


def derivative_crossover(alpha: float, peak_slope: float = 1.0) -> float:
    r"""The :math:`x > 0` beyond which HTAF's derivative exceeds that of the sigmoid with the same peak slope.

    HTAF with :math:`\beta = 4s/\alpha` against :math:`\sigma(4sx)`; both derivatives equal :math:`s` at 0, the sigmoid's
    is larger just off zero, and for :math:`\alpha > 2` HTAF's slower tail overtakes it at a single crossover.
    """
    if alpha <= 2.0:
        raise ValueError("for alpha <= 2 HTAF's tail is not heavier than the sigmoid's")
    h = numeric("htaf", **matched_params("htaf", peak_slope, alpha=alpha))
    g = numeric("sigmoid", **matched_params("sigmoid", peak_slope))
    diff = lambda v: math.log(float(h.derivative(v))) - math.log(float(g.derivative(v)))  # noqa: E731
    grid = np.linspace(1e-3, 40.0, 4001) / peak_slope  # the sigmoid's derivative stays normal out to 40/s
    vals = np.array([diff(v) for v in grid])
    idx = np.nonzero(np.diff(np.sign(vals)) > 0)[0]
    if idx.size == 0:
        raise ValueError(
            f"no crossover within x <= {grid[-1]:.3g} for alpha={alpha}: as alpha approaches 2 it moves out "
            "to where the sigmoid's derivative underflows float64; use alpha >= 2.05"
        )
    lo, hi = grid[idx[0]], grid[idx[0] + 1]
    return optimize.brentq(diff, lo, hi, xtol=1e-13)


# ------------------------------------------------------------------------------------------------
# Learning: dead units and deep stacks
# ------------------------------------------------------------------------------------------------


def usable_intervals(name: str, kappa: float = 1e-3, **params) -> list[tuple[float, float]]:
    r"""Intervals of :math:`x \ge 0` where :math:`|F'(x)| \ge \kappa F'(0)` (the gradient is *usable*).

    Found by scanning a log-spaced grid out to :math:`10^{9}/F'(0)` and refining every crossing with
    :func:`scipy.optimize.brentq`. By symmetry of every family the set on :math:`x < 0` is the mirror image.
    """
    n = numeric(name, **params)
    level = kappa * n.peak_slope
    width = 1.0 / n.peak_slope
    grid = np.concatenate([[0.0], width * np.logspace(-6, 9, 6001), n.kinks])
    grid = np.unique(grid[grid >= 0])
    g = lambda v: abs(float(n.derivative(v))) - level  # noqa: E731
    vals = np.abs(n.derivative(grid)) - level
    alive = vals >= 0
    intervals, start = [], (0.0 if alive[0] else None)
    for i in range(1, len(grid)):
        if alive[i] == alive[i - 1]:
            continue
        lo, hi = grid[i - 1], grid[i]
        root = optimize.brentq(g, lo, hi, xtol=1e-14 * max(1.0, hi), rtol=1e-13) if g(lo) * g(hi) < 0 else hi
        if alive[i]:
            start = root
        else:
            intervals.append((start, root))
            start = None
    if start is not None:
        intervals.append((start, math.inf))
    return intervals


def dead_fraction(name: str, scale, kappa: float = 1e-3, **params) -> np.ndarray:
    r"""Fraction of units whose surrogate gradient is unusable, :math:`P(|F'(X)| < \kappa F'(0))`,
    for Gaussian pre-activations :math:`X \sim \mathcal N(0, \mathrm{scale}^2)`, vectorised in ``scale``.

    With usable intervals :math:`[l_i, r_i]` on :math:`x \ge 0` (:func:`usable_intervals`),
    :math:`1 - \sum_i [\operatorname{erfc}(l_i/(\mathrm{scale}\sqrt2)) - \operatorname{erfc}(r_i/(\mathrm{scale}\sqrt2))]`.
    For HTAF the single interval ends where :math:`4\sigma(u)\sigma(-u)\mathrm{sech}^2(\beta x) = \kappa`, roughly at
    :math:`|x| \approx \ln(16\sigma'(\alpha)/\kappa)/(2\beta)` when that lies in the tail.
    """
    sc = np.asarray(scale, dtype=np.float64)
    alive = np.zeros_like(sc)
    for lo, hi in usable_intervals(name, kappa, **params):
        r = np.zeros_like(sc) if math.isinf(hi) else special.erfc(hi / (sc * math.sqrt(2.0)))
        alive = alive + special.erfc(lo / (sc * math.sqrt(2.0))) - r
    return 1.0 - alive


def usable_radius(name: str, kappa: float = 1e-3, **params) -> float:
    r"""The largest :math:`|x|` at which the gradient is still usable, :math:`|F'(x)| \ge \kappa F'(0)` (:func:`usable_intervals`)."""
    return usable_intervals(name, kappa, **params)[-1][1]


def best_alpha_for_radius(kappa: float = 1e-3, peak_slope: float = 1.0, bounds: tuple[float, float] = (1.0, 40.0)) -> tuple[float, float]:
    r"""The HTAF :math:`\alpha` (with :math:`\beta = 4s/\alpha`) that maximises :func:`usable_radius`; returns ``(alpha, radius)``."""
    neg = lambda a: -usable_radius("htaf", kappa, **matched_params("htaf", peak_slope, alpha=a))  # noqa: E731
    r = optimize.minimize_scalar(neg, bounds=bounds, method="bounded", options={"xatol": 1e-8})
    return float(r.x), float(-r.fun)


def gain(name: str, scale, signed: bool = True, **params) -> np.ndarray:
    r"""Mean-field per-layer gain of the squared gradient norm through a layer of binary units,

    .. math:: \chi(s) = s^2\,E\big[(c\,F'(sZ))^2\big], \qquad Z \sim \mathcal N(0, 1),

    for the layer :math:`h_{l+1} = \mathrm{sign}(W_l h_l)` with :math:`W_{ij} \sim \mathcal N(0, s^2/n)`
    (so pre-activations are :math:`\mathcal N(0, s^2)`), backward through the surrogate; :math:`c = 2` for
    ``sign`` units (``signed=True``), 1 for 0/1 units. Through :math:`L` layers the gradient norm scales
    like :math:`\chi^{L/2}`. Computed with :func:`scipy.integrate.quad`; vectorised in ``scale``.
    """
    n = numeric(name, **params)
    c2 = 4.0 if signed else 1.0
    out = []
    for s in np.atleast_1d(np.asarray(scale, dtype=np.float64)):
        dens = lambda v, s=s: float(n.derivative(v)) ** 2 * math.exp(-0.5 * (v / s) ** 2) / (s * math.sqrt(2 * math.pi))  # noqa: E731
        width = 1.0 / n.peak_slope
        stops = [c * width for c in (0.5, 2.0, 8.0, 32.0)] + [c * s for c in (1.0, 3.0)]
        val = 2.0 * _quad(dens, 0.0, 14.0 * s, [*n.kinks, *stops])
        out.append(c2 * s * s * val)
    res = np.array(out)
    return res.reshape(np.shape(scale)) if np.ndim(scale) else float(res[0])


def critical_scale(name: str, signed: bool = True, **params) -> float:
    r"""The pre-activation scale :math:`s^*` with :math:`\chi(s^*) = 1` (gradients neither grow nor shrink)."""
    f = lambda ls: math.log(gain(name, math.exp(ls), signed, **params))  # noqa: E731
    return math.exp(optimize.brentq(f, math.log(1e-3), math.log(1e3), xtol=1e-12))


def simulate_stack(
    name: str,
    scale: float,
    depth: int = 30,
    width: int = 512,
    batch: int = 16,
    seed: int = 0,
    kappa: float = 1e-3,
    **params,
) -> dict[str, np.ndarray]:
    r"""Simulate backpropagation through ``depth`` layers of sign units with torch (float64).

    Forward :math:`h_{l+1} = \mathrm{sign}(W_l h_l)`, :math:`W_{ij} \sim \mathcal N(0, \mathrm{scale}^2/n)`,
    :math:`h_0 \in \{\pm1\}^n` random; backward through :meth:`htaf.surrogates.Surrogate.sign_spike`
    (twice the surrogate's derivative). A random :math:`\mathcal N(0, I)` gradient enters at the top.

    Returns a dict with ``log10_ratio[l]`` = :math:`\log_{10}(\lVert g_l\rVert/\lVert g_L\rVert)` (root mean square
    over the batch) for :math:`l = 0..L`, ``dead[l]`` = fraction of pre-activations of layer ``l`` whose
    surrogate gradient is below ``kappa`` times the peak, and ``predicted`` = the mean-field
    :math:`\tfrac{L-l}{2}\log_{10}\chi`.
    """
    import torch

    from . import surrogates

    sg = surrogates.get(name, **params)
    gen = torch.Generator().manual_seed(int(seed))
    dt = torch.float64
    h0 = (2.0 * (torch.rand(batch, width, generator=gen, dtype=dt) < 0.5).to(dt) - 1.0).requires_grad_(True)
    hs, dead = [h0], []
    h = h0
    peak = sg.peak_slope
    for _ in range(depth):
        w = torch.randn(width, width, generator=gen, dtype=dt) * (scale / math.sqrt(width))
        pre = h @ w.T
        dead.append(float((sg.derivative(pre.detach()).abs() < kappa * peak).to(dt).mean()))
        h = sg.sign_spike(pre)
        h.retain_grad()
        hs.append(h)
    top = torch.randn(batch, width, generator=gen, dtype=dt)
    (h * top).sum().backward()
    norms = np.array([float(v.grad.pow(2).sum(dim=1).mean().sqrt()) for v in hs])
    with np.errstate(divide="ignore"):
        ratio = np.log10(norms / norms[-1])
    chi = gain(name, scale, True, **params)
    predicted = 0.5 * np.log10(chi) * np.arange(depth, -1, -1)
    return {"log10_ratio": ratio, "dead": np.array(dead), "predicted": predicted, "chi": chi}


# ------------------------------------------------------------------------------------------------
# The (alpha, beta) map
# ------------------------------------------------------------------------------------------------


def htaf_profile(alpha, beta, epsilon: float = 0.25, threshold: float = 3.0) -> dict:
    r"""HTAF's closed-form properties, elementwise over broadcastable arrays ``alpha`` and ``beta``.

    Keys: ``peak`` (:math:`\alpha\beta/4`), ``mass`` (:math:`M(\varepsilon)`), ``tail`` (tail mass beyond
    ``threshold``), ``total`` (:math:`\tanh(\alpha/2)`), ``rate`` (:math:`2\beta`), ``ratio_to_sigmoid``
    (tail mass over that of the sigmoid with the same peak slope, :math:`2\sigma(-\alpha\beta T)`),
    ``mass_ratio_to_sigmoid`` (near-zero mass over the same sigmoid's :math:`\tanh(\alpha\beta\varepsilon/2)`).
    """
    A, B = np.broadcast_arrays(np.asarray(alpha, float), np.asarray(beta, float))
    peak = A * B / 4.0
    mass = np.tanh(A * np.tanh(B * epsilon) / 2.0)
    d = 2.0 * A / (1.0 + np.exp(2.0 * B * threshold))
    tail = -2.0 * special.expit(A) * special.expit(-A * np.tanh(B * threshold)) * np.expm1(-d)
    sig_tail = 2.0 * special.expit(-A * B * threshold)
    sig_mass = np.tanh(A * B * epsilon / 2.0)
    return {
        "alpha": A,
        "beta": B,
        "peak": peak,
        "mass": mass,
        "tail": tail,
        "total": np.tanh(A / 2.0),
        "rate": 2.0 * B,
        "ratio_to_sigmoid": tail / sig_tail,
        "mass_ratio_to_sigmoid": mass / sig_mass,
    }


def alpha_beta_map(alphas, betas, epsilon: float = 0.25, threshold: float = 3.0) -> dict:
    r""":func:`htaf_profile` on the grid ``alphas`` x ``betas``: arrays of shape ``(len(betas), len(alphas))``."""
    A, B = np.meshgrid(np.asarray(alphas, float), np.asarray(betas, float))
    return htaf_profile(A, B, epsilon, threshold)


def best_alpha_for_tail(scaled_threshold, bounds: tuple[float, float] = (0.1, 200.0)) -> np.ndarray:
    r"""The :math:`\alpha` that maximises HTAF's tail mass beyond :math:`T` at a fixed peak slope :math:`s`.

    At matched peak slope (:math:`\beta = 4s/\alpha`), :math:`f(x) = \sigma(\alpha\tanh(4sx/\alpha))` depends on
    :math:`x` only through :math:`sx`, so the optimum depends only on ``scaled_threshold`` :math:`= sT`
    (the threshold in units of the surrogate's width :math:`1/s`). Vectorised.
    """
    out = []
    for st in np.atleast_1d(np.asarray(scaled_threshold, float)):
        neg = lambda la, st=st: -math.log(  # noqa: E731
            float(htaf_profile(math.exp(la), 4.0 / math.exp(la), threshold=st)["tail"])
        )
        r = optimize.minimize_scalar(neg, bounds=tuple(map(math.log, bounds)), method="bounded",
                                     options={"xatol": 1e-10})
        out.append(math.exp(r.x))
    res = np.array(out)
    return res.reshape(np.shape(scaled_threshold)) if np.ndim(scaled_threshold) else float(res[0])
