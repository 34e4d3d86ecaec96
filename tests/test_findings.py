"""The Findings page's verdicts (:mod:`htaf.findings`): on the committed results, and on synthetic runs where they flip."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from htaf import findings, stats
from htaf.findings import DOES_NOT_HOLD, HOLDS, IN_PART, INCONCLUSIVE

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"

#: the verdict the Findings page states for each claim (book/findings.ipynb asserts the same)
STATED = {
    "snn": IN_PART,
    "bnn": IN_PART,
    "dhn": IN_PART,
    "icbm_accuracy": DOES_NOT_HOLD,
    "icbm_concepts": IN_PART,
    "gradient_mass": IN_PART,
    "tail_decay": IN_PART,
    "beyond_images": IN_PART,
    "sensitivity": IN_PART,
}


@pytest.fixture(scope="module")
def committed():
    return findings.findings(RESULTS)


def test_every_claim_has_the_verdict_the_page_states(committed):
    assert list(committed) == list(findings.CLAIMS) == list(STATED)
    assert {key: f.verdict for key, f in committed.items()} == STATED


def test_comparative_verdicts_rest_on_five_seeds(committed):
    for f in committed.values():
        if f.seeds is not None and f.seeds < stats.MIN_SEEDS:
            # a row with fewer seeds states no comparison as a verdict, and says what would settle it
            assert f.verdict.startswith(findings.NOT_YET) or f.key == "icbm_concepts", f.key
            assert f.settle
        if f.comparisons is not None and len(f.comparisons):
            assert (f.comparisons["n"] >= stats.MIN_SEEDS).all()


def test_the_committed_numbers_the_page_states(committed):
    dhn = committed["dhn"].numbers
    assert dhn["smooth_reg_networks_worse"] == dhn["smooth_reg_networks"] == 17
    assert dhn["seeds"] == 5 and dhn["n_comparisons"] == 219 and dhn["worse"]["htaf_hard"] == 0
    beyond = committed["beyond_images"].numbers
    assert beyond["seeds"] == 5 and (beyond["n_comparisons"], beyond["n_better"], beyond["n_worse"]) == (37, 2, 4)
    assert committed["icbm_accuracy"].numbers["target_met"] == ["mnist"]
    assert committed["icbm_concepts"].numbers["gap_target_met"] == ["mnist", "fashion_mnist", "shapes (xor)", "shapes (all)"]
    assert committed["icbm_accuracy"].numbers["verdicts"]["fashion_mnist"] == stats.WORSE
    assert committed["gradient_mass"].numbers["ratio_equal_peak"] < 1 < committed["gradient_mass"].numbers["ratio_equal_rate"]
    assert round(committed["tail_decay"].numbers["tail_vs_sigmoid"]) == 57
    sens = committed["sensitivity"].numbers
    assert sens["n_comparisons"] == 16 and sens["n_better"] == 1 and sens["n_inconclusive"] == 15


def test_table_has_one_row_per_claim_with_a_link(committed):
    frame = findings.table(committed)
    assert len(frame) == len(findings.CLAIMS)
    assert list(frame.columns) == ["claim", "verdict", "seeds", "evidence", "chapter"]
    for link in frame["chapter"]:
        assert (ROOT / "book" / link).is_file(), link


def test_the_family_holds_only_comparisons_with_enough_seeds():
    family = findings.comparisons(RESULTS)
    assert set(family["group"]) <= {"snn", "sensitivity", "dhn", "domains", "icbm", "bnn"}
    assert (family["n"] >= stats.MIN_SEEDS).all()
    margins = findings.MARGINS
    expected = [margins["dhn_regression"] if name.startswith("dhn regression") else
                margins["domains_spikes"] if name.startswith("domains randman") else
                margins["domains_signals"] if name.startswith("domains mnist1d") else
                margins["icbm_gap"] if name.startswith("icbm gap") else margins[group]
                for name, group in zip(family.index, family["group"])]
    assert family["margin"].tolist() == expected


# ---------------------------------------------------------------------------- the rule, on synthetic outcomes


@pytest.mark.parametrize(("outcomes", "expected"), [
    (["equivalent", "better", "equivalent"], HOLDS),
    (["equivalent", "worse"], IN_PART),
    (["better", "inconclusive"], IN_PART),
    (["worse", "inconclusive"], DOES_NOT_HOLD),
    (["worse", "worse"], DOES_NOT_HOLD),
    (["inconclusive", "inconclusive"], INCONCLUSIVE),
])
def test_verdict_of(outcomes, expected):
    assert findings.verdict_of(outcomes) == expected


def test_verdict_of_refuses_nonsense():
    with pytest.raises(ValueError, match="at least one"):
        findings.verdict_of([])
    with pytest.raises(ValueError, match="unknown outcomes"):
        findings.verdict_of(["tied"])


def _snn_frame(seeds: int, htaf_offset: float) -> pd.DataFrame:
    """Synthetic SNN runs: every surrogate at a per-seed accuracy, HTAF shifted by ``htaf_offset`` points."""
    base = [97.6, 97.9, 97.7, 97.8, 97.5, 97.65, 97.75][:seeds]
    rows = []
    for dataset in ("fashion_mnist", "mnist"):
        for k, method in enumerate(["htaf", "atan", "sigmoid", "fast_sigmoid", "triangle", "rectangle"]):
            for seed, value in enumerate(base):
                jitter = 0.01 * ((seed * 7 + k * 3) % 5 - 2)  # small, paired-seed noise
                shift = htaf_offset if method == "htaf" else 0.0
                rows.append({"dataset": dataset, "method": method, "seed": seed, "accuracy": value + shift + jitter})
    return pd.DataFrame(rows)


def _no_dhn():
    """DHN frames with too few seeds to enter the family."""
    cls = pd.DataFrame({"dataset": ["mnist"], "variant": ["plain"], "depth": [1], "method": ["htaf"], "seed": [0],
                        "accuracy": [90.0]})
    reg = pd.DataFrame({"variant": ["plain"], "width": [8], "depth": [2], "method": ["htaf"], "seed": [0],
                        "log_error": [1.0]})
    return cls, reg


def _no_domains():
    """A domains frame with too few seeds to enter the family."""
    return pd.DataFrame({"dataset": ["randman"], "family": [None], "backbone": [None], "dim": [2], "T": [50],
                         "method": ["htaf"], "seed": [0], "accuracy": [90.0]})


def _no_bnn():
    """A BNN frame with too few seeds to enter the family."""
    return pd.DataFrame({"sweep": ["matched"], "dataset": ["mnist"], "method": ["htaf"], "seed": [0], "accuracy": [97.0]})


def _bnn_frame(htaf_offset: float, seeds: int = 5):
    """The BNN family's sweeps: the MLP's on two datasets, the CNN's (``cifar_`` sweeps) on the CIFAR-10 subset; HTAF
    shifted by ``htaf_offset`` points, small paired-seed noise."""
    from htaf.experiments.bnn import DEFAULTS, MATCHED

    rows = []
    for d, prefix in (("mnist", ""), ("fashion_mnist", ""), ("cifar10_subset", "cifar_")):
        for setting, methods in (("matched", MATCHED), ("defaults", DEFAULTS), ("reference", ["full_precision"])):
            for k, m in enumerate(methods):
                for seed in range(seeds):
                    jitter = 0.01 * ((seed * 7 + k * 3) % 5 - 2)
                    rows.append({"sweep": prefix + setting, "dataset": d, "method": m,
                                 "seed": seed, "accuracy": 95.0 + (htaf_offset if m == "htaf" else 0.0) + jitter})
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("offset", "expected"), [(0.0, HOLDS), (-3.0, DOES_NOT_HOLD), (3.0, HOLDS)])
def test_bnn_verdict_follows_the_runs(offset, expected):
    frame = _bnn_frame(offset)
    family = findings.comparisons(snn_frame=_snn_frame(3, 0.0), sensitivity_frame=_no_sensitivity(), dhn_frames=_no_dhn(),
                                  domains_frame=_no_domains(), icbm_frame=_no_icbm(), bnn_frame=frame)
    assert set(family["group"]) == {"bnn"} and len(family) == 18  # 3 datasets x (3 matched + 3 default) comparisons
    assert {n.split(" ")[1] for n in family.index} == {"mnist", "fashion_mnist", "cifar10_subset"}
    found = findings.bnn(frame=frame, family=family)
    assert found.verdict == expected and found.numbers["n_comparisons"] == 18
    assert findings.bnn(frame=_bnn_frame(0.0, seeds=3)).verdict == findings.not_yet(3)


def _no_icbm():
    """An ICBM frame with too few seeds to enter the family."""
    return pd.DataFrame({"dataset": ["mnist"], "variant": ["htaf"], "seed": [0], "accuracy": [97.0], "gap": [0.1]})


def _icbm_frame(standard_offset: float, seeds: int = 5):
    """Every dataset of the ICBM family with HTAF and the standard model (and the sigmoid bottleneck, for the switch
    gap); the standard model shifted by ``standard_offset`` points, small paired-seed noise."""
    rows = []
    for d in findings.ICBM_DATASETS:
        for k, variant in enumerate(["htaf", "sigmoid_smooth", "standard"]):
            for seed in range(seeds):
                jitter = 0.01 * ((seed * 7 + k * 3) % 5 - 2)
                rows.append({"dataset": d, "variant": variant, "seed": seed, "gap": 0.1 + jitter,
                             "accuracy": 90.0 + (standard_offset if variant == "standard" else 0.0) + jitter})
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("offset", "expected"), [(0.0, HOLDS), (3.0, DOES_NOT_HOLD), (-3.0, HOLDS)])
def test_icbm_accuracy_verdict_follows_the_runs(offset, expected):
    frame = _icbm_frame(offset)
    family = findings.comparisons(snn_frame=_snn_frame(3, 0.0), sensitivity_frame=_no_sensitivity(), dhn_frames=_no_dhn(),
                                  domains_frame=_no_domains(), icbm_frame=frame, bnn_frame=_no_bnn())
    assert set(family["group"]) == {"icbm"} and len(family) == 3 * len(findings.ICBM_DATASETS)
    found = findings.icbm_accuracy(frame=frame, family=family)
    assert found.verdict == expected and found.numbers["seeds"] == 5
    assert findings.icbm_accuracy(frame=_icbm_frame(0.0, seeds=3)).verdict == findings.not_yet(3)


def _dhn_frames(hard_offset: float, seeds: int = 5):
    """One classification and one regression network with every method of the DHN family; ``htaf_hard`` shifted by
    ``hard_offset`` (accuracy points; the same in log10 error units for regression), small paired-seed noise."""
    cls_rows, reg_rows = [], []
    for k, method in enumerate(["htaf", "htaf_anneal", "htaf_hard", "ste", "atan", "relu"]):
        for seed in range(seeds):
            jitter = 0.01 * ((seed * 7 + k * 3) % 5 - 2)
            shift = hard_offset if method == "htaf_hard" else 0.0
            for variant in ("plain", "skip"):
                cls_rows.append({"dataset": "mnist", "variant": variant if method != "relu" else "plain", "depth": 2,
                                 "method": method, "seed": seed, "accuracy": 90.0 + shift + jitter})
            if method != "atan":
                reg_rows.append({"variant": "plain", "width": 8, "depth": 2, "method": method, "seed": seed,
                                 "log_error": 1.0 + shift / 10 + jitter})
    reg = pd.DataFrame(reg_rows)
    return pd.DataFrame(cls_rows).drop_duplicates(["variant", "method", "seed"]), reg.assign(mse_step=10 ** -reg["log_error"])


@pytest.mark.parametrize(("offset", "expected"), [(0.0, HOLDS), (-5.0, IN_PART), (5.0, HOLDS)])
def test_dhn_family_and_verdict_follow_the_runs(offset, expected):
    frames = _dhn_frames(offset)
    pairs, margins = findings.dhn_comparisons(*frames)
    # 2 networks x 3 HTAF methods x (STE, atan) + htaf_hard's skip DHN against the ReLU MLP; regression: 3 + 1
    assert len(pairs) == 2 * 3 * 2 + 1 + 4 and set(margins.values()) == {findings.MARGINS["dhn"],
                                                                          findings.MARGINS["dhn_regression"]}
    family = findings.comparisons(snn_frame=_snn_frame(3, 0.0), sensitivity_frame=_no_sensitivity(), dhn_frames=frames,
                                  domains_frame=_no_domains(), icbm_frame=_no_icbm(), bnn_frame=_no_bnn())
    assert set(family["group"]) == {"dhn"} and len(family) == len(pairs)
    hard = family[family.index.str.contains("htaf_hard vs ste")]["verdict"]
    assert set(hard) == {stats.EQUIVALENT if offset == 0 else stats.WORSE if offset < 0 else stats.BETTER}
    found = findings.dhn(RESULTS, frames=frames, family=family)
    # the verdict rests on HTAF against STE and atan only, not on the comparisons with the ReLU reference
    assert found.verdict == expected and found.numbers["n_comparisons"] == len(pairs) - 2
    assert findings.dhn(RESULTS, frames=_dhn_frames(0.0, seeds=3)).verdict == HOLDS  # the levels only, no family


def _no_sensitivity():
    """A sensitivity frame with too few seeds to enter the family."""
    return pd.DataFrame({"init_gain": [1.0], "unit": ["htaf a=4"], "seed": [0], "accuracy": [50.0]})


@pytest.mark.parametrize(("offset", "expected"), [(0.0, HOLDS), (-1.5, DOES_NOT_HOLD), (1.5, HOLDS)])
def test_snn_verdict_flips_with_the_runs(offset, expected):
    frame = _snn_frame(5, offset)
    family = findings.comparisons(snn_frame=frame, sensitivity_frame=_no_sensitivity(), dhn_frames=_no_dhn(), domains_frame=_no_domains(), icbm_frame=_no_icbm(), bnn_frame=_no_bnn())
    assert set(family["group"]) == {"snn"} and len(family) == 30  # the chapter's family: 15 pairs x 2 datasets
    found = findings.snn(frame=frame, family=family)
    assert found.verdict == expected
    assert found.numbers["n_comparisons"] == 10


def test_snn_with_three_seeds_is_not_yet_testable():
    frame = _snn_frame(3, 1.5)  # HTAF clearly ahead, but on three seeds
    found = findings.snn(frame=frame, family=findings.comparisons(snn_frame=frame, sensitivity_frame=_no_sensitivity(),
                                                                  dhn_frames=_no_dhn(), domains_frame=_no_domains(), icbm_frame=_no_icbm(), bnn_frame=_no_bnn()))
    assert found.verdict == findings.not_yet(3)
    assert "margin" in found.settle
    assert findings.comparisons(snn_frame=frame, sensitivity_frame=_no_sensitivity(), dhn_frames=_no_dhn(), domains_frame=_no_domains(), icbm_frame=_no_icbm(), bnn_frame=_no_bnn()).empty


def test_sensitivity_verdict_flips_with_the_runs():
    rows = []
    for gain in (1.0, 4.0):
        for unit in ("htaf a=1", "htaf a=4", "htaf a=8", "sigmoid", "atan", "rectangle"):
            for seed in range(5):
                heavy = 30.0 if (unit == "htaf a=8" and gain == 4.0) else 0.0
                rows.append({"init_gain": gain, "unit": unit, "seed": seed,
                             "accuracy": 40.0 + heavy + 0.02 * ((seed * 5 + len(unit)) % 7)})
    frame = pd.DataFrame(rows)
    family = findings.comparisons(snn_frame=_snn_frame(3, 0.0), sensitivity_frame=frame, dhn_frames=_no_dhn(), domains_frame=_no_domains(), icbm_frame=_no_icbm(), bnn_frame=_no_bnn())
    found = findings.sensitivity(RESULTS, frame=frame, family=family)
    assert found.numbers["heavy_vs_light"]["sensitivity: gain 4, htaf a=8 vs htaf a=1"] == stats.BETTER
    assert found.numbers["heavy_vs_light"]["sensitivity: gain 1, htaf a=8 vs htaf a=1"] == stats.EQUIVALENT
    assert found.verdict == HOLDS  # every heavy-against-light comparison supports the claim
    flat = frame.assign(accuracy=[40.0 + 0.02 * ((s * 5 + len(u)) % 7) for s, u in zip(frame["seed"], frame["unit"])])
    family = findings.comparisons(snn_frame=_snn_frame(3, 0.0), sensitivity_frame=flat, dhn_frames=_no_dhn(), domains_frame=_no_domains(), icbm_frame=_no_icbm(), bnn_frame=_no_bnn())
    assert findings.sensitivity(RESULTS, frame=flat, family=family).verdict == HOLDS  # equivalent everywhere
    worse = frame.assign(accuracy=[a - (30.0 if u == "htaf a=8" else 0.0) - (30.0 if u == "htaf a=8" and g == 4.0 else 0)
                                   for a, u, g in zip(frame["accuracy"], frame["unit"], frame["init_gain"])])
    family = findings.comparisons(snn_frame=_snn_frame(3, 0.0), sensitivity_frame=worse, dhn_frames=_no_dhn(), domains_frame=_no_domains(), icbm_frame=_no_icbm(), bnn_frame=_no_bnn())
    assert findings.sensitivity(RESULTS, frame=worse, family=family).verdict == DOES_NOT_HOLD


def test_theory_verdicts_follow_the_parameters():
    # alpha <= 2: no more mass near zero than the equal-rate sigmoid either, and a lighter tail than the sigmoid's
    assert findings.gradient_mass(alpha=2.0, beta=2.0).verdict == DOES_NOT_HOLD
    assert findings.tail_decay(alpha=1.0, beta=4.0).verdict == DOES_NOT_HOLD
    assert findings.tail_decay(alpha=4.0, beta=1.0).verdict == IN_PART


def test_missing_runs_are_an_error_not_a_verdict(tmp_path):
    with pytest.raises(findings.MissingRunsError, match=r"(\d+) of \1 runs of snn \(main\).*never train"):
        findings.sweep_runs("snn", ["main"], tmp_path / "results")


def test_a_sweep_s_runs_are_read_from_their_own_files_only(monkeypatch):
    """The evidence of a claim is read run by run: the files of the sweeps asked for, not every run of the folder."""
    from htaf import results

    reads = []
    real = results.read_result
    monkeypatch.setattr(results, "read_result", lambda path: reads.append(path) or real(path))
    frame = findings.sweep_runs("dhn", ["depth"], RESULTS)
    stored = len(list((RESULTS / "dhn" / "cpu").glob("*.json")))
    assert len(reads) == frame["hash"].nunique() == len(frame) < stored
    assert sorted(path.stem for path in reads) == sorted(frame["hash"])


def test_the_landing_page_and_the_readme_give_the_short_answer_and_link_to_the_page():
    import re

    index = (ROOT / "book" / "index.md").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for text, link in ((index, "{doc}`findings`"), (readme, "book/findings.html")):
        section = " ".join(text.split("## What holds, in short", 1)[1].split("\n## ", 1)[0].split())  # as rendered
        assert link in section and "no claim of the paper holds in full" in section
        assert "Binary MLPs train as well with HTAF" in section and "as with the standard surrogate gradients" in section
        assert "with every surrogate tuned, HTAF has the lowest mean" in section
        assert "One claim fails here: an implicit concept bottleneck" in section and "The others hold in part" in section
        # what those sentences say
        assert not [k for k, v in STATED.items() if v == HOLDS] and STATED["snn"] == STATED["bnn"] == IN_PART
        assert [k for k, v in STATED.items() if v == DOES_NOT_HOLD] == ["icbm_accuracy"]
        assert not re.search(r"\d", section.replace("book/findings", "")), "numbers there only if a test checks them"
    family = findings.comparisons(RESULTS)  # the tuned sentences: the lowest SNN mean, most binary MLPs, the ICBM gap
    snn_tuned = findings.snn_runs(RESULTS).query("setting == 'tuned'").groupby("method")["accuracy"].mean()
    assert snn_tuned.idxmin() == "htaf"
    bnn_tuned = family.loc[family.index.str.startswith("bnn tuned: "), "verdict"]
    assert (bnn_tuned == stats.EQUIVALENT).sum() > len(bnn_tuned) / 2
    tuned_gap, default_gap = (family.loc[f"icbm{t}: fashion_mnist, htaf vs standard"] for t in (" tuned", ""))
    assert tuned_gap["verdict"] == stats.INCONCLUSIVE and abs(tuned_gap["difference"]) < abs(default_gap["difference"])
    toc = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    assert toc.index("book/findings") < toc.index("book/theory/01_definition")


def test_tuned_snn_runs_add_htaf_against_each_tuned_surrogate_to_the_chapter_family():
    default = _snn_frame(5, 0.0).assign(setting="default")
    tuned = _snn_frame(5, -3.0).assign(setting="tuned")
    tuned = tuned[tuned["dataset"] == "fashion_mnist"]
    pairs = findings.snn_comparisons(pd.concat([default, tuned], ignore_index=True))
    tuned_names = [name for name in pairs if name.startswith("snn tuned: ")]
    assert len(pairs) == 30 + 5 and tuned_names == [f"snn tuned: fashion_mnist, htaf vs {m}" for m in
                                                    ("atan", "sigmoid", "fast_sigmoid", "triangle", "rectangle")]
    assert pairs == {**findings.snn_comparisons(default.drop(columns="setting")),
                     **{n: pairs[n] for n in tuned_names}}  # the default pairs read the default runs only
    family = findings.comparisons(snn_frame=pd.concat([default, tuned], ignore_index=True),
                                  sensitivity_frame=_no_sensitivity(), dhn_frames=_no_dhn(), domains_frame=_no_domains(),
                                  icbm_frame=_no_icbm(), bnn_frame=_no_bnn())
    assert (family.loc[tuned_names, "verdict"] == stats.WORSE).all() and len(family) == 35
    found = findings.snn(frame=pd.concat([default, tuned], ignore_index=True), family=family)
    assert found.verdict != findings.HOLDS and "tuned on validation data" in found.evidence


def test_tuned_settings_choose_on_validation_accuracy_only():
    runs = pd.DataFrame({"method": ["a"] * 4 + ["b"] * 4, "peak_slope": [0.5, 0.5, 2.0, 2.0] * 2, "lr": [1e-3] * 8,
                         "seed": [0, 1] * 4, "val_accuracy": [0.8, 0.8, 0.9, 0.9, 0.7, 0.7, 0.6, 0.6],
                         "test_accuracy": [0.99, 0.99, 0.1, 0.1, 0.1, 0.1, 0.99, 0.99]})
    assert findings.tuned_settings(runs) == {"a": {"peak_slope": 2.0, "lr": 1e-3}, "b": {"peak_slope": 0.5, "lr": 1e-3}}
    with pytest.raises(ValueError, match="tuning sweep"):
        findings.tuned_settings(runs.drop(columns="val_accuracy"))
