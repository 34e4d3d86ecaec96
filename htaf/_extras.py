"""Optional dependencies: a missing one fails with one line that names the package and how to install it.

The extras of ``pyproject.toml`` (``pip install 'htaf[<extra>]'``): ``data`` (torchvision: MNIST,
Fashion-MNIST, CIFAR and the ICBM's ResNet-18), ``shd`` (tonic: the Spiking Heidelberg Digits) and ``compare``
(snnTorch and SpikingJelly, for the interop tests and benchmarks). :func:`require` checks that a module can be
imported without importing it, so a run checks its dependencies before any data loads.

>>> require("json", "this example")
>>> INSTALL["torchvision"]
"pip install 'htaf[data]'"
"""

from __future__ import annotations

import importlib.util
import sys

from htaf._errors import PicklableError

__all__ = ["INSTALL", "MissingDependencyError", "available", "cxx_compiler", "require"]

#: module -> the command that installs it
INSTALL: dict[str, str] = {
    "torchvision": "pip install 'htaf[data]'",
    "tonic": "pip install 'htaf[shd]'",
    "mnist1d": "pip install mnist1d",  # a core dependency of htaf: missing only from a partial installation
    "snntorch": "pip install --no-deps snntorch==1.0.0",
    "spikingjelly": "pip install --no-deps spikingjelly==2.0.0 loguru==0.7.3",
}


def cxx_compiler() -> str | None:
    """The path of the C++ compiler that htaf's compiled parts use (``torch.compile``'s LIF kernels,
    :mod:`htaf.memory`'s allocator): ``$CXX`` if set and found, else the first of ``g++``, ``c++``, ``clang++`` on the
    ``PATH``; ``None`` when there is none."""
    import os
    import shutil

    return next(filter(None, map(shutil.which, (os.environ.get("CXX", "g++"), "g++", "c++", "clang++"))), None)


class MissingDependencyError(PicklableError, ImportError):
    """An optional package that a dataset, model or helper needs is not installed; the message is one line:
    ``<what> needs <package>: <install command>``."""

    def __init__(self, module: str, needed_by: str):
        super().__init__(f"{needed_by} needs {module}: {INSTALL.get(module, f'pip install {module}')}", name=module)
        self.module, self.needed_by = module, needed_by


def available(module: str) -> bool:
    """Whether ``module`` can be imported (found on the path, or already imported), without importing it."""
    if module in sys.modules:
        return sys.modules[module] is not None  # None: an import that is known to fail (as tests simulate)
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(module: str, needed_by: str) -> None:
    """Raise :class:`MissingDependencyError` unless ``module`` can be imported; ``needed_by`` names what needs it
    (``"dataset 'mnist'"``)."""
    if not available(module):
        raise MissingDependencyError(module, needed_by)
