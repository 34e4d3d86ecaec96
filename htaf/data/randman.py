r"""``randman``: spike-timing classification on random smooth manifolds (after Zenke & Vogels 2021).

Zenke and Vogels ("The remarkable robustness of surrogate gradient learning for instilling complex
function in spiking neural networks", Neural Computation 33(4), 2021) built a synthetic task whose classes
live in the *timing* of input spikes, not in their counts: every class is a random smooth manifold of
dimension ``dim`` embedded in the space of firing times of ``channels`` input channels, and every
channel fires exactly once per sample. This module is our own implementation of that published
description (no code of theirs is used):

1. Class :math:`k` gets, for every input channel :math:`i` and every intrinsic coordinate
   :math:`d = 1..D`, a random smooth function on :math:`[0, 1]`,

   .. math:: g_{kid}(u) = \sum_{f=1}^{F} f^{-\alpha}\, a_{kidf} \sin\!\big(2\pi (f\, b_{kidf}\, u + c_{kidf})\big),
             \qquad a, b, c \sim U[0, 1],

   a random Fourier series whose spectrum decays as :math:`f^{-\alpha}` (``alpha``: the *smoothness*;
   :math:`F` is the first frequency with :math:`F^{-\alpha} < 10^{-3}`, at most 200).
2. The class's manifold is :math:`u \mapsto (\prod_d g_{k1d}(u_d), \dots, \prod_d g_{kMd}(u_d))`, for
   :math:`u \in [0, 1]^D`. Each coordinate is rescaled to :math:`[0, 1]` with its minimum and maximum over
   a fixed reference set of 2048 points of the manifold (so the rescaling depends on the seed only, not
   on the split or its size) and read as a firing time, a fraction of the window.
3. A sample of class :math:`k` draws :math:`u \sim U[0,1]^D`, adds Gaussian timing noise of standard
   deviation ``jitter`` (a fraction of the window) and bins the times into ``T`` steps: channel :math:`i`
   spikes once, at step :math:`\lfloor T\,\tau_i \rfloor` (clipped to the window). With ``spikes`` > 1
   every channel fires once on each of that many independent manifolds per class (spikes falling in one
   step merge into one).

A sample is a float tensor ``[T, channels]`` of zeros and ones with (for ``spikes=1``) exactly one spike
per channel: spike counts carry no information, only the times do. Difficulty dials: a larger manifold
dimension ``dim``, a rougher manifold (smaller ``alpha``), more ``jitter``, more ``classes``, fewer
``channels`` or fewer steps ``T`` all make the task harder.

Everything is a pure function of ``seed`` (no download, no global RNG): the manifolds depend on
``seed`` and the class only, so the training and test splits share them and differ in the points drawn.
Classes are balanced (their sizes differ by at most one) and the samples are shuffled.

>>> x, y = generate("train", n_train=20, channels=8, T=10)
>>> tuple(x.shape), tuple(y.shape), x.sum(dim=1).unique().tolist()
((20, 10, 8), (20,), [1.0])
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import torch

__all__ = ["DEFAULTS", "LIMITS", "check_kwargs", "generate", "spike_times"]

#: the keyword arguments of :func:`generate` and their defaults
DEFAULTS: dict[str, Any] = {
    "channels": 20,
    "classes": 10,
    "dim": 2,
    "T": 50,
    "alpha": 2.0,
    "jitter": 0.0,
    "spikes": 1,
    "n_train": 2000,
    "n_test": 1000,
    "seed": 0,
}
#: allowed ranges: ``key -> (kind, minimum, maximum, what a user should do)``
LIMITS: dict[str, tuple[str, float, float | None, str]] = {
    "channels": ("int", 1, 10_000, "the number of input channels (spike trains)"),
    "classes": ("int", 2, 1000, "the number of classes (manifolds); at least 2"),
    "dim": ("int", 1, 10, "the manifold dimension (1 is the easiest)"),
    "T": ("int", 1, 10_000, "the number of time steps of the window"),
    "alpha": ("float", 0.0, None, "the smoothness (spectral decay), a number greater than 0 (2 is smooth)"),
    "jitter": ("float", 0.0, 1.0, "the timing noise as a fraction of the window, 0 for none"),
    "spikes": ("int", 1, 100, "the number of spikes per channel (independent manifolds per class)"),
    "n_train": ("int", 1, None, "the number of training samples"),
    "n_test": ("int", 1, None, "the number of test samples"),
    "seed": ("int", 0, 2**32 - 1, "a seed (non-negative integer)"),
}
REFERENCE_POINTS = 2048
SPECTRUM_PRECISION = 1e-3
MAX_FREQUENCIES = 200
SPLITS = ("train", "test")


def check_kwargs(kwargs: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming the first bad keyword, its value, the allowed range and the fix.

    >>> check_kwargs({"dim": 0})
    Traceback (most recent call last):
    ...
    ValueError: randman: dim must be an integer from 1 to 10 (the manifold dimension (1 is the easiest)), got 0; fix: set data_kwargs['dim'] to such a value
    """
    unknown = sorted(set(kwargs) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"randman: unknown keyword(s) {', '.join(unknown)}; valid: {', '.join(DEFAULTS)}")
    for key, value in kwargs.items():
        kind, low, high, meaning = LIMITS[key]
        if kind == "int":
            ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
            ok = ok and value >= low and (high is None or value <= high)
            bound = f"an integer >= {low:g}" if high is None else f"an integer from {low:g} to {high:g}"
        else:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            ok = ok and (value > low if key == "alpha" else value >= low) and (high is None or value <= high)
            bound = (f"a finite number > {low:g}" if key == "alpha"
                     else f"a number from {low:g} to {high:g}" if high is not None else f"a number >= {low:g}")
        if not ok:
            raise ValueError(f"randman: {key} must be {bound} ({meaning}), got {value!r}; "
                             f"fix: set data_kwargs[{key!r}] to such a value")
    full = {**DEFAULTS, **kwargs}
    if full["n_train"] < full["classes"]:
        raise ValueError(f"randman: n_train ({full['n_train']}) is smaller than classes ({full['classes']}), so a "
                         "class would have no training sample; fix: raise n_train or lower classes")


