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


WITH_EXAMPLES = {"htaf.functional", "htaf.nn", "htaf.surrogates", "htaf.train", "htaf.theory", "htaf.results"}


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
         "--min-run-time", "0.01"],
        capture_output=True, text=True, check=True,
    ).stdout
    for variant in ("sigmoid", "htaf", "naive"):
        assert f"cpu    {variant} " in out


def test_readme_quick_start_runs():
    import re

    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    namespace: dict = {}
    exec(blocks[0], namespace)  # the quick start: import, functional calls, modules, the zoo
    assert namespace["logits"].shape == (8, 10)


def test_reproduce_page_counts_the_runs_each_profile_plans():
    """The Reproduce page's run counts (per profile, and per experiment for ``cpu``) are those the engine plans."""
    import collections
    import re

    from htaf import train

    page = (ROOT / "book" / "reproduce.md").read_text()
    for profile in ("smoke", "cpu", "gpu"):
        row = re.search(rf"^\| `{profile}` \| (\d+)", page, re.MULTILINE)
        assert row, f"no row for profile {profile} in book/reproduce.md"
        assert int(row.group(1)) == len(train.plan(profile)), profile
    planned = collections.Counter(run.experiment for run in train.plan("cpu"))
    rows = re.findall(r"^\| ((?:`\w+`(?:, )?)+) \| [^|]* \| ([\d + ]+) \|", page, re.MULTILINE)
    covered = set()
    for names, counts in rows:
        experiments = re.findall(r"`(\w+)`", names)
        assert [int(c) for c in counts.split("+")] == [planned[e] for e in experiments], names
        covered.update(experiments)
    assert covered == set(planned), f"experiments without a row on the Reproduce page: {set(planned) - covered}"
