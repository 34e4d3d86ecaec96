"""htaf.metrics: firing rates for every family, switch metrics, one gradient-norm key scheme, sign flips."""

import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from htaf import metrics
from htaf.experiments import get, resolve_config
from htaf.models import DHN, snn
from htaf.nn import Spike, make_unit


def test_firing_rates_of_a_dhn_are_per_unit_and_named_by_module():
    model = DHN(2, 2, width=3, depth=2, method="ste")
    with torch.no_grad():
        model.layers[0].linear.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]))
        model.layers[0].linear.bias.copy_(torch.tensor([0.0, -1.0, 1.0]))
    x = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [2.0, 5.0], [-3.0, 1.0]])
    rates = metrics.firing_rates(model, [(x[:3], None), (x[3:], None)])
    assert list(rates) == ["layers.0.act", "layers.1.act"]
    torch.testing.assert_close(rates["layers.0.act"], torch.tensor([0.5, 0.0, 1.0], dtype=torch.float64))
    summary = metrics.firing_summary(rates)
    assert summary["dead_share_by_layer"][0] == pytest.approx(1 / 3)
    assert metrics.firing_rates(model, [x], limit=1)["layers.0.act"].tolist() == [1.0, 0.0, 1.0]


def test_firing_rates_of_an_snn_average_to_its_spike_rates():
    torch.manual_seed(0)
    model = snn.csnn(1, 10, image_size=8, channels=4, T=3, readout="potential")
    batches = [torch.randn(6, 1, 8, 8) * 2 for _ in range(2)]
    spike_rates = snn.spike_rates(model, batches)
    per_unit = metrics.firing_rates(model, batches, units=snn.lif_layers(model))
    assert per_unit["lif1"].shape == (4, 8, 8) and per_unit["lif3"].shape == (64,)
    for name, rate in spike_rates.items():
        assert per_unit[name].mean().item() == pytest.approx(rate)
    assert set(metrics.binary_units(model)) == {"body.0", "body.3", "body.6"}


def test_switch_metrics_cover_smooth_surrogate_units():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), make_unit("sigmoid_smooth"), nn.Linear(4, 2))
    x, y = torch.randn(32, 3), torch.randint(0, 2, (32,))
    found = metrics.switch_metrics(model, [(x, y)], "cpu", {"task": "classification"})
    assert set(found) == {"accuracy_step", "accuracy_smooth", "switch_gap"}
    assert found["switch_gap"] == pytest.approx(found["accuracy_smooth"] - found["accuracy_step"])


def test_one_gradient_norm_key_scheme_for_every_family():
    for name in ("mlp", "snn", "dhn"):
        model = get(name).build_model(resolve_config(name, "smoke"))
        model(torch.randn(4, 1, 8, 8)).sum().backward()
        norms = metrics.gradient_norms(model)
        layers = metrics.weight_layers(model)
        assert list(norms) == [f"grad_norm_{layer}" for layer in layers] and list(layers)[0] == "fc1", name
        assert norms == pytest.approx({f"grad_norm_{k}": m.weight.grad.norm().item() for k, m in layers.items()})
    conv = get("snn").build_model(resolve_config("snn", "smoke", arch="conv", channels=4))
    assert list(metrics.weight_layers(conv)) == ["conv1", "conv2", "fc1", "fc2"]


def test_flip_ratio_and_counter():
    before = [torch.tensor([1.0, -1.0]), torch.tensor([[0.0, -0.5]])]
    after = [torch.tensor([-1.0, -1.0]), torch.tensor([[0.0, 0.5]])]
    assert metrics.flip_ratio(before, after) == 0.5
    with pytest.raises(ValueError, match="same size"):
        metrics.flip_ratio(torch.ones(2), torch.ones(3))
    layer = nn.Linear(10, 10)
    counter = metrics.FlipCounter([layer.weight])
    with torch.no_grad():
        layer.weight[0].neg_()  # 10 of 100 weights change sign (none is exactly 0)
    assert counter.update() == pytest.approx(0.1) and counter.update() == 0.0


def test_metrics_do_not_import_matplotlib():
    code = "import sys, htaf.metrics; assert 'matplotlib' not in sys.modules, 'matplotlib loaded'"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------------------- surrogate gradient statistics


@pytest.mark.parametrize("name, params, signed", [("htaf", {"alpha": 8.0, "beta": 0.5}, False),
                                                  ("sigmoid", {}, True), ("rectangle", {}, False)])
