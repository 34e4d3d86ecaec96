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
