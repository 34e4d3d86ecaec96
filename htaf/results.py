"""Run results on disk: config hashes, atomic JSON files, locks, migrations and tables for the book.

Layout: ``<results root>/<experiment>/<profile>/<config hash>.json``. The root is an argument, else
``$HTAF_RESULTS``, else ``results/`` of the htaf checkout the working directory is in (the book's results), else
``results/`` in htaf's user data folder, such as ``~/.local/share/htaf/results`` (said once on stderr; see
:mod:`htaf._paths`). Checkpoints of
unfinished runs live elsewhere (see :func:`checkpoints_root`) and are deleted when a run finishes.

>>> config_hash("mlp", {"lr": 0.001, "seed": 0}) == config_hash("mlp", {"seed": 0, "lr": 1e-3})
True

A file that is not valid JSON or not a results file is never read as one: :func:`read_result` raises
:class:`CorruptResultError` naming the file and the problem, :func:`records` skips such files with a
:class:`ResultsWarning`, and :func:`htaf.run` moves the file of the run it was asked for aside
(:func:`quarantine`) and trains the run again.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import hashlib
import json
import math
import os
import platform
import shutil
import socket
import sys
import tempfile
import time
import warnings
from importlib import metadata
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable, Iterable, Iterator

import numpy as np
import torch

from htaf._errors import PicklableError
from htaf._paths import find_project_root, project_root, resolve_folder, user_folder

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "project_root", "find_project_root", "user_folder", "RunRecord",
    "SCHEMA", "HASH_LENGTH", "REQUIRED_KEYS", "RENAMED_KEYS", "ResultsError", "CorruptResultError", "RunInProgressError",
    "ResultsNotWritableError", "ResultsWarning", "results_root", "checkpoints_root", "config_hash",
    "result_path", "checkpoint_path", "lock_path", "atomic_write", "write_json", "read_json", "read_result",
    "recorded_time", "json_safe", "quarantine", "refuse_links", "check_writable", "HeldLock", "run_lock", "device_name",
    "environment", "environment_summary", "PROVENANCE_KEYS", "cell", "iter_records", "records",
    "read_records", "load", "load_history", "table", "migrate",
]

#: version of the results-file format; :func:`migrate` brings older files up to it
SCHEMA = 3
HASH_LENGTH = 16
#: keys every results file has
REQUIRED_KEYS = ("schema", "experiment", "profile", "hash", "config", "history", "metrics", "wall_time_s")
#: config keys renamed when one key (``method``) came to choose the unit in every family (results schema 2):
#: ``RENAMED_KEYS[experiment][old key] = new key``; :func:`migrate` renames them in old files and
#: :func:`htaf.experiments.resolve_config` in overrides (with a FutureWarning)
RENAMED_KEYS: dict[str, dict[str, str]] = {
    "snn": {"surrogate": "method"},
    "mlp": {"activation": "method", "activation_kwargs": "surrogate_params"},
}


#: ``(key, types, description)``: the shape of every required key of a results file
_SHAPES = (
    ("schema", (int,), "an integer"), ("experiment", (str,), "a string"), ("profile", (str,), "a string"),
    ("hash", (str,), "a string"), ("config", (dict,), "an object"), ("history", (list,), "a list"),
    ("metrics", (dict,), "an object"), ("wall_time_s", (int, float), "a number"),
)


class ResultsError(PicklableError, RuntimeError):
    """A problem with the results folder or one of its files; the message names the path."""


class CorruptResultError(ResultsError):
    """A file in the results folder that is not a readable results file."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = Path(path), reason


class RunInProgressError(ResultsError):
    """Another process holds the lock of the run and did not finish within the timeout."""


class ResultsNotWritableError(ResultsError):
    """The results (or checkpoints) folder cannot be written."""


class ResultsWarning(UserWarning):
    """A results file skipped or moved aside, a damaged checkpoint discarded, a wait for another process."""


# --------------------------------------------------------------------------------------------
# Where things go
# --------------------------------------------------------------------------------------------


class RunRecord(dict):
    """The record of a run (what its results file holds) as :func:`htaf.run` returns it, with ``path``: the
    results file it was read from or written to. Equal to the plain dict of the same record."""

    def __init__(self, record: dict[str, Any], path: Path):
        super().__init__(record)
        self.path = Path(path)


