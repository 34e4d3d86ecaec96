"""One look for every figure of the book: a style per method, figures sized for the page, the notebook set-up cell.

Every method the book plots has one colour, marker, line style and label, everywhere. The colours come from one
colour-blind-safe palette (:data:`PALETTE`: Okabe-Ito and Paul Tol's muted scheme), and every method also has a marker
and a line style of its own, so curves stay apart in grey print too. HTAF is vermillion (``#d55e00``); its variants
are the palette's other warm colours (wine, orange, rose). Which unit methods exist and their labels come from the unit
registry (:func:`htaf.nn.unit_registry`); surrogate families take their style from their class in
:mod:`htaf.surrogates` (``label``, ``color``, ``marker``, ``linestyle``), so a newly registered family is
styled too (its ``<family>_smooth`` unit in a lighter shade of its colour, dashed). :data:`METHOD_STYLES` holds the
colours the book chooses for the other unit methods (HTAF's variants, the smooth sigmoid, the references), and
:data:`SERIES` the curves that are not unit methods (untrained floor, supervised ceiling, the step, ...).

>>> from htaf import plotting
>>> plotting.style("htaf")
{'color': '#d55e00', 'marker': 'o', 'label': 'HTAF', 'linestyle': '-'}
>>> plotting.label("htaf_hard"), plotting.color("atan")
('HTAF (hard)', '#009e73')
>>> plotting.style("htaf", marker=None, label="HTAF, alpha=8")["label"]   # override any key
'HTAF, alpha=8'

``ax.plot(x, y, **style(m))`` draws method ``m``; :func:`figure` makes a figure the width of the book's text column
(at most two panels side by side, text at least 10 px on the page), :func:`table` formats a displayed table, and
:func:`band`, :func:`errorbar` and :func:`chance_line` are the helpers the chapters share. Matplotlib is imported by
these helpers only (``import htaf`` does not load it); :func:`setup_notebook` is the set-up cell of every chapter.
"""

from __future__ import annotations

import os
from typing import Any

from . import surrogates
from ._kernels import HTAF_ALPHA, HTAF_BETA

__all__ = ["PALETTE", "METHOD_STYLES", "SERIES", "RC", "COLUMN_WIDTH", "methods", "style", "unit_style", "label", "color",
           "setup_notebook", "figure", "legend_outside", "table", "band", "errorbar", "chance_line", "alpha_beta_map",
           "interactive_htaf"]

#: the book's colours: Okabe-Ito (Okabe & Ito 2008) and Paul Tol's muted scheme, both readable with the common
#: colour-vision deficiencies, plus neutral greys for reference curves. Every colour of :data:`METHOD_STYLES`,
#: :data:`SERIES` and of the surrogate families (:mod:`htaf.surrogates`) is one of these.
PALETTE: dict[str, str] = {
    "vermillion": "#d55e00", "orange": "#e69f00", "sky_blue": "#56b4e9", "bluish_green": "#009e73",
    "blue": "#0072b2", "reddish_purple": "#cc79a7", "yellow": "#f0e442",  # Okabe-Ito
    "indigo": "#332288", "cyan": "#88ccee", "teal": "#44aa99", "green": "#117733", "olive": "#999933",
    "sand": "#ddcc77", "rose": "#cc6677", "wine": "#882255", "purple": "#aa4499",  # Tol muted
    "black": "#000000", "dark_grey": "#555555", "grey": "#999999", "light_grey": "#bbbbbb",
}

#: the book's colour, marker and line style of the unit methods that are not a surrogate family (those carry
#: theirs in their class); their labels are the registry's. HTAF's variants take the palette's other warm colours.
METHOD_STYLES: dict[str, tuple[str, str | None, str]] = {
    "htaf_hard": (PALETTE["wine"], "D", "-"),
    "htaf_anneal": (PALETTE["orange"], "p", "--"),
    "full_precision": (PALETTE["black"], "x", "-"),
    "relu": (PALETTE["sky_blue"], "+", "-."),
    "sigmoid_smooth": (PALETTE["cyan"], "2", "--"),
}
#: curves of the book that are not unit methods: name -> (label, colour, marker, line style). Reference curves are
#: neutral (black, greys); they may share a colour with one another, never their colour, marker and line style.
SERIES: dict[str, tuple[str, str, str | None, str]] = {
    "htaf_default": ("HTAF default", PALETTE["rose"], "8", "-."),
    "continuous": ("continuous", PALETTE["grey"], "1", "-"),
    "supervised": ("supervised", PALETTE["black"], "H", "-"),
    "untrained": ("untrained", PALETTE["light_grey"], ".", ":"),
    "step": ("step $H$", PALETTE["black"], None, "--"),
}
#: a continuous activation without a colour of its own
_REAL_STYLE = ("#636363", ".", "-")

