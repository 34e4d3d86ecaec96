"""The training loop: determinism, interrupt-and-resume, hooks, tasks and result records."""

import json
import os
import signal
import subprocess
import sys

import pytest
import torch
from torch import nn

from htaf import experiments, results
from htaf.experiments import Experiment
from htaf.train import fit, run, sweep

TIMING_KEYS = {"epoch_time_s", "samples_per_s"}
QUICK = {"epochs": 4, "subset": 512, "hidden": [16]}


def without_timing(history):
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in history]


class Interrupted(Exception):
    pass


def interrupt_after(epoch):
    def callback(finished_epoch, metrics):
        if finished_epoch == epoch:
            raise Interrupted

    return callback


def test_same_config_and_seed_give_identical_metrics(tmp_path):
    first = run("mlp", "smoke", tmp_path / "a", **QUICK)
    second = run("mlp", "smoke", tmp_path / "b", **QUICK)
    assert without_timing(first["history"]) == without_timing(second["history"])
    assert first["metrics"] == second["metrics"]
    other_seed = run("mlp", "smoke", tmp_path / "c", **QUICK, seed=1)
    assert other_seed["metrics"] != first["metrics"]


def test_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path):
    uninterrupted = run("mlp", "smoke", tmp_path / "a", **QUICK)
    with pytest.raises(Interrupted):
        run("mlp", "smoke", tmp_path / "b", on_epoch_end=interrupt_after(2), **QUICK)
    config = experiments.resolve_config("mlp", "smoke", **QUICK)
    digest = results.config_hash("mlp", config)
    checkpoint = results.checkpoint_path("mlp", "smoke", digest)
    assert checkpoint.is_file()
    assert not results.result_path("mlp", "smoke", digest, tmp_path / "b").exists()

    epochs_trained = []
    resumed = run("mlp", "smoke", tmp_path / "b", on_epoch_end=lambda epoch, _: epochs_trained.append(epoch), **QUICK)
    assert epochs_trained == [3, 4] and resumed["resumed_from_epoch"] == 2
    assert without_timing(resumed["history"]) == without_timing(uninterrupted["history"])
    assert resumed["metrics"] == uninterrupted["metrics"]
    assert not checkpoint.exists()


KILLED_RUN = """
import os, signal, sys
from htaf.train import run
def kill_after_epoch_2(epoch, metrics):
    if epoch == 2:
        os.kill(os.getpid(), signal.SIGKILL)
run("mlp", "smoke", sys.argv[1], on_epoch_end=kill_after_epoch_2, **{quick})
"""