def results_root(results_dir: str | os.PathLike | None = None) -> Path:
    """``results_dir``, else ``$HTAF_RESULTS``, else ``results/`` of the htaf checkout the working directory is in,
    else ``results/`` in htaf's user data folder (:func:`user_folder`; see :mod:`htaf._paths`)."""
    return resolve_folder(results_dir, "HTAF_RESULTS", "results")


def checkpoints_root(results_dir: str | os.PathLike | None = None) -> Path:
    """``$HTAF_CHECKPOINTS``, else ``.checkpoints/`` inside the results root (git-ignored).

    Inside the results root, so that two results folders never share (or overwrite) checkpoints.
    """
    override = os.environ.get("HTAF_CHECKPOINTS")
    return Path(override) if override else results_root(results_dir) / ".checkpoints"


#: config keys added after schema 3 with the value that changes nothing about a run: at that value they are left
#: out of the hash, so that every run trained before the key existed keeps its name (and is found in the cache)
HASH_NEUTRAL: dict[str, Any] = {"validation": None}


def config_hash(experiment: str, config: dict[str, Any], world_size: int = 1) -> str:
    """Stable hash of an experiment name and its config (key order and ``1e-3`` vs ``0.001`` do not matter).

    A run trained by ``world_size > 1`` processes (DDP) can differ from a single-process run of the same
    config, so the world size is part of its key; single-process hashes do not include it.

    >>> config_hash("mlp", {"seed": 0}) != config_hash("mlp", {"seed": 0}, world_size=2)
    True
    >>> config_hash("mlp", {"seed": 0, "validation": None}) == config_hash("mlp", {"seed": 0})  # HASH_NEUTRAL
    True
    """
    config = {key: value for key, value in config.items() if (key, value) not in HASH_NEUTRAL.items()}
    keyed: dict[str, Any] = {"experiment": experiment, "config": config}
    if world_size > 1:
        keyed["world_size"] = world_size
    canonical = json.dumps(keyed, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:HASH_LENGTH]


def _run_hash(digest: str) -> str:
    """``digest`` if it is a run hash (:data:`HASH_LENGTH` lowercase hex digits, as :func:`config_hash` gives), else a
    ``ValueError``: a file name made from it then never names a path outside its folder."""
    if not (isinstance(digest, str) and len(digest) == HASH_LENGTH and set(digest) <= set("0123456789abcdef")):
        raise ValueError(f"not a run hash: {digest!r} ({HASH_LENGTH} lowercase hex digits, as config_hash gives)")
    return digest


def result_path(experiment: str, profile: str, digest: str, results_dir: str | os.PathLike | None = None) -> Path:
    """The results file of run ``digest`` (a run hash, checked)."""
    return results_root(results_dir).joinpath(experiment, profile, f"{_run_hash(digest)}.json")


def checkpoint_path(experiment: str, profile: str, digest: str, results_dir: str | os.PathLike | None = None) -> Path:
    """The checkpoint of run ``digest`` (a run hash, checked)."""
    return checkpoints_root(results_dir) / experiment / profile / f"{_run_hash(digest)}.pt"


def lock_path(result: Path) -> Path:
    """The lock file of a run: ``<hash>.lock`` beside its results file (git-ignored)."""
    return Path(result).with_suffix(".lock")


