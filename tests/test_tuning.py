"""The tuned best-versus-best comparisons of every chapter (:func:`htaf.experiments.tuning_sweeps`): tuned on
validation data with seeds that no test run uses, and each chapter's ``TUNED`` is what its committed tuning runs'
validation accuracy chooses, not a setting typed by hand."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from htaf import experiments, findings, stats

RESULTS = Path(__file__).resolve().parents[1] / "results"
#: (experiment, sweep prefix, module holding TUNED) of every tuned comparison of the ``cpu`` profile
FAMILIES = [("snn", "", "snn"), ("dhn", "", "dhn"), ("bnn", "", "bnn"), ("icbm", "fmnist_", "icbm"),
            ("domains", "mnist1d_conv_", "domains")]


def _tuned(module: str) -> dict:
    return importlib.import_module(f"htaf.experiments.{module}").TUNED


@pytest.mark.parametrize("experiment, prefix, module", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_tuning_runs_are_scored_on_validation_data_with_seeds_no_test_run_uses(experiment, prefix, module):
    grids = experiments.grids(experiment, "cpu")
    tuning, tuned = findings.tuning_sweep_names(experiment, prefix)
    assert tuning and tuned
    tuning_seeds = {s for name in tuning for s in grids[name]["seed"]}
    test_seeds = {s for name in tuned for s in grids[name]["seed"]}
    assert not tuning_seeds & test_seeds and len(tuning_seeds) == 2
    assert all(len(grids[name]["seed"]) >= stats.MIN_SEEDS for name in tuned)
    assert all(len(grids[name]["validation"]) == 1 and grids[name]["validation"][0] > 0 for name in tuning)
    assert not any("validation" in grids[name] for name in tuned)
    setting = _tuned(module)
    assert {name.removeprefix(f"{prefix}tuned_") for name in tuned} == set(setting)
    for name in tuned:
        method = name.removeprefix(f"{prefix}tuned_")
        assert grids[name]["method"] == [method]
        assert (grids[name]["peak_slope"], grids[name]["lr"]) == ([setting[method]["peak_slope"]], [setting[method]["lr"]])


@pytest.mark.parametrize("experiment, prefix, module", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_tuned_is_the_validation_choice_of_the_committed_tuning_runs(experiment, prefix, module):
    """Each method's tuned setting is its best mean validation accuracy over the committed tuning runs, and every
    method of the table has a value at each learning rate tried."""
    table, chosen = findings.tuning(experiment, prefix, results_dir=RESULTS)
    assert chosen == _tuned(module)
    grid = experiments.grids(experiment, "cpu")[f"{prefix}tuning"]
    assert (table.notna().sum(axis=1) >= len(grid["lr"])).all()


def test_tuning_seeds_must_be_disjoint_from_the_test_seeds():
    with pytest.raises(ValueError, match="overlap"):
        experiments.tuning_sweeps({"dataset": ["digits"]}, ["htaf"], {"peak_slope": [1.0], "lr": [1e-3]}, 288, [0, 10],
                                  [0, 1], {"htaf": {"peak_slope": 1.0, "lr": 1e-3}})


def test_every_method_needs_a_tuned_setting():
    with pytest.raises(ValueError, match="no tuned setting for 'ste'"):
        experiments.tuning_sweeps({"dataset": ["digits"]}, ["htaf", "ste"], {"peak_slope": [1.0], "lr": [1e-3]}, 288,
                                  [10], [0], {"htaf": {"peak_slope": 1.0, "lr": 1e-3}})
