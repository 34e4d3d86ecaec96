r"""``sensitivity_dhn``, ``sensitivity_bnn`` and ``sensitivity_snn``: HTAF's :math:`(\alpha, \beta)` map and stress regimes.

The chapter ``book/experiments/sensitivity`` (three pages, :data:`PAGES`) asks where HTAF's heavy tail matters. These three experiments reuse
the model builders and hooks of the DHN, BNN and SNN chapters (:mod:`htaf.experiments.dhn`,
:mod:`htaf.experiments.bnn`, :mod:`htaf.experiments.snn`) on small, fast settings (sklearn ``digits``: 1440
training and 357 test images; a ``cpu`` run takes about a second). HTAF's parameters are the parents'
``surrogate_params`` (``{"alpha": 8.0, "beta": 0.5}``; with ``peak_slope`` set, ``alpha`` is kept and ``beta``
rescaled to that slope, :func:`htaf.nn.make_unit`, as in the DHN chapter); :func:`htaf_params` reads them back
from a results table. ``sensitivity_dhn`` adds one key:

* ``init_gain`` (``sensitivity_dhn``): the weights of every hidden layer after the first are multiplied by this
  at initialisation, so the pre-activations of the threshold units are about ``init_gain`` times wider.

Every other key is the parent experiment's. ``sensitivity_dhn`` trains the threshold units with
``htaf_hard`` (the exact step forward, HTAF's derivative backward) so that the cells differ only in the
gradient, as in the BNN, whose forward is always the exact sign. Metrics are the parents': per-layer
gradient norms every epoch (:func:`htaf.metrics.gradient_norms`), and for the DHN the dead-unit share
(units that never fire on the test set, :func:`htaf.metrics.firing_summary`). All three also record, after every
epoch, how much surrogate gradient each threshold layer lets through
(:func:`gradient_health`: pre-activation scale, gradient-dead share, mean squared derivative, backward signal, weight
scale), the measured side of the theory's dead-unit and mean-field gain predictions; :func:`initial_gradient_health`
measures the same on the network a run starts from.

:data:`GRIDS` holds the chapter's sweeps: ``GRIDS[experiment][profile][sweep]``: the maps (``map``,
``map_smooth``), the DHN's depth / optimiser (``stress_*``) and pre-activation scale (``scale_*``) regimes, and, each
at peak slope 1 with HTAF against :data:`STRESS_METHODS`, deeper plain DHNs (``plain_deep_*``), skip DHNs
(``skip_*``), SNN time steps (``steps_*``) and deeper SNNs (``deep_*``, :data:`SNN_DEEP`). :data:`ALPHAS` and
:data:`BETAS` span the map; :func:`cells` lists its cells.

>>> from htaf.experiments import get, resolve_config
>>> config = resolve_config("sensitivity_dhn", "smoke", surrogate_params={"alpha": 8.0, "beta": 0.5})
>>> model = get("sensitivity_dhn").build_model(config)
>>> [round(m.alpha, 3) for m in model.modules() if type(m).__name__ == "HTAF"][:1]
[8.0]
"""

from __future__ import annotations

import functools
import itertools
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from htaf import engine, metrics, stats
from htaf.experiments import Config, Experiment, check_number, default_loss, default_prepare_batch, register, resolve_config
from htaf.experiments import get as get_experiment
from htaf.experiments import bnn as bnn_experiment
from htaf.experiments import dhn as dhn_experiment
from htaf.experiments import snn as snn_experiment
from htaf.models.dhn import DHN
from htaf.nn import unit_family, unit_surrogate

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ALPHAS", "BETAS", "GAINS", "GRIDS", "KAPPA", "PEAKS", "SCALE_SEEDS", "SEEDS", "SNN_DEEP", "STRESS_METHODS", "VALIDATION",
           "STRESS_PAIRS", "stress_regimes", "stress_comparisons", "equal_slope_comparisons", "HEAVY_UNITS", "LIGHT_UNITS", "scale_followups",
           "HEALTH_BATCHES", "cells", "gradient_health", "health_units", "hidden_linears", "htaf_params",
           "initial_gradient_health", "label_units", "PAGES", "page_sweeps", "regime", "run_records", "select", "unit_order"]

#: the map: alpha x beta
ALPHAS = [1.0, 2.0, 4.0, 8.0, 16.0]
BETAS = [0.25, 0.5, 1.0, 2.0, 4.0]
SEEDS = [0, 1, 2]
#: peak slopes of the depth / optimiser stress regime, and initial gains of the pre-activation scale regime
PEAKS = [0.5, 1.0, 2.0]
GAINS = [0.5, 1.0, 2.0, 4.0]
#: the pre-activation scale regime carries single-setting verdicts, so it has five seeds (the others three)
SCALE_SEEDS = [0, 1, 2, 3, 4]
#: a pre-activation is gradient-dead when the unit's derivative there is below ``KAPPA`` times its peak
#: (the theory chapter's threshold, :func:`htaf.theory.dead_fraction`)
KAPPA = 1e-3
#: training samples each map's selection runs hold out as a validation set, per profile (a fifth of digits' 1440
#: training images; 10,000 of the 60,000 of MNIST and Fashion-MNIST)
VALIDATION = {"smoke": 288, "cpu": 288, "gpu": 10_000}
#: test batches (of the profile's batch size) over which :func:`gradient_health` measures the backward signal
HEALTH_BATCHES = 4
#: the surrogates HTAF meets in the stress regime, all at the same peak slope
STRESS_METHODS = ["sigmoid", "atan", "rectangle"]


