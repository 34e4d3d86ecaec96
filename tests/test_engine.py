"""The engine contract: experiment hooks, batches with attributes, grids, reproduce, migration, light import."""

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from htaf import data, experiments, metrics, reproduction, results, train
from htaf.__main__ import main
from htaf.experiments import Batch, Experiment

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------
# Batches that carry attributes; hooks
# --------------------------------------------------------------------------------------------


def test_subset_keeps_attributes_and_loaders_yield_them():
    train_loader, test_loader = data.get_loaders({"dataset": "concept_shapes", "batch_size": 16, "seed": 0,
                                                  "subset": 40, "data_kwargs": {"n_train": 100, "n_test": 20}})
    batches = list(train_loader)
    assert [len(b) for b in batches] == [3, 3, 3] and sum(len(b[0]) for b in batches) == 40
    x, y, attributes = batches[0]
    assert attributes.shape == (16, 6)
    full = data.load("concept_shapes", "train", n_train=100)
    index = next(iter(train_loader.sampler))
    torch.testing.assert_close(full.attributes[index], batches[0][2])  # same rows as the images
    assert len(next(iter(test_loader))) == 3


class ConceptNet(nn.Module):
    """Class logits, and 6 concept logits kept for the loss."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 6), )
        self.head = nn.Linear(6, 4)
        self.concepts = None

    def forward(self, x):
        self.concepts = self.body(x)
        return self.head(torch.sigmoid(self.concepts))


def test_hooks_shape_batches_losses_steps_and_evaluation(tmp_path):
    calls = {"after_step": 0}
    flips = {}

    def prepare_batch(batch, device):
        assert len(batch) == 3  # concept_shapes batches carry the attributes
        return experiments.default_prepare_batch(batch, device)

    def loss(outputs, batch: Batch, config):
        concepts = config["_model"].concepts
        return F.cross_entropy(outputs, batch.targets) + F.binary_cross_entropy_with_logits(concepts, batch.attributes.float())

    def build(config):
        model = ConceptNet()
        config["_model"] = model  # test double: the loss reads the concept logits
        flips["counter"] = metrics.FlipCounter([model.body[1].weight])
        return model

    def after_step(model, config):
        calls["after_step"] += 1
        with torch.no_grad():
            model.body[1].weight.clamp_(-1.0, 1.0)
        return {"flip_ratio": flips["counter"].update()}

    @torch.no_grad()
    def evaluate(model, loader, device, config):
        model.eval()
        hits = total = 0
        for x, _, attributes in loader:
            model(x.to(device))
            hits += ((model.concepts > 0).long() == attributes).sum().item()
            total += attributes.numel()
        return {"concept_accuracy": hits / total}

    experiment = Experiment(
        name="concepts", description="test double",
        profiles={"smoke": {"dataset": "concept_shapes", "batch_size": 50, "epochs": 2, "lr": 0.01, "seed": 0,
                            "data_kwargs": {"n_train": 200, "n_test": 50, "image_size": 16}}},
        build_model=build, prepare_batch=prepare_batch, loss=loss, after_step=after_step, evaluate=evaluate,
    )
    config = experiments.resolve_config(experiment, "smoke")
    outcome = train.fit(experiment, config)
    assert calls["after_step"] == 2 * 4
    for row in outcome["history"]:
        assert 0.0 <= row["flip_ratio"] <= 1.0 and 0.0 <= row["test_concept_accuracy"] <= 1.0
    assert outcome["metrics"]["test_concept_accuracy"] == outcome["history"][-1]["test_concept_accuracy"]
    assert "flip_ratio" not in outcome["metrics"]


def test_fit_is_its_steps(tmp_path):
    exp = experiments.get("mlp")
    config = experiments.resolve_config(exp, "smoke", epochs=2, hidden=[8])
    session = train.set_up(exp, config)
    for epoch in range(2):
        session.history.append(train.train_epoch(session, epoch))
    stepwise = train.finish(session)
    whole = train.fit(exp, config, progress=False)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("epoch_time_s", "samples_per_s")} for r in rows]
    assert strip(stepwise["history"]) == strip(whole["history"]) and stepwise["metrics"] == whole["metrics"]


def test_validate_hook_runs_before_any_data_loads(monkeypatch):
    monkeypatch.setattr(data, "load", lambda *a, **k: pytest.fail("data loaded before the config was checked"))
    with pytest.raises(experiments.ConfigError, match="unknown DHN method 'nonsense'"):
        train.run("dhn", "smoke", method="nonsense")


# --------------------------------------------------------------------------------------------
# One shape of GRIDS, one unit key
# --------------------------------------------------------------------------------------------


def test_every_experiment_has_grids_of_one_shape_with_known_keys():
    from htaf.experiments import dhn, mlp, snn

    for module in (dhn, mlp, snn):
        for name, profiles in module.GRIDS.items():
            assert experiments.get(name).grids == profiles
    for name in experiments.available():
        for profile in experiments.get(name).profiles:
            for sweep, grid in experiments.grids(name, profile).items():
                experiments.resolve_config(name, profile, **{key: values[0] for key, values in grid.items()})


def test_method_chooses_the_unit_in_every_family():
    for name in experiments.available():
        assert "method" in experiments.resolve_config(name, "smoke"), name
        for old in ("surrogate", "activation", "activation_kwargs"):
            assert old not in experiments.resolve_config(name, "smoke"), (name, old)


# --------------------------------------------------------------------------------------------
# Reproducing the book
# --------------------------------------------------------------------------------------------


def test_reproduce_trains_only_missing_runs_and_reports_per_chapter(tmp_path, count_fits, capsys):
    planned = reproduction.reproduce("smoke", only=["mlp"], dry_run=True)
    assert planned["mlp"]["missing"] == 1 and planned["mlp"]["trained"] == 0 and not count_fits
    done = reproduction.reproduce("smoke", only=["mlp"])
    assert done["mlp"]["trained"] == 1 and len(count_fits) == 1 and done["mlp"]["recorded_time_s"] > 0
    assert main(["reproduce", "--profile", "smoke", "--only", "mlp", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "mlp" in out and "results of mlp:" in out
    assert reproduction.reproduce("smoke", only=["mlp"])["mlp"]["cached"] == 1 and len(count_fits) == 1
    assert main(["reproduce", "--only", "nope", "--dry-run"]) == 2


@pytest.mark.parametrize("threads", [None, 1, 2])
def test_reproduce_in_one_process_trains_on_one_thread_unless_told_and_restores_torch_s_setting(tmp_path, threads):
    """Without --jobs the runs train in this process, on ``threads`` torch threads (default 1, as the committed runs;
    recorded in the results file), and torch's own setting is restored after."""
    import json

    torch.set_num_threads(3)  # the conftest sets one; a machine's default would be all its cores
    summary = reproduction.reproduce("smoke", only=["mlp"], results_dir=tmp_path, threads=threads)
    assert torch.get_num_threads() == 3
    (path,) = summary["mlp"]["folder"].glob("*.json")
    assert json.loads(path.read_text())["environment"]["cpu_threads"] == (threads or 1)


