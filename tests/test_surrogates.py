"""The surrogate zoo: registry, closed-form derivatives against autograd, conventions, errors."""

import math

import pytest
import torch

import htaf
from htaf import surrogates

EXPECTED = {
    "htaf", "sigmoid", "atan", "fast_sigmoid", "triangle", "rectangle", "erf",
    "ste", "approx_sign", "swish_sign", "ede",
}
NORMALISED = ["sigmoid", "atan", "fast_sigmoid", "triangle", "rectangle", "erf", "ste", "approx_sign"]

# Parameters other than the defaults, to check the formulas are not only right at one point.
OTHER_PARAMS = {
    "htaf": {"alpha": 7.0, "beta": 0.3},
    "sigmoid": {"alpha": 10.0},
    "atan": {"alpha": 5.0},
    "fast_sigmoid": {"slope": 3.0},
    "triangle": {"alpha": 2.5},
    "rectangle": {"alpha": 0.7},
    "erf": {"alpha": 0.5},
    "ste": {},
    "approx_sign": {"alpha": 3.0},
    "swish_sign": {"beta": 1.7},
    "ede": {"t": 0.2},
}


def test_registry_is_complete():
    assert set(surrogates.available()) == EXPECTED
    assert set(OTHER_PARAMS) == EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("which", ["defaults", "other"])
def test_derivative_matches_autograd_of_primitive(name, which):
    sg = surrogates.get(name, **({} if which == "defaults" else OTHER_PARAMS[name]))
    generator = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(4000, generator=generator, dtype=torch.float64) * 3,
                   torch.rand(1000, generator=generator, dtype=torch.float64) * 200 - 100])
    x.requires_grad_(True)
    (auto,) = torch.autograd.grad(sg.primitive(x).sum(), x)
    torch.testing.assert_close(sg.derivative(x.detach()), auto, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_family_has_a_docstring_formula_and_origin(name):
    cls = type(surrogates.get(name))
    assert cls.__doc__ and ":math:" in cls.__doc__
    assert cls.origin


@pytest.mark.parametrize("name", NORMALISED)
def test_normalised_families_go_from_zero_to_one(name):
    sg = surrogates.get(name)
    ends = sg.primitive(torch.tensor([-1e6, 1e6], dtype=torch.float64))
    torch.testing.assert_close(ends, torch.tensor([0.0, 1.0], dtype=torch.float64), rtol=0, atol=1e-6)
    assert sg.primitive(torch.zeros((), dtype=torch.float64)).item() == pytest.approx(0.5)


def test_htaf_surrogate_is_the_functional_htaf():
    sg = surrogates.get("htaf", alpha=3.0, beta=2.0)
    x = torch.linspace(-4, 4, 101, dtype=torch.float64)
    torch.testing.assert_close(sg.primitive(x), htaf.functional.htaf(x, 3.0, 2.0))
    torch.testing.assert_close(sg.derivative(x), htaf.functional.htaf_grad(x, 3.0, 2.0))
    assert sg.peak_slope == pytest.approx(3.0 * 2.0 / 4)


@pytest.mark.parametrize(
    "name, params, slope",
    [
        ("sigmoid", {"alpha": 8.0}, 2.0),
        ("atan", {"alpha": 2.0}, 1.0),
        ("fast_sigmoid", {"slope": 25.0}, 12.5),
        ("triangle", {"alpha": 3.0}, 3.0),
        ("rectangle", {"alpha": 2.0}, 2.0),
        ("erf", {"alpha": 2.0}, 2.0 / math.sqrt(math.pi)),
        ("ste", {}, 0.5),
        ("swish_sign", {"beta": 5.0}, 2.5),
        ("ede", {"t": 0.5}, 0.5),
    ],
)
def test_peak_slopes(name, params, slope):
    assert surrogates.get(name, **params).peak_slope == pytest.approx(slope)


def test_approx_sign_is_bireal_piecewise_polynomial():
    # Bi-Real Net: ApproxSign(x) = 2x + x^2 on [-1, 0), 2x - x^2 on [0, 1); F = (ApproxSign + 1) / 2.
    x = torch.linspace(-0.99, 0.99, 199, dtype=torch.float64)
    bireal = torch.where(x < 0, 2 * x + x**2, 2 * x - x**2)
    torch.testing.assert_close(surrogates.get("approx_sign").primitive(x), (bireal + 1) / 2)


def test_swish_sign_is_bnn_plus_formula():
    beta = 5.0
    x = torch.linspace(-3, 3, 301, dtype=torch.float64)
    s = torch.sigmoid(beta * x)
    bnn_plus = 2 * s * (1 + beta * x * (1 - s)) - 1
    torch.testing.assert_close(surrogates.get("swish_sign", beta=beta).primitive(x), (bnn_plus + 1) / 2)


def test_ede_uses_k_equal_max_of_inverse_t_and_one():
    x = torch.linspace(-2, 2, 41, dtype=torch.float64)
    for t in (0.1, 1.0, 10.0):
        k = max(1 / t, 1.0)
        torch.testing.assert_close(surrogates.get("ede", t=t).primitive(x), (k * torch.tanh(t * x) + 1) / 2)


def test_ede_schedule_endpoints_and_geometric_midpoint():
    assert surrogates.ede_t(0.0) == pytest.approx(0.1)
    assert surrogates.ede_t(1.0) == pytest.approx(10.0)
    assert surrogates.ede_t(0.5) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="progress"):
        surrogates.ede_t(1.5)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_derivatives_finite_for_huge_inputs(name):
    x = torch.tensor([-1e4, -50.0, 0.0, 50.0, 1e4])
    for dtype in (torch.float32, torch.float64):
        d = surrogates.get(name).derivative(x.to(dtype))
        assert torch.isfinite(d).all()


