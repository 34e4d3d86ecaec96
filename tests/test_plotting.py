"""htaf.plotting: one style per method, the notebook set-up and the shared helpers (Agg backend)."""

from __future__ import annotations

import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from htaf import plotting, surrogates  # noqa: E402

BOOK_METHODS = ["htaf", "htaf_anneal", "htaf_hard", "htaf_default", "full_precision", "relu", "continuous",
                "sigmoid_smooth", "supervised", "untrained", "step", "ste", "rectangle", "sigmoid", "atan"]


@pytest.fixture
def ax():
    fig, axis = plt.subplots()
    yield axis
    plt.close(fig)


def test_every_method_of_the_book_has_a_style():
    for method in BOOK_METHODS + surrogates.available():
        s = plotting.style(method)
        assert set(s) == {"color", "marker", "label", "linestyle"}
        assert s["label"] == plotting.label(method) and s["color"] == plotting.color(method)
        assert matplotlib.colors.is_color_like(s["color"])
    from htaf.nn import unit_registry

    # which methods exist, and their labels, come from the unit registry; the book adds its non-method series
    assert plotting.methods() == [*unit_registry(), *plotting.SERIES]
    assert set(surrogates.available()) | set(plotting.METHOD_STYLES) <= set(plotting.methods())
    for method, spec in unit_registry().items():
        assert plotting.label(method) == spec.label and matplotlib.colors.is_color_like(plotting.color(method))


def test_one_colour_per_method_from_one_colour_blind_safe_palette():
    # every unit method the book draws (and every surrogate family) has a colour of its own, from the palette
    chosen = [*surrogates.available(), *plotting.METHOD_STYLES]
    colours = [plotting.color(m) for m in chosen]
    assert len(set(colours)) == len(colours)
    palette = set(plotting.PALETTE.values())
    assert set(colours) <= palette and {plotting.color(m) for m in plotting.SERIES} <= palette
    # reference series may share a neutral colour, never the whole look: colour, marker and line style together
    looks = [(s["color"], s["marker"], s["linestyle"]) for s in map(plotting.style, [*chosen, *plotting.SERIES])]
    assert len(set(looks)) == len(looks)
    assert len({plotting.color(m) for m in plotting.methods() if m.endswith("_smooth")}) == len(
        [m for m in plotting.methods() if m.endswith("_smooth")])  # derived shades stay distinct
    assert plotting.color("htaf") == "#d55e00" == surrogates.HTAF.color
    for variant in ("htaf_hard", "htaf_anneal", "htaf_default"):  # warm colours, each its own
        r, g, b = matplotlib.colors.to_rgb(plotting.color(variant))
        assert r > g and r > b and plotting.label(variant).startswith("HTAF")
    assert len({plotting.color(v) for v in ("htaf", "htaf_hard", "htaf_anneal", "htaf_default")}) == 4
    assert all(len(plotting.label(m)) <= 21 and "=" not in plotting.label(m) for m in [*chosen, *plotting.SERIES])  # short


def test_figure_fits_the_column_with_at_most_two_panels_a_line():
    fig, axes = plotting.figure(1, 4, height=2.5)
    assert axes.shape == (4,) and tuple(fig.get_size_inches()) == (plotting.COLUMN_WIDTH, 5.0)
    spans = {(ax.get_subplotspec().rowspan.start, ax.get_subplotspec().colspan.start) for ax in axes}
    assert spans == {(0, 0), (0, 1), (1, 0), (1, 1)}  # 1 x 4 becomes 2 x 2
    plt.close(fig)
    fig, axes = plotting.figure(2, 3, sharey="row", height_ratios=[1, 2])
    assert axes.shape == (2, 3) and len(fig.axes) == 6  # a row of 3 wraps onto two lines, a free slot each
    assert axes[1, 2].get_shared_y_axes().joined(axes[1, 2], axes[1, 0])
    assert not axes[1, 2].get_shared_y_axes().joined(axes[1, 2], axes[0, 0])
    plt.close(fig)
    fig, ax = plotting.figure()
    assert fig.get_size_inches()[0] == 5.0 and not isinstance(ax, np.ndarray)
    plt.close(fig)
    # the smallest text of the book's style renders at least 10 px in the 688 px column
    assert plotting.RC["figure.dpi"] * plotting.COLUMN_WIDTH <= 700
    sizes = [plotting.RC[k] for k in plotting.RC if k.endswith(("fontsize", "labelsize", "titlesize"))]
    assert min([plotting.RC["font.size"], *sizes]) / 72 * 688 / plotting.COLUMN_WIDTH >= 10 * 1.2


