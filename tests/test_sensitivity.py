"""The sensitivity experiments: grid shapes, the model keys they add, a smoke run of each family."""

from __future__ import annotations

import itertools

import pytest
import torch

import htaf
from htaf import surrogates
from htaf.experiments import ConfigError, get, grids, resolve_config
from htaf.experiments import sensitivity as sens
from htaf.nn import HTAF, Spike

NAMES = ["sensitivity_dhn", "sensitivity_bnn", "sensitivity_snn"]


def _count(grid: dict) -> int:
    n = 1
    for values in grid.values():
        n *= len(values)
    return n


def test_htaf_params_reads_alpha_and_beta_back_from_a_sweep():
    import pandas as pd

    frame = pd.DataFrame({"method": ["htaf_hard", "sigmoid", None],
                          "surrogate_params": ['{"alpha": 8.0}', None, '{"alpha": 1.0, "beta": 4.0}']})
    out = sens.htaf_params(frame, "sensitivity_dhn", "smoke")
    assert out["alpha"].tolist()[::2] == [8.0, 1.0] and out["beta"].tolist()[::2] == [1.0, 4.0]
    assert out[["alpha", "beta"]].iloc[1].isna().all()  # not an HTAF method


def test_cells_span_the_map():
    assert sens.cells() == list(itertools.product(sens.ALPHAS, sens.BETAS))
    assert sens.ALPHAS == [1.0, 2.0, 4.0, 8.0, 16.0] and sens.BETAS == [0.25, 0.5, 1.0, 2.0, 4.0]


@pytest.mark.parametrize("name", NAMES)
def test_cpu_map_has_every_cell_with_at_least_two_seeds(name):
    grid = grids(name, "cpu")["map"]
    assert grid["surrogate_params"] == [{"alpha": a, "beta": b} for a, b in sens.cells()]
    assert len(grid["seed"]) >= 2
    assert _count(grid) == 25 * len(grid["seed"])


def test_cpu_run_counts():
    from htaf.reproduction import run_counts

    counts = {name: sum(_count(g) for g in grids(name, "cpu").values()) for name in NAMES}  # with repeats
    planned = {name: len({(tuple(sorted(c.items()))) for c in _configs(name, "cpu")}) for name in NAMES}
    assert planned == run_counts("cpu", only=NAMES)  # distinct runs: the plan's count
    # some sweeps of the DHN and SNN share runs (each trained once), none of the BNN's
    assert planned["sensitivity_bnn"] == counts["sensitivity_bnn"]
    assert all(planned[name] < counts[name] for name in ("sensitivity_dhn", "sensitivity_snn"))


def _configs(name: str, profile: str) -> list[dict]:
    out = []
    for grid in grids(name, profile).values():
        for values in itertools.product(*grid.values()):
            config = resolve_config(name, profile, **dict(zip(grid, values)))
            out.append({k: repr(v) for k, v in config.items()})
    return out


@pytest.mark.parametrize("profile", ["smoke", "cpu"])
def test_depth_and_time_step_sweeps_match_the_peak_slope(profile):
    dhn, snn = grids("sensitivity_dhn", profile), grids("sensitivity_snn", profile)
    pairs = [(dhn, "plain_deep", "htaf_hard"), (dhn, "skip", "htaf_hard"),
             (snn, "steps", "htaf"), (snn, "deep", "htaf")]
    for grid, prefix, method in pairs:
        htaf_grid, sur_grid = grid[f"{prefix}_htaf"], grid[f"{prefix}_surrogates"]
        assert htaf_grid["method"] == [method] and htaf_grid["peak_slope"] == sur_grid["peak_slope"] == [1.0]
        assert htaf_grid["seed"] == sur_grid["seed"] and len(htaf_grid["seed"]) >= 2
        if profile == "cpu":
            assert htaf_grid["surrogate_params"] == [{"alpha": a} for a in sens.ALPHAS] and sur_grid["method"] == sens.STRESS_METHODS
            assert len(htaf_grid["seed"]) == 3
    assert dhn["skip_htaf"]["variant"] == ["skip"] and dhn["plain_deep_htaf"]["variant"] == ["plain"]
    if profile == "cpu":
        assert dhn["skip_htaf"]["depth"] == [8, 16, 32] and dhn["plain_deep_htaf"]["depth"] == [16, 32]
        assert snn["steps_htaf"]["T"] == [4, 8, 16, 32]
        assert [len(h) for h in snn["deep_htaf"]["hidden"]] == [4, 8]
    for name in ("sensitivity_dhn", "sensitivity_snn"):  # every config of the new sweeps is valid
        for sweep, grid in grids(name, profile).items():
            if sweep.startswith(("plain_deep", "skip", "steps", "deep")):
                for values in itertools.product(*grid.values()):
                    resolve_config(name, profile, **dict(zip(grid, values)))


