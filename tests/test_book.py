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


# ---------------------------------------------------------------------------------------------------------
# Navigation and layout as a reader sees them (issue 22): titles without raw TeX, no sideways scrolling on a
# phone, no script error in the console.
# ---------------------------------------------------------------------------------------------------------

#: raw TeX that must not reach the navigation (sidebar, page contents, chapter list) or the browser tab
RAW_TEX = ("\\(", "\\)", "\\[", "$", "\\alpha", "\\beta", "\\pm")
#: a phone's viewport width in CSS pixels
PHONE_WIDTH = 390
#: headless chromium will not make its window narrower than 500 px, so a probe page shows the book's page in an iframe
#: of a phone's width and records, once the page is loaded and MathJax has typeset it, how wide the page's document
#: is and which elements reach past the viewport; --dump-dom then reads it from an attribute of the probe's <body>
PROBE = """<!DOCTYPE html><html><body style="margin:0">
<iframe id="page" src="__URL__" style="width:__WIDTH__px;height:2400px;border:0"></iframe>
<script>
document.getElementById("page").addEventListener("load", function () {
  var w = this.contentWindow;
  function measure() {
    var out;
    try {
      var d = w.document.documentElement, vw = d.clientWidth, wide = [];
      w.document.querySelectorAll("body *").forEach(function (el) {
        var r = el.getBoundingClientRect();
        if (r.right > vw + 1 && wide.length < 12) {
          wide.push(el.tagName.toLowerCase() + "." + String(el.className).slice(0, 60) + " right=" + Math.round(r.right));
        }
      });
      var figures = [];
      w.document.querySelectorAll("div.cell_output img, figure img").forEach(function (img) {
        figures.push({src: img.getAttribute("src").split("/").pop(), natural: img.naturalWidth,
                      shown: Math.round(img.getBoundingClientRect().width)});
      });
      out = {scrollWidth: d.scrollWidth, clientWidth: vw, innerWidth: w.innerWidth,
             typeset: w.document.querySelectorAll("mjx-container").length, wide: wide, figures: figures};
    } catch (e) { out = {error: String(e)}; }
    document.body.setAttribute("data-probe", JSON.stringify(out));
  }
  var done = (w.MathJax && w.MathJax.startup && w.MathJax.startup.promise) || Promise.resolve();
  done.then(function () { setTimeout(measure, 500); });
});
</script></body></html>"""


def _html_pages(html: Path) -> list[Path]:
    return sorted(p for p in html.rglob("*.html")
                  if "_static" not in p.parts and "_sources" not in p.parts and p.name not in {"genindex.html", "search.html"}
                  and "http-equiv=\"Refresh\"" not in p.read_text(encoding="utf-8")[:2000])


def _render(exe: str, url: str, profile: Path, width: int, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={max(width, 500)},2400",
                           "--enable-logging=stderr", "--v=0", *extra, "--dump-dom", url],
                          capture_output=True, text=True, timeout=180)


#: where a page's navigation and titles are: the left sidebar, the page's own contents (right), prev/next links, every
#: toctree (the chapter list) and the headings; the tags and classes they select
NAVIGATION = ("nav.bd-docs-nav", "nav.bd-links", ".bd-sidebar-primary", ".bd-sidebar-secondary", ".page-toc",
              ".prev-next-area", ".toctree-wrapper", "h1", "h2", "h3")
NAVIGATION_TAGS = {"title", "nav", "h1", "h2", "h3"}
NAVIGATION_CLASSES = {"bd-sidebar-primary", "bd-sidebar-secondary", "page-toc", "prev-next-area", "toctree-wrapper"}


