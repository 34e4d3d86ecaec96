"""Forward+backward time and memory of HTAF against ``torch.sigmoid`` and the naive autograd composition.

Usage::

    python benchmarks/bench_htaf.py                 # 10^7 float32 elements, CPU (and CUDA when present)
    python benchmarks/bench_htaf.py --numel 1000000 --no-compile

For every variant it reports the median forward+backward time (``torch.utils.benchmark``), the ratio to
``torch.sigmoid``, the bytes autograd saves for backward (counted with saved-tensor hooks; eager only),
and the peak memory of one forward+backward (CUDA allocator statistics; on CPU the peak resident-set
growth of a fresh subprocess, eager only). Variants:

* ``sigmoid``: ``torch.sigmoid`` (the reference: one fused kernel each way);
* ``htaf``: :func:`htaf.functional.htaf` (custom autograd function, eager kernels);
* ``naive``: ``torch.sigmoid(a * torch.tanh(b * x))`` differentiated by autograd;
* ``sigmoid+compile`` / ``htaf+compile``: the same under ``torch.compile`` (inductor fuses each pass into one kernel).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys

import torch
import torch.utils.benchmark as tbench

import htaf

ALPHA, BETA = 4.0, 1.0


def variants(compile_: bool) -> dict:
    table = {
        "sigmoid": torch.sigmoid,
        "htaf": lambda x: htaf.functional.htaf(x, ALPHA, BETA),
        "naive": lambda x: torch.sigmoid(ALPHA * torch.tanh(BETA * x)),
    }
    if compile_:
        table["sigmoid+compile"] = torch.compile(torch.sigmoid, fullgraph=True)
        table["htaf+compile"] = torch.compile(table["htaf"], fullgraph=True)
    return table


def forward_backward(fn, x, grad):
    x.grad = None
    fn(x).backward(grad)


def saved_bytes(fn, x) -> int:
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(x)
    return total


def cuda_peak(fn, x, grad) -> int:
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    forward_backward(fn, x, grad)
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base


def cpu_peak(name: str, numel: int) -> int:
    """Peak RSS growth of one forward+backward of ``name`` in a fresh process (bytes).

    Tensors of 10^7 floats are larger than glibc's mmap threshold, so each is mapped on allocation and
    returned on free: the high-water mark of the resident set then tracks the peak of live tensors.
    Compiled variants are not measured this way (compilation itself raises the high-water mark).
    """
    command = [sys.executable, __file__, "--peak-of", name, "--numel", str(numel), "--no-compile"]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


def high_water_mark() -> int:
    """This process's peak resident set in bytes (``VmHWM``: unlike ``ru_maxrss`` it is not inherited from the parent)."""
    with open("/proc/self/status") as fh:
        line = next(line for line in fh if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def measure_peak_here(name: str, numel: int) -> int:
    fn = variants(False)[name]
    x = torch.randn(numel, requires_grad=True)
    grad = torch.ones(numel)
    before = high_water_mark()
    forward_backward(fn, x, grad)
    return max(high_water_mark() - before, 0)


def run(device: str, numel: int, compile_: bool, min_run_time: float, peak_of: set[str] | None = None) -> list[dict]:
    """Time every variant on ``device``; its peak memory too, for the variants in ``peak_of`` (``None``: all)."""
    x = torch.randn(numel, device=device, requires_grad=True)
    grad = torch.ones(numel, device=device)
    rows = []
    for name, fn in variants(compile_).items():
        forward_backward(fn, x, grad)  # warm-up / compile
        timer = tbench.Timer("forward_backward(fn, x, grad)",
                             globals={"forward_backward": forward_backward, "fn": fn, "x": x, "grad": grad})
        seconds = timer.blocked_autorange(min_run_time=min_run_time).median
        compiled = "compile" in name
        if peak_of is not None and name not in peak_of:
            peak = None
        elif device == "cuda":
            peak = cuda_peak(fn, x, grad)
        else:
            peak = None if compiled else cpu_peak(name, numel)
        rows.append({"device": device, "variant": name, "ms": seconds * 1e3,
                     "saved_MB": None if compiled else saved_bytes(fn, x) / 2**20,
                     "peak_MB": None if peak is None else peak / 2**20})
    reference = {r["variant"]: r["ms"] for r in rows}
    for r in rows:
        base = reference["sigmoid+compile"] if "compile" in r["variant"] else reference["sigmoid"]
        r["x_sigmoid"] = r["ms"] / base
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numel", type=int, default=10**7)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variants")
    parser.add_argument("--min-run-time", type=float, default=2.0, help="seconds of timing per variant")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--devices", default="auto",
                        help="comma-separated devices to measure, e.g. 'cuda' (default: the CPU, and CUDA when present)")
    parser.add_argument("--peak-variants",
                        help="comma-separated variants whose peak memory to measure (default: all; on a CPU each one "
                             "costs a fresh process)")
    parser.add_argument("--peak-of", help=argparse.SUPPRESS)  # internal: one CPU peak-memory measurement
    args = parser.parse_args(argv)
    if args.peak_of:
        print(measure_peak_here(args.peak_of, args.numel))
        return

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) if args.devices == "auto" else args.devices.split(",")
    peak_of = set(args.peak_variants.split(",")) if args.peak_variants else None
    rows = [r for d in devices for r in run(d, args.numel, not args.no_compile, args.min_run_time, peak_of)]
    print(f"HTAF benchmark: {args.numel:,} float32 elements, forward+backward; torch {torch.__version__}, "
          f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
          + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""))
    print(f"{'device':<6} {'variant':<16} {'ms':>9} {'x sigmoid':>10} {'saved MB':>9} {'peak MB':>9}")
    for r in rows:
        saved, peak = (f"{v:9.1f}" if v is not None else f"{'-':>9}" for v in (r["saved_MB"], r["peak_MB"]))
        print(f"{r['device']:<6} {r['variant']:<16} {r['ms']:9.2f} {r['x_sigmoid']:10.2f} {saved} {peak}")
    print("(x sigmoid: eager variants against eager torch.sigmoid, compiled ones against compiled torch.sigmoid)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
