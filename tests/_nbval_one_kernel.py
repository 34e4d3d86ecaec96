"""A pytest plugin for nbval (``-p _nbval_one_kernel``, with this folder on ``PYTHONPATH``): the notebooks of one nbval
run share one kernel, as the experiment chapters share one per pytest-xdist worker (tests/test_notebooks.py).

nbval 0.11 starts a kernel for every notebook file and stops it after the file's last cell. Here the first notebook's
kernel stays for the next ones, which saves each of them the kernel's start and its first imports (torch, SymPy, SciPy,
matplotlib: about 2.5 s a notebook). Before each notebook the kernel is brought back to how the first one found it: the
user namespace cleared (``%reset -f``), the environment variables those of the kernel's start, open figures closed, the
working folder the notebook's (as when Jupyter opens it). Imported modules stay loaded, with their settings. A kernel
that nbval stopped (a cell that timed out) is replaced by a new one for the next notebook. nbval compares every cell's
outputs as it always does.
"""

from __future__ import annotations

import nbval.plugin

_started = nbval.plugin.IPyNbFile.setup
_kernel = None


def reset_cell(folder: str, environment: dict[str, str] | None = None) -> str:
    """The source of the cell a shared kernel runs before each notebook (here, and in tests/test_notebooks.py's
    ``execute``): the user namespace cleared (``%reset -f`` clears names, not modules), the environment variables
    ``environment`` (``None``: those the kernel had when this cell first ran, recorded then in a module of its own),
    open figures closed, the working folder ``folder``. Last, what is left (modules and what they hold) is frozen out of
    the garbage collector's reach (``gc.freeze``, after ``%reset``'s collection has freed the earlier notebook's
    cycles): every full collection in a chapter otherwise scanned the half million objects torch, pandas, SymPy and
    matplotlib leave, and the reset cell itself took 0.3-0.5 s instead of 0.04-0.12 s (the nine notebooks' passes,
    measured in one kernel: 79 s instead of 87 s)."""
    if environment is None:
        state = '"_nbval_one_kernel_state"'
        restore = (f"_state = sys.modules.setdefault({state}, types.ModuleType({state}))\n"
                   "if not hasattr(_state, 'environ'):\n    _state.environ = dict(os.environ)\n"
                   "os.environ.clear()\nos.environ.update(_state.environ)\ndel _state\n")
    else:
        restore = f"os.environ.clear()\nos.environ.update({environment!r})\n"
    return (f"%reset -f\nimport gc, os, sys, types\n{restore}os.chdir({str(folder)!r})\n"
            "if 'matplotlib.pyplot' in sys.modules:\n    sys.modules['matplotlib.pyplot'].close('all')\ngc.freeze()")


def _setup(self) -> None:
    global _kernel
    if _kernel is None or not _kernel.is_alive():
        _started(self)  # a new kernel (and nbval's sanitize patterns)
        _kernel = self.kernel
    else:
        self.kernel = _kernel
        self.setup_sanitize_files()
    msg_id = _kernel.execute_cell_input(reset_cell(str(self.fspath.dirname)), allow_stdin=False)
    _kernel.await_reply(msg_id, timeout=60)
    _kernel.await_idle(msg_id, 60)


def _teardown(self) -> None:
    """The kernel stays for the next notebook (:func:`pytest_sessionfinish` stops it)."""


def pytest_configure(config) -> None:
    """Loaded as a plugin: nbval's notebooks share the kernel (importing this module changes nothing)."""
    nbval.plugin.IPyNbFile.setup = _setup
    nbval.plugin.IPyNbFile.teardown = _teardown


def pytest_sessionfinish(session) -> None:
    if _kernel is not None and _kernel.is_alive():
        _kernel.stop()
