"""HTAF surrogates inside snnTorch and SpikingJelly neurons (the README's one-liners), and htaf's LIF
against SpikingJelly's on the same input. Skipped when the libraries are missing (``pip install -e .[compare]``;
SpikingJelly with ``--no-deps``, see README)."""

from __future__ import annotations

import pytest
import torch

import htaf
from htaf.models import snn


def htaf_grad(x: torch.Tensor) -> torch.Tensor:
    return htaf.surrogates.get("htaf").derivative(x)


def test_snntorch_leaky_with_htaf_spike_grad():
    snntorch = pytest.importorskip("snntorch")
    lif = snntorch.Leaky(beta=0.5, spike_grad=htaf.surrogates.get("htaf"))
    x = torch.tensor([0.5, 1.2, 3.0, -1.0], dtype=torch.float64, requires_grad=True)
    spk, mem = lif(x, torch.zeros(4, dtype=torch.float64))  # mem = 0.5 * 0 + x; spike where mem > 1
    assert spk.tolist() == [0.0, 1.0, 1.0, 0.0]
    torch.testing.assert_close(mem, x)
    spk.sum().backward()
    # snnTorch calls spike_grad(mem - threshold): the gradient is HTAF's derivative there
    torch.testing.assert_close(x.grad, htaf_grad(x.detach() - 1.0), rtol=1e-12, atol=0)


def test_snntorch_leaky_htaf_over_several_steps_trains():
    snntorch = pytest.importorskip("snntorch")
    torch.manual_seed(0)
    fc = torch.nn.Linear(5, 3)
    lif = snntorch.Leaky(beta=0.9, spike_grad=htaf.surrogates.get("htaf"), reset_mechanism="zero")
    mem, total = lif.reset_mem(), 0.0
    for _ in range(4):
        spk, mem = lif(fc(torch.randn(8, 5) * 3), mem)
        total = total + spk.sum()
    total.backward()
    assert fc.weight.grad is not None and fc.weight.grad.abs().sum() > 0


def test_spikingjelly_lifnode_with_htaf_spike():
    pytest.importorskip("loguru")
    neuron = pytest.importorskip("spikingjelly.activation_based.neuron")
    node = neuron.LIFNode(surrogate_function=htaf.nn.Spike("htaf"))  # tau 2, decay_input: H = (V + X) / 2
    x = torch.tensor([0.5, 2.2, 3.0, -1.0], requires_grad=True)
    s = node(x)
    assert s.tolist() == [0.0, 1.0, 1.0, 0.0]
    s.sum().backward()
    # SpikingJelly calls surrogate_function(H - v_threshold); dH/dX = 1/tau
    torch.testing.assert_close(x.grad, htaf_grad(x.detach() / 2 - 1.0) / 2, rtol=1e-6, atol=0)