@pytest.mark.slow
def test_killed_process_resumes_to_the_uninterrupted_result(tmp_path):
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    killed = subprocess.run([sys.executable, "-c", KILLED_RUN.format(quick=QUICK), str(tmp_path / "b")],
                            env=environment, capture_output=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL
    assert not list((tmp_path / "b").rglob("*.json"))
    resumed = run("mlp", "smoke", tmp_path / "b", **QUICK)
    uninterrupted = run("mlp", "smoke", tmp_path / "a", **QUICK)
    assert resumed["resumed_from_epoch"] == 2
    assert without_timing(resumed["history"]) == without_timing(uninterrupted["history"])


def test_record_holds_config_history_metrics_and_environment(tmp_path):
    record = run("mlp", "smoke", tmp_path, epochs=2)
    on_disk = json.loads(results.result_path("mlp", "smoke", record["hash"], tmp_path).read_text())
    assert on_disk == json.loads(json.dumps(record))
    assert record["config"] == experiments.resolve_config("mlp", "smoke", epochs=2)
    assert record["hash"] == results.config_hash("mlp", record["config"])
    assert [row["epoch"] for row in record["history"]] == [1, 2]
    assert {"train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr", "grad_norm_fc1"} <= set(record["history"][0])
    assert record["metrics"]["test_accuracy"] == record["history"][-1]["test_accuracy"] > 0.5
    assert record["num_params"] == 64 * 32 + 32 + 32 * 10 + 10
    assert {"device", "cpu_threads", "cpu_capability", "torch", "python", "numpy", "htaf"} <= set(record["environment"])
    assert record["environment"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert record["wall_time_s"] >= sum(row["epoch_time_s"] for row in record["history"])
    assert record["profile"] == "smoke" and record["experiment"] == "mlp" and record["date"]


def test_a_validation_set_is_scored_every_epoch_and_the_test_set_is_scored_as_before(tmp_path):
    record = run("mlp", "smoke", tmp_path, **QUICK, validation=300)
    assert record["config"]["validation"] == 300
    assert all({"val_loss", "val_accuracy", "test_accuracy"} <= set(row) for row in record["history"])
    assert record["metrics"]["val_accuracy"] == record["history"][-1]["val_accuracy"]
    assert 0.3 < record["metrics"]["val_accuracy"] <= 1 and record["metrics"]["val_accuracy"] != record["metrics"]["test_accuracy"]
    plain = run("mlp", "smoke", tmp_path, **QUICK)  # no validation set: no val_* metrics, and its name has no new key
    assert not any(key.startswith("val_") for key in plain["metrics"])
    assert plain["hash"] == results.config_hash("mlp", {k: v for k, v in plain["config"].items() if k != "validation"})
    assert plain["hash"] != record["hash"]


class FlatLinear(nn.Linear):
    def __init__(self):
        super().__init__(64, 10)

    def forward(self, x):
        return super().forward(x.flatten(1))


def test_hooks_are_called_and_reported(tmp_path):
    calls = {"epoch_start": [], "train_metrics": 0}

    def train_metrics(model):
        calls["train_metrics"] += 1
        return {"weight_grad": model.weight.grad.abs().sum().item()}

    experiment = Experiment(
        name="linear_probe",
        description="test double",
        profiles={"smoke": {"dataset": "digits", "batch_size": 240, "epochs": 2, "lr": 0.01, "seed": 0}},
        build_model=lambda config: FlatLinear(),
        train_metrics=train_metrics,
        eval_metrics=lambda model, loader, device, config: {"test_batches": float(len(loader))},
        on_epoch_start=lambda model, epoch, config: calls["epoch_start"].append(epoch),
    )
    record = run(experiment, "smoke", tmp_path)
    assert calls == {"epoch_start": [0, 1], "train_metrics": 2 * 6}
    assert all(row["weight_grad"] > 0 for row in record["history"])
    assert record["metrics"]["test_batches"] == 2.0


def test_regression_task_reports_mse_only(tmp_path):
    record = run("mlp", "smoke", tmp_path, dataset="regression_additive", data_kwargs={"d": 2, "n_train": 256, "n_test": 128}, epochs=2)
    assert record["config"]["task"] == "regression"
    assert set(record["metrics"]) == {"train_loss", "test_loss"}
    assert record["metrics"]["test_loss"] < 1.0


def test_invalid_settings_fail_before_training():
    mlp = experiments.get("mlp")
    with pytest.raises(ValueError, match="adam, adamw, sgd"):
        fit(mlp, experiments.resolve_config(mlp, "smoke", optimizer="lbfgs"))
    with pytest.raises(ValueError, match="at least 1"):
        fit(mlp, experiments.resolve_config(mlp, "smoke", epochs=0))


def test_sgd_with_cosine_schedule_decays_the_learning_rate(tmp_path):
    record = run("mlp", "smoke", tmp_path, optimizer="sgd", momentum=0.9, lr=0.1, lr_schedule="cosine", epochs=2)
    assert [row["lr"] for row in record["history"]] == pytest.approx([0.1, 0.05])
    assert torch.isfinite(torch.tensor(record["metrics"]["test_loss"]))


def test_run_says_where_its_result_is_and_a_sweep_says_it_once(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HTAF_QUIET", raising=False)
    record = run("mlp", "smoke", tmp_path, epochs=1, progress=False)
    err = capsys.readouterr().err
    assert f"htaf: mlp/smoke/{record['hash']}: result written to {record.path}" in err
    again = run("mlp", "smoke", tmp_path, epochs=1, progress=False)
    assert capsys.readouterr().err.strip() == f"htaf: mlp/smoke/{again['hash']}: result read from {again.path}"
    sweep("mlp", "smoke", grid={"seed": [0, 1]}, results_dir=tmp_path, epochs=1)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("htaf:")]
    assert lines == [f"htaf: mlp: 1 of 2 runs trained, results in {record.path.parent}"]
    monkeypatch.setenv("HTAF_QUIET", "1")
    run("mlp", "smoke", tmp_path, epochs=1)
    assert capsys.readouterr().err == ""
