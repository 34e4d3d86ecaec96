r"""Comparisons over seeds: the rule every chapter uses to call a method ahead of, tied with or behind another.

A chapter sentence such as "HTAF ties with STE" is backed by an ``assert`` on :func:`verdict` of the two
methods' per-seed results. Two methods are **tied** when their means differ by no more than twice the
standard error of the difference,

.. math:: |\bar a - \bar b| \le 2\sqrt{s_a^2/n_a + s_b^2/n_b},

with :math:`s` the sample standard deviation over seeds (each side needs at least two seeds); otherwise the
one with the better mean is **ahead**. With three seeds this is a lenient test: it calls a difference real
only when it is large against the seed-to-seed spread, which is the claim the book wants to make.

>>> verdict([97.9, 98.0, 98.1], [97.5, 97.6, 97.5])
'ahead'
>>> verdict([88.9, 88.8, 89.0], [88.9, 88.7, 89.1])
'tied'
>>> verdict([0.02, 0.03, 0.02], [0.01, 0.01, 0.01], higher_is_better=False)
'behind'
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

__all__ = ["AHEAD", "TIED", "BEHIND", "margin", "verdict", "seed_summary", "best_and_tied", "slope_share"]

AHEAD, TIED, BEHIND = "ahead", "tied", "behind"


def _values(values: Iterable[float], name: str) -> list[float]:
    out = [float(v) for v in values]
    if len(out) < 2:
        raise ValueError(f"{name} needs at least two seeds to judge a tie from their spread, got {len(out)}")
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"{name} holds a value that is not finite: {out}")
    return out


def _mean_var(values: Sequence[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    return mean, sum((v - mean) ** 2 for v in values) / (len(values) - 1)


def margin(a: Iterable[float], b: Iterable[float]) -> float:
    r"""Twice the standard error of the difference of the means: :math:`2\sqrt{s_a^2/n_a + s_b^2/n_b}`."""
    a, b = _values(a, "a"), _values(b, "b")
    (_, var_a), (_, var_b) = _mean_var(a), _mean_var(b)
    return 2.0 * math.sqrt(var_a / len(a) + var_b / len(b))


def verdict(a: Iterable[float], b: Iterable[float], higher_is_better: bool = True) -> str:
    """``"ahead"``, ``"tied"`` or ``"behind"``: method ``a`` against method ``b`` (per-seed values of one metric)."""
    a, b = _values(a, "a"), _values(b, "b")
    difference = _mean_var(a)[0] - _mean_var(b)[0]
    if abs(difference) <= margin(a, b):
        return TIED
    return AHEAD if (difference > 0) == higher_is_better else BEHIND


def seed_summary(frame, metric: str, by: Sequence[str] | str):
    """``mean``, ``std`` (over seeds), ``n`` and ``values`` (the per-seed list) of ``metric`` per group ``by``.

    ``frame`` is a results table (:func:`htaf.results.load` or :func:`htaf.sweep`), one row per run.
    """
    by = [by] if isinstance(by, str) else list(by)
    missing = [key for key in [*by, metric] if key not in frame.columns]
    if missing:
        raise KeyError(f"no column {', '.join(map(repr, missing))} in the results; columns: {', '.join(frame.columns)}")
    grouped = frame.groupby(by, sort=False, dropna=False)[metric]
    summary = grouped.agg(["mean", "std", "count"]).rename(columns={"count": "n"})
    summary["values"] = grouped.agg(list)
    return summary


def best_and_tied(values, higher_is_better: bool = True) -> tuple[Any, list[Any]]:
    """The cell with the best mean and every cell not behind it (:func:`verdict`): the *good region* of a map.

    ``values`` maps a cell (for example ``(alpha, beta)``) to its per-seed values.

    >>> best_and_tied({"a": [1.0, 1.1, 0.9], "b": [1.05, 0.95, 1.0], "c": [0.2, 0.3, 0.25]})
    ('a', ['a', 'b'])
    """
    means = {cell: _mean_var(_values(v, str(cell)))[0] for cell, v in values.items()}
    best = (max if higher_is_better else min)(means, key=means.get)
    tied = [cell for cell in values
            if cell == best or verdict(values[cell], values[best], higher_is_better) != BEHIND]
    return best, tied


def slope_share(means) -> float:
    r"""Share of the variance of ``means[(alpha, beta)]`` explained by the peak slope :math:`\alpha\beta/4` alone.

    The between-group sum of squares over the total, cells grouped by equal peak slope: 1 when cells of equal slope
    have equal means (the tail does not matter), lower when they differ.

    >>> slope_share({(1.0, 4.0): 2.0, (4.0, 1.0): 2.0, (1.0, 1.0): 1.0})
    1.0
    """
    cells = list(means)
    if not cells:
        raise ValueError("slope_share needs the means of at least one (alpha, beta) cell, got none")
    overall = sum(means.values()) / len(cells)
    total = sum((means[c] - overall) ** 2 for c in cells)
    groups: dict[float, list[float]] = {}
    for a, b in cells:
        groups.setdefault(round(a * b / 4, 12), []).append(means[(a, b)])
    between = sum(len(g) * (sum(g) / len(g) - overall) ** 2 for g in groups.values())
    return between / total if total > 0 else 1.0