def cells(alphas: list[float] = ALPHAS, betas: list[float] = BETAS) -> list[tuple[float, float]]:
    """Every ``(alpha, beta)`` cell of the map.

    >>> len(cells()), cells()[0], cells()[-1]
    (25, (1.0, 0.25), (16.0, 4.0))
    """
    return [(a, b) for a in alphas for b in betas]


# --------------------------------------------------------------------------------------------
# DHN
# --------------------------------------------------------------------------------------------


def _is_map(experiment: str, sweep: str) -> bool:
    return sweep in ("map", "map_smooth") or sweep.endswith("_selection")


#: the chapter's pages and the sweeps each one reads: ``"maps"`` (book/experiments/sensitivity: the maps and their
#: selection twins), ``"stress"`` (sensitivity_stress: every other sweep) and ``"theory"`` (sensitivity_theory: the
#: pre-activation scale regime and the three step-forward maps), as predicates of ``(experiment, sweep)``
PAGES = {
    "maps": _is_map,
    "stress": lambda experiment, sweep: not _is_map(experiment, sweep),
    "theory": lambda experiment, sweep: sweep == "map" or (experiment == "sensitivity_dhn" and sweep.startswith("scale")),
}


def page_sweeps(page: str, profile: str | None = None) -> list[tuple[str, str, dict[str, list[Any]]]]:
    """The sweeps one page of the chapter reads (:data:`PAGES`), as ``(experiment, sweep, grid)`` for :func:`htaf.sweep`.

    >>> sorted({sweep for _, sweep, _ in page_sweeps("theory", "smoke")})
    ['map', 'scale_htaf', 'scale_surrogates']
    """
    if page not in PAGES:
        raise ValueError(f"unknown page {page!r} of the sensitivity chapter; choose one of {', '.join(PAGES)}")
    from htaf.experiments import resolve_profile

    profile = resolve_profile(profile)
    return [(name, sweep, grid) for name in GRIDS for sweep, grid in GRIDS[name][profile].items()
            if PAGES[page](name, sweep)]


def run_records(frames: "dict[tuple[str, str], pd.DataFrame]", profile: str | None = None) -> dict[str, list[dict]]:
    """The results records of the runs in ``frames`` (``{(experiment, sweep): frame with a hash column}``), per
    experiment, each run once."""
    from htaf import results
    from htaf.experiments import resolve_profile

    wanted: dict[str, set[str]] = {}
    for (name, _), frame in frames.items():
        wanted.setdefault(name, set()).update(frame["hash"])
    return {name: list(results.read_records(name, resolve_profile(profile), hashes).values())
            for name, hashes in wanted.items()}


def label_units(frame: "pd.DataFrame") -> "pd.DataFrame":
    """``frame`` (runs with ``alpha`` from :func:`htaf_params`) with ``accuracy`` (test accuracy in percent) and
    ``unit``: ``"htaf a=<alpha>"`` for HTAF's runs (smooth or hard), the method otherwise.

    >>> import pandas as pd
    >>> label_units(pd.DataFrame({"method": ["htaf_hard", "atan"], "alpha": [4.0, float("nan")],
    ...                           "test_accuracy": [0.5, 0.25]}))[["unit", "accuracy"]].values.tolist()
    [['htaf a=4', 50.0], ['atan', 25.0]]
    """
    import numpy as np

    frame = frame.copy().assign(accuracy=100 * frame["test_accuracy"])  # copy: one block per dtype
    is_htaf = frame["method"].isin(["htaf", "htaf_hard"])
    frame["unit"] = np.where(is_htaf, "htaf a=" + frame["alpha"].map("{:g}".format), frame["method"])
    return frame


def regime(sweeps: "dict[tuple[str, str], pd.DataFrame]", experiment: str, name: str) -> "pd.DataFrame":
    """One stress regime's runs, labelled (:func:`label_units`): the sweeps of ``experiment`` in ``sweeps``
    (``{(experiment, sweep): frame}``) named ``<name>_htaf`` and ``<name>_surrogates``, or with an optimiser between
    (``<name>_adam_htaf``, ``<name>_sgd_surrogates``); empty when there are none.

    >>> import pandas as pd
    >>> runs = {("sensitivity_snn", s): pd.DataFrame({"method": ["atan"], "alpha": [float("nan")], "test_accuracy": [0.9]})
    ...         for s in ["steps_htaf", "steps_surrogates", "steps_optimiser_sgd_htaf"]}
    >>> len(regime(runs, "sensitivity_snn", "steps")), len(regime(runs, "sensitivity_snn", "steps_optimiser"))
    (2, 1)
    """
    import pandas as pd

    def base(sweep: str) -> str:
        for suffix in ("_htaf", "_surrogates"):
            sweep = sweep.removesuffix(suffix)
        for optimiser in ("_adam", "_sgd"):
            sweep = sweep.removesuffix(optimiser)
        return sweep

    parts = [frame for (e, sweep), frame in sweeps.items() if e == experiment and base(sweep) == name
             and sweep.endswith(("_htaf", "_surrogates"))]
    return label_units(pd.concat(parts, ignore_index=True)) if parts else pd.DataFrame()