def test_deep_snn_has_the_hidden_layers_and_time_steps_asked_for():
    config = resolve_config("sensitivity_snn", "smoke", method="htaf", surrogate_params={"alpha": 8.0}, peak_slope=1.0,
                            hidden=[16] * 4, T=8)
    model = get("sensitivity_snn").build_model(config)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 5  # 4 hidden layers and the read-out
    sg = next(getattr(m, "surrogate") for m in model.modules() if hasattr(m, "surrogate"))
    assert sg.params["alpha"] == 8.0 and sg.peak_slope == pytest.approx(1.0)


def test_stress_sweeps_match_peak_slopes_and_compare_optimisers():
    cpu = grids("sensitivity_dhn", "cpu")
    for opt in ("adam", "sgd"):
        htaf_grid, sur_grid = cpu[f"stress_{opt}_htaf"], cpu[f"stress_{opt}_surrogates"]
        assert htaf_grid["method"] == ["htaf_hard"] and htaf_grid["surrogate_params"] == [{"alpha": a} for a in sens.ALPHAS]
        assert htaf_grid["peak_slope"] == sur_grid["peak_slope"] == sens.PEAKS
        assert sur_grid["method"] == sens.STRESS_METHODS
        assert htaf_grid["optimizer"] == sur_grid["optimizer"] == [opt]
    assert cpu["stress_sgd_htaf"]["momentum"] == [0.9]
    assert cpu["scale_htaf"]["init_gain"] == cpu["scale_surrogates"]["init_gain"] == sens.GAINS
    assert cpu["scale_htaf"]["seed"] == cpu["scale_surrogates"]["seed"] == sens.SCALE_SEEDS
    assert 1.0 in sens.GAINS and len(sens.SCALE_SEEDS) == 5


@pytest.mark.parametrize("name, prefix, method, fixed", [
    ("sensitivity_dhn", "skip_optimiser", "htaf_hard", {"variant": ["skip"], "depth": [16]}),
    ("sensitivity_snn", "steps_optimiser", "htaf", {"T": [16]}),
])
def test_skip_and_time_step_regimes_under_both_optimisers_at_every_peak_slope(name, prefix, method, fixed):
    cpu = grids(name, "cpu")
    for opt in ("adam", "sgd"):
        htaf_grid, sur_grid = cpu[f"{prefix}_{opt}_htaf"], cpu[f"{prefix}_{opt}_surrogates"]
        assert htaf_grid["method"] == [method] and htaf_grid["surrogate_params"] == [{"alpha": a} for a in sens.ALPHAS]
        assert htaf_grid["peak_slope"] == sur_grid["peak_slope"] == sens.PEAKS
        assert htaf_grid["optimizer"] == sur_grid["optimizer"] == [opt] and sur_grid["method"] == sens.STRESS_METHODS
        assert all(htaf_grid[k] == sur_grid[k] == v for k, v in fixed.items())
        for values in itertools.product(*htaf_grid.values()):
            resolve_config(name, "cpu", **dict(zip(htaf_grid, values)))


