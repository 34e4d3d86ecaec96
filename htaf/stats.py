r"""Comparisons over seeds: how a chapter decides that one method is better than, worse than or equivalent to another.

**The rule** (:func:`compare`, :func:`compare_family`): a paired test over seeds (the seeds of two methods share the
initialisation and the batches), with a margin declared before the results are read, at least :data:`MIN_SEEDS`
seeds, four outcomes (``better`` or ``worse`` when a paired t-test finds a difference, ``equivalent`` when two one-sided
tests put the difference inside the margin, ``inconclusive`` otherwise: "not different" is not "as good as"), and
Holm's correction over a chapter's family of comparisons (:func:`adjust`). Under equal means its false ``better`` /
``worse`` rate is at most the level (``tests/test_stats.py`` checks it by simulation).

>>> compare([98.1, 98.3, 98.0, 98.4, 98.2], [97.5, 97.9, 97.6, 97.8, 97.7], margin=0.2).verdict
'better'

Comparisons on fewer seeds than :data:`MIN_SEEDS` (the three-seed stress regimes of the sensitivity chapter) use
the same tests with a lower ``min_seeds``, as an exploratory family whose ``unadjusted`` verdicts are hints
(:func:`setting_pairs` builds such a family from a results table).

**The older rule** (:func:`verdict`), kept to show what earlier versions of the book reported and, as a selection
device, behind the good regions of the three-seed maps (:func:`best_and_tied`): two methods are **tied** when their means differ by no more than twice the standard error of the difference,

.. math:: |\bar a - \bar b| \le 2\sqrt{s_a^2/n_a + s_b^2/n_b},

otherwise the better mean is **ahead**. It is unpaired and uncorrected: at three seeds it calls about one pair of
equal methods in nine different, and "tied" says nothing about "as good as". A chapter that uses it says so.

>>> verdict([97.9, 98.0, 98.1], [97.5, 97.6, 97.5])
'ahead'
>>> verdict([88.9, 88.8, 89.0], [88.9, 88.7, 89.1])
'tied'
>>> verdict([0.02, 0.03, 0.02], [0.01, 0.01, 0.01], higher_is_better=False)
'behind'
"""

from __future__ import annotations

import dataclasses
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


# --------------------------------------------------------------------------------------------
# Paired comparisons with a margin declared before looking (the rule the chapters move to)
# --------------------------------------------------------------------------------------------


BETTER, WORSE, EQUIVALENT, INCONCLUSIVE = "better", "worse", "equivalent", "inconclusive"
#: the outcomes of :func:`compare`
OUTCOMES = (BETTER, WORSE, EQUIVALENT, INCONCLUSIVE)
#: the fewest seeds a comparison that a sentence of the book rests on may use
MIN_SEEDS = 5

__all__ += ["BETTER", "WORSE", "EQUIVALENT", "INCONCLUSIVE", "OUTCOMES", "MIN_SEEDS", "Comparison", "paired_values",
            "compare", "compare_family", "adjust", "holm", "setting_pairs"]


@dataclasses.dataclass(frozen=True)
class Comparison:
    """The outcome of :func:`compare`: method ``a`` against method ``b`` on seeds that share initialisation and batches.

    ``difference`` is the mean over seeds of ``a - b``; ``ci`` its ``1 - 2*alpha`` confidence interval (the interval
    the equivalence test uses: 90 % at ``alpha = 0.05``); ``p_difference`` the two-sided paired t-test's p-value and
    ``p_equivalence`` the two one-sided tests' (TOST) p-value against ``+-margin`` (both Holm-adjusted when the
    comparison comes from :func:`compare_family`); ``n`` the number of paired seeds.
    """

    verdict: str
    difference: float
    ci: tuple[float, float]
    margin: float
    p_difference: float
    p_equivalence: float
    n: int
    alpha: float = 0.05


