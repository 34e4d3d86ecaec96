"""The package's layout: no import cycle, and a surrogate family defined in one place reaches everything."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import htaf
from htaf import surrogates

PACKAGE = Path(htaf.__file__).resolve().parent


# ---------------------------------------------------------------------------- import graph


def _module_name(path: Path) -> str:
    parts = ["htaf", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1]) if parts[-1] == "__init__" else ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level_imports(tree: ast.Module, functions: bool = False):
    """Import nodes executed when the module is imported: not inside functions (unless ``functions``) or
    ``if TYPE_CHECKING``."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif functions and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            stack.extend(node.body)
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                stack.extend(node.body)
            stack.extend(node.orelse)
        elif isinstance(node, (ast.Try, ast.With, ast.ClassDef)):
            for block in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, block, []):
                    stack.extend(child.body if isinstance(child, ast.ExceptHandler) else [child])


def import_graph(functions: bool = False) -> dict[str, set[str]]:
    """``module -> modules of htaf it imports at module level`` (and inside functions, with ``functions``).

    ``from htaf import data`` (or ``from . import data``) depends on ``htaf.data`` when that is a module,
    on ``htaf`` (the package ``__init__``) only when it imports a name defined there.
    """
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _module_level_imports(ast.parse(path.read_text(encoding="utf-8")), functions):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(base + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                targets = []
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    targets.append(full if full in files else base)
            for target in targets:
                # "import htaf.x.y" needs htaf.x.y; keep the longest prefix that is a module of the package
                while target and target not in files:
                    target = target.rpartition(".")[0]
                if target.startswith("htaf") and target != name:
                    graph[name].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_import_graph_sees_the_known_edges():
    graph = import_graph()
    assert "htaf.surrogates" in graph["htaf.functional"]
    assert {"htaf._kernels", "htaf._validation"} <= graph["htaf.surrogates"]
    assert {"htaf.functional", "htaf.surrogates"} <= graph["htaf.nn"]
    assert "htaf.functional" in graph["htaf"]  # the package __init__ imports its submodules


def test_find_cycle_reports_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_inside_the_package():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


CORE = ("htaf._validation", "htaf._kernels", "htaf._symbolic", "htaf.surrogates", "htaf.functional", "htaf.nn",
        "htaf.theory", "htaf.plotting")


def test_core_modules_have_no_cycle_even_through_deferred_imports():
    # imports inside functions too (a lazy import hides a cycle from the import system, not from the reader)
    full = import_graph(functions=True)
    core = {name: full[name] & set(CORE) for name in CORE}
    cycle = find_cycle(core)
    assert cycle is None, "import cycle (counting imports inside functions): " + " -> ".join(cycle)


def test_core_dependencies_run_one_way():
    graph = import_graph()
    assert graph["htaf._validation"] == set()
    assert graph["htaf._kernels"] <= {"htaf._validation"}
    assert not graph["htaf.surrogates"] & {"htaf.functional", "htaf.nn", "htaf.theory", "htaf.plotting"}
    assert "htaf.nn" not in graph["htaf.functional"]


#: the package's layers, lowest first: a module imports (at module level or inside a function) only modules of
#: lower layers, or of its own layer without a cycle. ``htaf.x.*`` stands for every module of the package ``htaf.x``.
LAYERS: list[set[str]] = [
    {"htaf._errors", "htaf._validation", "htaf._kernels", "htaf._symbolic", "htaf._paths", "htaf._extras", "htaf.distributed",
     "htaf.benchmarks", "htaf.memory"},  # no model, no torch module; optional packages; the shipped benchmark results;
    # the CPU caching allocator
    {"htaf.surrogates"},  # the surrogate-gradient zoo
    {"htaf.functional"},  # htaf, spike, sign, ... as functions
    {"htaf.nn", "htaf._binary", "htaf._lif"},  # units and layers; the LIF kernel engine
    {"htaf.theory", "htaf.stats", "htaf.guidance", "htaf.data", "htaf.data.*"},  # numbers and data, no model
    {"htaf.models", "htaf.models.*", "htaf.engine"},  # the model zoo; the experiment <-> training loop contract
    {"htaf.metrics", "htaf.results", "htaf.plotting"},  # measuring, storing and drawing runs
    {"htaf.experiments", "htaf.experiments.*"},  # the registry and every chapter's experiment
    {"htaf.findings"},  # the Findings page's verdicts, read from the committed results (nothing imports it)
    {"htaf.train"},  # the training loop and cached runs
    {"htaf.reproduction", "htaf.__main__"},  # the book's reproduction, the command line
]
#: what ``import htaf`` loads (the package ``__init__`` exposes every other module lazily, by name)
PACKAGE_IMPORTS = {"htaf.functional", "htaf.nn", "htaf.surrogates"}


def layer_of(module: str, layers: list[set[str]] = LAYERS) -> int:
    """The index of the layer that holds ``module`` (``KeyError`` when none does)."""
    for index, layer in enumerate(layers):
        if module in layer or any(p.endswith(".*") and module.startswith(p[:-1]) for p in layer):
            return index
    raise KeyError(f"{module} is in no layer of tests/test_layout.py's LAYERS; add it where it belongs")


def upward_imports(graph: dict[str, set[str]], layers: list[set[str]] = LAYERS) -> list[str]:
    """Every import of ``graph`` that points to a higher layer, as ``"a (layer i) -> b (layer j)"``."""
    found = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            if layer_of(target, layers) > layer_of(module, layers):
                found.append(f"{module} (layer {layer_of(module, layers)}) -> {target} "
                             f"(layer {layer_of(target, layers)})")
    return found


def test_upward_imports_are_reported():
    layers = [{"a"}, {"b", "pkg.*"}]
    assert upward_imports({"a": {"b"}, "b": set(), "pkg.x": {"a"}}, layers) == ["a (layer 0) -> b (layer 1)"]
    assert upward_imports({"a": set(), "b": {"a", "pkg.x"}, "pkg.x": {"a"}}, layers) == []
    with pytest.raises(KeyError, match="in no layer"):
        layer_of("c", layers)


def test_imports_point_down_the_layers():
    """No cycle and no upward arrow, counting the imports inside functions too (a deferred import hides a cycle or
    an upward dependency from the import system, not from the reader)."""
    full = import_graph(functions=True)
    package = full.pop("htaf")
    assert package == PACKAGE_IMPORTS, "import htaf loads only functional, nn and surrogates (the rest lazily)"
    assert not [name for name, targets in full.items() if "htaf" in targets], "no module imports the package __init__"
    cycle = find_cycle(full)
    assert cycle is None, "import cycle (counting imports inside functions): " + " -> ".join(cycle)
    upward = upward_imports(full)
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)


