r"""Binary neural networks: binary weights (:class:`htaf.nn.BinaryLinear`, :class:`htaf.nn.BinaryConv2d`) and
binary activations (:math:`\mathrm{sign}` forward, a surrogate's derivative backward).

Every binary activation is ``BatchNorm -> sign``: the batch norm centres the pre-activation on the
threshold, as in BinaryNet. The activation unit is :class:`htaf.nn.Spike` with ``signed=True``: the exact
sign forward and twice the step-convention surrogate derivative backward, so ``"ste"`` is BinaryNet's
:math:`\mathbb 1[|x| \le 1]` and ``"htaf"`` is the derivative of HTAF's +/-1 form
:math:`\tanh(\alpha\tanh(\beta x)/2)`. ``method="full_precision"`` builds the same network with real weights
and ReLU activations (the reference). The methods are :func:`htaf.nn.unit_methods` with ``model="sign"``; the
surrogate is resolved (and matched to ``peak_slope``) by :func:`htaf.nn.make_unit` (:func:`sign_unit`).

First and last layers. ``binary_first`` and ``binary_last`` choose binary weights there; their inputs are
real (the image) or feed the classifier, so they are real-weighted by default, as in XNOR-Net, Bi-Real Net
and IR-Net: binarising them costs accuracy out of proportion to their size. Only layers whose input is a
sign can run as XNOR-popcount (:func:`packed`).

Models:

* :func:`binary_mlp`: BinaryNet's MNIST MLP shape, ``Linear -> BN -> sign`` per hidden width.
* :func:`binary_cnn`: a small VGG-like CNN for the cpu profile (``[conv-BN-sign] x2 -> pool`` twice, FC).
* :func:`vgg_small`: the VGG-small of LQ-Nets / IR-Net for CIFAR-10 (128-128-M-256-256-M-512-512-M, FC).
* :func:`resnet18`: a Bi-Real / IR-Net style ResNet-18 for CIFAR-10 (real shortcut around every binary conv).

>>> net = binary_mlp(784, 10, hidden=[64, 64], method="ste")
>>> net(torch.zeros(2, 1, 28, 28)).shape
torch.Size([2, 10])
>>> [name for name, _ in binary_layers(net)]
['body.1.0']
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from htaf import surrogates
from htaf.nn import (
    FULL_PRECISION,
    BinaryConv2d,
    BinaryLinear,
    Spike,
    binary_layers,
    check_unit_method,
    make_unit,
    pack,
)

__all__ = [
    "FULL_PRECISION",
    "ARCHS",
    "sign_unit",
    "binary_mlp",
    "binary_cnn",
    "vgg_small",
    "resnet18",
    "build",
    "packable",
    "packed",
    "set_surrogate",
]

ARCHS = ("mlp", "cnn", "vgg_small", "resnet18")


def sign_unit(method: str, peak_slope: float | None = None, surrogate_params: dict | None = None) -> nn.Module:
    """The activation of ``method``: the exact sign with the surrogate of :func:`htaf.nn.make_unit`'s unit
    (``Spike(surrogate, signed=True)``), or ``make_unit("full_precision")`` (ReLU).

    With ``peak_slope``, the surrogate's step-convention derivative at 0 equals it (the sign's is twice that).

    >>> sign_unit("htaf", peak_slope=0.5)
    Spike(HTAF(alpha=4.0, beta=0.5), signed=True)
    """
    spec = check_unit_method(method, "sign")
    unit = make_unit(method, peak_slope=peak_slope, surrogate_params=surrogate_params)
    return unit if spec.kind == "reference" else Spike(unit.surrogate, signed=True)


def set_surrogate(model: nn.Module, surrogate: surrogates.Surrogate) -> None:
    """Replace the surrogate of every signed :class:`htaf.nn.Spike` of ``model`` (e.g. IR-Net's EDE schedule)."""
    for module in model.modules():
        if isinstance(module, Spike) and module.signed:
            module.surrogate = surrogate


class _Options:
    """What every builder needs: the method, its unit and how to build a (binary or real) layer."""

    def __init__(self, method: str, peak_slope: float | None, surrogate_params: dict | None, scale: str,
                 binary_first: bool, binary_last: bool):
        self.real = check_unit_method(method, "sign").kind == "reference"
        self.unit = lambda: sign_unit(method, peak_slope, surrogate_params)
        self.scale = scale
        self.binary_first, self.binary_last = binary_first, binary_last
        self.unit()  # validate once, early

    def linear(self, a: int, b: int, binary: bool = True, bias: bool = False) -> nn.Module:
        if binary and not self.real:
            return BinaryLinear(a, b, bias=bias, scale=self.scale)
        return nn.Linear(a, b, bias=bias)

    def conv(self, a: int, b: int, binary: bool = True, stride: int = 1) -> nn.Module:
        if binary and not self.real:
            return BinaryConv2d(a, b, 3, stride=stride, padding=1, scale=self.scale)
        return nn.Conv2d(a, b, 3, stride=stride, padding=1, bias=False)


def _check_widths(name: str, widths: Sequence[int]) -> list[int]:
    widths = [int(w) for w in widths]
    if not widths or min(widths) < 1:
        raise ValueError(f"{name} must list at least one positive width, got {widths!r}")
    return widths


class BinaryNet(nn.Module):
    """``body`` (a Sequential of blocks) then ``head``; inputs are flattened first when ``flatten``.

    ``packable`` names the binary layers that receive +/-1 inputs (those :func:`packed` replaces).
    """

    def __init__(self, body: nn.Sequential, head: nn.Module, packable: list[str], flatten: bool = False):
        super().__init__()
        self.flatten = flatten
        self.body, self.head = body, head
        self.packable = packable

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.flatten:
            x = x.flatten(1)
        return self.head(self.body(x))


def binary_mlp(in_features: int, num_classes: int, hidden: Sequence[int] = (256, 256, 256), method: str = "ste",
               peak_slope: float | None = None, surrogate_params: dict | None = None, scale: str = "none",
               binary_first: bool = False, binary_last: bool = False) -> BinaryNet:
    """BinaryNet's MLP: ``[Linear -> BN -> sign]`` per hidden width, then ``Linear -> BN`` to the classes."""
    opts = _Options(method, peak_slope, surrogate_params, scale, binary_first, binary_last)
    widths = [int(in_features), *_check_widths("hidden", hidden)]
    blocks = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        blocks.append(nn.Sequential(opts.linear(a, b, binary=i > 0 or binary_first), nn.BatchNorm1d(b), opts.unit()))
    head = nn.Sequential(opts.linear(widths[-1], num_classes, binary=binary_last), nn.BatchNorm1d(num_classes))
    net = BinaryNet(nn.Sequential(*blocks), head, [], flatten=True)
    net.packable = [name for name, _ in binary_layers(net) if not name.startswith("body.0.")]
    return net


def binary_cnn(in_channels: int, num_classes: int, image_size: int = 28, channels: int = 32, fc_hidden: int = 256,
               method: str = "ste", peak_slope: float | None = None, surrogate_params: dict | None = None,
               scale: str = "none", binary_first: bool = False, binary_last: bool = False) -> BinaryNet:
    """Small VGG-like binary CNN: ``conv(C)-conv(C)-pool-conv(2C)-conv(2C)-pool-FC(fc_hidden)-FC(classes)``.

    Each conv and the hidden FC are followed by ``BN -> sign`` (a pool sits between the conv and its
    BN, as in BinaryNet). ``image_size`` must be divisible by 4.
    """
    if image_size % 4:
        raise ValueError(f"image_size must be divisible by 4 (two 2x2 poolings), got {image_size}")
    opts = _Options(method, peak_slope, surrogate_params, scale, binary_first, binary_last)
    c = int(channels)

    def block(a: int, b: int, binary: bool = True, pool: bool = False) -> nn.Sequential:
        layers = [opts.conv(a, b, binary)] + ([nn.MaxPool2d(2)] if pool else [])
        return nn.Sequential(*layers, nn.BatchNorm2d(b), opts.unit())

    flat = 2 * c * (image_size // 4) ** 2
    body = nn.Sequential(
        block(in_channels, c, binary=binary_first), block(c, c, pool=True),
        block(c, 2 * c), block(2 * c, 2 * c, pool=True),
        nn.Sequential(nn.Flatten(), opts.linear(flat, fc_hidden), nn.BatchNorm1d(fc_hidden), opts.unit()),
    )
    head = nn.Sequential(opts.linear(fc_hidden, num_classes, binary=binary_last), nn.BatchNorm1d(num_classes))
    net = BinaryNet(body, head, [])
    net.packable = [name for name, _ in binary_layers(net) if not name.startswith("body.0.")]
    return net


def vgg_small(in_channels: int, num_classes: int, method: str = "ste", peak_slope: float | None = None,
              surrogate_params: dict | None = None, scale: str = "mean", binary_first: bool = False,
              binary_last: bool = False, image_size: int = 32) -> BinaryNet:
    """VGG-small (LQ-Nets, IR-Net): conv 128-128-M-256-256-M-512-512-M, then a linear classifier."""
    opts = _Options(method, peak_slope, surrogate_params, scale, binary_first, binary_last)
    plan = [(in_channels, 128, False), (128, 128, True), (128, 256, False), (256, 256, True),
            (256, 512, False), (512, 512, True)]
    blocks = []
    for i, (a, b, pool) in enumerate(plan):
        layers = [opts.conv(a, b, binary=i > 0 or binary_first)] + ([nn.MaxPool2d(2)] if pool else [])
        blocks.append(nn.Sequential(*layers, nn.BatchNorm2d(b), opts.unit()))
    flat = 512 * (image_size // 8) ** 2
    head = nn.Sequential(nn.Flatten(), opts.linear(flat, num_classes, binary=binary_last, bias=True))
    net = BinaryNet(nn.Sequential(*blocks), head, [])
    net.packable = [name for name, _ in binary_layers(net) if not name.startswith("body.0.")]
    return net


class _BiRealBlock(nn.Module):
    """Bi-Real basic block: two ``sign -> BinaryConv -> BN`` units, each with a real shortcut around it."""

    def __init__(self, opts: _Options, a: int, b: int, stride: int):
        super().__init__()
        self.sign1, self.conv1, self.bn1 = opts.unit(), opts.conv(a, b, stride=stride), nn.BatchNorm2d(b)
        self.sign2, self.conv2, self.bn2 = opts.unit(), opts.conv(b, b), nn.BatchNorm2d(b)
        self.down = (nn.Sequential(nn.AvgPool2d(stride), nn.Conv2d(a, b, 1, bias=False), nn.BatchNorm2d(b))
                     if stride != 1 or a != b else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn1(self.conv1(self.sign1(x))) + self.down(x)
        return self.bn2(self.conv2(self.sign2(x))) + x


def resnet18(in_channels: int, num_classes: int, method: str = "ste", peak_slope: float | None = None,
             surrogate_params: dict | None = None, scale: str = "mean", binary_first: bool = False,
             binary_last: bool = False) -> BinaryNet:
    """ResNet-18 for 32x32 inputs with Bi-Real shortcuts (IR-Net's CIFAR-10 setting): real stem and classifier."""
    opts = _Options(method, peak_slope, surrogate_params, scale, binary_first, binary_last)
    stem = nn.Sequential(opts.conv(in_channels, 64, binary=binary_first), nn.BatchNorm2d(64))
    if opts.real:
        stem.append(nn.ReLU())
    stages, width = [], 64
    for out, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        stages += [_BiRealBlock(opts, width, out, stride), _BiRealBlock(opts, out, out, 1)]
        width = out
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), opts.linear(512, num_classes, binary=binary_last,
                                                                            bias=True))
    net = BinaryNet(nn.Sequential(stem, *stages), head, [])
    net.packable = [name for name, _ in binary_layers(net) if name.split(".")[-1].startswith("conv")]
    return net


def build(arch: str, input_shape: Sequence[int], num_classes: int, **options) -> BinaryNet:
    """The ``arch`` model (one of :data:`ARCHS`) for inputs of ``input_shape`` ``(C, H, W)``."""
    channels, height = int(input_shape[0]), int(input_shape[-1])
    if arch == "mlp":
        return binary_mlp(int(torch.tensor(input_shape).prod()), num_classes, **options)
    if arch == "cnn":
        return binary_cnn(channels, num_classes, image_size=height, **options)
    if arch == "vgg_small":
        return vgg_small(channels, num_classes, image_size=height, **options)
    if arch == "resnet18":
        return resnet18(channels, num_classes, **options)
    raise ValueError(f"unknown BNN arch {arch!r}; valid choices: {', '.join(ARCHS)}")


def packable(model: BinaryNet) -> list[str]:
    """Names of the binary layers of ``model`` whose inputs are +/-1 (XNOR-popcount capable)."""
    return list(model.packable)


def packed(model: BinaryNet) -> nn.Module:
    """A copy of ``model`` in eval mode with every layer of :func:`packable` in its bit-packed form."""
    return pack(model, names=packable(model))
