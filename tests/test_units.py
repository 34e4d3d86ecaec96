"""The unit factory htaf.nn.make_unit and the Smooth module."""

import pytest
import torch
from torch import nn

from htaf import functional as F
from htaf import surrogates
from htaf.nn import HTAF, Smooth, Spike, make_unit, unit_methods, use_mode

X = torch.linspace(-3, 3, 61, dtype=torch.float64)


def grad_of(module, x):
    x = x.clone().requires_grad_(True)
    y = module(x)
    (g,) = torch.autograd.grad(y.sum(), x)
    return y.detach(), g


def test_every_listed_method_builds_and_the_lists_partition():
    binary, real = unit_methods(binary=True), unit_methods(binary=False)
    assert unit_methods() == binary + real and not set(binary) & set(real)
    assert {"htaf", "htaf_anneal", "htaf_hard", "ste", "atan", "sigmoid_smooth"} <= set(binary)
    assert "htaf_smooth" not in binary  # that is "htaf"
    assert set(surrogates.available()) <= set(binary)
    for method in unit_methods():
        assert isinstance(make_unit(method), nn.Module), method


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown unit method 'nope'; valid: htaf, htaf_anneal, htaf_hard.*relu"):
        make_unit("nope")


def test_htaf_methods():
    smooth = make_unit("htaf", surrogate_params={"alpha": 3.0, "beta": 0.5})
    anneal, hard = make_unit("htaf_anneal"), make_unit("htaf_hard")
    assert isinstance(smooth, HTAF) and smooth.mode == "smooth" and smooth.step_at_eval and smooth.alpha == 3.0
    assert anneal.mode == "smooth" and anneal.step_at_eval
    assert hard.mode == "hard" and not hard.step_at_eval
    assert make_unit("htaf", surrogate_params={"alpha": 8.0}).alpha == 8.0  # HTAF's parameters are surrogate_params
    with pytest.raises(TypeError, match="alpha"):
        make_unit("htaf", alpha=8.0)  # the old keywords are gone
    with pytest.raises(TypeError, match="valid: alpha, beta"):
        make_unit("htaf", surrogate_params={"slope": 1.0})


def test_surrogate_spikes_are_steps_with_the_surrogate_derivative():
    unit = make_unit("atan", surrogate_params={"alpha": 3.0})
    assert isinstance(unit, Spike)
    y, g = grad_of(unit, X)
    torch.testing.assert_close(y, F.heaviside(X))
    torch.testing.assert_close(g, surrogates.get("atan", alpha=3.0).derivative(X))
    with pytest.raises(TypeError, match="unknown parameter"):
        make_unit("atan", surrogate_params={"beta": 1.0})


def test_smooth_units_train_on_the_primitive_and_infer_with_the_step():
    unit = make_unit("sigmoid_smooth", surrogate_params={"alpha": 4.0})
    assert isinstance(unit, Smooth)
    y, g = grad_of(unit.train(), X)
    torch.testing.assert_close(y, torch.sigmoid(4.0 * X))  # the naive sigmoid bottleneck
    torch.testing.assert_close(g, surrogates.get("sigmoid", alpha=4.0).derivative(X))
    torch.testing.assert_close(unit.eval()(X), F.heaviside(X))
    hard = Smooth("sigmoid", mode="hard", step_at_eval=False)
    y, g = grad_of(hard.train(), X)
    torch.testing.assert_close(y, F.heaviside(X))
    torch.testing.assert_close(g, surrogates.get("sigmoid").derivative(X))


def test_use_mode_switches_smooth_modules_too():
    net = nn.Sequential(nn.Linear(2, 4), make_unit("erf_smooth"), nn.Linear(4, 4), make_unit("htaf"))
    x = torch.randn(16, 2)
    with use_mode(net, "step"):
        out = net[1](x)
        assert bool(((out == 0) | (out == 1)).all()) and net.training
    with use_mode(net.eval(), "smooth"):
        out = net[1](x)
        assert not bool(((out == 0) | (out == 1)).all())
    assert net[1].step_at_eval and net[1].mode == "smooth"  # restored


@pytest.mark.parametrize("method", ["htaf", "htaf_hard", "ste", "sigmoid_smooth"])
def test_signed_binary_units_give_plus_minus_one(method):
    unit = make_unit(method, signed=True).eval()
    out = unit(X)
    assert set(out.unique().tolist()) == {-1.0, 1.0}
    torch.testing.assert_close(out, F.sign(X))


