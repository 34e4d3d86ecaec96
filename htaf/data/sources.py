"""Readers that turn files on disk into in-memory tensors.

Every reader returns ``(images, labels)``: images as uint8 ``(N, C, H, W)`` and
labels as int64 ``(N,)``. Whole datasets are loaded at once: MNIST is 47 MB,
which is cheaper than any per-sample transform pipeline on a 2-core machine.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from htaf._errors import PicklableError
from htaf._extras import require

TORCHVISION_CLASSES = {
    "mnist": "MNIST",
    "fashion_mnist": "FashionMNIST",
    "cifar10": "CIFAR10",
    "cifar100": "CIFAR100",
}
EXPECTED_FILES = {
    "mnist": "MNIST/raw/train-images-idx3-ubyte (and the other three IDX files)",
    "fashion_mnist": "FashionMNIST/raw/train-images-idx3-ubyte (and the other three IDX files)",
    "cifar10": "cifar-10-batches-py/data_batch_1 ... data_batch_5, test_batch",
    "cifar100": "cifar-100-python/train, cifar-100-python/test",
    "cifar10_subset": "cifar10-subset/cifar10_subset.npz (x_train, y_train, x_test, y_test)",
}
DIGITS_TRAIN_SIZE = 1440
#: IDX type code -> bytes per item (unsigned byte, signed byte, short, int, float, double)
IDX_ITEM_BYTES = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}


class DatasetError(PicklableError, OSError):
    """A dataset that cannot be read: absent (:class:`DatasetNotFoundError`) or damaged (:class:`DatasetCorruptError`)."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A dataset is absent under the data root and could not be downloaded."""

    def __init__(self, name: str, root: Path, reason: str):
        super().__init__(
            f"dataset {name!r} not found under {root} ({reason}).\n"
            f"Expected layout: {root}/{EXPECTED_FILES[name]}.\n"
            "Fix: set HTAF_DATA to a folder holding it in that layout (such as an offline copy), "
            "or run once with internet access (and HTAF_DOWNLOAD unset) "
            "so that torchvision downloads it."
        )
        self.name = name
        self.root = root


class DatasetCorruptError(DatasetError):
    """A dataset file exists but is damaged (truncated, wrong size or checksum, unreadable); ``path`` names it."""

    def __init__(self, name: str, path: Path, reason: str):
        super().__init__(f"dataset {name!r} is damaged: {path} {reason}; delete or replace that file")
        self.name = name
        self.path = Path(path)


def downloads_allowed() -> bool:
    """False when ``HTAF_DOWNLOAD=0``: never touch the network."""
    return os.environ.get("HTAF_DOWNLOAD", "1") != "0"


