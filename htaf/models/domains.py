r"""1-D convolutional backbones for the non-image chapter (MNIST-1D), for the DHN and BNN families.

The MLP backbones of both families are reused as they are (:class:`htaf.models.dhn.DHN`,
:func:`htaf.models.bnn.binary_mlp`: both flatten their input). This module adds the convolutional
backbone that MNIST-1D's authors found decisive (their CNN: 94 % against 68 % for an MLP), in the shape of
their small CNN: three convolutions with stride 2 (kernel sizes 5, 3, 3; no padding) and a linear head,

.. math:: [\mathrm{conv} \to \mathrm{BN} \to \text{unit}] \times 3 \to \text{flatten} \to \text{linear}.

The convolutions are 2-D layers with ``(1, k)`` kernels on ``[B, C, 1, L]`` (a 1-D convolution), so that the
binary family can use :class:`htaf.nn.BinaryConv2d` unchanged. ``family`` chooses the rest:

``"dhn"``
    Real weights, threshold units ``make_unit(method)`` (:func:`htaf.nn.make_unit`: 0/1 steps at inference,
    ``htaf`` smooth while training; any binary unit of :func:`htaf.nn.unit_methods`), their surrogate at
    ``peak_slope`` (:func:`htaf.nn.unit_surrogate`). The batch norm before each threshold centres its input on the step,
    as in the binary and spiking families.
``"bnn"``
    Binary weights (sign forward, clipped straight-through backward) in every convolution but the first, which
    sees the real signal; ``BatchNorm -> sign`` units from :func:`htaf.models.bnn.sign_unit` (``method``,
    ``peak_slope``); a real linear head followed by batch norm, as :func:`htaf.models.bnn.binary_mlp`.
    ``method="full_precision"`` gives the same network with real weights and ReLU (the reference).

:func:`conv1d_backbone` is the same convolutions with real weights and ReLU, without a head: the feature
extractor of an :class:`htaf.models.icbm.ICBM` on 1-D signals.

>>> net = conv1d_net("bnn", 1, 40, 10, method="htaf", peak_slope=0.5)
>>> net(torch.zeros(2, 1, 40)).shape
torch.Size([2, 10])
>>> [name for name, _ in binary_layers(net)]
['body.1.0', 'body.2.0']
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from htaf.models import bnn
from htaf.nn import BinaryConv2d, binary_layers, make_unit

__all__ = ["FAMILIES", "KERNELS", "STRIDE", "Conv1dNet", "conv1d_backbone", "conv1d_net", "conv_lengths"]

FAMILIES = ("dhn", "bnn")
#: kernel sizes of the three convolutions (MNIST-1D's CNN) and their common stride
KERNELS = (5, 3, 3)
STRIDE = 2


def conv_lengths(length: int, kernels: Sequence[int] = KERNELS, stride: int = STRIDE) -> list[int]:
    """Sequence length after each convolution (no padding).

    >>> conv_lengths(40)
    [18, 8, 3]
    """
    out, lengths = int(length), []
    for k in kernels:
        out = (out - k) // stride + 1
        if out < 1:
            raise ValueError(f"a sequence of length {length} is too short for kernels {tuple(kernels)} with stride "
                             f"{stride}; use longer inputs")
        lengths.append(out)
    return lengths


class Conv1dNet(nn.Module):
    """``body`` (convolution blocks on ``[B, C, 1, L]``), flatten, ``head``; takes ``[B, C, L]``."""

    def __init__(self, body: nn.Sequential, head: nn.Module):
        super().__init__()
        self.body, self.head = body, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3:
            raise ValueError(f"Conv1dNet expects signals [B, channels, length], got shape {tuple(x.shape)}")
        return self.head(self.body(x.unsqueeze(2)).flatten(1))


def conv1d_net(family: str, in_channels: int, length: int, num_classes: int, channels: int = 32,
               method: str = "htaf", peak_slope: float | None = None, surrogate_params: dict | None = None
               ) -> Conv1dNet:
    """The convolutional network of ``family`` for signals ``[B, in_channels, length]`` (see the module docstring).

    ``peak_slope`` rescales the unit's surrogate (:func:`htaf.nn.make_unit` in the ``dhn`` family,
    :func:`htaf.models.bnn.sign_unit` in the ``bnn`` family; ``None``: ``surrogate_params`` or the defaults).
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ValueError(f"channels must be a positive integer, got {channels!r}")
    flat = channels * conv_lengths(length)[-1]
    real = family == "dhn" or method == bnn.FULL_PRECISION
    if family == "dhn":
        def unit() -> nn.Module:
            return make_unit(method, peak_slope=peak_slope, surrogate_params=surrogate_params)
    else:
        def unit() -> nn.Module:
            return bnn.sign_unit(method, peak_slope, surrogate_params)
    unit()  # an unknown method or bad parameters fail here, before any layer is built

    blocks = []
    for i, k in enumerate(KERNELS):
        a = in_channels if i == 0 else channels
        if i == 0 or real:
            conv = nn.Conv2d(a, channels, (1, k), stride=(1, STRIDE), bias=False)
        else:
            conv = BinaryConv2d(a, channels, (1, k), stride=(1, STRIDE), padding=0)
        blocks.append(nn.Sequential(conv, nn.BatchNorm2d(channels), unit()))
    head = nn.Linear(flat, num_classes) if family == "dhn" else nn.Sequential(
        nn.Linear(flat, num_classes, bias=False), nn.BatchNorm1d(num_classes))
    return Conv1dNet(nn.Sequential(*blocks), head)


def conv1d_backbone(in_channels: int, length: int, channels: int = 32) -> tuple[Conv1dNet, int]:
    """Real-valued ``[conv -> BN -> ReLU] x 3`` and flatten: ``[B, in_channels, length] -> [B, features]``.

    Returns the module and its feature size.

    >>> backbone, features = conv1d_backbone(1, 40)
    >>> backbone(torch.zeros(2, 1, 40)).shape, features
    (torch.Size([2, 96]), 96)
    """
    net = conv1d_net("bnn", in_channels, length, 1, channels, method=bnn.FULL_PRECISION)
    return Conv1dNet(net.body, nn.Identity()), channels * conv_lengths(length)[-1]