# --------------------------------------------------------------------------------------------
# Writing and reading files
# --------------------------------------------------------------------------------------------


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, flush it to disk, then rename it over ``path``.

    A reader (or a run killed mid-write) sees either the old file or the new one, never a torn one. The
    file gets the permissions of any new file (``0666`` less the umask: ``0644`` usually), not the
    ``0600`` of a temporary file.
    """
    path = Path(path)
    for attempt in (1, 2):
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False) as fh:
            try:
                write(fh)
                fh.flush()
                os.fchmod(fh.fileno(), 0o666 & ~_umask())
                os.fsync(fh.fileno())
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(fh.name)
                raise
        try:
            os.replace(fh.name, path)
            return
        except FileNotFoundError:  # the folder was moved away meanwhile: write again where the path points now
            if attempt == 2:
                raise


def json_safe(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by ``None`` (JSON ``null``), recursively.

    Strict JSON has no NaN or Infinity; a diverged run's metrics are stored as ``null``.

    >>> json_safe({"loss": float("nan"), "history": [1.0, float("inf")]})
    {'loss': None, 'history': [1.0, None]}
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically (see :func:`atomic_write`) as strict JSON (no NaN/Infinity)."""
    text = json.dumps(payload, indent=1, sort_keys=True, allow_nan=False) + "\n"
    atomic_write(path, lambda fh: fh.write(text.encode()))


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def read_result(path: Path) -> dict[str, Any]:
    """The results file at ``path``, checked: valid JSON, an object with :data:`REQUIRED_KEYS`, a ``hash``
    that matches the file name, and the current :data:`SCHEMA`.

    Raises:
        CorruptResultError: naming the file and what is wrong with it.
    """
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        raise CorruptResultError(path, "not a regular file")
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CorruptResultError(path, f"not valid JSON ({error})") from None
    except RecursionError:
        raise CorruptResultError(path, "not a results file (JSON nested too deeply to read)") from None
    if not isinstance(record, dict):
        raise CorruptResultError(path, f"not a results file (a JSON {type(record).__name__}, not an object)")
    missing = [key for key in REQUIRED_KEYS if key not in record]
    if missing:
        raise CorruptResultError(path, f"not a results file (lacks {', '.join(missing)})")
    wrong = [f"{key} is not {kind}" for key, types, kind in _SHAPES if not isinstance(record[key], types)
             or isinstance(record[key], bool) and bool not in types]
    if isinstance(record["history"], list) and not all(isinstance(row, dict) for row in record["history"]):
        wrong.append("history is not a list of objects")
    if wrong:
        raise CorruptResultError(path, f"not a results file ({'; '.join(wrong)})")
    if record["hash"] != path.stem:
        raise CorruptResultError(path, f"holds run {record['hash']!r}, not the run its name says")
    if record["schema"] != SCHEMA:
        raise CorruptResultError(path, f"results schema {record['schema']}, not {SCHEMA}; "
                                       "update the folder with `python -m htaf migrate`")
    return record


def recorded_time(path: Path) -> float | None:
    """The training time recorded in the results file at ``path``, read from its last bytes only; ``None``
    when there is no file or its end is not that of a current results file (see :func:`write_json`: keys
    sorted, ``schema`` then ``wall_time_s`` last).

    A light check, for counting finished runs (:func:`htaf.reproduction.plan`) without parsing every file;
    :func:`read_result` checks a file fully when the run is asked for.
    """
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(size - 256, 0))
            tail = fh.read()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    lines = tail.decode("utf-8", "replace").rstrip("\n").split("\n")
    if len(lines) < 3 or lines[-1] != "}" or lines[-3].strip() != f'"schema": {SCHEMA},':
        return None
    key, _, value = lines[-2].strip().partition(": ")
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if key == '"wall_time_s"' and math.isfinite(seconds) else None


def quarantine(path: Path) -> Path:
    """Move a damaged file aside to ``<name>.corrupt-<UTC time>`` (kept for inspection, never read again)."""
    path = Path(path)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    try:
        os.replace(path, target)
    except OSError as error:
        raise ResultsNotWritableError(f"cannot move the damaged file {path} aside ({error.strerror or error}); "
                                      "make its folder writable, or remove the file") from None
    return target


def refuse_links(path: Path, root: Path) -> None:
    """Raise :class:`ResultsError` if ``path`` or a folder between ``root`` and it is a symbolic link.

    A link planted inside a results (or checkpoints) folder could redirect a write elsewhere; ``root`` itself
    may be a link (the user chose it).
    """
    path, root = Path(path), Path(root)
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        return
    current = root
    for part in parts:
        current = current / part
        if current.is_symlink():
            raise ResultsError(f"{current} is a symbolic link inside {root}; htaf never writes through one: "
                               "remove it and run again")


#: space a run needs in its results and checkpoints folders before it trains (results files and checkpoints of
#: the ``cpu`` profile are far smaller; a ResNet-18 checkpoint with its optimizer state is about 130 MiB)
MIN_FREE_BYTES = 256 * 2**20


