"""The Jupyter Book builds with warnings as errors, and its notebooks are stored executed and error-free."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def toc_files() -> list[str]:
    """Every ``file:`` entry of ``_toc.yml`` (the root included), without extension."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    found = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                found.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk({k: v for k, v in toc.items() if k != "root"})
    return found


# the notebooks the book renders: they must be stored executed (the build does not execute them)
NOTEBOOKS = [ROOT / f"{entry}.ipynb" for entry in toc_files() if (ROOT / f"{entry}.ipynb").exists()]
THEORY_PAGES = ["01_definition", "02_gradient_mass", "03_tail_decay", "04_learning"]


def jupyter_book() -> str:
    exe = Path(sys.executable).parent / "jupyter-book"
    found = str(exe) if exe.exists() else shutil.which("jupyter-book")
    if not found:
        pytest.skip("jupyter-book is not installed")
    return found


#: the tests of the built book (slow)
BOOK = pytest.mark.slow


def _build(out: Path) -> tuple[types.SimpleNamespace, Path]:
    proc = subprocess.run(
        [jupyter_book(), "build", str(ROOT), "--all", "-W", "--keep-going", "--path-output", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    return types.SimpleNamespace(returncode=proc.returncode, stdout=proc.stdout, stderr=proc.stderr), \
        out / "_build" / "html"


@pytest.fixture(scope="session")
def built_book(tmp_path_factory):
    """The book, built once per test session: under pytest-xdist the first worker that needs it builds it into the
    session's shared temporary folder (holding a file lock), the others wait for it and read it."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return _build(tmp_path_factory.mktemp("book"))
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp().parent  # one folder per session, common to its workers
    done = shared / "book-build.json"
    with FileLock(str(shared / "book-build.lock")):
        if not done.is_file():
            proc, html = _build(shared / "book")
            done.write_text(json.dumps({"proc": vars(proc), "html": str(html)}))
        found = json.loads(done.read_text())
    return types.SimpleNamespace(**found["proc"]), Path(found["html"])


@BOOK
def test_book_builds_without_warnings(built_book):
    proc, _ = built_book
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    assert "build succeeded" in log, log[-6000:]


@BOOK
def test_expected_pages_exist(built_book):
    proc, html = built_book
    assert proc.returncode == 0
    expected = ["index.html", "book/index.html", "book/references.html", "book/reproduce.html"]
    expected += [f"book/theory/{name}.html" for name in THEORY_PAGES]
    for page in expected:
        assert (html / page).is_file(), page
    chapter = (html / "book/theory/03_tail_decay.html").read_text(encoding="utf-8")
    assert chapter.count("<img") >= 3  # stored figures are rendered
    refs = (html / "book/references.html").read_text(encoding="utf-8")
    for key in ("SpikingJelly", "Binarized Neural Networks", "Heaviside", "SuperSpike"):
        assert key.lower() in refs.lower()


ROLE = re.compile(r"\{(?:func|class|mod|data|attr|meth|exc|obj)\}`(?:[^`<]*<)?~?(htaf[\w.]*)>?`")


@BOOK
def test_every_api_reference_in_the_book_resolves(built_book):
    """A {func}`htaf...` (or class, mod, data, ...) reference with no target renders as plain code, silently:
    every one the book's pages make must be documented (book/api.md), so that it links."""
    import posixpath

    from sphinx.util.inventory import InventoryFile

    proc, html = built_book
    assert proc.returncode == 0
    with open(html / "objects.inv", "rb") as stream:
        inventory = InventoryFile.load(stream, "", posixpath.join)
    documented = {name for kind, objects in inventory.items() if kind.startswith("py:") for name in objects}
    pages = [(p, p.read_text(encoding="utf-8")) for p in (ROOT / "book").rglob("*.md")]
    pages += [(p, "\n".join(c.source for c in nbformat.read(p, as_version=4).cells if c.cell_type == "markdown"))
              for p in NOTEBOOKS]
    referenced = {(target, p.relative_to(ROOT).as_posix()) for p, text in pages for target in ROLE.findall(text)}
    assert len(referenced) > 50  # the pattern finds the book's references
    missing = sorted((target, page) for target, page in referenced if target not in documented)
    assert not missing, f"references without a documented target (add them to book/api.md): {missing}"


def test_theory_notebooks_are_in_the_toc():
    names = {p.stem for p in NOTEBOOKS if p.parent.name == "theory"}
    assert set(THEORY_PAGES) <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[str(p.relative_to(ROOT)) for p in NOTEBOOKS])
def test_notebook_is_stored_executed_without_errors(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    assert code, "notebook has no code cells"
    for i, cell in enumerate(code):
        assert cell.execution_count is not None, f"code cell {i} was not executed"
        for out in cell.outputs:
            assert out.output_type != "error", f"code cell {i} stored an error: {out.get('ename')}: {out.get('evalue')}"
            if path.parent.name == "theory":
                assert not (out.output_type == "stream" and out.name == "stderr"), f"code cell {i} wrote to stderr"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


# ---------------------------------------------------------------------------------------------------------
# The book as a reader sees it: a headless browser renders a theory page from disk, with no network.
# ---------------------------------------------------------------------------------------------------------

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--virtual-time-budget=10000"]


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("chromium is not on PATH (Debian: apt-get install chromium); the rendered page cannot be checked")


@BOOK
def test_mathjax_is_served_with_the_book(built_book):
    proc, html = built_book
    assert proc.returncode == 0
    page = (html / "book/theory/01_definition.html").read_text(encoding="utf-8")
    assert 'src="../../_static/mathjax/tex-chtml.js"' in page
    assert (html / "_static/mathjax/tex-chtml.js").is_file()
    assert "cdn.jsdelivr.net" not in page and "mathjax@" not in page


@BOOK
def test_math_is_typeset_when_a_browser_opens_the_page_offline(built_book, tmp_path):
    from bs4 import BeautifulSoup

    exe = chromium()
    proc, html = built_book
    assert proc.returncode == 0
    page = html / "book/theory/01_definition.html"
    dom = subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=180)
    assert dom.returncode == 0, dom.stderr[-3000:]
    soup = BeautifulSoup(dom.stdout, "html.parser")
    body = soup.find("article") or soup.body
    assert body is not None, dom.stdout[:2000]
    # every math element of the page was typeset by MathJax
    maths = body.select(".math")
    assert len(maths) >= 20
    assert all(m.find("mjx-container") is not None for m in maths), [m.get_text()[:80] for m in maths if not m.find("mjx-container")]
    assert len(body.find_all("mjx-container")) >= 50
    # and no raw TeX is left in the visible prose (code cells may hold matplotlib's "$...$" labels)
    for hidden in body.find_all(["script", "style", "pre", "mjx-assistive-mml"]):
        hidden.decompose()
    visible = body.get_text(" ")
    for raw in ("\\[", "\\]", "\\(", "$$", "\\alpha", "\\sigma"):
        assert raw not in visible, (raw, visible[max(0, visible.find(raw) - 200):visible.find(raw) + 200])
    # a screenshot renders too (what a reader would see; kept in the test's temporary folder)
    shot = tmp_path / "01_definition.png"
    out = subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
                          "--window-size=1400,2000", page.as_uri()], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