def unit_order(frame: "pd.DataFrame") -> list[str]:
    """The units of a :func:`label_units` frame in the chapter's order: HTAF's by increasing alpha, then the other
    methods in the order they first appear."""
    htaf_units = frame.loc[frame["unit"].str.startswith("htaf a="), ["unit", "alpha"]].drop_duplicates()
    return [*htaf_units.sort_values("alpha")["unit"], *[u for u in dict.fromkeys(frame["unit"]) if not u.startswith("htaf a=")]]


#: the comparisons the stress regimes fixed in advance, at every setting: HTAF at its default sharpness against each
#: surrogate at the same peak slope, and a heavy tail against a light one within HTAF (``alpha = 8`` against ``1``)
STRESS_PAIRS = [("htaf a=4", "sigmoid"), ("htaf a=4", "atan"), ("htaf a=4", "rectangle"), ("htaf a=8", "htaf a=1")]


def stress_regimes(sweeps: "dict[tuple[str, str], pd.DataFrame]") -> "dict[str, tuple[pd.DataFrame, list[str]]]":
    """The three-seed stress regimes of the chapter's second page, each ``(runs, setting columns)``, labelled
    (:func:`label_units`), every setting in exactly one regime:

    * ``"depth and optimiser"``: plain DHNs of the ``stress`` sweeps (depth, optimiser, peak slope);
    * ``"plain DHN"``: the deeper plain DHNs (``plain_deep``; its shallower depths are in the first regime);
    * ``"skip DHN"``: DHNs with skip connections (depth);
    * ``"SNN, time steps"``: the LIF network of the map's depth at each ``T``;
    * ``"SNN, hidden layers"``: deeper LIF networks (``layers``; the map's depth is in the time-step regime);
    * ``"skip DHN, optimisers"`` and ``"SNN, optimisers"``: (optimiser, peak slope); their Adam runs at peak slope 1
      repeat settings of the skip DHN and time-step regimes, the same runs, so those settings are left out here.

    The pre-activation scale regime (five seeds) is not among them: its comparisons are the Findings page's
    (:func:`htaf.findings.sensitivity_comparisons`). A regime the profile lacks is left out."""
    import json

    found = {}
    stress = regime(sweeps, "sensitivity_dhn", "stress")
    if len(stress):
        found["depth and optimiser"] = (stress, ["depth", "optimizer", "peak_slope"])
    for name, key in (("plain DHN", "plain_deep"), ("skip DHN", "skip")):
        frame = regime(sweeps, "sensitivity_dhn", key)
        if len(frame):
            found[name] = (frame, ["depth"])
    steps = regime(sweeps, "sensitivity_snn", "steps")
    if len(steps):
        found["SNN, time steps"] = (steps, ["T"])
    deep = regime(sweeps, "sensitivity_snn", "deep")
    if len(deep):
        found["SNN, hidden layers"] = (deep.assign(layers=deep["hidden"].map(lambda h: len(json.loads(h)))), ["layers"])
    for name, (experiment, key), repeated in (("skip DHN, optimisers", ("sensitivity_dhn", "skip_optimiser"), "skip DHN"),
                                              ("SNN, optimisers", ("sensitivity_snn", "steps_optimiser"), "SNN, time steps")):
        frame = regime(sweeps, experiment, key)
        if len(frame):
            if repeated in found:  # the Adam runs at peak slope 1 are the other regime's (same hashes)
                frame = frame[~frame["hash"].isin(found[repeated][0]["hash"])]
            found[name] = (frame, ["optimizer", "peak_slope"])
    return found


def stress_comparisons(regimes: "dict[str, tuple[pd.DataFrame, list[str]]]", margin: float,
                       pairs: list[tuple[str, str]] = STRESS_PAIRS, min_seeds: int = len(SEEDS)) -> "pd.DataFrame":
    """Every comparison the stress regimes fixed in advance (``pairs`` at every setting of every regime of
    :func:`stress_regimes`): paired over seeds, equivalence ``margin`` in points of test accuracy, Holm over all of
    them together (:func:`htaf.stats.compare_family`). The regimes have three seeds (the smoke profile two), fewer
    than a comparison the book states needs (:data:`htaf.stats.MIN_SEEDS`): an exploratory family, read with its
    ``unadjusted`` column as hints; a comparison with fewer than ``min_seeds`` paired seeds is refused (naming it).
    Indexed by ``(regime, setting, a, b)``."""
    family = {}
    for name, (frame, by) in regimes.items():
        family.update(stats.setting_pairs(frame, by if len(by) > 1 else by[0], pairs, prefix=(name,)))
    return stats.compare_family(family, margin, min_seeds=min_seeds, names=["regime", "setting", "a", "b"])