def check_writable(folder: Path, need_bytes: int = MIN_FREE_BYTES) -> None:
    """Create ``folder`` if needed and check, before any training, that files of ``need_bytes`` can be written in
    it: the folder is writable, its file system has that much free space, and the process's file size limit
    (``ulimit -f``) allows such a file.

    Raises:
        ResultsNotWritableError: naming the folder and the cause.
    """
    folder = Path(folder)
    fix = "choose another folder with --results-dir or HTAF_RESULTS"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
        free = shutil.disk_usage(folder).free
    except OSError as error:
        raise ResultsNotWritableError(
            f"cannot write results into {folder} ({error.strerror or error}); make it writable or {fix}"
        ) from None
    if free < need_bytes:
        raise ResultsNotWritableError(
            f"only {free / 2**20:.1f} MiB free for results in {folder}, a run needs {need_bytes / 2**20:.0f} MiB "
            f"(results file and checkpoint); free some space or {fix}")
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY and limit < need_bytes:
        raise ResultsNotWritableError(
            f"the file size limit of this process (ulimit -f) is {limit} bytes, below the {need_bytes / 2**20:.0f} MiB "
            f"a checkpoint in {folder} may need; raise it (ulimit -f unlimited)")


# --------------------------------------------------------------------------------------------
# One process per run
# --------------------------------------------------------------------------------------------


def _try_lock(lock: Path) -> tuple[int | None, str]:
    """``(descriptor, "")`` holding an exclusive ``flock`` on the file ``lock`` (created if needed, never through a
    symbolic link), or ``(None, holder)`` when another process holds it."""
    import fcntl

    while True:
        try:  # O_NOFOLLOW: a symbolic link planted as the lock file is never opened (nor its target truncated)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
        except OSError as error:
            if error.errno == errno.ELOOP or lock.is_symlink():
                raise ResultsError(f"the lock file {lock} is a symbolic link; htaf never writes through one: "
                                   "remove it and run again") from None
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            return None, holder
        except OSError as error:  # ENOLCK, ENOSYS, EOPNOTSUPP: a filesystem without locks (NFS nolock, Lustre noflock)
            os.close(fd)
            raise ResultsError(f"the filesystem of {lock.parent} refuses file locks ({error.strerror}); use a results "
                               "folder whose filesystem supports flock (see the README: supported filesystems)") from None
        if _same_file(lock, fd):
            os.ftruncate(fd, 0)
            since = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
            os.write(fd, f"process {os.getpid()} on {socket.gethostname()} since {since}".encode())
            return fd, ""
        os.close(fd)  # the holder removed the file after we opened it: lock the new one


def lock_is_free(lock: Path) -> bool | None:
    """Whether this process could take the lock ``lock`` now (taken and released at once), or ``None`` when the file
    does not exist (it is never created here). A process on another machine asks this about a lock that one process
    holds, to find out whether the results folder's locks are seen across machines
    (:func:`htaf.reproduction.reproduce` with a cluster)."""
    if not os.path.lexists(lock):
        return None
    fd, _ = _try_lock(lock)
    if fd is None:
        return False
    os.close(fd)
    return True


def _same_file(path: Path, fd: int) -> bool:
    try:
        return os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


class HeldLock:
    """The lock of one run while :func:`run_lock` holds it."""

    def __init__(self, path: Path, fd: int):
        self.path, self.fd = path, fd

    def check(self) -> None:
        """Make sure this process still holds the run's lock at its path (called after every epoch and before the
        result is written). When the results folder was moved or replaced during the run, the lock is taken again
        at the path, so that the run's files go where its lock is.

        Raises:
            RunInProgressError: another process took the run's lock in the replaced folder meanwhile; this process
                stops (its checkpoint keeps the epochs it trained).
        """
        if _same_file(self.path, self.fd):
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, holder = _try_lock(self.path)
        if fd is None:
            raise RunInProgressError(f"the results folder of run {self.path.stem} was replaced during the run, and "
                                     f"{holder} trains the run there now; this process stops")
        os.close(self.fd)
        self.fd = fd
        warnings.warn(f"the results folder of run {self.path.stem} was moved or replaced during the run; took its "
                      f"lock again in {self.path.parent}", ResultsWarning, stacklevel=2)

    def release(self) -> None:
        if _same_file(self.path, self.fd):  # never remove a lock file that is another process's now
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        os.close(self.fd)


