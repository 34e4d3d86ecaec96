"""Deep Heaviside networks: model family (htaf.models.dhn) and the dhn / dhn_regression experiments."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from htaf import metrics as metrics_module
from htaf.experiments import dhn as dhn_experiment
from htaf.metrics import firing_summary
from htaf.models.dhn import DHN, n_linear_units
from htaf.nn import HTAF, anneal_alpha, set_alpha

METHODS = ["htaf", "htaf_anneal", "htaf_hard", "ste", "rectangle", "sigmoid", "atan"]


def _hidden_outputs(model: DHN, x: torch.Tensor) -> list[torch.Tensor]:
    outputs: list[torch.Tensor] = []
    hooks = [layer.act.register_forward_hook(lambda _m, _i, out: outputs.append(out)) for layer in model.layers]
    try:
        model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return outputs


@pytest.mark.parametrize("variant", ["plain", "skip", "linear"])
@pytest.mark.parametrize("method", METHODS)
def test_hidden_units_are_exactly_binary_at_inference(method, variant):
    torch.manual_seed(0)
    model = DHN(in_features=5, out_features=3, width=12, depth=3, variant=variant, method=method).eval()
    with torch.no_grad():
        outputs = _hidden_outputs(model, torch.randn(64, 5))
    assert len(outputs) == 3
    for out in outputs:
        assert out.shape == (64, model.binary_units[0])
        assert bool(((out == 0) | (out == 1)).all())


def test_smooth_training_is_smooth_and_hard_training_is_binary():
    torch.manual_seed(0)
    x = torch.randn(32, 5)
    smooth = DHN(5, 2, width=8, depth=2, method="htaf").train()
    hard = DHN(5, 2, width=8, depth=2, method="htaf_hard").train()
    assert not all(bool(((o == 0) | (o == 1)).all()) for o in _hidden_outputs(smooth, x))
    assert all(bool(((o == 0) | (o == 1)).all()) for o in _hidden_outputs(hard, x))
    hard(x).sum().backward()  # the HTAF derivative flows through the exact step
    assert hard.layers[0].linear.weight.grad.abs().sum() > 0


def firing_rates(*args):
    return list(metrics_module.firing_rates(*args).values())


@pytest.mark.parametrize("variant", ["plain", "skip", "linear"])
@pytest.mark.parametrize("depth", [1, 2, 5])
def test_variant_shapes_and_parameter_counts(variant, depth):
    d, m, k = 7, 10, 3
    model = DHN(in_features=d, out_features=k, width=m, depth=depth, variant=variant)
    assert model(torch.randn(4, 1, 7)).shape == (4, k)  # inputs are flattened
    plain_params = (d * m + m) + (depth - 1) * (m * m + m) + (m * k + k)
    skip_params = (depth - 1) * d * m if variant == "skip" else 0
    assert sum(p.numel() for p in model.parameters()) == plain_params + skip_params
    n_lin = 2 if variant == "linear" else 0  # round(0.25 * 10) = 2
    assert model.linear_units == [n_lin] * depth
    assert model.binary_units == [m - n_lin] * depth


def test_linear_share_counts():
    assert n_linear_units(64, 0.25) == 16
    assert n_linear_units(64, 0.5) == 32
    assert n_linear_units(10, 0.01) == 1  # at least one linear unit
    assert n_linear_units(4, 0.99) == 3  # at least one threshold unit
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="linear_share"):
            n_linear_units(8, bad)
    with pytest.raises(ValueError, match="width >= 2"):
        DHN(3, 2, width=1, variant="linear")
    model = DHN(3, 1, width=20, depth=2, variant="linear", linear_share=0.4).eval()
    x = torch.randn(16, 3)
    # the last 8 units of every layer are linear: the first layer's equal W x + b exactly
    h1 = model.layers[0](x)
    lin = model.layers[0].linear
    torch.testing.assert_close(h1[:, 12:], (x @ lin.weight.T + lin.bias)[:, 12:])
    assert bool(((h1[:, :12] == 0) | (h1[:, :12] == 1)).all())


def test_skip_definition():
    """h_1 = H(W_1 x + b_1), h_l = H(W_l h_{l-1} + V_l x + b_l), output W h_L + b."""
    torch.manual_seed(0)
    d, m, depth = 4, 6, 3
    model = DHN(d, 2, width=m, depth=depth, variant="skip", method="ste").eval()
    x = torch.randn(50, d)
    step = lambda z: (z >= 0).float()  # noqa: E731
    h = step(model.layers[0].linear(x))
    for l in range(1, depth):
        V = model.skip.weight[(l - 1) * m : l * m]
        h = step(model.layers[l].linear(h) + x @ V.T)
    torch.testing.assert_close(model(x), model.readout(h))


def test_plain_dhn_is_a_function_of_the_first_layer_code():
    """The expressivity bottleneck: inputs with equal first-layer codes get equal outputs (plain only)."""
    torch.manual_seed(0)
    x = torch.randn(2000, 2)
    for variant, same_expected in (("plain", True), ("skip", False)):
        torch.manual_seed(1)
        model = DHN(2, 1, width=3, depth=4, variant=variant, method="ste").eval()
        with torch.no_grad():
            codes = (model.layers[0].linear(x) >= 0).int()
            out = model(x).squeeze(1)
        keys = codes @ torch.tensor([1, 2, 4], dtype=torch.int32)
        spread = max(float(out[keys == key].max() - out[keys == key].min()) for key in keys.unique())
        assert (spread == 0.0) is same_expected


def test_bad_config_errors():
    with pytest.raises(ValueError, match="variant"):
        DHN(3, 2, variant="dense")
    with pytest.raises(ValueError, match="depth"):
        DHN(3, 2, depth=0)
    with pytest.raises(ValueError, match="width"):
        DHN(3, 2, width=2.5)
    with pytest.raises(ValueError, match="unknown DHN method"):
        DHN(3, 2, method="step")


def test_anneal_schedule_and_set_alpha():
    assert anneal_alpha(0, 5, 2.0, 32.0) == pytest.approx(2.0)
    assert anneal_alpha(4, 5, 2.0, 32.0) == pytest.approx(32.0)
    assert anneal_alpha(2, 5, 2.0, 32.0) == pytest.approx(8.0)  # geometric midpoint
    assert anneal_alpha(0, 1, 2.0, 32.0) == 32.0
    model = DHN(3, 2, width=4, depth=2, method="htaf_hard")
    set_alpha(model, 16.0)
    for m in model.modules():
        if isinstance(m, HTAF):
            assert m.alpha == 16.0 and m.surrogate.alpha == 16.0
    config = {"method": "htaf_anneal", "epochs": 3, "surrogate_params": {"alpha": 2.0}, "peak_slope": None,
              "alpha_end": 32.0}
    dhn_experiment.on_epoch_start(model, 1, config)
    assert all(m.alpha == pytest.approx(8.0) for m in model.modules() if isinstance(m, HTAF))


def _one_unit_model(method: str = "htaf", out_features: int = 2) -> DHN:
    """x -> h = act(x) -> readout; with 2 outputs, class 1 iff 10 (h - 0.7) > 0, i.e. h > 0.7."""
    model = DHN(1, out_features, width=1, depth=1, method=method)
    with torch.no_grad():
        model.layers[0].linear.weight.fill_(1.0)
        model.layers[0].linear.bias.zero_()
        if out_features == 2:
            model.readout.weight.copy_(torch.tensor([[0.0], [10.0]]))
            model.readout.bias.copy_(torch.tensor([0.0, -7.0]))
        else:
            model.readout.weight.fill_(1.0)
            model.readout.bias.zero_()
    return model


def test_switch_gap_on_a_hand_example():
    # smooth h = sigmoid(4 tanh(x)): 0.598, 0.402, 0.979, 0.021 -> classes 0, 0, 1, 0 (3 of 4 right)
    # step   h = 1, 0, 1, 0                                      -> classes 1, 0, 1, 0 (4 of 4 right)
    x = torch.tensor([[0.1], [-0.1], [2.0], [-2.0]])
    y = torch.tensor([1, 0, 1, 0])
    model = _one_unit_model()
    loader = [(x[:2], y[:2]), (x[2:], y[2:])]
    metrics = metrics_module.switch_metrics(model, loader, torch.device("cpu"), {"task": "classification"})
    assert metrics == {"accuracy_step": 1.0, "accuracy_smooth": 0.75, "switch_gap": -0.25}
    assert model.training  # state restored

    # regression: output = h; targets 1, 0, 1, 0 -> step MSE 0, smooth MSE = mean((h_smooth - y)^2)
    reg = _one_unit_model(out_features=1)
    yr = y.float().unsqueeze(1)
    metrics = metrics_module.switch_metrics(reg, [(x, yr)], torch.device("cpu"), {"task": "regression"})
    h = torch.sigmoid(4.0 * torch.tanh(x))
    expected = float(((h - yr) ** 2).mean())
    assert metrics["mse_step"] == 0.0
    assert metrics["mse_smooth"] == pytest.approx(expected)
    assert metrics["switch_gap"] == pytest.approx(-expected)

    # surrogate methods have no smooth forward: only the step score
    metrics = metrics_module.switch_metrics(_one_unit_model("ste"), loader, torch.device("cpu"), {"task": "classification"})
    assert metrics == {"accuracy_step": 1.0}


def test_firing_rates_and_dead_units():
    model = DHN(2, 2, width=3, depth=1, method="htaf")
    with torch.no_grad():
        model.layers[0].linear.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]))
        model.layers[0].linear.bias.copy_(torch.tensor([0.0, -1.0, 1.0]))  # unit 2 dead, unit 3 always on
    x = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [2.0, 5.0], [-3.0, 1.0]])
    rates = firing_rates(model.train(), [(x[:3], None), (x[3:], None)])
    torch.testing.assert_close(rates[0], torch.tensor([0.5, 0.0, 1.0], dtype=torch.float64))
    assert model.training
    summary = firing_summary(rates)
    assert summary["dead_share"] == pytest.approx(1 / 3)
    assert summary["always_on_share"] == pytest.approx(1 / 3)
    assert summary["mean_firing_rate"] == pytest.approx(0.5)
    assert summary["dead_share_by_layer"] == [pytest.approx(1 / 3)]


def test_linear_variant_firing_counts_only_threshold_units():
    model = DHN(3, 2, width=8, depth=2, variant="linear", linear_share=0.5)
    rates = firing_rates(model, [torch.randn(10, 3)])
    assert [r.numel() for r in rates] == [4, 4]


@pytest.mark.parametrize(
    ("experiment", "overrides", "score"),
    [
        ("dhn", {"depth": 2, "variant": "skip", "epochs": 2}, "accuracy"),
        ("dhn", {"depth": 2, "method": "htaf_anneal", "epochs": 2}, "accuracy"),
        ("dhn_regression", {"depth": 2, "variant": "linear", "epochs": 3}, "mse"),
    ],
)
def test_smoke_experiment_end_to_end(tmp_path, monkeypatch, experiment, overrides, score):
    from htaf import results, train

    monkeypatch.setenv("HTAF_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("HTAF_QUIET", "1")
    record = train.run(experiment, "smoke", **overrides)
    files = list((tmp_path / "results" / experiment / "smoke").glob("*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["hash"] == record["hash"]
    metrics = record["metrics"]
    for key in (f"{score}_step", f"{score}_smooth", "switch_gap", "dead_share", "always_on_share"):
        assert key in metrics
    if score == "accuracy":
        assert 0.0 <= metrics["accuracy_step"] <= 1.0
        assert metrics["accuracy_step"] == pytest.approx(metrics["test_accuracy"])  # engine evals with the step
        assert metrics["switch_gap"] == pytest.approx(metrics["accuracy_smooth"] - metrics["accuracy_step"])
    else:
        assert metrics["mse_step"] == pytest.approx(metrics["test_loss"], rel=1e-5)
    if overrides.get("method") == "htaf_anneal":
        assert metrics["final_alpha"] == pytest.approx(record["config"]["alpha_end"])
    assert len(results.load(experiment, "smoke")) == 1


def test_grids_use_known_config_keys():
    from htaf.experiments import resolve_config

    for experiment, profiles in dhn_experiment.GRIDS.items():
        for profile, sweeps in profiles.items():
            for grid in sweeps.values():
                first = {key: values[0] for key, values in grid.items()}
                config = resolve_config(experiment, profile, **first)
                assert isinstance(dhn_experiment.build_model(config), nn.Module)


def test_annealed_run_is_evaluated_at_its_final_alpha_even_when_resumed_at_the_end():
    # A run resumed after its last checkpoint trains no epoch: eval_metrics must still use the final alpha.
    from htaf import data
    from htaf.experiments import resolve_config
    from htaf import surrogates
    from htaf.experiments.dhn import build_model, eval_metrics
    from htaf.nn import anneal_alpha

    config = resolve_config("dhn", "smoke", method="htaf_anneal", depth=1)
    model = build_model(config)
    _, test = data.get_loaders(config)
    metrics = eval_metrics(model, test, torch.device("cpu"), config)
    start = config["surrogate_params"].get("alpha", surrogates.HTAF.defaults["alpha"])
    assert metrics["final_alpha"] == anneal_alpha(config["epochs"] - 1, config["epochs"], start, config["alpha_end"])


def test_peak_slope_matches_every_method_to_ste():
    from htaf import surrogates
    from htaf.experiments import ConfigError, get, resolve_config

    experiment = get("dhn")
    for method in ("htaf", "htaf_anneal", "htaf_hard", "ste", "atan", "sigmoid", "rectangle", "sigmoid_smooth"):
        config = resolve_config("dhn", "cpu", method=method)
        assert config["peak_slope"] == 0.5
        unit = experiment.build_model(config).layers[0].act
        sg = unit.surrogate if hasattr(unit, "surrogate") else surrogates.get("htaf", alpha=unit.alpha, beta=unit.beta)
        assert sg.peak_slope == pytest.approx(0.5), method
    # HTAF keeps alpha and rescales beta; the anneal starts at the matched slope
    unit = experiment.build_model(resolve_config("dhn", "cpu", method="htaf_anneal")).layers[0].act
    assert (unit.alpha, unit.beta) == (4.0, 0.5)
    # None: parameters as given (STE's 1/2 against 1 for HTAF at alpha=4, beta=1)
    unit = experiment.build_model(resolve_config("dhn", "smoke", method="htaf")).layers[0].act
    assert (unit.alpha, unit.beta) == (4.0, 1.0)
    with pytest.raises(ConfigError, match="ste"):  # STE has no parameter to reach another slope with
        experiment.validate(resolve_config("dhn", "cpu", method="ste", peak_slope=1.0))


def test_relu_reference_network_trains_and_records_gradient_norms(tmp_path, monkeypatch):
    from htaf import train

    monkeypatch.setenv("HTAF_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("HTAF_QUIET", "1")
    record = train.run("dhn", "smoke", method="relu", depth=3, variant="skip", epochs=1)
    assert "dead_share" not in record["metrics"] and "accuracy_smooth" not in record["metrics"]
    assert record["metrics"]["accuracy_step"] == pytest.approx(record["metrics"]["test_accuracy"])
    # hidden layers fc1..fc3, the skip weights fc4, the read-out fc5
    assert {f"grad_norm_fc{k}" for k in range(1, 6)} <= set(record["history"][0])
    assert all(record["history"][0][f"grad_norm_fc{k}"] > 0 for k in range(1, 6))


def test_cpu_grids_have_five_seeds_per_cell_and_train_depth_one_once():
    """Every network of the chapter has the seeds its paired comparisons need (htaf.stats.MIN_SEEDS); the tuning
    sweeps, which choose settings on validation data and are compared with nothing, have two, disjoint from the test
    seeds (no tuned run compared on test is one that validation picked)."""
    from htaf import stats
    from htaf.experiments import grids, resolve_config
    from htaf.experiments.dhn import TUNING_SEEDS
    from htaf.results import config_hash

    for experiment in ("dhn", "dhn_regression"):
        cells: dict[str, set[int]] = {}
        for name, grid in grids(experiment, "cpu").items():
            if name.startswith("tuning"):
                assert grid["seed"] == TUNING_SEEDS == [10, 11] and grid["validation"] == [10_000]
                assert not set(TUNING_SEEDS) & {0, 1, 2, 3, 4}
                continue
            assert grid["seed"] == [0, 1, 2, 3, 4] and len(grid["seed"]) >= stats.MIN_SEEDS
            keys = list(grid)
            for values in __import__("itertools").product(*grid.values()):
                config = resolve_config(experiment, "cpu", **dict(zip(keys, values)))
                assert not (config["variant"] == "skip" and config["depth"] == 1)  # the plain DHN of depth 1
                cell = config_hash(experiment, {**config, "seed": None})
                cells.setdefault(cell, set()).add(config["seed"])
        assert all(seeds == {0, 1, 2, 3, 4} for seeds in cells.values())


def test_skip_dhn_of_depth_one_is_the_plain_one():
    """Why the chapter trains and counts the depth-1 network once: same parameters, same function."""
    nets = []
    for variant in ("plain", "skip"):
        torch.manual_seed(0)
        nets.append(DHN(6, 3, width=8, depth=1, variant=variant, method="htaf_hard"))
    assert nets[1].skip is None
    state = [net.state_dict() for net in nets]
    assert state[0].keys() == state[1].keys() and all(torch.equal(state[0][k], state[1][k]) for k in state[0])
    x = torch.randn(10, 6)
    torch.testing.assert_close(nets[0](x), nets[1](x))


@pytest.mark.parametrize("profile", ["smoke", "cpu"])
def test_the_tuned_comparison_tunes_on_a_validation_set_and_trains_each_tuned_setting(profile):
    from htaf.experiments.dhn import GRIDS, MODEL_DEFAULTS, SEEDS, TUNED, TUNING, VALIDATION

    grids = GRIDS["dhn"][profile]
    for sweep in ("tuning", "tuning_ste"):
        assert grids[sweep]["validation"] == [VALIDATION[profile]] and grids[sweep]["depth"] == [MODEL_DEFAULTS["depth"]]
        assert grids[sweep]["variant"] == ["plain"] and grids[sweep]["lr"] == TUNING[profile]["lr"]
    assert grids["tuning_ste"]["method"] == ["ste"] and grids["tuning_ste"]["peak_slope"] == [0.5]  # STE's slope is fixed
    assert "ste" not in grids["tuning"]["method"] and grids["tuning"]["peak_slope"] == TUNING[profile]["peak_slope"]
    tuned = {sweep.removeprefix("tuned_"): grid for sweep, grid in grids.items() if sweep.startswith("tuned_")}
    assert set(tuned) == set(grids["tuning"]["method"]) | {"ste"}
    for method, grid in tuned.items():
        setting = TUNED[method]
        assert grid["method"] == [method] and "validation" not in grid and grid["dataset"] == grids["tuning"]["dataset"]
        assert (grid["peak_slope"], grid["lr"]) == ([setting["peak_slope"]], [setting["lr"]])
        assert setting["peak_slope"] in TUNING["cpu"]["peak_slope"] and setting["lr"] in TUNING["cpu"]["lr"]
        assert grid["seed"] == (SEEDS if profile == "cpu" else [0, 1])


def test_dhn_tuned_is_the_validation_choice_of_the_committed_tuning_runs():
    """TUNED is not typed by hand: it is what the committed ``cpu`` tuning runs' validation accuracy chooses."""
    from pathlib import Path

    from htaf import findings
    from htaf.experiments.dhn import TUNED

    table, chosen = findings.dhn_tuning(results_dir=Path(__file__).resolve().parents[1] / "results")
    assert chosen == TUNED
    assert table.shape == (5, 16) and table.drop(index="ste").notna().all().all()
    assert table.loc["ste"].notna().sum() == 4  # STE: its fixed slope 1/2 at each learning rate