def paired_values(a, b) -> tuple[list[float], list[float]]:
    """``a`` and ``b`` as two lists of finite values paired by seed.

    Mappings (``{seed: value}``, or pandas Series indexed by seed) are paired on their keys, which must be the same
    seeds; sequences are paired by position and must have the same length.
    """
    if hasattr(a, "keys") and hasattr(b, "keys"):
        missing = sorted(set(a.keys()) ^ set(b.keys()), key=str)
        if missing:
            raise ValueError(f"a paired comparison needs the same seeds on both sides; seeds on one side only: {missing}")
        keys = sorted(a.keys(), key=str)
        a, b = [a[k] for k in keys], [b[k] for k in keys]
    a, b = [float(v) for v in a], [float(v) for v in b]
    if len(a) != len(b):
        raise ValueError(f"a paired comparison needs one value per seed on both sides, got {len(a)} and {len(b)}")
    if not all(math.isfinite(v) for v in a + b):
        raise ValueError(f"a paired comparison needs finite values, got {a} and {b}")
    return a, b


def compare(a, b, margin: float, *, higher_is_better: bool = True, alpha: float = 0.05,
            min_seeds: int = MIN_SEEDS) -> Comparison:
    r"""``better``, ``worse``, ``equivalent`` or ``inconclusive``: method ``a`` against method ``b``, paired by seed.

    ``margin`` (> 0, in the metric's units) is the largest difference that does not matter, declared before the
    results are looked at. With :math:`d_i = a_i - b_i` over :math:`n` seeds:

    * **equivalent** when the two one-sided paired t-tests (TOST) reject :math:`|\bar d| \ge` ``margin`` at level
      ``alpha``: the :math:`1 - 2\alpha` interval of the mean difference lies inside ``(-margin, margin)``;
    * else **better** or **worse** when the two-sided paired t-test rejects :math:`\bar d = 0` at level ``alpha``
      (in the direction ``higher_is_better`` says);
    * else **inconclusive**: neither a difference nor an equivalence is shown. "Not different" is *not* "as good as".

    A comparison rests on at least ``min_seeds`` paired seeds (:data:`MIN_SEEDS`). When the differences do not vary
    (identical runs, or a constant offset), the tests are decided exactly if there are at least :data:`MIN_SEEDS`
    seeds; with fewer (an exploratory comparison) the comparison is inconclusive: on two or three seeds, identical
    differences are as likely a coincidence of discrete accuracies (a test set of 357 images moves in steps of 0.28
    points) as a sign of a noiseless difference.

    >>> compare([98.1, 98.3, 98.0, 98.4, 98.2], [97.5, 97.9, 97.6, 97.8, 97.7], margin=0.2).verdict
    'better'
    >>> compare([98.1, 98.3, 98.0, 98.4, 98.2], [98.12, 98.27, 98.03, 98.38, 98.2], margin=0.2).verdict
    'equivalent'
    >>> compare([98.1, 97.3, 98.9, 97.4, 98.2], [97.9, 97.9, 98.0, 98.0, 97.8], margin=0.2).verdict
    'inconclusive'
    """
    from scipy.special import stdtr, stdtrit

    a, b = paired_values(a, b)
    if isinstance(min_seeds, bool) or not isinstance(min_seeds, int) or min_seeds < 2:
        raise ValueError(f"min_seeds must be an integer of at least 2, got {min_seeds!r}")
    if len(a) < min_seeds:
        raise ValueError(f"a comparison the book states rests on at least {min_seeds} seeds, got {len(a)}; "
                         "train more seeds (or lower min_seeds for an exploratory look)")
    if not (isinstance(margin, (int, float)) and math.isfinite(margin) and margin > 0):
        raise ValueError(f"margin must be a finite number greater than 0 (declared before looking), got {margin!r}")
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must lie in (0, 0.5), got {alpha!r}")
    d = [x - y for x, y in zip(a, b)]
    n = len(d)
    mean = sum(d) / n
    spread = math.sqrt(sum((v - mean) ** 2 for v in d) / (n - 1))
    if spread == 0.0 and n < MIN_SEEDS:  # too few seeds to read constant differences as noiseless
        p_difference = p_equivalence = 1.0
        ci = (mean, mean)
    elif spread == 0.0:  # constant differences: the tests are exact
        p_difference = 0.0 if mean != 0.0 else 1.0
        p_equivalence = 0.0 if abs(mean) < margin else 1.0
        ci = (mean, mean)
    else:
        se, df = spread / math.sqrt(n), n - 1  # stdtr(df, x): Student's t distribution function
        p_difference = float(2.0 * stdtr(df, -abs(mean) / se))  # the paired t-test (a one-sample test of d)
        # TOST: H0 d <= -margin against d > -margin, and H0 d >= margin against d < margin
        p_equivalence = float(max(stdtr(df, -(mean + margin) / se), stdtr(df, (mean - margin) / se)))
        t = float(stdtrit(df, 1 - alpha))
        ci = (mean - t * se, mean + t * se)
    return Comparison(_decide(mean, p_difference, p_equivalence, alpha, higher_is_better), mean, ci, float(margin),
                      p_difference, p_equivalence, n, alpha)


