r"""Implicit concept bottleneck models (ICBM): a classifier whose last feature layer is a vector of binary concepts.

An ICBM is ``backbone -> Linear(features, K) -> BatchNorm1d(K) -> unit -> Linear(K, classes)``. The unit is
smooth HTAF while training and the exact Heaviside step at inference, so that in ``eval()`` every image is
described by :math:`K` bits (its *implicit concepts*) and the prediction is a linear function of them:

.. math:: \text{logits}(x) = W\,H(\mathrm{BN}(A\,\phi(x))) + b .

The unit is any binary unit of :func:`htaf.nn.make_unit` (``htaf``, ``htaf_hard``, ``htaf_anneal``,
``sigmoid_smooth`` for the naive sigmoid bottleneck thresholded at inference, ``ste`` and the other
surrogates for a straight-through step), or a continuous activation (``relu``, ``identity``) for the
*standard model* with the same shape and a real-valued bottleneck.

Backbones: :func:`small_cnn` (three conv-BN-ReLU stages, 2x2 adaptive pooling, so that position stays
readable: ``concept_shapes`` has *left* and *top* attributes) for 24-32 px images, and a CIFAR-style
ResNet-18 (:func:`resnet18`, torchvision's with a 3x3 stem and no max-pool) for the gpu profile.

>>> model = build("cnn", (1, 28, 28), 10, num_concepts=8, method="htaf")
>>> model.eval().concepts(torch.zeros(2, 1, 28, 28)).shape
torch.Size([2, 8])
>>> bool(torch.equal(model(torch.zeros(2, 1, 28, 28)), model.head(model.concepts(torch.zeros(2, 1, 28, 28)))))
True

What a trained concept layer's bits say (the ``(N, K)`` 0/1 matrix of :meth:`ICBM.concepts` over N images):
:func:`concept_statistics` (how many concepts are on, dead or constant), :func:`concept_attribute_auc` and
:func:`match_concepts` (alignment with known attributes), :func:`probe_accuracy` (a linear probe),
:func:`concept_agreement` (stability across seeds), and :func:`bits_to_hex` / :func:`hex_to_bits` (the bits
as they are stored in a results file).
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from htaf._extras import require
from htaf.nn import REAL_ACTIVATIONS, make_unit

__all__ = [
    "ARCHS", "ICBM", "bits_to_hex", "build", "channel_widths", "concept_agreement", "concept_attribute_auc",
    "concept_statistics", "concepts", "hex_to_bits", "match_concepts", "probe_accuracy", "resnet18", "small_cnn",
]

ARCHS = ("cnn", "resnet18")


def _conv_stage(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


def channel_widths(channels: Sequence[int]) -> list[int]:
    """The stage widths of :func:`small_cnn`, checked: one or more positive integers."""
    channels = [int(c) for c in channels]
    if not channels or min(channels) < 1:
        raise ValueError(f"channels must list one or more positive widths, got {channels!r}")
    return channels


def small_cnn(in_channels: int, channels: Sequence[int] = (16, 32, 64)) -> tuple[nn.Module, int]:
    """Conv-BN-ReLU stages with a 2x2 max-pool after all but the last, then 2x2 adaptive average pooling.

    Returns the backbone and its feature size (``4 * channels[-1]``).
    """
    channels = channel_widths(channels)
    layers: list[nn.Module] = []
    width = in_channels
    for i, c in enumerate(channels):
        layers.append(_conv_stage(width, c))
        if i < len(channels) - 1:
            layers.append(nn.MaxPool2d(2))
        width = c
    layers += [nn.AdaptiveAvgPool2d(2), nn.Flatten()]
    return nn.Sequential(*layers), 4 * width


def resnet18(in_channels: int) -> tuple[nn.Module, int]:
    """torchvision's ResNet-18 for 32x32 images (3x3 stem, no max-pool), without its classifier; 512 features."""
    require("torchvision", "the ICBM's resnet18 backbone")
    from torchvision.models import resnet18 as tv_resnet18

    net = tv_resnet18(num_classes=10)
    net.conv1 = nn.Conv2d(in_channels, 64, 3, padding=1, bias=False)
    net.maxpool = nn.Identity()
    net.fc = nn.Identity()
    return net, 512


