"""The seed-comparison rule of htaf.stats."""

import pandas as pd
import pytest

from htaf import stats


def test_verdict_is_symmetric_and_respects_direction():
    a, b = [1.0, 1.1, 0.9], [2.0, 2.1, 1.9]
    assert stats.verdict(a, b) == "behind" and stats.verdict(b, a) == "ahead"
    assert stats.verdict(a, b, higher_is_better=False) == "ahead"


def test_tie_boundary_is_two_standard_errors():
    a = [0.0, 1.0, 2.0]  # mean 1, variance 1
    b = [0.0, 1.0, 2.0]
    boundary = stats.margin(a, b)
    assert boundary == pytest.approx(2 * (2 / 3) ** 0.5)
    assert stats.verdict([v + 0.99 * boundary for v in a], b) == "tied"
    assert stats.verdict([v + 1.01 * boundary for v in a], b) == "ahead"


def test_identical_constant_seeds_tie_but_any_gap_between_constants_does_not():
    assert stats.verdict([1.0, 1.0], [1.0, 1.0]) == "tied"
    assert stats.verdict([1.0, 1.0], [1.0 - 1e-9, 1.0 - 1e-9]) == "ahead"


def test_needs_two_finite_seeds():
    with pytest.raises(ValueError, match="at least two seeds"):
        stats.verdict([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="not finite"):
        stats.verdict([1.0, float("nan")], [1.0, 2.0])


def test_seed_summary_groups_and_lists_values():
    frame = pd.DataFrame({"method": ["a", "a", "b", "b"], "seed": [0, 1, 0, 1], "acc": [1.0, 3.0, 2.0, 2.0]})
    summary = stats.seed_summary(frame, "acc", "method")
    assert summary.loc["a", "mean"] == 2.0 and summary.loc["a", "n"] == 2 and summary.loc["b", "std"] == 0.0
    assert summary.loc["a", "values"] == [1.0, 3.0]
    with pytest.raises(KeyError, match="no column 'nope'"):
        stats.seed_summary(frame, "nope", "method")


def test_best_and_tied_is_the_good_region():
    from htaf.stats import best_and_tied

    values = {(1, 1): [90.0, 91.0, 90.5], (2, 1): [90.2, 89.8, 90.9], (4, 1): [70.0, 71.0, 70.5]}
    assert best_and_tied(values) == ((1, 1), [(1, 1), (2, 1)])
    gaps = {(1, 1): [0.1, 0.2], (2, 1): [3.0, 3.2]}
    assert best_and_tied(gaps, higher_is_better=False) == ((1, 1), [(1, 1)])


def test_slope_share_separates_peak_slope_from_tail():
    from htaf.stats import slope_share

    slope_only = {(a, b): a * b for a in (1.0, 2.0, 4.0) for b in (0.5, 1.0, 2.0)}  # a function of a*b alone
    assert slope_share(slope_only) == pytest.approx(1.0)
    alpha_only = {(a, b): a for a in (1.0, 2.0, 4.0) for b in (0.5, 1.0, 2.0)}
    assert slope_share(alpha_only) < 0.8


def test_slope_share_of_no_cells_is_an_error():
    from htaf import stats

    with pytest.raises(ValueError, match="at least one"):
        stats.slope_share({})