def test_surrogate_gradient_statistics_match_the_theory_on_gaussian_inputs(name, params, signed):
    from htaf import theory
    from htaf.metrics import surrogate_gradient_statistics

    scale = 6.0
    unit = Spike(name, signed=signed, **params)
    x = scale * torch.randn(400_000, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    found = surrogate_gradient_statistics(nn.Sequential(unit), [x], kappa=1e-3)["0"]
    assert found["preact_rms"] == pytest.approx(scale, rel=5e-3) and abs(found["preact_mean"]) < 0.05
    assert found["grad_dead"] == pytest.approx(float(theory.dead_fraction(name, scale, 1e-3, **params)), abs=5e-3)
    # the mean-field gain is scale^2 E[(c F'(scale Z))^2]
    assert found["grad_sq"] * scale**2 == pytest.approx(theory.gain(name, scale, signed, **params), rel=2e-2)


def test_surrogate_gradient_statistics_see_the_training_forward_and_restore_the_model():
    from htaf.metrics import surrogate_gradient_statistics
    from htaf.nn import Smooth

    torch.manual_seed(0)
    first, second = Smooth("sigmoid", step_at_eval=True), Spike("sigmoid")
    model = nn.Sequential(nn.Linear(3, 16), first, nn.Linear(16, 4), second).train()
    x = torch.randn(256, 3)
    got = surrogate_gradient_statistics(model, [x])
    assert model.training and first.step_at_eval  # restored
    with torch.no_grad():
        z = model[2](model[1](model[0](x)))  # train-mode forward: the smooth unit stays smooth
    assert got["3"]["preact_rms"] == pytest.approx(float(z.pow(2).mean().sqrt()), rel=1e-6)
    with pytest.raises(ValueError, match="kappa"):
        surrogate_gradient_statistics(model, [x], kappa=0.0)
    with pytest.raises(TypeError, match="no surrogate"):
        surrogate_gradient_statistics(model, [x], units={"relu": nn.ReLU()})
    with pytest.raises(ValueError, match="no inputs"):
        surrogate_gradient_statistics(model, [])


def test_unit_input_gradients_match_autograd_and_the_mean_field_on_a_random_stack():
    from htaf import theory
    from htaf.metrics import unit_input_gradients

    torch.manual_seed(0)
    width, scale = 512, 1.5
    layers = [nn.Linear(width, width, bias=False) for _ in range(3)]
    for layer in layers:
        nn.init.normal_(layer.weight, std=scale / width**0.5)
    model = nn.Sequential(layers[0], Spike("sigmoid", signed=True), layers[1], Spike("sigmoid", signed=True), layers[2])
    x = torch.sign(torch.randn(256, width))
    top = torch.randn(256, width)
    norms = unit_input_gradients(model, [x], lambda inputs: (model(inputs) * top).sum())
    assert all(p.grad is None for p in model.parameters())  # cleared, nothing changed
    # against a direct autograd computation of dL/dx at the second unit
    z = layers[1](model[1](layers[0](x))).detach().requires_grad_(True)
    (layers[2](model[3](z)) * top).sum().backward()
    assert norms["3"] == pytest.approx(float(z.grad.flatten(1).square().sum(1).mean().sqrt()), rel=1e-5)
    # one layer back, the squared ratio is the mean-field gain at this scale (sign units from +/-1 inputs)
    ratio = (norms["1"] / norms["3"]) ** 2
    assert ratio == pytest.approx(theory.gain("sigmoid", scale, signed=True), rel=0.1)
    with pytest.raises(ValueError, match="no batches"):
        unit_input_gradients(model, [], lambda inputs: model(inputs).sum())
    with pytest.raises(ValueError, match="never reached"):
        unit_input_gradients(model, [x], lambda inputs: model[0](inputs).sum(), units={"3": model[3]})


def test_first_inputs_rejects_a_bad_limit():
    with pytest.raises(ValueError, match="limit"):
        list(metrics.first_inputs([torch.zeros(2, 1)], limit=0))


def test_unit_input_gradients_count_every_call_and_explain_a_unit_without_gradient():
    from htaf.metrics import unit_input_gradients

    torch.manual_seed(0)
    unit, first, second = Spike("sigmoid"), nn.Linear(3, 3), nn.Linear(3, 3)
    model = nn.ModuleDict({"unit": unit, "first": first, "second": second})
    x = torch.randn(8, 3)

    def twice(inputs):  # the same unit on two different layers
        return second(unit(first(unit(inputs @ torch.eye(3, requires_grad=True))))).sum()

    both = unit_input_gradients(model, [x], twice, units={"unit": unit})["unit"]
    # by hand: both calls' input gradients, over 2 x 8 samples
    z1 = (x @ torch.eye(3)).requires_grad_(True)
    z2 = first(unit(z1))
    z2.retain_grad()
    second(unit(z2)).sum().backward()
    expected = float(((z1.grad.square().sum() + z2.grad.square().sum()) / 16).sqrt())
    assert both == pytest.approx(expected, rel=1e-6)
    # a unit fed straight from the data gets no backward signal: said plainly
    with pytest.raises(ValueError, match="needs no gradient"):
        unit_input_gradients(model, [x], lambda inputs: second(unit(inputs)).sum(), units={"unit": unit})
    # every module's own mode comes back
    first.train(); second.eval()
    unit_input_gradients(model, [x], twice, units={"unit": unit})
    assert first.training and not second.training