def test_plan_checks_each_distinct_config_of_the_runs_to_train_once():
    import dataclasses

    base, calls = experiments.get("mlp"), []

    def validate(config):
        calls.append(config["hidden"])
        base.validate(config)

    exp = dataclasses.replace(base, name="mlp_planned", validate=validate,
                              grids={"smoke": {"main": {"hidden": [[8], [16]], "seed": [0, 1, 2]}}})
    experiments.register(exp)
    try:
        assert reproduction.run_counts("smoke", only=["mlp_planned"]) == {"mlp_planned": 6} and not calls
        planned = reproduction.plan("smoke", only=["mlp_planned"])
        assert len(planned) == 6 and not any(run.cached for run in planned)
        assert calls == [[8], [16]]  # once per distinct config up to the seed
        experiments.register(dataclasses.replace(exp, grids={"smoke": {"main": {"hidden": [[8], [0]]}}}))
        with pytest.raises(experiments.ConfigError, match="hidden"):
            reproduction.plan("smoke", only=["mlp_planned"])  # a bad grid fails before anything trains
    finally:
        experiments._REGISTRY.pop("mlp_planned", None)


def test_planning_builds_no_model_and_needs_no_torchvision(monkeypatch):
    """The gpu profile's ICBM is a torchvision ResNet-18: planning (and its config checks) must not import it."""
    import sys

    monkeypatch.setitem(sys.modules, "torchvision", None)  # "import torchvision" now raises ImportError
    monkeypatch.setitem(sys.modules, "torchvision.models", None)
    planned = reproduction.plan("gpu")
    counts = reproduction.run_counts("gpu")
    assert len(planned) == sum(counts.values()) and counts["icbm"] > 0
    with pytest.raises(ImportError):
        experiments.get("icbm").build_model(experiments.resolve_config("icbm", "gpu"))  # training it does need it


