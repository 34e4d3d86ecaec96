"""``reproduce`` on a Dask cluster (``--cluster``, the extra ``htaf[cluster]``): the same results as one process,
failed and held runs reported while the others finish, and one-line errors before any data loads."""

from __future__ import annotations

import os
import sys

import pytest
import torch

from htaf import reproduction, results
from htaf.__main__ import main
from _helpers import one_line_exit_2


@pytest.fixture
def no_plan(monkeypatch):
    """Fail if the plan is made (it is made before any data loads, so an error before it loads nothing)."""
    monkeypatch.setattr(reproduction, "plan", lambda *a, **k: pytest.fail("the plan was made"))


def _subset(monkeypatch, tmp_path, count=2):
    """The smoke plan of ``mlp`` and the first ``count`` runs of ``sensitivity_bnn`` (the whole smoke plan, 275 runs,
    takes minutes); ``reproduce`` is made to use it."""
    planned = reproduction.plan("smoke", ["mlp"]) + reproduction.plan("smoke", ["sensitivity_bnn"])[:count]
    real_plan = reproduction.plan

    def subset(profile, only, results_dir):
        paths = {item.path.relative_to(results.results_root()) for item in planned}
        return [item for item in real_plan(profile, only, results_dir)
                if item.path.relative_to(results.results_root(results_dir)) in paths]

    monkeypatch.setattr(reproduction, "plan", subset)
    return planned


# --------------------------------------------------------------------------------------------
# One-line errors, before any data loads
# --------------------------------------------------------------------------------------------


def test_without_dask_the_cluster_names_the_extra(monkeypatch, capsys, no_plan):
    monkeypatch.setitem(sys.modules, "dask.distributed", None)  # "import dask.distributed" now raises ImportError
    one_line_exit_2(["reproduce", "--profile", "smoke", "--cluster", "local"], capsys,
                    "pip install 'htaf[cluster]'")


@pytest.mark.parametrize("argv, fragment", [
    (["--cluster", "tcp://127.0.0.1:9", "--jobs", "2"], "drop --jobs"),
    (["--device", "cpu"], "without --cluster set HTAF_DEVICE"),
    (["--cluster", " "], "cluster must be 'local' or a Dask scheduler's address"),
    (["--cluster", "local", "--threads", "0"], "threads must be a positive integer"),
])
def test_bad_combinations_are_one_line(capsys, no_plan, argv, fragment):
    one_line_exit_2(["reproduce", "--profile", "smoke", *argv], capsys, fragment)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_local_cuda_runs_need_cuda_here(capsys, no_plan):
    one_line_exit_2(["reproduce", "--profile", "smoke", "--cluster", "local", "--device", "cuda"], capsys,
                    "--device cuda", "CUDA")


def test_an_unreachable_scheduler_is_one_line(capsys, monkeypatch, tmp_path):
    import dask
    import dask.distributed  # noqa: F401  (loads its config)

    missing = reproduction.PlannedRun("mlp", "baseline", {}, tmp_path / "missing.json", False, 0.0)
    monkeypatch.setattr(reproduction, "plan", lambda *a, **k: [missing])
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        one_line_exit_2(["reproduce", "--profile", "smoke", "--cluster", "tcp://127.0.0.1:9", "--only", "mlp"],
                        capsys, "cannot reach the Dask scheduler at tcp://127.0.0.1:9")


# --------------------------------------------------------------------------------------------
# On a cluster of two workers
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_local_cluster_trains_as_one_process_does_and_reports_failed_and_held_runs(monkeypatch, tmp_path, capsys):
    """One cluster of two workers for every check (each worker pays seconds to start): the runs it trains match one
    process's bit for bit; a failed run is reported with its config and error while the others finish (exit 1); a
    run whose lock "another node" holds is skipped, not trained twice; a rerun trains nothing that finished."""
    planned = _subset(monkeypatch, tmp_path, count=2)
    trained, held = planned[:2], planned[2]
    failing = reproduction.PlannedRun("mlp", "baseline", {"bogus_key": 1},
                                      planned[0].path.with_name("f" * 16 + ".json"), False, 0.0)
    alone = tmp_path / "alone"
    subset = reproduction.plan
    monkeypatch.setattr(reproduction, "plan", lambda *args: [item for item in subset(*args) if item != held])
    assert main(["reproduce", "--profile", "smoke", "--only", "mlp,sensitivity_bnn", "--results-dir", str(alone)]) == 0
    monkeypatch.setattr(reproduction, "plan", lambda *args: subset(*args) + [failing])
    with results.run_lock(held.path) as lock:  # "another node" trains this run
        os.ftruncate(lock.fd, 0)
        os.pwrite(lock.fd, b"process 4242 on node7 since 2026-01-01T00:00:00+00:00", 0)
        status = main(["reproduce", "--profile", "smoke", "--only", "mlp,sensitivity_bnn", "--cluster", "local",
                       "--jobs", "2"])
    out, err = capsys.readouterr()
    assert status == 1 and "error: 1 run(s) failed" in err, err
    assert "failed mlp/baseline (bogus_key=1; results file ffffffffffffffff.json): UnknownChoiceError: unknown config key" in err, err
    assert f"skipped sensitivity_bnn/{held.sweep}" in err and "process 4242 on node7" in err, err
    assert "mlp                  2       0        2        1" in out, out  # the failed run is one of mlp's two
    for item in trained:
        on_cluster = results.read_result(item.path)
        one_process = results.read_result(alone / item.path.relative_to(results.results_root()))
        assert results._outcome(on_cluster) == results._outcome(one_process), item
        assert on_cluster["environment"]["cpu_threads"] == one_process["environment"]["cpu_threads"] == 1
    assert not held.path.exists() and not failing.path.exists()
    assert not [path.name for path in results.results_root().rglob("*.lock")]  # the probe's and the runs' are gone
    monkeypatch.setattr(reproduction, "plan", subset)
    summary = reproduction.reproduce("smoke", ["mlp", "sensitivity_bnn"], cluster="tcp://127.0.0.1:9", dry_run=True)
    assert summary["sensitivity_bnn"]["missing"] == 1 and summary["mlp"]["cached"] == 1  # a rerun trains the held one


