r"""The book's findings: one verdict per claim of the paper, computed from the committed results.

Each function below judges one claim of *A Composite Activation Function for Learning Stable Binary
Representations* (Kim et al. 2026) at this book's scale and returns a :class:`Finding`: the claim, the verdict, the
numbers it rests on, the chapter that holds the evidence and the number of seeds. :func:`table` collects them into the
table of the Findings page (``book/findings.ipynb``). Nothing here trains: the functions read the finished runs of the
``cpu`` profile (``results/<experiment>/cpu/``, or the folder given as ``results_dir``) and raise
:class:`MissingRunsError` when a run the evidence needs is not there.

**The rules.** A verdict that compares methods rests on at least :data:`htaf.stats.MIN_SEEDS` paired seeds and on
:func:`htaf.stats.compare_family`: a paired test per comparison, with the margin of :data:`MARGINS` (declared in this
module before the comparisons were computed), Holm-adjusted over the page's whole family of comparisons
(:func:`comparisons`). Where the evidence has fewer seeds, the verdict is :data:`NOT_YET` and the finding states only
facts that compare nothing (an accuracy level, a target met or missed, a property of HTAF alone). Theory claims are
judged by closed forms of :mod:`htaf.theory`, which need no seeds.

:func:`verdict_of` turns a claim's comparison outcomes into its verdict; it is the rule the page states.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from typing import Any, Callable, Iterable

from htaf import experiments, results, stats, theory
from htaf.experiments import domains as domains_experiment
from htaf.experiments import icbm as icbm_experiment
from htaf._kernels import HTAF_ALPHA, HTAF_BETA

__all__ = ["PROFILE", "HOLDS", "IN_PART", "DOES_NOT_HOLD", "NOT_TESTABLE", "NOT_YET", "INCONCLUSIVE", "VERDICTS",
           "MARGINS", "DHN_HTAF", "DHN_BASELINES", "dhn_runs", "dhn_tuned_runs", "dhn_tuning", "tuning_sweep_names", "tuning", "tuned_runs", "tuned_pairs", "DOMAINS_TUNED", "ICBM_TUNED", "dhn_comparisons", "domains_runs", "domains_comparisons", "icbm_runs", "icbm_comparisons", "bnn_runs", "bnn_comparisons", "INTERPRETABLE_AUC", "ICBM_DATASETS", "MissingRunsError", "Finding", "sweep_runs", "verdict_of", "not_yet", "snn_comparisons", "snn_tuning", "tuned_settings",
           "sensitivity_comparisons", "comparisons", "snn", "bnn", "dhn", "icbm_accuracy", "icbm_concepts",
           "gradient_mass", "tail_decay", "beyond_images", "sensitivity", "CLAIMS", "findings", "table"]

#: the profile whose committed results the findings read (the stored book pages use it)
PROFILE = "cpu"

HOLDS, IN_PART, DOES_NOT_HOLD = "holds", "holds in part", "does not hold"
NOT_TESTABLE = "not testable here"
#: the verdict of a claim whose comparisons have fewer seeds than :data:`htaf.stats.MIN_SEEDS`
NOT_YET = "not yet testable to the book's standard"
#: every comparison of the claim inconclusive: neither a difference nor an equivalence shown
INCONCLUSIVE = "inconclusive"
VERDICTS = (HOLDS, IN_PART, DOES_NOT_HOLD, NOT_TESTABLE, NOT_YET, INCONCLUSIVE)

#: the equivalence margins of the page's comparisons, in percentage points of test accuracy, declared before the
#: comparisons were computed: ``snn``, half a point (a difference below it does not change which surrogate to use on
#: MNIST-scale tasks; the SNN chapter reads it from here); ``sensitivity``, two points (deep threshold
#: networks on digits whose accuracy lies between 20 and 60 % and varies by several points between seeds; the
#: chapter's results had been seen with the two-standard-error rule, the paired tests had not); ``dhn``, one point of
#: exact-step test accuracy (classification at 5000 training images, where the seeds of one network spread by about a
#: point) and ``dhn_regression``, a factor 1.25 in test error, compared on the log10 scale (errors span three orders
#: of magnitude); both declared when the chapter moved from three to five seeds, before the five-seed comparisons
#: were computed (the three-seed results had been seen with the two-standard-error rule)
#: ``domains_spikes``, one point on Randman (where every surrogate's three seeds lay within about a point of
#: each other); ``domains_signals``, two points on MNIST-1D (binary networks whose seeds spread by one to three points);
#: both declared before the domains chapter's seeds 3 and 4 were trained (its three-seed results had been seen)
#: ``icbm``, one point of test accuracy (the ICBM chapter's own target against the standard model) and ``icbm_gap``,
#: half a point of switch gap (its target for the switch to the exact step); declared before its seeds 3 and 4 were
#: read (its three-seed results had been seen)
#: ``bnn``, one point of test accuracy (the binary-network chapter's own target against the full-precision twin),
#: declared before its MNIST and Fashion-MNIST seeds 3 and 4 were trained (its three-seed results had been seen), and
#: for the CIFAR-10 subset's CNN before its seeds 3 and 4 were trained (its three-seed results had been seen)
MARGINS = {"snn": 0.5, "sensitivity": 2.0, "dhn": 1.0, "dhn_regression": math.log10(1.25), "domains_spikes": 1.0,
           "domains_signals": 2.0, "icbm": 1.0, "icbm_gap": 0.5, "bnn": 1.0}


class MissingRunsError(results.ResultsError):
    """A finding needs runs that are not in the results folder (the page never trains them)."""


@dataclasses.dataclass(frozen=True)
class Finding:
    """One claim of the paper and the book's verdict on it.

    ``numbers`` holds every number the evidence sentence states (and a few more the page asserts); ``seeds`` the
    fewest seeds per cell of the runs the verdict rests on (``None`` for a theory claim); ``chapter`` the book page
    with the evidence (a path under ``book/`` without suffix); ``settle`` what would settle a claim that is not
    settled; ``comparisons`` the rows of :func:`comparisons` the verdict rests on (empty when none).
    """

    key: str
    claim: str
    verdict: str
    evidence: str
    numbers: dict[str, Any]
    chapter: str
    seeds: int | None = None
    settle: str = ""
    comparisons: Any = None

    @property
    def link(self) -> str:
        """The chapter as a MyST link target from ``book/`` (``experiments/snn.ipynb``)."""
        return f"{self.chapter}.ipynb"


# --------------------------------------------------------------------------------------------
# Reading the evidence
# --------------------------------------------------------------------------------------------


def sweep_runs(experiment: str, sweeps: Iterable[str], results_dir=None, profile: str = PROFILE):
    """The finished runs of ``sweeps`` of ``experiment`` (its ``GRIDS``), one row each: ``sweep``, the grid's keys
    (lists and dicts as JSON text), ``seed``, ``hash`` and the final metrics. Raises :class:`MissingRunsError` when
    a run of the grids has no results file."""
    import pandas as pd

    grids = experiments.grids(experiment, profile)
    wanted = []
    for sweep in sweeps:
        grid = grids[sweep]
        wanted += [(sweep, dict(zip(grid, values))) for values in itertools.product(*grid.values())]
    configs = experiments.resolve_configs(experiment, profile, [given for _, given in wanted], validate=False)
    digests = [results.config_hash(experiment, config) for config in configs]
    found = results.read_records(experiment, profile, digests, results_dir)
    rows, missing = [], []
    for (sweep, given), config, digest in zip(wanted, configs, digests):
        record = found.get(digest)
        if record is None:
            missing.append(digest)
            continue
        rows.append({"sweep": sweep, **{k: results.cell(v) for k, v in given.items()}, "seed": config["seed"],
                     "hash": digest, **record["metrics"]})
    if missing:
        raise MissingRunsError(f"{len(missing)} of {len(wanted)} runs of {experiment} ({', '.join(sweeps)}) have no "
                               f"results file under {results.results_root(results_dir) / experiment / profile}; "
                               f"the findings never train: run `python -m htaf reproduce --profile {profile} --only "
                               f"{experiment}` first")
    return pd.DataFrame(rows)


def _alpha(cell: str) -> float:
    return float(json.loads(cell)["alpha"])


def _seed_values(frame, **match) -> dict[int, float]:
    """``{seed: value}`` of the rows matching ``match`` (``value`` being the column ``metric``)."""
    import numpy as np

    metric = match.pop("metric")
    keep = np.ones(len(frame), dtype=bool)  # one mask, then two columns: filtering the wide frame copied every column
    for key, value in match.items():
        keep &= (frame[key] == value).to_numpy(dtype=bool)
    seeds, values = frame["seed"].to_numpy()[keep], frame[metric].to_numpy()[keep]
    return dict(zip(seeds.astype(int).tolist(), values.astype(float).tolist()))


def _min_seeds(frame, by: list[str]) -> int:
    return int(frame.groupby(by, dropna=False)["seed"].nunique().min())  # NaN: a key that only some rows have


def _mean(values) -> float:
    values = list(values.values()) if hasattr(values, "values") and callable(values.values) else list(values)
    return sum(values) / len(values)


# --------------------------------------------------------------------------------------------
# The page's family of comparisons
# --------------------------------------------------------------------------------------------


def _tally(rows) -> tuple[dict[str, int], str]:
    """The outcomes of a claim's comparisons: ``{"n_comparisons": ..., "n_<outcome>": ...}`` and the phrase the evidence
    states (``"2 better, 4 equivalent"``, in the order of :data:`htaf.stats.OUTCOMES`)."""
    counts = rows["verdict"].value_counts().to_dict()
    numbers = {"n_comparisons": len(rows), **{f"n_{o}": int(counts.get(o, 0)) for o in stats.OUTCOMES}}
    return numbers, ", ".join(f"{counts[o]} {o}" for o in stats.OUTCOMES if counts.get(o))


def verdict_of(outcomes: Iterable[str]) -> str:
    """The verdict on a claim that HTAF does *as well as or better than* the methods it is compared with, from the
    outcomes of those comparisons (:func:`htaf.stats.compare`, HTAF first):

    * :data:`HOLDS` when every comparison is ``better`` or ``equivalent``;
    * :data:`DOES_NOT_HOLD` when none is, and at least one is ``worse``;
    * :data:`INCONCLUSIVE` when every comparison is ``inconclusive``;
    * :data:`IN_PART` otherwise (some comparisons support the claim, others are ``worse`` or ``inconclusive``).

    >>> verdict_of(["equivalent", "better"]), verdict_of(["equivalent", "worse"]), verdict_of(["worse", "inconclusive"])
    ('holds', 'holds in part', 'does not hold')
    """
    outcomes = list(outcomes)
    if not outcomes:
        raise ValueError("a verdict needs at least one comparison")
    unknown = set(outcomes) - set(stats.OUTCOMES)
    if unknown:
        raise ValueError(f"unknown outcomes {sorted(unknown)}; expected some of {stats.OUTCOMES}")
    support = sum(o in (stats.BETTER, stats.EQUIVALENT) for o in outcomes)
    if support == len(outcomes):
        return HOLDS
    if support == 0 and stats.WORSE in outcomes:
        return DOES_NOT_HOLD
    if support == 0:
        return INCONCLUSIVE
    return IN_PART


def not_yet(seeds: int) -> str:
    """The verdict of a comparative claim whose evidence has ``seeds`` seeds per cell, fewer than the book needs."""
    return f"{NOT_YET} ({seeds} seeds)"


#: the SNN chapter's surrogates, in its order (HTAF first)
def _snn_methods() -> list[str]:
    return list(experiments.grids("snn", PROFILE)["main"]["method"])


def snn_runs(results_dir=None):
    """The SNN chapter's main comparison (direct encoding) and its tuned comparison, one row per run and sweep, test
    accuracy in percent as ``accuracy`` and a ``setting`` column: ``default`` (the sweep ``main``: every surrogate at
    peak slope 1 and the profile's learning rate) or ``tuned`` (the sweeps ``tuned_<surrogate>``: each surrogate at the
    peak slope and learning rate its validation accuracy chose, :data:`htaf.experiments.snn.TUNED`; a tuned setting
    that is the default is the same run, listed under both)."""
    tuned = tuning_sweep_names("snn")[1]
    frame = _marked(sweep_runs("snn", ["main", *tuned], results_dir), tuned)
    return frame.assign(accuracy=100 * frame["test_accuracy"])


def _marked(frame, tuned_sweeps):
    """``frame`` with ``setting``: ``tuned`` for the rows of ``tuned_sweeps``, else ``default``."""
    return frame.assign(setting=["tuned" if s in set(tuned_sweeps) else "default" for s in frame["sweep"]])


def _with_setting(frame):
    """``frame`` with a ``setting`` column (a frame without one holds default runs only)."""
    return frame if "setting" in frame else frame.assign(setting="default")


def _setting(frame, setting: str):
    """The rows of ``frame`` with ``setting`` (a frame without the column holds default runs only)."""
    frame = _with_setting(frame)
    return frame[frame["setting"] == setting]


def snn_comparisons(frame) -> dict[str, tuple[dict, dict]]:
    """The SNN chapter's family, ``{name: (a, b)}`` with per-seed accuracies (percent), from a frame of
    :func:`snn_runs` (HTAF first, as in the chapter's grid): every pair of its surrogates at the default setting on
    each dataset (``"snn: <dataset>, <a> vs <b>"``) and, where the frame has tuned runs, HTAF against every other
    surrogate, each at its own tuned setting (``"snn tuned: <dataset>, htaf vs <b>"``)."""
    methods = [m for m in _snn_methods() if m in set(frame["method"])]
    default, tuned = _setting(frame, "default"), _setting(frame, "tuned")
    pairs = {f"snn: {d}, {a} vs {b}": (_seed_values(default, dataset=d, method=a, metric="accuracy"),
                                       _seed_values(default, dataset=d, method=b, metric="accuracy"))
             for d in dict.fromkeys(default["dataset"]) for i, a in enumerate(methods) for b in methods[i + 1:]}
    pairs.update(tuned_pairs(tuned, "snn", [("htaf", b) for b in methods if b != "htaf"], known=pairs))
    return pairs


def snn_tuning(frame=None, results_dir=None):
    """The SNN chapter's tuning sweep (``frame``: its runs, as :func:`htaf.sweep` returns them; default: read from
    ``results_dir``) as a table: the mean validation accuracy (percent, over the tuning seeds) of every surrogate
    (rows) at every peak slope and learning rate (columns); and :func:`tuned_settings` of it."""
    return tuning("snn", order=_snn_methods(), frame=frame, results_dir=results_dir)


def tuning_sweep_names(experiment: str, prefix: str = "", profile: str = PROFILE) -> tuple[list[str], list[str]]:
    """The names of a chapter's tuning sweeps (``<prefix>tuning``, ``<prefix>tuning_<method>``) and of its tuned ones
    (``<prefix>tuned_<method>``) under ``profile`` (empty lists where it has none), as
    :func:`htaf.experiments.tuning_sweeps` builds them. The chapters' prefixes: ``""`` (snn, dhn, bnn),
    :data:`ICBM_TUNED`, :data:`DOMAINS_TUNED`."""
    names = list(experiments.grids(experiment, profile))
    return ([n for n in names if n.startswith(f"{prefix}tuning")], [n for n in names if n.startswith(f"{prefix}tuned_")])


def tuning(experiment: str, prefix: str = "", order: Iterable[str] | None = None, frame=None, results_dir=None):
    """A chapter's tuning sweeps (:func:`tuning_sweep_names`; ``frame``: their runs, default: read from ``results_dir``) as
    the table the chapter shows, the mean validation accuracy (percent, over the tuning seeds) per method (rows, in
    ``order``, default the grid's) and peak slope and learning rate (columns; a method with its own slope has only
    that), and :func:`tuned_settings` of them: each method's choice."""
    frame = frame if frame is not None else sweep_runs(experiment, tuning_sweep_names(experiment, prefix)[0], results_dir)
    return _tuning_table(frame, list(order) if order is not None else list(dict.fromkeys(frame["method"])))


