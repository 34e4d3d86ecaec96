"""Shared test set-up: no test writes into the repository, and tiny models run on one thread.

torch and htaf are imported where a fixture needs them, not here: pytest-xdist's controller process, which runs no
test, then starts its workers without paying their import first (about 2 s of the suite's wall time).
"""

import os

import pytest


@pytest.fixture(autouse=True)
def isolated_results(tmp_path, monkeypatch):
    """Results and checkpoints in a temporary folder; one thread (tiny models run faster on a shared CPU)."""
    monkeypatch.setenv("HTAF_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("HTAF_CHECKPOINTS", str(tmp_path / "checkpoints"))
    monkeypatch.delenv("HTAF_PROFILE", raising=False)
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def count_fits(monkeypatch):
    """The configs of the runs that really train (``train.fit`` calls), in order."""
    from htaf import train

    fitted = []
    real_fit = train.fit

    def counting_fit(experiment, config, *args, **kwargs):
        fitted.append(config)
        return real_fit(experiment, config, *args, **kwargs)

    monkeypatch.setattr(train, "fit", counting_fit)
    return fitted


@pytest.fixture
def benchmark_script():
    """A script of the repository's ``benchmarks/`` folder imported as a module: ``benchmark_script("bench_snn_libs")``
    (the folder is not a package, and the scripts are not installed)."""
    import importlib.util
    from pathlib import Path

    def load(name: str):
        path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


def pytest_configure(config):
    """Every process the tests start (pytest-xdist's workers, the notebooks' kernels, the command-line runs) computes
    on one thread: pytest-xdist already runs one worker per core, and a kernel or subprocess on every core beside
    them spends its time waiting for busy cores (OpenMP threads spin); a test that needs more threads asks for them
    (``torch.set_num_threads``, ``--threads``)."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"
    # htaf.memory's compiled allocator: built once for the whole run (and kept for the next) in the checkout's pytest
    # cache folder, not in the user's cache folder
    os.environ.setdefault("HTAF_CACHE", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                     ".pytest_cache", "htaf"))


#: the longest tests (most of them a notebook each, 4-15 s; about 105 s in all on a 2-core machine)
LONGEST = "test_notebooks.py"


def pytest_collection_modifyitems(config, items):
    """Each worker's first share of the queue starts with long tests: the first worker's with the notebooks, the
    second's with the other slow tests (stable order otherwise). pytest-xdist's worksteal scheduler hands each worker a
    share of the queue, and an idle worker takes the back half of a busy one's queue; the last two tests queued on a
    worker cannot be taken. With the long tests at the fronts, what is taken and what runs last are fast tests: the
    workers finish within a few seconds of each other, and the suite's wall time is close to its total time divided by
    the workers. (With the slow tests all first, the other slow tests, the book's build among them, queued behind the
    notebooks on the first worker and ran last, 5-7 s after the other worker had finished.)"""
    slow = [item for item in items if item.get_closest_marker("slow") is not None]
    notebooks = [item for item in slow if item.path.name == LONGEST]
    others = [item for item in slow if item.path.name != LONGEST]
    fast = [item for item in items if item.get_closest_marker("slow") is None]
    # the first worker's share is the queue's first len(items) // workers tests; the second's starts there
    cut = max(0, len(items) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) - len(notebooks))
    items[:] = notebooks + fast[:cut] + others + fast[cut:]