def test_get_copies_and_overrides_an_instance():
    base = surrogates.get("htaf", alpha=2.0)
    assert surrogates.get(base, beta=3.0) == surrogates.HTAF(alpha=2.0, beta=3.0)
    assert surrogates.get("Fast-Sigmoid") == surrogates.FastSigmoid()
    assert hash(surrogates.get("atan")) == hash(surrogates.get("atan", alpha=2.0))
    assert surrogates.get(base) is base  # an instance without overrides passes through
    with pytest.raises(TypeError, match="got int"):
        surrogates.get(3)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown surrogate 'spline'.*available: approx_sign"):
        surrogates.get("spline")
    with pytest.raises(TypeError, match="unknown parameter.*slope.*valid: alpha"):
        surrogates.get("atan", slope=3.0)
    with pytest.raises(ValueError, match="alpha must be a finite number greater than 0"):
        surrogates.get("sigmoid", alpha=-1.0)
    with pytest.raises(TypeError, match="valid: none"):
        surrogates.get("ste", alpha=1.0)


def test_calling_a_surrogate_spikes():
    x = torch.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    sg = surrogates.get("erf")
    y = sg(x)
    assert y.tolist() == [0.0, 1.0, 1.0]
    (g,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(g, sg.derivative(x.detach()))


@pytest.mark.parametrize("name", sorted(EXPECTED - {"ste", "ede"}))
@pytest.mark.parametrize("slope", [0.3, 1.0, 7.5])
def test_with_peak_slope_matches_any_slope(name, slope):
    sg = surrogates.with_peak_slope(name, slope)
    assert sg.peak_slope == pytest.approx(slope, rel=1e-12)
    assert sg.name == name


def test_with_peak_slope_conventions_and_limits():
    assert surrogates.with_peak_slope("htaf", 2.0) == surrogates.HTAF(alpha=4.0, beta=2.0)
    assert surrogates.with_peak_slope("htaf", 2.0, scale="alpha") == surrogates.HTAF(alpha=8.0, beta=1.0)
    assert surrogates.with_peak_slope("ede", 3.0) == surrogates.EDE(t=6.0)
    assert surrogates.with_peak_slope("ste", 0.5) == surrogates.STE()
    with pytest.raises(ValueError, match="cannot reach peak slope 0.25"):
        surrogates.with_peak_slope("ede", 0.25)
    with pytest.raises(ValueError, match="no parameter"):
        surrogates.with_peak_slope("ste", 1.0)
    with pytest.raises(ValueError, match="peak_slope"):
        surrogates.with_peak_slope("atan", 0.0)


# ---------------------------------------------------------------------------- infinite inputs, huge parameters


@pytest.mark.parametrize("name", surrogates.available())
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_derivative_is_zero_and_primitive_finite_at_infinity(name, dtype):
    # SignSwish gave y * exp(-|y|) = inf * 0 = NaN at +-inf (and so a NaN gradient through the spike)
    sg = surrogates.get(name)
    x = torch.tensor([math.inf, -math.inf], dtype=torch.float64)
    work = x.to(torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype)
    assert sg.derivative(work).tolist() == [0.0, 0.0]
    ends = sg.primitive(x.to(dtype)).double()
    assert torch.isfinite(ends).all() and ends[0] > ends[1]


@pytest.mark.parametrize("name", surrogates.available())
@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_spike_backward_is_finite_at_infinity_and_huge_inputs(name, signed, dtype):
    spike = htaf.functional.sign_spike if signed else htaf.functional.spike
    x = torch.tensor([math.inf, -math.inf, 1e30, -1e30, 0.0], dtype=torch.float64).to(dtype).requires_grad_(True)
    for create_graph in (False, True):  # the fused backward and the differentiable one
        (g,) = torch.autograd.grad(spike(x, name).sum(), x, create_graph=create_graph)
        assert torch.isfinite(g).all(), (name, g)
        assert g[:2].tolist() == [0.0, 0.0]


def test_parameters_that_overflow_the_input_dtype_raise_a_clear_error():
    x32 = torch.randn(4, requires_grad=True)
    with pytest.raises(ValueError, match=r"alpha = 1e\+39 .* too large for torch.float32"):
        htaf.functional.spike(x32, surrogates.get("sigmoid", alpha=1e39))
    with pytest.raises(ValueError, match=r"overflows torch.float16: its peak slope 1e\+05"):
        surrogates.get("sigmoid", alpha=4e5).sign_spike(x32.detach().half())
    # the same parameters are fine where the dtype holds them
    (g,) = torch.autograd.grad(htaf.functional.spike(x32.double(), surrogates.get("sigmoid", alpha=1e39)).sum(), x32)
    assert torch.isfinite(g).all()


def test_with_peak_slope_none_keeps_the_parameters_as_given():
    assert surrogates.with_peak_slope("atan", None, alpha=3.0) == surrogates.get("atan", alpha=3.0)
    assert surrogates.with_peak_slope("ste", None) == surrogates.get("ste")


@pytest.mark.parametrize("name", [n for n in surrogates.available() if surrogates.get(n).params])
def test_parameters_that_underflow_the_dtype_are_refused_not_turned_into_nan(name):
    """A parameter below float32's smallest normal value rounds towards 0 there, and ``0 * inf`` made the gradient
    at an infinite input NaN: refused with a ValueError naming it; the smallest normal value itself stays finite."""
    key = next(iter(surrogates.get(name).params))
    x = torch.tensor([float("-inf"), -1.0, 0.0, 1.0, float("inf")], requires_grad=True)
    with pytest.raises(ValueError, match=f"{key} = 1e-300 .* too small for torch.float32"):
        surrogates.get(name, **{key: 1e-300}).spike(x)
    surrogates.get(name, **{key: 1e-300}).spike(x.detach().double().requires_grad_())  # float64 holds it
    tiny = float(torch.finfo(torch.float32).tiny)
    surrogates.get(name, **{key: 2 * tiny}).spike(x).sum().backward()
    assert torch.isfinite(x.grad).all(), x.grad