def _decide(mean: float, p_difference: float, p_equivalence: float, alpha: float, higher_is_better: bool) -> str:
    if p_equivalence < alpha:
        return EQUIVALENT
    if p_difference < alpha:
        return BETTER if (mean > 0) == higher_is_better else WORSE
    return INCONCLUSIVE


def adjust(pvalues: Sequence[float], method: str = "holm") -> list[float]:
    """A family of p-values adjusted for multiple comparisons by :func:`statsmodels.stats.multitest.multipletests`
    (``method``: ``"holm"``, the default and the book's, controls the family-wise error rate; any of statsmodels'
    methods, e.g. ``"bonferroni"`` or ``"fdr_bh"``, is accepted).

    >>> [round(p, 3) for p in adjust([0.01, 0.04, 0.03])]
    [0.03, 0.06, 0.06]
    """
    pvalues = [float(p) for p in pvalues]
    if not pvalues:
        return []
    if not all(0.0 <= p <= 1.0 for p in pvalues):
        raise ValueError(f"p-values must lie in [0, 1], got {pvalues}")
    if method == "holm":
        return _holm(pvalues)
    from statsmodels.stats.multitest import multipletests

    try:
        return [float(p) for p in multipletests(pvalues, method=method)[1]]
    except ValueError as error:
        raise ValueError(f"unknown adjustment method {method!r}: use 'holm' (the book's) or another method of "
                         "statsmodels.stats.multitest.multipletests") from error