def test_committed_cpu_results_are_complete():
    summary = reproduction.reproduce("cpu", results_dir=ROOT / "results", dry_run=True)
    assert {name: entry["missing"] for name, entry in summary.items()} == {name: 0 for name in summary}
    counts = reproduction.run_counts("cpu")
    assert {name: entry["runs"] for name, entry in summary.items()} == counts
    # the committed folder holds exactly the planned runs of each experiment, each a finished, readable results file
    # (change the grids, and commit the new runs' results)
    planned = {run.path for run in reproduction.plan("cpu", results_dir=ROOT / "results")}
    for name, count in counts.items():
        files = sorted((ROOT / "results" / name / "cpu").glob("*.json"))
        assert len(files) == count and set(files) <= planned, name
        assert all(results.read_result(path)["experiment"] == name for path in files), name


# --------------------------------------------------------------------------------------------
# Migration of the results format
# --------------------------------------------------------------------------------------------


def _schema_1(experiment, config, history_row, root):
    digest = results.config_hash(experiment, config)
    record = {"schema": 1, "experiment": experiment, "profile": "smoke", "hash": digest, "config": config,
              "history": [history_row], "metrics": {"test_accuracy": 0.5}, "num_params": 1, "wall_time_s": 1.0,
              "resumed_from_epoch": None, "environment": {"world_size": 1}, "date": "2026-01-01T00:00:00+00:00"}
    results.write_json(results.result_path(experiment, "smoke", digest, root), record)
    return digest


def test_migrate_renames_keys_rehashes_and_the_cache_finds_the_result(tmp_path, count_fits, capsys):
    root = tmp_path / "results"
    snn_config = experiments.resolve_config("snn", "smoke", epochs=1)
    old_snn = {("surrogate" if k == "method" else k): v for k, v in snn_config.items()}
    mlp_config = experiments.resolve_config("mlp", "smoke", epochs=1)
    old_mlp = {{"method": "activation", "surrogate_params": "activation_kwargs"}.get(k, k): v for k, v in mlp_config.items()}
    old_hashes = [_schema_1("snn", old_snn, {"grad_norm_fc1": 1.0}, root),
                  _schema_1("mlp", old_mlp, {"grad_norm_0": 1.0, "grad_norm_1": 2.0}, root)]
    (root / "snn" / "smoke" / "notes.json").write_text("{}")
    with pytest.warns(results.ResultsWarning, match="notes.json"):
        moved = results.migrate(root)
    assert len(moved) == 2 and all(not old.exists() and new.exists() for old, new in moved)
    assert {old.stem for old, _ in moved} == set(old_hashes)
    snn_record = train.run("snn", "smoke", root, epochs=1)
    mlp_record = train.run("mlp", "smoke", root, epochs=1)
    assert not count_fits  # found, not retrained
    assert snn_record["config"]["method"] == "htaf" and snn_record["schema"] == results.SCHEMA
    assert set(mlp_record["history"][0]) == {"grad_norm_fc1", "grad_norm_fc2"}
    (root / "snn" / "smoke" / "notes.json").unlink()
    assert results.migrate(root) == []  # idempotent
    assert main(["migrate", "--results-dir", str(root)]) == 0 and "migrated 0 file(s)" in capsys.readouterr().out


