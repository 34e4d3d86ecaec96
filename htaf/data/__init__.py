"""Datasets as in-memory tensors, and the DataLoaders the training loop uses.

>>> train = load("digits", "train")
>>> x, y = train[0]
>>> tuple(x.shape), int(y) in range(10)
((1, 8, 8), True)
>>> describe("mnist")
DatasetInfo(name='mnist', input_shape=(1, 28, 28), num_outputs=10, task='classification')

Names: ``digits``, ``mnist``, ``fashion_mnist``, ``cifar10``, ``cifar100``,
``cifar10_subset``, ``concept_shapes`` and ``regression_<function>`` (see
:mod:`htaf.data.regression`). Files are looked up under ``$HTAF_DATA``, else
``data/`` in the project root (the nearest folder upwards from the working
directory holding a ``_toc.yml``, else the working directory).
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader, DistributedSampler, Sampler, TensorDataset

from htaf._paths import resolve_folder
from htaf.data import concept_shapes, regression
from htaf.data.sources import (
    DatasetCorruptError,
    DatasetError,
    DatasetNotFoundError,
    read_cifar10_subset,
    read_digits,
    read_torchvision,
)

__all__ = [
    "AttributeDataset",
    "DatasetCorruptError",
    "DatasetError",
    "DatasetInfo",
    "DatasetNotFoundError",
    "EpochBatchSampler",
    "available",
    "check_kwargs",
    "data_root",
    "describe",
    "get_loaders",
    "load",
]

IMAGE_DATASETS: dict[str, tuple[tuple[int, int, int], int]] = {
    "digits": ((1, 8, 8), 10),
    "mnist": ((1, 28, 28), 10),
    "fashion_mnist": ((1, 28, 28), 10),
    "cifar10": ((3, 32, 32), 10),
    "cifar100": ((3, 32, 32), 100),
    "cifar10_subset": ((3, 32, 32), 10),
}
SPLITS = ("train", "test")
#: the keyword arguments of ``concept_shapes`` and their defaults
CONCEPT_SHAPES_KWARGS: dict[str, Any] = {"n_train": 2000, "n_test": 500, "image_size": 24, "seed": 0,
                                         "label_rule": "xor"}


@dataclass(frozen=True)
class DatasetInfo:
    """What a model builder needs to know about a dataset, without loading it."""

    name: str
    input_shape: tuple[int, ...]
    num_outputs: int
    task: str  # 'classification' or 'regression'


class AttributeDataset(TensorDataset):
    """``(image, label)`` pairs that also carry ground-truth binary ``attributes`` ``(N, A)``.

    ``tensors`` holds images and labels; indexing returns ``(image, label, attributes)``, so its loaders
    yield ``(x, y, attributes)`` batches.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, attributes: torch.Tensor, attribute_names: tuple[str, ...]):
        super().__init__(images, labels)
        self.attributes = attributes
        self.attribute_names = attribute_names

    def __getitem__(self, index):
        return (*super().__getitem__(index), self.attributes[index])

    def head(self, n: int) -> "AttributeDataset":
        """The first ``n`` samples, attributes included."""
        images, labels = (tensor[:n] for tensor in self.tensors)
        return AttributeDataset(images, labels, self.attributes[:n], self.attribute_names)


def available() -> list[str]:
    """Dataset names accepted by :func:`load` (regression functions expanded)."""
    regressions = [f"regression_{name}" for name in regression.FUNCTIONS]
    return [*IMAGE_DATASETS, "concept_shapes", *regressions]


def data_root(root: str | os.PathLike | None = None) -> Path:
    """``root`` if given, else ``$HTAF_DATA``, else ``data/`` in the project root (see :mod:`htaf._paths`)."""
    return resolve_folder(root, "HTAF_DATA", "data")


def _kwarg_defaults(name: str) -> dict[str, Any]:
    """The keyword arguments dataset ``name`` accepts, with their defaults (image sets: ``normalise``)."""
    if name == "concept_shapes":
        return {**CONCEPT_SHAPES_KWARGS, "normalise": True}
    if name.startswith("regression_"):
        parameters = inspect.signature(regression.generate).parameters.values()
        return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}
    return {"normalise": True, "n_test": None}


