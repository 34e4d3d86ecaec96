"""Benchmark: one SNN training step in htaf, snnTorch and SpikingJelly on the same network.

The network is SpikingJelly's Fashion-MNIST CSNN (``spikingjelly.activation_based.examples.conv_fashion_mnist``):
``[Conv3x3(no bias) -> BN -> LIF -> MaxPool2] x 2 -> Flatten -> Linear(C*7*7 -> C*4*4, no bias) -> LIF ->
Linear(C*4*4 -> 10, no bias) -> LIF``, output firing rate (mean over ``T``), MSE against the one-hot labels,
Adam (lr 1e-3). Every library gets the same LIF neuron (tau 2, threshold 1, hard reset to 0), the same atan
surrogate (alpha 2) and the same weights; direct encoding (the image repeated ``T`` times). One step is
``zero_grad, forward, loss, backward, optimizer.step`` (and SpikingJelly's ``reset_net``).

Contestants:

* ``htaf``: :func:`htaf.models.snn.csnn` (stateless layers folded over ``[T*B]``; the first conv-BN runs once
  on ``[B]`` since its input is the same at every step; fused multi-step LIF).
* ``spikingjelly``: the example's ``CSNN`` with ``neuron.LIFNode(tau=2., surrogate_function=surrogate.ATan(),
  detach_reset=False)`` (SpikingJelly's default torch backend, multi-step mode: layers folded over ``[T*B]``).
* ``snntorch``: the snnTorch tutorial idiom, every layer called once per time step with ``snn.Leaky``
  (``beta=0.5, reset_mechanism="zero", spike_grad=surrogate.atan(alpha=2)``).
* ``snntorch_folded``: the stateless layers folded over ``[T*B]`` as in the other two and only ``snn.Leaky``
  looped over ``T``.
* ``*_hoisted``: the same three networks written the way a careful user writes them for static images: the
  first conv-BN runs once on ``[B]`` (its input is the same at every step), outside the time loop, and its
  output is repeated over ``T`` (``snntorch_hoisted``: per-step idiom, the first conv-BN before the loop;
  ``snntorch_folded_hoisted``: folded; ``spikingjelly_hoisted``: multi-step mode (``step_mode='m'``) with a
  single-step ``Conv2d -> BatchNorm2d`` stem whose output is broadcast over ``T``). Same function as htaf's
  (batch-norm statistics over ``B`` equal those over ``T`` identical copies).
* ``floor``: not a spiking library: htaf's network with every LIF replaced by the identity, i.e. the
  convolutions, batch norm, pooling, linear layers, loss and Adam alone (with the stem hoisted as in htaf): the
  cost of the layers every library shares, which the LIF recurrence adds to. ``ms(htaf) / ms(floor)`` is how far
  htaf's step is from it; not a strict bound on a CPU at long ``T``, where the measured ratio moves with the
  allocation setting and the load (it has measured below 1).

snnTorch's ``Leaky`` integrates ``U_t = beta U_{t-1} + I_t`` (no ``1/tau`` on the input) and detaches its
(one-step delayed) reset; the factor ``1/2`` is folded into the weights of the layer before every ``Leaky``
(BN affine or linear weight), so the forward pass computes the same function (``--check`` compares outputs).

Times: milliseconds per step, the median over interleaved rounds (every round times each contestant in turn),
after warm-up. Memory: on the CPU, the peak resident-set growth over a few training steps, measured in a fresh
subprocess per contestant (the RSS high-water mark ``VmHWM``, reset after building, minus the RSS before the
first step), so a contestant's one-time costs in its first step count too (for htaf, compiling its LIF kernels);
``--memory-warm`` adds ``peak_mib_warm``, measured the same way in a process that first ran one step of another
instance of the network and handed its memory back (the training's own memory, as CUDA's figure is); on CUDA,
``torch.cuda.max_memory_allocated`` during the steps minus the memory allocated before them. Page faults: the
median number of minor page faults per step in the timed rounds (``getrusage``'s ``ru_minflt``, every thread of the
process; mostly first touches of pages not yet mapped), the cost the allocation setting below moves.

Allocation (``--allocator``, Linux with glibc; the same for every contestant, recorded in the report with the
kernel's transparent-huge-page mode): ``default`` leaves it to glibc, which maps large buffers (32 MiB and more
once its threshold has grown, e.g. each ``[T*B, ...]`` tensor at long ``T``) afresh from the kernel and unmaps them
when freed, so the first write to each 4 KiB page takes a page fault, at every step; ``retain`` (the environment
variable ``GLIBC_TUNABLES`` set to ``glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4294967295``) serves every
buffer from glibc's heap and keeps freed memory, so later steps reuse pages already mapped; ``thp`` is PyTorch's
transparent-huge-page allocation (``THP_MEM_ALLOC_ENABLE=1``: buffers of 2 MB or more aligned to 2 MB and advised
as huge pages); ``htaf`` is :func:`htaf.memory.enable_cpu_cache` (the environment variable ``HTAF_CPU_CACHE=1``, read by
this script): PyTorch's CPU tensors of 1 MiB or more are kept, when freed, for the next request of that size, so later
steps reuse the same pages without the heap's fragmentation. glibc reads its tunables when a process starts and
PyTorch its variable at its first allocation, so the script restarts itself with the chosen setting alone (its memory
subprocesses inherit it); elsewhere than glibc the ``retain`` setting has no effect.

Needs only torch and htaf; the other libraries are measured when importable (``snntorch``; ``spikingjelly``
with ``loguru``). Examples::

    python benchmarks/bench_snn_libs.py                      # CPU (and CUDA when present), T = 4 and 16
    python benchmarks/bench_snn_libs.py --devices cpu --T 4 --rounds 5 --json out.json

The results the book and the README quote are package data, read with :func:`htaf.benchmarks.load`; a new
measurement goes there directly (``--json htaf/benchmarks/snn_libs_<machine>.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Callable, TypedDict

import torch
import torch.nn.functional as F
from torch import nn

LIBS = ("htaf", "snntorch", "snntorch_folded", "spikingjelly", "snntorch_hoisted", "snntorch_folded_hoisted",
        "spikingjelly_hoisted", "floor")
NUM_CLASSES = 10


# --------------------------------------------------------------------------------------------
# The three networks (built from one set of weights)
# --------------------------------------------------------------------------------------------


def htaf_net(T: int, channels: int, backend: str | None = None) -> nn.Module:
    from htaf import surrogates
    from htaf.models import snn

    lif = dict(surrogate=surrogates.get("atan", alpha=2.0), tau=2.0, threshold=1.0, reset="hard")
    if backend is not None:
        lif["backend"] = backend
    torch.manual_seed(0)
    return snn.csnn(1, NUM_CLASSES, 28, channels=channels, T=T, readout="rate", **lif)


def floor_net(T: int, channels: int) -> nn.Module:
    """htaf's network with every LIF replaced by the identity: the cost of the non-spiking layers alone."""
    from htaf.models import snn

    net = htaf_net(T, channels)
    for parent in net.modules():
        for name, child in list(parent.named_children()):
            if isinstance(child, snn.LIF):
                setattr(parent, name, nn.Identity())
    return net