@pytest.mark.parametrize("bad", [{"schema": "1"}, {"schema": 1}, {"schema": 1, "experiment": "mlp", "config": "x"},
                                 [1, 2], {"schema": True}])
def test_migrate_skips_a_malformed_file_and_migrates_the_rest(tmp_path, bad, capsys):
    root = tmp_path / "results"
    mlp_config = experiments.resolve_config("mlp", "smoke", epochs=1)
    old_mlp = {{"method": "activation", "surrogate_params": "activation_kwargs"}.get(k, k): v for k, v in mlp_config.items()}
    good = _schema_1("mlp", old_mlp, {"grad_norm_0": 1.0}, root)
    (root / "mlp" / "smoke" / "aaaa.json").write_text(json.dumps(bad))  # sorted before the good file
    with pytest.warns(results.ResultsWarning, match="migrate skipped .*aaaa.json"):
        moved = results.migrate(root)
    assert [old.stem for old, _ in moved] == [good] and (root / "mlp" / "smoke" / "aaaa.json").exists()
    assert main(["migrate", "--results-dir", str(root)]) == 0
    captured = capsys.readouterr()
    assert "warning: migrate skipped" in captured.err and "Traceback" not in captured.err


# --------------------------------------------------------------------------------------------
# Light import, default folders, progress without a terminal
# --------------------------------------------------------------------------------------------


def test_import_htaf_is_light():
    code = ("import sys, torch; before = set(sys.modules); import htaf; "
            "added = sorted(set(sys.modules) - before); "
            "assert all(m.startswith('htaf') for m in added), added; "
            "assert not {'pandas', 'sympy', 'htaf.experiments', 'htaf.train', 'htaf.results'} & set(sys.modules); "
            "htaf.results, htaf.run, htaf.experiments; assert 'htaf.train' in sys.modules")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_default_folders_follow_the_working_directory(tmp_path, monkeypatch, capsys):
    """Inside this repository the book's results/ and data/; anywhere else (another Jupyter Book included) the user
    data folder, said once on stderr; an environment variable or argument wins everywhere."""
    from htaf import _paths

    monkeypatch.delenv("HTAF_RESULTS")
    monkeypatch.delenv("HTAF_DATA", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "user"))
    monkeypatch.setattr(_paths, "_ANNOUNCED", set())
    chapter = ROOT / "book" / "experiments"
    monkeypatch.chdir(chapter)  # a chapter executed in place finds the repository's results/
    assert results.results_root() == ROOT / "results" and data.data_root() == ROOT / "data"
    assert results.find_project_root() == ROOT and capsys.readouterr().err == ""
    user = _paths.user_folder()
    assert user == tmp_path / "user" / "htaf" or sys.platform in ("win32", "darwin")
    book = tmp_path / "my_book" / "chapters"  # someone else's Jupyter Book: not this project
    book.mkdir(parents=True)
    (book.parent / "_toc.yml").write_text("format: jb-book\nroot: intro\n")
    for folder in (tmp_path, book):
        monkeypatch.chdir(folder)
        assert results.results_root() == user / "results" and data.data_root() == user / "data"
        assert results.find_project_root() is None and results.project_root() == folder.resolve()
    said = capsys.readouterr().err.splitlines()  # once per folder and process
    assert said == [f"htaf: results/ is {user / 'results'} (outside a checkout of the htaf repository; choose "
                    "another folder with $HTAF_RESULTS)",
                    f"htaf: data/ is {user / 'data'} (outside a checkout of the htaf repository; choose another "
                    "folder with $HTAF_DATA)"]
    assert not (book.parent / "results").exists() and not (tmp_path / "results").exists()
    monkeypatch.setenv("HTAF_RESULTS", str(tmp_path / "elsewhere"))
    assert results.results_root() == tmp_path / "elsewhere"
    assert results.results_root(tmp_path / "chosen") == tmp_path / "chosen"