@pytest.mark.parametrize("reset", ["hard", "soft"])
def test_htaf_lif_equals_spikingjelly_multistep(reset):
    """htaf's LIF (every backend) and SpikingJelly's multi-step LIFNode: same spikes, same input gradient."""
    pytest.importorskip("loguru")
    neuron = pytest.importorskip("spikingjelly.activation_based.neuron")
    torch.manual_seed(0)
    x = torch.randn(6, 5, 7, dtype=torch.float64) * 1.5 + 1.0
    weights = torch.randn_like(x)
    node = neuron.LIFNode(tau=2.0, v_reset=0.0 if reset == "hard" else None, step_mode="m",
                          surrogate_function=htaf.nn.Spike("htaf"))
    xs = x.clone().requires_grad_()
    s_sj = node(xs)
    (s_sj * weights).sum().backward()
    for backend in ("fused", "loop"):
        xh = x.clone().requires_grad_()
        s = snn.lif_multistep(xh, "htaf", tau=2.0, reset=reset, backend=backend)
        (s * weights).sum().backward()
        assert torch.equal(s, s_sj)
        torch.testing.assert_close(xh.grad, xs.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.slow
def test_library_benchmark_runs_with_whatever_is_installed(tmp_path):
    """benchmarks/bench_snn_libs.py at toy size: the libraries present are measured, the others skipped.

    Every contestant is built, checked and timed; memory (a fresh subprocess each, most of this test's time when
    measured for all) is measured for htaf alone, the same code path for every contestant.
    ``--allocator`` restarts the script under one allocation setting, which the report records: htaf's caching
    allocator where it can be compiled here (the script turns it on before any contestant allocates), else PyTorch's
    transparent huge pages (the same restart, another variable)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    import htaf.memory

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "bench.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    allocator = "htaf" if htaf.memory.cpu_cache_available() else "thp"
    subprocess.run([sys.executable, str(root / "benchmarks" / "bench_snn_libs.py"), "--devices", "cpu", "--T", "2",
                    "--channels", "2", "--batch", "2", "--rounds", "1", "--steps", "1", "--warmup", "0",
                    "--check", "--allocator", allocator, "--memory-libs", "htaf", "--json", str(out)], check=True, capture_output=True, text=True, env=env, cwd=root)
    report = json.loads(out.read_text())
    machine = report["machine"]
    assert machine["allocator"] == allocator
    assert (machine["htaf_cpu_cache"], machine["thp_mem_alloc_enable"]) == (("on", "unset") if allocator == "htaf"
                                                                             else ("off", "1"))
    assert report["machine"]["transparent_hugepage"] in ("always", "madvise", "never", "unknown")
    libs = {row["library"] for row in report["results"]}
    assert "htaf" in libs
    assert all(row["ms_per_step"] > 0 for row in report["results"])
    assert all((row["peak_mib"] is not None) == (row["library"] == "htaf") for row in report["results"])
    assert all(row["page_faults_per_step"] >= 0 for row in report["results"])  # counted on Linux


#: a buffer of 64 MiB mapped afresh with mmap (neither glibc's nor PyTorch's allocation settings reach it): 16384
#: pages of 4 KiB, or 32 where transparent huge pages back it
FRESH_BYTES, PAGE = 64 * 2**20, 4096


def _touch_fresh_memory() -> None:
    import mmap

    buffer = mmap.mmap(-1, FRESH_BYTES)
    for offset in range(0, FRESH_BYTES, PAGE):
        buffer[offset] = 1
    buffer.close()


def _fewest_faults(bench) -> int:
    """The fewest faults a first touch of the buffer takes here: one per 2 MiB where huge pages may back it."""
    return FRESH_BYTES // 2**21 if bench._thp_mode() in ("always", "unknown") else FRESH_BYTES // PAGE // 2


def test_the_library_benchmark_counts_the_page_faults_of_fresh_memory(monkeypatch, benchmark_script):
    """The page-fault count the benchmark reports sees the first touch of freshly mapped memory, in the timed rounds
    and per step: a stand-in contestant whose step maps and writes a new 64 MiB buffer faults at every step, one that
    rewrites a buffer it keeps does not; the report's Markdown table shows the count, and a dash for reports measured
    before the benchmark counted."""
    bench = benchmark_script("bench_snn_libs")
    if bench._minor_faults() is None:
        pytest.skip("this OS does not count page faults")
    kept = bytearray(FRESH_BYTES)

    def trainer(lib, *args):
        if lib == "fresh":
            return _touch_fresh_memory

        def rewrite():
            for offset in range(0, FRESH_BYTES, PAGE):
                kept[offset] = 2
        return rewrite

    monkeypatch.setattr(bench, "trainer", trainer)
    timed = bench.time_steps(["fresh", "kept"], 1, 1, 1, torch.device("cpu"), rounds=3, steps=2, warmup=1)
    assert _fewest_faults(bench) <= timed["fresh"]["faults"] <= 2 * FRESH_BYTES // PAGE, timed
    assert timed["kept"]["faults"] < FRESH_BYTES // PAGE // 100 and timed["kept"]["ms"] > 0, timed

    counted = bench.markdown(htaf.benchmarks.load("snn_libs_cpu_xeon_faults_default")).splitlines()
    assert counted[2].endswith("| page faults / step |")
    assert counted[-1] == "| cpu | 32 | floor | 886.4 | 0.77x | - | 137990 |"
    before = bench.markdown(htaf.benchmarks.load("snn_libs_cpu_idle")).splitlines()
    assert before[4] == "| cpu | 4 | htaf | 107.4 | 1.00x | 296 | - |"


def test_warm_memory_leaves_out_what_the_process_pays_once(monkeypatch, benchmark_script):
    """``--memory-warm`` measures the training's own memory: a stand-in contestant whose first instance in a process
    fills a 64 MiB cache it keeps (as a JIT compiler does) and whose step writes a fresh 16 MiB buffer is charged the
    cache in the cold measurement, not in the warm one (a step of another instance first, its memory handed back)."""
    bench = benchmark_script("bench_snn_libs")
    if not bench._reset_peak_rss():
        pytest.skip("the RSS high-water mark cannot be reset here")
    kept = []  # the process's one-time cache: filled once, never freed

    def trainer(lib, *args):
        def step():
            if not kept:  # in the process's first step, as a JIT compiler's work
                kept.append(torch.ones(16 * 2**20))  # 64 MiB, written
            torch.ones(4 * 2**20).sum()  # 16 MiB, written and freed
        return step

    monkeypatch.setattr(bench, "trainer", trainer)
    warm = bench.peak_memory("stand-in", 1, 1, 1, torch.device("cpu"), warm=True)
    assert kept and warm < 40, warm
    kept.clear()
    cold = bench.peak_memory("stand-in", 1, 1, 1, torch.device("cpu"))
    assert cold >= 64, cold
