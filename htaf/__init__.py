"""htaf: HTAF, a sigmoid-tanh composite approximation of the Heaviside step, for learning binary units.

``HTAF_{alpha,beta}(x) = sigmoid(alpha * tanh(beta * x))``. Modules follow PyTorch's split:

* :mod:`htaf.functional`: ``htaf``, ``htaf_grad``, ``htaf_sign``, ``heaviside``, ``sign``, ``spike``, ``sign_spike``
* :mod:`htaf.nn`: ``HTAF``, ``Spike``, ``Smooth``, ``use_mode``, ``make_unit``
* :mod:`htaf.surrogates`: the surrogate-gradient zoo (``get``, ``available``)
* :mod:`htaf.theory`: SymPy forms, gradient mass and tail mass of every surrogate
* :mod:`htaf.plotting`: one style per method for every figure, the notebook set-up
* :mod:`htaf.metrics`: firing rates, switch gaps, gradient norms, sign flips
* :mod:`htaf.stats`: ahead, tied or behind, judged from the spread over seeds
* :mod:`htaf.benchmarks`: the measured benchmark results the book quotes (``load("snn_libs_cpu_idle")``)
* :mod:`htaf.data`, :mod:`htaf.engine`, :mod:`htaf.experiments`, :mod:`htaf.results`, :mod:`htaf.reproduction`,
  :func:`htaf.run`, :func:`htaf.sweep`, :func:`htaf.reproduce`: the experiment engine behind every chapter of the book

``import htaf`` loads only torch and the first three modules; the others (and pandas, SymPy, SciPy,
matplotlib, the experiment registry) load on first use.
"""

__version__ = "0.1.0"

import importlib

from . import functional, nn, surrogates  # noqa: E402

__all__ = [
    "functional", "nn", "surrogates", "theory", "plotting", "metrics", "stats", "data", "experiments", "results",
    "benchmarks", "memory", "run", "sweep", "reproduce", "__version__",
]

_LAZY_MODULES = {
    "theory", "plotting", "metrics", "stats", "data", "experiments", "results", "train", "models", "distributed",
    "engine", "reproduction", "benchmarks", "memory",
}
_LAZY_FUNCTIONS = {"run": "train", "sweep": "train", "reproduce": "reproduction"}


def __getattr__(name: str):
    if name in _LAZY_MODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _LAZY_FUNCTIONS:
        return getattr(importlib.import_module(f".{_LAZY_FUNCTIONS[name]}", __name__), name)
    raise AttributeError(f"module 'htaf' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