def test_gradient_health_is_recorded_every_epoch_and_matches_the_initial_network(tmp_path):
    result = htaf.run("sensitivity_dhn", "smoke", epochs=2, depth=3, method="sigmoid", peak_slope=1.0,
                      init_gain=4.0, results_dir=tmp_path)
    keys = {f"test_{k}_fc{i}" for k in ("preact_rms", "preact_mean", "grad_dead", "grad_sq", "delta_rms", "weight_sq")
            for i in (1, 2, 3)}
    for row in result["history"]:
        assert keys <= set(row)
        assert all(0.0 <= row[f"test_grad_dead_fc{i}"] <= 1.0 for i in (1, 2, 3))
    start = sens.initial_gradient_health(result["config"])
    assert set(start) == {k.removeprefix("test_") for k in keys}
    assert all(start[f"delta_rms_fc{i}"] > 0 for i in (1, 2, 3))
    # the first layer is not scaled by init_gain, the others start about 4x wider than a gain-1 network
    plain = sens.initial_gradient_health({**result["config"], "init_gain": 1.0})
    assert start["weight_sq_fc1"] == pytest.approx(plain["weight_sq_fc1"])
    assert start["weight_sq_fc2"] == pytest.approx(16 * plain["weight_sq_fc2"])
    assert start["preact_rms_fc1"] == pytest.approx(plain["preact_rms_fc1"])
    assert 2.0 < start["preact_rms_fc3"] / plain["preact_rms_fc3"] < 6.0
    assert start["grad_dead_fc3"] > plain["grad_dead_fc3"]
    # training moved the network away from its start
    assert result["history"][-1]["test_weight_sq_fc2"] != pytest.approx(start["weight_sq_fc2"])


def test_every_stress_surrogate_can_be_matched_to_every_peak_slope():
    for method, peak in itertools.product(sens.STRESS_METHODS, sens.PEAKS):
        assert surrogates.with_peak_slope(method, peak).peak_slope == pytest.approx(peak)


def test_dhn_unit_parameters_and_init_gain():
    config = resolve_config("sensitivity_dhn", "smoke", surrogate_params={"alpha": 8.0, "beta": 0.5})
    units = [m for m in get("sensitivity_dhn").build_model(config).modules() if isinstance(m, HTAF)]
    assert units and all((u.alpha, u.beta) == (8.0, 0.5) for u in units)
    # matched peak slope keeps alpha and rescales beta
    config = resolve_config("sensitivity_dhn", "smoke", surrogate_params={"alpha": 8.0}, peak_slope=1.0)
    unit = next(m for m in get("sensitivity_dhn").build_model(config).modules() if isinstance(m, HTAF))
    assert unit.alpha == 8.0 and unit.alpha * unit.beta / 4 == pytest.approx(1.0)
    # init_gain scales the hidden layers after the first, not the first
    base = resolve_config("sensitivity_dhn", "smoke", depth=3)
    wide = resolve_config("sensitivity_dhn", "smoke", depth=3, init_gain=4.0)
    torch.manual_seed(0)
    a = sens.hidden_linears(get("sensitivity_dhn").build_model(base))
    torch.manual_seed(0)
    b = sens.hidden_linears(get("sensitivity_dhn").build_model(wide))
    assert torch.equal(a[0].weight, b[0].weight)
    for x, y in zip(a[1:], b[1:]):
        assert torch.allclose(4.0 * x.weight, y.weight)
    with pytest.raises(ConfigError):
        resolve_config("sensitivity_dhn", "smoke", init_gain=0.0)


@pytest.mark.parametrize("name", ["sensitivity_bnn", "sensitivity_snn"])
def test_alpha_beta_reach_the_surrogate(name):
    config = resolve_config(name, "smoke", surrogate_params={"alpha": 16.0, "beta": 0.25})
    spikes = [m for m in get(name).build_model(config).modules() if isinstance(m, Spike)]
    sg = spikes[0].surrogate if spikes else None
    if sg is None:  # the SNN's LIF neurons hold their surrogate directly
        sg = next(getattr(m, "surrogate") for m in get(name).build_model(config).modules() if hasattr(m, "surrogate"))
    assert sg.params["alpha"] == 16.0 and sg.params["beta"] == 0.25
    assert sg.peak_slope == pytest.approx(1.0)
    with pytest.raises(ConfigError):
        resolve_config(name, "smoke", surrogate_params={"beta": -1.0})


