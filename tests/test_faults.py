"""Faults a new user hit: each one reproduced, each a one-line error (exit 2 from the CLI) or a repair."""

import json
import os
import stat
import threading
import time

import numpy as np
import pytest
import torch

from htaf import data, experiments, results, train
from htaf.__main__ import main
from _helpers import one_line_exit_2


@pytest.fixture
def no_data(monkeypatch):
    """Fail if any dataset is loaded."""
    monkeypatch.setattr(data, "load", lambda *a, **k: pytest.fail("a dataset was loaded"))


# --------------------------------------------------------------------------------------------
# Every key is checked before any data loads
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "experiment, assignment, fragment",
    [
        ("snn", "method=nonexistent", "unknown surrogate 'nonexistent'"),
        ("dhn", "depth=0", "'depth' must be an integer between 1 and 1024"),
        ("dhn", "width=0", "'width' must be an integer between 1 and 65536"),
        ("dhn", "method=nonsense", "unknown DHN method"),
        ("dhn", "variant=deep", "unknown DHN variant"),
        ("snn", "T=0", "'T' must be an integer at least 1"),
        ("snn", "tau=0", "'tau' must be a finite number at least 1"),
        ("snn", "threshold=-1", "'threshold' must be a finite number greater than 0"),
        ("snn", "hidden=[-1]", "'hidden' must list one or more layer widths"),
        ("mlp", "hidden=[-1]", "'hidden' must list one or more layer widths"),
        ("mlp", "method=bogus", "unknown method 'bogus'"),
        ("snn", "weight_decay=-1", "'weight_decay' must be a finite number at least 0"),
        ("snn", "seed=-1", "'seed' must be an integer between 0"),
        ("snn", "arch=bogus", "unknown arch 'bogus'; valid choices: fc, conv"),
        ("snn", "rate_samples=0", "'rate_samples' must be an integer at least 1"),
        ("snn", 'surrogate_params={"bogus":1}', "unknown parameter(s) bogus"),
        ("dhn", 'surrogate_params={"bogus":1}', "unknown parameter(s) bogus"),
        ("snn", "lr=Infinity", "config['lr'] is not a finite number"),
        ("mlp", "lr=NaN", "config['lr'] is not a finite number"),
        ("mlp", 'surrogate_params={"alpha":Infinity}', "is not a finite number"),
        ("mlp", "subset=0", "'subset' must be an integer at least 1"),
        ("mlp", "subset=-5", "'subset' must be an integer at least 1"),
        ("mlp", 'data_kwargs={"d":3}', "unknown data_kwargs d for dataset 'digits'"),
        ("dhn_regression", 'data_kwargs={"dims":3}', "unknown data_kwargs dims"),
        ("dhn_regression", 'data_kwargs={"n_train":0}', "'n_train' must be an integer >= 1"),
    ],
)
def test_bad_keys_exit_2_before_any_data_loads(experiment, assignment, fragment, no_data, capsys):
    one_line_exit_2(["run", experiment, "--set", assignment], capsys, fragment)


def test_subset_slices_never_reach_the_loader():
    with pytest.raises(ValueError, match="subset must be"):
        data.get_loaders({"dataset": "digits", "batch_size": 32, "seed": 0, "subset": -5})


def test_results_are_strict_json(tmp_path):
    with pytest.raises(ValueError):
        results.write_json(tmp_path / "x.json", {"lr": float("inf")})
    assert results.json_safe({"loss": float("nan")}) == {"loss": None}


# --------------------------------------------------------------------------------------------
# Corrupt or foreign results files
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("content", ["{not json", "{}", "[1, 2]", '{"hash": "x"}'])
def test_corrupt_file_of_the_asked_run_is_moved_aside_and_retrained(content, count_fits, tmp_path):
    config = experiments.resolve_config("mlp", "smoke", epochs=1, hidden=[8])
    path = results.result_path("mlp", "smoke", results.config_hash("mlp", config))
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.warns(results.ResultsWarning, match=f"{path.name}.*moved it to {path.name}.corrupt-"):
        record = train.run("mlp", "smoke", epochs=1, hidden=[8])
    assert record and record["metrics"] and len(count_fits) == 1
    assert results.read_result(path) == json.loads(json.dumps(record))
    assert len(list(path.parent.glob(f"{path.name}.corrupt-*"))) == 1


