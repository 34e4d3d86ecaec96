"""The base every exception class of the package builds on: it survives pickling.

A worker process (``python -m htaf reproduce --jobs``, a Dask cluster) reports an exception to its parent by pickling
it. Python pickles an exception as its class and ``args``, which for a class whose constructor takes other arguments
than its message (``DatasetNotFoundError(name, root, reason)``) fails in the parent and hides the error. This mixin
records the arguments the outermost constructor was called with and rebuilds the exception from them.

>>> import pickle
>>> from htaf.engine import UnknownChoiceError
>>> error = pickle.loads(pickle.dumps(UnknownChoiceError("profile", "cpus", ["smoke", "cpu", "gpu"])))
>>> str(error), error.value
("unknown profile 'cpus'; valid choices: smoke, cpu, gpu", 'cpus')
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["PicklableError"]


def _rebuild(cls: type, args: tuple, kwargs: dict[str, Any]) -> BaseException:
    return cls(*args, **kwargs)


class PicklableError:
    """Mixin, listed before the built-in exception base: an exception whose class defines its own ``__init__`` is
    pickled as its class and the arguments it was constructed with, so any constructor signature round-trips (the
    others pickle as Python pickles any exception)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return

        @functools.wraps(init)
        def recording_init(self, *args: Any, **kw: Any) -> None:
            if "_made_with" not in self.__dict__:  # the outermost constructor's arguments, not a base class's
                self._made_with = (args, kw)
            init(self, *args, **kw)

        cls.__init__ = recording_init

    def __reduce__(self):
        made = self.__dict__.get("_made_with")
        if made is None:
            return super().__reduce__()
        return _rebuild, (type(self), *made)