def test_table_formats_numbers_per_column_and_leaves_the_frame_alone():
    import pandas as pd

    frame = pd.DataFrame({"alpha": [1.0, 4.0, 0.25], "accuracy (%)": [97.95, 98.1234, np.nan], "p": [0.0031, 0.5, 1e-7]},
                         index=pd.Index([0.5, 1.0, 2.0], name="beta"))
    html = plotting.table(frame).to_html()
    for shown in (">4<", ">0.25<", ">98.12<", ">97.95<", ">0.0031<", ">1e-07<", ">\u2013<", ">0.5<"):
        assert shown in html, shown
    assert "NaN" not in html and "nan" not in html and "1.0000" not in html
    assert frame.loc[1.0, "accuracy (%)"] == 98.1234  # the numbers asserts read are untouched
    assert plotting.table(frame).to_html() == html  # stable ids: stored outputs do not churn


def test_surrogate_styles_come_from_their_class():
    for name in surrogates.available():
        cls = type(surrogates.get(name))
        assert plotting.style(name) == {"color": cls.color, "marker": cls.marker, "label": cls.label,
                                        "linestyle": cls.linestyle}
    assert plotting.label("erf") == "erf (Gaussian)"


def test_unknown_method_lists_the_known_ones():
    with pytest.raises(ValueError, match="no plot style for method 'htaff'; known methods: .*htaf_hard.*untrained"):
        plotting.style("htaff")
    with pytest.raises(ValueError, match="known methods"):
        plotting.color(3)


def test_overrides_and_plot(ax):
    (line,) = ax.plot([0, 1], [0, 1], **plotting.style("atan", marker=None, label="atan, alpha=2"))
    assert line.get_color() == plotting.color("atan") and line.get_label() == "atan, alpha=2"
    assert line.get_marker() in (None, "None", "")


def test_band_draws_mean_and_seed_band(ax):
    x = np.arange(4)
    line = plotting.band(ax, x, [0.5, 0.6, 0.7, 0.8], [0.1, np.nan, 0.0, 0.05], "htaf_hard")
    assert line.get_color() == plotting.color("htaf_hard") and line.get_label() == "HTAF (hard)"
    (poly,) = ax.collections
    assert np.isfinite(poly.get_paths()[0].vertices).all()  # NaN std (one seed) draws a zero-width band


def test_errorbar_and_chance_line(ax):
    container = plotting.errorbar(ax, [1, 2], [0.9, 0.95], [0.01, 0.02], "ste")
    assert container.lines[0].get_color() == plotting.color("ste")
    chance = plotting.chance_line(ax, 0.1)
    assert chance.get_ydata()[0] == 0.1 and chance.get_label() == "chance"
    assert plotting.chance_line(ax, 0.5, label="constant", color="k").get_color() == "k"


def test_setup_notebook(monkeypatch):
    import pandas as pd

    monkeypatch.delenv("HTAF_PROFILE", raising=False)
    threads = torch.get_num_threads()
    try:
        assert plotting.setup_notebook(threads=1) == "cpu"
        assert torch.get_num_threads() == 1
        assert plt.rcParams["figure.dpi"] == 100 and plt.rcParams["axes.grid"]
        assert pd.get_option("display.float_format")(0.123456) == "0.1235"
        monkeypatch.setenv("HTAF_PROFILE", "smoke")
        assert plotting.setup_notebook(None, float_format="{:.2f}") == "smoke"
        assert pd.get_option("display.float_format")(0.123456) == "0.12"
        monkeypatch.setenv("HTAF_PROFILE", "nope")
        with pytest.raises(ValueError):
            plotting.setup_notebook()
    finally:
        torch.set_num_threads(threads)
        pd.reset_option("display.float_format")
        plt.rcdefaults()