def test_a_results_file_damaged_in_the_middle_counts_as_cached_in_a_dry_run_and_is_retrained(count_fits):
    """The plan looks at the end of each results file only (fast); reproducing reads every cached file fully."""
    from htaf import reproduction

    first = reproduction.reproduce("smoke", only=["mlp"])
    assert first["mlp"]["trained"] == 1 and len(count_fits) == 1
    (run,) = reproduction.plan("smoke", only=["mlp"])
    text = run.path.read_text()
    middle = len(text) // 2
    run.path.write_text(text[:middle] + "<<<<<<< a merge conflict\n" + text[middle:])  # the end is intact
    assert reproduction.reproduce("smoke", only=["mlp"], dry_run=True)["mlp"]["cached"] == 1
    with pytest.warns(results.ResultsWarning, match="moved it to"):
        again = reproduction.reproduce("smoke", only=["mlp"])
    assert again["mlp"]["trained"] == 1 and len(count_fits) == 2
    assert results.read_result(run.path)["hash"] == run.path.stem


def test_foreign_files_are_skipped_with_a_warning_naming_them(capsys):
    train.run("mlp", "smoke", epochs=1, hidden=[8])
    folder = results.results_root() / "mlp" / "smoke"
    (folder / "notes.json").write_text('{"note": "mine"}')
    (folder / "0000000000000000.json").write_text("{not json")
    with pytest.warns(results.ResultsWarning) as caught:
        frame = results.load("mlp", "smoke")
    assert len(frame) == 1
    messages = " ".join(str(w.message) for w in caught)
    assert "notes.json" in messages and "0000000000000000.json: not valid JSON" in messages
    assert main(["results", "mlp"]) == 0
    captured = capsys.readouterr()
    assert "warning: skipped" in captured.err and "notes.json" in captured.err and "Traceback" not in captured.err


# --------------------------------------------------------------------------------------------
# Damaged checkpoints
# --------------------------------------------------------------------------------------------


