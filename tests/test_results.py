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
    checkpoint = results.checkpoint_path("mlp", "smoke", "abc", tmp_path / "results")
    assert checkpoint == tmp_path / "results" / ".checkpoints" / "mlp" / "smoke" / "abc.pt"
    assert results.load("mlp", "smoke", tmp_path / "results").empty  # never read as results
