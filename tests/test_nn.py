"""The HTAF and Spike modules and the use_mode context manager."""

import pytest
import torch

import htaf
from htaf import functional as F
from htaf.nn import HTAF, Spike, use_mode


def grad_of(module, x):
    x = x.clone().requires_grad_(True)
    y = module(x)
    (g,) = torch.autograd.grad(y.sum(), x)
    return y.detach(), g


X = torch.linspace(-3, 3, 61, dtype=torch.float64)


def test_smooth_mode_is_htaf_with_exact_gradient():
    y, g = grad_of(HTAF(3.0, 0.5), X)
    torch.testing.assert_close(y, F.htaf(X, 3.0, 0.5))
    torch.testing.assert_close(g, F.htaf_grad(X, 3.0, 0.5))


def test_hard_mode_is_step_forward_htaf_derivative_backward():
    y, g = grad_of(HTAF(3.0, 0.5, mode="hard"), X)
    torch.testing.assert_close(y, F.heaviside(X))
    torch.testing.assert_close(g, F.htaf_grad(X, 3.0, 0.5))


def test_step_mode_is_exact_step_without_gradient():
    act = HTAF(mode="step")
    y = act(X.clone().requires_grad_(True))
    torch.testing.assert_close(y, F.heaviside(X))
    assert not y.requires_grad


def test_step_at_eval_switches_with_train_and_eval():
    act = HTAF(step_at_eval=True)
    assert act.active_mode == "smooth"
    act.eval()
    assert act.active_mode == "step"
    torch.testing.assert_close(act(X), F.heaviside(X))
    act.train()
    torch.testing.assert_close(act(X), F.htaf(X))


def test_signed_outputs_plus_minus_one():
    y, g = grad_of(HTAF(2.0, 1.0, signed=True), X)
    torch.testing.assert_close(y, torch.tanh(2.0 * torch.tanh(X) / 2))
    torch.testing.assert_close(g, 2 * F.htaf_grad(X, 2.0, 1.0))
    y, _ = grad_of(HTAF(signed=True, mode="hard"), X)
    assert set(y.tolist()) == {-1.0, 1.0}
    assert set(HTAF(signed=True, step_at_eval=True).eval()(X).tolist()) == {-1.0, 1.0}


@pytest.mark.parametrize("name", ["atan", "sigmoid", "ste"])
def test_spike_module_uses_the_named_surrogate(name):
    sg = htaf.surrogates.get(name)
    y, g = grad_of(Spike(name), X)
    torch.testing.assert_close(y, F.heaviside(X))
    torch.testing.assert_close(g, sg.derivative(X))
    y, g = grad_of(Spike(name, signed=True), X)
    torch.testing.assert_close(y, F.sign(X))
    torch.testing.assert_close(g, 2 * sg.derivative(X))


def test_use_mode_switches_and_restores():
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), HTAF(step_at_eval=True), torch.nn.Linear(8, 8), HTAF(mode="hard"))
    x = torch.randn(16, 4)
    with use_mode(net, "step"):
        assert [m.active_mode for m in net if isinstance(m, HTAF)] == ["step", "step"]
        out = net(x)
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    assert [(m.mode, m.step_at_eval) for m in net if isinstance(m, HTAF)] == [("smooth", True), ("hard", False)]
    with pytest.raises(RuntimeError), use_mode(net, "smooth"):
        raise RuntimeError("restored even on error")
    assert net[3].mode == "hard"


def test_changing_alpha_or_beta_updates_both_paths():
    act = HTAF(4.0, 1.0, mode="hard")
    act.alpha = 8.0
    _, g = grad_of(act, X)
    torch.testing.assert_close(g, F.htaf_grad(X, 8.0, 1.0))
    act.mode, act.beta = "smooth", 0.5
    y, g = grad_of(act, X)
    torch.testing.assert_close(y, F.htaf(X, 8.0, 0.5))
    torch.testing.assert_close(g, F.htaf_grad(X, 8.0, 0.5))
    with pytest.raises(ValueError, match="alpha"):
        act.alpha = -1.0


def test_bad_arguments():
    with pytest.raises(ValueError, match="mode must be one of smooth, hard, step"):
        HTAF(mode="soft")
    with pytest.raises(ValueError, match="beta"):
        HTAF(beta=0.0)
    with pytest.raises(ValueError, match="mode"):
        with use_mode(torch.nn.Sequential(), "binary"):
            pass
    with pytest.raises(TypeError, match="floating-point"):
        HTAF()(torch.arange(3))


def test_repr_and_state_dict():
    assert repr(HTAF(2.0, 0.5, mode="hard", step_at_eval=True)) == (
        "HTAF(alpha=2.0, beta=0.5, mode='hard', step_at_eval=True)"
    )
    assert repr(Spike("atan", alpha=3.0)) == "Spike(Atan(alpha=3.0), signed=False)"
    assert HTAF().state_dict() == {}


def test_trains_a_tiny_binary_classifier():
    # XOR-like data: a network with exact-step hidden units at inference must learn it with HTAF.
    torch.manual_seed(0)
    x = torch.randn(512, 2)
    y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).long()
    net = torch.nn.Sequential(torch.nn.Linear(2, 32), HTAF(4.0, 2.0, step_at_eval=True), torch.nn.Linear(32, 2))
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(300):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    net.eval()
    accuracy = (net(x).argmax(1) == y).float().mean().item()
    assert accuracy > 0.9


def test_mode_is_validated_on_assignment():
    act = HTAF()
    with pytest.raises(ValueError, match="mode must be one of smooth, hard, step; got 'smoth'"):
        act.mode = "smoth"
    assert act.mode == "smooth"  # unchanged
    act.mode = "hard"
    assert act.active_mode == "hard" and "mode='hard'" in repr(act)
    with pytest.raises(ValueError, match="mode must be one of"):
        HTAF(mode="Step")


def test_huge_alpha_in_float32_raises_naming_alpha():
    act = HTAF(alpha=1e300)  # a valid float64 number: checked against the input's dtype at call time
    with pytest.raises(ValueError, match=r"alpha = 1e\+300 .* too large for torch.float32"):
        act(torch.randn(4))
    assert act(torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64)).tolist() == [0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match="overflows torch.float32"):
        HTAF(alpha=1e38, beta=10.0, mode="hard")(torch.randn(4))
