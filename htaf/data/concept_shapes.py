"""``concept_shapes``: procedurally generated images with ground-truth binary concepts.

Each image shows one shape on a dark background. Six independent, fair binary
attributes decide how it is drawn:

========== ==================================== =====================
attribute  1                                    0
========== ==================================== =====================
round      circle                               square
red        red                                  blue
large      radius ``0.2 * size``                radius ``0.125 * size``
left       centre in the left half              centre in the right half
top        centre in the top half               centre in the bottom half
striped    horizontal stripes (every 2 rows)    solid
========== ==================================== =====================

The class is a rule over the attributes (see :data:`CLASS_RULES`)::

    label = 2 * (red XOR (large AND left)) + (round XOR striped)

so ``top`` is a nuisance concept that never matters for the label, and no
attribute is needed on its own (``round`` and ``striped`` only through their
XOR). The ICBM chapter checks whether learned binary features recover these
concepts. With ``label_rule="all"`` the label is instead the attribute vector
read as a 6-bit number (64 classes), so every attribute is needed individually;
a linear map of the six true attributes still predicts it exactly (the class
with the smallest Hamming distance).

Everything is a pure function of ``seed``: no download, no global RNG.

>>> sample = generate(8, seed=0)
>>> sample.images.shape, sample.attributes.shape, sample.labels.shape
(torch.Size([8, 3, 24, 24]), torch.Size([8, 6]), torch.Size([8]))
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

ATTRIBUTE_NAMES: tuple[str, ...] = ("round", "red", "large", "left", "top", "striped")
CLASS_RULES: dict[str, str] = {
    "bit 0": "round XOR striped",
    "bit 1": "red XOR (large AND left)",
}
NUM_CLASSES = 4
#: how a label is made from the attributes: ``"xor"`` (:data:`CLASS_RULES`, 4 classes) or ``"all"``
#: (the six attributes as a binary number, 64 classes)
LABEL_RULES: dict[str, int] = {"xor": NUM_CLASSES, "all": 2 ** len(ATTRIBUTE_NAMES)}
RED = np.array([0.9, 0.15, 0.15], dtype=np.float32)
BLUE = np.array([0.15, 0.3, 0.9], dtype=np.float32)
STRIPE_DIMMING = 0.4
NOISE_STD = 0.02


class ConceptShapes(NamedTuple):
    """Images in [0, 1] ``(N, 3, S, S)``, attributes ``(N, 6)`` in {0, 1}, labels ``(N,)``."""

    images: torch.Tensor
    attributes: torch.Tensor
    labels: torch.Tensor


def num_classes(label_rule: str = "xor") -> int:
    """The number of classes under ``label_rule`` (see :data:`LABEL_RULES`).

    >>> num_classes("xor"), num_classes("all")
    (4, 64)
    """
    if label_rule not in LABEL_RULES:
        raise ValueError(f"unknown label_rule {label_rule!r}; valid: {', '.join(LABEL_RULES)}")
    return LABEL_RULES[label_rule]


def labels_from_attributes(attributes: np.ndarray, label_rule: str = "xor") -> np.ndarray:
    """Apply :data:`CLASS_RULES` (``"xor"``) or the 6-bit code (``"all"``) to an ``(N, 6)`` 0/1 attribute array.

    >>> labels_from_attributes(np.array([[1, 1, 1, 1, 0, 0]])).tolist()
    [1]
    >>> labels_from_attributes(np.array([[1, 1, 1, 1, 0, 0]]), "all").tolist()
    [60]
    """
    num_classes(label_rule)
    if label_rule == "all":
        weights = 2 ** np.arange(len(ATTRIBUTE_NAMES))[::-1]
        return (attributes.astype(np.int64) @ weights).astype(np.int64)
    a = {name: attributes[:, i].astype(bool) for i, name in enumerate(ATTRIBUTE_NAMES)}
    bit0 = a["round"] ^ a["striped"]
    bit1 = a["red"] ^ (a["large"] & a["left"])
    return (2 * bit1 + bit0).astype(np.int64)


def generate(n: int, seed: int = 0, image_size: int = 24, label_rule: str = "xor") -> ConceptShapes:
    """Draw ``n`` images, their attributes and labels (under ``label_rule``), deterministically from ``seed``.

    The images and attributes do not depend on ``label_rule``.
    """
    num_classes(label_rule)
    if image_size < 16:
        raise ValueError(f"concept_shapes needs image_size >= 16, got {image_size}")
    rng = np.random.default_rng(seed)
    attributes = rng.integers(0, 2, size=(n, len(ATTRIBUTE_NAMES)), dtype=np.int64)
    a = {name: attributes[:, i].astype(bool) for i, name in enumerate(ATTRIBUTE_NAMES)}
    size = float(image_size)
    jitter = rng.uniform(-size / 24, size / 24, size=(n, 2))
    centre_x = np.where(a["left"], size / 4, 3 * size / 4) + jitter[:, 0]
    centre_y = np.where(a["top"], size / 4, 3 * size / 4) + jitter[:, 1]
    radius = np.where(a["large"], 0.2 * size, 0.125 * size)

    pixel_centres = np.arange(image_size) + 0.5
    dx = pixel_centres[None, None, :] - centre_x[:, None, None]
    dy = pixel_centres[None, :, None] - centre_y[:, None, None]
    r = radius[:, None, None]
    in_circle = dx**2 + dy**2 <= r**2
    in_square = np.maximum(np.abs(dx), np.abs(dy)) <= r
    mask = np.where(a["round"][:, None, None], in_circle, in_square)

    dark_row = (np.arange(image_size) // 2) % 2 == 1
    brightness = np.where(a["striped"][:, None] & dark_row[None, :], STRIPE_DIMMING, 1.0)
    colour = np.where(a["red"][:, None], RED, BLUE)  # (n, 3)
    images = (
        mask[:, None, :, :]
        * colour[:, :, None, None]
        * brightness[:, None, :, None]
    )
    images = images + rng.normal(0.0, NOISE_STD, size=images.shape)
    images = np.clip(images, 0.0, 1.0).astype(np.float32)
    return ConceptShapes(
        images=torch.from_numpy(images),
        attributes=torch.from_numpy(attributes),
        labels=torch.from_numpy(labels_from_attributes(attributes, label_rule)),
    )