def tuned_runs(experiment: str, prefix: str = "", metric: str = "test_accuracy", results_dir=None):
    """A chapter's tuned runs (the sweeps ``<prefix>tuned_<method>``: each method at the peak slope and learning rate
    its validation accuracy chose), ``accuracy`` the final ``metric`` in percent; an empty frame when the profile has
    no tuned sweeps."""
    import pandas as pd

    tuned = tuning_sweep_names(experiment, prefix)[1]
    if not tuned:
        return pd.DataFrame(columns=["sweep", "method", "dataset", "seed", "hash", "accuracy"])
    frame = sweep_runs(experiment, tuned, results_dir)
    return frame.assign(accuracy=100 * frame[metric])


def tuned_pairs(tuned, label: str, pairs_of: Iterable[tuple[str, str]], column: str = "method",
                known: dict[str, tuple[dict, dict]] | None = None) -> dict[str, tuple[dict, dict]]:
    """The tuned comparisons of a chapter, ``{"<label> tuned: <dataset>, <a> vs <b>": (a, b)}`` with per-seed
    accuracies, for each ``(a, b)`` of ``pairs_of`` (values of ``column``) present in ``tuned`` (a frame of
    :func:`tuned_runs`), on each of its datasets. A pair whose two sides are exactly those of a comparison in
    ``known`` (both methods' tuned settings are their defaults, so the tuned runs *are* the default runs) is that
    comparison again and is left out: a family counts each test once."""
    seen = list((known or {}).values())
    pairs = {}
    for d in dict.fromkeys(tuned["dataset"]):
        present = set(tuned.loc[tuned["dataset"] == d, column])
        for a, b in pairs_of:
            if a in present and b in present:
                pair = tuple(_seed_values(tuned, dataset=d, metric="accuracy", **{column: x}) for x in (a, b))
                if pair not in seen:
                    pairs[f"{label} tuned: {d}, {a} vs {b}"] = pair
    return pairs


def _tuning_table(frame, order: list[str]):
    """A tuning sweep's runs as the table its chapter shows, mean validation accuracy (percent, over the tuning seeds)
    per method (rows, in ``order``) and peak slope and learning rate (columns), and :func:`tuned_settings` of them."""
    table = (100 * frame.groupby(["method", "peak_slope", "lr"], dropna=False)["val_accuracy"].mean()  # own slope: NaN
             ).unstack(["peak_slope", "lr"])
    return table.reindex([m for m in order if m in table.index]), tuned_settings(frame)