@BOOK
def test_titles_and_navigation_show_no_raw_tex(built_book):
    """Titles with math showed ``\\((\\alpha, \\beta)\\)`` in the sidebar, the tab and the landing page's chapter list:
    page and section titles are written in Unicode (alpha, beta, ±), math stays in the body."""
    from bs4 import BeautifulSoup
    from bs4.filter import ElementFilter

    class Navigation(ElementFilter):
        """Only the elements the selectors below can match (and everything inside them): the tree of a whole page
        takes about three times as long to build, with the same matches."""

        def allow_tag_creation(self, nsprefix, name, attrs):
            classes = str((attrs or {}).get("class", "")).split()
            return name in NAVIGATION_TAGS or not NAVIGATION_CLASSES.isdisjoint(classes)

    # the filter keeps every element a selector can match
    assert all(tag in NAVIGATION_TAGS or cls in NAVIGATION_CLASSES
               for tag, _, cls in (selector.partition(".") for selector in NAVIGATION))
    proc, html = built_book
    assert proc.returncode == 0
    pages = _html_pages(html)
    assert len(pages) >= len(toc_files())
    found = []
    for page in pages:
        soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser", parse_only=Navigation())
        title = soup.title.get_text() if soup.title else ""
        navs = [title]
        for selector in NAVIGATION:
            navs += [el.get_text(" ") for el in soup.select(selector)]
        for text in navs:
            for raw in RAW_TEX:
                if raw in text:
                    found.append((page.relative_to(html).as_posix(), raw, " ".join(text.split())[:160]))
    assert not found, found[:10]
    sensitivity = (html / "book/experiments/sensitivity.html").read_text(encoding="utf-8")
    assert "<title>Where the tail matters: HTAF’s (α, β) map" in sensitivity or \
        "<title>Where the tail matters: HTAF's (α, β) map" in sensitivity


@BOOK
@pytest.mark.parametrize("page", ["book/experiments/sensitivity.html", "book/theory/03_tail_decay.html",
                                  "book/theory/01_definition.html"])
def test_no_page_is_wider_than_a_phone(built_book, tmp_path, page):
    """At 390 px the page does not scroll sideways: display equations, tables and figures scroll inside their own
    box (book/_static/htaf.css). Figures keep the size they were drawn at, so their text stays at least 10 px tall
    (the smallest is 8 pt at 100 dpi, 11 px): shrunk to the phone's column it would be about 6 px."""
    exe = chromium()
    proc, html = built_book
    assert proc.returncode == 0
    probe = tmp_path / "probe.html"
    probe.write_text(PROBE.replace("__URL__", (html / page).as_uri()).replace("__WIDTH__", str(PHONE_WIDTH)),
                     encoding="utf-8")
    # the probe reads the framed page's document: file pages count as one origin only with this flag
    dom = _render(exe, probe.as_uri(), tmp_path / "profile", PHONE_WIDTH, "--allow-file-access-from-files")
    assert dom.returncode == 0, dom.stderr[-3000:]
    found = re.search(r'data-probe="([^"]*)"', dom.stdout)
    assert found, "the probe did not run: " + dom.stderr[-2000:]
    import html as htmllib

    measured = json.loads(htmllib.unescape(found.group(1)))
    assert measured["innerWidth"] == PHONE_WIDTH, measured
    assert measured["typeset"] > 0, measured  # MathJax ran before the measurement
    assert measured["scrollWidth"] <= PHONE_WIDTH, measured
    assert measured["figures"], measured  # the page has figures, and the probe saw them
    shrunk = [f for f in measured["figures"] if f["shown"] < f["natural"] - 1]
    assert not shrunk, shrunk


@BOOK
def test_no_script_error_in_the_console(built_book, tmp_path):
    """Every page logged ``Identifier 'THEBE_JS_URL' has already been declared``: Sphinx 7.4 wrote sphinx-thebe's
    inline script twice (book/_ext/htaf_dedupe_js.py keeps one). The built pages hold each inline script once and a
    browser opening a page logs no error."""
    from bs4 import BeautifulSoup, SoupStrainer

    exe = chromium()
    proc, html = built_book
    assert proc.returncode == 0
    for page in _html_pages(html):
        # the <head> alone: parsing whole pages takes a few seconds
        head = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser", parse_only=SoupStrainer("head"))
        inline = [s.get_text() for s in head.find_all("script") if not s.get("src") and s.get_text().strip()]
        assert len(inline) == len(set(inline)), (page.name, [s[:80] for s in inline if inline.count(s) > 1])
    for page in ["book/theory/01_definition.html", "book/experiments/sensitivity.html"]:
        dom = _render(exe, (html / page).as_uri(), tmp_path / "profile", 1200)
        assert dom.returncode == 0, dom.stderr[-3000:]
        console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
        errors = [line for line in console
                  if ":ERROR:CONSOLE" in line or "Uncaught" in line or "Error:" in line or "already been declared" in line]
        assert not errors, (page, errors)
