"""htaf.memory: the CPU caching allocator keeps freed large buffers for reuse, changes no computed value, and refuses
what it cannot do with a message that says why. The checks that turn it on run in a fresh process: installing the
allocator is for the life of a process, and the pytest worker's other tests must keep PyTorch's own."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

needs_compiler = pytest.mark.skipif("not __import__('htaf.memory').memory.cpu_cache_available()",
                                    reason="the CPU caching allocator needs a C++ compiler and PyTorch's headers")


def _run(code: str) -> dict:
    """The JSON the last line of ``code``'s output holds, run in a fresh Python (the run's htaf cache folder:
    tests/conftest.py)."""
    import os

    env = {key: os.environ[key] for key in ("HTAF_CACHE", "OMP_NUM_THREADS", "PATH")}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_stats_say_off_until_enabled():
    import htaf.memory

    assert htaf.memory.cpu_cache_stats() == {"enabled": False}
    htaf.memory.empty_cpu_cache()  # nothing to release: no error


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "1"])
def test_min_bytes_must_be_a_positive_integer(bad):
    import htaf.memory

    with pytest.raises(ValueError, match="min_bytes must be a positive number of bytes"):
        htaf.memory.enable_cpu_cache(bad)


@needs_compiler
def test_the_cache_reuses_freed_large_buffers_without_page_faults_and_changes_no_value():
    """In one fresh process: a small convolutional network trained for three steps without the cache, then with it,
    ends with the same weights bit for bit (the cache moves where tensors live, never what they hold); a freed 64 MiB
    buffer comes back for the next request of its size without a page fault (glibc maps it afresh each time: 16 384
    faults), a small one is left to glibc, and emptying the cache releases what it holds."""
    out = _run("""
        import hashlib, json, resource, torch, htaf.memory
        def faults():
            return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        def fill(n):
            t = torch.empty(n)
            t.fill_(1.0)
            return t.data_ptr()
        def train():
            torch.manual_seed(0)
            net = torch.nn.Sequential(torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.BatchNorm2d(16),
                                      torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(16 * 28 * 28, 10))
            opt = torch.optim.Adam(net.parameters(), lr=1e-3)
            x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
            for _ in range(3):
                opt.zero_grad()
                torch.nn.functional.cross_entropy(net(x), y).backward()
                opt.step()
            return hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in net.parameters())).hexdigest()
        n = 16 << 20  # 64 MiB of float32
        plain_weights = train()
        fill(n); before = faults(); fill(n); plain = faults() - before
        htaf.memory.enable_cpu_cache(min_bytes=4096)
        cached_weights = train()
        htaf.memory.enable_cpu_cache()  # again: only min_bytes changes (1 MiB)
        trained = htaf.memory.cpu_cache_stats()
        first = fill(n); before = faults(); second = fill(n); cached = faults() - before
        fill(1000)  # below min_bytes: not pooled
        stats = htaf.memory.cpu_cache_stats()
        htaf.memory.empty_cpu_cache()
        print(json.dumps({"same_weights": plain_weights == cached_weights, "trained": trained, "plain": plain,
                          "cached": cached, "same_buffer": first == second, "stats": stats,
                          "emptied": htaf.memory.cpu_cache_stats()}))
    """)
    assert out["same_weights"] and out["trained"]["hits"] > 0 and out["trained"]["min_bytes"] == 1 << 20, out
    assert out["plain"] > 10_000, out  # 16 384 pages of 4 KiB, each written for the first time
    assert out["cached"] < 100 and out["same_buffer"], out
    stats, trained = out["stats"], out["trained"]
    assert stats["hits"] == trained["hits"] + 1 and stats["misses"] == trained["misses"] + 1, (stats, trained)
    assert stats["in_use_bytes"] == 0 and stats["cached_bytes"] - trained["cached_bytes"] == 64 << 20, stats
    assert out["emptied"]["cached_bytes"] == 0 and out["emptied"]["peak_bytes"] == stats["peak_bytes"]


def test_a_missing_compiler_is_one_clear_error(monkeypatch, tmp_path):
    import htaf.memory

    monkeypatch.setenv("HTAF_CACHE", str(tmp_path))
    monkeypatch.setenv("CXX", "no-such-compiler")
    monkeypatch.setattr("shutil.which", lambda name: None)
    assert not htaf.memory.cpu_cache_available()
    with pytest.raises(RuntimeError, match="needs a C\\+\\+ compiler"):
        htaf.memory._build()


def test_a_library_others_can_write_is_not_loaded(monkeypatch, tmp_path):
    """A compiled allocator that someone else could have replaced (a group- or world-writable file) is refused before
    it is loaded, with the file and the fix named."""
    import os

    import htaf.memory

    monkeypatch.setenv("HTAF_CACHE", str(tmp_path))
    planted = htaf.memory._library_path()
    planted.parent.mkdir(mode=0o700, parents=True)
    planted.write_bytes(b"not a library")
    os.chmod(planted, 0o666)
    with pytest.raises(RuntimeError, match="is not this user's alone"):
        htaf.memory._build()