def tuned_settings(frame, keys=("peak_slope", "lr"), metric: str = "val_accuracy") -> dict[str, dict[str, float]]:
    """Each method's setting (the values of ``keys``) with the best mean ``metric`` over seeds, from the runs of a
    tuning sweep (``frame``: one row per run with ``method``, ``keys``, ``seed`` and ``metric``). The choice reads
    validation accuracy only; the test set plays no part. Ties go to the first setting in sorted order.

    >>> import pandas as pd
    >>> runs = pd.DataFrame({"method": ["a"] * 4, "peak_slope": [0.5, 0.5, 1.0, 1.0], "lr": [1e-3] * 4,
    ...                      "seed": [0, 1, 0, 1], "val_accuracy": [0.8, 0.9, 0.9, 0.95]})
    >>> tuned_settings(runs)
    {'a': {'peak_slope': 1.0, 'lr': 0.001}}
    >>> tuned_settings(runs.assign(peak_slope=None))  # a method with its own slope: learning rate only
    {'a': {'peak_slope': None, 'lr': 0.001}}
    """
    if metric not in frame or frame[metric].isna().any():
        raise ValueError(f"tuned_settings needs every run's {metric!r}: give the runs of a tuning sweep (trained with "
                         f"a validation set)")
    means = frame.groupby(["method", *keys], dropna=False)[metric].mean()  # a method's own slope is None: kept
    chosen = {}
    for method, part in means.groupby(level="method", sort=False):
        best = part.droplevel("method").idxmax()
        chosen[method] = {k: None if v is None or v != v else float(v)
                          for k, v in zip(keys, best if isinstance(best, tuple) else (best,))}
    return chosen


def sensitivity_runs(results_dir=None):
    """The pre-activation scale regime of the sensitivity chapter (depth-8 DHN, peak slope 1, five seeds): a ``unit``
    column (``htaf a=<alpha>`` or the surrogate's name), ``init_gain`` and ``accuracy`` in percent."""
    frame = sweep_runs("sensitivity_dhn", ["scale_htaf", "scale_surrogates"], results_dir)
    unit = [f"htaf a={_alpha(p):g}" if m == "htaf_hard" else m
            for m, p in zip(frame["method"], frame.get("surrogate_params", [None] * len(frame)))]
    return frame.assign(unit=unit, accuracy=100 * frame["accuracy_step"])


def sensitivity_comparisons(frame) -> dict[str, tuple[dict, dict]]:
    """The comparisons the sensitivity chapter fixed in advance, at every initial gain: HTAF at its default sharpness
    (``alpha = 4``) against the sigmoid, atan and the rectangle, and a heavy tail against a light one within HTAF
    (``alpha = 8`` against ``alpha = 1``), all at peak slope 1."""
    pairs = {}
    for gain in sorted(frame["init_gain"].unique()):
        for a, b in [("htaf a=4", "sigmoid"), ("htaf a=4", "atan"), ("htaf a=4", "rectangle"),
                     ("htaf a=8", "htaf a=1")]:
            pairs[f"sensitivity: gain {gain:g}, {a} vs {b}"] = (
                _seed_values(frame, init_gain=gain, unit=a, metric="accuracy"),
                _seed_values(frame, init_gain=gain, unit=b, metric="accuracy"))
    return pairs


#: the DHN chapter's ways of training with HTAF (smooth then switched, annealed, exact step with HTAF's derivative)
#: and the standard methods each is compared with (regression: STE only, atan is not in its grid)
DHN_HTAF = ("htaf", "htaf_anneal", "htaf_hard")
DHN_BASELINES = ("ste", "atan")


def dhn_runs(results_dir=None):
    """The DHN chapter's runs: ``(classification, regression)``. Classification has ``accuracy`` (exact-step test
    accuracy, percent); regression (one row per network and seed: its width and depth sweeps share networks) has
    ``log_error``, minus log10 of the exact-step test error against ``f`` (higher is better, as for accuracy)."""
    import numpy as np

    cls = sweep_runs("dhn", ["depth", "skip", "reference"], results_dir)
    cls = cls.assign(accuracy=100 * cls["accuracy_step"])
    reg = sweep_runs("dhn_regression", ["width", "depth", "skip", "reference", "width_reference"],
                     results_dir).drop_duplicates("hash")
    return cls, reg.assign(log_error=-np.log10(reg["mse_step"]))


def dhn_tuned_runs(results_dir=None):
    """The DHN chapter's tuned comparison: each method at the peak slope and learning rate its validation accuracy
    chose (the sweeps ``tuned_<method>``, :data:`htaf.experiments.dhn.TUNED`), ``accuracy`` the exact-step test
    accuracy in percent; an empty frame when the profile has no tuned sweeps."""
    return tuned_runs("dhn", metric="accuracy_step", results_dir=results_dir)


def dhn_tuning(frame=None, results_dir=None):
    """The DHN chapter's tuning sweeps (``tuning``, ``tuning_ste``; ``frame``: their runs, default: read from
    ``results_dir``) as a table of mean validation accuracy (exact step, percent, over the tuning seeds) per method
    (rows) and peak slope and learning rate (columns; STE has only its fixed slope 1/2), and :func:`tuned_settings`
    of it."""
    return tuning("dhn", order=experiments.grids("dhn", PROFILE)["tuning"]["method"] + ["ste"], frame=frame,
                  results_dir=results_dir)


def dhn_comparisons(cls, reg, tuned=None) -> tuple[dict[str, tuple[dict, dict]], dict[str, float]]:
    """The DHN chapter's family, ``(pairs, margins)`` for :func:`htaf.stats.compare_family`: on every distinct
    classification network (dataset, variant, depth) each of :data:`DHN_HTAF` against STE and atan (accuracy, margin
    ``MARGINS["dhn"]``); on every distinct regression network (variant, width, depth) each against STE (``log_error``,
    margin ``MARGINS["dhn_regression"]``). Against the real-valued reference (the plain ReLU MLP of the same width and
    depth, :data:`htaf.experiments.dhn.REFERENCE`): ``htaf_hard``'s skip DHNs of depth 2 and more, and ``htaf_hard``
    on every regression network. With ``tuned`` (a frame of :func:`dhn_tuned_runs`), each of :data:`DHN_HTAF` against
    STE and atan, every method at its own tuned setting (``"dhn tuned: <dataset>, <a> vs <b>"``, margin
    ``MARGINS["dhn"]``). Frames of :func:`dhn_runs`; names ``"dhn: <dataset> <variant> <depth>, <a> vs <b>"``
    and ``"dhn regression: <variant> w<width> d<depth>, <a> vs <b>"``."""
    from htaf.experiments.dhn import REFERENCE

    pairs, margins = {}, {}
    networks = cls[cls["method"].isin(DHN_HTAF)][["dataset", "variant", "depth"]].drop_duplicates()
    for d, v, L in networks.itertuples(index=False):
        for a in DHN_HTAF:
            for b in DHN_BASELINES:
                name = f"dhn: {d} {v} {int(L)}, {a} vs {b}"
                pairs[name] = tuple(_seed_values(cls, dataset=d, variant=v, depth=L, method=m, metric="accuracy")
                                    for m in (a, b))
                margins[name] = MARGINS["dhn"]
        if v == "skip":
            name = f"dhn: {d} {v} {int(L)}, htaf_hard vs {REFERENCE}"
            pairs[name] = (_seed_values(cls, dataset=d, variant=v, depth=L, method="htaf_hard", metric="accuracy"),
                           _seed_values(cls, dataset=d, variant="plain", depth=L, method=REFERENCE, metric="accuracy"))
            margins[name] = MARGINS["dhn"]
    networks = reg[reg["method"].isin(DHN_HTAF)][["variant", "width", "depth"]].drop_duplicates()
    for v, w, L in networks.itertuples(index=False):
        for a, b, variant_b in [*((a, "ste", v) for a in DHN_HTAF), ("htaf_hard", REFERENCE, "plain")]:
            name = f"dhn regression: {v} w{int(w)} d{int(L)}, {a} vs {b}"
            pairs[name] = (_seed_values(reg, variant=v, width=w, depth=L, method=a, metric="log_error"),
                           _seed_values(reg, variant=variant_b, width=w, depth=L, method=b, metric="log_error"))
            margins[name] = MARGINS["dhn_regression"]
    if tuned is not None and len(tuned):
        for name, pair in tuned_pairs(tuned, "dhn", [(a, b) for a in DHN_HTAF for b in DHN_BASELINES], known=pairs).items():
            pairs[name], margins[name] = pair, MARGINS["dhn"]
    return pairs, margins


#: the sweep prefix of the domains chapter's tuned comparison (MNIST-1D's convolutional threshold network)
DOMAINS_TUNED = domains_experiment.TUNED_PREFIX


def domains_runs(results_dir=None, tuned: bool = False):
    """The domains chapter's runs, one row each, with ``accuracy`` (test accuracy in percent: the exact-step network's
    for the binary families), Randman's ``dim`` and ``T`` (from ``data_kwargs``), and ``family`` and ``backbone``
    (MNIST-1D only), and ``setting``: ``default``, or with ``tuned`` also ``tuned`` (the tuned comparison's runs,
    sweeps ``mnist1d_conv_tuned_<method>``; one that is a default run is listed under both). The tuning runs (scored on
    validation data) are never among them."""
    from htaf.experiments.domains import GRIDS

    tuning, tuned_sweeps = tuning_sweep_names("domains", DOMAINS_TUNED)
    main = [s for s in GRIDS["domains"][PROFILE] if s not in tuning and s not in tuned_sweeps]
    frame = _marked(sweep_runs("domains", main + (tuned_sweeps if tuned else []), results_dir), tuned_sweeps)
    frame = frame.drop_duplicates(["setting", "hash"])
    settings = [json.loads(k) if isinstance(k, str) else (k or {}) for k in frame["data_kwargs"]]
    return frame.assign(accuracy=100 * frame["test_accuracy"], dim=[k.get("dim") for k in settings],
                        T=[k.get("T") for k in settings])


