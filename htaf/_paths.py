"""Where ``results/`` and ``data/`` live when no argument or environment variable says.

The rule, used by :func:`htaf.results.results_root` and :func:`htaf.data.data_root`:

1. an explicit argument, else
2. the environment variable (``HTAF_RESULTS``, ``HTAF_DATA``), else
3. inside a checkout of this project (the nearest folder, from the working directory upwards, that holds the
   book's ``_toc.yml`` next to the ``htaf/`` package, see :func:`find_project_root`): the folder of that name
   there, so a chapter executed from ``book/experiments/`` finds the repository's ``results/``; else
4. the folder of that name in htaf's user data folder (:func:`user_folder`, such as ``~/.local/share/htaf``), and
   the first time in a process that a folder is chosen this way, one line on stderr says which.

Any other Jupyter Book (a ``_toc.yml`` without the package beside it) is not this project: nothing is written
into it. Nothing is ever resolved next to the installed package (inside ``site-packages``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["PROJECT_MARKER", "PACKAGE_MARKER", "find_project_root", "project_root", "resolve_folder", "user_folder"]

#: the file that marks the root of the book
PROJECT_MARKER = "_toc.yml"
#: beside it, the package's own ``__init__.py``: together they mark a checkout of this project
PACKAGE_MARKER = Path("htaf") / "__init__.py"
#: the folders already announced on stderr by :func:`resolve_folder` (once per process each)
_ANNOUNCED: set[Path] = set()


def find_project_root(start: str | os.PathLike | None = None) -> Path | None:
    """The nearest folder from ``start`` (default: the working directory) upwards that holds
    :data:`PROJECT_MARKER` and :data:`PACKAGE_MARKER` (a checkout of this project), else ``None``."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / PROJECT_MARKER).is_file() and (folder / PACKAGE_MARKER).is_file():
            return folder
    return None


def project_root(start: str | os.PathLike | None = None) -> Path:
    """:func:`find_project_root`, else ``start`` (default: the working directory) itself."""
    found = find_project_root(start)
    return found if found is not None else Path(start or Path.cwd()).resolve()


def user_folder() -> Path:
    """htaf's per-user data folder, ``platformdirs.user_data_dir("htaf")``: ``$XDG_DATA_HOME/htaf`` (default
    ``~/.local/share/htaf``) on Linux, ``~/Library/Application Support/htaf`` on macOS, ``%LOCALAPPDATA%\\htaf`` on
    Windows."""
    import platformdirs

    return Path(platformdirs.user_data_dir("htaf", appauthor=False))


def resolve_folder(explicit: str | os.PathLike | None, variable: str, name: str) -> Path:
    """``explicit``, else ``$variable``, else ``<project root>/<name>`` in a checkout of this project, else
    ``<user folder>/<name>`` (see the module docstring).

    An empty ``explicit`` is refused (``ValueError``): it would silently mean the default folder. An empty
    ``$variable`` counts as unset.
    """
    if explicit is not None and not os.fspath(explicit):
        raise ValueError(f"the folder for {name} is an empty string; give a folder, or None for "
                         f"${variable} or the default {name}/ folder")
    chosen = explicit or os.environ.get(variable)
    if chosen:
        return Path(chosen)
    root = find_project_root()
    if root is not None:
        return root / name
    folder = user_folder() / name
    if folder not in _ANNOUNCED:
        _ANNOUNCED.add(folder)
        print(f"htaf: {name}/ is {folder} (outside a checkout of the htaf repository; choose another folder with "
              f"${variable})", file=sys.stderr, flush=True)
    return folder
