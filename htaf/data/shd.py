r"""``shd``: the Spiking Heidelberg Digits (Cramer et al. 2020) through ``tonic``, as dense spike trains.

SHD is spoken digits (0-9 in English and German: 20 classes, 8156 training and 2264 test recordings)
converted into spikes of 700 channels by a model of the cochlea. Its authors report about 70-80 % test
accuracy for feed-forward SNNs and up to about 90 % for recurrent networks of adaptive LIF neurons.

The files are read with `tonic <https://tonic.readthedocs.io>`_ (an optional dependency:
``pip install 'htaf[shd]'``), which keeps them under ``<data root>/SHD/`` as ``shd_train.h5.zip``,
``shd_test.h5.zip`` and the extracted ``shd_train.h5``, ``shd_test.h5``. Each recording's events
(time, channel) are binned into ``T`` steps over the first ``max_time`` seconds (later events are dropped;
several spikes of a channel in one step count once): a sample is a float tensor ``[T, 700]`` of zeros and
ones, the input :class:`htaf.models.snn.SpikeInput` takes.

Without the files and without a way to download them (``HTAF_DOWNLOAD=0``, or no network) loading raises
:class:`htaf.data.DatasetNotFoundError`, naming the expected layout and ``HTAF_DATA``; nothing else
(tonic is not needed to find out that the files are absent).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from htaf._extras import MissingDependencyError
from htaf.data.sources import DatasetError, DatasetNotFoundError, downloads_allowed

__all__ = ["CHANNELS", "DEFAULTS", "NUM_CLASSES", "SHDNotFoundError", "check_kwargs", "expected_files", "read"]

CHANNELS = 700
NUM_CLASSES = 20
DEFAULTS: dict[str, Any] = {"T": 100, "max_time": 1.0}
FOLDER = "SHD"
INSTALL_HINT = "pip install 'htaf[shd]'"


class SHDNotFoundError(DatasetNotFoundError):
    """SHD is absent under the data root and could not be downloaded (a :class:`DatasetNotFoundError`)."""

    def __init__(self, root: Path, reason: str):
        DatasetError.__init__(
            self,
            f"dataset 'shd' not found under {root} ({reason}).\n"
            f"Expected layout: {root}/{FOLDER}/shd_train.h5 and shd_test.h5, each beside its zip file "
            "(shd_train.h5.zip, shd_test.h5.zip), as tonic stores them.\n"
            "Fix: set HTAF_DATA to a folder holding them in that layout (such as an offline copy), or install "
            f"tonic ({INSTALL_HINT}) and run once with internet access (and HTAF_DOWNLOAD unset) so that tonic "
            "downloads them from zenkelab.org.",
        )
        self.name = "shd"
        self.root = Path(root)


def check_kwargs(kwargs: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming a bad keyword (``T``: integer >= 1, ``max_time``: seconds > 0) and the fix."""
    unknown = sorted(set(kwargs) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"shd: unknown keyword(s) {', '.join(unknown)}; valid: {', '.join(DEFAULTS)}")
    T = kwargs.get("T", DEFAULTS["T"])
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"shd: T must be an integer >= 1 (time steps), got {T!r}; fix: set data_kwargs['T']")
    limit = kwargs.get("max_time", DEFAULTS["max_time"])
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not math.isfinite(limit) or limit <= 0:
        raise ValueError(f"shd: max_time must be a number of seconds > 0, got {limit!r}; "
                         "fix: set data_kwargs['max_time']")


def expected_files(root: Path, split: str) -> list[Path]:
    """The files tonic needs for ``split``: the zip it downloaded and the extracted HDF5 file."""
    folder = Path(root) / FOLDER
    return [folder / f"shd_{split}.h5.zip", folder / f"shd_{split}.h5"]


def read(split: str, root: Path, T: int = DEFAULTS["T"], max_time: float = DEFAULTS["max_time"]
         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Spike trains ``(n, T, 700)`` (float32, 0/1) and labels ``(n,)`` of one split."""
    check_kwargs({"T": T, "max_time": max_time})
    root = Path(root)
    present = all(path.is_file() for path in expected_files(root, split))
    if not present and not downloads_allowed():
        raise SHDNotFoundError(root, "downloads disabled by HTAF_DOWNLOAD=0")
    try:
        import tonic
    except ImportError:
        if present:
            raise MissingDependencyError("tonic", "dataset 'shd'") from None
        raise SHDNotFoundError(root, f"files absent, and tonic, which downloads them, is not installed: "
                                     f"{INSTALL_HINT}") from None
    try:
        dataset = tonic.datasets.SHD(str(root), train=split == "train")
    except Exception as error:  # tonic's download: URLError, HTTPError, OSError, RuntimeError, ...
        raise SHDNotFoundError(root, f"download failed: {type(error).__name__}: {error}") from error
    trains = np.zeros((len(dataset), T, CHANNELS), dtype=np.float32)
    labels = np.zeros(len(dataset), dtype=np.int64)
    window_us = max_time * 1e6
    for i in range(len(dataset)):
        events, label = dataset[i]
        keep = events["t"] < window_us
        steps = np.floor(events["t"][keep] / window_us * T).astype(np.int64)
        trains[i, steps, events["x"][keep]] = 1.0
        labels[i] = int(label)
    return torch.from_numpy(trains), torch.from_numpy(labels)