#: the width of a figure of the book in inches: 670 px at the figures' 100 dpi (:data:`RC`), with its margins within the 688 px text column
COLUMN_WIDTH = 6.7
#: the matplotlib settings of the book's figures (applied by :func:`setup_notebook`). A figure :data:`COLUMN_WIDTH`
#: wide is drawn at the column's own size, so a font of ``s`` points renders ``s * 100 / 72`` px: the smallest
#: text (9 pt ticks and legends) is 12.5 px. Chapters draw text of at least 8 pt (11 px).
RC = {"figure.dpi": 100, "savefig.dpi": 100, "figure.figsize": (COLUMN_WIDTH, 3.2), "font.size": 10,
      "axes.titlesize": 10, "axes.labelsize": 10, "xtick.labelsize": 9, "ytick.labelsize": 9, "legend.fontsize": 9,
      "legend.title_fontsize": 9, "figure.titlesize": 10.5, "axes.grid": True, "grid.alpha": 0.3,
      "lines.markersize": 5, "legend.framealpha": 0.85,
      "axes.prop_cycle": "cycler('color', ['#0072b2', '#d55e00', '#009e73', '#cc79a7', '#e69f00', '#56b4e9', "
                         "'#882255', '#999933'])"}  # curves without a method style: the palette, in order


def methods() -> list[str]:
    """Every method with a style: the unit methods of :func:`htaf.nn.unit_registry`, then :data:`SERIES`."""
    from .nn import unit_registry

    return [*unit_registry(), *SERIES]


def _lighter(colour: str, share: float = 0.45) -> str:
    import matplotlib.colors

    rgb = [c + (1.0 - c) * share for c in matplotlib.colors.to_rgb(colour)]
    return matplotlib.colors.to_hex(rgb)


def _lookup(method: str) -> tuple[str, str, str | None, str]:
    from .nn import unit_registry

    if isinstance(method, str) and method in SERIES:
        return SERIES[method]
    spec = unit_registry().get(method) if isinstance(method, str) else None
    if spec is None:
        raise ValueError(f"no plot style for method {method!r}; known methods: {', '.join(methods())}")
    if method in METHOD_STYLES:
        return (spec.label, *METHOD_STYLES[method])
    if spec.family is None:
        return (spec.label, *_REAL_STYLE)
    cls = surrogates.family_class(spec.family)
    if spec.kind == "smooth":
        return spec.label, _lighter(cls.color), cls.marker, "--"
    return spec.label, cls.color, cls.marker, cls.linestyle


def style(method: str, **overrides: Any) -> dict[str, Any]:
    """Keyword arguments that draw ``method`` in its style: ``ax.plot(x, y, **style(method))``.

    Keys ``color``, ``marker``, ``label``, ``linestyle``; ``overrides`` replace or add keys (for example
    ``marker=None`` for a dense curve, or another ``label``).

    Raises:
        ValueError: ``method`` is neither a registered unit method nor in :data:`SERIES`; lists the known ones.
    """
    name, colour, marker, linestyle = _lookup(method)
    return {"color": colour, "marker": marker, "label": name, "linestyle": linestyle, **overrides}


def unit_style(unit: str, units: list[str], **overrides: Any) -> dict[str, Any]:
    """The style of a unit of the sensitivity chapter (:func:`htaf.experiments.sensitivity.label_units`): HTAF's
    cells (``"htaf a=4"``) in shades of red, darker for a larger alpha (their rank among the HTAF cells of
    ``units``), with the label ``HTAF α = 4``; any other unit in its method's :func:`style`.

    >>> print(unit_style("htaf a=4", ["htaf a=1", "htaf a=4", "atan"])["label"])
    HTAF $\\alpha = 4$
    """
    if not unit.startswith("htaf a="):
        return style(unit, **overrides)
    import matplotlib.pyplot as plt
    import numpy as np

    ranks = [u for u in units if u.startswith("htaf a=")]
    reds = plt.cm.Reds(np.linspace(0.35, 1.0, len(ranks)))
    return {"color": reds[ranks.index(unit)], "marker": "o", "linestyle": "-",
            "label": rf"HTAF $\alpha = {unit.split('=')[1]}$", **overrides}


