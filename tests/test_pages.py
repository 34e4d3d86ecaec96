"""What a reader of the book gets from every notebook: a launch cell, figures sized for the page with captions and
alt text, and no visible cell that only asserts (the stored notebooks are read; nothing is executed)."""

from __future__ import annotations

import ast
import base64
import io
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "book" / "_launch_cell.py"
NOTEBOOKS = sorted((ROOT / "book").rglob("*.ipynb"))
IDS = [p.name for p in NOTEBOOKS]
WITHOUT_FIGURES = {"findings.ipynb"}  # a table and prose: the chapters hold the figures


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def test_the_launch_cell_installs_the_project_and_picks_the_quick_profile_outside_the_repository(tmp_path):
    text = LAUNCH.read_text(encoding="utf-8")
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["urls"]
    assert f"git+{urls['Source']}" in text
    code = text + "\nprint('profile', os.environ.get('HTAF_PROFILE'))\n"
    env = {k: v for k, v in os.environ.items() if k != "HTAF_PROFILE"}
    outside = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert outside.returncode == 0, outside.stderr
    assert outside.stdout.splitlines() == [
        "Outside the htaf repository: HTAF_PROFILE=smoke (a run of minutes); set HTAF_PROFILE to choose another profile.",
        "profile smoke"]
    inside = subprocess.run([sys.executable, "-c", code], cwd=ROOT / "book" / "experiments", env=env,
                            capture_output=True, text=True)
    assert inside.stdout == "profile None\n"  # a no-op in the repository
    chosen = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**env, "HTAF_PROFILE": "cpu"},
                            capture_output=True, text=True)
    assert chosen.stdout == "profile cpu\n"  # the reader's choice stands


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_every_notebook_starts_with_the_launch_cell_hidden_in_the_book(path):
    first = _read(path).cells[0]
    assert first.cell_type == "code" and first.source.strip() == LAUNCH.read_text(encoding="utf-8").strip()
    assert "remove-cell" in first.metadata.get("tags", [])


def _figures(nb):
    from PIL import Image

    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            png = out.get("data", {}).get("image/png")
            if png:
                yield i, cell, Image.open(io.BytesIO(base64.b64decode(png)))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_every_figure_fits_the_text_column_and_has_a_numbered_caption_and_alt_text(path):
    """A figure at most 7 inches wide is shown at (or near) its own size in the 688 px column, so the book's fonts
    (``plotting.RC``: 9 pt and up, 8 pt at least where a chapter sets a size) render at 11 px or more; and at most two
    panels sit side by side (``plotting.figure``)."""
    nb = _read(path)
    found = list(_figures(nb))
    if path.name in WITHOUT_FIGURES:
        assert not found, f"{path.name} has figures now: drop it from WITHOUT_FIGURES"
        return
    assert found, "no stored figure"
    names = set()
    for i, cell, image in found:
        dpi = image.info.get("dpi", (72,))[0]
        assert image.width / dpi <= 7.0, f"cell {i}: a figure {image.width / dpi:.1f} in wide is shrunk on the page"
        assert round(dpi) >= 100, f"cell {i}: drawn at {dpi} dpi"
        meta = cell.metadata.get("mystnb", {})
        caption, name = meta.get("figure", {}).get("caption", ""), meta.get("figure", {}).get("name", "")
        assert len(caption) > 40 and name.startswith("fig-"), f"cell {i}: no caption or no fig- name"
        assert len(meta.get("image", {}).get("alt", "")) > 40, f"cell {i}: no alt text"
        shown = [o for o in cell.outputs if o.output_type != "stream"]
        assert len(shown) == 1, f"cell {i}: the caption would wrap each of its {len(shown)} outputs (one label twice)"
        assert name not in names, name
        names.add(name)
        assert "plt.subplots(" not in cell.source, f"cell {i}: use plotting.figure (at most two panels a line)"
        small = [int(s) for s in re.findall(r"fontsize=(\d+)", cell.source)]
        assert all(s >= 8 for s in small), f"cell {i}: text smaller than 8 pt"
    assert sum(len(c.get("outputs", [])) and "image/png" in str(c.outputs) for c in nb.cells) == len(names)


def _only_asserts(source: str) -> bool:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    body = [n for n in tree.body if not isinstance(n, (ast.Import, ast.ImportFrom))]
    return bool(body) and all(isinstance(n, ast.Assert) for n in body)


def test_only_asserts_is_recognised():
    assert _only_asserts("assert x > 1\nassert y")
    assert not _only_asserts("x = 1\nassert x") and not _only_asserts("") and not _only_asserts("import math")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_no_visible_cell_only_asserts(path):
    for i, cell in enumerate(_read(path).cells):
        if cell.cell_type == "code" and _only_asserts(cell.source):
            tags = cell.metadata.get("tags", [])
            assert {"hide-input", "remove-input", "remove-cell"} & set(tags), f"cell {i} only asserts: hide its input"


def _math_pipes_in_tables(text: str) -> list[str]:
    """Table rows of markdown ``text`` with a ``|`` inside inline math: the table splits the cell there, and the
    page shows raw TeX and loses the next column (write ``\\lvert x\\rvert``)."""
    return [line for line in text.splitlines()
            if line.lstrip().startswith("|") and any("|" in span for span in re.findall(r"\$([^$]+)\$", line))]


def test_math_pipes_in_tables_are_found():
    assert _math_pipes_in_tables("| `ste` | $\\mathbb 1[|x| \\le 1]$ | BinaryNet |")
    assert not _math_pipes_in_tables("| `ste` | $\\mathbb 1[\\lvert x\\rvert \\le 1]$ | BinaryNet |\n$|x|$ in prose")


@pytest.mark.parametrize("path", [*NOTEBOOKS, *sorted((ROOT / "book").rglob("*.md"))],
                         ids=lambda p: p.name)
def test_no_table_cell_is_split_by_a_pipe_in_its_math(path):
    if path.suffix == ".ipynb":
        text = "\n".join(c.source for c in _read(path).cells if c.cell_type == "markdown")
    else:
        text = path.read_text(encoding="utf-8")
    assert not _math_pipes_in_tables(text), _math_pipes_in_tables(text)
