"""A caching allocator for PyTorch's CPU tensors: large buffers are kept for reuse, not handed back to the system.

On Linux, glibc maps every buffer of 32 MiB or more afresh from the kernel and unmaps it when it is freed (smaller
ones, up to a threshold that grows to 32 MiB, come from its heap and are reused). A training step that allocates such
buffers, e.g. a spiking network's stateless layers folded over all ``T * B`` images (at ``T = 32`` and ``B = 64`` each
convolution output of 32 channels at 28 x 28 is 205 MB), then pays a page fault for every 4 KiB page it writes, at
every step. PyTorch keeps freed memory on CUDA (its caching allocator) but has no such allocator for the CPU.

:func:`enable_cpu_cache` installs one into PyTorch (``c10::SetCPUAllocator``) for this process: a buffer of at least
``min_bytes`` (default 1 MiB), rounded up to 64 KiB, goes back into a pool when its tensor is freed, and the next
request of that rounded size takes it from there; smaller buffers are allocated as before. Steps that repeat the same
shapes, as training does, then reuse the same pages and take no page faults. The values computed are unchanged: only
where tensors live changes (the tests compare a training run's weights bit for bit). What it costs is memory: the pool
holds, for every buffer size, as many buffers as were ever in use at once, until :func:`empty_cpu_cache`.

The allocator is a small C++ file compiled once per PyTorch version with the system's C++ compiler (the same one
``torch.compile`` needs) into htaf's cache folder (``$HTAF_CACHE``, else the user cache folder such as
``~/.cache/htaf``; like PyTorch's own extension cache, a folder only its user can write), and loaded with :mod:`ctypes`; :func:`cpu_cache_available` says
whether that can work here. It applies to tensors allocated after the call; tensors allocated before keep their own
deallocation. It cannot be uninstalled in a running process: :func:`empty_cpu_cache` releases what it holds.

How much it saves is measured by ``benchmarks/bench_snn_libs.py --allocator htaf`` (every contestant under this
allocator; the results ``htaf/benchmarks/snn_libs_cpu_xeon_alloc_htaf*.json``, shown in the SNN chapter).

>>> import htaf.memory
>>> htaf.memory.cpu_cache_stats()["enabled"] in (True, False)
True
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import torch

from htaf._extras import cxx_compiler

__all__ = ["cpu_cache_available", "cpu_cache_stats", "empty_cpu_cache", "enable_cpu_cache"]

_SOURCE = r"""
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace {

constexpr size_t kRound = size_t(1) << 16;  // sizes are rounded up to 64 KiB

struct CachingCPUAllocator final : c10::Allocator {
  std::mutex mutex;
  std::unordered_map<size_t, std::vector<void*>> pool;  // free buffers by rounded size
  std::unordered_map<void*, size_t> live;               // buffers in use and their rounded size
  size_t min_bytes = size_t(1) << 20;
  int64_t in_use = 0, cached = 0, peak = 0, hits = 0, misses = 0;

  static void release(void* ptr);

  c10::DataPtr allocate(size_t n) override {
    if (n < min_bytes) {
      void* small = c10::alloc_cpu(n);
      c10::profiledCPUMemoryReporter().New(small, n);
      return {small, small, &release_small, c10::Device(c10::DeviceType::CPU)};
    }
    size_t size = (n + kRound - 1) / kRound * kRound;
    void* ptr = nullptr;
    {
      std::lock_guard<std::mutex> guard(mutex);
      auto found = pool.find(size);
      if (found != pool.end() && !found->second.empty()) {
        ptr = found->second.back();
        found->second.pop_back();
        cached -= int64_t(size);
        hits++;
      } else {
        misses++;
      }
    }
    if (ptr == nullptr) ptr = c10::alloc_cpu(size);  // outside the lock: it may map memory
    {
      std::lock_guard<std::mutex> guard(mutex);
      live[ptr] = size;
      in_use += int64_t(size);
      if (in_use + cached > peak) peak = in_use + cached;
    }
    c10::profiledCPUMemoryReporter().New(ptr, size);
    return {ptr, ptr, &release, c10::Device(c10::DeviceType::CPU)};
  }

  static void release_small(void* ptr) {
    c10::profiledCPUMemoryReporter().Delete(ptr);
    c10::free_cpu(ptr);
  }

  c10::DeleterFnPtr raw_deleter() const override { return &release; }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }
};

CachingCPUAllocator* instance() {
  static CachingCPUAllocator* allocator = new CachingCPUAllocator();  // never destroyed: tensors may outlive exit
  return allocator;
}

void CachingCPUAllocator::release(void* ptr) {
  if (ptr == nullptr) return;
  c10::profiledCPUMemoryReporter().Delete(ptr);
  CachingCPUAllocator* self = instance();
  std::lock_guard<std::mutex> guard(self->mutex);
  auto found = self->live.find(ptr);
  if (found == self->live.end()) {  // not one of the pool's (raw_deleter on a small buffer)
    c10::free_cpu(ptr);
    return;
  }
  size_t size = found->second;
  self->live.erase(found);
  self->in_use -= int64_t(size);
  self->pool[size].push_back(ptr);
  self->cached += int64_t(size);
}

}  // namespace