@pytest.mark.parametrize("name", NAMES)
def test_smoke_run(name, tmp_path):
    result = htaf.run(name, "smoke", epochs=1, results_dir=tmp_path)
    assert 0.0 <= result["metrics"]["test_accuracy"] <= 1.0
    assert any(key.startswith("grad_norm_") for key in result["history"][0])


# ---------------------------------------------------------------------------- the guidance rule


def test_recommend_matches_peak_slope_and_keeps_alpha():
    from htaf import guidance

    alpha, beta = guidance.recommend()
    assert alpha == guidance.ALPHA > 2.0
    assert alpha * beta / 4 == pytest.approx(guidance.PEAK_SLOPE_RANGE[0])
    for s in guidance.PEAK_SLOPE_RANGE:
        a, b = guidance.recommend(s)
        assert a * b / 4 == pytest.approx(s)
        # the surrogate zoo agrees: HTAF at these parameters has that peak slope
        assert surrogates.get("htaf", alpha=a, beta=b).peak_slope == pytest.approx(s)
    assert guidance.recommend(1.0, alpha=4.0) == (4.0, 1.0)


def test_recommend_warns_outside_the_supported_region_and_rejects_bad_input():
    from htaf import guidance

    with pytest.warns(UserWarning, match="outside the range"):
        guidance.recommend(16.0)
    with pytest.warns(UserWarning, match="lighter than the sigmoid"):
        guidance.recommend(1.0, alpha=1.0)
    for bad in (0.0, -1.0, float("nan"), float("inf"), True):
        with pytest.raises(ValueError):
            guidance.recommend(bad)
        with pytest.raises(ValueError):
            guidance.recommend(1.0, alpha=bad)


def test_recommended_cells_lie_on_the_map():
    from htaf import guidance

    for s in guidance.PEAK_SLOPE_RANGE:
        assert guidance.recommend(s) in sens.cells()


def test_bnn_records_the_gradient_health_of_its_sign_units(tmp_path):
    result = htaf.run("sensitivity_bnn", "smoke", epochs=1, results_dir=tmp_path)
    row = result["history"][0]
    assert {f"test_{k}_fc{i}" for k in ("preact_rms", "grad_dead", "grad_sq", "delta_rms") for i in (1, 2)} <= set(row)
    assert "test_weight_sq_fc1" not in row and "test_grad_dead_fc3" not in row  # batch norm: no weight scale
    units = sens.health_units(get("sensitivity_bnn").build_model(result["config"]))
    assert list(units) == ["fc1", "fc2"] and all(isinstance(u, Spike) and u.signed for u in units.values())
    # a signed unit's backward is twice the step's: E[(2 F')^2] is at most 4 times the squared peak slope
    assert 0 < row["test_grad_sq_fc1"] <= 4 * units["fc1"].surrogate.peak_slope ** 2


def test_initial_gradient_health_rejects_a_config_that_is_not_a_dhn():
    with pytest.raises((ConfigError, KeyError)):
        sens.initial_gradient_health({**resolve_config("sensitivity_dhn", "smoke"), "variant": "resnet"})


@pytest.mark.parametrize("profile", ["smoke", "cpu", "gpu"])
def test_every_map_has_a_selection_twin_that_holds_a_validation_set_out(profile):
    for name in NAMES:
        sweeps = grids(name, profile)
        maps = [sweep for sweep in sweeps if sweep in ("map", "map_smooth")]
        assert maps and all(sweeps[f"{m}_selection"] == {**sweeps[m], "validation": [sens.VALIDATION[profile]]}
                            for m in maps)


