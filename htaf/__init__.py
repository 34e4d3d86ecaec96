"""htaf: HTAF, a sigmoid-tanh composite approximation of the Heaviside step, for learning binary units.

``HTAF_{alpha,beta}(x) = sigmoid(alpha * tanh(beta * x))``. Modules follow PyTorch's split:

* :mod:`htaf.functional`: ``htaf``, ``htaf_grad``, ``htaf_sign``, ``heaviside``, ``sign``, ``spike``, ``sign_spike``
* :mod:`htaf.nn`: ``HTAF``, ``Spike``, ``use_mode``
* :mod:`htaf.surrogates`: the surrogate-gradient zoo (``get``, ``available``)
* :mod:`htaf.theory`: SymPy forms, gradient mass and tail mass of every surrogate (imported on first use)
* :mod:`htaf.plotting`: one style per method for every figure, the notebook set-up (imported on first use)
* :mod:`htaf.data`, :mod:`htaf.experiments`, :mod:`htaf.results`, :func:`htaf.run`, :func:`htaf.sweep`:
  the experiment engine behind every chapter of the book
"""

__version__ = "0.1.0"

from . import functional, nn, surrogates  # noqa: E402
from . import data, experiments, results  # noqa: E402
from .train import run, sweep  # noqa: E402

__all__ = [
    "functional", "nn", "surrogates", "theory", "plotting", "data", "experiments", "results", "run", "sweep",
    "__version__",
]


def __getattr__(name: str):
    # htaf.theory needs SymPy and SciPy (about a second to import), htaf.plotting matplotlib: load on first use.
    if name in ("theory", "plotting"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'htaf' has no attribute {name!r}")
