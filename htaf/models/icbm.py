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
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from htaf.nn import REAL_ACTIVATIONS, make_unit

__all__ = ["ARCHS", "ICBM", "build", "concepts", "resnet18", "small_cnn"]

ARCHS = ("cnn", "resnet18")


def _conv_stage(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


def small_cnn(in_channels: int, channels: Sequence[int] = (16, 32, 64)) -> tuple[nn.Module, int]:
    """Conv-BN-ReLU stages with a 2x2 max-pool after all but the last, then 2x2 adaptive average pooling.

    Returns the backbone and its feature size (``4 * channels[-1]``).
    """
    channels = [int(c) for c in channels]
    if not channels or min(channels) < 1:
        raise ValueError(f"channels must list one or more positive widths, got {channels!r}")
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
