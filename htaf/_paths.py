"""Where ``results/`` and ``data/`` live when no argument or environment variable says.

The rule, used by :func:`htaf.results.results_root` and :func:`htaf.data.data_root`:

1. an explicit argument, else
2. the environment variable (``HTAF_RESULTS``, ``HTAF_DATA``), else
3. the folder of that name in the *project root*: the nearest folder, from the working directory
   upwards, that holds a Jupyter Book ``_toc.yml`` (so a chapter executed from ``book/experiments/``
   finds the repository's ``results/``), else the working directory itself.

Nothing is ever resolved next to the installed package (inside ``site-packages``).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["PROJECT_MARKER", "project_root", "resolve_folder"]

#: a file that marks the root of a book project
PROJECT_MARKER = "_toc.yml"


def project_root(start: str | os.PathLike | None = None) -> Path:
    """The nearest folder from ``start`` (default: the working directory) upwards holding
    :data:`PROJECT_MARKER`, else ``start`` itself."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / PROJECT_MARKER).is_file():
            return folder
    return here


def resolve_folder(explicit: str | os.PathLike | None, variable: str, name: str) -> Path:
    """``explicit``, else ``$variable``, else ``<project root>/<name>`` (see the module docstring).

    An empty ``explicit`` is refused (``ValueError``): it would silently mean the default folder. An empty
    ``$variable`` counts as unset.
    """
    if explicit is not None and not os.fspath(explicit):
        raise ValueError(f"the folder for {name} is an empty string; give a folder, or None for "
                         f"${variable} or <project root>/{name}")
    chosen = explicit or os.environ.get(variable)
    return Path(chosen) if chosen else project_root() / name