def label(method: str) -> str:
    """The display name of ``method`` (``"HTAF"``, ``"erf (Gaussian)"``, ``"HTAF (hard)"``, ...)."""
    return _lookup(method)[0]


def color(method: str) -> str:
    """The colour of ``method`` (HTAF: ``"#d55e00"``)."""
    return _lookup(method)[1]


def setup_notebook(threads: int | None = 1, *, float_format: str = "{:.4g}", default_profile: str = "cpu") -> str:
    """The first cell of every chapter: figure style, inline PNG figures, torch threads, pandas display.

    Sets the matplotlib settings :data:`RC`, PNG figures in Jupyter, ``torch.set_num_threads(threads)``
    (``None`` keeps torch's choice; small models on a shared 2-core CPU run much faster on one thread) and
    pandas' float format ``float_format``.

    Returns:
        The experiment profile the chapter runs: ``$HTAF_PROFILE``, else ``default_profile`` (checked by
        :func:`htaf.engine.resolve_profile`).
    """
    import matplotlib.pyplot as plt
    import pandas as pd
    import torch

    from .engine import resolve_profile

    plt.rcParams.update(RC)
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with Jupyter
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        set_matplotlib_formats("png")
    if threads is not None:
        torch.set_num_threads(int(threads))
    pd.set_option("display.float_format", float_format.format)
    return resolve_profile(os.environ.get("HTAF_PROFILE") or default_profile)


def figure(nrows: int = 1, ncols: int = 1, *, height: float = 2.9, width: float | None = None, sharex=False,
           sharey=False, squeeze: bool = True, max_cols: int = 2, height_ratios=None, layout: str | None = "constrained",
           **kwargs: Any):
    """A figure and its axes sized for the book's text column: at most ``max_cols`` panels side by side.

    ``axes`` has the shape the chapter asks for (``nrows`` by ``ncols``, squeezed like ``plt.subplots``), so
    ``axes[i, j]`` is panel ``j`` of row ``i``; a row wider than ``max_cols`` is wrapped onto several lines of
    panels (1 x 4 becomes 2 x 2; a row of 3 leaves a free slot at its end, where a legend anchored to the right of
    the row's last panel falls). The figure is :data:`COLUMN_WIDTH` wide (``width`` inches if given; one panel alone:
    5 inches), and each line of panels ``height`` inches high.

    Args:
        sharex, sharey: as in ``plt.subplots`` (``True``/``"all"``, ``"row"``, ``"col"``; rows and columns of
            ``axes``). Tick labels shared with a neighbour on the left are hidden.
        height_ratios: one ratio per row of ``axes``.
        layout: matplotlib's layout engine (constrained by default: do not call ``tight_layout`` on the figure).
        kwargs: passed to ``plt.figure``.

    Returns:
        ``(fig, axes)``.
    """
    import math

    import matplotlib.pyplot as plt
    import numpy as np

    wrap = max(1, math.ceil(ncols / max_cols))  # lines of panels per row of axes
    cols = min(ncols, max_cols)
    lines = nrows * wrap
    if width is None:
        width = COLUMN_WIDTH if cols > 1 else 5.0
    ratios = None if height_ratios is None else [r for r in height_ratios for _ in range(wrap)]
    fig = plt.figure(figsize=(width, height * lines), layout=layout, **kwargs)
    grid = fig.add_gridspec(lines, cols, height_ratios=ratios)
    axes = np.empty((nrows, ncols), dtype=object)
    for i, j in np.ndindex(nrows, ncols):
        axes[i, j] = fig.add_subplot(grid[i * wrap + j // cols, j % cols])
    share = {"all": True, "none": False}
    for which, how in (("x", share.get(sharex, sharex)), ("y", share.get(sharey, sharey))):
        for i, j in np.ndindex(nrows, ncols):
            ref = {True: axes[0, 0], "row": axes[i, 0], "col": axes[0, j]}.get(how)
            if ref is not None and ref is not axes[i, j]:
                getattr(axes[i, j], f"share{which}")(ref)
    if share.get(sharey, sharey) in (True, "row"):
        for i, j in np.ndindex(nrows, ncols):
            if j % cols:
                axes[i, j].tick_params(labelleft=False)
    if share.get(sharex, sharex) in (True, "col") and wrap == 1:
        for i, j in np.ndindex(nrows - 1, ncols):
            axes[i, j].tick_params(labelbottom=False)
    if squeeze:
        axes = axes.item() if axes.size == 1 else axes.reshape(-1) if 1 in (nrows, ncols) else axes
    return fig, axes


def legend_outside(ax, *args, ncol: int | None = None, **kwargs: Any):
    """A legend for ``ax`` off its panels: in the free slot to the right of ``ax`` when :func:`figure` left one
    there (a wrapped row of 3), else below the figure in up to ``ncol`` (default 3) columns. Returns the legend."""
    fig = ax.get_figure()
    handles, labels = args if args else ax.get_legend_handles_labels()
    spec = ax.get_subplotspec()
    grid = spec.get_gridspec()
    col = spec.colspan.stop
    taken = {(r, c) for other in fig.axes if other.get_subplotspec() is not None
             for r in other.get_subplotspec().rowspan for c in other.get_subplotspec().colspan}
    if col < grid.ncols and not any((r, col) in taken for r in spec.rowspan):
        legend = ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.06, 1.0), **kwargs)
        legend.set_in_layout(False)
        return legend
    return fig.legend(handles, labels, loc="outside lower center", ncol=ncol or min(3, len(labels)), **kwargs)