def _reference_weights(T: int, channels: int) -> list[torch.Tensor]:
    """conv1, bn1 (weight, bias), conv2, bn2 (weight, bias), fc1, fc2 of the htaf network."""
    net = htaf_net(T, channels)
    conv1, bn1 = net.stem[0], net.stem[1]
    conv2, bn2 = net.body[2].module[0], net.body[2].module[1]
    fc1, fc2 = net.body[5].module[1], net.body[7].module
    return [p.detach().clone() for p in (conv1.weight, bn1.weight, bn1.bias, conv2.weight, bn2.weight, bn2.bias,
                                         fc1.weight, fc2.weight)]


def _load(modules: list[nn.Module], weights: list[torch.Tensor], scale: float = 1.0) -> None:
    """Copy ``weights`` into conv1, bn1, conv2, bn2, fc1, fc2; ``scale`` multiplies every layer feeding a neuron."""
    conv1, bn1, conv2, bn2, fc1, fc2 = modules
    w = iter(weights)
    with torch.no_grad():
        conv1.weight.copy_(next(w))
        bn1.weight.copy_(next(w) * scale)
        bn1.bias.copy_(next(w) * scale)
        conv2.weight.copy_(next(w))
        bn2.weight.copy_(next(w) * scale)
        bn2.bias.copy_(next(w) * scale)
        fc1.weight.copy_(next(w) * scale)
        fc2.weight.copy_(next(w) * scale)