def domains_comparisons(frame, profile: str = PROFILE) -> tuple[dict[str, tuple[dict, dict]], dict[str, float]]:
    """The domains chapter's family, ``(pairs, margins)`` for :func:`htaf.stats.compare_family`, from a frame of
    :func:`domains_runs`. On Randman (margin ``MARGINS["domains_spikes"]``): HTAF against every other surrogate on the
    default task, and against atan and the fast sigmoid at every other manifold dimension and number of steps. On
    MNIST-1D (margin ``MARGINS["domains_signals"]``), per backbone: in the threshold networks smooth HTAF against
    ``htaf_hard``, STE and atan, and ``htaf_hard`` against STE and atan; in the binary networks HTAF against every other
    sign surrogate; in the concept bottleneck HTAF and ``htaf_hard`` against STE and against the continuous standard
    model. Where ``frame`` has the tuned comparison's runs (setting ``tuned``), the threshold network's pairs again,
    each unit at its own tuned setting. Names: ``"domains randman: <setting>, <a> vs <b>"``, ``"domains mnist1d:
    <backbone> <family>, <a> vs <b>"``, ``"domains mnist1d tuned: mnist1d, <a> vs <b>"``. The settings and units are
    those of ``profile``'s grids."""
    from htaf.experiments.domains import GRIDS

    tuned, frame = _setting(frame, "tuned"), _setting(frame, "default")
    grids = GRIDS["domains"][profile]
    default = grids["randman"]["data_kwargs"][0]
    pairs, margins = {}, {}

    def add(name, a, b, margin):
        pairs[name], margins[name] = (a, b), margin

    spikes = frame[frame["dataset"] == "randman"]
    settings = [("default", default["dim"], default["T"], [m for m in grids["randman"]["method"] if m != "htaf"])]
    others = [m for m in grids["randman_dim"]["method"] if m != "htaf"]
    settings += [(f"dim {d}", d, default["T"], others) for d in sorted({k["dim"] for k in grids["randman_dim"]["data_kwargs"]})
                 if d != default["dim"]]
    settings += [(f"T {t}", default["dim"], t, others) for t in sorted({k["T"] for k in grids["randman_T"]["data_kwargs"]})
                 if t != default["T"]]
    for label, dim, steps, methods in settings:
        cell = spikes[(spikes["dim"] == dim) & (spikes["T"] == steps)]
        for m in methods:
            add(f"domains randman: {label}, htaf vs {m}",
                *(_seed_values(cell, method=x, metric="accuracy") for x in ("htaf", m)), MARGINS["domains_spikes"])
    signals = frame[frame["dataset"] == "mnist1d"]
    versus = {"dhn": [("htaf", "htaf_hard"), ("htaf", "ste"), ("htaf", "atan"), ("htaf_hard", "ste"), ("htaf_hard", "atan")],
              "bnn": [("htaf", m) for m in grids["mnist1d_bnn"]["method"] if m != "htaf"],
              "icbm": [("htaf", "ste"), ("htaf_hard", "ste"), ("htaf", "relu"), ("htaf_hard", "relu")]}
    for family, backbones in (("dhn", grids["mnist1d_dhn"]["backbone"]), ("bnn", grids["mnist1d_bnn"]["backbone"]),
                              ("icbm", grids["mnist1d_icbm"]["backbone"])):
        for backbone in backbones:
            cell = signals[(signals["family"] == family) & (signals["backbone"] == backbone)]
            for a, b in versus[family]:
                add(f"domains mnist1d: {backbone} {family}, {a} vs {b}",
                    *(_seed_values(cell, method=x, metric="accuracy") for x in (a, b)), MARGINS["domains_signals"])
    for name, pair in tuned_pairs(tuned, "domains mnist1d", versus["dhn"], known=pairs).items():
        add(name, *pair, MARGINS["domains_signals"])
    return pairs, margins


def bnn_runs(results_dir=None):
    """The binary-network chapter's runs: the MLP's ``matched``, ``defaults`` and ``reference`` sweeps (MNIST,
    Fashion-MNIST), the small CNN's ``cifar_*`` twins of them (the CIFAR-10 subset) and the tuned comparison's runs
    (sweeps ``tuned_<method>``, Fashion-MNIST: each method at the peak slope and learning rate its validation accuracy
    chose), with ``accuracy`` in percent. The tuning runs (scored on validation data) are not among them."""
    sweeps = ["matched", "defaults", "reference", "cifar_matched", "cifar_defaults", "cifar_reference"]
    frame = sweep_runs("bnn", sweeps + tuning_sweep_names("bnn")[1], results_dir)
    return frame.assign(accuracy=100 * frame["test_accuracy"])


def _bnn_settings(frame):
    """A frame of :func:`bnn_runs` with its sweeps as settings (``matched``, ``defaults``, ``reference``, ``tuned``):
    the CNN's ``cifar_`` sweeps are the MLP's settings on another dataset."""
    tuned = set(tuning_sweep_names("bnn")[1])
    return frame.assign(setting=["tuned" if s in tuned else s.removeprefix("cifar_") for s in frame["sweep"]])


def bnn_comparisons(frame) -> tuple[dict[str, tuple[dict, dict]], dict[str, float]]:
    """The binary-network chapter's family, ``(pairs, margins)`` for :func:`htaf.stats.compare_family`, from a frame
    of :func:`bnn_runs`: per dataset (MNIST and Fashion-MNIST with the MLP, the CIFAR-10 subset with the small CNN),
    HTAF against every other sign surrogate at matched peak slope (setting ``matched``) and at each method's default
    (setting ``defaults``); accuracy, margin ``MARGINS["bnn"]``; where the frame has the tuned comparison's runs, HTAF
    against every other method, each at its own tuned setting. Names: ``"bnn: <dataset> <setting>, htaf vs
    <method>"`` and ``"bnn tuned: <dataset>, htaf vs <method>"``."""
    from htaf.experiments.bnn import DEFAULTS, MATCHED, TUNED_METHODS

    pairs, margins = {}, {}
    frame = _bnn_settings(frame)
    tuned, frame = frame[frame["setting"] == "tuned"], frame[frame["setting"] != "tuned"]
    for d in dict.fromkeys(frame["dataset"]):
        for setting, methods in (("matched", MATCHED), ("defaults", DEFAULTS)):
            part = frame[(frame["dataset"] == d) & (frame["setting"] == setting)]
            for m in methods:
                if m == "htaf":
                    continue
                name = f"bnn: {d} {setting}, htaf vs {m}"
                pairs[name] = tuple(_seed_values(part, method=x, metric="accuracy") for x in ("htaf", m))
                margins[name] = MARGINS["bnn"]
    for name, pair in tuned_pairs(tuned, "bnn", [("htaf", m) for m in TUNED_METHODS if m != "htaf"], known=pairs).items():
        pairs[name], margins[name] = pair, MARGINS["bnn"]
    return pairs, margins


def comparisons(results_dir=None, snn_frame=None, sensitivity_frame=None, dhn_frames=None, domains_frame=None,
                icbm_frame=None, bnn_frame=None, dhn_tuned=None):
    """Every comparison a verdict of the page rests on (:func:`htaf.stats.compare_family`), Holm-adjusted within its
    claim's family, the family of the chapter it comes from (the SNN chapter's 35 comparisons; the sensitivity
    chapter's fixed comparisons; the DHN chapter's, :func:`dhn_comparisons`; the domains chapter's,
    :func:`domains_comparisons`; the ICBM chapter's, :func:`icbm_comparisons`; the binary-network chapter's on its
    MLPs and small CNN, :func:`bnn_comparisons`), so that the page and the chapter agree. A group enters only when every one
    of its cells has :data:`htaf.stats.MIN_SEEDS` seeds; the ``group`` column names it (``snn``, ``sensitivity``,
    ``dhn``, ``domains``, ``icbm``, ``bnn``). Frames not given are read from ``results_dir``; ``dhn_tuned`` (the DHN
    chapter's tuned runs, :func:`dhn_tuned_runs`) is read only when ``dhn_frames`` is not given either."""
    import pandas as pd

    snn_frame = snn_frame if snn_frame is not None else snn_runs(results_dir)
    sensitivity_frame = sensitivity_frame if sensitivity_frame is not None else sensitivity_runs(results_dir)
    if dhn_tuned is None:  # given DHN frames come without tuned runs unless those are given too
        dhn_tuned = dhn_tuned_runs(results_dir) if dhn_frames is None else pd.DataFrame(columns=["method", "dataset", "seed"])
    cls, reg = dhn_frames if dhn_frames is not None else dhn_runs(results_dir)
    domains_frame = _with_setting(domains_frame if domains_frame is not None else domains_runs(results_dir, tuned=True))
    icbm_frame = _with_setting(icbm_frame if icbm_frame is not None else icbm_runs(results_dir, gaps=True, tuned=True))
    bnn_frame = bnn_frame if bnn_frame is not None else bnn_runs(results_dir)
    groups = {  # group: (the fewest seeds of a cell, a function building (pairs, margins))
        "snn": (_min_seeds(snn_frame, ["dataset", "method"]),
                lambda: (snn_comparisons(snn_frame), MARGINS["snn"])),
        "sensitivity": (_min_seeds(sensitivity_frame, ["init_gain", "unit"]),
                        lambda: (sensitivity_comparisons(sensitivity_frame), MARGINS["sensitivity"])),
        "dhn": (min(_min_seeds(cls, ["dataset", "variant", "depth", "method"]),
                    _min_seeds(reg, ["variant", "width", "depth", "method"]),
                    _min_seeds(dhn_tuned, ["dataset", "method"]) if len(dhn_tuned) else stats.MIN_SEEDS),
                lambda: dhn_comparisons(cls, reg, dhn_tuned)),
        "domains": (_min_seeds(domains_frame, ["setting", "dataset", "family", "backbone", "dim", "T", "method"]),
                    lambda: domains_comparisons(domains_frame)),
        "icbm": (_min_seeds(icbm_frame, ["setting", "dataset", "variant"]), lambda: icbm_comparisons(icbm_frame)),
        "bnn": (_min_seeds(_bnn_settings(bnn_frame), ["setting", "dataset", "method"]),
                lambda: bnn_comparisons(bnn_frame)),
    }
    parts = []
    for group, (seeds, build) in groups.items():
        if seeds < stats.MIN_SEEDS:
            continue
        family = stats.compare_family(*build())
        family.insert(0, "group", group)
        parts.append(family)
    if not parts:
        return pd.DataFrame(columns=["group", "verdict", "difference", "ci_low", "ci_high", "margin", "p_difference",
                                     "p_equivalence", "n", "unadjusted"])
    return pd.concat(parts)