class _Client:
    """What :func:`htaf.reproduction._check_workers` asks of a Dask client, for a cluster of made-up workers."""

    def __init__(self, workers, free=False):
        self.workers, self.free = workers, free

    def scheduler_info(self, n_workers=-1):
        return {"workers": self.workers}

    def run(self, function, *args):
        return {address: ("node7", self.free) for address in self.workers}


@pytest.mark.parametrize("workers, free, device, fragment", [
    ({"tcp://a:1": {"nthreads": 4}}, False, "cpu", "start workers with --nthreads 1"),
    ({"tcp://a:1": {"nthreads": 1, "resources": {}}}, False, "cuda", "--resources GPU=1"),
    ({"tcp://a:1": {"nthreads": 1}}, None, "cpu", "does not see the results folder"),
    ({"tcp://a:1": {"nthreads": 1}}, True, "cpu", "locks are not seen across machines"),
])
def test_workers_that_cannot_train_the_runs_stop_it_before_any_run_is_sent(tmp_path, workers, free, device, fragment):
    from htaf import experiments

    with pytest.raises(experiments.ConfigError, match=fragment.replace("-", r"\-")):
        reproduction._check_workers(_Client(workers, free), "tcp://head:8786", tmp_path / "results", device)
    folder = tmp_path / "results"
    assert not folder.exists() or not list(folder.iterdir())  # the probe's lock file is gone


def test_the_probe_lock_is_not_free_while_the_client_holds_it(tmp_path):
    """What a worker sees of the lock that the client holds (``flock`` locks of two opens of one file exclude each
    other, in one process as in two): taken; and once it is released, no file."""
    marker = tmp_path / "probe.json"
    with results.run_lock(marker, timeout=0):
        assert reproduction._probe_folder(str(results.lock_path(marker)))[1] is False
    assert reproduction._probe_folder(str(results.lock_path(marker)))[1] is None


def test_a_filesystem_without_locks_is_one_line(monkeypatch, tmp_path):
    import errno
    import fcntl

    def refuse(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", refuse)
    with pytest.raises(results.ResultsError, match="refuses file locks .No locks available.; use a results folder"):
        with results.run_lock(tmp_path / "run.json"):
            pass


def test_a_missing_scheduler_file_is_one_line(capsys, monkeypatch, tmp_path):
    missing = reproduction.PlannedRun("mlp", "baseline", {}, tmp_path / "missing.json", False, 0.0)
    monkeypatch.setattr(reproduction, "plan", lambda *a, **k: [missing])
    one_line_exit_2(["reproduce", "--cluster", str(tmp_path / "scheduler.json")], capsys, "error: no Dask scheduler file")


def test_the_gpu_estimate_on_the_reproduce_page_and_in_the_readme_is_the_codes(capsys):
    """The page states no estimate by hand: its block is the output of ``--estimate-from cpu`` for the ``gpu``
    profile on the committed results, and the README quotes its total."""
    import re
    from pathlib import Path

    from htaf.__main__ import print_estimate

    root = Path(__file__).resolve().parents[1]
    page = (root / "book" / "reproduce.md").read_text()
    (block,) = [b for b in re.findall(r"```text\n(.*?)```", page, re.S) if b.startswith("estimate for profile gpu")]
    print_estimate("gpu", "cpu", None, str(root / "results"))
    out = capsys.readouterr().out
    assert block == out
    one, eight = re.search(r"estimated total: (.+) on one device, (.+) on 8", out).groups()
    readme = " ".join((root / "README.md").read_text().split())
    assert f"{one} on one device, {eight} on eight" in readme
    found = reproduction.estimate("gpu", "cpu", ["mlp"], root / "results")["mlp"]
    assert found["runs"] == reproduction.run_counts("gpu", ["mlp"])["mlp"] and found["measured_runs"] == 1
    assert found["estimate_s"] == pytest.approx(found["epochs"] * found["measured_s"] / found["measured_epochs"])


def test_the_estimate_reads_only_runs_trained_on_a_cpu(tmp_path):
    """A run trained on a GPU says nothing about what an epoch costs on a CPU core: the estimate leaves it out."""
    import json
    import shutil
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    (source,) = (root / "results" / "mlp" / "cpu").glob("*.json")
    target = tmp_path / "mlp" / "cpu" / source.name
    target.parent.mkdir(parents=True)
    shutil.copy(source, target)
    assert reproduction.estimate("gpu", "cpu", ["mlp"], tmp_path)["mlp"]["measured_runs"] == 1
    record = json.loads(target.read_text())
    record["environment"]["device_type"] = "cuda"
    target.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    assert results.recorded_time(target) == record["wall_time_s"]  # still a finished run, only not a CPU's
    found = reproduction.estimate("gpu", "cpu", ["mlp"], tmp_path)["mlp"]
    assert found["measured_runs"] == 0 and found["estimate_s"] is None