def test_run_returns_the_path_of_its_result(tmp_path):
    record = train.run("mlp", "smoke", epochs=1, hidden=[8])
    assert isinstance(record, results.RunRecord) and isinstance(record, dict)
    assert record.path == results.result_path("mlp", "smoke", record["hash"]) and record.path.is_file()
    assert record == results.read_result(record.path)  # the record is the file's content, nothing added
    again = train.run("mlp", "smoke", epochs=1, hidden=[8])  # read back from the cache
    assert again.path == record.path and again == record
    assert pickle.loads(pickle.dumps(record)).path == record.path  # crosses process boundaries (reproduce --jobs)


def test_in_a_notebook_a_run_shows_one_bar_instead_of_a_line_per_epoch(capsys, monkeypatch):
    """Jupyter's stderr is no terminal, but a run there shows one updating bar (tqdm.auto), not a line per epoch; the
    bar carries what the lines did (run, epoch, losses and accuracies, epoch time) and is gone at the end."""
    monkeypatch.setattr(train, "in_notebook", lambda: True)
    record = train.run("mlp", "smoke", epochs=2, hidden=[8])
    err, announced = capsys.readouterr().err.rstrip("\n").rsplit("\r", 1)  # then one line says where the result is
    assert announced == f"htaf: mlp/smoke/{record['hash']}: result written to {record.path}"
    assert f"{record['hash']} epoch" not in err  # no log line ("<run> epoch 1/2: ...")
    assert "\n" not in err  # one line, redrawn in place ("\r")
    assert f"mlp/smoke/{record['hash']}" in err and "epoch 2/2: train_loss" in err and "test_accuracy" in err
    assert err.rsplit("\r", 1)[1].strip() == ""  # leave=False: the bar is blanked when the run ends


def test_without_a_terminal_every_epoch_logs_one_line(capsys, monkeypatch):
    record = train.run("mlp", "smoke", epochs=2, hidden=[8])
    lines = [line for line in capsys.readouterr().err.splitlines() if " epoch " in line]
    assert len(lines) == 2 and lines[0].startswith(f"mlp/smoke/{record['hash']} epoch 1/2: train_loss")
    assert lines[1].endswith(" s)") and "test_accuracy" in lines[1]
    monkeypatch.setenv("HTAF_QUIET", "1")
    train.run("mlp", "smoke", epochs=2, hidden=[8], seed=1)
    assert " epoch " not in capsys.readouterr().err


def test_smoke_results_are_git_ignored():
    proc = subprocess.run(["git", "check-ignore", "-q", "results/snn/smoke/0123456789abcdef.json"], cwd=ROOT)
    assert proc.returncode == 0
    proc = subprocess.run(["git", "check-ignore", "-q", "results/snn/cpu/0123456789abcdef.json"], cwd=ROOT)
    assert proc.returncode == 1


def test_old_names_of_the_unit_key_still_work_loudly():
    with pytest.warns(FutureWarning, match="'surrogate' of 'snn' is now called 'method'"):
        config = experiments.resolve_config("snn", "smoke", surrogate="atan")
    assert config == experiments.resolve_config("snn", "smoke", method="atan")
    with pytest.warns(FutureWarning, match="'activation' of 'mlp'"):
        assert experiments.resolve_config("mlp", "smoke", activation="tanh")["method"] == "tanh"
    with pytest.warns(FutureWarning), pytest.raises(experiments.ConfigError, match="same key"):
        experiments.resolve_config("mlp", "smoke", activation="tanh", method="relu")


def test_deterministic_mode_reaches_inductor_without_importing_it_early():
    """seed_everything sets torch's flag without importing inductor (seconds); whatever compiles later (the LIF
    kernels) copies the flag into inductor's config first, as torch.use_deterministic_algorithms would have."""
    import sys

    from htaf import _kernels, engine

    engine.seed_everything(0)
    assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    _kernels.sync_inductor_determinism()  # not loaded: nothing to do, nothing imported
    _kernels.sync_inductor_determinism(load=True)
    assert sys.modules["torch._inductor.config"].deterministic is True
    engine.seed_everything(0, deterministic=False)
    assert sys.modules["torch._inductor.config"].deterministic is False  # loaded now: kept in step
    engine.seed_everything(0)