# --------------------------------------------------------------------------------------------
# The claims
# --------------------------------------------------------------------------------------------


def snn(results_dir=None, frame=None, family=None) -> Finding:
    """Spiking networks: HTAF as a surrogate gradient trains them as well as or better than the standard surrogates
    (atan, sigmoid, fast sigmoid, triangle, rectangle at equal peak slope), on MNIST and Fashion-MNIST."""
    frame = frame if frame is not None else snn_runs(results_dir)
    seeds = _min_seeds(frame, ["dataset", "method"])
    htaf_mean = {d: _mean(_seed_values(_setting(frame, "default"), dataset=d, method="htaf", metric="accuracy"))
                 for d in ("mnist", "fashion_mnist")}
    numbers = {"htaf_mnist": htaf_mean["mnist"], "htaf_fashion_mnist": htaf_mean["fashion_mnist"], "seeds": seeds}
    level = (f"HTAF reaches {htaf_mean['mnist']:.1f} % on MNIST and {htaf_mean['fashion_mnist']:.1f} % on "
             f"Fashion-MNIST (FC-SNN, T = 4, 4 epochs, mean of {seeds} seeds).")
    claim = ("HTAF trains spiking networks as well as or better than the standard surrogate gradients (atan, sigmoid, "
             "fast sigmoid, triangle, rectangle at equal peak slope).")
    if seeds < stats.MIN_SEEDS:
        return Finding("snn", claim, not_yet(seeds), level, numbers, "experiments/snn", seeds,
                       settle=f"{stats.MIN_SEEDS} paired seeds per surrogate and dataset (being trained), compared "
                              f"with a margin of {MARGINS['snn']} points, Holm over the chapter's family.")
    family = family if family is not None else comparisons(results_dir, snn_frame=frame)
    chapter = family[family["group"] == "snn"]  # the chapter's comparisons, Holm over all of them
    rows = chapter[chapter.index.str.contains(", htaf vs ")]  # HTAF's: ten at equal peak slope, and the tuned ones
    matched, tuned = rows[rows.index.str.startswith("snn: ")], rows[rows.index.str.startswith("snn tuned: ")]
    tally, _ = _tally(rows)
    numbers.update(tally)
    better = tally[f"n_{stats.BETTER}"]
    evidence = (f"{level[:-1]}; against the five surrogates on two datasets at equal peak slope ({len(matched)} paired "
                f"comparisons, margin {MARGINS['snn']} points, Holm over the chapter's {len(chapter)}): "
                f"{_tally(matched)[1]}"
                + (f"; each surrogate at its own peak slope and learning rate, tuned on validation data (Fashion-MNIST, "
                   f"{len(tuned)} comparisons): {_tally(tuned)[1]}" if len(tuned) else "")
                + "; better than none" + ("." if better == 0 else f" but {better}."))
    return Finding("snn", claim, verdict_of(rows["verdict"]), evidence, numbers, "experiments/snn", seeds,
                   comparisons=rows)


def bnn(results_dir=None, frame=None, family=None) -> Finding:
    """Binary neural networks: HTAF's sign surrogate trains them as well as or better than STE, ApproxSign, SignSwish
    and EDE. Judged on the chapter's comparisons (the MLP on MNIST and Fashion-MNIST, the small CNN on the CIFAR-10
    subset; :func:`bnn_comparisons`), with its
    targets (97.8 % on MNIST; within one point of the full-precision twin on Fashion-MNIST) met or missed by the
    mean."""
    frame = frame if frame is not None else bnn_runs(results_dir)
    frame = _bnn_settings(frame)
    seeds = _min_seeds(frame, ["setting", "dataset", "method"])
    mean = {(s, d, m): _mean(_seed_values(frame, setting=s, dataset=d, method=m, metric="accuracy"))
            for s, d, m in frame[["setting", "dataset", "method"]].drop_duplicates().itertuples(index=False)}
    mnist = [mean[(s, "mnist", "htaf")] for s in ("matched", "defaults")]
    twin = mean[("reference", "fashion_mnist", "full_precision")]
    fmnist_gap = [twin - mean[(s, "fashion_mnist", "htaf")] for s in ("matched", "defaults")]
    numbers = {"htaf_mnist_min": min(mnist), "htaf_mnist_max": max(mnist), "mnist_target": 97.8,
               "fmnist_gap_min": min(fmnist_gap), "fmnist_gap_max": max(fmnist_gap), "seeds": seeds}
    numbers.update(mnist_target_met=min(mnist) >= 97.8, fmnist_target_met=max(fmnist_gap) <= 1.0)
    level = (f"HTAF's binary MLP reaches {min(mnist):.1f} % or more on MNIST at both slopes (the 97.8 % target is "
             f"{'met' if numbers['mnist_target_met'] else 'missed'}) and stays {min(fmnist_gap):.1f}-"
             f"{max(fmnist_gap):.1f} points below its full-precision twin on Fashion-MNIST (the within-one-point "
             f"target is {'met' if numbers['fmnist_target_met'] else 'missed'}).")
    claim = ("HTAF trains binary neural networks as well as or better than the sign surrogates of the BNN literature "
             "(STE, ApproxSign, SignSwish, IR-Net's EDE).")
    if seeds < stats.MIN_SEEDS:
        return Finding("bnn", claim, not_yet(seeds), level, numbers, "experiments/bnn", seeds,
                       settle=f"{stats.MIN_SEEDS} paired seeds per method and dataset, compared with a margin "
                              "declared in advance.")
    family = family if family is not None else comparisons(results_dir, bnn_frame=frame)
    rows = family[family["group"] == "bnn"]
    tally, told = _tally(rows)
    numbers.update(tally, not_supporting=sorted(rows.index[~rows["verdict"].isin([stats.BETTER, stats.EQUIVALENT])]))
    tuned = rows[rows.index.str.startswith("bnn tuned: ")]
    fixed = rows[~rows.index.str.startswith("bnn tuned: ")]
    evidence = (f"{level} Against STE, ApproxSign and SignSwish at matched peak slope and against ApproxSign, "
                f"SignSwish and EDE at their defaults, on MNIST, Fashion-MNIST and the CIFAR-10 subset ({seeds} "
                f"paired seeds, margin {MARGINS['bnn']:g} point, Holm over the chapter's {len(rows)}): "
                f"{_tally(fixed)[1]}"
                + (f"; each method at its own peak slope and learning rate, tuned on validation data (Fashion-MNIST, "
                   f"{len(tuned)} comparisons): {_tally(tuned)[1]}" if len(tuned) else "") + ".")
    return Finding("bnn", claim, verdict_of(rows["verdict"]), evidence, numbers, "experiments/bnn", seeds,
                   comparisons=rows,
                   settle="For the CIFAR-10 subset's CNN, more seeds or more test images than its 1000; at the "
                          "paper's scale, the `gpu` profile's VGG-small and ResNet-18 on full CIFAR-10 (the IR-Net "
                          "setting; its grids have three seeds, two fewer than a comparison needs).")


