"""DDP: two gloo processes under torchrun match a single-process run with the same global batch."""

import os
import subprocess
import sys

import pytest
import torch

from htaf import results
from htaf.train import run

# 1408 = 22 global batches of 64: every rank sees whole batches, no padding
SETTINGS = {"epochs": 2, "subset": 1408, "hidden": [16]}


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without torch.distributed")
def test_two_gloo_processes_match_one_process(tmp_path, monkeypatch):
    monkeypatch.setenv("HTAF_CHECKPOINTS", str(tmp_path / "checkpoints"))
    environment = {
        **os.environ,
        "HTAF_RESULTS": str(tmp_path / "ddp"),
        "HTAF_CHECKPOINTS": str(tmp_path / "checkpoints"),
        "HTAF_DEVICE": "cpu",
    }
    assignments = [arg for key, value in SETTINGS.items() for arg in ("--set", f"{key}={value}".replace(" ", ""))]
    launched = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "htaf", "run", "mlp", "--profile", "smoke", *assignments],
        capture_output=True, text=True, env=environment, timeout=180,
    )
    assert launched.returncode == 0, launched.stderr[-3000:]
    (path,) = (tmp_path / "ddp" / "mlp" / "smoke").glob("*.json")
    distributed = results.read_json(path)
    assert distributed["environment"]["world_size"] == 2

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = run("mlp", "smoke", tmp_path / "single", **SETTINGS)
    finally:
        torch.set_num_threads(threads)
    assert single["environment"]["world_size"] == 1 and single["hash"] != distributed["hash"]
    for ddp_epoch, single_epoch in zip(distributed["history"], single["history"], strict=True):
        for key in ("train_loss", "test_loss", "grad_norm_fc1"):
            assert ddp_epoch[key] == pytest.approx(single_epoch[key], rel=1e-4), key
        for key in ("train_accuracy", "test_accuracy"):
            assert abs(ddp_epoch[key] - single_epoch[key]) <= 2 / 357, key