extern "C" {

void htaf_cpu_cache_install(int64_t min_bytes) {
  instance()->min_bytes = size_t(min_bytes);
  c10::SetCPUAllocator(instance(), /*priority=*/1);  // above the default allocator's 0
}

void htaf_cpu_cache_empty() {
  CachingCPUAllocator* self = instance();
  std::lock_guard<std::mutex> guard(self->mutex);
  for (auto& entry : self->pool)
    for (void* ptr : entry.second) c10::free_cpu(ptr);
  self->pool.clear();
  self->cached = 0;
}

void htaf_cpu_cache_stats(int64_t* out) {
  CachingCPUAllocator* self = instance();
  std::lock_guard<std::mutex> guard(self->mutex);
  out[0] = self->in_use;
  out[1] = self->cached;
  out[2] = self->peak;
  out[3] = self->hits;
  out[4] = self->misses;
  out[5] = int64_t(self->min_bytes);
}

}  // extern "C"
"""

_STATS = ("in_use_bytes", "cached_bytes", "peak_bytes", "hits", "misses", "min_bytes")
_LOCK = threading.Lock()
_LIBRARY: ctypes.CDLL | None = None
#: PyTorch's C++ ABI, which the compiled allocator must match
_CXX11_ABI = int(torch._C._GLIBCXX_USE_CXX11_ABI)


def cpu_cache_available() -> bool:
    """True where :func:`enable_cpu_cache` can work: Linux or macOS, PyTorch's C++ headers and a C++ compiler."""
    from torch.utils import cpp_extension

    return (sys.platform.startswith(("linux", "darwin")) and cxx_compiler() is not None
            and any(Path(p, "c10", "core", "CPUAllocator.h").is_file() for p in cpp_extension.include_paths()))


def _cache_folder() -> Path:
    import platformdirs

    return Path(os.environ.get("HTAF_CACHE") or platformdirs.user_cache_dir("htaf", appauthor=False))


def _check_own(path: Path) -> None:
    """Refuse to load code from ``path`` (the compiled library, or its folder) unless this user owns it and no one else
    can write it: a library planted there would run in every process that turns the cache on."""
    if not hasattr(os, "getuid"):
        return
    info = path.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise RuntimeError(f"htaf.memory: {path} is not this user's alone (owner uid {info.st_uid}, mode "
                           f"{info.st_mode & 0o777:o}); delete it, or point $HTAF_CACHE at a folder only you can write")


def _library_path() -> Path:
    """Where the compiled allocator for this PyTorch lives: named by the hash of its source, PyTorch's version and C++
    ABI."""
    tag = hashlib.sha256(f"{_SOURCE}{torch.__version__}{_CXX11_ABI}".encode()).hexdigest()
    return _cache_folder() / "cpu_cache" / f"htaf_cpu_cache_{tag[:16]}.so"


def _build() -> Path:
    """The compiled allocator for this PyTorch (:func:`_library_path`; compiled once, then reused), written under a
    temporary name and renamed, so concurrent processes never load a half-written one."""
    from torch.utils import cpp_extension

    library = _library_path()
    folder = library.parent
    if library.is_file():
        _check_own(folder)
        _check_own(library)
        return library
    compiler = cxx_compiler()
    if compiler is None or not cpu_cache_available():
        raise RuntimeError("htaf.memory.enable_cpu_cache needs a C++ compiler (g++ or clang++, or $CXX) and PyTorch's "
                           "C++ headers, on Linux or macOS; install one (e.g. apt-get install g++) or leave the cache "
                           "off")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    _check_own(folder)
    torch_lib = Path(torch.__file__).parent / "lib"
    with tempfile.TemporaryDirectory(dir=folder) as work:
        source, built = Path(work, "cpu_cache.cpp"), Path(work, library.name)
        source.write_text(_SOURCE)
        command = [compiler, "-O2", "-std=c++17", "-shared", "-fPIC", f"-D_GLIBCXX_USE_CXX11_ABI={_CXX11_ABI}",
                   *(f"-I{p}" for p in cpp_extension.include_paths()), str(source), f"-L{torch_lib}", "-lc10",
                   f"-Wl,-rpath,{torch_lib}", "-o", str(built)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"htaf.memory: compiling the CPU caching allocator failed ({compiler}):\n"
                               f"{done.stderr[-3000:]}")
        os.replace(built, library)
    return library


def enable_cpu_cache(min_bytes: int = 1 << 20) -> None:
    """Make PyTorch keep freed CPU buffers of at least ``min_bytes`` bytes (default 1 MiB) for reuse, in this process
    (see the module docstring). Compiles the allocator the first time (a few seconds). Calling it again changes
    ``min_bytes`` only."""
    global _LIBRARY
    if isinstance(min_bytes, bool) or not isinstance(min_bytes, int) or min_bytes < 1:
        raise ValueError(f"min_bytes must be a positive number of bytes, got {min_bytes!r}")
    with _LOCK:
        if _LIBRARY is None:
            library = ctypes.CDLL(str(_build()))
            library.htaf_cpu_cache_install.argtypes = [ctypes.c_int64]
            library.htaf_cpu_cache_stats.argtypes = [ctypes.POINTER(ctypes.c_int64)]
            _LIBRARY = library
        _LIBRARY.htaf_cpu_cache_install(min_bytes)


def empty_cpu_cache() -> None:
    """Hand the buffers the cache holds (freed, kept for reuse) back to the system; nothing to do when it is off."""
    if _LIBRARY is not None:
        _LIBRARY.htaf_cpu_cache_empty()


def cpu_cache_stats() -> dict[str, int | bool]:
    """``enabled``, and while enabled: ``in_use_bytes`` (pooled-size buffers held by tensors), ``cached_bytes`` (freed,
    kept for reuse), ``peak_bytes`` (the most of both at once), ``hits`` and ``misses`` (requests served from the pool
    or newly allocated) and ``min_bytes``."""
    if _LIBRARY is None:
        return {"enabled": False}
    values = (ctypes.c_int64 * len(_STATS))()
    _LIBRARY.htaf_cpu_cache_stats(values)
    return {"enabled": True, **dict(zip(_STATS, map(int, values)))}
