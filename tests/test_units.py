"""The unit factory htaf.nn.make_unit and the Smooth module."""

import pytest
import torch
from torch import nn

from htaf import functional as F
from htaf import surrogates
from htaf.nn import HTAF, Smooth, Spike, make_unit, unit_methods, use_mode

X = torch.linspace(-3, 3, 61, dtype=torch.float64)


def grad_of(module, x):
    x = x.clone().requires_grad_(True)
    y = module(x)
    (g,) = torch.autograd.grad(y.sum(), x)
    return y.detach(), g


def test_every_listed_method_builds_and_the_lists_partition():
    binary, real = unit_methods(binary=True), unit_methods(binary=False)
    assert unit_methods() == binary + real and not set(binary) & set(real)
    assert {"htaf", "htaf_anneal", "htaf_hard", "ste", "atan", "sigmoid_smooth"} <= set(binary)
    assert "htaf_smooth" not in binary  # that is "htaf"
    assert set(surrogates.available()) <= set(binary)
    for method in unit_methods():
        assert isinstance(make_unit(method), nn.Module), method


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown unit method 'nope'; valid: htaf, htaf_anneal, htaf_hard.*relu"):
        make_unit("nope")


def test_htaf_methods():
    smooth, anneal, hard = make_unit("htaf", alpha=3.0, beta=0.5), make_unit("htaf_anneal"), make_unit("htaf_hard")
    assert isinstance(smooth, HTAF) and smooth.mode == "smooth" and smooth.step_at_eval and smooth.alpha == 3.0
    assert anneal.mode == "smooth" and anneal.step_at_eval
    assert hard.mode == "hard" and not hard.step_at_eval
    assert make_unit("htaf", surrogate_params={"alpha": 8.0}).alpha == 8.0  # params win over the keywords
    with pytest.raises(TypeError, match="valid: alpha, beta"):
        make_unit("htaf", surrogate_params={"slope": 1.0})


def test_surrogate_spikes_are_steps_with_the_surrogate_derivative():
    unit = make_unit("atan", surrogate_params={"alpha": 3.0})
    assert isinstance(unit, Spike)
    y, g = grad_of(unit, X)
    torch.testing.assert_close(y, F.heaviside(X))
    torch.testing.assert_close(g, surrogates.get("atan", alpha=3.0).derivative(X))
    with pytest.raises(TypeError, match="unknown parameter"):
        make_unit("atan", surrogate_params={"beta": 1.0})


def test_smooth_units_train_on_the_primitive_and_infer_with_the_step():
    unit = make_unit("sigmoid_smooth", surrogate_params={"alpha": 4.0})
    assert isinstance(unit, Smooth)
    y, g = grad_of(unit.train(), X)
    torch.testing.assert_close(y, torch.sigmoid(4.0 * X))  # the naive sigmoid bottleneck
    torch.testing.assert_close(g, surrogates.get("sigmoid", alpha=4.0).derivative(X))
    torch.testing.assert_close(unit.eval()(X), F.heaviside(X))
    hard = Smooth("sigmoid", mode="hard", step_at_eval=False)
    y, g = grad_of(hard.train(), X)
    torch.testing.assert_close(y, F.heaviside(X))
    torch.testing.assert_close(g, surrogates.get("sigmoid").derivative(X))


def test_use_mode_switches_smooth_modules_too():
    net = nn.Sequential(nn.Linear(2, 4), make_unit("erf_smooth"), nn.Linear(4, 4), make_unit("htaf"))
    x = torch.randn(16, 2)
    with use_mode(net, "step"):
        out = net[1](x)
        assert bool(((out == 0) | (out == 1)).all()) and net.training
    with use_mode(net.eval(), "smooth"):
        out = net[1](x)
        assert not bool(((out == 0) | (out == 1)).all())
    assert net[1].step_at_eval and net[1].mode == "smooth"  # restored


@pytest.mark.parametrize("method", ["htaf", "htaf_hard", "ste", "sigmoid_smooth"])
def test_signed_binary_units_give_plus_minus_one(method):
    unit = make_unit(method, signed=True).eval()
    out = unit(X)
    assert set(out.unique().tolist()) == {-1.0, 1.0}
    torch.testing.assert_close(out, F.sign(X))


def test_real_activations_are_never_binarised():
    assert isinstance(make_unit("relu"), nn.ReLU) and isinstance(make_unit("identity"), nn.Identity)
    torch.testing.assert_close(make_unit("tanh").eval()(X), torch.tanh(X))
    with pytest.raises(ValueError, match="binary units only"):
        make_unit("relu", signed=True)
    with pytest.raises(ValueError, match="no surrogate_params"):
        make_unit("gelu", surrogate_params={"alpha": 1.0})


@pytest.mark.parametrize("method", ["htaf", "htaf_hard", "sigmoid_smooth", "atan", "triangle", "erf"])
@pytest.mark.parametrize("slope", [0.5, 2.0])
def test_make_unit_matches_the_peak_slope(method, slope):
    from htaf.nn import make_unit

    unit = make_unit(method, peak_slope=slope)
    if hasattr(unit, "mode"):
        unit.mode = "hard"  # exact step forward, the surrogate's derivative backward
    x = torch.zeros(1, requires_grad=True)
    unit(x).sum().backward()
    assert x.grad.item() == pytest.approx(slope, rel=1e-6)


def test_unit_params_is_the_one_peak_slope_rule():
    from htaf.nn import make_unit, unit_family, unit_params

    assert unit_family("htaf_anneal") == "htaf" and unit_family("erf_smooth") == "erf" and unit_family("gelu") is None
    assert make_unit("htaf", peak_slope=0.5, alpha=8.0).surrogate.params == {"alpha": 8.0, "beta": 0.25}
    assert unit_params("htaf", None, {"beta": 2.0}) == {"alpha": 4.0, "beta": 2.0}
    with pytest.raises(ValueError, match="continuous"):
        make_unit("relu", peak_slope=1.0)
    with pytest.raises(ValueError, match="unknown unit method"):
        unit_family("nonsense")
    with pytest.raises(ValueError, match="peak slope"):
        unit_params("ste", 1.0)
