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

Each family's SymPy form lives in its class (:meth:`htaf.surrogates.Surrogate.symbolic`); :func:`family`,
``FAMILIES``, ``LABELS`` and ``COLORS`` are read from the surrogate registry when used, so a family
registered later is covered like the built-in ones. Numerical evaluation goes through :func:`numeric`,
which lambdifies the SymPy expressions once per parameter set; the tests check these against the torch
implementations in :mod:`htaf.surrogates`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

import numpy as np
import sympy as sp
from scipy import integrate, optimize, special

from . import surrogates
from ._kernels import HTAF_BETA
from ._symbolic import Family, T, eps, sigmoid, x

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
    "derivative_moment",
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


# ------------------------------------------------------------------------------------------------
# The families: one per registered surrogate class, built from the registry at call time
# ------------------------------------------------------------------------------------------------


def _has_symbolic(cls: type[surrogates.Surrogate]) -> bool:
    return getattr(cls.symbolic, "__func__", None) is not surrogates.Surrogate.symbolic.__func__


def _symbolic_names() -> tuple[str, ...]:
    return tuple(name for name in surrogates.available() if _has_symbolic(surrogates.family_class(name)))


def __getattr__(name: str):
    # Derived from the surrogate registry at every access, so a family registered (or removed) later is seen:
    # FAMILIES (every family with a symbolic form, sorted), LABELS and COLORS (display name and colour of every
    # family, from its class; htaf.plotting has the full style).
    if name == "FAMILIES":
        return _symbolic_names()
    if name in ("LABELS", "COLORS"):
        attr = name[:-1].lower()
        return {key: getattr(surrogates.family_class(key), attr) for key in surrogates.available()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: the families the chapters compare at matched peak slope (STE, ApproxSign and EDE coincide with
#: rectangle, triangle and sigmoid there; see :func:`matched_params`)
COMPARED: tuple[str, ...] = ("htaf", "sigmoid", "erf", "atan", "fast_sigmoid", "triangle", "rectangle", "swish_sign")


@lru_cache(maxsize=None)
def _family(cls: type[surrogates.Surrogate]) -> Family:
    # keyed by the class, not the name: a family re-registered under the same name is rebuilt
    fam = cls.symbolic()
    if not isinstance(fam, Family):
        raise TypeError(f"{cls.__name__}.symbolic() must return an htaf.theory.Family, got {type(fam).__name__}")
    if fam.name != cls.name or [s.name for s in fam.symbols] != list(cls.defaults):
        raise ValueError(f"{cls.__name__}.symbolic() describes '{fam.name}' with parameters "
                         f"{[s.name for s in fam.symbols]}; expected '{cls.name}' with {list(cls.defaults)}")
    return fam


def family(name: str) -> Family:
    """The symbolic :class:`Family` of the registered surrogate ``name`` (from its class's ``symbolic()``).

    >>> family("sigmoid").peak_slope
    alpha/4
    """
    try:
        cls = surrogates.family_class(name)
    except (TypeError, ValueError):
        raise ValueError(f"unknown family {name!r}; available: {', '.join(_symbolic_names())}") from None
    if not _has_symbolic(cls):
        raise ValueError(f"surrogate family '{cls.name}' has no symbolic form (its class defines no symbolic()); "
                         f"families with one: {', '.join(_symbolic_names())}")
    return _family(cls)


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
def _numeric(cls: type[surrogates.Surrogate], params: tuple[tuple[str, float], ...]) -> Numeric:
    fam = _family(cls)
    name = cls.name
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


@lru_cache(maxsize=512)
def _derivative_at(n: Numeric) -> Callable[[float], float]:
    """``n.derivative`` at one float, through the ``math`` module: about 20 times faster than numpy on a scalar and
    equal to it within a few ulp (the integrand of the quadratures); numpy where ``math`` overflows or lacks a
    function."""
    fam = family(n.name)
    expr = fam.subs(fam.derivative, **dict(n.params))
    vectorised = n.derivative
    try:
        fast = sp.lambdify(x, expr, modules=["math"])
        fast(0.5)
    except (NameError, TypeError, ValueError, AttributeError):  # a function the math module lacks
        return lambda v: float(vectorised(v))

    def at(v: float) -> float:
        try:
            return float(fast(v))
        except (OverflowError, ValueError, ZeroDivisionError):
            return float(vectorised(v))

    return at


def numeric(name: str, **params) -> Numeric:
    """Numpy versions of family ``name`` with ``params`` (defaults from :mod:`htaf.surrogates`).

    >>> n = numeric("htaf", alpha=4.0, beta=1.0)
    >>> round(n.peak_slope, 12), round(float(n.mass(0.5)), 6)
    (1.0, 0.727894)
    """
    fam = family(name)  # a clear error for unknown families and families without a symbolic form
    sg = surrogates.get(fam.name, **params)
    return _numeric(type(sg), tuple(sorted((k, float(v)) for k, v in sg.params.items())))


def matched_params(name: str, peak_slope: float = 1.0, **fixed: float | None) -> dict:
    r"""Parameters giving family ``name`` the peak slope :math:`F'(0) =` ``peak_slope``.

    The family's ``slope_parameter`` (see :mod:`htaf.surrogates`) is rescaled, the others keep their
    defaults or the values in ``fixed``. Fixing the slope parameter itself frees the family's other
    parameter: for HTAF, :math:`\alpha\beta/4 = s` gives :math:`\beta = 4s/\alpha` by default (``alpha=4``
    or as given) and :math:`\alpha = 4s/\beta` with ``beta`` given. Each family's peak slope is
    ``family(name).peak_slope``; the book's chapter on gradient mass tabulates them all. A thin wrapper of
    :func:`htaf.surrogates.with_peak_slope`, returning the parameters; ``None`` values count as not given.

    >>> matched_params("sigmoid", 1.0), matched_params("htaf", 2.0, beta=4.0)
    ({'alpha': 4.0}, {'alpha': 2.0, 'beta': 4.0})
    """
    cls = surrogates.family_class(name)
    fixed = {key: value for key, value in fixed.items() if value is not None}
    unknown = sorted(set(fixed) - set(cls.defaults))
    if unknown:
        raise TypeError(f"unknown parameter(s) {', '.join(unknown)} for '{cls.name}'; valid: "
                        f"{', '.join(cls.defaults) or 'none'}")
    scale = cls.slope_parameter
    if scale is not None and scale in fixed:
        free = [key for key in cls.defaults if key not in fixed]
        if len(free) != 1:
            raise ValueError(f"give at most {len(cls.defaults) - 1} of {', '.join(cls.defaults)} for '{cls.name}' "
                             f"(one must stay free to match the peak slope), got {', '.join(fixed)}")
        scale = free[0]
    return surrogates.with_peak_slope(cls.name, peak_slope, scale=scale, **fixed).params


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


def equal_rate_crossover(alpha: float, beta: float = HTAF_BETA) -> float:
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
    Computed once per surrogate and ``kappa`` (cached).
    """
    n = numeric(name, **params)
    return list(_usable_intervals(n, float(kappa)))


@lru_cache(maxsize=1024)
def _usable_intervals(n: Numeric, kappa: float) -> tuple[tuple[float, float], ...]:
    level = kappa * n.peak_slope
    width = 1.0 / n.peak_slope
    grid = np.concatenate([[0.0], width * np.logspace(-6, 9, 6001), n.kinks])
    grid = np.unique(grid[grid >= 0])
    g = lambda v: abs(float(n.derivative(v))) - level  # noqa: E731
    vals = np.abs(n.derivative(grid)) - level
    alive = vals >= 0
    intervals, start = [], (0.0 if alive[0] else None)
    for i in np.flatnonzero(alive[1:] != alive[:-1]) + 1:  # the grid points where usability changes
        lo, hi = grid[i - 1], grid[i]
        root = optimize.brentq(g, lo, hi, xtol=1e-14 * max(1.0, hi), rtol=1e-13) if g(lo) * g(hi) < 0 else hi
        if alive[i]:
            start = root
        else:
            intervals.append((start, root))
            start = None
    if start is not None:
        intervals.append((start, math.inf))
    return tuple(intervals)


def dead_fraction(name: str, scale, kappa: float = 1e-3, mean=0.0, **params) -> np.ndarray:
    r"""Fraction of units whose surrogate gradient is unusable, :math:`P(|F'(X)| < \kappa F'(0))`,
    for Gaussian pre-activations :math:`X \sim \mathcal N(\mathrm{mean}, \mathrm{scale}^2)` (centred by default),
    vectorised in ``scale`` and ``mean`` (broadcast together).

    With usable intervals :math:`[l_i, r_i]` on :math:`x \ge 0` (:func:`usable_intervals`) and their mirror images,
    centred: :math:`1 - \sum_i [\operatorname{erfc}(l_i/(\mathrm{scale}\sqrt2)) - \operatorname{erfc}(r_i/(\mathrm{scale}\sqrt2))]`.
    For HTAF the single interval ends where :math:`4\sigma(u)\sigma(-u)\mathrm{sech}^2(\beta x) = \kappa`, roughly at
    :math:`|x| \approx \ln(16\sigma'(\alpha)/\kappa)/(2\beta)` when that lies in the tail.
    """
    sc = np.asarray(scale, dtype=np.float64)
    mu = np.asarray(mean, dtype=np.float64)
    if not (np.all(np.isfinite(sc)) and np.all(sc > 0)):
        raise ValueError(f"scale must be positive and finite (the Gaussian's standard deviation), got {scale!r}")
    if not np.all(np.isfinite(mu)):
        raise ValueError(f"mean must be finite, got {mean!r}")
    if not np.any(mu):  # centred: the closed form above (kept for its accuracy in the far tail)
        alive = np.zeros_like(sc)
        for lo, hi in usable_intervals(name, kappa, **params):
            r = np.zeros_like(sc) if math.isinf(hi) else special.erfc(hi / (sc * math.sqrt(2.0)))
            alive = alive + special.erfc(lo / (sc * math.sqrt(2.0))) - r
        return 1.0 - alive * np.ones_like(mu)
    sc, mu = np.broadcast_arrays(sc, mu)
    cdf = lambda v: special.ndtr((v - mu) / sc)  # noqa: E731
    alive = np.zeros(sc.shape)
    for lo, hi in usable_intervals(name, kappa, **params):
        alive = alive + (1.0 if math.isinf(hi) else cdf(hi)) - cdf(lo)  # [lo, hi]
        alive = alive + cdf(-lo) - (0.0 if math.isinf(hi) else cdf(-hi))  # [-hi, -lo]
    return 1.0 - alive


def usable_radius(name: str, kappa: float = 1e-3, **params) -> float:
    r"""The largest :math:`|x|` at which the gradient is still usable, :math:`|F'(x)| \ge \kappa F'(0)` (:func:`usable_intervals`)."""
    return usable_intervals(name, kappa, **params)[-1][1]


def best_alpha_for_radius(kappa: float = 1e-3, peak_slope: float = 1.0, bounds: tuple[float, float] = (1.0, 40.0)) -> tuple[float, float]:
    r"""The HTAF :math:`\alpha` (with :math:`\beta = 4s/\alpha`) that maximises :func:`usable_radius`; returns ``(alpha, radius)``."""
    neg = lambda a: -usable_radius("htaf", kappa, **matched_params("htaf", peak_slope, alpha=a))  # noqa: E731
    r = optimize.minimize_scalar(neg, bounds=bounds, method="bounded", options={"xatol": 1e-8})
    return float(r.x), float(-r.fun)


def _mean_square_derivative(n: Numeric, s: float) -> float:
    """:math:`E[F'(sZ)^2]` for :math:`Z \\sim N(0, 1)`, by quadrature over :math:`v \\ge 0` (the derivative is even)."""
    at = _derivative_at(n)
    dens = lambda v: at(v) ** 2 * math.exp(-0.5 * (v / s) ** 2) / (s * math.sqrt(2 * math.pi))  # noqa: E731
    width = 1.0 / n.peak_slope
    stops = [c * width for c in (0.5, 2.0, 8.0, 32.0)] + [c * s for c in (1.0, 3.0)]
    return 2.0 * _quad(dens, 0.0, 14.0 * s, [*n.kinks, *stops])


def _per_scale(scale, value) -> np.ndarray:
    res = np.array([value(s) for s in np.atleast_1d(np.asarray(scale, dtype=np.float64))])
    return res.reshape(np.shape(scale)) if np.ndim(scale) else float(res[0])


def derivative_moment(name: str, scale, signed: bool = True, **params) -> np.ndarray:
    r"""The mean squared backward factor of a binary unit on Gaussian pre-activations,

    .. math:: E\big[(c\,F'(sZ))^2\big], \qquad Z \sim \mathcal N(0, 1),

    with :math:`c = 2` for ``sign`` units (``signed=True``), 1 for 0/1 units: the unit's factor in the mean-field
    gain (:func:`gain`). Computed with :func:`scipy.integrate.quad`; vectorised in ``scale``.
    """
    n, c2 = numeric(name, **params), 4.0 if signed else 1.0
    return _per_scale(scale, lambda s: c2 * _mean_square_derivative(n, s))


def gain(name: str, scale, signed: bool = True, **params) -> np.ndarray:
    r"""Mean-field per-layer gain of the squared gradient norm through a layer of binary units,

    .. math:: \chi(s) = s^2\,E\big[(c\,F'(sZ))^2\big], \qquad Z \sim \mathcal N(0, 1),

    for the layer :math:`h_{l+1} = \mathrm{sign}(W_l h_l)` with :math:`W_{ij} \sim \mathcal N(0, s^2/n)`
    (so pre-activations are :math:`\mathcal N(0, s^2)`), backward through the surrogate; :math:`c = 2` for
    ``sign`` units (``signed=True``), 1 for 0/1 units (:func:`derivative_moment`). Through :math:`L` layers the
    gradient norm scales like :math:`\chi^{L/2}`. When the weights' scale :math:`w^2 = \lVert W\rVert_F^2/m` is not
    the pre-activations' (0/1 inputs, biases), the gain is :math:`w^2` times :func:`derivative_moment`.
    Computed with :func:`scipy.integrate.quad`; vectorised in ``scale``.
    """
    n, c2 = numeric(name, **params), 4.0 if signed else 1.0
    return _per_scale(scale, lambda s: c2 * s * s * _mean_square_derivative(n, s))


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