def dhn(results_dir=None, frames=None, family=None) -> Finding:
    """Deep Heaviside networks: training with HTAF gives networks that work with exact steps at inference, as well as
    the standard ways of training them (STE, atan). Judged on the DHN chapter's family (:func:`dhn_comparisons`),
    with the levels the evidence sentence states."""
    cls, reg = frames if frames is not None else dhn_runs(results_dir)
    seeds = min(_min_seeds(cls, ["dataset", "method", "variant", "depth"]),
                _min_seeds(reg, ["method", "variant", "width", "depth"]))
    hard_skip = cls[(cls["method"] == "htaf_hard") & (cls["variant"] == "skip")]
    hard_skip_mnist = hard_skip[hard_skip["dataset"] == "mnist"].groupby("depth")["accuracy"].mean()
    smooth_plain = cls[(cls["method"] == "htaf") & (cls["variant"] == "plain") & (cls["depth"] >= 8)]
    smooth_plain_mean = smooth_plain.groupby(["dataset", "depth"])["accuracy"].mean()
    # the error of the best constant predictor: the variance of f on the test set
    from htaf import data

    config = experiments.resolve_config("dhn_regression", PROFILE)
    _, f_test = data.load(config["dataset"], "test", **config["data_kwargs"]).tensors
    constant = float(f_test.var(unbiased=False))
    smooth_reg = reg[reg["method"] == "htaf"]
    networks = smooth_reg.groupby(["variant", "width", "depth"])["mse_step"].mean()
    numbers = {"hard_skip_mnist_min": float(hard_skip_mnist.min()), "smooth_plain_deep_max": float(smooth_plain_mean.max()),
               "smooth_reg_networks": len(networks), "smooth_reg_networks_worse": int((networks > constant).sum()),
               "smooth_reg_runs": len(smooth_reg), "smooth_reg_runs_worse": int((smooth_reg["mse_step"] > constant).sum()),
               "smooth_reg_network_min": float(networks.min()), "constant_mse": constant, "seeds": seeds}
    claim = "HTAF trains deep Heaviside networks that work with exact steps at inference."
    level = (f"As a surrogate gradient of the exact step (`htaf_hard`), HTAF trains skip DHNs of depth 2-16 to "
             f"{hard_skip_mnist.min():.1f} % or more on MNIST. Trained smooth and switched to steps, it fails deep "
             f"plain classifiers (at most {smooth_plain_mean.max():.0f} % at depth 8-16, chance 10 %) and "
             f"regression: by the mean over seeds, {numbers['smooth_reg_networks_worse']} of {len(networks)} "
             f"networks end worse than predicting the mean (test error {networks.min():.2f} or more against "
             f"{constant:.3f}; {numbers['smooth_reg_runs_worse']} of {len(smooth_reg)} runs).")
    if seeds < stats.MIN_SEEDS:
        return Finding("dhn", claim, IN_PART if numbers["smooth_reg_networks_worse"] else HOLDS, level, numbers,
                       "experiments/dhn", seeds,
                       settle=f"Whether HTAF trains them better than STE or atan needs {stats.MIN_SEEDS} paired seeds.")
    family = family if family is not None else comparisons(results_dir, dhn_frames=None if frames is None else (cls, reg))
    chapter = family[family["group"] == "dhn"]
    against = chapter[chapter.index.str.endswith(tuple(f" vs {b}" for b in DHN_BASELINES))]  # HTAF against STE, atan
    tuned = against[against.index.str.startswith("dhn tuned: ")]  # each method at its own tuned setting
    rows = against[~against.index.str.startswith("dhn tuned: ")]  # on every network, at matched peak slope
    method = rows.index.str.split(", ").str[1].str.split(" vs ").str[0]
    worse = {m: int(((method == m) & (rows["verdict"] == stats.WORSE)).sum()) for m in DHN_HTAF}
    counts = {m: rows[method == m]["verdict"].value_counts().to_dict() for m in DHN_HTAF}
    numbers.update({"n_comparisons": len(rows), "worse": worse,
                    "verdicts": {m: {o: int(c.get(o, 0)) for o in stats.OUTCOMES} for m, c in counts.items()},
                    "tuned": tuned["verdict"].to_dict()})

    def told(m):
        return ", ".join(f"{counts[m][o]} {o}" for o in stats.OUTCOMES if counts[m].get(o))

    evidence = (f"{level} Against STE and atan on every network ({seeds} seeds, {len(rows)} paired comparisons, "
                f"margins {MARGINS['dhn']:g} point and a factor 1.25 in regression error, Holm over the chapter's "
                f"{len(chapter)}): "
                f"`htaf_hard` {told('htaf_hard')}; smooth HTAF {told('htaf')}; annealed HTAF {told('htaf_anneal')}"
                + (f"; each method at its own peak slope and learning rate, tuned on validation data (Fashion-MNIST, "
                   f"plain DHN of depth 2, {len(tuned)} comparisons): {_tally(tuned)[1]}" if len(tuned) else "") + ".")
    return Finding("dhn", claim, verdict_of(against["verdict"]), evidence, numbers, "experiments/dhn", seeds,
                   comparisons=against,
                   settle="Wider and longer-trained networks (the `gpu` profile): most comparisons are inconclusive "
                          f"at {seeds} seeds.")


#: the sweep prefix of the ICBM chapter's tuned comparison (Fashion-MNIST)
ICBM_TUNED = icbm_experiment.TUNED_PREFIX


def icbm_runs(results_dir=None, gaps: bool = False, tuned: bool = False):
    """The ICBM chapter's runs (its map and the map's selection twin apart), one row each: ``dataset`` (``shapes (<rule>)`` for ``concept_shapes``),
    ``variant`` (the concept unit, ``standard``, ``supervised`` or ``untrained``), ``accuracy`` and ``gap`` (switch
    gap) in percent, and ``setting`` (``default``). With ``gaps``, also the runs of the gap-closing sweeps, whose
    ``variant`` is ``htaf K=128``, ``standard K=128`` or ``htaf sharpen``; with ``tuned``, also the tuned comparison's
    runs (sweeps ``fmnist_tuned_<method>``), with setting ``tuned`` (one that is a default run is listed under both).
    The tuning runs (scored on validation data) are never among them."""
    closing = ("more_concepts", "more_concepts_standard", "sharpen")
    tuning, tuned_sweeps = tuning_sweep_names("icbm", ICBM_TUNED)
    sweeps = [s for s in experiments.grids("icbm", PROFILE) if not s.endswith(("_map", "_map_selection"))
              and (gaps or not s.endswith(closing)) and s not in tuning and s not in tuned_sweeps]
    frame = sweep_runs("icbm", sweeps + (tuned_sweeps if tuned else []), results_dir)
    rule = [json.loads(k).get("label_rule", "xor") if isinstance(k, str) else "xor"
            for k in frame.get("data_kwargs", [None] * len(frame))]
    dataset = [f"shapes ({r})" if d == "concept_shapes" else d for d, r in zip(frame["dataset"], rule)]
    variant = ["supervised" if s == "shapes_ceiling" else "untrained" if s == "shapes_floor"
               else "htaf K=128" if s.endswith("more_concepts") else "standard K=128" if s.endswith("more_concepts_standard")
               else "htaf sharpen" if s.endswith("sharpen") else "standard" if m == "relu" else m
               for s, m in zip(frame["sweep"], frame["method"])]
    return _marked(frame, tuned_sweeps).assign(dataset=dataset, variant=variant, accuracy=100 * frame["test_accuracy"],
                                               gap=100 * frame["switch_gap"])


def icbm_comparisons(frame) -> tuple[dict[str, tuple[dict, dict]], dict[str, float]]:
    """The ICBM chapter's family, ``(pairs, margins)`` for :func:`htaf.stats.compare_family`, from a frame of
    :func:`icbm_runs` with ``gaps=True``. Per dataset, HTAF against every other concept unit and against the standard
    model (accuracy, margin ``MARGINS["icbm"]``), and HTAF's switch gap against the sigmoid bottleneck's (compared as
    minus the gap, so that higher is better; margin ``MARGINS["icbm_gap"]``); on the datasets of the gap-closing
    sweeps, HTAF at ``K = 128`` against HTAF at ``K = 32``, against the standard model at both widths, and the
    sharpening schedule against HTAF (accuracy). Names: ``"icbm: <dataset>, <a> vs <b>"`` and
    ``"icbm gap: <dataset>, htaf vs sigmoid_smooth"``. Where the frame has the tuned comparison's runs (setting
    ``tuned``), HTAF against every other concept unit and the standard model again, each at its own tuned setting
    (``"icbm tuned: <dataset>, htaf vs <b>"``)."""
    pairs, margins = {}, {}
    tuned, frame = _setting(frame, "tuned"), _setting(frame, "default")
    datasets = [d for d in ICBM_DATASETS if d in set(frame["dataset"])]
    for d in datasets:
        part = frame[frame["dataset"] == d]
        present = set(part["variant"])
        versus = [v for v in ("htaf_hard", "sigmoid_smooth", "ste", "standard") if v in present]
        closing = [("htaf K=128", "htaf"), ("htaf K=128", "standard"), ("htaf K=128", "standard K=128"),
                   ("htaf sharpen", "htaf")] if "htaf K=128" in present else []
        for a, b in [("htaf", v) for v in versus] + closing:
            name = f"icbm: {d}, {a} vs {b}"
            pairs[name] = tuple(_seed_values(part, variant=x, metric="accuracy") for x in (a, b))
            margins[name] = MARGINS["icbm"]
        if "sigmoid_smooth" in present:
            name = f"icbm gap: {d}, htaf vs sigmoid_smooth"
            pairs[name] = tuple({k: -v for k, v in _seed_values(part, variant=x, metric="gap").items()}
                                for x in ("htaf", "sigmoid_smooth"))
            margins[name] = MARGINS["icbm_gap"]
    versus = [("htaf", v) for v in ("htaf_hard", "sigmoid_smooth", "ste", "standard")]
    for name, pair in tuned_pairs(tuned, "icbm", versus, column="variant", known=pairs).items():
        pairs[name], margins[name] = pair, MARGINS["icbm"]
    return pairs, margins


ICBM_DATASETS = ["mnist", "fashion_mnist", "cifar10_subset", "shapes (xor)", "shapes (all)"]
#: the matched AUC (one concept per true attribute, :func:`htaf.metrics`) at which the concepts count as standing for the
#: attributes one bit each (declared here; the supervised ceiling reaches about 0.98)
INTERPRETABLE_AUC = 0.9