#: the units of the pre-activation scale regime with a heavy tail (HTAF with alpha >= 4, atan's power law) and those
#: with a light tail or none, compared at the widest gain by :func:`scale_followups`
HEAVY_UNITS = ["htaf a=4", "htaf a=8", "htaf a=16", "atan"]
LIGHT_UNITS = ["htaf a=1", "htaf a=2", "rectangle", "sigmoid"]


def scale_followups(scale: "pd.DataFrame", margin: float, min_seeds: int = len(SCALE_SEEDS)) -> "pd.DataFrame":
    """The pre-activation scale regime's comparisons chosen *after* its results had been seen (the Findings page's
    sixteen, :func:`htaf.findings.sensitivity_comparisons`, were fixed before): every unit at the narrowest and the
    widest gain against itself at gain 1, and at the widest gain every unit of :data:`HEAVY_UNITS` against every unit
    of :data:`LIGHT_UNITS`. Paired over seeds, Holm over these comparisons alone; exploratory. Indexed by
    ``(question, a, b)`` with ``question`` ``"gain <g> vs 1"`` (``a`` the unit at gain ``g``, ``b`` at gain 1) or
    ``"heavy vs light at gain <g>"``; ``scale`` is :func:`regime` ``(sweeps, "sensitivity_dhn", "scale")``, with
    ``min_seeds`` paired seeds at least."""
    gains = sorted(scale["init_gain"].unique())
    values = {(g, u): dict(zip(part["seed"], part["accuracy"].astype(float)))
              for (g, u), part in scale.groupby(["init_gain", "unit"])}
    pairs = {}
    for g in {gains[0], gains[-1]} - {1.0}:
        for u in unit_order(scale):
            if (g, u) in values and (1.0, u) in values:
                pairs[(f"gain {g:g} vs 1", u, u)] = (values[(g, u)], values[(1.0, u)])
    widest = gains[-1]
    for a, b in itertools.product(HEAVY_UNITS, LIGHT_UNITS):
        if (widest, a) in values and (widest, b) in values:
            pairs[(f"heavy vs light at gain {widest:g}", a, b)] = (values[(widest, a)], values[(widest, b)])
    return stats.compare_family(pairs, margin, min_seeds=min_seeds, names=["question", "a", "b"])


def equal_slope_comparisons(maps: "dict[str, pd.DataFrame]", margin: float, metric: str = "test_accuracy",
                            min_seeds: int = len(SEEDS)) -> "pd.DataFrame":
    r"""Every pair of cells of equal peak slope :math:`\alpha\beta/4` in each :math:`(\alpha, \beta)` map, paired over
    seeds, ``metric`` in percent, equivalence ``margin`` in points, Holm over the pairs of all maps together
    (:func:`htaf.stats.compare_family`). ``maps`` holds each map's runs (``alpha``, ``beta``, ``seed`` and ``metric``,
    a fraction, as :func:`htaf_params` gives them). If the peak slope alone sets accuracy, no pair differs. The maps
    have three seeds (``min_seeds``): an exploratory family, whose ``unadjusted`` column holds the hints. Indexed by
    ``(map, peak, cell_a, cell_b)``, ``cell_a`` the cell with the smaller :math:`\alpha` (the lighter tail)."""
    family = {}
    for name, frame in maps.items():
        values = {(float(a), float(b)): dict(zip(part["seed"], 100 * part[metric].astype(float)))
                  for (a, b), part in frame.groupby(["alpha", "beta"])}
        for cell_a, cell_b in itertools.combinations(sorted(values), 2):
            peak_a, peak_b = cell_a[0] * cell_a[1] / 4, cell_b[0] * cell_b[1] / 4
            if abs(peak_a - peak_b) <= 1e-12 * max(peak_a, peak_b):
                family[(name, peak_a, cell_a, cell_b)] = (values[cell_a], values[cell_b])
    return stats.compare_family(family, margin, min_seeds=min_seeds, names=["map", "peak", "cell_a", "cell_b"])


def select(selection: "pd.DataFrame", metric: str = "val_accuracy") -> tuple[tuple[float, float], list[tuple[float, float]]]:
    """A map's best cell and its good region, chosen on validation data: ``selection`` holds the map's selection runs
    (sweep ``<map>_selection``, with ``alpha`` and ``beta`` columns, :func:`htaf_params`), which trained without the
    last :data:`VALIDATION` training samples and scored them as ``metric``. Returns ``(best, good)`` as
    :func:`htaf.stats.best_and_tied` does on the per-seed values of each ``(alpha, beta)`` cell (the best mean, and
    every cell the two-standard-error rule does not put behind it). The test set plays no part; report the chosen
    cells with the test accuracy of the map's own runs, which trained on every training sample.

    >>> import pandas as pd
    >>> runs = pd.DataFrame({"alpha": [1.0, 1.0, 8.0, 8.0], "beta": [0.5, 0.5, 0.5, 0.5],
    ...                      "val_accuracy": [0.90, 0.92, 0.95, 0.96]})
    >>> select(runs)
    ((8.0, 0.5), [(8.0, 0.5)])
    """
    if metric not in selection or selection[metric].isna().any():
        raise ValueError(f"select needs every run's {metric!r}: give the map's selection runs (sweep "
                         f"'<map>_selection', trained with a validation set), not the map's own")
    values = {(float(a), float(b)): part[metric].tolist() for (a, b), part in selection.groupby(["alpha", "beta"])}
    best, good = stats.best_and_tied(values)
    return best, sorted(good)