def test_real_activations_are_never_binarised():
    assert isinstance(make_unit("relu"), nn.ReLU) and isinstance(make_unit("identity"), nn.Identity)
    torch.testing.assert_close(make_unit("tanh").eval()(X), torch.tanh(X))
    with pytest.raises(ValueError, match="binary units only"):
        make_unit("relu", signed=True)
    with pytest.raises(ValueError, match="no surrogate_params"):
        make_unit("gelu", surrogate_params={"alpha": 1.0})
    # the BNN's real-valued twin is in the registry too: ReLU
    assert isinstance(make_unit("full_precision"), nn.ReLU) and "full_precision" not in unit_methods()


@pytest.mark.parametrize("method", ["htaf", "htaf_hard", "sigmoid_smooth", "atan", "triangle", "erf"])
@pytest.mark.parametrize("slope", [0.5, 2.0])
def test_make_unit_matches_the_peak_slope(method, slope):
    from htaf.nn import make_unit

    unit = make_unit(method, peak_slope=slope)
    if hasattr(unit, "mode"):
        unit.mode = "hard"  # exact step forward, the surrogate's derivative backward
    x = torch.zeros(1, requires_grad=True)
    unit(x).sum().backward()
    assert x.grad.item() == pytest.approx(slope, rel=1e-6)


def test_unit_surrogate_is_the_one_peak_slope_rule():
    from htaf.nn import make_unit, unit_family, unit_surrogate

    assert unit_family("htaf_anneal") == "htaf" and unit_family("erf_smooth") == "erf" and unit_family("gelu") is None
    assert make_unit("htaf", peak_slope=0.5, surrogate_params={"alpha": 8.0}).surrogate.params == {"alpha": 8.0,
                                                                                                    "beta": 0.25}
    assert unit_surrogate("htaf", None, {"beta": 2.0}).params == {"alpha": 4.0, "beta": 2.0}
    # a continuous activation has no slope to match: peak_slope is ignored (an experiment's default slope applies to
    # all its methods), surrogate parameters are refused
    assert unit_surrogate("relu", 1.0) is None and isinstance(make_unit("relu", peak_slope=1.0), nn.ReLU)
    with pytest.raises(ValueError, match="continuous"):
        unit_surrogate("relu", None, {"alpha": 1.0})
    with pytest.raises(ValueError, match="unknown unit method"):
        unit_family("nonsense")
    with pytest.raises(ValueError, match="peak slope"):
        unit_surrogate("ste", 1.0)


# --------------------------------------------------------------------------------------------
# One registry, one resolver, one default, one schedule
# --------------------------------------------------------------------------------------------


def test_the_registry_is_the_one_table_of_methods():
    from htaf import plotting
    from htaf.nn import MODEL_KINDS, unit_family, unit_registry

    table = unit_registry()
    assert list(table) == [*unit_methods(), "full_precision"]
    for name, spec in table.items():
        assert spec.name == name and spec.kind in ("htaf", "spike", "smooth", "real", "reference")
        assert unit_family(name) == spec.family and plotting.label(name) == spec.label
    # what each kind of network accepts is read from the registry
    assert unit_methods(model="spiking") == ["htaf", *[n for n in surrogates.available() if n != "htaf"]]
    assert unit_methods(model="sign") == [*unit_methods(model="spiking"), "full_precision"]
    assert set(MODEL_KINDS) == {"threshold", "spiking", "sign"}
    with pytest.raises(ValueError, match="unknown kind of network"):
        unit_methods(model="transformer")


def test_a_newly_registered_family_is_a_unit_of_every_network_and_has_a_style():
    from htaf import plotting
    from htaf.nn import unit_registry

    @surrogates.register
    class Cube(surrogates.Surrogate):
        name, defaults, slope_parameter = "cube_test", {"alpha": 1.0}, "alpha"

        def primitive(self, x):
            return torch.sigmoid(self.alpha * x)

        def derivative(self, x):
            return self.alpha * torch.sigmoid(self.alpha * x) * torch.sigmoid(-self.alpha * x)

    try:
        assert unit_registry()["cube_test_smooth"].kind == "smooth"
        for model in ("threshold", "spiking", "sign"):
            assert "cube_test" in unit_methods(model=model)
        assert isinstance(make_unit("cube_test_smooth", peak_slope=1.0), Smooth)
        assert plotting.style("cube_test_smooth")["label"] == "cube_test (smooth)"
        assert plotting.style("cube_test")["color"] == Cube.color
    finally:
        surrogates.unregister("cube_test")
    assert "cube_test" not in unit_registry()


