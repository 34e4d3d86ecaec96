"""Re-execute the book's notebooks: theory strictly with nbval (outputs must reproduce), the experiment chapters and
the Findings page without errors.

An experiment chapter is executed twice: first with the ``smoke`` profile in an empty results folder (it trains what
it needs, as on Colab), then, with a cleared namespace, with the ``cpu`` profile against the committed results (nothing
trains; the chapter's assertions about them run). The experiment chapters and the Findings page run in one kernel per
pytest-xdist worker, which pays the kernel start and the first imports (torch, pandas, matplotlib, torch's compiler
stack on the first optimiser: about 4-5 s) once per worker instead of once per notebook. Before every pass the kernel's
namespace is cleared and its environment variables, working folder and open figures are set anew, so a notebook sees no
name, variable or folder another one left (imported modules stay loaded, as they do between the two passes); a test that
fails restarts the kernel. One test per notebook, so that pytest-xdist spreads them over the cores.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from _nbval_one_kernel import reset_cell

ROOT = Path(__file__).resolve().parents[1]
SANITIZE = ROOT / "book" / "nbval_sanitize.cfg"
THEORY = sorted((ROOT / "book" / "theory").glob("*.ipynb"))
EXPERIMENTS = sorted((ROOT / "book" / "experiments").glob("*.ipynb"))

pytestmark = pytest.mark.slow


def _ids(paths):
    return [path.stem for path in paths]


def run_nbval(paths, *extra, env=None):
    # without the project's options (-n auto) and the plugins nbval does not use, whose imports cost about 1 s
    cmd = [
        sys.executable, "-m", "pytest", "-o", "addopts=", "-p", "no:cacheprovider", "-p", "no:xdist",
        "-p", "no:hypothesispytest", "-p", "no:anyio", "-q", "--nbval-current-env",
        "--nbval-sanitize-with", str(SANITIZE), "--rootdir", str(ROOT), *extra, *map(str, paths),
    ]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env={**os.environ, **(env or {})})


def test_every_notebook_is_collected():
    assert THEORY, "no theory notebooks found"
    assert EXPERIMENTS, "no experiment notebooks found"


def _notebook(path: Path, *sources: str, outputs: list | None = None) -> Path:
    """A notebook at ``path`` with one code cell per source (the first stores ``outputs``)."""
    cells = [nbformat.v4.new_code_cell(source) for source in sources]
    if outputs:
        cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text=text) for text in outputs]
        cells[0].execution_count = 1
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    return path


def test_theory_notebooks_reproduce_exactly(tmp_path):
    """Every output of every theory chapter reproduces (nbval), the chapters in one kernel (tests/_nbval_one_kernel.py:
    each would otherwise start its own, about 2.5 s of start and imports). Probe notebooks around them show what
    sharing the kernel keeps from nbval: a notebook whose stored output is not what it prints fails, and a notebook
    finds no name, environment variable, working folder or figure an earlier one left, in the same kernel process."""
    pid = tmp_path / "kernel.pid"
    leaves = _notebook(tmp_path / "leaves" / "leaves.ipynb",
                       "import os\nimport matplotlib.pyplot as plt\nLEFT = 1\nos.environ['HTAF_LEFT'] = '1'\n"
                       f"os.chdir('/')\n_ = plt.figure()\nopen({str(pid)!r}, 'w').write(str(os.getpid()))")
    differs = _notebook(tmp_path / "differs" / "differs.ipynb", "print('computed')", outputs=["stored\n"])
    checks = _notebook(tmp_path / "checks" / "checks.ipynb",
                       "import os\nimport matplotlib.pyplot as plt\nassert 'LEFT' not in dir()\n"
                       f"assert 'HTAF_LEFT' not in os.environ\nassert os.getcwd() == {str(tmp_path / 'checks')!r}\n"
                       f"assert not plt.get_fignums()\nassert open({str(pid)!r}).read() == str(os.getpid())")
    tests = str(Path(__file__).parent)
    proc = run_nbval([leaves, differs, *THEORY, checks], "-p", "_nbval_one_kernel", "--nbval",
                     env={"PYTHONPATH": os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH")]))})
    report = (proc.stdout + proc.stderr)[-8000:]
    cells = sum(cell.cell_type == "code" for notebook in THEORY for cell in nbformat.read(notebook, 4).cells)
    # one failure, the planted one (nbval names files outside its root folder by cell only)
    assert f"1 failed, {cells + 2} passed" in proc.stdout and "'stored\\n' == 'computed\\n'" in proc.stdout, report


class SharedKernel:
    """One IPython kernel of this Python environment, reused by the notebook tests of a worker
    (:func:`shared_kernel`). ``own_environment``: the environment variables the kernel set or changed when it
    started (``MPLBACKEND``, which makes matplotlib draw every figure a cell shows, ``TERM``, ``PAGER``, ...), which
    every pass keeps."""

    def __init__(self):
        self.start()

    def start(self):
        from jupyter_client import KernelManager
        from nbval.kernel import CURRENT_ENV_KERNEL_NAME, NbvalKernelspecManager

        started_with = dict(os.environ)
        self.km = KernelManager(kernel_name=CURRENT_ENV_KERNEL_NAME, kernel_spec_manager=NbvalKernelspecManager())
        self.km.start_kernel(cwd=str(ROOT))
        self.connect()
        environment = self.evaluate("dict(__import__('os').environ)")
        self.own_environment = {k: v for k, v in environment.items() if started_with.get(k) != v}
        assert "MPLBACKEND" in self.own_environment, "the kernel did not choose matplotlib's inline backend"

    def connect(self):
        self.kc = self.km.client()
        self.kc.allow_stdin = False  # as nbclient sets it: a cell that asks for input fails at once
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=120)

    def evaluate(self, expression: str):
        """The value of a Python literal ``expression`` evaluated in the kernel."""
        import ast

        reply = self.kc.execute_interactive("", user_expressions={"value": expression}, timeout=60,
                                            output_hook=lambda message: None)
        value = reply["content"]["user_expressions"]["value"]
        assert value["status"] == "ok", value
        return ast.literal_eval(value["data"]["text/plain"])

    def pid(self) -> int:
        return self.evaluate("__import__('os').getpid()")

    def restart(self):
        """A fresh process, for the tests after a failed one (a new kernel if restarting fails)."""
        try:
            self.kc.stop_channels()
            self.km.restart_kernel(now=True)
            self.connect()
        except Exception:  # noqa: BLE001 - a kernel that cannot restart: start another one
            with contextlib.suppress(Exception):
                self.km.shutdown_kernel(now=True)
            self.start()

    def shutdown(self):
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


@pytest.fixture(scope="session")
def shared_kernel():
    kernel = SharedKernel()
    yield kernel
    kernel.shutdown()


def execute(kernel: SharedKernel, notebook: Path, passes: list[tuple[str, dict[str, str]]]) -> None:
    """Execute every code cell of ``notebook`` once per ``(name, environment)`` pass in ``kernel``. Before each pass
    the user namespace is cleared (``%reset -f``: a pass sees no name an earlier pass or notebook defined), the
    environment variables become this test's, the kernel's own (:class:`SharedKernel`) and the pass's (nothing an
    earlier pass set survives), open figures are closed and the working folder becomes the notebook's, as when
    Jupyter opens it. Modules an earlier notebook imported stay loaded (and with them their settings: matplotlib's
    rcParams, torch's threads, warning filters), as they do between the two passes. The first cell that raises or
    times out fails the test with the pass, the cell's number and source, and the error; the kernel is then restarted
    for the next test."""
    from nbclient import NotebookClient

    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(nb, km=kernel.km, timeout=900, resources={"metadata": {"path": str(notebook.parent)}})
    client.kc = kernel.kc
    cells = list(nb.cells)
    nb.cells.append(nbformat.v4.new_code_cell())  # the set-up cell: nbclient stores an executed cell at its index
    passed = False
    try:
        with client.setup_kernel():  # the kernel and its client exist: this only runs nbclient's set-up
            for name, env in passes:
                environment = {**os.environ, **kernel.own_environment, **env}
                nb.cells[-1].source = reset_cell(str(notebook.parent), environment)
                for index, cell in [(len(cells), nb.cells[-1]), *enumerate(cells)]:
                    if cell.cell_type != "code":
                        continue
                    try:
                        client.execute_cell(cell, index)
                    except Exception as error:  # noqa: BLE001 - a raising cell, a timeout, a dead kernel
                        where = "the set-up cell" if index == len(cells) else f"code cell {index}"
                        pytest.fail(f"{notebook.name}, {name} pass, {where}:\n{cell.source[:2000]}\n\n"
                                    f"{type(error).__name__}: {str(error)[-6000:]}", pytrace=False)
        passed = True
    finally:
        if not passed:
            kernel.restart()


def cpu_environment(tmp_path: Path) -> dict[str, str]:
    """The committed ``cpu`` results, and no way to train: an empty data folder and downloads off, so a chapter that
    asks for a missing run fails the cell that asks."""
    return {"HTAF_PROFILE": "cpu", "HTAF_RESULTS": str(ROOT / "results"), "HTAF_DATA": str(tmp_path / "no-data"),
            "HTAF_DOWNLOAD": "0", "HTAF_CHECKPOINTS": str(tmp_path / "checkpoints")}


@pytest.mark.parametrize("notebook", EXPERIMENTS, ids=_ids(EXPERIMENTS))
def test_experiment_notebook_trains_in_smoke_mode_and_asserts_the_committed_cpu_results(notebook, tmp_path,
                                                                                        shared_kernel):
    """An experiment chapter, executed as a reader outside the repository runs it (``smoke``: it trains every run it
    shows), then with the ``cpu`` profile against the committed results, where its assertions about them (orderings,
    verdicts, targets) run."""
    smoke = {"HTAF_PROFILE": "smoke", "HTAF_RESULTS": str(tmp_path / "smoke-results")}
    execute(shared_kernel, notebook, [("smoke", smoke), ("cpu", cpu_environment(tmp_path))])


#: the Findings page: neither a theory nor an experiment chapter, so neither glob above collects it
FINDINGS = [ROOT / "book" / "findings.ipynb"]


def test_the_findings_page_is_not_collected_by_the_chapter_globs():
    assert not set(FINDINGS) & set(THEORY + EXPERIMENTS) and all(p.is_file() for p in FINDINGS)


@pytest.mark.parametrize("notebook", FINDINGS, ids=_ids(FINDINGS))
def test_findings_page_asserts_the_committed_cpu_results(notebook, tmp_path, shared_kernel):
    """The Findings page, executed against the committed results as the experiment chapters are: its verdicts and
    numbers are asserts on :mod:`htaf.findings`, which reads the ``cpu`` runs and never trains."""
    execute(shared_kernel, notebook, [("cpu", cpu_environment(tmp_path))])


def test_a_notebook_in_the_shared_kernel_sees_nothing_an_earlier_one_left(shared_kernel, tmp_path):
    """What one notebook defines, sets in the environment or changes in the working folder is gone for the next (its
    garbage too), the kernel's own settings (matplotlib's inline backend) stay; a notebook that fails leaves a restarted
    kernel behind."""
    def notebook(name, *sources):
        return _notebook(tmp_path / name / f"{name}.ipynb", *sources)

    # a reference cycle, watched through a weak reference that a module of its own keeps: the reset frees it before it
    # freezes what is left (gc.freeze), so what a notebook no longer holds does not pile up in the kernel
    cycle = ("import sys, types, weakref\nclass Node:\n    pass\nnode = Node()\nnode.self = node\n"
             "sys.modules.setdefault('_probe', types.ModuleType('_probe')).node = weakref.ref(node)")
    leaves = notebook("leaves", "import os\nLEFT = 1\nos.environ['HTAF_LEFT'] = '1'\nos.chdir('/')", cycle)
    fails = notebook("fails", "import os\nos.environ['HTAF_LEFT'] = '1'\nraise ValueError('planted')")
    checks = notebook("checks", "import os\nassert 'LEFT' not in dir()\nassert 'HTAF_LEFT' not in os.environ\n"
                                f"assert os.getcwd() == {str(tmp_path / 'checks')!r}\n"
                                "assert os.environ['HTAF_PASS'] == 'yes'\n"
                                "import matplotlib\nassert 'inline' in matplotlib.get_backend()")
    freed = notebook("freed", "import sys\nassert sys.modules['_probe'].node() is None, 'a cycle outlived its notebook'")
    # a figure a cell shows is drawn, as in a kernel of its own: a title matplotlib cannot typeset fails the cell
    bad_figure = notebook("bad_figure", "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\n"
                                        "ax.set_title(r'$\\foo$')\nfig")
    execute(shared_kernel, leaves, [("first", {}), ("second", {})])
    execute(shared_kernel, freed, [("freed", {})])
    execute(shared_kernel, checks, [("check", {"HTAF_PASS": "yes"})])
    process = shared_kernel.pid()
    with pytest.raises(pytest.fail.Exception, match="planted"):
        execute(shared_kernel, fails, [("fail", {})])
    assert shared_kernel.pid() != process, "the kernel was not restarted after a failed notebook"
    execute(shared_kernel, checks, [("check", {"HTAF_PASS": "yes"})])
    drawn = r"(?s)bad_figure.ipynb, draw pass, code cell 0.*ParseFatalException"
    with pytest.raises(pytest.fail.Exception, match=drawn):
        execute(shared_kernel, bad_figure, [("draw", {})])
