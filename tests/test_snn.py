"""Tests of the spiking-network models (htaf.models.snn) and the ``snn`` experiment."""

from __future__ import annotations

import math

import pytest
import torch

from htaf import _lif, surrogates
from htaf.models import snn

RESETS = ["soft", "hard"]


def constant_drive(value: float, T: int = 4) -> torch.Tensor:
    return torch.full((T, 1), value, dtype=torch.float64)


# --------------------------------------------------------------------------------------------
# Dynamics against hand-computed examples
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", snn.BACKENDS)
def test_lif_hand_computed_soft_and_hard_reset(backend):
    # tau=2, decay_input: H_t = V_{t-1}/2 + X_t/2 with X_t = 1.9 (drive 0.95), threshold 1.
    # soft: H = 0.95, 1.425, 1.1625, 1.03125 -> spikes 0 1 1 1 (V after: .95, .425, .1625, .03125)
    # hard: H = 0.95, 1.425, 0.95, 1.425     -> spikes 0 1 0 1
    x = constant_drive(1.9)
    soft = snn.lif_multistep(x, "atan", tau=2.0, reset="soft", backend=backend)
    hard = snn.lif_multistep(x, "atan", tau=2.0, reset="hard", backend=backend)
    assert soft.flatten().tolist() == [0.0, 1.0, 1.0, 1.0]
    assert hard.flatten().tolist() == [0.0, 1.0, 0.0, 1.0]


def test_if_neuron_and_no_input_decay():
    # tau=inf: integrate-and-fire, H_t = V_{t-1} + X_t; X = 0.4 -> H = .4, .8, 1.2 (spike, soft -> .2), .6
    s = snn.lif_multistep(constant_drive(0.4), "sigmoid", tau=math.inf, reset="soft")
    assert s.flatten().tolist() == [0.0, 0.0, 1.0, 0.0]
    # decay_input=False, tau=2: H_t = V_{t-1}/2 + X_t; X = 0.6 -> .6, .9, 1.05 (spike, hard -> 0), .6
    s = snn.lif_multistep(constant_drive(0.6), "sigmoid", tau=2.0, reset="hard", decay_input=False)
    assert s.flatten().tolist() == [0.0, 0.0, 1.0, 0.0]


def test_spike_exactly_at_threshold():
    # step convention: a neuron fires when H_t >= threshold
    s = snn.lif_multistep(constant_drive(1.0, T=1), "htaf", tau=math.inf, threshold=1.0)
    assert s.item() == 1.0


@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("detach_reset", [False, True])
def test_gradient_hand_computed(reset, detach_reset):
    """dS_1/dX_0 for two steps, written out by hand from the recurrence."""
    sg = surrogates.get("sigmoid", alpha=4.0)
    lam, c, theta = 0.5, 0.5, 1.0
    x = torch.tensor([[2.4], [1.0]], dtype=torch.float64, requires_grad=True)
    s = snn.lif_multistep(x, sg, tau=2.0, threshold=theta, reset=reset, detach_reset=detach_reset)
    s[1].sum().backward()
    h0 = c * 2.4                                   # 1.2: fires
    s0 = 1.0
    v0 = h0 - theta * s0 if reset == "soft" else 0.0
    h1 = lam * v0 + c * 1.0
    g0 = sg.derivative(torch.tensor(h0 - theta, dtype=torch.float64)).item()
    g1 = sg.derivative(torch.tensor(h1 - theta, dtype=torch.float64)).item()
    if reset == "soft":
        dv0_dh0 = 1.0 if detach_reset else 1.0 - theta * g0
    else:
        dv0_dh0 = (1.0 - s0) if detach_reset else (1.0 - s0) - h0 * g0
    expected = g1 * lam * dv0_dh0 * c
    assert x.grad[0].item() == pytest.approx(expected, rel=1e-12)
    assert x.grad[1].item() == pytest.approx(g1 * c, rel=1e-12)


def test_detach_reset_changes_only_the_gradient():
    torch.manual_seed(0)
    x = torch.randn(6, 8, 5, dtype=torch.float64) * 2
    outs, grads = [], []
    for detach in (False, True):
        xi = x.clone().requires_grad_()
        s = snn.lif_multistep(xi, "htaf", reset="soft", detach_reset=detach)
        s.sum().backward()
        outs.append(s)
        grads.append(xi.grad)
    assert torch.equal(outs[0], outs[1])
    assert not torch.allclose(grads[0], grads[1])


# --------------------------------------------------------------------------------------------
# Fused (vectorised) implementation against the plain-autograd loop and a per-step scalar loop
# --------------------------------------------------------------------------------------------


