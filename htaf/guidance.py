r"""Choosing HTAF's :math:`(\alpha, \beta)`: the rule read off the maps of the sensitivity chapter.

On the ``cpu`` maps of ``book/experiments/sensitivity`` (small DHN with step and smooth forward, binary MLP and
LIF network on sklearn digits; 3 seeds per cell) each family's good region, the cells the two-standard-error rule does
not put behind the best, was chosen on **validation** data: on twins of the map's runs that held a fifth of the
training images out (:func:`htaf.experiments.sensitivity.select`), never on the test set. Every family's good region
holds cells of peak slope :math:`\alpha\beta/4` 1 and 2, and at those slopes :math:`\alpha = 16` lies in more good
regions than any other sharpness: :math:`(16, 0.5)` in all four, :math:`(16, 0.25)` in three (not the step-forward
DHN's). The rule is therefore: fix the peak slope in :data:`PEAK_SLOPE_RANGE` first (it explains most of the accuracy
differences), then take :data:`ALPHA` (a heavy tail, :math:`\alpha > 2`) and :math:`\beta = 4s/\alpha`. The chapter
asserts that this rule still matches the committed results; it is a rule for small networks trained with Adam, not
a law, and no cell's test accuracy is clearly above the others' of equal peak slope.

>>> recommend()
(16.0, 0.25)
>>> recommend(peak_slope=2.0)
(16.0, 0.5)
"""

from __future__ import annotations

import math
import warnings

__all__ = ["ALPHA", "PEAK_SLOPE_RANGE", "recommend"]

#: the sharpness the rule keeps: in the most validation good regions at peak slopes 1 and 2 (a tail heavier than the
#: sigmoid's of equal peak slope, since alpha > 2)
ALPHA = 16.0
#: the peak slopes alpha * beta / 4 that every map's validation good region holds
PEAK_SLOPE_RANGE = (1.0, 2.0)


def recommend(peak_slope: float | None = None, alpha: float = ALPHA) -> tuple[float, float]:
    """``(alpha, beta)`` with ``alpha * beta / 4 == peak_slope`` (default: the low end of :data:`PEAK_SLOPE_RANGE`).

    A ``peak_slope`` outside :data:`PEAK_SLOPE_RANGE`, or an ``alpha`` of 2 or less (a tail lighter than the
    sigmoid's of equal peak slope), is allowed but warns: the maps found no evidence for it.

    >>> recommend(1.0, alpha=8.0)
    (8.0, 0.5)
    """
    s = PEAK_SLOPE_RANGE[0] if peak_slope is None else peak_slope
    for name, value in (("peak_slope", s), ("alpha", alpha)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a finite number greater than 0, got {value!r}")
    lo, hi = PEAK_SLOPE_RANGE
    if not lo <= s <= hi:
        warnings.warn(f"peak slope {s:g} lies outside the range {lo:g}..{hi:g} that the sensitivity maps support",
                      UserWarning, stacklevel=2)
    if alpha <= 2.0:
        warnings.warn(f"alpha={alpha:g} <= 2: HTAF's tail is then lighter than the sigmoid's of equal peak slope",
                      UserWarning, stacklevel=2)
    return float(alpha), float(4.0 * s / alpha)