@contextlib.contextmanager
def run_lock(result: Path, timeout: float | None = None, poll_s: float = 0.5) -> Iterator[HeldLock | None]:
    """Hold the lock of the run whose results file is ``result`` (one process trains a run at a time).

    The lock is an ``flock`` on :func:`lock_path`; the kernel releases it when its process dies, so a lock
    file left by a killed process is stale and simply taken over (on NFS the server releases the locks of a
    machine that died when its lease ends). The file names its holder: ``process PID on HOST since TIME``. A second process waits (warning once)
    until the first finishes, then reads its result; with ``timeout`` (seconds, also
    ``$HTAF_LOCK_TIMEOUT``) it gives up with :class:`RunInProgressError`. Yields a :class:`HeldLock`, whose
    ``check`` notices a results folder replaced during the run. Without ``fcntl`` (Windows) no lock is taken
    (yields ``None``).
    """
    try:
        import fcntl  # noqa: F401
    except ImportError:  # pragma: no cover - Windows
        yield None
        return
    if timeout is None and os.environ.get("HTAF_LOCK_TIMEOUT"):
        text = os.environ["HTAF_LOCK_TIMEOUT"]
        try:
            timeout = float(text)
        except ValueError:
            timeout = math.nan
        if not (math.isfinite(timeout) and timeout >= 0):
            raise ResultsError(f"HTAF_LOCK_TIMEOUT must be a number of seconds >= 0, got {text!r}; "
                               "unset it to wait for another process as long as it trains")
    lock = lock_path(result)
    lock.parent.mkdir(parents=True, exist_ok=True)
    deadline = None if timeout is None else time.monotonic() + timeout
    waited = False
    while True:
        fd, holder = _try_lock(lock)
        if fd is not None:
            break
        if deadline is not None and time.monotonic() >= deadline:
            raise RunInProgressError(f"run {Path(result).stem} is in progress in {holder} (lock {lock}); "
                                     "wait for it to finish or try again later")
        if not waited:
            warnings.warn(f"run {Path(result).stem} is being trained by {holder}; waiting for it to finish",
                          ResultsWarning, stacklevel=3)
            waited = True
        time.sleep(poll_s)
    held = HeldLock(lock, fd)
    try:
        yield held
    finally:
        held.release()


# --------------------------------------------------------------------------------------------
# Environment of a run
# --------------------------------------------------------------------------------------------


def device_name(device: torch.device) -> str:
    """GPU name, or the CPU model read from ``/proc/cpuinfo`` (falling back to ``platform``)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_capability() -> str | None:
    """``torch.backends.cpu.get_cpu_capability()`` (e.g. ``"AVX2"``, ``"AVX512"``), None where torch lacks it."""
    getter = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", None)
    return getter() if getter is not None else None


def environment(device: torch.device, world_size: int = 1) -> dict[str, Any]:
    """Where a run happened: device, process count, CPU threads and library versions."""
    try:
        htaf_version = metadata.version("htaf")
    except metadata.PackageNotFoundError:
        htaf_version = "not installed"
    return {
        "device": device_name(device),
        "device_type": device.type,
        "world_size": world_size,
        "cpu_threads": torch.get_num_threads(),
        # the vector instructions torch's CPU kernels dispatch to (AVX2, AVX512, ...): two CPUs of one model name
        # may differ here, and so may the last digits of a run
        "cpu_capability": cpu_capability(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "htaf": htaf_version,
    }


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------


def cell(value: Any) -> Any:
    """A DataFrame-friendly value: lists and dicts become their JSON text."""
    return json.dumps(value, sort_keys=True) if isinstance(value, (list, dict)) else value


def iter_records(experiment: str, profile: str, results_dir: str | os.PathLike | None = None) -> Iterator[dict[str, Any]]:
    """Every finished run of ``experiment`` under ``profile``, sorted by hash, read one file at a time (memory
    stays that of one record).

    Files that are not readable results files are skipped with a :class:`ResultsWarning` naming them.
    """
    folder = results_root(results_dir) / experiment / profile
    for path in sorted(folder.glob("*.json")):
        try:
            record = read_result(path)
        except CorruptResultError as error:
            warnings.warn(f"skipped {error}", ResultsWarning, stacklevel=3)
            continue
        yield record


def records(experiment: str, profile: str, results_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Every finished run of ``experiment`` under ``profile``, sorted by hash (:func:`iter_records` as a list)."""
    return list(iter_records(experiment, profile, results_dir))