def scalar_reference(x: torch.Tensor, tau: float, threshold: float, reset: str) -> torch.Tensor:
    """Element-by-element Python loop (no torch broadcasting), the definition written literally."""
    lam, c = (1.0, 1.0) if math.isinf(tau) else (1.0 - 1.0 / tau, 1.0 / tau)
    flat = x.reshape(x.shape[0], -1).tolist()
    out = [[0.0] * len(flat[0]) for _ in flat]
    for i in range(len(flat[0])):
        v = 0.0
        for t in range(len(flat)):
            h = lam * v + c * flat[t][i]
            s = 1.0 if h >= threshold else 0.0
            out[t][i] = s
            v = h - threshold * s if reset == "soft" else h * (1.0 - s)
    return torch.tensor(out, dtype=x.dtype).reshape(x.shape)


def backend_results(x, weights, backends, **kwargs):
    """Spikes and input gradient of ``(S * weights).sum()`` for each backend."""
    results = []
    for backend in backends:
        xi = x.clone().requires_grad_()
        s = snn.lif_multistep(xi, backend=backend, **kwargs)
        (s * weights).sum().backward()
        results.append((s, xi.grad))
    return results


@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("surrogate", ["htaf", "atan", "rectangle"])
def test_fused_matches_loop(reset, detach_reset, surrogate):
    """The hand-written adjoint (float64) equals autograd through the plain loop."""
    torch.manual_seed(1)
    x = torch.randn(5, 7, 3, 4, dtype=torch.float64) * 1.5 + 0.8
    weights = torch.randn_like(x)
    (s_fused, g_fused), (s_auto, g_auto), (s_loop, g_loop) = backend_results(
        x, weights, ["fused", "auto", "loop"], surrogate=surrogate, tau=3.0, threshold=0.7, reset=reset,
        detach_reset=detach_reset)
    assert torch.equal(s_fused, s_loop) and torch.equal(s_auto, s_loop)
    assert torch.equal(s_fused, scalar_reference(x, 3.0, 0.7, reset))
    torch.testing.assert_close(g_fused, g_loop, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(g_auto, g_fused, rtol=0, atol=0)  # small input: "auto" is "fused"


def test_fused_accepts_expanded_input_and_gradient():
    # a constant drive (the direct encoder's expand view) and a gradient expanded over T (from .mean(0))
    torch.manual_seed(2)
    base = (torch.randn(4, 6, dtype=torch.float64) * 2).requires_grad_()
    snn.lif_multistep(base.unsqueeze(0).expand(5, 4, 6), "atan", backend="fused").mean(0).sum().backward()
    ref = base.detach().clone().requires_grad_()
    snn.lif_multistep(ref.unsqueeze(0).expand(5, 4, 6).clone(), "atan", backend="loop").mean(0).sum().backward()
    torch.testing.assert_close(base.grad, ref.grad, rtol=1e-12, atol=1e-14)


# a string condition: evaluated when such a test starts, so collecting this file imports no compiler stack (about 1 s)
needs_compiler = pytest.mark.skipif("not snn.compiled_available()", reason="torch.compile needs a C++ compiler")


@needs_compiler
@pytest.mark.parametrize("reset,detach_reset", [("hard", False), ("soft", False), ("hard", True)])
def test_compiled_matches_loop(reset, detach_reset):
    torch.manual_seed(3)
    x = torch.randn(4, 6, 5, dtype=torch.float64) * 1.5 + 0.8
    weights = torch.randn_like(x)
    (s_comp, g_comp), (s_loop, g_loop) = backend_results(
        x, weights, ["compiled", "loop"], surrogate="atan", tau=2.0, reset=reset, detach_reset=detach_reset)
    assert torch.equal(s_comp, s_loop)
    torch.testing.assert_close(g_comp, g_loop, rtol=1e-12, atol=1e-14)


def test_compiled_falls_back_when_compiling_fails(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no compiler")

    monkeypatch.setattr(_lif, "_COMPILED", {})
    monkeypatch.setattr(_lif, "_COMPILER_OK", True)
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: broken)
    x = torch.randn(3, 4, 5, dtype=torch.float64)
    with pytest.warns(RuntimeWarning, match="compiled backend unavailable"):
        s = snn.lif_multistep(x, "htaf", backend="compiled")
    assert torch.equal(s, snn.lif_multistep(x, "htaf", backend="loop"))
    assert list(_lif._COMPILED.values()) == [None]  # not tried again
    snn.lif_multistep(x, "htaf", backend="compiled")


def test_auto_backend_choice(monkeypatch):
    small, large = torch.zeros(2, 8), torch.zeros(2, snn.AUTO_COMPILE_MIN_NEURONS)
    assert snn.resolve_backend("auto", small) == "fused"
    assert snn.resolve_backend("loop", large) == "loop"
    monkeypatch.setattr(_lif, "_COMPILER_OK", True)
    assert snn.resolve_backend("auto", large) == "compiled"
    monkeypatch.setattr(_lif, "_COMPILER_OK", False)
    assert snn.resolve_backend("auto", large) == "fused"


def test_lif_in_bfloat16_integrates_in_float32():
    x = torch.full((8, 3), 0.3, dtype=torch.bfloat16, requires_grad=True)
    s = snn.lif_multistep(x, "htaf", tau=math.inf, reset="soft")
    assert s.dtype == torch.bfloat16
    expected = scalar_reference(x.detach().float(), math.inf, 1.0, "soft")  # bf16(0.3) = 0.30078125
    assert torch.equal(s.float(), expected)
    s.sum().backward()
    assert x.grad.dtype == torch.bfloat16


# --------------------------------------------------------------------------------------------
# Surrogates, modules, encoders, builders
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["htaf", "atan", "sigmoid", "fast_sigmoid", "triangle", "rectangle"])
def test_gradient_flows_through_spikes_to_every_layer(name):
    torch.manual_seed(0)
    model = snn.fc_snn(16, 3, hidden=(12, 12), T=3, surrogate=surrogates.with_peak_slope(name, 1.0), tau=2.0)
    x = torch.randn(10, 16) * 2
    torch.nn.functional.cross_entropy(model(x), torch.arange(10) % 3).backward()
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 3
    for layer in linears:
        assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