def hidden_linears(model: nn.Module) -> list[nn.Linear]:
    """The linear maps of a DHN's hidden layers, first to last."""
    return [layer.linear for layer in model.layers]


def build_dhn(config: Config) -> nn.Module:
    """The DHN of :func:`htaf.experiments.dhn.build_model`, hidden layers 2.. scaled by ``init_gain``."""
    model = dhn_experiment.build_model(config)
    if config["init_gain"] != 1.0:
        with torch.no_grad():
            for linear in hidden_linears(model)[1:]:
                linear.weight.mul_(config["init_gain"])
    return model


def htaf_params(frame: "pd.DataFrame", experiment: str, profile: str | None = None) -> "pd.DataFrame":
    """``frame`` (a sweep's or results table of ``experiment``) with HTAF's ``alpha`` and ``beta`` as columns: each HTAF
    run's parameters as its ``surrogate_params`` give them (HTAF's defaults where not given; before any peak-slope
    matching), NaN for the other methods. A ``method`` or ``surrogate_params`` column that is missing or empty is the
    profile's default.

    >>> import pandas as pd
    >>> htaf_params(pd.DataFrame({"surrogate_params": ['{"alpha": 8.0}']}), "sensitivity_bnn", "smoke")
      surrogate_params  alpha  beta
    0   {"alpha": 8.0}    8.0   1.0
    """
    import json

    defaults = resolve_config(experiment, profile)

    def given(row: "pd.Series", key: str) -> Any:
        value = row.get(key)
        if value is None or (isinstance(value, float) and value != value):  # missing, or NaN after a concat
            return defaults[key]
        return json.loads(value) if isinstance(value, str) and key == "surrogate_params" else value

    alphas, betas = [], []
    for _, row in frame.iterrows():
        method = given(row, "method")
        params = unit_surrogate(method, None, given(row, "surrogate_params")).params if unit_family(method) == "htaf" \
            else {"alpha": float("nan"), "beta": float("nan")}
        alphas.append(params["alpha"])
        betas.append(params["beta"])
    return frame.assign(alpha=alphas, beta=betas)


def health_units(model: nn.Module) -> dict[str, nn.Module]:
    """The threshold units of a DHN, a binary MLP or a spiking MLP in order, named ``fc<k>`` after the linear layer that
    feeds them (a DHN's k-th hidden layer; the BNN's ``Linear -> BatchNorm -> sign`` block k; the SNN's k-th LIF
    layer); units without a surrogate (a continuous reference activation) are left out."""
    units = [unit for unit in metrics.binary_units(getattr(model, "module", model)).values() if hasattr(unit, "surrogate")]
    return {f"fc{k}": unit for k, unit in enumerate(units, 1)}


def gradient_health(model: nn.Module, loader: DataLoader, device: torch.device, config: Config,
                    experiment: str | Experiment | None = None) -> dict[str, float]:
    r"""The per-epoch ``evaluate`` hook of the three sensitivity experiments (registered with their name as
    ``experiment``, whose ``prepare_batch`` and ``loss`` it uses; default: the engine's defaults): per threshold layer
    ``k`` (:func:`health_units`), on the test set, in float32,

    * :func:`htaf.metrics.surrogate_gradient_statistics`: ``preact_rms_fc<k>``, ``preact_mean_fc<k>``,
      ``grad_dead_fc<k>`` (share below :data:`KAPPA` times the peak derivative) and ``grad_sq_fc<k>``
      (:math:`E[(cF'(x))^2]`, :math:`c = 2` for the BNN's sign units); for the SNN's LIF layers :math:`x` is the
      membrane potential minus the threshold, over all time steps;
    * except for the SNN, :func:`htaf.metrics.unit_input_gradients` over the first :data:`HEALTH_BATCHES` test
      batches: ``delta_rms_fc<k>``, the backward signal at the layer's pre-activations (no parameter changes);
    * for a DHN, ``weight_sq_fc<k>`` :math:`= \lVert W_k\rVert_F^2 / m_k`, the weight scale in the mean-field gain
      (a BNN's batch norm makes it irrelevant).

    The engine prefixes every key with ``test_``."""
    net = getattr(model, "module", model)
    units = health_units(net)
    found = metrics.surrogate_gradient_statistics(net, loader, device, units=units, kappa=KAPPA)
    out = {f"{key}_{name}": value for name, values in found.items() for key, value in values.items()}

    hooks = get_experiment(experiment) if experiment is not None else None
    prepare, objective = (hooks.prepare_batch, hooks.loss) if hooks is not None else (default_prepare_batch, default_loss)

    def loss(raw):
        batch = prepare(raw, device)
        return objective(net(batch.inputs), batch, config)

    if not any(hasattr(unit, "surrogate_input") for unit in units.values()):  # no mean field through time steps
        batches = itertools.islice(loader, HEALTH_BATCHES)
        out.update({f"delta_rms_{name}": value
                    for name, value in metrics.unit_input_gradients(net, batches, loss, units).items()})
    if isinstance(net, DHN):
        for k, linear in enumerate(hidden_linears(net), 1):
            out[f"weight_sq_fc{k}"] = float(linear.weight.detach().square().sum()) / linear.out_features
    return out