def check_kwargs(name: str, kwargs: dict[str, Any]) -> None:
    """Check the keyword arguments of a generated dataset against its generator's signature.

    Sizes (``d``, ``n_train``, ``n_test``) must be integers >= 1, ``image_size`` >= 16, ``seed`` >= 0
    and ``noise`` a finite number >= 0; image datasets take ``normalise`` (a bool, see :func:`load`) and
    ``n_test`` (keep the first ``n_test`` test images: a cheaper score) only.

    >>> check_kwargs("regression_bump", {"d": 3, "noise": 0.2})
    >>> check_kwargs("mnist", {"normalise": False})
    >>> check_kwargs("mnist", {"d": 3})
    Traceback (most recent call last):
    ...
    ValueError: unknown data_kwargs d for dataset 'mnist'; valid: normalise, n_test
    """
    defaults = _kwarg_defaults(name)
    unknown = sorted(set(kwargs) - set(defaults))
    if unknown:
        raise ValueError(f"unknown data_kwargs {', '.join(unknown)} for dataset {name!r}; "
                         f"valid: {', '.join(defaults) or 'none'}")
    minimum = {"d": 1, "n_train": 1, "n_test": 1, "image_size": 16, "seed": 0}
    for key, value in kwargs.items():
        if key in minimum:
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum[key]:
                raise ValueError(f"data_kwargs {key!r} must be an integer >= {minimum[key]}, got {value!r}")
        elif key == "label_rule" and value not in concept_shapes.LABEL_RULES:
            raise ValueError(f"data_kwargs 'label_rule' must be one of {', '.join(concept_shapes.LABEL_RULES)}, "
                             f"got {value!r}")
        elif key == "normalise" and not isinstance(value, bool):
            raise ValueError(f"data_kwargs 'normalise' must be true or false, got {value!r}")
        elif key == "noise" and (isinstance(value, bool) or not isinstance(value, (int, float))
                                 or not math.isfinite(value) or value < 0):
            raise ValueError(f"data_kwargs 'noise' must be a finite number >= 0, got {value!r}")


def describe(name: str, **kwargs: Any) -> DatasetInfo:
    """Input shape, number of outputs and task of a dataset, from its name and kwargs."""
    if name in IMAGE_DATASETS:
        shape, classes = IMAGE_DATASETS[name]
        return DatasetInfo(name, shape, classes, "classification")
    if name == "concept_shapes":
        size = kwargs.get("image_size", CONCEPT_SHAPES_KWARGS["image_size"])
        rule = kwargs.get("label_rule", CONCEPT_SHAPES_KWARGS["label_rule"])
        return DatasetInfo(name, (3, size, size), concept_shapes.num_classes(rule), "classification")
    if name.startswith("regression_"):
        return DatasetInfo(name, (kwargs.get("d", 2),), 1, "regression")
    raise ValueError(f"unknown dataset {name!r}; available: {', '.join(available())}")


def load(name: str, split: str, root: str | os.PathLike | None = None, normalise: bool = True, **kwargs: Any) -> TensorDataset:
    """Load a whole split as a :class:`~torch.utils.data.TensorDataset` ``(inputs, targets)``.

    Images are float32 ``(N, C, H, W)``; with ``normalise`` each channel is
    standardised with the mean and std of the *training* split, otherwise
    scaled to ``[0, 1]``. ``kwargs`` configure generated datasets
    (``concept_shapes``: ``n_train``, ``n_test``, ``image_size``, ``seed``, ``label_rule``;
    ``regression_*``: ``d``, ``n_train``, ``n_test``, ``noise``, ``seed``).

    >>> len(load("concept_shapes", "test", n_test=10))
    10
    """
    describe(name, **kwargs)  # validates the name
    check_kwargs(name, kwargs)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    if name.startswith("regression_"):
        inputs, targets = regression.generate(name.removeprefix("regression_"), split, **kwargs)
        return TensorDataset(inputs, targets)
    n_test = kwargs.pop("n_test", None) if name in IMAGE_DATASETS else None
    frozen_kwargs = json.dumps(kwargs, sort_keys=True)
    root_key = str(data_root(root))
    images, labels, attributes = _images(name, split, root_key, frozen_kwargs)
    if split == "test" and n_test is not None:
        images, labels = images[:n_test], labels[:n_test]
    # The cache holds one copy per process: hand out new tensors, never the cached ones.
    if normalise:
        mean, std = _channel_stats(name, root_key, frozen_kwargs)
        images = (images - mean) / std
    else:
        images = images.clone()
    labels = labels.clone()
    if attributes is not None:
        return AttributeDataset(images, labels, attributes.clone(), concept_shapes.ATTRIBUTE_NAMES)
    return TensorDataset(images, labels)