def test_bad_configuration_is_refused():
    with pytest.raises(ValueError, match="unknown reset"):
        snn.LIF(reset="partial")
    with pytest.raises(ValueError, match="unknown surrogate"):
        snn.LIF("nope")
    with pytest.raises(ValueError, match="tau"):
        snn.LIF(tau=0.5)
    with pytest.raises(ValueError, match="unknown encoding"):
        snn.make_encoder("latency", 4)
    with pytest.raises(ValueError, match="T"):
        snn.DirectEncoder(0)
    with pytest.raises(ValueError, match="unknown readout"):
        snn.fc_snn(4, 2, readout="max")
    with pytest.raises(ValueError, match="divisible by 4"):
        snn.csnn(1, 10, image_size=30)


def test_rate_encoder_is_seeded_and_undoes_standardisation():
    x = torch.rand(64, 1, 4, 4)
    mean, std = 0.3, 0.2
    z = (x - mean) / std
    a = snn.RateEncoder(T=50, seed=7, mean=mean, std=std)(z)
    b = snn.RateEncoder(T=50, seed=7, mean=mean, std=std)(z)
    assert a.shape == (50, 64, 1, 4, 4)
    assert torch.equal(a, b)
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    assert (a.mean(0) - x).abs().mean() < 0.06  # rate ~ intensity


def test_direct_stem_shortcut_equals_folded_computation():
    torch.manual_seed(0)
    model = snn.csnn(1, 10, image_size=8, channels=4, T=3, readout="rate")
    model.eval()
    x = torch.randn(5, 1, 8, 8)
    fast = model(x)
    folded = snn.Folded(model.stem)(model.encoder(x))
    slow = model.out_lif(model.body(folded)).mean(0)
    assert torch.equal(fast, slow)
    assert fast.shape == (5, 10)


def test_spike_rates_per_layer():
    torch.manual_seed(0)
    model = snn.csnn(1, 10, image_size=8, channels=4, T=2, readout="potential")
    rates = snn.spike_rates(model, [torch.randn(6, 1, 8, 8) for _ in range(2)])
    assert list(rates) == ["lif1", "lif2", "lif3"]
    assert all(0.0 <= r <= 1.0 for r in rates.values())
    assert model.training  # mode restored


def test_spike_rates_and_gradient_norms_equal_direct_measurements():
    from htaf.metrics import gradient_norms
    from htaf.metrics import weight_layers as layer_names

    torch.manual_seed(0)
    model = snn.fc_snn(16, 3, hidden=(12, 12), T=3, tau=2.0)
    batches = [torch.randn(5, 16) * 3 for _ in range(2)]
    outputs: dict[str, list] = {}
    hooks = [m.register_forward_hook(lambda m, i, o, name=name: outputs.setdefault(name, []).append(o))
             for name, m in snn.lif_layers(model).items()]
    rates = snn.spike_rates(model, batches)
    for hook in hooks:
        hook.remove()
    for name, rate in rates.items():
        assert rate == pytest.approx(torch.cat([o.flatten() for o in outputs[name]]).mean().item())
    assert max(rates.values()) > 0.0  # the comparison is not between zeros only

    model(batches[0]).sum().backward()
    norms = gradient_norms(model)
    expected = {f"grad_norm_{name}": m.weight.grad.norm().item() for name, m in layer_names(model).items()}
    assert norms.keys() == expected.keys() and norms == pytest.approx(expected)