def initial_gradient_health(config: Config) -> dict[str, float]:
    """:func:`gradient_health` of the network a ``sensitivity_dhn`` run of ``config`` (a complete config, such as a
    results record's) starts from: the same seed, data and initialisation (:func:`htaf.engine.start`, as in
    :func:`htaf.train.set_up`), before any update."""
    validate_dhn(config)
    device = engine.select_device()
    network, _, test_loader = engine.start(DHN_EXPERIMENT, config, device)
    return gradient_health(network, test_loader, device, config, DHN_EXPERIMENT)


def validate_dhn(config: Config) -> None:
    """The DHN chapter's checks, and ``init_gain > 0``."""
    dhn_experiment.validate(config)
    check_number(config, "init_gain")


DHN_MODEL = {**dhn_experiment.MODEL_DEFAULTS, "method": "htaf_hard", "width": 32, "depth": 2, "init_gain": 1.0}

DHN_PROFILES: dict[str, Config] = {
    "smoke": {"dataset": "digits", "subset": 512, "batch_size": 64, "epochs": 2, "lr": 3e-3, "seed": 0, **DHN_MODEL, "width": 16},
    "cpu": {"dataset": "digits", "batch_size": 64, "epochs": 8, "lr": 3e-3, "seed": 0, **DHN_MODEL},
    "gpu": {"dataset": "mnist", "batch_size": 256, "epochs": 20, "lr": 1e-3, "seed": 0, "amp": False,
            **DHN_MODEL, "width": 128},
}

# --------------------------------------------------------------------------------------------
# BNN
# --------------------------------------------------------------------------------------------


BNN_MODEL = {**bnn_experiment.MODEL_DEFAULTS, "hidden": [64, 64], "peak_slope": None}

BNN_PROFILES: dict[str, Config] = {
    "smoke": {"dataset": "digits", "subset": 512, "batch_size": 64, "epochs": 2, "lr": 3e-3, "seed": 0, **BNN_MODEL,
              "hidden": [32, 32]},
    "cpu": {"dataset": "digits", "batch_size": 64, "epochs": 8, "lr": 3e-3, "seed": 0, **BNN_MODEL},
    "gpu": {"dataset": "mnist", "batch_size": 128, "epochs": 10, "lr": 3e-3, "seed": 0, "lr_schedule": "cosine",
            **BNN_MODEL, "hidden": [256, 256, 256]},
}

# --------------------------------------------------------------------------------------------
# SNN
# --------------------------------------------------------------------------------------------


SNN_MODEL = {**snn_experiment.MODEL_DEFAULTS, "hidden": [64, 64], "peak_slope": None, "rate_samples": 357}

SNN_PROFILES: dict[str, Config] = {
    "smoke": {"dataset": "digits", "subset": 512, "batch_size": 64, "epochs": 2, "lr": 3e-3, "seed": 0, **SNN_MODEL,
              "hidden": [32, 32]},
    "cpu": {"dataset": "digits", "batch_size": 64, "epochs": 8, "lr": 3e-3, "seed": 0, **SNN_MODEL},
    "gpu": {"dataset": "fashion_mnist", "batch_size": 128, "epochs": 10, "lr": 1e-3, "seed": 0,
            "lr_schedule": "cosine", **SNN_MODEL, "hidden": [256, 256], "rate_samples": 2000},
}

# --------------------------------------------------------------------------------------------
# Grids
# --------------------------------------------------------------------------------------------


def _map(alphas: list[float], betas: list[float], seeds: list[int], **fixed: list[Any]) -> dict[str, list[Any]]:
    return {"surrogate_params": [{"alpha": a, "beta": b} for a, b in cells(alphas, betas)], "seed": seeds, **fixed}


def _maps(alphas: list[float], betas: list[float], seeds: list[int], validation: int, smooth: bool = False
          ) -> dict[str, dict[str, list[Any]]]:
    """The map (``map``; with ``smooth``, also ``map_smooth``: HTAF's smooth forward) and, for each, its selection
    twin (``<map>_selection``): the same cells and seeds trained without the last ``validation`` training samples,
    which score them (``val_accuracy``). The best cell and the good region are chosen on the twins' validation
    accuracy, and the chosen cells are reported with the map's test accuracy (:func:`select`)."""
    maps = {"map": _map(alphas, betas, seeds)}
    if smooth:
        maps["map_smooth"] = _map(alphas, betas, seeds, method=["htaf"])
    return {**maps, **{f"{name}_selection": {**grid, "validation": [validation]} for name, grid in maps.items()}}


def _alphas(alphas: list[float]) -> list[dict[str, float]]:
    """HTAF's ``surrogate_params`` at each sharpness of ``alphas`` (``beta``: the default, or matched to the peak slope)."""
    return [{"alpha": a} for a in alphas]