def read_records(experiment: str, profile: str, digests: Iterable[str],
                 results_dir: str | os.PathLike | None = None) -> dict[str, dict[str, Any]]:
    """The finished runs of ``experiment`` under ``profile`` whose hashes are ``digests``: ``{hash: record}``, sorted
    by hash, reading those files only (a chapter or finding that needs some runs of a folder of thousands reads
    those). A hash with no results file is absent; a file that is not a readable results file is skipped with a
    :class:`ResultsWarning` naming it, as :func:`iter_records` does. Anything but a run hash (:func:`result_path`
    checks) is refused before any file is opened.

    >>> read_records("no_such_experiment", "smoke", ["0123456789abcdef"])
    {}
    >>> read_records("no_such_experiment", "smoke", ["../../secret"])
    Traceback (most recent call last):
    ...
    ValueError: not a run hash: '../../secret' (16 lowercase hex digits, as config_hash gives)
    """
    paths = {digest: result_path(experiment, profile, digest, results_dir) for digest in set(digests)}
    found = {}
    for digest, path in sorted(paths.items()):
        if not os.path.lexists(path):
            continue
        try:
            found[digest] = read_result(path)
        except CorruptResultError as error:
            warnings.warn(f"skipped {error}", ResultsWarning, stacklevel=2)
    return found


def _summary_row(record: dict[str, Any]) -> dict[str, Any]:
    """A run's row of :func:`load`: hash, config keys, final metrics, parameter count, wall time (no history)."""
    return {
        "hash": record["hash"],
        **{key: cell(value) for key, value in record["config"].items()},
        **record["metrics"],
        "num_params": record.get("num_params"),
        "wall_time_s": record["wall_time_s"],
    }


