"""Doctests of every module of the package, and the benchmark script still running (on tiny inputs)."""

import doctest
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import htaf

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted(
    name for _, name, _ in pkgutil.walk_packages(htaf.__path__, prefix="htaf.") if name != "htaf.__main__"
) + ["htaf", "htaf.__main__"]


WITH_EXAMPLES = {"htaf.functional", "htaf.nn", "htaf.surrogates", "htaf.train", "htaf.theory", "htaf.results", "htaf.engine",
                 "htaf.reproduction"}


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    if name in WITH_EXAMPLES:
        assert result.attempted > 0


@pytest.mark.slow
def test_benchmark_script_runs():
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_htaf.py"), "--numel", "10000", "--no-compile",
         "--min-run-time", "0.01", "--peak-variants", "htaf"],  # one peak-memory process, not one per variant
        capture_output=True, text=True, check=True,
    ).stdout
    rows = {line.split()[1]: line.split() for line in out.splitlines() if line.startswith("cpu ")}
    assert set(rows) == {"sigmoid", "htaf", "naive"}, out
    assert float(rows["htaf"][-1]) > 0 and rows["sigmoid"][-1] == rows["naive"][-1] == "-", out


def test_readme_quick_start_runs():
    import re

    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    namespace: dict = {}
    exec(blocks[0], namespace)  # the quick start: import, functional calls, modules, the zoo
    assert namespace["logits"].shape == (8, 10)


def test_reproduce_page_shows_the_dry_run_of_the_committed_results(capsys):
    """The Reproduce page states no run count by hand: its block is the dry run's output on the committed results,
    whose counts are the plan's (:func:`htaf.reproduction.run_counts`), and it names every experiment."""
    import re

    from htaf import reproduction
    from htaf.__main__ import main

    page = (ROOT / "book" / "reproduce.md").read_text()
    (block,) = [b for b in re.findall(r"```text\n(.*?)```", page, re.S) if "(dry run: nothing trained)" in b]
    assert main(["reproduce", "--profile", "cpu", "--dry-run", "--results-dir", str(ROOT / "results")]) == 0
    out = capsys.readouterr().out
    shown = [line.split("; this call")[0] for line in out.splitlines() if not line.startswith("results of ")]
    assert block.splitlines() == shown
    counts = reproduction.run_counts("cpu")
    assert {line.split()[0]: int(line.split()[1]) for line in shown[2:-1]} == counts
    rows = re.findall(r"^\| ((?:`\w+`(?:, )?)+) \| (?:\{doc\}|\()", page, re.MULTILINE)
    covered = {name for names in rows for name in re.findall(r"`(\w+)`", names)}
    assert covered == set(counts), f"experiments without a row on the Reproduce page: {set(counts) ^ covered}"


def test_reproduce_page_shows_the_provenance_of_the_committed_results():
    """The Reproduce page's table of machines, thread counts and torch versions is htaf.results.provenance's output
    on the committed results (so a retrained or added run on another setup changes the page or fails here)."""
    import re

    from htaf import results

    page = (ROOT / "book" / "reproduce.md").read_text()
    (block,) = re.findall(r"<!-- provenance: start -->\n(.*?)\n<!-- provenance: end -->", page, re.S)
    assert block == results.provenance_markdown("cpu", results_dir=ROOT / "results")
    table = results.provenance("cpu", results_dir=ROOT / "results")
    assert table["runs"].sum() == sum(1 for _ in (ROOT / "results").glob("*/cpu/*.json"))


def test_provenance_groups_runs_by_setup(tmp_path):
    from htaf import results

    for name, threads in (("a", 1), ("b", 1), ("c", 2)):
        path = tmp_path / "exp" / "cpu" / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('{"experiment": "exp", "profile": "cpu", "hash": "%s", "schema": 3, "config": {}, '
                        '"history": [], "metrics": {}, "wall_time_s": 1.0, "environment": {"device": "X", '
                        '"cpu_threads": %d, "torch": "2"}, "date": "2026-01-01T00:00:00+00:00"}' % (name, threads))
    table = results.provenance("cpu", results_dir=tmp_path)
    assert table[["cpu_threads", "runs"]].values.tolist() == [[1, 2], [2, 1]]
    assert results.provenance_markdown("cpu", results_dir=tmp_path).splitlines()[2] == "| exp | X | 1 | 2 | 2 |"


def test_the_profile_cost_benchmark_retrains_a_sample_and_scales_the_recorded_time(tmp_path, monkeypatch,
                                                                                   benchmark_script):
    """benchmarks/bench_profile_cost.py at toy size: one smoke run, retrained on one thread in a scratch folder,
    reproduces its committed metric exactly, and the estimate is the recorded total scaled by the sample's ratio."""
    import htaf

    monkeypatch.setenv("HTAF_CHECKPOINTS", str(tmp_path / "checkpoints"))
    record = htaf.run("mlp", "smoke", results_dir=tmp_path / "results")
    bench = benchmark_script("bench_profile_cost")
    found = bench.measure(1, results_dir=tmp_path / "results", profile="smoke")
    assert found["sampled"] == 1 and found["same_metric"] == 1 and found["runs"][0]["hash"] == record["hash"]
    (stratum,) = found["strata"]
    assert stratum["recorded_s"] == found["experiments"]["mlp"]["recorded_s"] == record["wall_time_s"]
    assert found["estimate_s"] == stratum["estimate_s"] == stratum["recorded_s"] * stratum["ratio"] > 0
    assert stratum["setup"].endswith("1 thread(s)") and found["overhead_s"] >= 0
    assert list((tmp_path / "results" / "mlp" / "smoke").glob("*.json")) == [tmp_path / "results" / "mlp" / "smoke" / f"{record['hash']}.json"]


def test_the_reproduce_page_states_the_measured_cost_of_the_cpu_profile():
    """The page's figures for the `cpu` profile on one idle core are benchmarks/bench_profile_cost.py's measurement
    (htaf/benchmarks/profile_cost_cpu.json), and that measurement is a consistent stratified ratio estimate."""
    import math

    from htaf import benchmarks

    found = benchmarks.load("profile_cost_cpu")
    strata = found["strata"]
    assert all(s["estimate_s"] == s["recorded_s"] * s["ratio"] and 1 <= s["sampled"] <= s["runs"] for s in strata)
    assert math.isclose(found["estimate_s"], sum(s["estimate_s"] for s in strata))
    assert found["sampled"] == len(found["runs"]) == sum(s["sampled"] for s in strata)
    assert found["machine"]["cpu_threads"] == 1
    page = " ".join((ROOT / "book" / "reproduce.md").read_text().split())
    assert f"{found['recorded_s'] / 3600:.1f} h of recorded training come to about {found['estimate_s'] / 3600:.1f} h" in page
    assert f"and {found['overhead_s'] / 3600:.1f} h besides" in page
    assert f"{found['same_metric']} of the {found['sampled']} retrained runs" in page
    assert f"{len(strata)} groups" in page
    crowded = min(strata, key=lambda s: s["ratio"])
    assert crowded["experiment"] == "icbm" and crowded["setup"].endswith("2 thread(s)") and 1 / 9 < crowded["ratio"] < 1 / 7
    here = [s for s in strata if s["setup"].startswith("Intel(R) Xeon(R) Processor | torch 2.14") and s["sampled"] > 1]
    low, high = min(s["ratio"] for s in here), max(s["ratio"] for s in here)
    assert f"ratios {low:.2f} to {high:.2f}" in page
