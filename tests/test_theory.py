"""Tests for htaf.theory: the SymPy forms against the torch surrogates, closed forms against quadrature."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
import torch

from htaf import surrogates
from htaf import theory as th

# parameter sets per family: defaults plus two matched peak slopes where the family has a parameter
PEAKS = (0.5, 2.0)


def param_sets(name):
    sets = [dict(surrogates.get(name).params)]
    if name != "ste":
        sets += [th.matched_params(name, s) for s in PEAKS]
    if name == "htaf":
        sets += [{"alpha": 1.0, "beta": 3.0}, {"alpha": 12.0, "beta": 0.25}]
    if name == "ede":
        sets += [{"t": 0.3}]  # t < 1: k = 1/t
    return sets


CASES = [(name, p) for name in th.FAMILIES for p in param_sets(name)]
IDS = [f"{name}-{'-'.join(f'{k}={v:g}' for k, v in p.items()) or 'default'}" for name, p in CASES]


def sample_points(n):
    rng = np.random.default_rng(0)
    pts = np.concatenate([np.linspace(-30.0, 30.0, 3001) + 0.001234, rng.normal(0.0, 3.0, 500), rng.normal(0.0, 0.3, 500)])
    return pts


def test_every_registered_family_has_a_symbolic_form():
    assert set(th.FAMILIES) == set(surrogates.available())
    assert set(th.COMPARED) <= set(th.FAMILIES)
    assert set(th.LABELS) == set(th.FAMILIES) == set(th.COLORS)


@pytest.mark.parametrize(("name", "params"), CASES, ids=IDS)
def test_sympy_forms_match_torch_in_float64(name, params):
    sg = surrogates.get(name, **params)
    n = th.numeric(name, **params)
    pts = sample_points(4000)
    xt = torch.tensor(pts, dtype=torch.float64)
    np.testing.assert_allclose(n.primitive(pts), sg.primitive(xt).numpy(), rtol=1e-12, atol=1e-15)
    ref = sg.derivative(xt).numpy()
    np.testing.assert_allclose(n.derivative(pts), ref, rtol=1e-9, atol=1e-300)
    assert n.peak_slope == pytest.approx(sg.peak_slope, rel=1e-13)


@pytest.mark.parametrize("name", th.FAMILIES)
def test_symbolic_derivative_is_the_derivative_of_the_primitive(name):
    fam = th.family(name)
    params = dict(surrogates.get(name).params)
    d_sym = sp.lambdify(th.x, fam.subs(sp.diff(fam.primitive, th.x), **params), modules=["numpy", "scipy"])
    n = th.numeric(name, **params)
    pts = np.linspace(-6.0, 6.0, 1201) + 0.000731  # off every kink
    with np.errstate(all="ignore"):
        got = np.asarray(d_sym(pts), dtype=float) * np.ones_like(pts)
    np.testing.assert_allclose(got, n.derivative(pts), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize(("name", "params"), CASES, ids=IDS)
def test_closed_form_masses_match_quadrature(name, params):
    for e in (0.03, 0.3, 1.0, 5.0):
        assert float(th.mass_near_zero(name, e, **params)) == pytest.approx(th.quad_mass(name, e, **params), abs=1e-10)
    for t in (0.1, 0.7, 2.0, 6.0):
        closed = float(th.tail_mass(name, t, **params))
        assert closed == pytest.approx(th.quad_tail(name, t, **params), rel=1e-7, abs=1e-13)
    if name != "swish_sign":  # monotone families: near-zero mass + tail mass = total mass
        for e in (0.2, 2.0):
            both = float(th.mass_near_zero(name, e, **params) + th.tail_mass(name, e, **params))
            assert both == pytest.approx(th.total_mass(name, **params), rel=1e-12)


def test_htaf_closed_forms():
    a, b = 4.0, 1.0
    assert th.total_mass("htaf", alpha=a, beta=b) == pytest.approx(math.tanh(a / 2), rel=1e-15)
    e = np.array([0.1, 1.0, 3.0])
    np.testing.assert_allclose(th.mass_near_zero("htaf", e, alpha=a, beta=b), np.tanh(a * np.tanh(b * e) / 2), rtol=1e-14)
    # tail asymptotic f'(x) ~ 4 a b sigma'(a) exp(-2 b x), in float64 via torch
    x = torch.tensor([30.0], dtype=torch.float64)
    ratio = float(surrogates.get("htaf", alpha=a, beta=b).derivative(x)) * math.exp(2 * b * 30.0)
    assert ratio == pytest.approx(th.htaf_tail_constant(a, b), rel=1e-12)
    # the stable tail mass agrees with the naive formula where the latter has no cancellation
    naive = 2 * (1 / (1 + math.exp(-a)) - 1 / (1 + math.exp(-a * math.tanh(b * 0.5))))
    assert float(th.tail_mass("htaf", 0.5, alpha=a, beta=b)) == pytest.approx(naive, rel=1e-12)


@pytest.mark.parametrize("name", [n for n in th.FAMILIES if n != "ste"])
@pytest.mark.parametrize("s", [0.5, 1.0, 3.0])
def test_matched_params_give_the_requested_peak_slope(name, s):
    assert surrogates.get(name, **th.matched_params(name, s)).peak_slope == pytest.approx(s, rel=1e-13)


def test_matched_params_edge_cases():
    assert th.matched_params("ste", 0.5) == {}
    with pytest.raises(ValueError):
        th.matched_params("ste", 1.0)
    with pytest.raises(ValueError):
        th.matched_params("ede", 0.25)
    with pytest.raises(ValueError):
        th.matched_params("htaf", 1.0, alpha=2.0, beta=2.0)
    with pytest.raises(ValueError):
        th.matched_params("nope", 1.0)
    with pytest.raises(ValueError):
        th.family("nope")
    assert th.matched_params("htaf", 2.0, beta=4.0) == {"alpha": 2.0, "beta": 4.0}


def test_crossovers():
    assert th.equal_rate_crossover(2.0) == 0.0 and th.equal_rate_crossover(1.0) == 0.0
    u = th.equal_rate_crossover(4.0)
    assert 4.0 * math.tanh(u) == pytest.approx(2 * u, rel=1e-12) and u == pytest.approx(1.915, abs=1e-3)
    assert th.equal_rate_crossover(4.0, beta=2.0) == pytest.approx(u / 2, rel=1e-12)
    xc = th.derivative_crossover(4.0)
    h = surrogates.get("htaf", alpha=4.0, beta=1.0)
    s = surrogates.get("sigmoid", alpha=4.0)
    pts = torch.tensor([0.5 * xc, 2.0 * xc], dtype=torch.float64)
    hd, sd = h.derivative(pts), s.derivative(pts)
    assert hd[0] < sd[0] and hd[1] > sd[1]
    with pytest.raises(ValueError):
        th.derivative_crossover(2.0)


def test_dead_fraction_matches_monte_carlo():
    rng = np.random.default_rng(1)
    z = rng.normal(0.0, 1.0, 200_000)
    for name in ("htaf", "sigmoid", "atan", "rectangle", "swish_sign"):
        p = th.matched_params(name, 1.0)
        n = th.numeric(name, **p)
        for scale in (1.0, 3.0):
            mc = np.mean(np.abs(n.derivative(scale * z)) < 1e-3 * n.peak_slope)
            exact = float(th.dead_fraction(name, scale, 1e-3, **p))
            assert abs(mc - exact) < 5 * math.sqrt(max(exact * (1 - exact), 1e-6) / z.size)
    # HTAF in the tail regime: x* ~ ln(16 sigma'(alpha)/kappa) / (2 beta)
    r = th.usable_radius("htaf", 1e-6, alpha=4.0, beta=1.0)
    sp4 = 1 / (1 + math.exp(4)) / (1 + math.exp(-4))
    assert r == pytest.approx(math.log(16 * sp4 / 1e-6) / 2, abs=1e-3)


def test_gain_limits_and_simulation():
    p = th.matched_params("htaf", 1.0)
    assert th.gain("htaf", 1e-3, **p) == pytest.approx(4e-6, rel=1e-2)
    assert th.gain("htaf", 1.0, signed=False, **p) == pytest.approx(th.gain("htaf", 1.0, **p) / 4, rel=1e-12)
    assert th.gain("htaf", th.critical_scale("htaf", **p), **p) == pytest.approx(1.0, rel=1e-8)
    res = th.simulate_stack("htaf", 2.0, depth=8, width=128, batch=8, seed=0, **p)
    assert res["log10_ratio"].shape == (9,) and res["dead"].shape == (8,)
    assert res["log10_ratio"][-1] == 0.0
    assert abs(res["log10_ratio"][0] - res["predicted"][0]) < 0.1 * abs(res["predicted"][0]) + 0.3


def test_alpha_beta_map_and_best_alpha():
    grid = th.alpha_beta_map([1.0, 4.0, 8.0], [0.5, 1.0], epsilon=0.25, threshold=3.0)
    assert grid["mass"].shape == (2, 3)
    np.testing.assert_allclose(grid["peak"], grid["alpha"] * grid["beta"] / 4)
    np.testing.assert_allclose(grid["tail"][1, 1], float(th.tail_mass("htaf", 3.0, alpha=4.0, beta=1.0)), rtol=1e-12)
    assert (grid["mass_ratio_to_sigmoid"] < 1).all()
    best = th.best_alpha_for_tail([1.0, 8.0])
    assert best[0] == pytest.approx(4.71, abs=0.01) and best[1] == pytest.approx(8.54, abs=0.01)
    a_star, radius = th.best_alpha_for_radius(1e-3)
    assert a_star == pytest.approx(5.14, abs=0.01) and radius > th.usable_radius("htaf", 1e-3, alpha=4.0, beta=1.0)


@pytest.mark.parametrize("name, params", [("htaf", {"alpha": 4.0, "beta": 1.0}), ("rectangle", {}), ("sigmoid", {})])
def test_dead_fraction_of_shifted_gaussians_matches_sampling(name, params):
    import torch

    from htaf import surrogates

    sg = surrogates.get(name, **params)
    rng = np.random.default_rng(0)
    for mean, scale in ((0.0, 2.0), (-1.0, 1.2), (2.5, 0.7)):
        z = torch.from_numpy(rng.normal(mean, scale, 1_000_000))
        sampled = float((sg.derivative(z).abs() < 1e-3 * sg.peak_slope).double().mean())
        assert float(th.dead_fraction(name, scale, 1e-3, mean=mean, **params)) == pytest.approx(sampled, abs=2e-3)
    # a mean of zero is the centred closed form, and means broadcast against scales
    grid = th.dead_fraction(name, np.array([[0.5], [2.0]]), 1e-3, mean=np.array([0.0, 1e-12, -1.0]), **params)
    assert grid.shape == (2, 3) and grid[:, 0] == pytest.approx(grid[:, 1], abs=1e-9)
