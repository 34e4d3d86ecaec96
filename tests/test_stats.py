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


# --------------------------------------------------------------------------------------------
# Paired comparisons with a declared margin
# --------------------------------------------------------------------------------------------


def _null_pair(rng, n=5, shared=1.0, own=0.3):
    """Two equal methods on n seeds that share initialisation and batches (a common per-seed offset)."""
    import numpy as np

    seed_effect = rng.normal(0.0, shared, n)
    return 97.0 + seed_effect + rng.normal(0.0, own, n), 97.0 + seed_effect + rng.normal(0.0, own, n)


def test_equal_methods_are_called_different_at_most_at_the_nominal_rate():
    import numpy as np

    from htaf import stats

    rng = np.random.default_rng(0)
    verdicts = [stats.compare(*_null_pair(rng), margin=0.5).verdict for _ in range(1000)]
    wrong = sum(v in (stats.BETTER, stats.WORSE) for v in verdicts) / len(verdicts)
    assert wrong <= 0.07, wrong  # alpha = 0.05, plus Monte Carlo error (sd 0.007)


def test_holm_keeps_the_family_wise_error_of_thirty_comparisons(monkeypatch):
    import gc

    import numpy as np

    monkeypatch.setattr(gc, "collect", lambda *args: 0)  # statsmodels' multipletests collects garbage on every call

    from htaf import stats

    rng = np.random.default_rng(1)
    any_wrong = []
    unadjusted = []
    for _ in range(150):
        pairs = {k: _null_pair(rng) for k in range(30)}
        family = stats.compare_family(pairs, margin=0.5)
        any_wrong.append(family["verdict"].isin([stats.BETTER, stats.WORSE]).any())
        unadjusted.append(sum(stats.compare(*pair, 0.5).verdict in (stats.BETTER, stats.WORSE) for pair in pairs.values()))
    assert sum(any_wrong) / len(any_wrong) <= 0.1, sum(any_wrong)  # 0.05 nominal, Monte Carlo sd 0.018
    assert sum(u > 0 for u in unadjusted) / len(unadjusted) > 0.3  # without the correction most families err


def test_a_real_difference_is_found_and_a_negligible_one_is_equivalent():
    import numpy as np

    from htaf import stats

    rng = np.random.default_rng(2)
    a, b = _null_pair(rng, n=8)
    assert stats.compare(a + 1.0, b, margin=0.2).verdict == stats.BETTER
    assert stats.compare(a + 1.0, b, margin=0.2, higher_is_better=False).verdict == stats.WORSE
    c = a + rng.normal(0.0, 0.01, 8)
    result = stats.compare(a, c, margin=0.2)
    assert result.verdict == stats.EQUIVALENT and -0.2 < result.ci[0] <= result.difference <= result.ci[1] < 0.2
    assert result.n == 8 and result.p_equivalence < 0.05


def test_not_different_is_not_equivalent():
    from htaf import stats

    wide = stats.compare([98.1, 97.3, 98.9, 97.4, 98.2], [97.9, 97.9, 98.0, 98.0, 97.8], margin=0.2)
    assert wide.verdict == stats.INCONCLUSIVE and wide.p_difference > 0.05 and wide.p_equivalence > 0.05


def test_constant_differences_are_decided_exactly():
    from htaf import stats

    same = [90.0, 91.0, 92.0, 93.0, 94.0]
    assert stats.compare(same, same, margin=0.1).verdict == stats.EQUIVALENT
    assert stats.compare([v + 0.5 for v in same], same, margin=0.1).verdict == stats.BETTER
    assert stats.compare([v + 0.05 for v in same], same, margin=0.1).verdict == stats.EQUIVALENT


def test_constant_differences_on_fewer_seeds_than_the_minimum_decide_nothing():
    from htaf import stats

    three = [97.76, 97.76, 98.60]  # a 357-image test set: accuracies move in steps of 0.28 points
    assert stats.compare(three, three, margin=2.0, min_seeds=3).verdict == stats.INCONCLUSIVE
    assert stats.compare([v + 0.28 for v in three], three, margin=2.0, min_seeds=3).verdict == stats.INCONCLUSIVE
    assert stats.compare([v + 0.28 for v in three], [97.5, 97.6, 98.2], margin=2.0, min_seeds=3).verdict != stats.INCONCLUSIVE


def test_a_family_names_the_comparison_that_cannot_be_made():
    from htaf import stats

    with pytest.raises(ValueError, match=r"comparison 'x vs y' of the family: .*seeds on one side only: \[4\]"):
        stats.compare_family({"x vs y": ({0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0, 4: 5.0}, {0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0})}, 1.0,
                             min_seeds=4)


def test_values_are_paired_by_seed():
    from htaf import stats

    a = {0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0, 4: 5.0}
    b = {4: 5.0, 3: 4.0, 2: 3.0, 1: 2.0, 0: 1.0}
    assert stats.compare(a, b, margin=0.1).verdict == stats.EQUIVALENT  # keys, not positions
    with pytest.raises(ValueError, match="seeds on one side only: \\[5\\]"):
        stats.compare(a, {**b, 5: 6.0}, margin=0.1)
    with pytest.raises(ValueError, match="one value per seed on both sides"):
        stats.compare([1.0] * 5, [1.0] * 6, margin=0.1)