def _number(value: float, decimals: int) -> str:
    if value == 0 or abs(value) >= 0.1:
        return f"{value:.{decimals}f}"
    return f"{value:.2g}"  # a small value: two significant digits (0.0031, 4.2e-07)


def table(frame, *, decimals: int | dict = 2, na: str = "\u2013", params=(), caption: str | None = None):
    """``frame`` for display: numbers with ``decimals`` decimals, parameters as written, missing cells ``na``.

    Anything but a ``DataFrame`` or ``Series`` with unique labels is returned as it is. A float column whose values are all short numbers (integers, ``0.25``, ``1e-3``) or named in ``params`` is a
    parameter and is written as given (``4``, ``0.25``); other float columns get ``decimals`` decimals (a dict: per
    column; values below 0.1 get two significant digits instead). Float index levels are written as given. The numbers
    of ``frame`` are untouched: asserts read ``frame``, the reader sees the returned ``Styler``.
    """
    import hashlib

    import numpy as np
    import pandas as pd

    if isinstance(frame, pd.Series):
        frame = frame.to_frame()
    if not isinstance(frame, pd.DataFrame) or not (frame.index.is_unique and frame.columns.is_unique):
        return frame  # not a table this helper formats (a Styler, a number, a frame with repeated labels)

    def short(values) -> bool:
        finite = [float(v) for v in values if isinstance(v, (int, float, np.number)) and np.isfinite(v)]
        return bool(finite) and all(len(f"{v:g}") <= 5 and float(f"{v:g}") == v for v in finite)

    def as_written(v):
        return na if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:g}" if isinstance(
            v, (float, np.floating)) else str(v)

    formats = {}
    for column in frame.columns:
        values = frame[column]
        if not pd.api.types.is_float_dtype(values):
            continue
        if column in params or short(values):
            formats[column] = as_written
        else:
            places = decimals.get(column, 2) if isinstance(decimals, dict) else decimals
            formats[column] = lambda v, places=places: na if np.isnan(v) else _number(float(v), places)
    uuid = hashlib.sha1(frame.to_csv().encode()).hexdigest()[:10]  # stable: the stored HTML does not churn
    styled = frame.style.set_uuid(uuid).format(formats, na_rep=na).set_table_attributes('class="dataframe"')
    for level in range(frame.index.nlevels):
        if pd.api.types.is_float_dtype(frame.index.get_level_values(level)):
            styled = styled.format_index(as_written, axis=0, level=level)
    if caption:
        styled = styled.set_caption(caption)
    return styled


def band(ax, x, mean, std, method: str, *, alpha: float = 0.2, **overrides: Any):
    """Draw ``mean`` against ``x`` in ``method``'s style with a band of +-``std`` (the spread over seeds).

    A missing ``std`` (NaN, a single seed) draws no band at that point. Returns the line.
    """
    import numpy as np

    mean, std = np.asarray(mean, dtype=float), np.nan_to_num(np.asarray(std, dtype=float), nan=0.0)
    (line,) = ax.plot(x, mean, **style(method, **overrides))
    ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=alpha, linewidth=0)
    return line