def test_one_resolver_builds_every_familys_unit():
    """DHN, ICBM, BNN, SNN and domains units all come from make_unit: same method, same parameters, same surrogate."""
    from htaf.experiments import get, resolve_config
    from htaf.nn import unit_surrogate

    expected = unit_surrogate("htaf", 0.5, {"alpha": 8.0})
    for name, overrides in [("dhn", {}), ("icbm", {}), ("bnn", {}), ("snn", {}),
                            ("domains", {"family": "snn"}), ("domains", {"family": "bnn", "dataset": "mnist1d",
                                                        "data_kwargs": {"n_train": 100, "n_test": 50, "seed": 42}})]:
        config = resolve_config(name, "smoke", method="htaf", peak_slope=0.5, surrogate_params={"alpha": 8.0},
                                **overrides)
        model = get(name).build_model(config)
        found = {m.surrogate for m in model.modules() if hasattr(m, "surrogate") and not isinstance(m, Smooth)}
        assert found == {expected}, (name, overrides, found)


def test_resolve_config_stores_canonical_surrogate_params():
    from htaf import results
    from htaf.experiments import ConfigError, resolve_config
    from htaf.nn import canonical_surrogate_params

    spelled = [{}, {"alpha": 4.0, "beta": 1.0}, {"alpha": 4}, {"beta": 1.0}]
    configs = [resolve_config("dhn", "smoke", surrogate_params=p) for p in spelled]
    assert all(c["surrogate_params"] == {} for c in configs)
    assert len({results.config_hash("dhn", c) for c in configs}) == 1  # one computation, one hash
    config = resolve_config("icbm", "smoke", surrogate_params={"beta": 2, "alpha": 4.0})
    assert config["surrogate_params"] == {"beta": 2.0} and isinstance(config["surrogate_params"]["beta"], float)
    assert canonical_surrogate_params("atan", {"alpha": 2.0}) == {} and canonical_surrogate_params("ste", {}) == {}
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) alpha for unit method 'ste'; valid: none"):
        resolve_config("bnn", "smoke", method="ste", surrogate_params={"alpha": 1.0})
    with pytest.raises(ConfigError, match="relu.*none"):
        resolve_config("dhn", "smoke", method="relu", surrogate_params={"alpha": 1.0})


def test_removed_htaf_keys_say_what_to_give_instead():
    import htaf
    from htaf.experiments import ConfigError

    for name in ("dhn", "dhn_regression", "sensitivity_dhn", "sensitivity_bnn", "sensitivity_snn", "icbm"):
        with pytest.raises(ConfigError, match=r"surrogate_params=\{'alpha': 8\}"):
            htaf.run(name, "smoke", alpha=8)
    with pytest.raises(ConfigError, match=r"surrogate_params=\{'beta': 0.5\}"):
        htaf.run("dhn", "smoke", beta=0.5)
    with pytest.raises(ConfigError, match=r"surrogate_params=\{'alpha': 1.0\}.*alpha_end"):
        htaf.run("icbm", "smoke", alpha_start=1.0)


def test_every_experiment_checks_its_method_with_the_one_check():
    from htaf.experiments import UnknownChoiceError, available, resolve_config

    for name in available():
        with pytest.raises(UnknownChoiceError, match="unknown .*'htaff'; valid choices: .*htaf"):
            resolve_config(name, "smoke", method="htaff")


