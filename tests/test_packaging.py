"""The package as others install it: declared dependencies and extras, one-line errors for missing optional packages,
metadata (license, supported Pythons, links that work on PyPI), package data, and the Binder environment."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import htaf
from htaf import _extras, benchmarks, data
from htaf.__main__ import main

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(htaf.__file__).resolve().parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]


def _pins(path: Path) -> dict[str, str]:
    """``name -> version`` of the ``name==version`` lines of a requirements file."""
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)", line.strip())
        if match:
            pins[match[1].lower()] = match[2]
    return pins


def _minimum_python() -> tuple[int, int]:
    match = re.fullmatch(r">=\s*3\.(\d+)", PROJECT["requires-python"])
    assert match, f"requires-python {PROJECT['requires-python']!r} is not of the form '>=3.N'"
    return 3, int(match[1])


# ---------------------------------------------------------------------------- optional packages: one line


def test_a_run_without_torchvision_stops_in_one_line_before_any_data_loads(monkeypatch, capsys):
    def no_data(*args, **kwargs):
        raise AssertionError("data loaded")

    monkeypatch.setitem(sys.modules, "torchvision", None)  # "import torchvision" now raises ImportError
    monkeypatch.setattr(data, "get_loaders", no_data)
    monkeypatch.setattr(data, "load", no_data)
    assert main(["run", "snn", "--profile", "cpu"]) == 1
    captured = capsys.readouterr()
    assert captured.err == "error: dataset 'fashion_mnist' needs torchvision: pip install 'htaf[data]'\n"
    assert captured.out == ""


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10", "cifar100"])
def test_torchvision_datasets_name_the_data_extra(name, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torchvision", None)
    with pytest.raises(data.MissingDependencyError) as error:
        data.load(name, "test", root=tmp_path)
    assert str(error.value) == f"dataset {name!r} needs torchvision: pip install 'htaf[data]'"
    assert isinstance(error.value, ImportError) and error.value.name == "torchvision"


def test_mnist1d_and_shd_name_their_package(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "mnist1d", None)
    with pytest.raises(data.MissingDependencyError, match=r"^dataset 'mnist1d' needs mnist1d: pip install mnist1d$"):
        data.load("mnist1d", "test")
    monkeypatch.setitem(sys.modules, "tonic", None)
    with pytest.raises(data.MissingDependencyError, match=r"^dataset 'shd' needs tonic: pip install 'htaf\[shd\]'$"):
        data.check_dependencies("shd")
    from htaf.data import shd

    for path in shd.expected_files(tmp_path, "train"):  # files present, tonic absent: it cannot read them
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"")
    with pytest.raises(data.MissingDependencyError, match=r"^dataset 'shd' needs tonic"):
        data.load("shd", "train", root=tmp_path)


def test_the_icbm_resnet_names_the_data_extra(monkeypatch):
    from htaf.models import icbm

    monkeypatch.setitem(sys.modules, "torchvision", None)
    with pytest.raises(_extras.MissingDependencyError, match=r"^the ICBM's resnet18 backbone needs torchvision: "):
        icbm.resnet18(3)


def test_datasets_of_core_packages_need_nothing_more():
    for name in ("digits", "concept_shapes", "randman", "regression_bump", "cifar10_subset"):
        data.check_dependencies(name)
    assert _extras.available("json") and not _extras.available("htaf_no_such_module")


def test_every_install_hint_names_a_declared_extra():
    extras = PROJECT["optional-dependencies"]
    for module, command in _extras.INSTALL.items():
        named = re.findall(r"htaf\[(\w+)\]", command)
        assert all(extra in extras for extra in named), (module, command)
        if named:
            assert any(req.split("=")[0].split("[")[0] == module for req in extras[named[0]]), (module, command)


def test_the_packages_htaf_imports_are_declared():
    """matplotlib (htaf.plotting, every chapter) and mnist1d (the domains chapter) are dependencies."""
    declared = {re.split(r"[<>=!~ \[;]", req)[0].lower() for req in PROJECT["dependencies"]}
    assert {"torch", "numpy", "scipy", "sympy", "tqdm", "pandas", "scikit-learn", "statsmodels", "matplotlib",
            "mnist1d"} <= declared
    assert "torchvision" not in declared and PROJECT["optional-dependencies"]["data"] == ["torchvision"]


# ---------------------------------------------------------------------------- supported Pythons


def test_requires_python_agrees_with_the_classifiers():
    low = _minimum_python()
    listed = sorted(tuple(map(int, c.rsplit(" :: ", 1)[1].split("."))) for c in PROJECT["classifiers"]
                    if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c))
    assert listed, "no Python version classifiers"
    assert listed[0] == low, f"the oldest classifier {listed[0]} is not requires-python's {low}"
    assert listed == [(3, minor) for minor in range(low[1], listed[-1][1] + 1)], "a gap in the version classifiers"
    assert sys.version_info[:2] >= low


def test_ci_runs_the_tests_on_every_supported_python():
    """CI runs the whole suite on the Python of ``.ci/run`` (3.11) and the package's own tests on every other
    version the classifiers list (``.ci/other_pythons``), whose test files all exist."""
    root = PACKAGE.parent
    script = (root / ".ci" / "other_pythons").read_text(encoding="utf-8")
    others = re.search(r"versions=\(([\d. ]+)\)", script).group(1).split()
    listed = {c.rsplit(" :: ", 1)[1] for c in PROJECT["classifiers"] if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)}
    assert sorted(others + ["3.11"]) == sorted(listed), (others, listed)
    assert "bash .ci/other_pythons" in (root / ".ci" / "run").read_text(encoding="utf-8")
    files = re.findall(r"tests/test_\w+\.py", script.split("tests=(", 1)[1].split(")", 1)[0])
    assert len(files) >= 20 and all((root / f).is_file() for f in files), files


def _sources():
    return sorted(PACKAGE.rglob("*.py"))


def test_the_source_parses_as_the_oldest_supported_python():
    """No syntax newer than requires-python (``except*``, PEP 695 generics, 3.12 f-strings, ...)."""
    low = _minimum_python()
    for path in _sources():
        ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=low)


#: standard-library names newer than Python 3.10, which the syntax check cannot see
NEWER_THAN_310 = {
    "tomllib": None, "wsgiref.types": None,
    "typing": {"Self", "LiteralString", "Never", "assert_never", "assert_type", "reveal_type", "Required",
               "NotRequired", "TypeVarTuple", "Unpack", "dataclass_transform", "override", "TypeAliasType", "ReadOnly",
               "TypeIs"},
    "enum": {"StrEnum", "ReprEnum", "verify", "EnumCheck", "FlagBoundary", "member", "nonmember", "global_enum"},
    "datetime": {"UTC"}, "itertools": {"batched"}, "asyncio": {"TaskGroup", "timeout", "Runner"},
    "contextlib": {"chdir"}, "operator": {"call"}, "hashlib": {"file_digest"}, "warnings": {"deprecated"},
    "copy": {"replace"},
}
#: attributes newer than Python 3.10: ``module.attribute``, and methods whose name alone says it (``add_note``)
NEWER_ATTRIBUTES = {("datetime", "UTC"), ("itertools", "batched"), ("enum", "StrEnum"), ("asyncio", "TaskGroup"),
                    ("hashlib", "file_digest"), ("contextlib", "chdir"), ("typing", "Self"), ("typing", "override")}
NEWER_METHODS = {"add_note", "is_junction"}


def test_the_source_uses_no_standard_library_names_newer_than_the_oldest_python():
    assert _minimum_python() == (3, 10), "update NEWER_THAN_310 for the new minimum"
    found = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found += [f"{path.name}: import {a.name}" for a in node.names
                          if a.name in NEWER_THAN_310 and NEWER_THAN_310[a.name] is None]
            elif isinstance(node, ast.ImportFrom) and node.module in NEWER_THAN_310 and not node.level:
                names = NEWER_THAN_310[node.module]
                found += [f"{path.name}: from {node.module} import {a.name}" for a in node.names
                          if names is None or a.name in names]
            elif isinstance(node, ast.Attribute):
                base = node.value.id if isinstance(node.value, ast.Name) else None
                if (base, node.attr) in NEWER_ATTRIBUTES or node.attr in NEWER_METHODS:
                    found.append(f"{path.name}:{node.lineno}: {base or ''}.{node.attr}")
    assert not found, "standard-library names newer than Python 3.10:\n" + "\n".join(found)


# ---------------------------------------------------------------------------- metadata and package data


def test_license_and_metadata():
    license_text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert PROJECT["license"] == "MIT" and license_text.startswith("MIT License")
    assert "Copyright (c) 2026 The htaf developers" in license_text
    assert PROJECT["authors"] and PROJECT["keywords"]
    assert {"Homepage", "Documentation", "Source", "Issues"} <= set(PROJECT["urls"])
    assert (PACKAGE / "py.typed").is_file()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["htaf"]


def test_the_readme_has_no_relative_links():
    """README.md is the package's description on PyPI, where a link relative to the repository leads nowhere."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]+)\)", readme) + re.findall(r"<(?:a|img)\s[^>]*(?:href|src)=\"([^\"]+)\"", readme)
    relative = [t for t in targets if not re.match(r"(https?://|mailto:|#)", t)]
    assert targets and not relative, f"relative links in README.md: {relative}"