def test_nothing_imports_the_findings():
    """``htaf.findings`` sits on top of the results, the statistics, the theory and the experiments' registry and
    reads finished runs only: no module of the package imports it, and it never reaches the training loop."""
    full = import_graph(functions=True)
    assert not [name for name, targets in full.items() if "htaf.findings" in targets]
    assert not {t for t in full["htaf.findings"] if t in {"htaf.train", "htaf.reproduction", "htaf.__main__"}}


def test_the_lower_layers_never_reach_the_training_loop():
    full = import_graph(functions=True)
    high = {"htaf.train", "htaf.experiments", "htaf.reproduction"}
    for name in ("htaf.metrics", "htaf.results", "htaf.plotting", "htaf.engine", *(m for m in full if m.startswith("htaf.models"))):
        assert not {t for t in full[name] if t in high or t.startswith("htaf.experiments.")}, name


# ---------------------------------------------------------------------------- a family in one place


class Laplace(surrogates.Surrogate):
    r"""Laplace (toy family of the test): :math:`F'(x) = \tfrac{\lambda}{2} e^{-\lambda|x|}`, peak slope
    :math:`\lambda/2`, :math:`F(x) = \tfrac12 + \tfrac12\operatorname{sign}(x)(1 - e^{-\lambda|x|})`."""

    name = "toy_laplace"
    defaults = {"lam": 2.0}
    origin = "tests/test_layout.py"
    slope_parameter = "lam"
    label, color, marker = "Laplace (toy)", "#123456", "8"

    def primitive(self, x):
        return 0.5 + 0.5 * torch.sign(x) * -torch.expm1(-self.lam * x.abs())

    def derivative(self, x):
        return 0.5 * self.lam * torch.exp(-self.lam * x.abs())

    @classmethod
    def symbolic(cls):
        import sympy as sp

        from htaf.theory import Family, T, eps, x

        lam = sp.Symbol("lam", positive=True)
        return Family(
            cls.name,
            (lam,),
            primitive=sp.Rational(1, 2) + sp.sign(x) * (1 - sp.exp(-lam * sp.Abs(x))) / 2,
            derivative=lam * sp.exp(-lam * sp.Abs(x)) / 2,
            mass=1 - sp.exp(-lam * eps),
            tail=sp.exp(-lam * T),
            total=sp.Integer(1),
            kinks=(sp.Integer(0),),
            tail_kind="exponential, rate lambda",
        )


@pytest.fixture
def toy_family():
    surrogates.register(Laplace)
    try:
        yield Laplace
    finally:
        surrogates.unregister(Laplace.name)


