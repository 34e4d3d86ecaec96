"""Shared test set-up: no test writes into the repository, and tiny models run on one thread."""

import pytest
import torch


@pytest.fixture(autouse=True)
def isolated_results(tmp_path, monkeypatch):
    """Results and checkpoints in a temporary folder; one thread (tiny models run faster on a shared CPU)."""
    monkeypatch.setenv("HTAF_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("HTAF_CHECKPOINTS", str(tmp_path / "checkpoints"))
    monkeypatch.delenv("HTAF_PROFILE", raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
