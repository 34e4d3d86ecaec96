"""Re-execute the book's notebooks: theory strictly with nbval (outputs must reproduce), the experiment chapters and
the Findings page without errors.

An experiment chapter is executed twice in one kernel: first with the ``smoke`` profile in an empty results folder
(it trains what it needs, as on Colab), then, with a cleared namespace, with the ``cpu`` profile against the committed
results (nothing trains; the chapter's assertions about them run). One kernel pays the kernel start and the imports
(torch, pandas, matplotlib: about 6 s) once instead of twice. One test per notebook, so that pytest-xdist spreads
them over the cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
SANITIZE = ROOT / "book" / "nbval_sanitize.cfg"
THEORY = sorted((ROOT / "book" / "theory").glob("*.ipynb"))
EXPERIMENTS = sorted((ROOT / "book" / "experiments").glob("*.ipynb"))

pytestmark = pytest.mark.slow


def _ids(paths):
    return [path.stem for path in paths]


def run_nbval(paths, *extra, env=None):
    cmd = [
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "0", "-q", "--nbval-current-env",
        "--nbval-sanitize-with", str(SANITIZE), "--rootdir", str(ROOT), *extra, *map(str, paths),
    ]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env={**os.environ, **(env or {})})


def test_every_notebook_is_collected():
    assert THEORY, "no theory notebooks found"
    assert EXPERIMENTS, "no experiment notebooks found"


@pytest.mark.parametrize("notebook", THEORY, ids=_ids(THEORY))
def test_theory_notebook_reproduces_exactly(notebook):
    proc = run_nbval([notebook], "--nbval")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-8000:]


def execute(notebook: Path, passes: list[tuple[str, dict[str, str]]]) -> None:
    """Execute every code cell of ``notebook`` once per ``(name, environment)`` pass, in one kernel of this Python
    environment started in the notebook's folder. Before each pass the user namespace is cleared (``%reset -f``:
    a pass sees nothing the previous one defined; imported modules stay loaded) and the environment variables are
    set. The first cell that raises fails the test with the pass, the cell's number and source, and the traceback."""
    from jupyter_client import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    from nbval.kernel import CURRENT_ENV_KERNEL_NAME, NbvalKernelspecManager

    nb = nbformat.read(notebook, as_version=4)
    km = KernelManager(kernel_name=CURRENT_ENV_KERNEL_NAME, kernel_spec_manager=NbvalKernelspecManager())
    client = NotebookClient(nb, km=km, timeout=900, resources={"metadata": {"path": str(notebook.parent)}})
    cells = list(nb.cells)
    nb.cells.append(nbformat.v4.new_code_cell())  # the set-up cell: nbclient stores an executed cell at its index
    try:
        with client.setup_kernel():
            for name, env in passes:
                nb.cells[-1].source = f"%reset -f\nimport os\nos.environ.update({env!r})"
                client.execute_cell(nb.cells[-1], len(cells))
                for index, cell in enumerate(cells):
                    if cell.cell_type != "code":
                        continue
                    try:
                        client.execute_cell(cell, index)
                    except CellExecutionError as error:
                        pytest.fail(f"{notebook.name}, {name} pass, code cell {index}:\n{cell.source}\n\n{error}"[-8000:],
                                    pytrace=False)
    finally:  # nbclient shuts down only the kernels it started itself
        if km.has_kernel:
            km.shutdown_kernel(now=True)


def cpu_environment(tmp_path: Path) -> dict[str, str]:
    """The committed ``cpu`` results, and no way to train: an empty data folder and downloads off, so a chapter that
    asks for a missing run fails the cell that asks."""
    return {"HTAF_PROFILE": "cpu", "HTAF_RESULTS": str(ROOT / "results"), "HTAF_DATA": str(tmp_path / "no-data"),
            "HTAF_DOWNLOAD": "0", "HTAF_CHECKPOINTS": str(tmp_path / "checkpoints")}


@pytest.mark.parametrize("notebook", EXPERIMENTS, ids=_ids(EXPERIMENTS))
def test_experiment_notebook_trains_in_smoke_mode_and_asserts_the_committed_cpu_results(notebook, tmp_path):
    """An experiment chapter, executed as a reader outside the repository runs it (``smoke``: it trains every run it
    shows), then with the ``cpu`` profile against the committed results, where its assertions about them (orderings,
    verdicts, targets) run."""
    execute(notebook, [("smoke", {"HTAF_PROFILE": "smoke", "HTAF_RESULTS": str(tmp_path / "smoke-results")}),
                       ("cpu", cpu_environment(tmp_path))])


#: the Findings page: neither a theory nor an experiment chapter, so neither glob above collects it
FINDINGS = [ROOT / "book" / "findings.ipynb"]


def test_the_findings_page_is_not_collected_by_the_chapter_globs():
    assert not set(FINDINGS) & set(THEORY + EXPERIMENTS) and all(p.is_file() for p in FINDINGS)


@pytest.mark.parametrize("notebook", FINDINGS, ids=_ids(FINDINGS))
def test_findings_page_asserts_the_committed_cpu_results(notebook, tmp_path):
    """The Findings page, executed against the committed results as the experiment chapters are: its verdicts and
    numbers are asserts on :mod:`htaf.findings`, which reads the ``cpu`` runs and never trains."""
    execute(notebook, [("cpu", cpu_environment(tmp_path))])