class ICBM(nn.Module):
    """``backbone -> concept map (Linear + BatchNorm1d) -> unit -> head``; see the module docstring.

    Args:
        backbone: maps an input batch to ``(B, feature_dim)`` features.
        feature_dim: size of the backbone's features.
        num_concepts: ``K``, the number of implicit concepts (>= 1).
        num_classes: outputs of the linear head.
        unit: the concept unit (:func:`htaf.nn.make_unit`).

    In training mode ``forward`` attaches two tensors to the logits it returns, for the loss:
    ``logits.concept_logits`` (the normalised pre-activations, ``(B, K)``) and ``logits.concept_activity``
    (the unit's outputs).
    """

    def __init__(self, backbone: nn.Module, feature_dim: int, num_concepts: int, num_classes: int, unit: nn.Module):
        super().__init__()
        if isinstance(num_concepts, bool) or not isinstance(num_concepts, int) or num_concepts < 1:
            raise ValueError(f"num_concepts (K) must be an integer >= 1, got {num_concepts!r}")
        self.backbone = backbone
        self.to_concepts = nn.Linear(feature_dim, num_concepts)
        self.norm = nn.BatchNorm1d(num_concepts)
        self.unit = unit
        self.head = nn.Linear(num_concepts, num_classes)

    @property
    def num_concepts(self) -> int:
        return self.head.in_features

    @property
    def binary(self) -> bool:
        """Whether the bottleneck is binary at inference (False for the continuous standard model)."""
        return not isinstance(self.unit, tuple(REAL_ACTIVATIONS.values()))

    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        """The normalised concept pre-activations ``(B, K)``: a concept is on where this is > 0."""
        return self.norm(self.to_concepts(self.backbone(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.pre_activations(x)
        activity = self.unit(pre)
        logits = self.head(activity)
        if self.training:
            logits.concept_logits, logits.concept_activity = pre, activity
        return logits

    @torch.no_grad()
    def concepts(self, x: torch.Tensor) -> torch.Tensor:
        """The binary concept vector ``(B, K)`` (exact step of the pre-activations, 0/1 floats).

        Uses the model's current mode for its batch norm; in ``eval()`` the head sees exactly these bits.
        """
        if not self.binary:
            raise ValueError("this ICBM has a continuous bottleneck (method "
                             f"{type(self.unit).__name__}); it has no binary concepts. Build it with a binary unit "
                             "such as method='htaf'")
        return (self.pre_activations(x) > 0).to(self.head.weight.dtype)


def concepts(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``model.concepts(x)`` for an :class:`ICBM`; any other model raises a ``TypeError`` that says so."""
    if not isinstance(model, ICBM):
        raise TypeError(f"{type(model).__name__} has no concept layer; concepts() needs an htaf.models.icbm.ICBM "
                        "(build one with htaf.models.icbm.build or the 'icbm' experiment)")
    return model.concepts(x)


def build(arch: str, input_shape: Sequence[int], num_classes: int, num_concepts: int = 32, method: str = "htaf",
          peak_slope: float | None = 1.0, surrogate_params: dict | None = None,
          channels: Sequence[int] = (16, 32, 64)) -> ICBM:
    """The ``arch`` ICBM (one of :data:`ARCHS`) for inputs of ``input_shape`` ``(C, H, W)``."""
    if arch not in ARCHS:
        raise ValueError(f"unknown ICBM arch {arch!r}; valid choices: {', '.join(ARCHS)}")
    if len(input_shape) != 3:
        raise ValueError(f"an ICBM needs image inputs (C, H, W), got input shape {tuple(input_shape)}")
    unit = make_unit(method, peak_slope=peak_slope, surrogate_params=surrogate_params)
    backbone, features = small_cnn(int(input_shape[0]), channels) if arch == "cnn" else resnet18(int(input_shape[0]))
    return ICBM(backbone, features, num_concepts, num_classes, unit)


# --------------------------------------------------------------------------------------------
# Binary concepts (ICBM): statistics, alignment with known attributes, stability across seeds
# --------------------------------------------------------------------------------------------

def _bit_matrix(bits: torch.Tensor | Any, name: str = "bits") -> torch.Tensor:
    """``bits`` as an ``(N, K)`` bool tensor; anything but a 2-D array of 0/1 values raises ``ValueError``."""
    tensor = torch.as_tensor(bits)
    if tensor.dim() != 2 or tensor.shape[0] < 1 or tensor.shape[1] < 1:
        raise ValueError(f"{name} must be a 2-D (images, concepts) array, got shape {tuple(tensor.shape)}")
    if not bool(((tensor == 0) | (tensor == 1)).all()):
        raise ValueError(f"{name} must hold 0/1 values only (binary concepts)")
    return tensor.bool()


def concept_statistics(bits: torch.Tensor) -> dict[str, float]:
    """What an ``(N, K)`` 0/1 concept matrix says about its concepts.

    ``bits_per_image`` (mean number of concepts on per image), ``concept_rate`` (mean share on),
    ``never_on_share`` / ``always_on_share`` (share of the K concepts off / on for every image, i.e. carrying
    no information), ``distinct_codes`` (number of different concept vectors among the N images).

    >>> concept_statistics(torch.tensor([[1, 0, 1], [1, 0, 0]]))
    {'bits_per_image': 1.5, 'concept_rate': 0.5, 'never_on_share': 0.3333333333333333, 'always_on_share': 0.3333333333333333, 'distinct_codes': 2}
    """
    b = _bit_matrix(bits)
    rates = b.double().mean(dim=0)
    return {
        "bits_per_image": float(b.double().sum(dim=1).mean()),
        "concept_rate": float(rates.mean()),
        "never_on_share": float((rates == 0).double().mean()),
        "always_on_share": float((rates == 1).double().mean()),
        "distinct_codes": int(torch.unique(b, dim=0).shape[0]),
    }


def concept_attribute_auc(bits: torch.Tensor, attributes: torch.Tensor, oriented: bool = False):
    r"""``(K, A)`` array: the ROC AUC of concept ``k`` as a score for attribute ``a``.

    For a binary score the AUC is the balanced accuracy, :math:`(\mathrm{TPR} + \mathrm{TNR})/2`. A concept
    that is *off* exactly when the attribute is on carries the same information, so by default the AUC is
    orientation-free, :math:`\max(\mathrm{AUC}, 1 - \mathrm{AUC})` (0.5: unrelated, 1: the concept is the
    attribute or its negation); ``oriented=True`` returns the plain AUC. An attribute that is constant in
    the sample has no AUC: ``ValueError``.

    >>> concept_attribute_auc(torch.tensor([[1, 0], [0, 0], [1, 1], [0, 1]]), torch.tensor([[1], [0], [1], [0]]))
    array([[1. ],
           [0.5]])
    """
    b = _bit_matrix(bits).double()
    a = _bit_matrix(attributes, "attributes").double()
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"bits and attributes describe different numbers of images: {b.shape[0]} and {a.shape[0]}")
    positives, negatives = a.sum(dim=0), (1 - a).sum(dim=0)
    if bool(((positives == 0) | (negatives == 0)).any()):
        raise ValueError("an attribute is constant over these images; the AUC needs both of its values")
    tpr = (b.T @ a) / positives  # (K, A)
    tnr = ((1 - b).T @ (1 - a)) / negatives
    auc = (tpr + tnr) / 2
    if not oriented:
        auc = torch.maximum(auc, 1 - auc)
    return auc.numpy()


def match_concepts(scores) -> tuple[list[int], float]:
    """A one-to-one matching of concepts (rows) to attributes (columns) maximising the summed score.

    Returns ``(concept index per attribute, mean matched score)``, the purity/OIS-style alignment of a concept
    layer with known factors (Hungarian algorithm, :func:`scipy.optimize.linear_sum_assignment`). Needs at
    least as many concepts as attributes.

    >>> chosen, mean = match_concepts([[0.5, 0.9], [0.8, 0.6], [0.55, 0.5]])
    >>> chosen, round(mean, 3)
    ([1, 0], 0.85)
    """
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    matrix = np.asarray(scores, dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] < matrix.shape[1]:
        raise ValueError(f"need a (concepts, attributes) matrix with at least as many concepts as attributes, "
                         f"got shape {matrix.shape}")
    rows, cols = linear_sum_assignment(matrix, maximize=True)
    chosen = [0] * matrix.shape[1]
    for r, c in zip(rows, cols):
        chosen[c] = int(r)
    return chosen, float(matrix[rows, cols].mean())


def probe_accuracy(train_x, train_y, test_x, test_y) -> float:
    """Test accuracy of a logistic-regression probe (scikit-learn, L2, C=1) fitted on ``(train_x, train_y)``.

    The probe asks whether a target is *linearly* readable from a representation (all K concepts at once).
    """
    from sklearn.linear_model import LogisticRegression

    def array(x):
        return torch.as_tensor(x).double().numpy()

    train_y, test_y = (torch.as_tensor(y).long().numpy() for y in (train_y, test_y))
    if len(set(train_y.tolist())) < 2:
        return float((test_y == train_y[0]).mean())
    probe = LogisticRegression(max_iter=2000).fit(array(train_x), train_y)
    return float(probe.score(array(test_x), test_y))


def concept_agreement(bits_a: torch.Tensor, bits_b: torch.Tensor) -> dict[str, Any]:
    """How far two concept layers (say, two seeds) found the same concepts on the same images.

    Concepts are matched one-to-one (Hungarian) by their agreement on the images, a concept and its negation
    counting as the same (the head can absorb the sign). Returns ``mean_agreement`` (mean over matched pairs
    of the share of images on which they agree), ``agreements`` (per matched pair, sorted descending) and
    ``chance`` (the mean agreement that independent concepts with the matched pairs' firing rates would have;
    the best of many random matchings is higher, so compare with an untrained layer too).
    """
    a, b = _bit_matrix(bits_a, "bits_a").double(), _bit_matrix(bits_b, "bits_b").double()
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"the two concept matrices describe different numbers of images: {a.shape[0]} and {b.shape[0]}")
    n = a.shape[0]
    agree = (a.T @ b + (1 - a).T @ (1 - b)) / n  # (Ka, Kb)
    agree = torch.maximum(agree, 1 - agree)
    if agree.shape[0] < agree.shape[1]:
        agree = agree.T
        a, b = b, a
    chosen, mean = match_concepts(agree.numpy())
    pa, pb = a.mean(dim=0)[chosen], b.mean(dim=0)
    independent = pa * pb + (1 - pa) * (1 - pb)
    chance = torch.maximum(independent, 1 - independent)
    values = sorted((float(agree[k, j]) for j, k in enumerate(chosen)), reverse=True)
    return {"mean_agreement": mean, "agreements": values, "chance": float(chance.mean())}


def bits_to_hex(bits: torch.Tensor) -> list[str]:
    """Each row of an ``(N, K)`` 0/1 matrix as a hexadecimal string (concept 0 the most significant bit)."""
    b = _bit_matrix(bits)
    width = -(-b.shape[1] // 4)
    return [format(int("".join("1" if v else "0" for v in row.tolist()), 2), f"0{width}x") for row in b]


def hex_to_bits(rows: Iterable[str], num_concepts: int) -> torch.Tensor:
    """The inverse of :func:`bits_to_hex`: an ``(N, K)`` float tensor of 0/1 (decoded in one vectorised pass).

    >>> hex_to_bits(bits_to_hex(torch.tensor([[1, 0, 1, 1, 0]])), 5)
    tensor([[1., 0., 1., 1., 0.]])
    >>> hex_to_bits(["3f"], 5)
    Traceback (most recent call last):
    ...
    ValueError: row 0 ('3f') has more than 5 bits
    """
    rows = list(rows)
    digits = max([len(row) for row in rows] + [-(-num_concepts // 4)])
    digits += digits % 2  # whole bytes
    try:
        raw = bytes.fromhex("".join(row.rjust(digits, "0") if row.isascii() and row.isalnum() else "?" for row in rows))
    except ValueError:
        bad = next(i for i, row in enumerate(rows) if not _is_hex(row))
        raise ValueError(f"row {bad} ({rows[bad]!r}) is not a hexadecimal number") from None
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8).reshape(len(rows), digits // 2), axis=1)
    extra = bits.shape[1] - num_concepts
    overflow = np.flatnonzero(bits[:, :extra].any(axis=1)) if extra > 0 else []
    if len(overflow):
        raise ValueError(f"row {overflow[0]} ({rows[overflow[0]]!r}) has more than {num_concepts} bits")
    return torch.from_numpy(bits[:, max(extra, 0):].astype(np.float32))


def _is_hex(row: str) -> bool:
    return bool(row) and all(c in "0123456789abcdefABCDEF" for c in row)