def _stress(alphas: list[float], seeds: list[int], peaks: list[float], methods: list[str] = STRESS_METHODS,
            prefix: str = "stress", htaf_method: str = "htaf_hard", **fixed: list[Any]) -> dict[str, dict[str, list[Any]]]:
    """HTAF at several alpha, and the surrogates, at each peak slope of ``peaks``, under Adam and SGD with momentum:
    sweeps ``<prefix>_<adam|sgd>_<htaf|surrogates>``."""
    optimisers = {"adam": {"optimizer": ["adam"], "lr": [3e-3]},
                  "sgd": {"optimizer": ["sgd"], "momentum": [0.9], "lr": [3e-2]}}
    out = {}
    for opt, keys in optimisers.items():
        out[f"{prefix}_{opt}_htaf"] = {"method": [htaf_method], "surrogate_params": _alphas(alphas),
                                       "peak_slope": peaks, "seed": seeds, **keys, **fixed}
        out[f"{prefix}_{opt}_surrogates"] = {"method": methods, "peak_slope": peaks, "seed": seeds,
                                             **keys, **fixed}
    return out


def _scale(alphas: list[float], seeds: list[int], peak: float, gains: list[float], methods: list[str] = STRESS_METHODS,
           **fixed: list[Any]) -> dict[str, dict[str, list[Any]]]:
    """HTAF at several alpha, and the surrogates, at peak slope ``peak``, with wider initial pre-activations."""
    return {"scale_htaf": {"method": ["htaf_hard"], "surrogate_params": _alphas(alphas), "peak_slope": [peak],
                           "init_gain": gains, "seed": seeds, **fixed},
            "scale_surrogates": {"method": methods, "peak_slope": [peak], "init_gain": gains, "seed": seeds,
                                 **fixed}}


def _versus(prefix: str, htaf_method: str, alphas: list[float], seeds: list[int], peak: float,
            methods: list[str] = STRESS_METHODS, **fixed: list[Any]) -> dict[str, dict[str, list[Any]]]:
    """HTAF at several alpha (``<prefix>_htaf``) and the surrogates (``<prefix>_surrogates``) at peak slope ``peak``,
    with the profile's optimiser (Adam), over the grid keys ``fixed`` (depth, time steps, ...)."""
    return {f"{prefix}_htaf": {"method": [htaf_method], "surrogate_params": _alphas(alphas), "peak_slope": [peak],
                               "seed": seeds, **fixed},
            f"{prefix}_surrogates": {"method": methods, "peak_slope": [peak], "seed": seeds, **fixed}}


#: hidden layers of 64 LIF neurons in the SNN depth regime (the map's network has 2)
SNN_DEEP = [[64] * 4, [64] * 8]