class SJNet(nn.Module):
    """SpikingJelly's example CSNN with LIF neurons (the example itself uses IF neurons)."""

    def __init__(self, T: int, channels: int, hoisted: bool = False):
        super().__init__()
        from spikingjelly.activation_based import functional, layer, neuron, surrogate

        def lif():
            return neuron.LIFNode(tau=2.0, v_threshold=1.0, v_reset=0.0, detach_reset=False,
                                  surrogate_function=surrogate.ATan(alpha=2.0))

        self.T = T
        c = channels
        self.conv_fc = nn.Sequential(
            layer.Conv2d(1, c, kernel_size=3, padding=1, bias=False), layer.BatchNorm2d(c), lif(),
            layer.MaxPool2d(2, 2),
            layer.Conv2d(c, c, kernel_size=3, padding=1, bias=False), layer.BatchNorm2d(c), lif(),
            layer.MaxPool2d(2, 2),
            layer.Flatten(),
            layer.Linear(c * 7 * 7, c * 4 * 4, bias=False), lif(),
            layer.Linear(c * 4 * 4, NUM_CLASSES, bias=False), lif(),
        )
        functional.set_step_mode(self, step_mode="m")
        s = self.conv_fc
        _load([s[0], s[1], s[4], s[5], s[9], s[11]], _reference_weights(T, channels))
        self._reset = functional.reset_net
        self.hoisted = hoisted
        if hoisted:  # the static stem once on [B] (single-step layers), the rest multi-step on [T, B, ...]
            self.stem = nn.Sequential(s[0], s[1])
            functional.set_step_mode(self.stem, step_mode="s")
            self.conv_fc = s[2:]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.hoisted:
            h = self.stem(x)
            return self.conv_fc(h.unsqueeze(0).expand(self.T, *h.shape)).mean(0)
        x_seq = x.unsqueeze(0).expand(self.T, -1, -1, -1, -1)
        return self.conv_fc(x_seq).mean(0)

    def after_step(self) -> None:
        self._reset(self)