def read_torchvision(name: str, split: str, root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Read MNIST, Fashion-MNIST, CIFAR-10 or CIFAR-100 with torchvision.

    Downloads when the files are absent and downloads are allowed. A file that is present but damaged
    raises :class:`DatasetCorruptError` naming it (and nothing is downloaded); any other failure becomes a
    :class:`DatasetNotFoundError` that explains the expected layout. Without torchvision:
    :class:`htaf._extras.MissingDependencyError`.
    """
    require("torchvision", f"dataset {name!r}")
    import torchvision.datasets

    dataset_class = getattr(torchvision.datasets, TORCHVISION_CLASSES[name])
    train = split == "train"
    try:
        dataset = dataset_class(str(root), train=train, download=False)
    except Exception as missing:  # torchvision raises RuntimeError, but also ValueError etc. on bad files
        damaged = find_damaged_file(name, root)
        if damaged is not None:
            raise DatasetCorruptError(name, *damaged) from missing
        if not downloads_allowed():
            raise DatasetNotFoundError(name, root, "downloads disabled by HTAF_DOWNLOAD=0") from missing
        try:
            dataset = dataset_class(str(root), train=train, download=True)
        except (OSError, RuntimeError) as offline:
            raise DatasetNotFoundError(name, root, f"download failed: {offline}") from offline
    images = torch.as_tensor(np.asarray(dataset.data))
    images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)
    labels = torch.as_tensor(np.asarray(dataset.targets), dtype=torch.int64)
    return images.contiguous(), labels


def find_damaged_file(name: str, root: Path) -> tuple[Path, str] | None:
    """The first present but damaged file of a torchvision dataset, and what is wrong; ``None`` if none.

    MNIST-style IDX files are checked against the size their header announces; CIFAR files against
    torchvision's MD5 checksums.
    """
    require("torchvision", f"dataset {name!r}")
    import torchvision.datasets
    from torchvision.datasets.utils import check_integrity

    dataset_class = getattr(torchvision.datasets, TORCHVISION_CLASSES[name])
    if hasattr(dataset_class, "resources"):  # MNIST, FashionMNIST: raw IDX files
        folder = Path(root) / dataset_class.__name__ / "raw"
        for url, _ in dataset_class.resources:
            path = folder / Path(url).name.removesuffix(".gz")
            problem = idx_problem(path) if path.is_file() else None
            if problem:
                return path, problem
        return None
    folder = Path(root) / dataset_class.base_folder
    for filename, md5 in [*dataset_class.train_list, *dataset_class.test_list]:
        path = folder / filename
        if path.is_file() and not check_integrity(str(path), md5):
            return path, "does not match its MD5 checksum (truncated or altered)"
    return None


def idx_problem(path: Path) -> str | None:
    """What is wrong with an IDX file (MNIST's format), or ``None`` when its size matches its header."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        header = fh.read(4)
        if len(header) < 4 or header[:2] != b"\0\0" or header[2] not in IDX_ITEM_BYTES:
            return "is not an IDX file (bad header)"
        ndim = header[3]
        dims = fh.read(4 * ndim)
    if len(dims) < 4 * ndim:
        return "is truncated (incomplete header)"
    expected = 4 + 4 * ndim + IDX_ITEM_BYTES[header[2]] * int(np.prod(np.frombuffer(dims, dtype=">u4")))
    if size != expected:
        return f"has {size} bytes where its header announces {expected} (truncated or altered)"
    return None


def read_cifar10_subset(split: str, root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Read the lossless CIFAR-10 subset (4000 train, 1000 test) from an npz file."""
    path = root / "cifar10-subset" / "cifar10_subset.npz"
    if not path.is_file():
        raise DatasetNotFoundError("cifar10_subset", root, f"no file {path}")
    try:
        with np.load(path, allow_pickle=False) as arrays:
            raw, raw_labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
    except KeyError as missing:
        raise DatasetCorruptError("cifar10_subset", path, f"lacks the array {missing}") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise DatasetCorruptError("cifar10_subset", path, f"cannot be read as npz ({error})") from None
    # the layout CIFAR-10 has: N x 32 x 32 x 3 bytes, N integer labels 0..9
    if raw.dtype != np.uint8 or raw.ndim != 4 or raw.shape[1:] != (32, 32, 3):
        raise DatasetCorruptError("cifar10_subset", path, f"holds x_{split} of shape {raw.shape} and dtype {raw.dtype}, "
                                                          "not N x 32 x 32 x 3 uint8 images")
    if raw_labels.ndim != 1 or len(raw_labels) != len(raw) or raw_labels.dtype.kind not in "iu":
        raise DatasetCorruptError("cifar10_subset", path, f"holds y_{split} of shape {raw_labels.shape} and dtype "
                                                          f"{raw_labels.dtype} for {len(raw)} images, not one integer "
                                                          "label per image")
    if len(raw_labels) and not (0 <= raw_labels.min() and raw_labels.max() <= 9):
        raise DatasetCorruptError("cifar10_subset", path, f"holds labels outside 0..9 in y_{split}")
    images = torch.from_numpy(raw).permute(0, 3, 1, 2).contiguous()
    return images, torch.from_numpy(raw_labels.astype(np.int64))


def read_digits(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's bundled 8x8 digits (1797 images, 0..16 scaled to 0..255).

    The split is fixed: a seed-0 permutation, first 1440 for training, 357 for test.
    """
    flat, target = _digits_table()
    order = np.random.default_rng(0).permutation(len(target))
    chosen = order[:DIGITS_TRAIN_SIZE] if split == "train" else order[DIGITS_TRAIN_SIZE:]
    images = np.round(flat.reshape(-1, 8, 8)[chosen] * (255.0 / 16.0)).astype(np.uint8)
    return torch.from_numpy(images).unsqueeze(1), torch.from_numpy(target[chosen].astype(np.int64))


@functools.lru_cache(maxsize=1)
def _digits_table() -> tuple[np.ndarray, np.ndarray]:
    """The pixels (1797 x 64, 0..16) and labels of scikit-learn's bundled digits, as ``load_digits`` returns them.

    Read straight from scikit-learn's ``datasets/data/digits.csv.gz``, as ``load_digits`` reads it: importing
    scikit-learn takes seconds, a large part of a short run. Read once per process (read-only arrays)."""
    spec = importlib.util.find_spec("sklearn")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            with gzip.open(path, mode="rt", encoding="utf-8") as file:
                table = np.loadtxt(file, delimiter=",")
            return _read_only(table[:, :-1]), _read_only(table[:, -1].astype(int))
    from sklearn.datasets import load_digits  # a layout this reader does not know

    bunch = load_digits()
    return _read_only(bunch.data), _read_only(bunch.target)


def _read_only(array: np.ndarray) -> np.ndarray:
    """``array``, no longer writable: the cached table is shared by every run of a process."""
    array.flags.writeable = False
    return array