def test_the_benchmark_results_ship_with_the_package():
    assert {"snn_libs_cpu_idle", "snn_libs_cpu_loaded", "snn_libs_h200_b64", "snn_libs_h200_b256"} <= set(
        benchmarks.available())
    report = htaf.benchmarks.load("snn_libs_cpu_idle")
    assert {"machine", "config", "results"} <= set(report) and report["results"][0]["library"] == "htaf"
    assert benchmarks.path("snn_libs_cpu_idle").parent == PACKAGE / "benchmarks"
    with pytest.raises(FileNotFoundError, match="available: .*snn_libs_cpu_idle"):
        benchmarks.load("no_such_benchmark")


def test_the_wheel_holds_the_package_data(tmp_path):
    """The built wheel: every module, py.typed, the benchmark results, the license and the metadata."""
    try:
        import setuptools
        from packaging.version import Version
    except ImportError:
        pytest.skip("setuptools or packaging is not installed")
    if Version(setuptools.__version__) < Version("77"):
        pytest.skip(f"setuptools {setuptools.__version__} is older than the 77 pyproject.toml needs")
    source = tmp_path / "source"
    top_level = {".git", ".venv", "_build", "results", "data", "checkpoints", "build", "dist"}  # large, or not ours

    def ignore(folder, names):
        return [n for n in names if n in {"__pycache__", ".pytest_cache"} or n.endswith(".egg-info")
                or (Path(folder) == ROOT and n in top_level)]

    shutil.copytree(ROOT, source, ignore=ignore, symlinks=True)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "-q", "-w", str(tmp_path / "dist"), str(source)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wheel, = (tmp_path / "dist").glob("htaf-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    modules = {p.relative_to(PACKAGE.parent).as_posix() for p in _sources()}
    assert modules <= names, sorted(modules - names)
    assert {"htaf/py.typed", "htaf/benchmarks/snn_libs_cpu_idle.json"} <= names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not any(n.startswith(("tests/", "book/", "benchmarks/", "results/")) for n in names)
    assert "Requires-Dist: matplotlib" in metadata and "Provides-Extra: data" in metadata
    assert "Requires-Python: >=3.10" in metadata and "Project-URL: Documentation, " in metadata


# ---------------------------------------------------------------------------- Binder


def test_binder_installs_the_pinned_requirements_with_cpu_torch():
    binder = ROOT / "binder"
    lines = [line.strip() for line in (binder / "requirements.txt").read_text(encoding="utf-8").splitlines()]
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    assert "-r ../requirements.txt" in lines  # the book's pins, not a copy that drifts
    pins, cpu = _pins(ROOT / "requirements.txt"), _pins(binder / "requirements.txt")
    for name in ("torch", "torchvision"):
        assert cpu[name] == f"{pins[name]}+cpu", f"binder pins {name} {cpu[name]}, requirements.txt {pins[name]}"
    runtime = (binder / "runtime.txt").read_text(encoding="utf-8").strip()
    assert re.fullmatch(r"python-3\.\d+", runtime) and tuple(map(int, runtime[7:].split("."))) >= _minimum_python()
    post_build = (binder / "postBuild").read_text(encoding="utf-8")
    assert post_build.startswith("#!") and "pip install --no-deps -e ." in post_build
    assert (binder / "postBuild").stat().st_mode & 0o111, "postBuild must be executable"
    assert not (ROOT / "postBuild").exists(), "Binder reads binder/ only when it exists: keep one postBuild"


def test_the_environment_has_a_jupyter_front_end():
    pins = _pins(ROOT / "requirements.txt")
    assert "jupyterlab" in pins and "ipywidgets" in pins  # the chapters open in JupyterLab, progress bars render