class SnnTorchNet(nn.Module):
    """The same CSNN in snnTorch: per-step layers (tutorial idiom) or folded stateless layers."""

    def __init__(self, T: int, channels: int, folded: bool, hoisted: bool = False):
        super().__init__()
        import snntorch
        from snntorch import surrogate

        def leaky():
            return snntorch.Leaky(beta=0.5, threshold=1.0, reset_mechanism="zero",
                                  spike_grad=surrogate.atan(alpha=2.0))

        self.T, self.folded, self.hoisted = T, folded, hoisted
        c = channels
        self.conv1 = nn.Conv2d(1, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.lif1 = leaky()
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.lif2 = leaky()
        self.fc1 = nn.Linear(c * 7 * 7, c * 4 * 4, bias=False)
        self.lif3 = leaky()
        self.fc2 = nn.Linear(c * 4 * 4, NUM_CLASSES, bias=False)
        self.lif4 = leaky()
        # snnTorch integrates U = beta U + I, the others H = V/2 + X/2: the 1/2 goes into the weights
        _load([self.conv1, self.bn1, self.conv2, self.bn2, self.fc1, self.fc2], _reference_weights(T, channels), 0.5)

    @staticmethod
    def _loop(lif, currents: torch.Tensor) -> torch.Tensor:
        mem = lif.reset_mem()
        out = []
        for cur in currents:
            spk, mem = lif(cur, mem)
            out.append(spk)
        return torch.stack(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.folded:
            T, B = self.T, x.shape[0]
            if self.hoisted:  # the first conv-BN once on [B], repeated over T
                h = self.bn1(self.conv1(x))
                s = self._loop(self.lif1, h.unsqueeze(0).expand(T, *h.shape)).flatten(0, 1)
            else:
                h = self.bn1(self.conv1(x.unsqueeze(0).expand(T, *x.shape).flatten(0, 1)))
                s = self._loop(self.lif1, h.unflatten(0, (T, B))).flatten(0, 1)
            h = self.bn2(self.conv2(F.max_pool2d(s, 2)))
            s = self._loop(self.lif2, h.unflatten(0, (T, B))).flatten(0, 1)
            h = self.fc1(F.max_pool2d(s, 2).flatten(1))
            s = self._loop(self.lif3, h.unflatten(0, (T, B))).flatten(0, 1)
            h = self.fc2(s)
            return self._loop(self.lif4, h.unflatten(0, (T, B))).mean(0)
        mem1, mem2, mem3, mem4 = (lif.reset_mem() for lif in (self.lif1, self.lif2, self.lif3, self.lif4))
        out = []
        stem = self.bn1(self.conv1(x)) if self.hoisted else None  # hoisted: once, before the time loop
        for _ in range(self.T):
            s, mem1 = self.lif1(self.bn1(self.conv1(x)) if stem is None else stem, mem1)
            s, mem2 = self.lif2(self.bn2(self.conv2(F.max_pool2d(s, 2))), mem2)
            s, mem3 = self.lif3(self.fc1(F.max_pool2d(s, 2).flatten(1)), mem3)
            s, mem4 = self.lif4(self.fc2(s), mem4)
            out.append(s)
        return torch.stack(out).mean(0)


def build(lib: str, T: int, channels: int, device: torch.device) -> nn.Module:
    if lib == "htaf":
        return htaf_net(T, channels).to(device)
    if lib == "floor":
        return floor_net(T, channels).to(device)
    if lib in ("spikingjelly", "spikingjelly_hoisted"):
        return SJNet(T, channels, hoisted=lib.endswith("_hoisted")).to(device)
    if lib in ("snntorch", "snntorch_folded", "snntorch_hoisted", "snntorch_folded_hoisted"):
        return SnnTorchNet(T, channels, folded="folded" in lib, hoisted=lib.endswith("_hoisted")).to(device)
    raise ValueError(f"unknown library {lib!r}; choose from {', '.join(LIBS)}")


def available(lib: str) -> str | None:
    """The library's version, or None when it cannot be imported."""
    try:
        if lib in ("htaf", "floor"):
            import htaf as mod
        elif lib.startswith("snntorch"):
            import snntorch as mod
        else:
            import spikingjelly.activation_based.neuron  # noqa: F401  (needs loguru)
            from importlib.metadata import version
            return version("spikingjelly")
    except Exception:
        return None
    return getattr(mod, "__version__", "?")


def trainer(lib: str, T: int, channels: int, batch: int, device: torch.device) -> Callable[[], None]:
    """A closure running one training step of ``lib``'s network on a fixed batch."""
    model = build(lib, T, channels, device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(batch, 1, 28, 28, generator=gen).to(device)
    target = F.one_hot(torch.randint(0, NUM_CLASSES, (batch,), generator=gen), NUM_CLASSES).float().to(device)
    after = getattr(model, "after_step", None)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(model(x), target)
        loss.backward()
        opt.step()
        if after is not None:
            after()

    return step


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _minor_faults() -> int | None:
    """This process's minor page faults so far (every thread's; ``None`` where the OS does not count them): mostly
    first touches of pages not yet mapped, e.g. of a freshly mapped buffer."""
    try:
        import resource
    except ImportError:  # not on Unix
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


class Timed(TypedDict):
    """One contestant's timing: the median milliseconds and minor page faults per step."""

    ms: float
    faults: float | None


def time_steps(libs: list[str], T: int, channels: int, batch: int, device: torch.device,
               rounds: int, steps: int, warmup: int) -> dict[str, Timed]:
    """Per library, over ``rounds`` interleaved rounds of ``steps`` steps: the median ``ms`` per step and the median
    minor page ``faults`` per step (``None`` where the OS does not count them)."""
    steppers = {lib: trainer(lib, T, channels, batch, device) for lib in libs}
    for step in steppers.values():
        for _ in range(warmup):
            step()
    _sync(device)
    samples: dict[str, list[float]] = {lib: [] for lib in libs}
    faults: dict[str, list[float]] = {lib: [] for lib in libs}
    for r in range(rounds):
        order = libs if r % 2 == 0 else libs[::-1]
        for lib in order:
            step = steppers[lib]
            _sync(device)
            before = _minor_faults()
            start = time.perf_counter()
            for _ in range(steps):
                step()
            _sync(device)
            samples[lib].append(1e3 * (time.perf_counter() - start) / steps)
            after = _minor_faults()
            if before is not None and after is not None:
                faults[lib].append((after - before) / steps)
    return {lib: Timed(ms=statistics.median(samples[lib]),
                       faults=statistics.median(faults[lib]) if faults[lib] else None) for lib in libs}


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def _reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark (VmHWM) of this process; False where Linux does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _hand_back(device: torch.device) -> None:
    """Give the memory of freed tensors back: to htaf's CPU cache's owner (the system) when it is on, glibc's free heap
    memory to the kernel (``malloc_trim``), CUDA's cached blocks to the driver."""
    import gc

    gc.collect()
    memory = sys.modules.get("htaf.memory")
    if memory is not None:
        memory.empty_cpu_cache()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def peak_memory(lib: str, T: int, channels: int, batch: int, device: torch.device, steps: int = 3,
                warm: bool = False) -> float:
    """Peak memory growth (MiB) over ``steps`` training steps, in this (fresh) process. ``warm``: first one step of
    another instance of the same network at the same size, whose memory is then handed back (:func:`_hand_back`), so
    that what the process pays once (imports, JIT compilation such as htaf's compiled LIF kernels, library caches) is
    not counted: the memory the training itself needs."""
    if warm:
        first = trainer(lib, T, channels, batch, device)
        first()
        del first
        _hand_back(device)
    step = trainer(lib, T, channels, batch, device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        for _ in range(steps):
            step()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    # CPU: the resident-set high-water mark (VmHWM, reset after building) minus the RSS before the steps.
    # (ru_maxrss is no use: it cannot be reset and a child started by exec inherits its parent's.)
    base = _status_bytes("VmRSS")
    if not _reset_peak_rss():
        raise RuntimeError("cannot reset the RSS high-water mark (/proc/self/clear_refs)")
    for _ in range(steps):
        step()
    return (_status_bytes("VmHWM") - base) / 2**20


def memory_in_subprocess(lib: str, T: int, channels: int, batch: int, device: str, threads: int,
                         warm: bool = False) -> float | None:
    cmd = [sys.executable, os.path.abspath(__file__), "--_memory", lib, *(["--_memory-warm"] if warm else []),
           "--T", str(T), "--channels", str(channels),
           "--batch", str(batch), "--devices", device, "--threads", str(threads)]
    env = dict(os.environ)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        print(f"  memory of {lib} failed: {out.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return float(out.stdout.strip().splitlines()[-1])


def _first_conv(model: nn.Module) -> nn.Conv2d:
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d) and m.in_channels == 1)


def check_same_function(T: int, channels: int, batch: int, libs: list[str]) -> dict[str, float]:
    """Relative difference of each library's first-conv weight gradient (MSE loss, one batch) from htaf's.

    The gradient passes through every layer and every surrogate, so it is a sharp test of "same network":
    SpikingJelly's must agree with htaf's to float rounding. snnTorch's differs by design: its ``Leaky``
    detaches the reset, sees inputs scaled by 1/2 (folded into its weights) and, per step, normalises the
    second conv per time step.
    """
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(batch, 1, 28, 28, generator=gen) * 3
    target = F.one_hot(torch.randint(0, NUM_CLASSES, (batch,), generator=gen), NUM_CLASSES).float()

    def grad(lib):
        model = build(lib, T, channels, torch.device("cpu")).train()
        F.mse_loss(model(x), target).backward()
        return _first_conv(model).weight.grad

    ref = grad("htaf")
    return {lib: float((grad(lib) - ref).norm() / ref.norm()) for lib in libs if lib not in ("htaf", "floor")}


#: ``--allocator`` choices: the environment each sets (read by glibc and PyTorch when a process starts)
ALLOCATORS = {"default": {}, "retain": {"GLIBC_TUNABLES": "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4294967295"},
              "thp": {"THP_MEM_ALLOC_ENABLE": "1"}, "htaf": {"HTAF_CPU_CACHE": "1"}}


_ALLOCATOR_KEYS = sorted({key for env in ALLOCATORS.values() for key in env})


def _allocator() -> str:
    """The ``--allocator`` choice this process runs with: the one whose settings its environment holds exactly
    (``default``: none of them set), else ``custom``."""
    current = {key: os.environ[key] for key in _ALLOCATOR_KEYS if key in os.environ}
    return next((name for name, env in ALLOCATORS.items() if env == current), "custom")


def _thp_mode() -> str:
    """The kernel's transparent-huge-page mode (``always``, ``madvise`` or ``never``), or ``unknown``."""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return f.read().split("[", 1)[1].split("]", 1)[0]
    except (OSError, IndexError):
        return "unknown"


def _htaf_cpu_cache() -> str:
    """``on`` when htaf's caching allocator serves this process (``--allocator htaf``), else ``off``."""
    memory = sys.modules.get("htaf.memory")
    return "on" if memory is not None and memory.cpu_cache_stats()["enabled"] else "off"


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {"cpu": cpu, "python": platform.python_version(), "torch": torch.__version__,
            "threads": str(torch.get_num_threads()),
            "allocator": _allocator(), "glibc_tunables": os.environ.get("GLIBC_TUNABLES", "unset"),
            "thp_mem_alloc_enable": os.environ.get("THP_MEM_ALLOC_ENABLE", "unset"),
            "transparent_hugepage": _thp_mode(), "htaf_cpu_cache": _htaf_cpu_cache()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    for lib in ("htaf", "snntorch", "spikingjelly"):
        info[lib] = available(lib) or "missing"
    return info


def markdown(report: dict) -> str:
    """The results of a ``--json`` report as a Markdown table (one row per device, T and library)."""
    m, c = report["machine"], report["config"]
    head = (f"{m['cpu']}" + (f", {m['gpu']}" if "gpu" in m else "") + f"; {c['threads']} CPU thread(s); "
            f"python {m['python']}, torch {m['torch']}, snnTorch {m['snntorch']}, SpikingJelly {m['spikingjelly']}; "
            f"C={c['channels']}, batch {c['batch']}, median of {c['rounds']} interleaved rounds")
    lines = [head, "", "| device | T | library | ms / step | htaf faster by | peak memory (MiB) | page faults / step |",
             "|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        mem = "-" if r["peak_mib"] is None else f"{r['peak_mib']:.0f}"
        if r.get("peak_mib_warm") is not None:  # --memory-warm
            mem += f" ({r['peak_mib_warm']:.0f} warm)"
        counted = r.get("page_faults_per_step")  # reports measured before the count have none
        faults_s = "-" if counted is None else f"{counted:.0f}"
        lines.append(f"| {r['device']} | {r['T']} | {r['library']} | {r['ms_per_step']:.1f} | "
                     f"{r['htaf_speedup']:.2f}x | {mem} | {faults_s} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", default="auto", help="comma-separated, e.g. cpu,cuda (default: cpu, and cuda when present)")
    parser.add_argument("--T", default="4,16", help="time steps, comma-separated")
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--libs", default=",".join(LIBS))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=3, help="steps per round")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--memory-libs", default=None, metavar="LIBS",
                        help="measure memory for these contestants only, comma-separated (default: every one; each "
                             "measurement is a fresh subprocess, which pays the imports again)")
    parser.add_argument("--memory-warm", action="store_true",
                        help="also measure each contestant's memory after the process's one-time costs (a step of "
                             "another instance of the network first, its memory handed back): peak_mib_warm")
    parser.add_argument("--allocator", choices=sorted(ALLOCATORS), default=None,
                        help="CPU allocation for every contestant: default (glibc's), retain (freed memory kept and "
                             "reused after the first step), thp (PyTorch's transparent huge pages) or htaf "
                             "(htaf.memory's caching allocator: freed buffers of 1 MiB or more kept for reuse); "
                             "the script restarts itself with it set (default: as this process was started)")
    parser.add_argument("--check", action="store_true", help="compare the networks' outputs first")
    parser.add_argument("--json", default=None, help="write the results to this file (the results the book quotes: "
                        "htaf/benchmarks/<name>.json, read by htaf.benchmarks.load)")
    parser.add_argument("--markdown", default=None, metavar="JSON", help="print a --json report as a Markdown table")
    parser.add_argument("--_memory", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--_memory-warm", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.allocator is not None and _allocator() != args.allocator:
        # glibc reads its tunables when the process starts and PyTorch its variable at the first allocation: restart
        # (with the interpreter's own options) under the chosen settings alone; the memory subprocesses inherit them
        env = {k: v for k, v in os.environ.items() if k not in _ALLOCATOR_KEYS}
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], {**env, **ALLOCATORS[args.allocator]})
    if os.environ.get("HTAF_CPU_CACHE") == "1":  # --allocator htaf: before any contestant allocates
        import htaf.memory

        htaf.memory.enable_cpu_cache()
    if args.markdown:
        with open(args.markdown) as f:
            print(markdown(json.load(f)))
        return
    torch.set_num_threads(args.threads)

    if args._memory:
        print(peak_memory(args._memory, int(args.T), args.channels, args.batch, torch.device(args.devices),
                          warm=args._memory_warm))
        return

    if args.devices == "auto":
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    else:
        devices = args.devices.split(",")
    libs = [lib for lib in args.libs.split(",") if available(lib)]
    missing = [lib for lib in args.libs.split(",") if lib not in libs]
    memory_libs = libs if args.memory_libs is None else args.memory_libs.split(",")
    unknown = sorted(set(memory_libs) - set(args.libs.split(",")))
    if unknown:
        parser.error(f"--memory-libs names contestants that --libs does not: {', '.join(unknown)}")
    info = machine()
    print(" ".join(f"{k} {v};" for k, v in info.items()))
    if missing:
        print(f"not installed, skipped: {', '.join(missing)}")
    Ts = [int(t) for t in args.T.split(",")]
    if args.check:
        for T in Ts:
            print(f"T={T}: |conv1 grad - htaf's| / |htaf's| = {check_same_function(T, args.channels, 8, libs)}")

    load_before = os.getloadavg()
    rows = []
    print(f"{'device':6} {'T':>3} {'library':16} {'ms/step':>9} {'htaf speed-up':>13} {'peak MiB':>9} {'faults/step':>11}")
    for device in devices:
        dev = torch.device(device)
        for T in Ts:
            timed = time_steps(libs, T, args.channels, args.batch, dev, args.rounds, args.steps, args.warmup)
            ms = {lib: timed[lib]["ms"] for lib in libs}
            for lib in libs:
                measured = not args.no_memory and lib in memory_libs
                mem = memory_in_subprocess(lib, T, args.channels, args.batch, device, args.threads) if measured else None
                ratio = ms[lib] / ms["htaf"] if "htaf" in ms else float("nan")
                rows.append({"device": device, "T": T, "library": lib, "ms_per_step": ms[lib],
                             "htaf_speedup": ratio, "peak_mib": mem, "page_faults_per_step": timed[lib]["faults"]})
                if args.memory_warm:
                    rows[-1]["peak_mib_warm"] = memory_in_subprocess(
                        lib, T, args.channels, args.batch, device, args.threads, warm=True) if measured else None
                mem_s = f"{mem:9.1f}" if mem is not None else f"{'-':>9}"
                if rows[-1].get("peak_mib_warm") is not None:
                    mem_s += f" ({rows[-1]['peak_mib_warm']:.0f} warm)"
                counted = timed[lib]["faults"]
                faults_s = f"{counted:11.0f}" if counted is not None else f"{'-':>11}"
                print(f"{device:6} {T:3d} {lib:16} {ms[lib]:9.2f} {ratio:12.2f}x {mem_s} {faults_s}", flush=True)
    load_after = os.getloadavg()
    print(f"load average (1, 5, 15 min) before: {load_before}, after: {load_after}; cores: {os.cpu_count()}")
    if args.json:
        info = {**info, "cores": str(os.cpu_count()),
                "load_average_before": " ".join(f"{v:.2f}" for v in load_before),
                "load_average_after": " ".join(f"{v:.2f}" for v in load_after)}
        with open(args.json, "w") as f:
            json.dump({"machine": info, "config": {"channels": args.channels, "batch": args.batch,
                                                   "threads": args.threads, "rounds": args.rounds,
                                                   "steps": args.steps, "warmup": args.warmup},
                       "results": rows}, f, indent=2)


if __name__ == "__main__":
    main()