def test_select_chooses_on_validation_accuracy_and_refuses_the_maps_own_runs():
    import pandas as pd

    runs = pd.DataFrame({"alpha": [1.0] * 3 + [8.0] * 3 + [16.0] * 3, "beta": [0.5] * 9, "seed": [0, 1, 2] * 3,
                         "val_accuracy": [0.80, 0.81, 0.79, 0.95, 0.96, 0.94, 0.95, 0.97, 0.93],
                         "test_accuracy": [0.99, 0.99, 0.99, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]})
    best, good = sens.select(runs)
    assert best in {(8.0, 0.5), (16.0, 0.5)} and good == [(8.0, 0.5), (16.0, 0.5)]  # the test column plays no part
    with pytest.raises(ValueError, match="selection runs"):
        sens.select(runs.drop(columns="val_accuracy"))
    with pytest.raises(ValueError, match="selection runs"):
        sens.select(runs.assign(val_accuracy=float("nan")))


@pytest.mark.parametrize("profile", ["smoke", "cpu", "gpu"])
def test_the_chapter_pages_read_every_sweep_and_the_maps_and_stress_pages_split_them(profile):
    from htaf.experiments.sensitivity import GRIDS, page_sweeps

    every = {(name, sweep) for name in GRIDS for sweep in GRIDS[name][profile]}
    pages = {page: {(name, sweep) for name, sweep, _ in page_sweeps(page, profile)} for page in ("maps", "stress", "theory")}
    assert pages["maps"] | pages["stress"] == every and not pages["maps"] & pages["stress"]
    assert pages["theory"] <= every and {("sensitivity_bnn", "map"), ("sensitivity_snn", "map")} <= pages["theory"]
    assert all(sweep.startswith(("map", "scale")) for _, sweep in pages["theory"])
    with pytest.raises(ValueError, match="unknown page 'appendix'.*maps, stress, theory"):
        page_sweeps("appendix", profile)


def test_units_are_labelled_by_alpha_and_ordered_htaf_first():
    import pandas as pd

    from htaf.experiments.sensitivity import label_units, unit_order

    frame = label_units(pd.DataFrame({"method": ["sigmoid", "htaf_hard", "htaf", "atan"], "alpha": [float("nan"), 8.0, 2.0, float("nan")],
                                      "test_accuracy": [0.9, 0.8, 0.7, 0.6]}))
    assert unit_order(frame) == ["htaf a=2", "htaf a=8", "sigmoid", "atan"]
    assert frame["accuracy"].tolist() == pytest.approx([90.0, 80.0, 70.0, 60.0])


def _stress_runs(method, alpha, accuracies, hashes, **setting):
    import pandas as pd

    return pd.DataFrame({"method": method, "alpha": alpha, "test_accuracy": accuracies, "seed": range(len(accuracies)),
                         "hash": hashes, **{k: [v] * len(accuracies) for k, v in setting.items()}})


