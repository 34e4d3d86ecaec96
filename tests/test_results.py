"""Config hashes, cached runs, sweeps and the result tables the book renders from."""

import json

import pytest

from htaf import experiments, results, train
from htaf.train import run, sweep


def test_config_hash_is_stable_across_key_order_number_spelling_and_sessions():
    config = {"dataset": "digits", "lr": 0.001, "hidden": [32], "seed": 0}
    reordered = {"seed": 0, "hidden": [32], "lr": 1e-3, "dataset": "digits"}
    assert results.config_hash("mlp", config) == results.config_hash("mlp", reordered)
    # pinned: changing the hashing scheme would orphan every committed result
    assert results.config_hash("mlp", config) == "cf9dfa04d4ec207d"
    assert results.config_hash("mlp", {**config, "seed": 1}) != results.config_hash("mlp", config)
    assert results.config_hash("other", config) != results.config_hash("mlp", config)


def test_int_override_of_a_float_default_names_the_same_run():
    assert experiments.resolve_config("mlp", "smoke", lr=1) == experiments.resolve_config("mlp", "smoke", lr=1.0)


def test_unknown_key_and_profile_name_the_valid_choices(monkeypatch):
    with pytest.raises(experiments.UnknownChoiceError, match="batch_size.*epochs"):
        experiments.resolve_config("mlp", "smoke", epoch=3)
    with pytest.raises(experiments.UnknownChoiceError, match="smoke, cpu, gpu"):
        experiments.resolve_config("mlp", "laptop")
    monkeypatch.setenv("HTAF_PROFILE", "cpu")
    assert experiments.resolve_profile() == "cpu"
    assert experiments.resolve_config("mlp")["dataset"] == "mnist"


def test_finished_runs_are_reused_not_retrained(count_fits):
    first = run("mlp", "smoke", epochs=1)
    again = run("mlp", "smoke", epochs=1)
    assert len(count_fits) == 1
    assert again == json.loads(json.dumps(first))
    run("mlp", "smoke", epochs=1, seed=1)
    assert len(count_fits) == 2


def test_sweep_trains_only_missing_runs(count_fits):
    run("mlp", "smoke", epochs=1, seed=0, hidden=[8])
    frame = sweep("mlp", "smoke", grid={"seed": [0, 1], "hidden": [[8], [16]]}, epochs=1)
    assert len(count_fits) == 4  # 1 before the sweep + 3 missing ones
    assert frame[["seed", "hidden"]].values.tolist() == [[0, "[8]"], [0, "[16]"], [1, "[8]"], [1, "[16]"]]
    assert frame["hash"].nunique() == 4 and (frame["test_accuracy"] > 0).all()
    sweep("mlp", "smoke", grid={"seed": [0, 1], "hidden": [[8], [16]]}, epochs=1)
    assert len(count_fits) == 4


def test_load_history_and_table(tmp_path):
    for seed in (0, 1):
        run("mlp", "smoke", epochs=2, seed=seed)
    frame = results.load("mlp", "smoke")
    assert sorted(frame["seed"]) == [0, 1] and {"test_accuracy", "num_params", "hidden"} <= set(frame.columns)
    history = results.load_history("mlp", "smoke")
    assert len(history) == 4 and sorted(history["epoch"].unique()) == [1, 2]
    table = results.table("mlp", "smoke")
    assert list(table.columns[:2]) == ["hash", "seed"] and "dataset" not in table.columns
    assert results.load("mlp", "gpu").empty and results.table("mlp", "gpu").empty


def test_results_are_written_atomically(tmp_path):
    path = tmp_path / "a" / "b.json"
    results.write_json(path, {"x": 1})
    results.write_json(path, {"x": 2})
    assert results.read_json(path) == {"x": 2}
    assert [p.name for p in path.parent.iterdir()] == ["b.json"]