def test_a_family_registered_in_one_place_reaches_every_helper(toy_family):
    from htaf import plotting
    from htaf import theory as th

    name = toy_family.name
    assert name in surrogates.available() and surrogates.SLOPE_PARAMETER[name] == "lam"
    assert name in th.FAMILIES and th.LABELS[name] == "Laplace (toy)" and th.COLORS[name] == "#123456"
    assert plotting.style(name) == {"color": "#123456", "marker": "8", "label": "Laplace (toy)", "linestyle": "-"}
    # theory: symbolic form, numbers that agree with torch, masses that agree with quadrature
    fam = th.family(name)
    assert fam.peak_slope == toy_family.symbolic().symbols[0] / 2
    n = th.numeric(name, lam=3.0)
    pts = np.linspace(-6, 6, 1201) + 0.000731
    sg = surrogates.get(name, lam=3.0)
    np.testing.assert_allclose(n.derivative(pts), sg.derivative(torch.tensor(pts)).numpy(), rtol=1e-12)
    np.testing.assert_allclose(n.primitive(pts), sg.primitive(torch.tensor(pts)).numpy(), rtol=1e-12)
    assert float(th.mass_near_zero(name, 0.5, lam=3.0)) == pytest.approx(th.quad_mass(name, 0.5, lam=3.0), rel=1e-10)
    assert float(th.tail_mass(name, 0.5, lam=3.0)) == pytest.approx(th.quad_tail(name, 0.5, lam=3.0), rel=1e-8)
    # matched peak slope, by the class's slope parameter
    assert surrogates.with_peak_slope(name, 1.0) == Laplace(lam=2.0)
    assert th.matched_params(name, 3.0) == {"lam": 6.0}
    # and it trains: the spike's backward is the family's derivative
    xt = torch.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    (g,) = torch.autograd.grad(htaf.functional.spike(xt, name).sum(), xt)
    torch.testing.assert_close(g, surrogates.get(name).derivative(xt.detach()))


def test_unregistering_leaves_no_stale_theory(toy_family):
    from htaf import theory as th

    before = th.numeric(toy_family.name).peak_slope
    assert before == pytest.approx(1.0)
    surrogates.unregister(toy_family.name)

    class Wider(Laplace):
        __doc__ = Laplace.__doc__
        defaults = {"lam": 4.0}

    surrogates.register(Wider)  # same name, another class: theory must rebuild, not reuse the cache
    try:
        assert th.numeric(toy_family.name).peak_slope == pytest.approx(2.0)
    finally:
        surrogates.unregister(Wider.name)
    surrogates.register(toy_family)  # for the fixture's clean-up
    assert not hasattr(th, "nope")


def test_registry_without_the_toy_family():
    from htaf import plotting
    from htaf import theory as th

    assert "toy_laplace" not in surrogates.available() and "toy_laplace" not in th.FAMILIES
    with pytest.raises(ValueError, match="unknown family"):
        th.family("toy_laplace")
    with pytest.raises(ValueError, match="no plot style.*known methods"):
        plotting.style("toy_laplace")


def test_register_checks_the_class():
    class Bad(Laplace):
        name = "toy_bad"
        slope_parameter = "alpha"

    with pytest.raises(ValueError, match="slope_parameter 'alpha'.*not one of its parameters"):
        surrogates.register(Bad)
    with pytest.raises(ValueError, match="already registered"):
        surrogates.register(surrogates.Sigmoid)
    with pytest.raises(ValueError, match="unknown surrogate"):
        surrogates.unregister("toy_bad")


def test_family_without_symbolic_form_is_registered_but_not_in_theory():
    from htaf import plotting
    from htaf import theory as th

    class Plain(surrogates.Surrogate):
        """A family with no SymPy form: :math:`F' = 1/2` on :math:`|x| < 1`."""

        name = "toy_plain"
        defaults: dict = {}

        def primitive(self, x):
            return (0.5 * x + 0.5).clamp(0.0, 1.0)

        def derivative(self, x):
            return 0.5 * (x.abs() < 1).to(x.dtype)

    surrogates.register(Plain)
    try:
        assert "toy_plain" in surrogates.available() and "toy_plain" not in th.FAMILIES
        with pytest.raises(ValueError, match="no symbolic form"):
            th.family("toy_plain")
        assert plotting.label("toy_plain") == "toy_plain"  # defaults: its name, a spare colour
        assert plotting.color("toy_plain") not in {plotting.color(n) for n in surrogates.available() if n != "toy_plain"}
        assert math.isclose(surrogates.get("toy_plain").peak_slope, 0.5)
    finally:
        surrogates.unregister("toy_plain")


def test_readme_family_example_registers_and_reaches_theory():
    import re

    from htaf import theory as th

    readme = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "@surrogates.register" in b]
    try:
        exec(block, {})
        assert th.numeric("laplace", lam=3.0).peak_slope == pytest.approx(1.5)
        assert float(th.tail_mass("laplace", 1.0)) == pytest.approx(th.quad_tail("laplace", 1.0), rel=1e-9)
    finally:
        surrogates.unregister("laplace")