@pytest.mark.parametrize("kwargs, fragment", [
    ({"margin": 0.0}, "margin must be a finite number greater than 0"),
    ({"margin": float("nan")}, "margin must be a finite number greater than 0"),
    ({"margin": 0.1, "alpha": 0.6}, "alpha must lie in"),
    ({"margin": 0.1, "min_seeds": 1}, "min_seeds must be an integer of at least 2"),
])
def test_bad_comparison_settings_are_refused(kwargs, fragment):
    from htaf import stats

    with pytest.raises(ValueError, match=fragment):
        stats.compare([1.0, 2.0, 3.0, 4.0, 5.0], [1.0, 2.0, 3.0, 4.0, 5.1], **kwargs)


def test_a_sentence_rests_on_five_seeds():
    from htaf import stats

    with pytest.raises(ValueError, match="at least 5 seeds, got 3"):
        stats.compare([1.0, 2.0, 3.0], [1.0, 2.0, 3.1], margin=0.1)
    assert stats.compare([1.0, 2.0, 3.0], [1.5, 2.6, 3.5], margin=0.1, min_seeds=3).verdict == stats.WORSE


def test_compare_family_adjusts_both_tests_and_keeps_the_order():
    from htaf import stats

    pairs = {"x": ([98.1, 98.3, 98.0, 98.4, 98.2], [97.5, 97.9, 97.6, 97.8, 97.7]),
             "y": ([1.0, 2.0, 3.0, 4.0, 5.0], [1.0, 2.0, 3.0, 4.0, 5.0])}
    family = stats.compare_family(pairs, margin={"x": 0.2, "y": 0.1})
    assert list(family.index) == ["x", "y"] and list(family["verdict"]) == ["better", "equivalent"]
    single = stats.compare(*pairs["x"], 0.2)
    assert family.loc["x", "p_difference"] == pytest.approx(min(1.0, 2 * single.p_difference))
    assert stats.holm([]) == [] and stats.holm([0.2]) == [0.2]


def test_adjust_is_statsmodels_multipletests_and_names_a_bad_method():
    from statsmodels.stats.multitest import multipletests

    p = [0.001, 0.02, 0.03, 0.2]
    assert stats.adjust(p) == pytest.approx(list(multipletests(p, method="holm")[1]))
    assert stats.adjust(p, "bonferroni") == pytest.approx([min(1.0, 4 * v) for v in p])
    assert stats.holm(p) == stats.adjust(p, "holm") and stats.adjust([]) == []
    with pytest.raises(ValueError, match="unknown adjustment method 'nope'"):
        stats.adjust(p, "nope")
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        stats.adjust([1.5])


def test_a_family_reports_each_unadjusted_verdict_and_names_its_index_levels():
    pairs = {("depth", 8, "a", "b"): ([70.0, 71.0, 69.5, 70.5, 70.2], [60.0, 61.5, 59.0, 60.2, 60.9]),
             ("depth", 12, "a", "b"): ([50.0, 52.0, 49.0, 51.0, 50.5], [50.1, 51.8, 49.2, 51.1, 50.3])}
    family = stats.compare_family(pairs, 1.0, names=["regime", "setting", "a", "b"])
    assert family.index.names == ["regime", "setting", "a", "b"] and len(family) == 2
    assert family["unadjusted"].tolist() == [stats.compare(*pairs[k], 1.0).verdict for k in pairs]
    assert family.loc[("depth", 8, "a", "b"), "verdict"] == "better"
    with pytest.raises(ValueError, match="tuple"):
        stats.compare_family({"plain name": pairs[("depth", 8, "a", "b")]}, 1.0, names=["regime", "setting"])


def test_setting_pairs_pairs_by_seed_and_leaves_out_a_pair_whose_unit_a_setting_lacks():
    import pandas as pd

    runs = pd.DataFrame({"depth": [8, 8, 8, 8, 12, 12], "unit": ["x", "x", "y", "y", "x", "x"], "seed": [1, 0, 0, 1, 0, 1],
                         "accuracy": [91.0, 90.0, 89.0, 90.5, 70.0, 71.0]})
    found = stats.setting_pairs(runs, ["depth"], [("x", "y"), ("y", "x")], prefix=("r",))
    assert found == {("r", 8, "x", "y"): ({1: 91.0, 0: 90.0}, {0: 89.0, 1: 90.5}),
                     ("r", 8, "y", "x"): ({0: 89.0, 1: 90.5}, {1: 91.0, 0: 90.0})}
    with pytest.raises(KeyError, match="'width'"):
        stats.setting_pairs(runs, "width", [("x", "y")])


def test_holm_is_statsmodels_holm_exactly(monkeypatch):
    import gc

    import numpy as np
    from statsmodels.stats.multitest import multipletests

    # multipletests ends with gc.collect(), which changes no value and costs up to 0.3 s a call in a test worker
    monkeypatch.setattr(gc, "collect", lambda generation=2: 0)

    rng = np.random.default_rng(3)
    for n in (1, 2, 7, 30, 244):
        for p in (rng.uniform(0, 1, n), rng.uniform(0, 0.01, n), np.round(rng.uniform(0, 1, n), 1)):  # ties too
            assert stats.holm(p.tolist()) == [float(v) for v in multipletests(p, method="holm")[1]]
