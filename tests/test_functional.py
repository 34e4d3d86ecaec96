"""HTAF, its closed-form derivative, the exact step and the spike functions."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import htaf
from htaf import functional as F

FLOAT_DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

alphas = st.floats(min_value=0.05, max_value=50.0)
betas = st.floats(min_value=0.05, max_value=20.0)
points = st.floats(min_value=-100.0, max_value=100.0)


def sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v)) if v >= 0 else math.exp(v) / (1.0 + math.exp(v))


# ---------------------------------------------------------------------------- definition


def test_htaf_matches_definition():
    x = torch.linspace(-6, 6, 1001, dtype=torch.float64)
    for alpha, beta in [(4.0, 1.0), (0.5, 3.0), (12.0, 0.2)]:
        expected = torch.sigmoid(alpha * torch.tanh(beta * x))
        torch.testing.assert_close(F.htaf(x, alpha, beta), expected, rtol=0, atol=1e-15)


def test_htaf_grad_matches_autograd_of_naive_composition():
    x = torch.linspace(-8, 8, 2001, dtype=torch.float64, requires_grad=True)
    for alpha, beta in [(4.0, 1.0), (0.5, 3.0), (12.0, 0.2)]:
        (naive,) = torch.autograd.grad(torch.sigmoid(alpha * torch.tanh(beta * x)).sum(), x)
        torch.testing.assert_close(F.htaf_grad(x.detach(), alpha, beta), naive, rtol=1e-9, atol=1e-16)


def test_peak_slope_is_alpha_beta_over_four():
    zero = torch.zeros(1, dtype=torch.float64)
    assert F.htaf_grad(zero, 6.0, 0.5).item() == pytest.approx(6.0 * 0.5 / 4)


def test_tail_keeps_relative_precision_where_one_minus_tanh_squared_underflows():
    # At beta*x = 30, tanh rounds to 1 in float64, so 1 - tanh^2 would give exactly 0.
    alpha, beta, x = 4.0, 1.0, 30.0
    asymptote = 4 * alpha * beta * sigmoid(alpha) * (1 - sigmoid(alpha)) * math.exp(-2 * beta * x)
    got = F.htaf_grad(torch.tensor([x], dtype=torch.float64), alpha, beta).item()
    assert got == pytest.approx(asymptote, rel=1e-9)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_inplace_twins_equal_the_differentiable_closed_forms(dtype):
    from htaf._kernels import htaf_backward_inplace as _htaf_backward_inplace
    from htaf._kernels import htaf_derivative as _htaf_derivative
    from htaf._kernels import htaf_value as _htaf_value
    from htaf._kernels import htaf_value_inplace as _htaf_value_inplace

    x = torch.cat([torch.linspace(-60, 60, 4001, dtype=dtype), torch.randn(1000, dtype=dtype)])
    g = torch.rand_like(x)
    for alpha, beta in [(4.0, 1.0), (0.3, 7.0)]:
        torch.testing.assert_close(_htaf_value_inplace(x, alpha, beta), _htaf_value(x, alpha, beta))
        exact = g * _htaf_derivative(x, alpha, beta)
        peak = alpha * beta / 4
        eps = torch.finfo(dtype).eps
        torch.testing.assert_close(_htaf_backward_inplace(x, g, alpha, beta), exact, rtol=8 * eps, atol=2 * eps * peak)
    assert x.min() == -60  # the input is left untouched


def test_htaf_sign_is_tanh_form():
    x = torch.linspace(-5, 5, 501, dtype=torch.float64)
    torch.testing.assert_close(F.htaf_sign(x, 3.0, 2.0), torch.tanh(3.0 * torch.tanh(2.0 * x) / 2))


def test_gradcheck_float64():
    x = torch.randn(64, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: F.htaf(t, 3.0, 0.7), (x,))
    assert torch.autograd.gradgradcheck(lambda t: F.htaf(t, 3.0, 0.7), (x,))
    assert torch.autograd.gradcheck(lambda t: F.htaf_sign(t, 2.0, 1.5), (x,))


# ---------------------------------------------------------------------------- properties


@settings(max_examples=200, deadline=None)
@given(x=points, alpha=alphas, beta=betas)
def test_symmetry(x, alpha, beta):
    t = torch.tensor([x, -x], dtype=torch.float64)
    y = F.htaf(t, alpha, beta)
    assert y[1].item() == pytest.approx(1.0 - y[0].item(), abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(a=points, b=points, alpha=alphas, beta=betas)
def test_monotone_nondecreasing(a, b, alpha, beta):
    lo, hi = sorted((a, b))
    y = F.htaf(torch.tensor([lo, hi], dtype=torch.float64), alpha, beta)
    assert y[0] <= y[1]


@settings(max_examples=200, deadline=None)
@given(x=points, alpha=alphas, beta=betas)
def test_bounds_are_sigmoid_of_plus_minus_alpha(x, alpha, beta):
    y = F.htaf(torch.tensor([x], dtype=torch.float64), alpha, beta).item()
    assert sigmoid(-alpha) - 1e-15 <= y <= sigmoid(alpha) + 1e-15


@settings(max_examples=100, deadline=None)
@given(delta=st.floats(min_value=0.05, max_value=5.0), beta=betas)
def test_converges_to_step_away_from_zero(delta, beta):
    # sup_{|x| >= delta} |f(x) - H(x)| = sigmoid(-alpha * tanh(beta * delta)) -> 0 as alpha grows.
    side = torch.linspace(delta, delta + 50, 200, dtype=torch.float64)
    x = torch.cat([side, -side])
    errors = []
    for alpha in [1.0, 10.0, 100.0, 1000.0]:
        err = (F.htaf(x, alpha, beta) - F.heaviside(x)).abs().max().item()
        assert err <= sigmoid(-alpha * math.tanh(beta * delta)) + 1e-15
        errors.append(err)
    assert errors == sorted(errors, reverse=True)
    assert errors[-1] < max(1e-12, 2 * sigmoid(-1000 * math.tanh(beta * delta)))


# ---------------------------------------------------------------------------- dtypes, devices, extremes


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_dtype_and_device_preserved(dtype, device):
    x = torch.randn(32, dtype=dtype, device=device, requires_grad=True)
    for fn in (F.htaf, F.htaf_sign, lambda t: F.spike(t, "atan"), lambda t: F.sign_spike(t, "ste")):
        y = fn(x)
        assert y.dtype == dtype and y.device == x.device
        (g,) = torch.autograd.grad(y.sum(), x)
        assert g.dtype == dtype
    reference = F.htaf(x.detach().double())
    tol = {torch.float16: 1e-3, torch.bfloat16: 1e-2}.get(dtype, 1e-6)
    torch.testing.assert_close(F.htaf(x.detach()).double(), reference, rtol=0, atol=tol)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_finite_for_huge_inputs(dtype):
    x = torch.tensor([-1e4, -300.0, -1.0, 0.0, 1.0, 300.0, 1e4], dtype=dtype, requires_grad=True)
    y = F.htaf(x, 4.0, 1.0)
    (g,) = torch.autograd.grad(y.sum(), x)
    assert torch.isfinite(y).all() and torch.isfinite(g).all()
    assert (g >= 0).all()


def test_nan_in_nan_out():
    x = torch.tensor([float("nan"), 1.0], requires_grad=True)
    for fn in (F.htaf, F.htaf_sign, F.heaviside, F.sign, F.spike, F.sign_spike):
        y = fn(x)
        assert torch.isnan(y[0]) and not torch.isnan(y[1])


def test_backward_saves_only_the_input():
    x = torch.randn(10, requires_grad=True)
    for y in (F.htaf(x), F.spike(x, "sigmoid")):
        saved = y.grad_fn.saved_tensors
        assert len(saved) == 1 and saved[0].data_ptr() == x.data_ptr()


# ---------------------------------------------------------------------------- step and spike


def test_heaviside_convention_at_zero_and_no_gradient():
    x = torch.tensor([-2.0, -0.0, 0.0, 1e-30, 3.0], requires_grad=True)
    assert F.heaviside(x).tolist() == [0.0, 1.0, 1.0, 1.0, 1.0]
    assert F.sign(x).tolist() == [-1.0, 1.0, 1.0, 1.0, 1.0]
    assert not F.heaviside(x).requires_grad


@pytest.mark.parametrize("name", htaf.surrogates.available())
def test_spike_forward_is_step_backward_is_surrogate(name):
    sg = htaf.surrogates.get(name)
    x = torch.linspace(-3, 3, 301, dtype=torch.float64, requires_grad=True)
    y = F.spike(x, sg)
    torch.testing.assert_close(y, F.heaviside(x))
    (g,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(g, sg.derivative(x.detach()))
    s = F.sign_spike(x, sg)
    torch.testing.assert_close(s, F.sign(x))
    (g,) = torch.autograd.grad(s.sum(), x)
    torch.testing.assert_close(g, 2 * sg.derivative(x.detach()))


def test_spike_accepts_names_and_defaults_to_htaf():
    x = torch.randn(20, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(F.spike(x).sum(), x)
    torch.testing.assert_close(g, F.htaf_grad(x.detach(), 4.0, 1.0))


def test_ste_sign_spike_is_binarynet_clipped_identity():
    x = torch.tensor([-1.5, -1.0, -0.3, 0.0, 0.7, 1.0, 1.2], requires_grad=True)
    (g,) = torch.autograd.grad(F.sign_spike(x, "ste").sum(), x)
    assert g.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("fn", [F.htaf, F.htaf_grad, F.htaf_sign])
@pytest.mark.parametrize("param", ["alpha", "beta"])
@pytest.mark.parametrize("value", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_parameters_raise_value_error_naming_them(fn, param, value):
    with pytest.raises(ValueError, match=param):
        fn(torch.zeros(3), **{param: value})


@pytest.mark.parametrize("value", [True, "4", None, [1.0]])
def test_non_numeric_parameters_raise_type_error(value):
    with pytest.raises(TypeError, match="alpha"):
        F.htaf(torch.zeros(3), alpha=value)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.bool, torch.complex64])
@pytest.mark.parametrize("fn", [F.htaf, F.htaf_grad, F.heaviside, F.spike, F.sign_spike])
def test_non_float_tensors_raise_type_error(fn, dtype):
    with pytest.raises(TypeError, match="floating-point"):
        fn(torch.zeros(3, dtype=dtype))


def test_non_tensor_input_raises_type_error_with_fix():
    with pytest.raises(TypeError, match="torch.as_tensor"):
        F.htaf([0.0, 1.0])


def test_unknown_surrogate_name():
    with pytest.raises(ValueError, match="available"):
        F.spike(torch.zeros(2), "nope")


# ---------------------------------------------------------------------------- torch.compile


@pytest.mark.parametrize("backend", ["aot_eager"])
def test_torch_compile_fullgraph(backend):
    sg = htaf.surrogates.get("atan")
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), htaf.nn.HTAF(mode="hard"), torch.nn.Linear(8, 4), htaf.nn.HTAF())
    x = torch.randn(5, 8)
    compiled = torch.compile(model, backend=backend, fullgraph=True)
    torch.testing.assert_close(compiled(x), model(x))

    t = torch.randn(100, dtype=torch.float64, requires_grad=True)
    f = torch.compile(lambda v: F.htaf(v, 3.0, 0.5) + F.spike(v, sg), backend=backend, fullgraph=True)
    (g,) = torch.autograd.grad(f(t).sum(), t)
    torch.testing.assert_close(g, F.htaf_grad(t.detach(), 3.0, 0.5) + sg.derivative(t.detach()))


@pytest.mark.slow
def test_torch_compile_inductor():
    t = torch.randn(1000, requires_grad=True)
    f = torch.compile(lambda v: F.htaf(v, 4.0, 1.0), fullgraph=True)
    (g,) = torch.autograd.grad(f(t).sum(), t)
    torch.testing.assert_close(g, F.htaf_grad(t.detach(), 4.0, 1.0))


# ---------------------------------------------------------------------------- huge parameters


@pytest.mark.parametrize("fn", [F.htaf, F.htaf_grad, F.htaf_sign])
def test_alpha_beta_overflowing_the_dtype_raise_value_error(fn):
    # htaf(x, 1e38, 10) in float32 used to return inf/NaN gradients; alpha=1e300 is inf in float32
    x = torch.randn(8)
    with pytest.raises(ValueError, match=r"HTAF\(alpha=1e\+38, beta=10\) overflows torch.float32: its peak slope 2.5e\+38"):
        fn(x, 1e38, 10.0)
    with pytest.raises(ValueError, match=r"alpha = 1e\+300 of HTAF.* too large for torch.float32"):
        fn(x, 1e300, 1.0)
    with pytest.raises(ValueError, match=r"beta = 1e\+300 .* too large for torch.float32 inputs"):
        fn(x.half(), 1.0, 1e300)  # 16-bit inputs are computed in float32
    with pytest.raises(ValueError, match="overflows torch.bfloat16"):
        fn(x.bfloat16(), 1e37, 10.0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_largest_accepted_alpha_beta_give_finite_values_and_gradients(dtype):
    largest = torch.finfo(dtype).max
    x = torch.tensor([-math.inf, -1e4, -1.0, -1e-3, 0.0, 1e-3, 1.0, 1e4, math.inf], dtype=dtype, requires_grad=True)
    for alpha, beta in [(largest / 16, 1.0), (1.0, largest / 16), (2.0, largest / 32), (1e-30, 1e-30)]:
        if dtype == torch.float16 and alpha * beta / 4 > largest / 16:
            continue
        y = F.htaf(x, alpha, beta)
        (g,) = torch.autograd.grad(y.sum(), x, create_graph=True)
        (g_fast,) = torch.autograd.grad(F.htaf(x, alpha, beta).sum(), x)
        for out in (y, g, g_fast, F.htaf_grad(x.detach(), alpha, beta)):
            assert torch.isfinite(out).all(), (alpha, beta, out)


def test_huge_alpha_is_fine_in_float64():
    x = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64, requires_grad=True)
    y = F.htaf(x, 1e300, 1.0)
    assert y.tolist() == [0.0, 0.5, 1.0]
    (g,) = torch.autograd.grad(y.sum(), x)
    assert torch.isfinite(g).all()


@pytest.mark.parametrize("call", ["htaf", "spike", "sign_spike"])
def test_eager_calls_take_the_classic_form_with_the_same_values_and_gradients(call):
    """In eager mode the autograd functions run in their classic form (``forward(ctx, ...)``: no per-call binding of
    default arguments); forward values, gradients and second derivatives equal the separate form's bit for bit, and
    the separate form still serves torch.func's transforms."""
    from htaf import _kernels, surrogates

    function, args = ((_kernels._HTAFFunction, (4.0, 1.0)) if call == "htaf" else
                      (_kernels._SpikeFunction, (surrogates.get("htaf"), call == "sign_spike")))
    public = {"htaf": F.htaf, "spike": lambda x: F.spike(x, "htaf"),
              "sign_spike": lambda x: surrogates.get("htaf").sign_spike(x)}[call]
    x = torch.linspace(-3, 3, 601, dtype=torch.float64).requires_grad_()
    y = public(x)
    assert type(y.grad_fn) is _kernels._CLASSIC[function]._backward_cls
    assert type(y.grad_fn).__name__ == f"{function.__name__}Backward"
    x_ref = x.detach().clone().requires_grad_()
    y_ref = function.apply(x_ref, *args)  # the separate form
    assert type(y_ref.grad_fn) is function._backward_cls and torch.equal(y, y_ref)
    (g,) = torch.autograd.grad((y * x).sum(), x, create_graph=True)
    (g_ref,) = torch.autograd.grad((y_ref * x_ref).sum(), x_ref, create_graph=True)
    assert torch.equal(g, g_ref)
    assert torch.equal(torch.autograd.grad(g.sum(), x)[0], torch.autograd.grad(g_ref.sum(), x_ref)[0])
    # torch.func differentiates with grad mode on, as create_graph does (the backward's differentiable branch)
    expected = torch.autograd.grad(public(x).sum(), x, create_graph=True)[0]
    assert torch.equal(torch.func.grad(lambda z: public(z).sum())(x.detach()), expected)