def errorbar(ax, x, mean, std, method: str, **overrides: Any):
    """``ax.errorbar`` of ``mean`` +- ``std`` in ``method``'s style (caps of 3 points). Returns the container."""
    return ax.errorbar(x, mean, yerr=std, **{"capsize": 3, **style(method, **overrides)})


def chance_line(ax, value: float, label: str = "chance", **overrides: Any):
    """A dashed grey horizontal line at ``value`` (chance accuracy, a constant predictor's error). Returns it."""
    return ax.axhline(value, **{"color": "grey", "linestyle": "--", "linewidth": 1, "label": label, **overrides})


def alpha_beta_map(ax, means, *, good=(), best=None, fmt: str = "{:.1f}", cmap: str = "viridis"):
    r"""Draw a map of HTAF's :math:`(\alpha, \beta)` cells: ``means[(alpha, beta)]`` as coloured cells on log2 axes.

    Also drawn: each cell's value (``fmt``), the lines of equal peak slope :math:`\alpha\beta/4` (grey, dashed,
    labelled), the line :math:`\alpha = 2` (black: to its right HTAF's tail is heavier than that of the sigmoid of
    equal peak slope), an outline around every cell of ``good`` and a star on ``best``. Returns the mesh (for a
    colour bar).
    """
    import math

    import numpy as np

    alphas = sorted({float(a) for a, _ in means})
    betas = sorted({float(b) for _, b in means})
    la, lb = np.log2(alphas), np.log2(betas)
    grid = np.array([[means.get((a, b), np.nan) for a in alphas] for b in betas], dtype=float)

    def edges(centres):
        mids = (centres[1:] + centres[:-1]) / 2 if len(centres) > 1 else np.array([])
        return np.concatenate([[centres[0] - 0.5], mids, [centres[-1] + 0.5]])

    mesh = ax.pcolormesh(edges(la), edges(lb), grid, cmap=cmap, shading="flat")
    for i, j in np.ndindex(grid.shape):
        if not math.isnan(grid[i, j]):
            r, g, b, _ = mesh.cmap(mesh.norm(grid[i, j]))
            light = 0.299 * r + 0.587 * g + 0.114 * b > 0.5  # black text on light cells, white on dark
            ax.text(la[j], lb[i], fmt.format(grid[i, j]), ha="center", va="center", fontsize=8,
                    color="k" if light else "w")
    x = np.linspace(la[0] - 0.5, la[-1] + 0.5, 50)
    for k in range(-10, 11, 2):  # log2(alpha) + log2(beta) = log2(4 * slope), every factor 4 of peak slope
        y = math.log2(4.0) + k - x
        inside = (y >= lb[0] - 0.5) & (y <= lb[-1] + 0.5)
        if inside.sum() > 1:
            ax.plot(x[inside], y[inside], color="0.8", linestyle="--", linewidth=0.8)
            ax.text(x[inside][-1], y[inside][-1], f"{2.0 ** k:g}", fontsize=8, color="0.3", ha="left", va="center")
    ax.axvline(1.0, color="k", linewidth=1.2)
    for a, b in good:
        ax.add_patch(__import__("matplotlib.patches", fromlist=["Rectangle"]).Rectangle(
            (math.log2(a) - 0.5, math.log2(b) - 0.5), 1, 1, fill=False, edgecolor=PALETTE["vermillion"], linewidth=1.8))
    if best is not None:
        ax.plot(math.log2(best[0]), math.log2(best[1]) + 0.3, marker="*", color=PALETTE["vermillion"], markersize=10, linestyle="none")
    ax.set_xticks(la, [f"{a:g}" for a in alphas])
    ax.set_yticks(lb, [f"{b:g}" for b in betas])
    ax.set_xlabel(r"$\alpha$ (black line: $\alpha = 2$)")
    ax.set_ylabel(r"$\beta$ (dashed: equal peak slope $\alpha\beta/4$)")
    ax.grid(False)
    return mesh