def load(experiment: str, profile: str, results_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per finished run: ``hash``, every config key, the final metrics,
    ``num_params`` and ``wall_time_s``.

    >>> load("no_such_experiment", "smoke").empty
    True
    """
    import pandas as pd

    return pd.DataFrame([_summary_row(record) for record in iter_records(experiment, profile, results_dir)])


def load_history(experiment: str, profile: str, results_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per (run, epoch): ``hash``, every config key and that epoch's metrics (for curves)."""
    import pandas as pd

    rows = [
        {"hash": record["hash"], **{key: cell(value) for key, value in record["config"].items()}, **epoch}
        for record in iter_records(experiment, profile, results_dir)
        for epoch in record["history"]
    ]
    return pd.DataFrame(rows)


def table(experiment: str, profile: str, results_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Compact results table: ``hash``, the config keys that vary between runs, final metrics, wall time.

    Each file is read once, and only its summary row is kept (not its history).
    """
    import pandas as pd

    rows, config_keys = [], set()
    for record in iter_records(experiment, profile, results_dir):
        config_keys.update(record["config"])
        rows.append(_summary_row(record))
    frame = pd.DataFrame(rows)
    varied = [key for key in frame.columns if key in config_keys and frame[key].astype(str).nunique() > 1]
    outcomes = [column for column in frame.columns if column not in config_keys and column != "hash"]
    return frame[["hash", *varied, *outcomes]] if not frame.empty else frame


#: the fields of a run's ``environment`` that decide whether two runs are bitwise comparable
PROVENANCE_KEYS = ("device", "cpu_threads", "torch")


def environment_summary(records: Iterable[dict[str, Any]], keys: Iterable[str] = PROVENANCE_KEYS) -> pd.DataFrame:
    """How many of ``records`` (results records, as :func:`records` returns them) were made in each environment: one
    row per distinct value of ``keys`` (fields of a run's ``environment``; default :data:`PROVENANCE_KEYS`: device,
    torch threads, torch version), most runs first, with their count as ``runs``. A chapter shows it as a table.

    >>> summary = environment_summary([{"environment": {"device": "AMD EPYC", "cpu_threads": 1, "torch": "2.14.1"}}] * 2)
    >>> summary.to_dict("records")
    [{'device': 'AMD EPYC', 'cpu_threads': 1, 'torch': '2.14.1', 'runs': 2}]
    """
    import pandas as pd

    keys = list(keys)
    frame = pd.DataFrame([{key: record.get("environment", {}).get(key) for key in keys} for record in records],
                         columns=keys)
    return (frame.groupby(keys, sort=False, dropna=False).size().rename("runs").reset_index()
            .sort_values("runs", ascending=False, kind="stable", ignore_index=True))


def provenance(profile: str, experiments: Iterable[str] | None = None,
               results_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """How the finished runs of ``profile`` were made: one row per experiment and distinct (device, torch threads,
    torch version) of :data:`PROVENANCE_KEYS`, with the number of runs (:func:`environment_summary` per experiment,
    most runs first), in the order of ``experiments`` (default: every experiment folder under the results root,
    sorted).

    Runs are reproducible bit for bit only with the same three; this is the table the Reproduce page shows.
    """
    import pandas as pd

    root = results_root(results_dir)
    names = list(experiments) if experiments is not None else sorted(
        entry.name for entry in root.iterdir() if (entry / profile).is_dir()) if root.is_dir() else []
    parts = [environment_summary(iter_records(name, profile, results_dir)).assign(experiment=name) for name in names]
    parts = [part for part in parts if len(part)]
    if not parts:
        return pd.DataFrame(columns=["experiment", *PROVENANCE_KEYS, "runs"])
    return pd.concat(parts, ignore_index=True)[["experiment", *PROVENANCE_KEYS, "runs"]]


def provenance_markdown(profile: str, experiments: Iterable[str] | None = None,
                        results_dir: str | os.PathLike | None = None) -> str:
    """:func:`provenance` as a Markdown table (the Reproduce page's block; a test compares the two)."""
    frame = provenance(profile, experiments, results_dir)
    header = ["experiment", "device", "torch threads", "torch", "runs"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(value) for value in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Migrations of the file format
# --------------------------------------------------------------------------------------------

def _to_schema_2(record: dict[str, Any]) -> dict[str, Any]:
    """One name for the config key that chooses the unit (``method``), one gradient-norm key scheme."""
    renamed = RENAMED_KEYS.get(record["experiment"], {})
    record["config"] = {renamed.get(key, key): value for key, value in record["config"].items()}
    if record["experiment"] == "mlp":  # grad_norm_<i> (0-based Linear index) -> grad_norm_fc<i+1>
        record["history"] = [
            {(f"grad_norm_fc{int(key.removeprefix('grad_norm_')) + 1}"
              if key.startswith("grad_norm_") and key.removeprefix("grad_norm_").isdigit() else key): value
             for key, value in row.items()}
            for row in record["history"]
        ]
    return record


def _to_schema_3(record: dict[str, Any]) -> dict[str, Any]:
    """One spelling of HTAF's parameters: ``surrogate_params`` in every experiment.

    * ``dhn``, ``dhn_regression``, ``sensitivity_*``: the top-level ``alpha`` and ``beta`` go; for a method of HTAF's
      family they become ``surrogate_params`` (where both gave one, the key that won in the schema-2 builders wins:
      ``surrogate_params`` in the DHN experiments, ``alpha``/``beta`` in ``sensitivity_bnn`` and ``sensitivity_snn``);
      other methods never used them.
    * ``icbm``: ``alpha_start`` goes. ``htaf_anneal`` annealed from ``alpha_start`` to its unit's alpha: that unit's
      alpha becomes ``alpha_end`` and ``alpha_start`` its ``surrogate_params`` alpha (the schedule is the same
      numbers, epoch by epoch); every other run gets the new profile's ``alpha_end``. (A schema-2 ``htaf_anneal`` run
      with a ``peak_slope`` matched its slope at the final alpha, which schema 3 cannot express: it raises.)
    * ``surrogate_params`` in the canonical form :func:`htaf.experiments.resolve_config` stores
      (:func:`htaf.nn.canonical_surrogate_params`), so that the file has the hash of its grid point.
    """
    from htaf import nn as units

    config, experiment = dict(record["config"]), record["experiment"]
    method = config.get("method")
    known = method in units.unit_registry()
    params = dict(config.get("surrogate_params") or {})
    if "alpha" in config or "beta" in config:
        top = {key: config.pop(key) for key in ("alpha", "beta") if key in config}
        if known and units.unit_family(method) == "htaf":
            params = {**params, **top} if experiment in ("sensitivity_bnn", "sensitivity_snn") else {**top, **params}
    if "alpha_start" in config:
        start = config.pop("alpha_start")
        if method == "htaf_anneal":
            if config.get("peak_slope") is not None:
                raise ResultsError(f"{experiment} run {record.get('hash')}: htaf_anneal with a peak_slope matched the "
                                   "slope at its final alpha; schema 3 matches it at the start and cannot express it")
            end = units.unit_surrogate(method, None, params).alpha
            params = {**params, "alpha": start}
            config["alpha_end"] = end
        else:
            config["alpha_end"] = units.ANNEAL_ALPHA_END
    if "surrogate_params" in config and known:
        config["surrogate_params"] = units.canonical_surrogate_params(method, params)
    record["config"] = config
    return record


#: ``MIGRATIONS[n]`` turns a schema-``n`` record into a schema-``n+1`` record
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _to_schema_2, 2: _to_schema_3}


def _migrated(record: dict[str, Any]) -> dict[str, Any]:
    while record["schema"] < SCHEMA:
        record = MIGRATIONS[record["schema"]](record)
        record["schema"] += 1
    world_size = (record.get("environment") or {}).get("world_size", 1)
    record["hash"] = config_hash(record["experiment"], record["config"], world_size)
    return record


def migrate(results_dir: str | os.PathLike | None = None) -> list[tuple[Path, Path]]:
    """Bring every results file under the root up to :data:`SCHEMA`; returns ``(old path, new path)`` pairs.

    A migration renames config or metric keys of identical runs (it never changes what a run computed);
    as the hash covers the config, the file gets its new ``<hash>.json`` name and the old file is removed.
    Where two old files become one run (they differed only in a key the run did not use) and computed the same
    (metrics and history, timings aside), one is kept, with a :class:`ResultsWarning`; different results raise
    :class:`ResultsError`.
    Files that are not results files are left alone with a :class:`ResultsWarning`.
    """
    moved = []
    for path in sorted(results_root(results_dir).glob("*/*/*.json")):
        try:
            record = read_json(path)
            schema = record.get("schema") if isinstance(record, dict) else None
            if isinstance(schema, bool) or not isinstance(schema, int):
                raise ValueError(f"no integer schema ({schema!r})")
            if schema >= SCHEMA:
                continue
            missing = [key for key in REQUIRED_KEYS if key not in record]
            if missing:
                raise ValueError(f"lacks {', '.join(missing)}")
            wrong = [key for key, types, _ in _SHAPES if not isinstance(record[key], types)]
            if wrong:
                raise ValueError(f"{', '.join(wrong)} of the wrong type")
            record = _migrated(record)
        except (OSError, ValueError, TypeError, KeyError, AttributeError, RecursionError) as error:
            warnings.warn(f"migrate skipped {path}: not a results file it can migrate ({error})", ResultsWarning,
                          stacklevel=2)
            continue
        target = path.with_name(f"{record['hash']}.json")
        if target != path and target.exists():
            # two old files of one computation (a config key it did not use told them apart): keep one if they
            # computed the same, else refuse
            kept = read_json(target)
            if _outcome(kept) != _outcome(record):
                raise ResultsError(f"cannot migrate {path}: {target} holds the same run with different results")
            warnings.warn(f"migrate: {path.name} is the same run as {target.name} (identical results); kept one",
                          ResultsWarning, stacklevel=2)
            path.unlink()
            moved.append((path, target))
            continue
        write_json(target, record)
        if target != path:
            path.unlink()
        moved.append((path, target))
    return moved


def _outcome(record: dict[str, Any]) -> Any:
    """What a run computed: its metrics and history without timings."""
    def untimed(row: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in row.items()
                if "time" not in key and "_ms" not in key and key != "samples_per_s"}

    return untimed(record["metrics"]), [untimed(row) for row in record["history"]], record.get("num_params")
