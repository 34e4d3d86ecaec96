"""One look for every figure of the book: a style per method, the notebook set-up cell, shared plot helpers.

Every method the book plots has one colour, marker, line style and label, everywhere. HTAF is red
(``#d62728``) and its variants are shades of red. Which unit methods exist and their labels come from the unit
registry (:func:`htaf.nn.unit_registry`); surrogate families take their style from their class in
:mod:`htaf.surrogates` (``label``, ``color``, ``marker``, ``linestyle``), so a newly registered family is
styled too (its ``<family>_smooth`` unit in a lighter shade of its colour, dashed). :data:`METHOD_STYLES` holds the
colours the book chooses for the other unit methods (HTAF's variants, the smooth sigmoid, the references), and
:data:`SERIES` the curves that are not unit methods (untrained floor, supervised ceiling, the step, ...).

>>> from htaf import plotting
>>> plotting.style("htaf")
{'color': '#d62728', 'marker': 'o', 'label': 'HTAF', 'linestyle': '-'}
>>> plotting.label("htaf_hard"), plotting.color("atan")
('HTAF (hard)', '#2ca02c')
>>> plotting.style("htaf", marker=None, label="HTAF, alpha=8")["label"]   # override any key
'HTAF, alpha=8'

``ax.plot(x, y, **style(m))`` draws method ``m``; :func:`band`, :func:`errorbar` and :func:`chance_line` are
the helpers the chapters share. Matplotlib is imported by these helpers only (``import htaf`` does not load
it); :func:`setup_notebook` is the first cell of every chapter.
"""

from __future__ import annotations

import os
from typing import Any

from . import surrogates

__all__ = ["METHOD_STYLES", "SERIES", "methods", "style", "label", "color", "setup_notebook", "band", "errorbar",
           "chance_line", "alpha_beta_map"]

#: the book's colour, marker and line style of the unit methods that are not a surrogate family (those carry
#: theirs in their class); their labels are the registry's. HTAF's variants are shades of HTAF's red.
METHOD_STYLES: dict[str, tuple[str, str | None, str]] = {
    "htaf_hard": ("#a50f15", "D", "-"),
    "htaf_anneal": ("#fb6a4a", "p", "--"),
    "full_precision": ("#525252", "x", "-"),
    "relu": ("#393b79", "+", "-"),
    "sigmoid_smooth": ("#6baed6", "2", "--"),
}
#: curves of the book that are not unit methods: name -> (label, colour, marker, line style)
SERIES: dict[str, tuple[str, str, str | None, str]] = {
    "htaf_default": ("HTAF (alpha=4, beta=1)", "#67000d", "8", "-."),
    "continuous": ("continuous", "#637939", "1", "-"),
    "supervised": ("supervised", "#e7ba52", "H", "-"),
    "untrained": ("untrained", "#bdbdbd", ".", ":"),
    "step": ("step $H$", "#000000", None, "--"),
}
#: a continuous activation without a colour of its own
_REAL_STYLE = ("#636363", ".", "-")

#: the matplotlib settings of the book's figures (applied by :func:`setup_notebook`)
RC = {"figure.dpi": 90, "axes.grid": True, "grid.alpha": 0.3, "legend.fontsize": 8}


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


def label(method: str) -> str:
    """The display name of ``method`` (``"HTAF"``, ``"erf (Gaussian)"``, ``"HTAF (hard)"``, ...)."""
    return _lookup(method)[0]


def color(method: str) -> str:
    """The colour of ``method`` (HTAF: ``"#d62728"``)."""
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
            ax.text(la[j], lb[i], fmt.format(grid[i, j]), ha="center", va="center", fontsize=7,
                    color="k" if light else "w")
    x = np.linspace(la[0] - 0.5, la[-1] + 0.5, 50)
    for k in range(-10, 11, 2):  # log2(alpha) + log2(beta) = log2(4 * slope), every factor 4 of peak slope
        y = math.log2(4.0) + k - x
        inside = (y >= lb[0] - 0.5) & (y <= lb[-1] + 0.5)
        if inside.sum() > 1:
            ax.plot(x[inside], y[inside], color="0.8", linestyle="--", linewidth=0.8)
            ax.text(x[inside][-1], y[inside][-1], f"{2.0 ** k:g}", fontsize=6, color="0.3", ha="left", va="center")
    ax.axvline(1.0, color="k", linewidth=1.2)
    for a, b in good:
        ax.add_patch(__import__("matplotlib.patches", fromlist=["Rectangle"]).Rectangle(
            (math.log2(a) - 0.5, math.log2(b) - 0.5), 1, 1, fill=False, edgecolor="r", linewidth=1.5))
    if best is not None:
        ax.plot(math.log2(best[0]), math.log2(best[1]) + 0.3, marker="*", color="r", markersize=8, linestyle="none")
    ax.set_xticks(la, [f"{a:g}" for a in alphas])
    ax.set_yticks(lb, [f"{b:g}" for b in betas])
    ax.set_xlabel(r"$\alpha$ (black line: $\alpha = 2$)")
    ax.set_ylabel(r"$\beta$ (dashed: equal peak slope $\alpha\beta/4$)")
    ax.grid(False)
    return mesh