def test_import_htaf_stays_light():
    code = ("import sys, htaf, htaf.plotting; heavy = {'sympy', 'scipy', 'matplotlib'} & set(sys.modules); "
            "print(sorted(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_alpha_beta_map_draws_every_cell_the_lines_and_the_good_region():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from htaf import plotting

    means = {(a, b): a * b for a in (1.0, 2.0, 4.0) for b in (0.5, 1.0)}
    fig, ax = plt.subplots()
    mesh = plotting.alpha_beta_map(ax, means, good=[(1.0, 0.5), (2.0, 0.5)], best=(1.0, 0.5))
    assert mesh.get_array().size == 6
    texts = sorted(t.get_text() for t in ax.texts)
    assert all(f"{v:.1f}" in texts for v in means.values())
    assert len(ax.patches) == 2 and [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "4"]
    assert any(line.get_xdata()[0] == 1.0 for line in ax.lines)  # alpha = 2 on the log2 axis
    plt.close(fig)


def test_interactive_htaf_is_a_self_contained_deterministic_snippet_with_sliders_and_the_formulas():
    html = plotting.interactive_htaf()
    assert html == plotting.interactive_htaf()  # deterministic: nbval reproduces the notebook's output exactly
    assert html.count('type="range"') == 2
    assert 'id="htaf-explorer-alpha" min="0.5" max="16" step="0.5" value="4"' in html
    assert 'id="htaf-explorer-beta" min="0.25" max="4" step="0.25" value="1"' in html
    assert "<canvas" in html and "<script>" in html and html.count("<script") == 1
    # the formulas, computed in the browser: HTAF, its derivative, the sigmoid of equal peak slope s = alpha*beta/4
    for piece in ("sig(a * Math.tanh(b * x))", "a * b * sig(u) * sig(-u) / (c * c)", "s = a * b / 4",
                  "sig(4 * s * x)", "4 * s * sig(z) * sig(-z)"):
        assert piece in html, piece
    assert plotting.color("htaf") in html and plotting.color("sigmoid") in html
    # nothing is fetched: no URL, no external script, no CDN
    for remote in ("http:", "https:", "src=", "//cdn", "import("):
        assert remote not in html, remote
    other = plotting.interactive_htaf(8, 2, uid="second")
    assert 'id="second-alpha"' in other and 'value="8"' in other and 'id="htaf-explorer' not in other
    with pytest.raises(ValueError):
        plotting.interactive_htaf(uid="not an id")
    with pytest.raises(ValueError):
        plotting.interactive_htaf(alpha=100.0)


def test_interactive_htaf_computes_the_book_s_functions_in_javascript():
    """The snippet's JavaScript functions, run by node, agree with :mod:`htaf.functional` (skipped without node)."""
    import json
    import re
    import shutil

    node = shutil.which("node") or shutil.which("nodejs")
    if not node:
        pytest.skip("node is not on PATH: the snippet's JavaScript cannot be run here")
    from htaf import functional as F

    html = plotting.interactive_htaf()
    functions = re.search(r"(  function sig\(z\).*?)  function draw\(\)", html, re.S).group(1)
    xs = [-6.0, -3.0, -1.0, -0.25, 0.0, 0.4, 2.0, 5.0]
    cases = [(4.0, 1.0), (8.0, 2.0), (0.5, 0.25)]
    script = functions + f"""
var out = [];
{json.dumps(cases)}.forEach(function (ab) {{
  var a = ab[0], b = ab[1], s = a * b / 4;
  {json.dumps(xs)}.forEach(function (x) {{
    out.push([htaf(x, a, b), htafGrad(x, a, b), sigm(x, s), sigmGrad(x, s)]);
  }});
}});
console.log(JSON.stringify(out));
"""
    run = subprocess.run([node, "-e", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    got = iter(json.loads(run.stdout))
    for a, b in cases:
        x = torch.tensor(xs, dtype=torch.float64)
        s = a * b / 4
        expected = torch.stack([F.htaf(x, a, b), F.htaf_grad(x, a, b), torch.sigmoid(4 * s * x),
                                4 * s * torch.sigmoid(4 * s * x) * torch.sigmoid(-4 * s * x)], dim=1)
        for row in expected.tolist():
            np.testing.assert_allclose(next(got), row, rtol=1e-12, atol=1e-300)