# --------------------------------------------------------------------------------------------
# The experiment, end to end
# --------------------------------------------------------------------------------------------


def test_smoke_experiment_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("HTAF_RESULTS", str(tmp_path))
    monkeypatch.setenv("HTAF_CHECKPOINTS", str(tmp_path / "checkpoints"))
    from htaf import results, train

    record = train.run("snn", "smoke", epochs=2)
    assert (tmp_path / "snn" / "smoke" / f"{record['hash']}.json").is_file()
    metrics = record["metrics"]
    assert metrics["test_accuracy"] > 0.3  # 10 classes: chance is 0.1
    assert {"spike_rate_lif1", "spike_rate_lif2"} <= set(metrics)
    assert {"grad_norm_fc1", "grad_norm_fc2", "grad_norm_fc3"} <= set(record["history"][0])
    assert len(results.load("snn", "smoke")) == 1


def test_experiment_refuses_unknown_choices():
    from htaf.experiments import get, resolve_config

    exp = get("snn")
    with pytest.raises(ValueError, match="unknown arch"):
        exp.build_model(resolve_config("snn", "smoke", arch="rnn"))
    with pytest.raises(ValueError, match="unknown surrogate"):
        exp.build_model(resolve_config("snn", "smoke", method="nope"))
    conv = exp.build_model(resolve_config("snn", "smoke", arch="conv", channels=4))
    assert conv(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_rate_encoder_generator_state_travels_in_the_state_dict():
    encoder = snn.RateEncoder(T=3, seed=5)
    x = torch.full((4, 10), 0.5)
    encoder(x)  # advance the stream
    state = encoder.state_dict()
    expected = encoder(x)
    restored = snn.RateEncoder(T=3, seed=5)
    restored.load_state_dict(state)
    torch.testing.assert_close(restored(x), expected)


def test_integrate_and_fire_and_unmatched_slopes_are_configurable():
    from htaf.experiments import resolve_config

    config = resolve_config("snn", "smoke", tau=None, peak_slope=None)
    assert config["tau"] is None and config["peak_slope"] is None
    from htaf.experiments.snn import build_model

    model = build_model(config)
    assert all(layer.tau == float("inf") for layer in snn.lif_layers(model).values())


def test_lif_surrogate_input_is_the_membrane_minus_threshold_the_backward_sees():
    from htaf.metrics import surrogate_gradient_statistics

    lif = snn.LIF("atan", tau=2.0, reset="soft")
    x = torch.tensor([[1.5], [1.5], [1.5]])
    assert lif.surrogate_input(x).flatten().tolist() == pytest.approx([-0.25, 0.125, -0.1875])  # H = .75, 1.125, .8125
    # the loop reference evaluates the surrogate at the same points: its gradient is the derivative there
    currents = torch.randn(6, 32, 8, generator=torch.Generator().manual_seed(0)) * 2
    for reset in ("hard", "soft"):
        layer = snn.LIF("sigmoid", tau=3.0, reset=reset, backend="loop")
        z = layer.surrogate_input(currents)
        assert z.shape == currents.shape
        fired = (z >= 0).to(currents.dtype)
        assert torch.equal(fired, layer(currents))
    stats = surrogate_gradient_statistics(torch.nn.Sequential(layer), [currents])["0"]
    assert stats["preact_rms"] == pytest.approx(float(z.double().square().mean().sqrt()), rel=1e-9)


@pytest.mark.parametrize("profile", ["smoke", "cpu"])
def test_the_tuned_comparison_tunes_on_a_validation_set_and_trains_each_tuned_setting(profile):
    from htaf.experiments.snn import GRIDS, SURROGATES, TUNED, TUNING, VALIDATION

    grids = GRIDS["snn"][profile]
    assert grids["tuning"]["validation"] == [VALIDATION[profile]] and grids["tuning"]["method"] == SURROGATES
    assert set(TUNED) == set(SURROGATES)
    for method, setting in TUNED.items():
        tuned = grids[f"tuned_{method}"]
        assert tuned["method"] == [method] and "validation" not in tuned
        assert (tuned["peak_slope"], tuned["lr"]) == ([setting["peak_slope"]], [setting["lr"]])
        assert setting["peak_slope"] in TUNING["cpu"]["peak_slope"] and setting["lr"] in TUNING["cpu"]["lr"]


def test_tuned_is_the_validation_choice_of_the_committed_tuning_runs():
    """TUNED is not typed by hand: it is what the committed ``cpu`` tuning runs' validation accuracy chooses."""
    from pathlib import Path

    from htaf import findings
    from htaf.experiments.snn import TUNED

    table, chosen = findings.snn_tuning(results_dir=Path(__file__).resolve().parents[1] / "results")
    assert chosen == TUNED
    assert table.notna().all().all() and table.shape == (6, 12)
