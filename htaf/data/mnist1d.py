r"""``mnist1d``: MNIST-1D (Greydanus 2020), generated offline by the ``mnist1d`` package.

MNIST-1D turns ten hand-made 1-D templates (one per digit, 12 points each) into 40-point signals by
random padding, dilation, scaling, translation, correlated and i.i.d. noise and shear, then standardises
the whole set. Its authors report test accuracies of 32 % for logistic regression, 68 % for an MLP, 94 % for
a CNN and 91 % for a GRU on the published set (4000 training, 1000 test samples): unlike MNIST it
separates linear from non-linear models and models with from models without a spatial inductive bias.

We call the package's own generator (``mnist1d.data.make_dataset``) with its published arguments
(``mnist1d.data.get_dataset_args``: 5000 samples, 80 % for training, seed 42), never its download path, so
nothing is fetched. The generator draws from NumPy's and Python's global random states; they are saved
before and restored after, so loading the data changes no other random stream. ``n_train``, ``n_test``
and ``seed`` may differ from the published values (a different split of a differently sized set).

Samples are float32 ``(1, 40)`` (one channel, for 1-D convolutions; the MLPs flatten it), labels int64.

>>> x, y = generate("test")  # doctest: +SKIP
>>> tuple(x.shape), tuple(y.shape)  # doctest: +SKIP
((1000, 1, 40), (1000,))
"""

from __future__ import annotations

import functools
import random
from typing import Any

import numpy as np
import torch

from htaf._extras import require

__all__ = ["DEFAULTS", "LENGTH", "NUM_CLASSES", "check_kwargs", "generate", "PACKAGE_HINT"]

#: the published set: 4000 training and 1000 test samples from seed 42
DEFAULTS: dict[str, Any] = {"n_train": 4000, "n_test": 1000, "seed": 42}
LENGTH = 40
NUM_CLASSES = 10
#: a dependency of htaf (the book pins 0.0.2.post1 in requirements.txt)
PACKAGE_HINT = "pip install mnist1d==0.0.2.post1 (pinned in requirements.txt)"


def check_kwargs(kwargs: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming a bad keyword, its value and the fix.

    >>> check_kwargs({"n_train": 0})
    Traceback (most recent call last):
    ...
    ValueError: mnist1d: n_train must be an integer >= 10 (one sample per class), got 0; fix: set data_kwargs['n_train'] to such a value
    """
    unknown = sorted(set(kwargs) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"mnist1d: unknown keyword(s) {', '.join(unknown)}; valid: {', '.join(DEFAULTS)}")
    minimum = {"n_train": (NUM_CLASSES, "one sample per class"), "n_test": (1, "at least one"),
               "seed": (0, "a non-negative seed")}
    for key, value in kwargs.items():
        low, why = minimum[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (key == "seed" and value >= 2**32):
            raise ValueError(f"mnist1d: {key} must be an integer >= {low} ({why}), got {value!r}; "
                             f"fix: set data_kwargs[{key!r}] to such a value")


def generate(split: str, n_train: int = DEFAULTS["n_train"], n_test: int = DEFAULTS["n_test"],
             seed: int = DEFAULTS["seed"]) -> tuple[torch.Tensor, torch.Tensor]:
    """One split: signals ``(n, 1, 40)`` (float32, standardised over the whole set) and labels ``(n,)``."""
    if split not in ("train", "test"):
        raise ValueError(f"mnist1d: unknown split {split!r}; choose 'train' or 'test'")
    check_kwargs({"n_train": n_train, "n_test": n_test, "seed": seed})
    require("mnist1d", "dataset 'mnist1d'")
    made = _make(n_train, n_test, seed)
    if split == "train":
        x, y = made["x"][:n_train], made["y"][:n_train]
    else:
        x, y = made["x_test"][:n_test], made["y_test"][:n_test]
    # copies: the generated set is cached and shared by both splits
    return (torch.from_numpy(np.array(x, dtype=np.float32)).unsqueeze(1), torch.from_numpy(np.array(y, dtype=np.int64)))


@functools.lru_cache(maxsize=2)
def _make(n_train: int, n_test: int, seed: int) -> dict[str, Any]:
    """The whole generated set (both splits come from one call of the generator), once per process: generating
    it takes seconds and a run reads both splits."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    total = n_train + n_test
    # make_dataset draws total // 10 samples per class and splits at int(total * train_split)
    total_drawn = NUM_CLASSES * -(-total // NUM_CLASSES)
    # (n_train + 0.5) / total_drawn: the split index is n_train whatever the rounding of the product
    args.num_samples, args.train_split, args.seed = total_drawn, (n_train + 0.5) / total_drawn, seed
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        return make_dataset(args)
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