_INTERACTIVE_TEMPLATE = r"""<div class="htaf-explorer" id="__UID__" style="max-width:100%;font-size:0.95em;text-align:left">
<div style="display:flex;flex-wrap:wrap;gap:0.4em 1.4em;align-items:center;margin-bottom:0.4em">
<label>&alpha; <input type="range" id="__UID__-alpha" min="__AMIN__" max="__AMAX__" step="__ASTEP__" value="__ALPHA__" aria-label="alpha"> <output id="__UID__-alpha-out">__ALPHA__</output></label>
<label>&beta; <input type="range" id="__UID__-beta" min="__BMIN__" max="__BMAX__" step="__BSTEP__" value="__BETA__" aria-label="beta"> <output id="__UID__-beta-out">__BETA__</output></label>
<label><input type="checkbox" id="__UID__-log"> derivative on a log scale</label>
</div>
<div id="__UID__-info" style="font-variant-numeric:tabular-nums">peak slope s = &alpha;&beta;/4</div>
<canvas id="__UID__-canvas" role="img" aria-label="HTAF, its derivative and the sigmoid of equal peak slope, redrawn for the chosen alpha and beta" style="display:block;width:100%;height:__HEIGHT__px;touch-action:pan-y"></canvas>
<div style="font-size:0.9em"><span style="color:__CHTAF__">&#9473;&#9473; HTAF f(x) = &sigma;(&alpha; tanh(&beta;x)) and f&prime;(x)</span> &nbsp;
<span style="color:__CSIG__">&#9476;&#9476; sigmoid &sigma;(4sx) of equal peak slope s and its derivative</span></div>
<noscript>This figure needs JavaScript in the browser.</noscript>
<script>
(function () {
  "use strict";
  var uid = "__UID__", X = __XMAX__, N = 400;
  var root = document.getElementById(uid), canvas = document.getElementById(uid + "-canvas");
  var ia = document.getElementById(uid + "-alpha"), ib = document.getElementById(uid + "-beta");
  var oa = document.getElementById(uid + "-alpha-out"), ob = document.getElementById(uid + "-beta-out");
  var logBox = document.getElementById(uid + "-log"), info = document.getElementById(uid + "-info");
  if (!root || !canvas || !canvas.getContext) { return; }
  function sig(z) { return 1 / (1 + Math.exp(-z)); }
  // HTAF f(x) = sigma(alpha * tanh(beta * x)); f'(x) = alpha * beta * sigma(u) * sigma(-u) * sech^2(beta * x)
  function htaf(x, a, b) { return sig(a * Math.tanh(b * x)); }
  function htafGrad(x, a, b) {
    var u = a * Math.tanh(b * x), c = Math.cosh(b * x);  // sech^2 as 1 / cosh^2: exact in the tails
    return a * b * sig(u) * sig(-u) / (c * c);
  }
  // the sigmoid of equal peak slope s = alpha * beta / 4: sigma(4 * s * x), derivative 4 * s * sigma(z) * sigma(-z)
  function sigm(x, s) { return sig(4 * s * x); }
  function sigmGrad(x, s) { var z = 4 * s * x; return 4 * s * sig(z) * sig(-z); }
  function draw() {
    var a = parseFloat(ia.value), b = parseFloat(ib.value), s = a * b / 4, logScale = logBox.checked;
    oa.textContent = String(Number(a.toFixed(2)));
    ob.textContent = String(Number(b.toFixed(2)));
    var tail = htafGrad(3, a, b) / Math.max(sigmGrad(3, s), 1e-300);
    info.textContent = "peak slope s = \u03b1\u03b2/4 = " + s.toFixed(3) + "; at x = 3, f\u2032 is " +
      (tail >= 1e4 ? tail.toExponential(1) : tail.toPrecision(3)) + " \u00d7 the sigmoid's derivative";
    var dpr = window.devicePixelRatio || 1, w = Math.max(canvas.clientWidth, 200), h = __HEIGHT__;
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
    var ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    ctx.font = "12px sans-serif";
    var left = 44, right = 12, gap = 30, ph = (h - gap - 2 * 20) / 2;
    var panels = [
      {top: 10, title: "f(x)", lo: 0, hi: 1, log: false, ticks: [0, 0.5, 1],
       curves: [[function (x) { return htaf(x, a, b); }, "__CHTAF__", []],
                [function (x) { return sigm(x, s); }, "__CSIG__", [5, 4]]]},
      {top: 10 + ph + gap, title: logScale ? "f\u2032(x), log scale" : "f\u2032(x)", log: logScale,
       lo: logScale ? -8 : 0, hi: logScale ? Math.log10(s) + 0.3 : s * 1.08,
       ticks: logScale ? [-8, -6, -4, -2, 0, 2].filter(function (t) { return t <= Math.log10(s) + 0.3; }) : [0, s / 2, s],
       curves: [[function (x) { return htafGrad(x, a, b); }, "__CHTAF__", []],
                [function (x) { return sigmGrad(x, s); }, "__CSIG__", [5, 4]]]}
    ];
    panels.forEach(function (p) {
      var pw = w - left - right;
      function px(x) { return left + (x + X) / (2 * X) * pw; }
      function py(y) {
        var v = p.log ? Math.log10(Math.max(y, 1e-300)) : y;
        v = Math.min(Math.max(v, p.lo), p.hi);
        return p.top + ph - (v - p.lo) / (p.hi - p.lo) * ph;
      }
      ctx.strokeStyle = "#bbbbbb"; ctx.lineWidth = 1; ctx.setLineDash([]);
      ctx.strokeRect(left, p.top, pw, ph);
      ctx.fillStyle = "#555555"; ctx.textAlign = "right"; ctx.textBaseline = "middle";
      p.ticks.forEach(function (t) {
        var y = p.top + ph - (t - p.lo) / (p.hi - p.lo) * ph;
        ctx.fillText(p.log ? "1e" + t : String(Number(t.toPrecision(2))), left - 4, y);
      });
      ctx.textAlign = "center"; ctx.textBaseline = "top";
      for (var xt = -X; xt <= X; xt += X / 2) { ctx.fillText(String(xt), px(xt), p.top + ph + 3); }
      ctx.textAlign = "left"; ctx.fillText(p.title, left + 6, p.top + 4);
      p.curves.forEach(function (c) {
        ctx.strokeStyle = c[1]; ctx.lineWidth = 2; ctx.setLineDash(c[2]);
        ctx.beginPath();
        for (var i = 0; i <= N; i++) {
          var x = -X + 2 * X * i / N, y = py(c[0](x));
          if (i === 0) { ctx.moveTo(px(x), y); } else { ctx.lineTo(px(x), y); }
        }
        ctx.stroke();
      });
      ctx.setLineDash([]);
    });
  }
  [ia, ib].forEach(function (el) { el.addEventListener("input", draw); });
  logBox.addEventListener("change", draw);
  window.addEventListener("resize", draw);
  draw();
})();
</script>
</div>"""