#: the chapter's sweeps: ``GRIDS[experiment][profile][sweep] = grid``
GRIDS: dict[str, dict[str, dict[str, dict[str, list[Any]]]]] = {
    "sensitivity_dhn": {
        "smoke": {**_maps([1.0, 4.0], [0.5, 2.0], [0, 1], VALIDATION["smoke"], smooth=True),
                  **_stress([4.0], [0, 1], [1.0], ["sigmoid"], depth=[3]),
                  **_scale([4.0], [0, 1], 1.0, [2.0], ["sigmoid"], depth=[3]),
                  **_versus("plain_deep", "htaf_hard", [4.0], [0, 1], 1.0, ["sigmoid"], variant=["plain"], depth=[4]),
                  **_versus("skip", "htaf_hard", [4.0], [0, 1], 1.0, ["sigmoid"], variant=["skip"], depth=[3, 4]),
                  **_stress([4.0], [0, 1], [1.0], ["sigmoid"], prefix="skip_optimiser", variant=["skip"], depth=[4])},
        # maps: 2 x 25 cells x 3 seeds = 150 runs, and as many selection runs; stress at depths 8 and 12: (5 alphas + 3 surrogates) x 3 slopes
        # x 2 depths x 2 optimisers x 3 seeds = 288 runs; scale at depth 8: (5 + 3) x 4 gains x 5 seeds = 160 runs,
        # 24 of them the stress runs at gain 1
        "cpu": {**_maps(ALPHAS, BETAS, SEEDS, VALIDATION["cpu"], smooth=True),
                **_stress(ALPHAS, SEEDS, PEAKS, depth=[8, 12]),
                # init_gain 1 with seeds 0-2 are the stress runs above (same configs, trained once)
                **_scale(ALPHAS, SCALE_SEEDS, 1.0, GAINS, depth=[8]),
                # depth at peak slope 1 with Adam: plain DHNs of 16 and 32 layers (8 and 12 are in the stress
                # sweeps) and skip DHNs of 8, 16 and 32 layers: (5 + 3) x (2 + 3) depths x 3 seeds = 120 runs
                **_versus("plain_deep", "htaf_hard", ALPHAS, SEEDS, 1.0, variant=["plain"], depth=[16, 32]),
                **_versus("skip", "htaf_hard", ALPHAS, SEEDS, 1.0, variant=["skip"], depth=[8, 16, 32]),
                # the skip DHN of 16 layers at every peak slope under Adam and SGD: (5 + 3) x 3 slopes x 2 optimisers
                # x 3 seeds = 144 runs, 24 of them (Adam, slope 1) the skip runs above
                **_stress(ALPHAS, SEEDS, PEAKS, prefix="skip_optimiser", variant=["skip"], depth=[16])},
        "gpu": {**_maps(ALPHAS, BETAS, SEEDS, VALIDATION["gpu"], smooth=True),
                **_stress(ALPHAS, SEEDS, PEAKS, depth=[8, 16, 32]),
                **_scale(ALPHAS, SCALE_SEEDS, 1.0, GAINS, depth=[8, 16]),
                **_versus("skip", "htaf_hard", ALPHAS, SEEDS, 1.0, variant=["skip"], depth=[8, 16, 32]),
                **_stress(ALPHAS, SEEDS, PEAKS, prefix="skip_optimiser", variant=["skip"], depth=[16, 32])},
    },
    "sensitivity_bnn": {
        "smoke": _maps([1.0, 4.0], [0.5, 2.0], [0, 1], VALIDATION["smoke"]),
        # 25 cells x 3 seeds = 75 runs, and as many selection runs
        "cpu": _maps(ALPHAS, BETAS, SEEDS, VALIDATION["cpu"]),
        "gpu": _maps(ALPHAS, BETAS, SEEDS, VALIDATION["gpu"]),
    },
    "sensitivity_snn": {
        "smoke": {**_maps([1.0, 4.0], [0.5, 2.0], [0, 1], VALIDATION["smoke"]),
                  **_versus("steps", "htaf", [4.0], [0, 1], 1.0, ["sigmoid"], T=[2, 4]),
                  **_versus("deep", "htaf", [4.0], [0, 1], 1.0, ["sigmoid"], hidden=[[32] * 4]),
                  **_stress([4.0], [0, 1], [1.0], ["sigmoid"], prefix="steps_optimiser", htaf_method="htaf", T=[4])},
        # map: 25 cells x 3 seeds = 75 runs; at peak slope 1, HTAF (5 alphas) and the 3 surrogates: time steps
        # T in {4, 8, 16, 32} (2 hidden layers) and 4 or 8 hidden layers (T = 4): 8 x (4 + 2) x 3 seeds = 144 runs
        "cpu": {**_maps(ALPHAS, BETAS, SEEDS, VALIDATION["cpu"]),
                **_versus("steps", "htaf", ALPHAS, SEEDS, 1.0, T=[4, 8, 16, 32]),
                **_versus("deep", "htaf", ALPHAS, SEEDS, 1.0, hidden=SNN_DEEP),
                # T = 16 at every peak slope under Adam and SGD: 8 x 3 slopes x 2 optimisers x 3 seeds = 144 runs,
                # 24 of them (Adam, slope 1) the time-step runs above
                **_stress(ALPHAS, SEEDS, PEAKS, prefix="steps_optimiser", htaf_method="htaf", T=[16])},
        "gpu": {**_maps(ALPHAS, BETAS, SEEDS, VALIDATION["gpu"]),
                **_versus("steps", "htaf", ALPHAS, SEEDS, 1.0, T=[4, 8, 16, 32]),
                **_versus("deep", "htaf", ALPHAS, SEEDS, 1.0, hidden=[[256] * 4, [256] * 8]),
                **_stress(ALPHAS, SEEDS, PEAKS, prefix="steps_optimiser", htaf_method="htaf", T=[16])},
    },
}

DHN_EXPERIMENT = register(
    Experiment(
        name="sensitivity_dhn",
        description="HTAF's (alpha, beta) map and depth / optimiser stress on a small DHN (digits)",
        profiles=DHN_PROFILES,
        build_model=build_dhn,
        train_metrics=dhn_experiment.EXPERIMENT.train_metrics,
        evaluate=functools.partial(gradient_health, experiment="sensitivity_dhn"),
        eval_metrics=dhn_experiment.eval_metrics,
        on_epoch_start=dhn_experiment.on_epoch_start,
        validate=validate_dhn,
        nullable=("peak_slope",),
        grids=GRIDS["sensitivity_dhn"],
    )
)

BNN_EXPERIMENT = register(
    Experiment(
        name="sensitivity_bnn",
        description="HTAF's (alpha, beta) map on a small binary MLP (digits)",
        profiles=BNN_PROFILES,
        build_model=bnn_experiment.build_model,
        validate=bnn_experiment.validate,
        train_metrics=bnn_experiment.train_metrics,
        after_step=bnn_experiment.after_step,
        evaluate=functools.partial(gradient_health, experiment="sensitivity_bnn"),
        eval_metrics=bnn_experiment.eval_metrics,
        on_epoch_start=bnn_experiment.on_epoch_start,
        nullable=("peak_slope",),
        grids=GRIDS["sensitivity_bnn"],
    )
)

SNN_EXPERIMENT = register(
    Experiment(
        name="sensitivity_snn",
        description="HTAF's (alpha, beta) map, time-step and depth stress on a small LIF spiking network (digits)",
        profiles=SNN_PROFILES,
        build_model=snn_experiment.build_model,
        validate=snn_experiment.validate,
        train_metrics=snn_experiment.EXPERIMENT.train_metrics,
        eval_metrics=snn_experiment.EXPERIMENT.eval_metrics,
        loss=snn_experiment.EXPERIMENT.loss,
        evaluate=functools.partial(gradient_health, experiment="sensitivity_snn"),
        nullable=("tau", "peak_slope"),
        grids=GRIDS["sensitivity_snn"],
    )
)
