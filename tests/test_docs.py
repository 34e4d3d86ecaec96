"""Doctests of the public modules, and the benchmark script still running (on tiny inputs)."""

import doctest
import subprocess
import sys
from pathlib import Path

import pytest

import htaf

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("module", [htaf.functional, htaf.nn, htaf.surrogates], ids=lambda m: m.__name__)
def test_doctests(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_benchmark_script_runs():
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_htaf.py"), "--numel", "10000", "--no-compile",
         "--min-run-time", "0.01"],
        capture_output=True, text=True, check=True,
    ).stdout
    for variant in ("sigmoid", "htaf", "naive"):
        assert f"cpu    {variant} " in out