def test_interrupted_write_keeps_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "b.json"
    results.write_json(path, {"x": 1})

    def crash_midway(fh):
        fh.write(b'{"x": ')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        results.atomic_write(path, crash_midway)
    assert results.read_json(path) == {"x": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["b.json"]


def test_checkpoints_live_in_a_hidden_folder_of_their_results_root(tmp_path, monkeypatch):
    monkeypatch.delenv("HTAF_CHECKPOINTS")
    digest = "abc".ljust(results.HASH_LENGTH, "0")
    checkpoint = results.checkpoint_path("mlp", "smoke", digest, tmp_path / "results")
    assert checkpoint == tmp_path / "results" / ".checkpoints" / "mlp" / "smoke" / f"{digest}.pt"
    assert results.load("mlp", "smoke", tmp_path / "results").empty  # never read as results


# --------------------------------------------------------------------------------------------
# Schema 3: HTAF's parameters in surrogate_params everywhere
# --------------------------------------------------------------------------------------------


def _schema_2(root, experiment, config, accuracy=0.5):
    """A schema-2 results file of ``config`` (the old spelling) under ``root``; returns its path."""
    digest = results.config_hash(experiment, config)
    record = {"schema": 2, "experiment": experiment, "profile": "smoke", "hash": digest, "config": config,
              "history": [{"epoch": 1, "test_accuracy": accuracy, "epoch_time_s": 1.0}],
              "metrics": {"test_accuracy": accuracy}, "num_params": 1, "wall_time_s": 1.0, "resumed_from_epoch": None,
              "environment": {"world_size": 1}, "date": "2026-01-01T00:00:00+00:00"}
    path = results.result_path(experiment, "smoke", digest, root)
    results.write_json(path, record)
    return path


def _old(experiment, new_overrides, top=None, drop=(), **extra):
    """The schema-2 config of the grid point ``new_overrides``: the new config in the old spelling."""
    config = experiments.resolve_config(experiment, "smoke", **new_overrides)
    config = {key: value for key, value in config.items() if key not in drop}
    return {**config, **(top or {}), **extra}


# (experiment, the grid point in the new spelling, its schema-2 config)
SCHEMA_2_CASES = [
    # DHN family: top-level alpha/beta; for HTAF methods they move into surrogate_params (defaults dropped)
    ("dhn", {"method": "htaf", "surrogate_params": {"alpha": 8.0}},
     _old("dhn", {"method": "htaf"}, {"alpha": 8.0, "beta": 1.0})),
    ("dhn", {"method": "htaf_anneal", "peak_slope": 0.5},
     _old("dhn", {"method": "htaf_anneal", "peak_slope": 0.5}, {"alpha": 4.0, "beta": 1.0})),
    ("dhn", {"method": "atan"}, _old("dhn", {"method": "atan"}, {"alpha": 4.0, "beta": 1.0})),  # unused: dropped
    ("dhn_regression", {"method": "htaf_hard", "surrogate_params": {"beta": 2.0}},
     _old("dhn_regression", {"method": "htaf_hard"}, {"alpha": 4.0, "beta": 2.0})),
    ("sensitivity_dhn", {"surrogate_params": {"alpha": 4.0, "beta": 1.0}},  # the map's default cell: {}
     _old("sensitivity_dhn", {}, {"alpha": 4.0, "beta": 1.0})),
    ("sensitivity_dhn", {"method": "sigmoid", "peak_slope": 2.0},
     _old("sensitivity_dhn", {"method": "sigmoid", "peak_slope": 2.0}, {"alpha": 4.0, "beta": 1.0})),
    # BNN / SNN sensitivity: alpha/beta were passed to the surrogate as surrogate_params
    ("sensitivity_bnn", {"surrogate_params": {"alpha": 16.0, "beta": 0.25}},
     _old("sensitivity_bnn", {}, {"alpha": 16.0, "beta": 0.25})),
    ("sensitivity_snn", {"method": "sigmoid", "peak_slope": 1.0},
     _old("sensitivity_snn", {"method": "sigmoid", "peak_slope": 1.0}, {"alpha": 4.0, "beta": 1.0})),
    # ICBM: alpha_start goes; the sharpen runs anneal 1 -> 16 in the new spelling
    ("icbm", {"method": "htaf_anneal", "peak_slope": None, "surrogate_params": {"alpha": 1.0}, "alpha_end": 16.0},
     _old("icbm", {"method": "htaf_anneal", "peak_slope": None}, {"alpha_start": 1.0}, drop=("alpha_end",),
          surrogate_params={"alpha": 16.0})),
    ("icbm", {"surrogate_params": {"alpha": 4.0, "beta": 0.5}, "peak_slope": None},
     _old("icbm", {"peak_slope": None}, {"alpha_start": 1.0}, drop=("alpha_end",),
          surrogate_params={"alpha": 4.0, "beta": 0.5})),
]


def test_schema_3_migration_gives_the_config_and_hash_of_the_new_grid_point(tmp_path, count_fits):
    root = tmp_path / "results"
    paths = [_schema_2(root, experiment, old) for experiment, _, old in SCHEMA_2_CASES]
    moved = dict(results.migrate(root))
    assert set(moved) == set(paths)
    for (experiment, new, _), path in zip(SCHEMA_2_CASES, paths):
        record = results.read_result(moved[path])  # schema 3, named by its new hash
        expected = experiments.resolve_config(experiment, "smoke", **new)
        assert record["config"] == expected, experiment
        assert not {"alpha", "beta", "alpha_start"} & set(record["config"])
        assert record["hash"] == results.config_hash(experiment, expected)
        assert record["metrics"] == {"test_accuracy": 0.5}  # what the run computed is untouched
        assert train.run(experiment, "smoke", root, **new)["hash"] == record["hash"]
    assert not count_fits  # every grid point is found, none retrained
    assert results.migrate(root) == []  # idempotent


def test_schema_3_migration_keeps_one_of_two_old_files_of_one_computation(tmp_path):
    root = tmp_path / "results"
    # a surrogate method's alpha was never used: two old files of the same run, differing only there
    a = _schema_2(root, "sensitivity_dhn", _old("sensitivity_dhn", {"method": "atan"}, {"alpha": 4.0, "beta": 1.0}))
    b = _schema_2(root, "sensitivity_dhn", _old("sensitivity_dhn", {"method": "atan"}, {"alpha": 8.0, "beta": 1.0}))
    with pytest.warns(results.ResultsWarning, match="same run.*kept one"):
        moved = results.migrate(root)
    assert len(moved) == 2 and len({new for _, new in moved}) == 1 and not a.exists() and not b.exists()
    assert len(list((root / "sensitivity_dhn" / "smoke").glob("*.json"))) == 1
    # different results for one computation are refused
    root = tmp_path / "other"
    _schema_2(root, "dhn", _old("dhn", {"method": "ste"}, {"alpha": 4.0, "beta": 1.0}), accuracy=0.5)
    _schema_2(root, "dhn", _old("dhn", {"method": "ste"}, {"alpha": 2.0, "beta": 1.0}), accuracy=0.6)
    with pytest.raises(results.ResultsError, match="same run with different results"):
        results.migrate(root)


def test_schema_3_migration_refuses_what_it_cannot_express():
    record = {"schema": 2, "experiment": "icbm", "hash": "x", "history": [], "metrics": {},
              "config": _old("icbm", {"method": "htaf_anneal"}, {"alpha_start": 1.0}, drop=("alpha_end",))}
    with pytest.raises(results.ResultsError, match="peak_slope"):
        results.MIGRATIONS[2](record)


def test_table_reads_each_results_file_once(monkeypatch):
    from htaf import results, train

    for seed in (0, 1):
        train.run("mlp", "smoke", epochs=1, seed=seed)
    reads = []
    real = results.read_result
    monkeypatch.setattr(results, "read_result", lambda path: reads.append(path) or real(path))
    frame = results.table("mlp", "smoke")
    assert len(frame) == 2 and len(reads) == 2 and "seed" in frame.columns


def test_read_records_reads_the_runs_asked_for_and_only_those(monkeypatch):
    from htaf import results, train

    digests = [train.run("mlp", "smoke", epochs=1, seed=seed)["hash"] for seed in (0, 1, 2)]
    broken = results.result_path("mlp", "smoke", "0" * results.HASH_LENGTH)
    broken.write_text("{")  # not a results file
    reads = []
    real = results.read_result
    monkeypatch.setattr(results, "read_result", lambda path: reads.append(path) or real(path))
    wanted = [digests[2], digests[0], "f" * results.HASH_LENGTH, digests[0]]  # unordered, one missing, one twice
    found = results.read_records("mlp", "smoke", wanted)
    assert list(found) == sorted([digests[0], digests[2]]) and all(found[h]["hash"] == h for h in found)
    assert len(reads) == 2  # neither the third run nor the broken file was opened
    for bad in ("../" + digests[0], digests[0].upper(), None):  # a hash never names a path outside the folder
        with pytest.raises(ValueError, match="not a run hash"):
            results.read_records("mlp", "smoke", [digests[0], bad])
        for path in (results.result_path, results.checkpoint_path):
            with pytest.raises(ValueError, match="not a run hash"):
                path("mlp", "smoke", bad)
    with pytest.warns(results.ResultsWarning, match="not valid JSON"):
        assert results.read_records("mlp", "smoke", [broken.stem, digests[1]]) == {digests[1]: real(
            results.result_path("mlp", "smoke", digests[1]))}