def test_stress_comparisons_compare_each_setting_once_with_holm_over_every_regime():
    import math

    import pandas as pd

    from htaf import stats

    nan = float("nan")
    skip = {("sensitivity_dhn", "skip_htaf"): _stress_runs("htaf_hard", 4.0, [0.90, 0.91, 0.92], ["h1", "h2", "h3"], depth=16),
            ("sensitivity_dhn", "skip_surrogates"): _stress_runs("sigmoid", nan, [0.80, 0.82, 0.81], ["s1", "s2", "s3"], depth=16)}
    # the optimiser regime: its Adam runs at peak slope 1 are the skip regime's (same hashes), plus an SGD setting
    optimiser = {("sensitivity_dhn", "skip_optimiser_adam_htaf"): _stress_runs("htaf_hard", 4.0, [0.90, 0.91, 0.92], ["h1", "h2", "h3"],
                                                                                optimizer="adam", peak_slope=1.0, depth=16),
                 ("sensitivity_dhn", "skip_optimiser_sgd_htaf"): _stress_runs("htaf_hard", 4.0, [0.70, 0.75, 0.72], ["g1", "g2", "g3"],
                                                                               optimizer="sgd", peak_slope=1.0, depth=16),
                 ("sensitivity_dhn", "skip_optimiser_sgd_surrogates"): _stress_runs("sigmoid", nan, [0.70, 0.74, 0.73], ["t1", "t2", "t3"],
                                                                                     optimizer="sgd", peak_slope=1.0, depth=16)}
    regimes = sens.stress_regimes({**skip, **optimiser})
    assert list(regimes) == ["skip DHN", "skip DHN, optimisers"]
    assert set(regimes["skip DHN, optimisers"][0]["hash"]) == {"g1", "g2", "g3", "t1", "t2", "t3"}  # Adam: compared once
    family = sens.stress_comparisons(regimes, 2.0, min_seeds=3)
    assert list(family.index) == [("skip DHN", 16, "htaf a=4", "sigmoid"), ("skip DHN, optimisers", ("sgd", 1.0), "htaf a=4", "sigmoid")]
    alone = [stats.compare([90.0, 91.0, 92.0], [80.0, 82.0, 81.0], 2.0, min_seeds=3),
             stats.compare([70.0, 75.0, 72.0], [70.0, 74.0, 73.0], 2.0, min_seeds=3)]
    assert family["unadjusted"].tolist() == [c.verdict for c in alone]
    assert all(math.isclose(a, b) for a, b in zip(family["p_difference"], stats.holm([c.p_difference for c in alone])))
    assert isinstance(family, pd.DataFrame) and (family["n"] == 3).all()


def test_scale_followups_compare_every_unit_with_gain_one_and_heavy_with_light_tails_at_the_widest_gain():
    import pandas as pd

    rows = [{"init_gain": g, "unit": u, "seed": s, "accuracy": 50.0 + 10 * (u in sens.HEAVY_UNITS) * (g == 4.0) + s + g}
            for g in (0.5, 1.0, 4.0) for u in sens.HEAVY_UNITS + sens.LIGHT_UNITS for s in range(5)]
    scale = pd.DataFrame(rows).assign(alpha=[float(u.split("=")[1]) if u.startswith("htaf") else float("nan") for u in
                                             pd.DataFrame(rows)["unit"]])
    found = sens.scale_followups(scale, 2.0, min_seeds=5)
    questions = found.index.get_level_values("question")
    assert (questions == "gain 0.5 vs 1").sum() == (questions == "gain 4 vs 1").sum() == 8
    assert (questions == "heavy vs light at gain 4").sum() == 16
    heavy = found.xs("heavy vs light at gain 4", level="question")
    assert (heavy["verdict"] == "better").all() and (heavy["difference"] == 10.0).all()  # constant offsets: exact tests


def test_equal_slope_comparisons_pair_only_cells_of_one_peak_slope_with_the_lighter_tail_first():
    import pandas as pd

    cells = [(1.0, 4.0), (4.0, 1.0), (2.0, 1.0), (1.0, 2.0)]  # slopes 1, 1, 0.5, 0.5
    shift = {(4.0, 1.0): [0.050, 0.052, 0.058], (2.0, 1.0): [0.0, 0.0005, 0.0]}  # per seed, as a fraction
    runs = pd.DataFrame([{"alpha": a, "beta": b, "seed": s, "test_accuracy": 0.9 + 0.01 * s + shift.get((a, b), [0.0] * 3)[s]}
                         for a, b in cells for s in range(3)])
    family = sens.equal_slope_comparisons({"map": runs}, 2.0, min_seeds=3)
    assert list(family.index) == [("map", 0.5, (1.0, 2.0), (2.0, 1.0)), ("map", 1.0, (1.0, 4.0), (4.0, 1.0))]
    assert family["difference"].round(2).tolist() == [-0.02, -5.33]  # percent; cell_a is the lighter tail
    assert family["unadjusted"].tolist() == ["equivalent", "worse"]
    with pytest.raises(ValueError, match="at least 4 seeds, got 3"):
        sens.equal_slope_comparisons({"map": runs}, 2.0, min_seeds=4)