def icbm_accuracy(results_dir=None, frame=None, family=None) -> Finding:
    """ICBM accuracy: trained with HTAF and read with exact steps, an ICBM is as accurate as the standard model of the
    same shape. Judged on the ICBM chapter's comparisons of HTAF with the standard model (margin: the chapter's
    target, one point), with the target met or missed by the mean."""
    frame = frame if frame is not None else icbm_runs(results_dir, gaps=True, tuned=True)
    default = _setting(frame, "default")
    seeds = _min_seeds(default, ["dataset", "variant"])
    gap = {d: _mean(_seed_values(default, dataset=d, variant="htaf", metric="accuracy"))
           - _mean(_seed_values(default, dataset=d, variant="standard", metric="accuracy")) for d in ICBM_DATASETS}
    met = [d for d in ICBM_DATASETS if gap[d] >= -1.0]
    numbers = {"target_met": met, "gap": gap, "largest_shortfall": -min(gap.values()), "seeds": seeds}
    target = (f"The target, exact-step HTAF ICBM within one point of the standard model (by the mean), is met on "
              f"{len(met)} of {len(ICBM_DATASETS)} datasets ({', '.join(met)}); the largest shortfall is "
              f"{-min(gap.values()):.1f} points (`concept_shapes`, 64-class rule).")
    claim = ("An implicit concept bottleneck model trained with HTAF and read with exact steps is as accurate as the "
             "standard model of the same shape.")
    if seeds < stats.MIN_SEEDS:
        return Finding("icbm_accuracy", claim, not_yet(seeds), target, numbers, "experiments/icbm", seeds,
                       settle=f"{stats.MIN_SEEDS} paired seeds per dataset and an equivalence test against the "
                              "standard model (the chapter's target, one point, as the margin).")
    import pandas as pd

    family = family if family is not None else comparisons(results_dir, icbm_frame=frame)
    chapter = family[family["group"] == "icbm"]
    tuned = chapter[chapter.index.str.startswith("icbm tuned: ") & chapter.index.str.endswith(", htaf vs standard")]
    rows = pd.concat([chapter.loc[[f"icbm: {d}, htaf vs standard" for d in ICBM_DATASETS]], tuned])
    numbers["verdicts"] = {d: rows.loc[f"icbm: {d}, htaf vs standard", "verdict"] for d in ICBM_DATASETS}
    numbers["tuned"] = {name.split(": ")[1].split(",")[0]: (row["verdict"], row["difference"]) for name, row in tuned.iterrows()}
    told = "; ".join(f"{d} {v} ({rows.loc[f'icbm: {d}, htaf vs standard', 'difference']:+.1f})"
                     for d, v in numbers["verdicts"].items())
    evidence = (f"{target} Against the standard model ({seeds} paired seeds, margin {MARGINS['icbm']:g} point, Holm "
                f"over the chapter's {len(chapter)} comparisons): {told}"
                + "".join(f"; with both models at their own peak slope and learning rate, tuned on validation data "
                          f"({d}): {v} ({diff:+.1f})" for d, (v, diff) in numbers["tuned"].items()) + ".")
    return Finding("icbm_accuracy", claim, verdict_of(rows["verdict"]), evidence, numbers, "experiments/icbm", seeds,
                   comparisons=rows,
                   settle="Larger backbones and training sets (the `gpu` profile's ResNet-18 on CIFAR-10).")


def icbm_concepts(results_dir=None, frame=None) -> Finding:
    """ICBM discreteness and interpretability: the switch to the exact step is cheap (the chapter's target: within
    half a point either way) and the binary concepts stand for the true factors, one bit each (``concept_shapes``,
    where the six attributes are known). HTAF's own runs, compared with nothing but fixed scales."""
    frame = _setting(frame if frame is not None else icbm_runs(results_dir), "default")
    htaf = frame[frame["variant"] == "htaf"]
    seeds = _min_seeds(htaf, ["dataset"])
    gap = {d: _mean(_seed_values(htaf, dataset=d, metric="gap")) for d in ICBM_DATASETS}
    met = [d for d in ICBM_DATASETS if abs(gap[d]) <= 0.5]
    auc = {d: _mean(_seed_values(htaf, dataset=d, metric="matched_auc")) for d in ("shapes (xor)", "shapes (all)")}
    dead = float((htaf["never_on_share"] + htaf["always_on_share"]).max())
    numbers = {"gap_target_met": met, "gap": gap, "matched_auc": auc, "constant_share_max": dead, "seeds": seeds}
    missed = [d for d in ICBM_DATASETS if d not in met]
    evidence = (f"Discreteness: the switch gap is within half a point on {len(met)} of {len(ICBM_DATASETS)} datasets "
                f"(missed: {', '.join(f'{d}, {gap[d]:+.1f}' for d in missed)}), and no concept is constant in any run. "
                f"Interpretability: matching one concept to each true attribute gives a mean AUC of "
                f"{auc['shapes (xor)']:.2f} (`xor` rule) and {auc['shapes (all)']:.2f} (`all` rule), where 0.5 is "
                f"unrelated and 1 identical: the attributes are not one bit each.")
    # stable: the switch-gap target met on every dataset; interpretable one bit per attribute: a matched AUC of at
    # least INTERPRETABLE_AUC under both label rules
    parts = [len(met) == len(ICBM_DATASETS), min(auc.values()) >= INTERPRETABLE_AUC]
    verdict = HOLDS if all(parts) else IN_PART if any(parts) or met else DOES_NOT_HOLD
    return Finding("icbm_concepts", "The ICBM's binary concepts are stable under the switch to the exact step and "
                   "interpretable.", verdict, evidence, numbers, "experiments/icbm", seeds,
                   settle="Semantic validation on data with known factors at a larger scale, and five seeds.")


def gradient_mass(alpha: float = HTAF_ALPHA, beta: float = HTAF_BETA, epsilon: float = 0.25) -> Finding:
    """Gradient mass near zero: HTAF puts more gradient near the threshold than a sigmoid. Closed forms."""
    m_htaf = float(theory.mass_near_zero("htaf", epsilon, alpha=alpha, beta=beta))
    m_peak = float(theory.mass_near_zero("sigmoid", epsilon, alpha=alpha * beta))  # same peak slope
    m_rate = float(theory.mass_near_zero("sigmoid", epsilon, alpha=2 * beta))  # same tail rate
    crossover = float(theory.equal_rate_crossover(alpha, beta))
    numbers = {"ratio_equal_peak": m_htaf / m_peak, "ratio_equal_rate": m_htaf / m_rate,
               "small_window_ratio_equal_rate": alpha / 2, "crossover": crossover, "alpha": alpha, "beta": beta,
               "epsilon": epsilon}
    evidence = (f"Against the sigmoid of equal peak slope HTAF has less mass in every window, never more "
                f"({100 * m_htaf / m_peak:.1f} % of it in |x| < {epsilon:g} at α = {alpha:g}, β = {beta:g}); against "
                f"the sigmoid of equal tail rate it has more when α > 2 ({m_htaf / m_rate:.2f} times in |x| < "
                f"{epsilon:g}, up to |x| = {crossover:.2f}).")
    parts = [m_htaf > m_peak, m_htaf > m_rate]
    verdict = HOLDS if all(parts) else IN_PART if any(parts) else DOES_NOT_HOLD
    return Finding("gradient_mass", "HTAF concentrates more gradient near the threshold than a sigmoid.", verdict,
                   evidence, numbers, "theory/02_gradient_mass")


def tail_decay(alpha: float = HTAF_ALPHA, beta: float = HTAF_BETA, threshold: float = 3.0, scale: float = 3.0) -> Finding:
    """Tail decay: HTAF's gradient has heavy tails (the paper's name for it: the Heavy Tailed Activation Function), so
    units far from the threshold still receive gradient. Closed forms at peak slope ``alpha * beta / 4``."""
    peak = alpha * beta / 4
    p = {"htaf": {"alpha": alpha, "beta": beta}, **{name: theory.matched_params(name, peak) for name in ("sigmoid", "atan")}}
    tail = {name: float(theory.tail_mass(name, threshold, **p[name])) for name in p}
    dead = {name: float(theory.dead_fraction(name, scale, **p[name])) for name in p}
    numbers = {"tail_vs_sigmoid": tail["htaf"] / tail["sigmoid"], "atan_vs_tail": tail["atan"] / tail["htaf"],
               "dead_htaf": dead["htaf"], "dead_sigmoid": dead["sigmoid"], "dead_atan": dead["atan"],
               "rate": 2 * beta, "threshold": threshold, "scale": scale}
    evidence = (f"The derivative decays exponentially, like exp(-{2 * beta:g}|x|): beyond |x| = {threshold:g} HTAF "
                f"(α = {alpha:g}, β = {beta:g}) has {tail['htaf'] / tail['sigmoid']:.0f} times the tail mass of the "
                f"sigmoid of equal peak slope (heavier only when α > 2), but atan's power-law tail holds "
                f"{tail['atan'] / tail['htaf']:.0f} times more than HTAF's. Under Gaussian pre-activations of scale "
                f"{scale:g}, {100 * dead['htaf']:.0f} % of units get less than 1/1000 of the peak gradient, against "
                f"{100 * dead['sigmoid']:.0f} % for the sigmoid and {100 * dead['atan']:.0f} % for atan.")
    # heavier than the sigmoid's, and heavy in the usual (power-law) sense: as heavy as atan's
    parts = [tail["htaf"] > tail["sigmoid"], tail["htaf"] >= tail["atan"]]
    verdict = HOLDS if all(parts) else IN_PART if any(parts) else DOES_NOT_HOLD
    return Finding("tail_decay", "HTAF's gradient is heavy-tailed, so units far from the threshold keep learning.",
                   verdict, evidence, numbers, "theory/03_tail_decay")