def _frequencies(alpha: float) -> int:
    """Number of Fourier terms: the first ``F`` with ``F**-alpha < 1e-3``, at most 200."""
    return int(min(MAX_FREQUENCIES, math.ceil(SPECTRUM_PRECISION ** (-1.0 / alpha))))


def _manifold_params(seed: int, label: int, manifold: int, channels: int, dim: int, alpha: float):
    rng = np.random.default_rng([seed, 0, label, manifold])
    n_freq = _frequencies(alpha)
    a, b, c = rng.random((3, channels, dim, n_freq))
    weights = a * np.arange(1, n_freq + 1) ** -float(alpha)  # a_f f^-alpha
    freqs = b * np.arange(1, n_freq + 1)  # f b_f
    return weights, freqs, c


def _embed(points: np.ndarray, params) -> np.ndarray:
    """Manifold coordinates ``(n, channels)`` of intrinsic points ``(n, dim)``."""
    weights, freqs, phases = params
    out = np.ones((points.shape[0], weights.shape[0]))
    for d in range(points.shape[1]):
        # (n, 1, 1) * (channels, F) -> (n, channels, F), summed over the frequencies
        angle = 2.0 * np.pi * (points[:, d, None, None] * freqs[None, :, d] + phases[None, :, d])
        out *= np.einsum("ncf,cf->nc", np.sin(angle), weights[:, d])
    return out


@functools.lru_cache(maxsize=256)
def _reference_range(seed: int, label: int, manifold: int, channels: int, dim: int, alpha: float):
    """The minimum and maximum of each coordinate of a manifold over its reference points (read-only arrays).

    They depend on the seed and the manifold only, not on the split: kept once computed, the reference set's
    embedding (most of the work for splits of a few hundred samples per class) is not computed again for the other
    split or another size.
    """
    reference = np.random.default_rng([seed, 1, label]).random((REFERENCE_POINTS, dim))
    ref = _embed(reference, _manifold_params(seed, label, manifold, channels, dim, alpha))
    low, high = ref.min(axis=0), ref.max(axis=0)
    low.flags.writeable = high.flags.writeable = False
    return low, high


def spike_times(label: int, points: np.ndarray, *, channels: int = DEFAULTS["channels"], dim: int = DEFAULTS["dim"],
                alpha: float = DEFAULTS["alpha"], spikes: int = DEFAULTS["spikes"], seed: int = 0) -> np.ndarray:
    """Noise-free firing times in ``[0, 1]``, ``(n, spikes, channels)``, of class ``label`` at intrinsic ``points``."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, dim)
    out = np.empty((points.shape[0], spikes, channels))
    for m in range(spikes):
        params = _manifold_params(seed, label, m, channels, dim, alpha)
        low, high = _reference_range(int(seed), int(label), m, int(channels), int(dim), float(alpha))
        out[:, m] = np.clip((_embed(points, params) - low) / np.maximum(high - low, 1e-12), 0.0, 1.0)
    return out


def generate(split: str, *, channels: int = DEFAULTS["channels"], classes: int = DEFAULTS["classes"],
             dim: int = DEFAULTS["dim"], T: int = DEFAULTS["T"], alpha: float = DEFAULTS["alpha"],
             jitter: float = DEFAULTS["jitter"], spikes: int = DEFAULTS["spikes"], n_train: int = DEFAULTS["n_train"],
             n_test: int = DEFAULTS["n_test"], seed: int = DEFAULTS["seed"]) -> tuple[torch.Tensor, torch.Tensor]:
    """One split: spike trains ``(n, T, channels)`` (float32, 0/1) and labels ``(n,)`` (int64)."""
    if split not in SPLITS:
        raise ValueError(f"randman: unknown split {split!r}; choose one of {SPLITS}")
    check_kwargs(dict(channels=channels, classes=classes, dim=dim, T=T, alpha=alpha, jitter=jitter, spikes=spikes,
                      n_train=n_train, n_test=n_test, seed=seed))
    n = n_train if split == "train" else n_test
    part = 2 + SPLITS.index(split)
    sizes = [n // classes + (k < n % classes) for k in range(classes)]
    trains = np.zeros((n, T, channels), dtype=np.float32)
    labels = np.repeat(np.arange(classes), sizes)
    start = 0
    for k, size in enumerate(sizes):
        if size == 0:
            continue
        rng = np.random.default_rng([seed, part, k])
        times = spike_times(k, rng.random((size, dim)), channels=channels, dim=dim, alpha=alpha, spikes=spikes,
                            seed=seed)
        if jitter > 0:
            times = times + jitter * rng.standard_normal(times.shape)
        steps = np.clip(np.floor(times * T), 0, T - 1).astype(np.int64)  # (size, spikes, channels)
        rows = np.arange(start, start + size)[:, None, None]
        trains[rows, steps, np.arange(channels)[None, None, :]] = 1.0
        start += size
    order = np.random.default_rng([seed, part + 2]).permutation(n)
    return torch.from_numpy(trains[order]), torch.from_numpy(labels[order].astype(np.int64))