def interactive_htaf(alpha: float = HTAF_ALPHA, beta: float = HTAF_BETA, *, uid: str = "htaf-explorer",
                     alpha_range: tuple[float, float, float] = (0.5, 16.0, 0.5),
                     beta_range: tuple[float, float, float] = (0.25, 4.0, 0.25), x_max: float = 4.0,
                     height: int = 420) -> str:
    """A self-contained HTML snippet (vanilla JavaScript on a ``<canvas>``; no network, no kernel) in which the
    reader moves ``alpha`` and ``beta`` sliders and sees HTAF :math:`\\sigma(\\alpha\\tanh(\\beta x))`, its derivative,
    and the sigmoid of equal peak slope :math:`\\sigma(4sx)`, :math:`s = \\alpha\\beta/4`, with its derivative.

    The functions are computed in the browser, so the figure works in the static book. The string is deterministic
    (the same arguments give the same text), so a notebook cell ``IPython.display.HTML(interactive_htaf())`` is
    reproduced exactly by nbval. ``uid`` prefixes the element ids: use another one for a second copy on a page.

    >>> html = interactive_htaf()
    >>> 'type="range"' in html and "a * b / 4" in html
    True
    """
    import re

    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", uid):
        raise ValueError(f"uid must be an HTML id (a letter, then letters, digits, '-' or '_'); got {uid!r}")
    (amin, amax, astep), (bmin, bmax, bstep) = alpha_range, beta_range
    if not (0 < amin <= alpha <= amax and 0 < bmin <= beta <= bmax and astep > 0 and bstep > 0 and x_max > 0):
        raise ValueError("need 0 < min <= value <= max for alpha and beta, positive steps and x_max > 0")
    values = {"UID": uid, "ALPHA": alpha, "BETA": beta, "AMIN": amin, "AMAX": amax, "ASTEP": astep,
              "BMIN": bmin, "BMAX": bmax, "BSTEP": bstep, "XMAX": x_max, "HEIGHT": int(height),
              "CHTAF": color("htaf"), "CSIG": color("sigmoid")}
    html = _INTERACTIVE_TEMPLATE
    for key, value in values.items():
        html = html.replace(f"__{key}__", value if isinstance(value, str) else f"{value:g}")
    return html