def beyond_images(results_dir=None, frame=None, family=None) -> Finding:
    """Image-only validation: the paper validates HTAF on images only (a limitation it states). The domains chapter
    takes the comparisons to spike timing (Randman) and 1-D signals (MNIST-1D); the verdict rests on its family
    (:func:`domains_comparisons`), HTAF (smooth or as an exact step's surrogate) against the other units."""
    frame = frame if frame is not None else domains_runs(results_dir, tuned=True)
    randman = frame[(frame["sweep"] == "randman")]
    dhn1d = frame[frame["sweep"] == "mnist1d_dhn"]
    seeds = min(_min_seeds(randman, ["method"]), _min_seeds(dhn1d, ["method", "backbone"]))
    htaf_randman = _mean(_seed_values(randman, method="htaf", metric="accuracy"))
    smooth = dhn1d[dhn1d["method"] == "htaf"]
    gap = {b: 100 * _mean(_seed_values(smooth, backbone=b, metric="switch_gap"))
           for b in ("mlp", "conv")} if "switch_gap" in smooth else {}
    hard = {b: 100 * _mean(_seed_values(dhn1d[dhn1d["method"] == "htaf_hard"], backbone=b, metric="accuracy_step"))
            for b in ("mlp", "conv")}
    numbers = {"htaf_randman": htaf_randman, "switch_gap": gap, "htaf_hard_mnist1d": hard, "seeds": seeds}
    level = (f"On spike timing (Randman, chance 10 %) HTAF's spiking network reaches {htaf_randman:.1f} %. On "
             f"MNIST-1D, HTAF as a surrogate gradient trains threshold networks to {hard['mlp']:.0f} % (MLP) and "
             f"{hard['conv']:.0f} % (CNN); trained smooth, the same networks lose {gap['mlp']:.0f} and "
             f"{gap['conv']:.0f} points at the switch to exact steps.")
    claim = "HTAF's results carry beyond images (the paper validates on images only)."
    if seeds < stats.MIN_SEEDS:
        return Finding("beyond_images", claim, not_yet(seeds), level, numbers, "experiments/domains", seeds,
                       settle=f"{stats.MIN_SEEDS} paired seeds per method on Randman and MNIST-1D; the Spiking "
                              "Heidelberg Digits (not run: no download here).")
    family = family if family is not None else comparisons(results_dir, domains_frame=frame)
    chapter = family[family["group"] == "domains"]
    rows = chapter[~chapter.index.str.endswith(", htaf vs htaf_hard")]  # HTAF against the other units
    tally, told = _tally(rows)
    numbers.update(tally, better=sorted(rows.index[rows["verdict"] == stats.BETTER]),
                   worse=sorted(rows.index[rows["verdict"] == stats.WORSE]))
    tuned = rows[rows.index.str.startswith("domains mnist1d tuned: ")]
    evidence = (f"{level} Against the other units ({seeds} seeds, {len(rows)} paired comparisons, margins "
                f"{MARGINS['domains_spikes']:g} point on Randman and {MARGINS['domains_signals']:g} on MNIST-1D, Holm "
                f"over the chapter's {len(chapter)}): {told}"
                + (f"; of these, with every unit of MNIST-1D's convolutional threshold network at its own peak slope and "
                   f"learning rate, tuned on validation data ({len(tuned)} comparisons): {_tally(tuned)[1]}"
                   if len(tuned) else "") + "."
                + "".join(f" {o.capitalize()}: {'; '.join(n.split(': ', 1)[1] for n in numbers[o])}."
                          for o in (stats.BETTER, stats.WORSE) if numbers[o]))
    return Finding("beyond_images", claim, verdict_of(rows["verdict"]), evidence, numbers, "experiments/domains",
                   seeds, comparisons=rows,
                   settle="The Spiking Heidelberg Digits (not run: no download here); more seeds for Randman, where "
                          "every surrogate lies within about a point.")


def sensitivity(results_dir=None, frame=None, family=None) -> Finding:
    """Sensitivity to alpha and beta: at a fixed peak slope, HTAF's heavier tail (alpha > 2) helps training. The
    verdict rests on the pre-activation scale regime (five seeds); the three-seed maps give one descriptive number,
    the share of the variance of their cell means that the peak slope explains."""
    frame = frame if frame is not None else sensitivity_runs(results_dir)
    seeds = _min_seeds(frame, ["init_gain", "unit"])
    family = family if family is not None else comparisons(results_dir, sensitivity_frame=frame)
    rows = family[family["group"] == "sensitivity"]
    shares = {}
    for experiment in ("sensitivity_dhn", "sensitivity_bnn", "sensitivity_snn"):
        maps = sweep_runs(experiment, ["map"], results_dir)
        metric = "accuracy_step" if "accuracy_step" in maps else "test_accuracy"
        means = maps.groupby("surrogate_params")[metric].mean()
        cells = {(p["alpha"], p["beta"]): v for p, v in ((json.loads(k), v) for k, v in means.items())}
        shares[experiment.removeprefix("sensitivity_")] = stats.slope_share(cells)
    heavy = rows[rows.index.str.contains("a=8 vs htaf a=1")]
    versus = rows[~rows.index.str.contains("a=8 vs htaf a=1")]
    numbers = {"slope_share_min": min(shares.values()), "slope_share": shares, "seeds": seeds, **_tally(rows)[0],
               "heavy_vs_light": heavy["verdict"].to_dict(), "htaf_vs_surrogates": versus["verdict"].to_dict()}

    def told(part):
        return _tally(part)[1]

    evidence = (f"In the two-layer maps of the DHN, BNN and SNN the peak slope αβ/4 alone explains "
                f"{100 * min(shares.values()):.0f} % or more of the variance of the cell means (3 seeds, descriptive). "
                f"In deep DHNs with wider initial pre-activations ({seeds} seeds, {len(rows)} paired comparisons, "
                f"margin {MARGINS['sensitivity']:g} points, Holm): HTAF α = 4 against the sigmoid, atan and the "
                f"rectangle: {told(versus)}; heavy tail (α = 8) against light (α = 1): {told(heavy)}.")
    verdict = verdict_of(heavy["verdict"]) if len(heavy) else not_yet(seeds)
    return Finding("sensitivity", "At a fixed peak slope, HTAF's heavier tail (α > 2) helps training.", verdict,
                   evidence, numbers, "experiments/sensitivity", seeds, comparisons=rows,
                   settle="Larger networks and data sets (the `gpu` profile's maps), five seeds per cell.")


#: the claims in the order of the page, ``key -> function``
CLAIMS: dict[str, Callable[..., Finding]] = {
    "snn": snn, "bnn": bnn, "dhn": dhn, "icbm_accuracy": icbm_accuracy, "icbm_concepts": icbm_concepts,
    "gradient_mass": gradient_mass, "tail_decay": tail_decay, "beyond_images": beyond_images,
    "sensitivity": sensitivity,
}

_ROW_LABELS = {"snn": "SNN training", "bnn": "BNN training", "dhn": "DHN training", "icbm_accuracy": "ICBM accuracy",
               "icbm_concepts": "ICBM discreteness and interpretability", "gradient_mass": "Gradient mass near zero",
               "tail_decay": "Tail decay", "beyond_images": "Beyond images", "sensitivity": "Sensitivity to α, β"}


def findings(results_dir=None) -> dict[str, Finding]:
    """Every claim's :class:`Finding`, in the page's order; each claim's comparisons are Holm-adjusted within its
    chapter's family (:func:`comparisons`)."""
    snn_frame, sens_frame, dhn_frames = snn_runs(results_dir), sensitivity_runs(results_dir), dhn_runs(results_dir)
    domains_frame = domains_runs(results_dir, tuned=True)
    icbm_frame, bnn_frame = icbm_runs(results_dir, gaps=True, tuned=True), bnn_runs(results_dir)
    family = comparisons(results_dir, snn_frame=snn_frame, sensitivity_frame=sens_frame, dhn_frames=dhn_frames,
                         domains_frame=domains_frame, icbm_frame=icbm_frame, bnn_frame=bnn_frame,
                         dhn_tuned=dhn_tuned_runs(results_dir))
    return {
        "snn": snn(results_dir, frame=snn_frame, family=family),
        "bnn": bnn(results_dir, frame=bnn_frame, family=family),
        "dhn": dhn(results_dir, frames=dhn_frames, family=family),
        "icbm_accuracy": icbm_accuracy(results_dir, frame=icbm_frame, family=family),
        "icbm_concepts": icbm_concepts(results_dir, frame=icbm_frame),
        "gradient_mass": gradient_mass(),
        "tail_decay": tail_decay(),
        "beyond_images": beyond_images(results_dir, frame=domains_frame, family=family),
        "sensitivity": sensitivity(results_dir, frame=sens_frame, family=family),
    }


def table(found: dict[str, Finding] | None = None, results_dir=None):
    """The Findings page's table: one row per claim with ``claim``, ``verdict``, ``seeds``, ``evidence`` and
    ``chapter`` (the page's link target), indexed by the row's short name."""
    import pandas as pd

    found = found if found is not None else findings(results_dir)
    return pd.DataFrame([{"row": _ROW_LABELS[key], "claim": f.claim, "verdict": f.verdict,
                          "seeds": "theory" if f.seeds is None else str(f.seeds), "evidence": f.evidence,
                          "chapter": f.link} for key, f in found.items()]).set_index("row")