def _holm(pvalues: list[float]) -> list[float]:
    """statsmodels' Holm step, operation for operation (sorted p-values times ``n, n-1, ..., 1``, running maximum,
    clipped at 1, back in the given order): ``multipletests(method="holm")`` ends with ``gc.collect()``, which costs
    0.1 to 0.5 s a call in a process holding a chapter's results (``tests/test_stats.py`` checks both agree exactly)."""
    import numpy as np

    values = np.asarray(pvalues, dtype=float)
    order = np.argsort(values)
    adjusted = np.maximum.accumulate(values[order] * np.arange(len(values), 0, -1))
    adjusted[adjusted > 1] = 1
    out = np.empty_like(adjusted)
    out[order] = adjusted
    return [float(p) for p in out]


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment (controls the family-wise error rate at any level): ``adjust(pvalues, "holm")``.

    >>> [round(p, 3) for p in holm([0.01, 0.04, 0.03])]
    [0.03, 0.06, 0.06]
    """
    return adjust(pvalues, "holm")


def compare_family(pairs, margin: float, *, higher_is_better: bool = True, alpha: float = 0.05,
                   min_seeds: int = MIN_SEEDS, names: Sequence[str] | None = None):
    """:func:`compare` for every pair of a chapter's family of comparisons, Holm-adjusted over the family.

    ``pairs`` maps a name to ``(a, b)``; ``margin`` is one number for all, or a mapping name -> margin. Both p-values
    of every comparison are adjusted over the family (:func:`holm`), then each verdict is decided from the adjusted
    ones. Returns a DataFrame indexed by name with ``verdict``, ``difference``, ``ci_low``, ``ci_high``, ``margin``,
    ``p_difference``, ``p_equivalence`` (adjusted), ``n`` and ``unadjusted`` (the verdict each comparison would get
    alone, without the correction: a hint, never a finding). With ``names`` (one per element of tuple-valued names,
    such as those of :func:`setting_pairs`) the index is a MultiIndex with those level names.
    """
    import pandas as pd

    keys = list(pairs)
    margins = {key: margin[key] for key in keys} if hasattr(margin, "keys") else dict.fromkeys(keys, margin)
    raw = {}
    for key in keys:
        try:
            raw[key] = compare(*pairs[key], margins[key], higher_is_better=higher_is_better, alpha=alpha,
                               min_seeds=min_seeds)
        except ValueError as error:  # name the comparison: a family holds hundreds
            raise ValueError(f"comparison {key!r} of the family: {error}") from None
    p_difference = holm([raw[key].p_difference for key in keys])
    p_equivalence = holm([raw[key].p_equivalence for key in keys])
    rows = []
    for key, p_d, p_e in zip(keys, p_difference, p_equivalence):
        c = raw[key]
        rows.append({"verdict": _decide(c.difference, p_d, p_e, alpha, higher_is_better),
                     "difference": c.difference, "ci_low": c.ci[0], "ci_high": c.ci[1], "margin": c.margin,
                     "p_difference": p_d, "p_equivalence": p_e, "n": c.n, "unadjusted": c.verdict})
    columns = ["verdict", "difference", "ci_low", "ci_high", "margin", "p_difference", "p_equivalence", "n", "unadjusted"]
    if names is not None:
        if not all(isinstance(key, tuple) and len(key) == len(names) for key in keys):
            raise ValueError(f"names gives {len(names)} index levels ({', '.join(names)}), so every name of the family "
                             f"must be a tuple of that length; got e.g. {keys[0]!r}" if keys else "")
        index = pd.MultiIndex.from_tuples(keys, names=list(names)) if keys else pd.MultiIndex.from_tuples([], names=list(names))
    else:
        index = pd.Index(keys, name="name", tupleize_cols=False)
    return pd.DataFrame(rows, columns=columns, index=index)


def setting_pairs(frame, by: Sequence[str] | str, pairs: Iterable[tuple[Any, Any]], *, prefix: tuple = (),
                  unit: str = "unit", metric: str = "accuracy", seed: str = "seed") -> dict[tuple, tuple[dict, dict]]:
    """The per-seed values of every pair of units fixed in advance at every setting of a results table, ready for
    :func:`compare_family`: ``{(*prefix, setting, a, b): ({seed: metric of a}, {seed: metric of b})}``.

    A setting is one distinct value of the columns ``by`` (a scalar for one column, else a tuple), in sorted order;
    ``pairs`` lists ``(a, b)`` values of the column ``unit``. A pair with a unit that a setting lacks is left out.

    >>> import pandas as pd
    >>> runs = pd.DataFrame({"depth": [8, 8, 8, 8], "unit": ["x", "x", "y", "y"], "seed": [0, 1, 0, 1],
    ...                      "accuracy": [90.0, 91.0, 89.0, 90.5]})
    >>> setting_pairs(runs, "depth", [("x", "y")])
    {(8, 'x', 'y'): ({0: 90.0, 1: 91.0}, {0: 89.0, 1: 90.5})}
    """
    by = [by] if isinstance(by, str) else list(by)
    missing = [key for key in [*by, unit, metric, seed] if key not in frame.columns]
    if missing:
        raise KeyError(f"no column {', '.join(map(repr, missing))} in the results; columns: {', '.join(frame.columns)}")
    values = {}
    for setting, part in frame.groupby(by if len(by) > 1 else by[0], sort=True):
        per_unit = {u: dict(zip(p[seed], p[metric].astype(float))) for u, p in part.groupby(unit)}
        for a, b in pairs:
            if a in per_unit and b in per_unit:
                values[(*prefix, setting, a, b)] = (per_unit[a], per_unit[b])
    return values