@functools.lru_cache(maxsize=8)
def _images(name: str, split: str, root: str, frozen_kwargs: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Images in [0, 1], labels and (for ``concept_shapes``) attributes; cached per process."""
    if name == "concept_shapes":
        kwargs = {**CONCEPT_SHAPES_KWARGS, **json.loads(frozen_kwargs)}
        sample = concept_shapes.generate(kwargs[f"n_{split}"], seed=2 * kwargs["seed"] + SPLITS.index(split),
                                         image_size=kwargs["image_size"], label_rule=kwargs["label_rule"])
        return sample.images, sample.labels, sample.attributes
    if name == "digits":
        raw, labels = read_digits(split)
    elif name == "cifar10_subset":
        raw, labels = read_cifar10_subset(split, Path(root))
    else:
        raw, labels = read_torchvision(name, split, Path(root))
    return raw.float().div_(255.0), labels, None


@functools.lru_cache(maxsize=8)
def _channel_stats(name: str, root: str, frozen_kwargs: str) -> tuple[torch.Tensor, torch.Tensor]:
    images = _images(name, "train", root, frozen_kwargs)[0]
    mean = images.mean(dim=(0, 2, 3), keepdim=True)[0]
    std = images.std(dim=(0, 2, 3), keepdim=True)[0].clamp_min(1e-6)
    return mean, std


class EpochBatchSampler(Sampler[list[int]]):
    """Yields index batches of a seeded per-epoch shuffle, sharded across ranks.

    The permutation depends only on ``(seed, epoch)``, so a resumed run sees the
    same batches as an uninterrupted one. With ``world_size`` ranks, rank ``r``
    takes every ``world_size``-th index, so the union of the ranks' ``k``-th
    batches is the ``k``-th global batch of a single-process run, except that,
    as with :class:`~torch.utils.data.DistributedSampler`, a training set whose
    size is not a multiple of ``world_size`` is padded by repeating up to
    ``world_size - 1`` indices (all ranks must see the same number of batches).
    """

    def __init__(self, dataset: TensorDataset, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        self.shards = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
        self.batch_size = batch_size

    def set_epoch(self, epoch: int) -> None:
        self.shards.set_epoch(epoch)

    def __iter__(self) -> Iterator[list[int]]:
        indices = list(self.shards)
        for start in range(0, len(indices), self.batch_size):
            yield indices[start : start + self.batch_size]

    def __len__(self) -> int:
        return -(-len(self.shards) // self.batch_size)


def get_loaders(config: dict[str, Any], rank: int = 0, world_size: int = 1) -> tuple[DataLoader, DataLoader]:
    """Train and test loaders for a run config.

    Uses ``dataset``, ``batch_size`` (global, split evenly across ranks),
    ``seed``, optional ``subset`` (train on the first N samples) and optional
    ``data_kwargs``. Batches are gathered by tensor indexing (no per-sample
    collation), in the main process. Batches are ``(x, y)``, or
    ``(x, y, attributes)`` for an :class:`AttributeDataset`.

    >>> train, test = get_loaders({"dataset": "digits", "batch_size": 32, "seed": 0})
    >>> x, y = next(iter(train))
    >>> tuple(x.shape), tuple(y.shape)
    ((32, 1, 8, 8), (32,))
    """
    batch_size = config["batch_size"]
    if batch_size % world_size:
        raise ValueError(f"batch_size {batch_size} is not divisible by the world size {world_size}")
    data_kwargs = config.get("data_kwargs") or {}
    train = load(config["dataset"], "train", **data_kwargs)
    test = load(config["dataset"], "test", **data_kwargs)
    subset = config.get("subset")
    if subset is not None:
        if isinstance(subset, bool) or not isinstance(subset, int) or subset < 1:
            raise ValueError(f"subset must be a number of samples >= 1 (or None for all), got {subset!r}")
        train = train.head(subset) if isinstance(train, AttributeDataset) else TensorDataset(
            *(tensor[:subset] for tensor in train.tensors))
    sampler = EpochBatchSampler(train, batch_size // world_size, config["seed"], rank, world_size)
    train_loader = DataLoader(train, batch_size=None, sampler=sampler)
    test_batches = [list(range(i, min(i + batch_size, len(test)))) for i in range(0, len(test), batch_size)]
    test_loader = DataLoader(test, batch_size=None, sampler=test_batches)
    return train_loader, test_loader
