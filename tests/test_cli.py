"""``python -m htaf``: list, run and results in smoke mode, and its error messages."""

import json
import os
import subprocess
import sys

import pytest

from htaf import results
from htaf.__main__ import main, parse_assignments, parse_value


def test_list_shows_experiments_and_profiles(capsys):
    assert main(["list"]) == 0
    output = capsys.readouterr().out
    assert "mlp" in output and "smoke, cpu, gpu" in output


def test_run_then_results_in_smoke_mode(tmp_path, capsys):
    assert main(["run", "mlp", "--profile", "smoke", "--set", "epochs=1", "--set", "hidden=[8]"]) == 0
    output = capsys.readouterr().out
    (path,) = (tmp_path / "results" / "mlp" / "smoke").glob("*.json")
    assert f"result: {path}" in output
    record = results.read_json(path)
    assert record["config"]["hidden"] == [8] and record["config"]["epochs"] == 1
    assert json.loads(output[: output.index("result:")]) == record["metrics"]

    assert main(["results", "mlp", "--profile", "smoke"]) == 0
    table = capsys.readouterr().out
    assert record["hash"] in table and "test_accuracy" in table
    assert main(["results", "mlp", "--profile", "smoke", "--history"]) == 0
    assert "epoch" in capsys.readouterr().out


def test_results_without_runs_says_so(capsys):
    assert main(["results", "mlp", "--profile", "gpu"]) == 0
    assert "no results" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, named",
    [
        (["run", "nope"], "mlp"),
        (["run", "mlp", "--profile", "laptop"], "smoke, cpu, gpu"),
        (["run", "mlp", "--set", "epoch=2"], "epochs"),
        (["results", "nope"], "mlp"),
        (["run", "mlp", "--set", "optimizer=bogus"], "adam, adamw, sgd"),
        (["run", "mlp", "--set", "dataset=nope"], "digits"),
    ],
)
def test_unknown_choices_exit_2_naming_valid_ones(argv, named, capsys):
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: unknown") and named in error


@pytest.mark.parametrize(
    "assignment, message",
    [
        ("epochs=2.5", "'epochs' expects int"),
        ("lr=abc", "'lr' expects float"),
        ("epochs=0", "'epochs' must be at least 1"),
        ("lr=-1", "'lr' must be greater than 0"),
        ("epochs", "--set expects KEY=VALUE"),
    ],
)
def test_bad_values_exit_2_before_training(assignment, message, capsys):
    assert main(["run", "mlp", "--set", assignment]) == 2
    assert message in capsys.readouterr().err


def test_integral_float_for_an_int_key_names_the_same_run():
    from htaf import experiments, results

    a = experiments.resolve_config("mlp", "smoke", epochs=2)
    b = experiments.resolve_config("mlp", "smoke", epochs=2.0)
    assert results.config_hash("mlp", a) == results.config_hash("mlp", b) and isinstance(b["epochs"], int)


def test_missing_dataset_exits_1_with_the_explanation(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HTAF_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("HTAF_DOWNLOAD", "0")
    assert main(["run", "mlp", "--set", "dataset=mnist"]) == 1
    assert "MNIST/raw/train-images-idx3-ubyte" in capsys.readouterr().err


def test_set_values_are_parsed():
    assert parse_assignments(["epochs=2", "lr=1e-3", "amp=false", "subset=None", "activation=tanh", "data_kwargs={\"d\": 3}"]) == {
        "epochs": 2, "lr": 0.001, "amp": False, "subset": None, "activation": "tanh", "data_kwargs": {"d": 3}
    }
    assert parse_value("3.0") == 3.0 and isinstance(parse_value("3"), int)
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_assignments(["epochs"])


def test_module_entry_point_runs(tmp_path):
    unknown = subprocess.run([sys.executable, "-m", "htaf", "run", "nope"], capture_output=True, text=True, timeout=120)
    assert unknown.returncode == 2 and "valid choices:" in unknown.stderr and "mlp" in unknown.stderr