def test_htaf_default_is_declared_once():
    """HTAF's default (alpha 4, beta 1) is declared in htaf._kernels and every default reads it."""
    import inspect
    import re
    import tokenize
    from pathlib import Path

    import htaf
    from htaf import _kernels, functional, nn as hnn

    from htaf import theory

    for fn in (functional.htaf, functional.htaf_grad, functional.htaf_sign, hnn.HTAF.__init__):
        parameters = inspect.signature(fn).parameters
        assert parameters["alpha"].default is _kernels.HTAF_ALPHA and parameters["beta"].default is _kernels.HTAF_BETA
    assert surrogates.HTAF.defaults == {"alpha": _kernels.HTAF_ALPHA, "beta": _kernels.HTAF_BETA}
    assert inspect.signature(theory.equal_rate_crossover).parameters["beta"].default is _kernels.HTAF_BETA
    # no other module spells the default out in code (docstrings and prose aside): read the code tokens, with
    # strings shown only when they are a name ("alpha"), so that defaults and dict literals are seen
    pattern = re.compile(r"\b(alpha|beta)\b[\"' ]{0,3}(?::\s*(?:float\s*=\s*)?|=(?!=)\s*)(4|1)(\.0*)?\b(?!\.\d)")
    allowed = {("surrogates.py", 'defaults = {"alpha": 4.0}')}  # the sigmoid family's own default (SpikingJelly's)
    offenders = []
    for path in Path(htaf.__file__).parent.rglob("*.py"):
        lines: dict[int, list[str]] = {}
        with open(path, "rb") as fh:
            for token in tokenize.tokenize(fh.readline):
                if token.type == tokenize.STRING:
                    text = token.string.strip("\"'")
                    text = text if text.isidentifier() else "STR"
                elif token.type in (tokenize.COMMENT, tokenize.ENCODING):
                    continue
                else:
                    text = token.string
                lines.setdefault(token.start[0], []).append(text)
        for number, parts in lines.items():
            code = " ".join(parts)
            for match in pattern.finditer(code):
                value = float(match.group(2) + (match.group(3) or ""))
                default = {"alpha": _kernels.HTAF_ALPHA, "beta": _kernels.HTAF_BETA}[match.group(1)]
                line = path.read_text().splitlines()[number - 1].strip()
                if value == default and (path.name, line) not in allowed:
                    offenders.append(f"{path.name}:{number}: {line}")
    assert not offenders, offenders


def test_anneal_trajectory_is_one_schedule_from_the_config():
    from htaf.nn import anneal, anneal_alpha

    config = {"method": "htaf_anneal", "epochs": 5, "peak_slope": None, "surrogate_params": {"alpha": 1.0},
              "alpha_end": 16.0}
    unit = make_unit("htaf_anneal", surrogate_params={"alpha": 1.0})
    net = nn.Sequential(unit)
    got = [anneal(net, epoch, config) for epoch in range(5)]
    assert got == [anneal_alpha(e, 5, 1.0, 16.0) for e in range(5)] and got[0] == 1.0
    assert got[-1] == pytest.approx(16.0, rel=1e-15) and got == sorted(got)
    assert unit.alpha == got[-1] and got == [anneal(net, epoch, config) for epoch in range(5)]  # no state: repeatable
    # ICBM's schema-2 "sharpen" runs (alpha_start 1 to the unit's alpha 16) follow the same numbers, bit for bit
    assert got == [anneal_alpha(e, 5, 1.0, make_unit("htaf_anneal", surrogate_params={"alpha": 16.0}).alpha)
                   for e in range(5)]
    # peak-slope matching rescales beta and keeps alpha, so the DHN's schedule starts at the configured alpha
    config = {**config, "peak_slope": 0.5, "surrogate_params": {}, "alpha_end": 32.0}
    assert anneal(nn.Sequential(make_unit("htaf_anneal", peak_slope=0.5)), 0, config) == 4.0
    assert anneal(net, 0, {**config, "method": "htaf"}) is None


def test_building_htaf_units_consumes_no_random_numbers():
    """Why the ICBM's sharpen runs may be built at alpha 1 instead of 16: the same weights follow."""
    from htaf.models import icbm

    nets = []
    for alpha in (1.0, 16.0):
        torch.manual_seed(0)
        nets.append(icbm.build("cnn", (1, 16, 16), 4, num_concepts=8, method="htaf_anneal", peak_slope=None,
                               surrogate_params={"alpha": alpha}, channels=(8, 16)))
        nets[-1].tail = torch.rand(3)
    for a, b in zip(nets[0].state_dict().values(), nets[1].state_dict().values()):
        assert torch.equal(a, b)
    assert torch.equal(nets[0].tail, nets[1].tail)
