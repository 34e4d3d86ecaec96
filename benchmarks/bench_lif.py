"""Benchmark: the multi-step LIF of ``htaf.models.snn`` against a naive per-step Python loop.

Forward + backward time of

* ``lif``: one LIF layer on ``[T, B, N]`` currents. ``fused`` is :class:`htaf.models.snn.LIF` (one
  autograd node, hand-written adjoint); ``loop`` is the same recurrence in plain autograd ops
  (``backend="loop"``); ``naive`` calls a stateful single-step LIF module once per time step, the way
  step-by-step SNN code (snnTorch-style ``spk, mem = lif(x[t], mem)``) is usually written.
* ``fc`` / ``csnn``: a whole network. ``folded`` is :class:`htaf.models.snn.SpikingNet` (stateless layers
  run once on ``[T*B, ...]``, fused LIF); ``naive`` runs every layer once per time step with the naive
  single-step LIF cell.

Times are medians over repeats after warm-up; ratios are ``naive / ours`` (> 1: ours is faster).
Runs on the CPU, and on CUDA when present::

    python benchmarks/bench_lif.py            # full sizes
    python benchmarks/bench_lif.py --quick    # small sizes (seconds)
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
from torch import nn

from htaf import _lif
from htaf import functional as HF
from htaf.models import snn


class NaiveLIFCell(nn.Module):
    """Single-step LIF, state passed in and out: ``s, v = cell(x_t, v)`` (same dynamics as :class:`snn.LIF`)."""

    def __init__(self, lif: snn.LIF):
        super().__init__()
        self.lif = lif
        self.leak, self.gain = _lif._leak(lif.tau)
        if not lif.decay_input:
            self.gain = 1.0

    def forward(self, x: torch.Tensor, v: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        v = torch.zeros_like(x) if v is None else v
        h = self.leak * v + self.gain * x
        s = HF.spike(h - self.lif.threshold, self.lif.surrogate)
        r = s.detach() if self.lif.detach_reset else s
        v = h * (1.0 - r) if self.lif.reset == "hard" else h - self.lif.threshold * r
        return s, v


def naive_lif(cell: NaiveLIFCell, x: torch.Tensor) -> torch.Tensor:
    v, out = None, []
    for t in range(x.shape[0]):
        s, v = cell(x[t], v)
        out.append(s)
    return torch.stack(out)


def naive_network(model: snn.SpikingNet) -> Callable[[torch.Tensor], torch.Tensor]:
    """Per-step execution of ``model``: every layer called once per time step, LIF state carried by hand."""
    cells = {id(m): NaiveLIFCell(m) for m in model.modules() if isinstance(m, snn.LIF)}
    layers = list(model.body) + ([model.out_lif] if model.out_lif is not None else [])

    def forward(x: torch.Tensor) -> torch.Tensor:
        states: dict[int, torch.Tensor | None] = {key: None for key in cells}
        outputs = []
        for t in range(model.T):
            h = model.stem(x)  # direct encoding: the same input every step
            for layer in layers:
                if isinstance(layer, snn.LIF):
                    h, states[id(layer)] = cells[id(layer)](h, states[id(layer)])
                else:
                    h = layer.module(h)
            outputs.append(h)
        return torch.stack(outputs).mean(0)

    return forward


def timed(step: Callable[[], torch.Tensor], device: torch.device, repeats: int, warmup: int = 2) -> float:
    """Median seconds of ``step().sum().backward()``."""
    times = []
    for i in range(warmup + repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        step().float().sum().backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_lif(device: torch.device, T: int, batch: int, neurons: int, repeats: int) -> dict[str, float]:
    torch.manual_seed(0)
    x = (torch.randn(T, batch, neurons, device=device) * 1.5 + 0.5).requires_grad_()
    fused = snn.LIF("htaf", reset="hard")
    loop = snn.LIF("htaf", reset="hard", backend="loop")
    cell = NaiveLIFCell(fused)
    return {
        "fused": timed(lambda: fused(x), device, repeats),
        "loop": timed(lambda: loop(x), device, repeats),
        "naive": timed(lambda: naive_lif(cell, x), device, repeats),
    }


def bench_network(device: torch.device, arch: str, T: int, batch: int, repeats: int, channels: int) -> dict[str, float]:
    torch.manual_seed(0)
    if arch == "fc":
        model = snn.fc_snn(784, 10, (256, 256), T=T)
    else:
        model = snn.csnn(1, 10, 28, channels=channels, T=T, readout="potential")
    model = model.to(device)
    x = torch.randn(batch, 1, 28, 28, device=device)
    naive = naive_network(model)
    return {
        "folded": timed(lambda: model(x), device, repeats),
        "naive": timed(lambda: naive(x), device, repeats),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--devices", default="auto",
                        help="comma-separated devices to measure, e.g. 'cuda' (default: the CPU, and CUDA when present)")
    args = parser.parse_args()
    if args.devices == "auto":
        devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    else:
        devices = [torch.device(name) for name in args.devices.split(",")]
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}")
    print(f"{'device':6} {'case':28} {'ours ms':>9} {'loop ms':>9} {'naive ms':>9} {'naive/ours':>10}")
    for device in devices:
        cuda = device.type == "cuda"
        repeats = args.repeats or (5 if args.quick else 20 if cuda else 10)
        batch = 32 if args.quick else (256 if cuda else 64)
        for T in (4, 16) if args.quick else (4, 8, 16, 32):
            neurons = 128 * 16 * 16 if cuda else 4096
            r = bench_lif(device, T, batch, neurons, repeats)
            case = f"LIF T={T} [{batch}x{neurons}]"
            print(f"{device.type:6} {case:28} {1e3 * r['fused']:9.2f} {1e3 * r['loop']:9.2f} "
                  f"{1e3 * r['naive']:9.2f} {r['naive'] / r['fused']:10.2f}")
        channels = 128 if cuda else (8 if args.quick else 16)
        for arch in ("fc", "csnn"):
            r = bench_network(device, arch, 4, batch, repeats, channels)
            case = f"{arch} T=4 B={batch}" + (f" C={channels}" if arch == "csnn" else "")
            print(f"{device.type:6} {case:28} {1e3 * r['folded']:9.2f} {'':>9} "
                  f"{1e3 * r['naive']:9.2f} {r['naive'] / r['folded']:10.2f}")


if __name__ == "__main__":
    main()