def _checkpoint(**overrides):
    config = experiments.resolve_config("mlp", "smoke", **overrides)
    return results.checkpoint_path("mlp", "smoke", results.config_hash("mlp", config))


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "no model"])
def test_damaged_checkpoint_is_moved_aside_and_the_run_starts_over(damage, tmp_path):
    settings = {"epochs": 2, "hidden": [8]}
    checkpoint = _checkpoint(**settings)

    class Stop(Exception):
        pass

    def stop_after_1(epoch, _):
        if epoch == 1:
            raise Stop

    with pytest.raises(Stop):
        train.run("mlp", "smoke", on_epoch_end=stop_after_1, **settings)
    whole = checkpoint.read_bytes()
    if damage == "truncated":
        checkpoint.write_bytes(whole[: len(whole) // 2])
    elif damage == "garbage":
        checkpoint.write_bytes(b"\x80not a pickle" * 10)
    elif damage == "empty":
        checkpoint.write_bytes(b"")
    else:
        torch.save({"history": []}, checkpoint)
    with pytest.warns(results.ResultsWarning, match="checkpoint .* is damaged .* starting .* from scratch"):
        record = train.run("mlp", "smoke", **settings)
    assert record["resumed_from_epoch"] is None and len(record["history"]) == 2
    assert len(list(checkpoint.parent.glob(f"{checkpoint.name}.corrupt-*"))) == 1
    fresh = train.run("mlp", "smoke", tmp_path / "fresh", **settings)
    assert fresh["metrics"] == record["metrics"]  # as if never interrupted


# --------------------------------------------------------------------------------------------
# Damaged dataset files
# --------------------------------------------------------------------------------------------


def _idx(path, shape, truncate=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    header = bytes([0, 0, 0x08, len(shape)]) + np.array(shape, dtype=">u4").tobytes()
    payload = np.zeros(int(np.prod(shape)), dtype=np.uint8).tobytes()
    path.write_bytes(header + payload[: len(payload) - truncate])


def test_truncated_mnist_file_is_reported_as_damaged_not_missing(tmp_path, monkeypatch, capsys):
    raw = tmp_path / "MNIST" / "raw"
    _idx(raw / "train-images-idx3-ubyte", (6, 28, 28), truncate=100)
    _idx(raw / "train-labels-idx1-ubyte", (6,))
    _idx(raw / "t10k-images-idx3-ubyte", (2, 28, 28))
    _idx(raw / "t10k-labels-idx1-ubyte", (2,))
    monkeypatch.setenv("HTAF_DATA", str(tmp_path))
    monkeypatch.delenv("HTAF_DOWNLOAD", raising=False)  # nothing may be downloaded all the same
    with pytest.raises(data.DatasetCorruptError) as error:
        data.load("mnist", "train")
    assert error.value.path == raw / "train-images-idx3-ubyte" and "truncated" in str(error.value)
    one_line_exit_2(["run", "mlp", "--set", "dataset=mnist"], capsys, "damaged", "train-images-idx3-ubyte")


def test_truncated_cifar10_subset_is_reported_as_damaged(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "cifar10-subset"
    folder.mkdir()
    arrays = {"x_train": np.zeros((4, 32, 32, 3), np.uint8), "y_train": np.zeros(4, np.uint8),
              "x_test": np.zeros((2, 32, 32, 3), np.uint8), "y_test": np.zeros(2, np.uint8)}
    np.savez(folder / "cifar10_subset.npz", **arrays)
    whole = (folder / "cifar10_subset.npz").read_bytes()
    (folder / "cifar10_subset.npz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(data.DatasetCorruptError, match="cifar10_subset.npz cannot be read as npz"):
        data.load("cifar10_subset", "train", root=tmp_path)
    monkeypatch.setenv("HTAF_DATA", str(tmp_path))
    one_line_exit_2(["run", "mlp", "--set", "dataset=cifar10_subset"], capsys, "damaged", "cifar10_subset.npz")


# --------------------------------------------------------------------------------------------
# The results folder
# --------------------------------------------------------------------------------------------


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_results_folder_fails_before_training(tmp_path, count_fits, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        one_line_exit_2(["run", "mlp", "--results-dir", str(folder)], capsys, "cannot write results into")
    finally:
        folder.chmod(stat.S_IRWXU)
    assert not count_fits


def test_unusable_results_folder_fails_before_training(tmp_path, count_fits, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    one_line_exit_2(["run", "mlp", "--results-dir", str(blocker)], capsys, "cannot write results into", str(blocker))
    assert not count_fits


def test_results_files_are_readable_by_others_under_a_normal_umask(tmp_path):
    old = os.umask(0o022)
    try:
        results.write_json(tmp_path / "a.json", {"x": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644
    os.umask(0o077)
    try:
        results.write_json(tmp_path / "b.json", {"x": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "b.json").stat().st_mode) == 0o600  # the umask is respected


# --------------------------------------------------------------------------------------------
# One process per run
# --------------------------------------------------------------------------------------------


def test_two_identical_runs_started_together_train_once(count_fits):
    settings = {"epochs": 2, "hidden": [8]}
    first_started = threading.Event()
    outcomes = {}

    def slow_epochs(epoch, _):
        first_started.set()
        time.sleep(0.5)

    first = threading.Thread(target=lambda: outcomes.setdefault("first", train.run("mlp", "smoke", on_epoch_end=slow_epochs, **settings)))
    first.start()
    assert first_started.wait(60)
    with pytest.warns(results.ResultsWarning, match="waiting for it to finish"):
        second = train.run("mlp", "smoke", **settings)
    first.join()
    assert len(count_fits) == 1
    assert second["resumed_from_epoch"] is None and second["hash"] == outcomes["first"]["hash"]
    assert second == json.loads(json.dumps(outcomes["first"]))
    assert not list(results.results_root().rglob("*.lock"))


def test_a_run_in_progress_times_out_with_a_clear_error(monkeypatch, capsys):
    config = experiments.resolve_config("mlp", "smoke")
    path = results.result_path("mlp", "smoke", results.config_hash("mlp", config))
    monkeypatch.setenv("HTAF_LOCK_TIMEOUT", "0.3")
    with results.run_lock(path):  # held by "another process" (another open file description)
        one_line_exit_2(["run", "mlp"], capsys, f"run {path.stem} is in progress in process {os.getpid()}")


def test_a_stale_lock_of_a_dead_process_is_taken_over(count_fits):
    config = experiments.resolve_config("mlp", "smoke", epochs=1)
    path = results.result_path("mlp", "smoke", results.config_hash("mlp", config))
    path.parent.mkdir(parents=True)
    results.lock_path(path).write_text("process 999999 on somewhere")  # left behind by a killed process
    record = train.run("mlp", "smoke", epochs=1)
    assert record["resumed_from_epoch"] is None and len(count_fits) == 1


def test_world_size_keys_distributed_runs_only():
    config = experiments.resolve_config("mlp", "smoke")
    single = results.config_hash("mlp", config)
    assert single == results.config_hash("mlp", config, world_size=1)
    assert results.config_hash("mlp", config, world_size=2) not in (single, results.config_hash("mlp", config, world_size=4))


# --------------------------------------------------------------------------------------------
# Nothing planted in a results folder runs code or redirects a write
# --------------------------------------------------------------------------------------------


class _Payload:
    """A pickle that creates a folder when unpickled (stands for arbitrary code)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _paths(experiment, **overrides):
    config = experiments.resolve_config(experiment, "smoke", **overrides)
    digest = results.config_hash(experiment, config)
    return results.result_path(experiment, "smoke", digest), results.checkpoint_path(experiment, "smoke", digest)


def test_a_planted_checkpoint_cannot_run_code(tmp_path, count_fits):
    marker = tmp_path / "payload-ran"
    _, checkpoint = _paths("mlp", epochs=2)
    checkpoint.parent.mkdir(parents=True)
    torch.save({"model": _Payload(marker)}, checkpoint)
    with pytest.warns(results.ResultsWarning, match="is damaged"):
        record = train.run("mlp", "smoke", epochs=2)
    assert not marker.exists(), "unpickling the planted checkpoint ran its payload"
    assert record["resumed_from_epoch"] is None and len(count_fits) == 1
    assert list(checkpoint.parent.glob("*.corrupt-*"))


def test_a_checkpoint_with_every_rng_state_loads_weights_only(tmp_path):
    """What fit writes (weights, optimizer, scheduler, history, Python/NumPy/torch RNG) passes weights_only."""
    path = tmp_path / "state.pt"
    np.random.seed(3)
    np.random.standard_normal()  # a cached Gaussian in NumPy's state
    state = {"rng": train._rng_state(), "history": [{"epoch": 1, "test_loss": 0.5}]}
    train.save_checkpoint(path, state)
    expected = (np.random.standard_normal(3), torch.rand(3))
    loaded = torch.load(path, weights_only=True)
    train._restore_rng_state(loaded["rng"])
    assert np.array_equal(np.random.standard_normal(3), expected[0])
    assert torch.equal(torch.rand(3), expected[1])


def test_a_symlinked_lock_file_never_overwrites_its_target(tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    path, _ = _paths("mlp", epochs=1)
    path.parent.mkdir(parents=True)
    results.lock_path(path).symlink_to(target)
    with pytest.raises(results.ResultsError, match="symbolic link"):
        train.run("mlp", "smoke", epochs=1)
    assert target.read_text() == "keep me"


@pytest.mark.parametrize("linked", ["results", "checkpoints"])
def test_a_symlinked_folder_inside_the_results_never_receives_a_write(tmp_path, linked):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    path, checkpoint = _paths("mlp", epochs=1)
    folder = (path if linked == "results" else checkpoint).parent.parent  # <root>/mlp
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(results.ResultsError, match="symbolic link"):
        train.run("mlp", "smoke", epochs=1)
    assert not any(elsewhere.rglob("*"))


@pytest.mark.parametrize("value", ["abc", "-1", "nan"])
def test_a_bad_lock_timeout_is_one_line(monkeypatch, capsys, value):
    monkeypatch.setenv("HTAF_LOCK_TIMEOUT", value)
    one_line_exit_2(["run", "mlp", "--set", "epochs=1"], capsys, "HTAF_LOCK_TIMEOUT must be a number of seconds")


def test_an_empty_results_folder_name_is_refused():
    with pytest.raises(ValueError, match="empty string"):
        results.results_root("")
    with pytest.raises(ValueError, match="empty string"):
        train.run("mlp", "smoke", results_dir="", epochs=1)


def test_a_full_disk_is_found_before_training(monkeypatch, capsys, count_fits):
    import collections
    import shutil

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage(10 * 2**30, 10 * 2**30 - 2**20, 2**20))
    one_line_exit_2(["run", "mlp", "--set", "epochs=1"], capsys, "only 1.0 MiB free for results in")
    assert not count_fits


def test_a_small_file_size_limit_is_found_before_training(monkeypatch, capsys, count_fits):
    resource = pytest.importorskip("resource")
    monkeypatch.setattr(resource, "getrlimit", lambda kind: (2**20, resource.RLIM_INFINITY))
    one_line_exit_2(["run", "mlp", "--set", "epochs=1"], capsys, "file size limit of this process (ulimit -f)")
    assert not count_fits


def test_a_damaged_result_that_cannot_be_moved_aside_is_one_line(monkeypatch, capsys):
    config = experiments.resolve_config("mlp", "smoke", epochs=1)
    path = results.result_path("mlp", "smoke", results.config_hash("mlp", config))
    path.parent.mkdir(parents=True)
    path.write_text("{not json")

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", read_only)  # as in a read-only folder (root ignores chmod)
    one_line_exit_2(["run", "mlp", "--set", "epochs=1"], capsys, "cannot move the damaged file", "aside")


def _record(**changes):
    config = experiments.resolve_config("mlp", "smoke", epochs=1)
    digest = results.config_hash("mlp", config)
    record = {"schema": results.SCHEMA, "experiment": "mlp", "profile": "smoke", "hash": digest, "config": config,
              "history": [{"epoch": 1}], "metrics": {"test_accuracy": 0.5}, "wall_time_s": 1.0, **changes}
    return results.result_path("mlp", "smoke", digest), record


@pytest.mark.parametrize("changes, reason", [
    ({"metrics": None}, "metrics is not an object"),
    ({"config": "x"}, "config is not an object"),
    ({"history": [1, 2]}, "history is not a list of objects"),
    ({"wall_time_s": "slow"}, "wall_time_s is not a number"),
    ({"schema": "2"}, "schema is not an integer"),
])
def test_a_malformed_results_file_is_set_aside_with_a_warning(changes, reason, count_fits):
    path, record = _record(**changes)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(record))
    with pytest.warns(results.ResultsWarning, match="skipped .*" + reason):
        assert results.load("mlp", "smoke").empty and results.load_history("mlp", "smoke").empty
    with pytest.warns(results.ResultsWarning, match=reason + ".*moved it to"):
        train.run("mlp", "smoke", epochs=1)
    assert len(count_fits) == 1 and list(path.parent.glob("*.corrupt-*"))


@pytest.mark.parametrize("kind", ["deeply nested", "a folder"])
def test_a_results_file_that_cannot_be_read_never_blocks_the_run(kind, count_fits):
    path, _ = _record()
    path.parent.mkdir(parents=True)
    if kind == "a folder":
        path.mkdir()
    else:
        path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.warns(results.ResultsWarning, match="skipped"):
        assert results.table("mlp", "smoke").empty
    with pytest.warns(results.ResultsWarning, match="moved it to"):
        record = train.run("mlp", "smoke", epochs=1)
    assert len(count_fits) == 1 and results.read_result(path) == json.loads(json.dumps(record))


# --------------------------------------------------------------------------------------------
# Interruptions of reproduce
# --------------------------------------------------------------------------------------------


def _processes_with(marker: str) -> list[int]:
    """Pids of the live processes whose environment holds ``marker`` (a reproduce and its pool workers)."""
    from pathlib import Path

    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "environ").read_bytes() and b"Z" not in (entry / "stat").read_bytes().split(b")")[-1][:3]:
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def _start_reproduce(tmp_path, marker):
    import subprocess
    import sys

    env = {**os.environ, "HTAF_RESULTS": str(tmp_path / "results"), "HTAF_CHECKPOINTS": str(tmp_path / "ckpt"),
           "HTAF_QUIET": "1", "HTAF_TEST_MARKER": marker, "PYTHONWARNINGS": "ignore"}
    # two experiments (72 smoke runs, several seconds of training after the first one finishes): the signal must
    # reach a reproduce with runs still to go, however fast the smoke runs are
    # Ctrl-C raises KeyboardInterrupt, as in a terminal: a shell starts background jobs with SIGINT ignored, and a
    # Python started that way never raises it (the test failed when the suite itself ran in the background)
    start = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
             "sys.argv = ['htaf', *sys.argv[1:]]; runpy.run_module('htaf', run_name='__main__', alter_sys=True)")
    proc = subprocess.Popen([sys.executable, "-c", start, "reproduce", "--profile", "smoke", "--only",
                             "dhn,dhn_regression", "--jobs", "2"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    folder = tmp_path / "results" / "dhn" / "smoke"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(folder.glob("*.json")):
        time.sleep(0.2)
    assert list(folder.glob("*.json")), "no run finished within two minutes"
    return proc, folder


def _settles(folder, seconds=1.0):
    """No result appears in ``folder`` for ``seconds`` (called once every worker is gone: a result written late would
    come from a process the marker did not find)."""
    before = sorted(folder.glob("*.json"))
    time.sleep(seconds)
    return sorted(folder.glob("*.json")) == before


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc to find the workers")
def test_ctrl_c_stops_every_worker_of_reproduce_and_keeps_what_finished(tmp_path):
    import signal
    import uuid

    marker = f"ctrl-c-{uuid.uuid4().hex}"
    proc, folder = _start_reproduce(tmp_path, marker)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole process group
    _, err = proc.communicate(timeout=30)
    assert proc.returncode != 0 and "reproduce stopped:" in err and "are kept" in err, \
        f"exit status {proc.returncode}; {len(list(folder.glob('*.json')))} runs finished\n{err[-2000:]}"
    deadline = time.monotonic() + 10
    while _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _processes_with(marker)
    assert _settles(folder) and all(results.read_result(path) for path in folder.glob("*.json"))


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc to find the workers")
def test_workers_exit_when_reproduce_is_killed(tmp_path):
    import signal
    import uuid

    marker = f"kill-9-{uuid.uuid4().hex}"
    proc, folder = _start_reproduce(tmp_path, marker)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _processes_with(marker), "pool workers outlived their parent"
    assert _settles(folder)


def test_a_run_finished_by_another_process_is_not_counted_as_trained_here(monkeypatch, count_fits):
    from htaf import reproduction

    planned = reproduction.plan("smoke", "mlp")
    assert [item.cached for item in planned] == [False]
    train.run("mlp", "smoke", **planned[0].overrides)  # "another process" finishes it after the plan was made
    monkeypatch.setattr(reproduction, "plan", lambda *args, **kwargs: planned)
    summary = reproduction.reproduce("smoke", ["mlp"])
    assert summary["mlp"]["trained"] == 0 and len(count_fits) == 1


def test_orphaned_temporary_files_of_a_run_are_removed_when_it_trains():
    path, checkpoint = _paths("mlp", epochs=1)
    orphans = [path.parent / f".{path.name}.k1ll3d.tmp", checkpoint.parent / f".{checkpoint.name}.x9.tmp"]
    for orphan in orphans:
        orphan.parent.mkdir(parents=True, exist_ok=True)
        orphan.write_bytes(b"half a write")
    keep = path.parent / ".other.json.abc.tmp"  # another run's: not this run's to remove
    keep.write_bytes(b"")
    train.run("mlp", "smoke", epochs=1)
    assert not any(orphan.exists() for orphan in orphans) and keep.exists()


@pytest.mark.parametrize("threads", [0, -1])
def test_bad_thread_counts_are_one_line(capsys, threads):
    one_line_exit_2(["reproduce", "--profile", "smoke", "--only", "mlp", "--jobs", "2", "--threads", str(threads)],
                    capsys, "threads must be a positive integer")
    from htaf import reproduction

    with pytest.raises(experiments.ConfigError, match="threads must be a positive integer"):
        reproduction.reproduce("smoke", "mlp", threads=True)


# --------------------------------------------------------------------------------------------
# Bad values fail in the first second, before any data loads
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv, fragment", [
    (["run", "mlp", "--set", 'method="htaf"', "--set", 'surrogate_params={"alpha":1e300}'], "too large for torch.float32"),
    (["run", "snn", "--set", 'surrogate_params={"alpha":1e300}'], "too large for torch.float32"),
    (["run", "snn", "--set", 'surrogate_params={"alpha":1e-300}'], "too small for torch.float32"),
    (["run", "mlp", "--set", "lr=1e308"], "'lr' must be a finite number greater than 0 and below 10"),
    (["run", "mlp", "--set", "optimizer=\"sgd\"", "--set", "momentum=1.5"], "'momentum' must be a finite number"),
    (["run", "mlp", "--set", "task=\"regression\""], "task 'regression' does not match the dataset 'digits'"),
    (["run", "dhn_regression", "--set", "task=\"classification\""], "does not match the dataset"),
])
def test_bad_values_fail_before_any_data_loads(no_data, capsys, argv, fragment):
    one_line_exit_2(argv, capsys, fragment)


@pytest.mark.parametrize("device, fragment", [("bogus", "is not a torch device"), ("cuda:0", "asks for CUDA")])
def test_a_bad_device_fails_before_any_data_loads(no_data, capsys, monkeypatch, device, fragment):
    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    monkeypatch.setenv("HTAF_DEVICE", device)
    one_line_exit_2(["run", "mlp", "--set", "epochs=1"], capsys, f"HTAF_DEVICE={device!r}", fragment)


def test_the_lif_refuses_surrogate_parameters_its_dtype_cannot_hold():
    from htaf import surrogates
    from htaf.models.snn import lif_multistep

    with pytest.raises(ValueError, match="too large for torch.float32"):
        lif_multistep(torch.zeros(2, 3), surrogates.get("sigmoid", alpha=1e300))


def test_numpy_scalars_are_config_values_of_the_same_run():
    reference = experiments.resolve_config("mlp", "smoke", lr=0.01, epochs=2, hidden=[8], method="htaf",
                                           surrogate_params={"alpha": 2.0})
    scalars = experiments.resolve_config("mlp", "smoke", lr=np.float64(0.01), epochs=np.int64(2), hidden=[np.int64(8)],
                                         method="htaf", surrogate_params={"alpha": np.float32(2.0)})
    assert scalars == reference and type(scalars["epochs"]) is int and type(scalars["lr"]) is float
    assert results.config_hash("mlp", scalars) == results.config_hash("mlp", reference)


def _replace_results_folder():
    root = results.results_root()
    os.rename(root, root.with_name(root.name + ".old"))
    root.mkdir()


def test_a_results_folder_replaced_during_a_run_gets_its_lock_and_result_again(count_fits):
    def replace_after_first_epoch(epoch, row):
        if epoch == 1:
            _replace_results_folder()  # mv R R.old; mkdir R

    with pytest.warns(results.ResultsWarning, match="moved or replaced during the run; took its lock again"):
        record = train.run("mlp", "smoke", epochs=3, on_epoch_end=replace_after_first_epoch)
    path = results.result_path("mlp", "smoke", record["hash"])
    assert results.read_result(path)["hash"] == record["hash"] and len(record["history"]) == 3
    assert not results.lock_path(path).exists()  # released where it was taken


def test_a_run_whose_replaced_folder_another_process_took_stops_and_leaves_that_lock(capsys):
    config = experiments.resolve_config("mlp", "smoke", epochs=3)
    path = results.result_path("mlp", "smoke", results.config_hash("mlp", config))
    other = []

    def replace_and_let_another_process_take_it(epoch, row):
        if epoch == 1:
            _replace_results_folder()
            other.append(results.run_lock(path, timeout=0))
            other[0].__enter__()  # "another process" (another open file description) locks the run in the new folder

    with pytest.raises(results.RunInProgressError, match="was replaced during the run"):
        train.run("mlp", "smoke", epochs=3, on_epoch_end=replace_and_let_another_process_take_it)
    assert results.lock_path(path).exists() and not path.exists()  # the other holder's lock is left alone
    other[0].__exit__(None, None, None)


@pytest.mark.parametrize("argv", [
    ["run", "dhn", "--set", "width=1000000000"],
    ["run", "dhn", "--set", "depth=100000"],
    ["run", "mlp", "--set", "hidden=[1000000000]"],
    ["run", "snn", "--set", "hidden=[64, 10000000]"],
    ["run", "bnn", "--set", "hidden=[1000000000]"],
    ["run", "icbm", "--set", "num_concepts=1000000000"],
])
def test_huge_networks_fail_before_any_data_loads_or_memory_runs_out(no_data, capsys, argv):
    started = time.monotonic()
    one_line_exit_2(argv, capsys, "between 1 and")
    assert time.monotonic() - started < 5


def test_huge_generated_data_fails_before_it_is_generated(no_data, capsys):
    one_line_exit_2(["run", "icbm", "--set", 'data_kwargs={"image_size": 100000}'], capsys,
                    "'image_size' must be at most 512")


def test_every_exception_of_the_package_survives_pickling(tmp_path):
    """A worker of ``reproduce --jobs`` or of a Dask cluster sends its exception to the parent by pickle: each of the
    package's exceptions, whatever its constructor takes, must arrive with its type, message and attributes."""
    import pickle

    from htaf import findings
    from htaf._extras import MissingDependencyError
    from htaf.data.shd import SHDNotFoundError
    from htaf.engine import ConfigError, UnknownChoiceError

    errors = [data.DatasetNotFoundError("mnist", tmp_path, "offline"),
              data.DatasetCorruptError("cifar10", tmp_path / "x.npz", "is truncated"),
              SHDNotFoundError(tmp_path, "offline"), MissingDependencyError("tonic", "dataset 'shd'"),
              ConfigError("epochs must be >= 1"), UnknownChoiceError("experiment", "snm", ["snn", "dhn"]),
              results.CorruptResultError(tmp_path / "a.json", "not JSON"), results.RunInProgressError("held"),
              findings.MissingRunsError("3 of 5 runs missing")]
    for error in errors:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error) and copy.args == error.args
        assert {k: v for k, v in vars(copy).items()} == {k: v for k, v in vars(error).items()}
