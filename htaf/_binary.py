r"""Binary layers (binary weights, real latent weights) and their bit-packed XNOR-popcount inference form.

Public through :mod:`htaf.nn`: :class:`BinaryLinear`, :class:`BinaryConv2d`, :func:`clip_latent_weights_`,
:func:`binary_layers`, :class:`PackedBinaryLinear`, :class:`PackedBinaryConv2d`, :func:`pack`, :func:`popcount` and :func:`storage_bits`.

Training (BinaryNet, Courbariaux et al. 2016; XNOR-Net scaling, Rastegari et al. 2016). Each binary layer
keeps a real *latent* weight :math:`W`; the forward pass uses

.. math:: \hat W = \mathrm{sign}(W) \quad\text{or}\quad \hat W_o = \bar\alpha_o\, \mathrm{sign}(W_o),
    \qquad \bar\alpha_o = \mathrm{mean}\,|W_o| \ \text{(``scale="mean"``, one factor per output channel)},

with :math:`\mathrm{sign}(0) = +1` (:func:`htaf.functional.sign`), and the backward pass the clipped
straight-through estimator :math:`\partial \hat W / \partial W = \mathbb 1[|W| \le 1]` (the ``ste``
surrogate through :func:`htaf.functional.sign_spike`; ``binarizer`` chooses another one of the zoo).
After each optimiser step :func:`clip_latent_weights_` clips :math:`W` to :math:`[-1, 1]`. The scale is
applied to the output, :math:`y = \bar\alpha \odot (x \hat W^\top)`, which is the same function as a scaled
weight and keeps the integer part of the product exact.

Inference. When the inputs of a binary layer are :math:`\pm1` (the previous layer ends in a sign), the
product of two :math:`\pm1` vectors of length :math:`n` is :math:`n - 2\,\mathrm{popcount}(a \oplus w)` on their
sign bits. :func:`pack` turns a trained layer into that form: weights stored as bits in ``int64`` words
(32 times smaller than float32), the product computed with XOR and popcount on integers. It equals the
float forward exactly: both compute the same integers (exact in float32 below :math:`2^{24}`), then the same
scale and bias. Zero padding of a convolution contributes nothing in both forms (the packed form masks it).

>>> import torch
>>> layer = BinaryLinear(70, 3, scale="mean").eval()
>>> x = torch.sign(torch.randn(5, 70)) + 0.0
>>> packed = pack(layer)
>>> bool(torch.equal(packed(x), layer(x)))
True
>>> packed.weight_bits.dtype, packed.weight_bits.shape      # 70 inputs -> 2 words of 64 bits
(torch.int64, torch.Size([3, 2]))
"""

from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from . import functional as HF
from . import surrogates
from ._validation import check_float_tensor, check_positive

__all__ = [
    "SCALES",
    "BinaryLinear",
    "BinaryConv2d",
    "binary_layers",
    "clip_latent_weights_",
    "PackedBinaryLinear",
    "PackedBinaryConv2d",
    "pack",
    "popcount",
    "storage_bits",
]

#: weight scaling of binary layers: none (pure +/-1) or XNOR-Net's per-output-channel mean |W|
SCALES = ("none", "mean")
WORD = 64


def _check_scale(scale: str) -> str:
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r} for a binary layer; valid choices: {', '.join(SCALES)}")
    return scale


def _check_binarizer(binarizer: str | surrogates.Surrogate) -> surrogates.Surrogate:
    try:
        return surrogates.get(binarizer)
    except ValueError:
        raise ValueError(
            f"unknown binarizer {binarizer!r} for binary weights; valid choices: {', '.join(surrogates.available())} "
            "(BinaryNet's clipped straight-through estimator is 'ste')"
        ) from None


class _BinaryWeight:
    """Mixin: binarised weight, scale and the options shared by :class:`BinaryLinear` and :class:`BinaryConv2d`."""

    weight: nn.Parameter
    scale: str
    binarizer: surrogates.Surrogate

    def _init_binary(self, scale: str, binarizer: str | surrogates.Surrogate) -> None:
        self.scale = _check_scale(scale)
        self.binarizer = _check_binarizer(binarizer)

    def binary_weight(self) -> torch.Tensor:
        """:math:`\\mathrm{sign}(W)` (+/-1) with the binarizer's straight-through gradient."""
        return HF.sign_spike(self.weight, self.binarizer)

    def weight_scale(self) -> torch.Tensor | None:
        """Per-output-channel :math:`\\mathrm{mean}|W|`, shaped to broadcast over the output; None without scaling."""
        if self.scale == "none":
            return None
        return self.weight.abs().mean(dim=tuple(range(1, self.weight.dim())))

    def _scaled(self, out: torch.Tensor) -> torch.Tensor:
        factor = self.weight_scale()
        if factor is None:
            return out
        return out * factor.view(1, -1, *([1] * (out.dim() - 2)))

    def _binary_repr(self) -> str:
        return f", scale={self.scale!r}, binarizer={self.binarizer!r}"


class BinaryLinear(nn.Linear, _BinaryWeight):
    r"""Linear layer with binary weights (real latent weights, straight-through gradient).

    Args:
        in_features, out_features, bias: as :class:`torch.nn.Linear` (bias off by default: a batch norm
            usually follows).
        scale: ``"none"`` (pure +/-1 weights, BinaryNet) or ``"mean"`` (XNOR-Net's per-output mean of ``abs(W)``).
        binarizer: surrogate of the weights' sign (registry name; ``"ste"``: gradient 1 where ``abs(W) <= 1``).

    Latent weights start as PyTorch's default (uniform, bound :math:`1/\sqrt{\text{in\_features}}`), inside
    the clip range.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = False, scale: str = "none",
                 binarizer: str | surrogates.Surrogate = "ste"):
        super().__init__(in_features, out_features, bias=bias)
        self._init_binary(scale, binarizer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_float_tensor(x, "BinaryLinear")
        return self._scaled(F.linear(x, self.binary_weight().to(x.dtype))) + (0 if self.bias is None else self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + self._binary_repr()


class BinaryConv2d(nn.Conv2d, _BinaryWeight):
    """2-D convolution with binary weights (see :class:`BinaryLinear`; ``groups=1`` only)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, bias: bool = False,
                 scale: str = "none", binarizer: str | surrogates.Surrogate = "ste"):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)
        if isinstance(padding, str):
            raise ValueError("BinaryConv2d takes integer padding (the packed form needs it), "
                             f"got {padding!r}; for 'same' with a 3x3 kernel use padding=1")
        self._init_binary(scale, binarizer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_float_tensor(x, "BinaryConv2d")
        out = self._conv_forward(x, self.binary_weight().to(x.dtype), None)
        out = self._scaled(out)
        return out if self.bias is None else out + self.bias.view(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return super().extra_repr() + self._binary_repr()


def binary_layers(model: nn.Module) -> Iterator[tuple[str, BinaryLinear | BinaryConv2d]]:
    """``(qualified name, layer)`` for every binary layer of ``model``, in module order."""
    for name, module in model.named_modules():
        if isinstance(module, (BinaryLinear, BinaryConv2d)):
            yield name, module


@torch.no_grad()
def clip_latent_weights_(model: nn.Module, bound: float = 1.0) -> None:
    """Clip the latent weights of every binary layer to ``[-bound, bound]`` in place (after each optimiser step).

    Raises:
        ValueError: ``bound`` is not a finite number greater than 0.
    """
    bound = check_positive("bound", bound)
    for _, layer in binary_layers(model):
        layer.weight.clamp_(-bound, bound)


# --------------------------------------------------------------------------------------------
# Bit packing and XNOR-popcount inference
# --------------------------------------------------------------------------------------------

_M1, _M2, _M4, _H01 = 0x5555555555555555, 0x3333333333333333, 0x0F0F0F0F0F0F0F0F, 0x0101010101010101


def popcount(words: torch.Tensor) -> torch.Tensor:
    """Number of set bits of every ``int64`` element (SWAR; arithmetic shifts are masked, so signs are fine).

    >>> popcount(torch.tensor([0, 1, 3, -1, 2**62]))
    tensor([ 0,  1,  2, 64,  1])
    """
    if words.dtype != torch.int64:
        raise TypeError(f"popcount expects an int64 tensor, got {words.dtype}")
    x = words - ((words >> 1) & _M1)
    x = (x & _M2) + ((x >> 2) & _M2)
    x = (x + (x >> 4)) & _M4
    return (x * _H01) >> 56


def _pack_bits(bits: torch.Tensor) -> torch.Tensor:
    """Pack a boolean tensor ``[..., n]`` into ``int64`` words ``[..., ceil(n/64)]`` (bit i of word k = element 64k+i)."""
    n = bits.shape[-1]
    words = -(-n // WORD)
    padded = torch.zeros(*bits.shape[:-1], words * WORD, dtype=torch.int64, device=bits.device)
    padded[..., :n] = bits.to(torch.int64)
    weights = torch.ones(WORD, dtype=torch.int64, device=bits.device) << torch.arange(WORD, device=bits.device)
    return (padded.view(*bits.shape[:-1], words, WORD) * weights).sum(dim=-1)


def _check_signs(x: torch.Tensor, what: str) -> None:
    if not bool(((x == 1) | (x == -1)).all()):
        raise ValueError(f"{what} expects +/-1 inputs (the output of a sign); got other values")


def _xnor_dot(x_bits: torch.Tensor, w_bits: torch.Tensor, valid: torch.Tensor | None, n: int,
              chunk: int = 256) -> torch.Tensor:
    """Sum of products of +/-1 vectors: rows ``[R, words]`` against ``[O, words]`` -> ``[R, O]`` (float32).

    With ``valid`` (``[R, words]`` bits of the positions that exist), absent positions count zero.
    """
    out = []
    for start in range(0, x_bits.shape[0], chunk):
        xb = x_bits[start:start + chunk, None, :]
        differ = xb ^ w_bits[None]
        if valid is None:
            total = torch.full((xb.shape[0], 1), n, dtype=torch.int64, device=x_bits.device)
        else:
            vb = valid[start:start + chunk, None, :]
            differ = differ & vb
            total = popcount(vb).sum(dim=-1)
        out.append(total - 2 * popcount(differ).sum(dim=-1))
    if not out:  # an empty batch
        return torch.zeros(0, w_bits.shape[0], dtype=torch.float32, device=x_bits.device)
    return torch.cat(out).to(torch.float32)


class _PackedBinary(nn.Module):
    """Shared storage of a packed layer: ``weight_bits`` (one row of words per output), ``scale``, ``bias``."""

    def __init__(self, layer: BinaryLinear | BinaryConv2d):
        super().__init__()
        if not bool(torch.isfinite(layer.weight).all()):
            raise ValueError(f"cannot pack {layer!r}: its latent weights hold NaN or infinite values, whose sign the "
                             "bits cannot hold (the float layer would output NaN); fix or re-train the weights first")
        with torch.no_grad():
            self.register_buffer("weight_bits", _pack_bits(layer.weight.flatten(1) >= 0))
            scale = layer.weight_scale()
            self.register_buffer("scale", None if scale is None else scale.detach().float().clone())
            self.register_buffer("bias", None if layer.bias is None else layer.bias.detach().float().clone())

    @property
    def weight_count(self) -> int:
        """Number of 1-bit weights (the latent layer's weight elements)."""
        return self.out_features * self.fan_in

    @property
    def nbytes(self) -> int:
        """Bytes of storage (bits, scale and bias)."""
        return sum(b.numel() * b.element_size() for b in self.buffers())

    def _scale_and_shift(self, out: torch.Tensor) -> torch.Tensor:
        shape = (1, -1, *([1] * (out.dim() - 2)))
        if self.scale is not None:
            out = out * self.scale.view(shape)
        return out if self.bias is None else out + self.bias.view(shape)


class PackedBinaryLinear(_PackedBinary):
    """Inference form of a :class:`BinaryLinear` whose inputs are +/-1: sign bits in ``int64`` words, XNOR-popcount.

    Build it with :func:`pack`. Holds ``weight_bits`` ``[out, ceil(in/64)]``, the per-output scale (or
    None) and the bias; :attr:`nbytes` is its storage.
    """

    def __init__(self, layer: BinaryLinear):
        super().__init__(layer)
        self.in_features, self.out_features = layer.in_features, layer.out_features
        self.fan_in = layer.in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_float_tensor(x, "PackedBinaryLinear")
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"PackedBinaryLinear expects input of shape [batch, {self.in_features}], "
                             f"got {tuple(x.shape)}")
        _check_signs(x, "PackedBinaryLinear")
        out = _xnor_dot(_pack_bits(x >= 0), self.weight_bits, None, self.in_features)
        return self._scale_and_shift(out).to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bits={self.weight_bits.numel() * WORD}"


class PackedBinaryConv2d(_PackedBinary):
    """Inference form of a :class:`BinaryConv2d` whose inputs are +/-1 (im2col, then XNOR-popcount per patch)."""

    def __init__(self, layer: BinaryConv2d):
        if layer.groups != 1 or layer.dilation != (1, 1):
            raise ValueError("pack supports BinaryConv2d with groups=1 and dilation=1 only")
        super().__init__(layer)
        self.in_channels, self.out_channels = layer.in_channels, layer.out_channels
        self.kernel_size, self.stride, self.padding = layer.kernel_size, layer.stride, layer.padding
        self.out_features, self.fan_in = layer.out_channels, layer.weight[0].numel()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_float_tensor(x, "PackedBinaryConv2d")
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"PackedBinaryConv2d expects input of shape [batch, {self.in_channels}, height, width], "
                             f"got {tuple(x.shape)}")
        _check_signs(x, "PackedBinaryConv2d")
        batch, _, height, width = x.shape
        kh, kw = self.kernel_size
        out_h = (height + 2 * self.padding[0] - kh) // self.stride[0] + 1
        out_w = (width + 2 * self.padding[1] - kw) // self.stride[1] + 1
        unfold = dict(kernel_size=self.kernel_size, padding=self.padding, stride=self.stride)
        patches = F.unfold(x.float(), **unfold).transpose(1, 2).flatten(0, 1)  # [B*L, C*kh*kw], 0 at padding
        x_bits = _pack_bits(patches > 0)
        needs_mask = any(self.padding)
        valid = _pack_bits(patches != 0) if needs_mask else None
        out = _xnor_dot(x_bits, self.weight_bits, valid, patches.shape[1])
        out = out.view(batch, out_h * out_w, self.out_channels).transpose(1, 2).reshape(batch, self.out_channels, out_h, out_w)
        out = out.contiguous()  # NCHW like the float conv: later reductions then sum in the same order
        return self._scale_and_shift(out).to(x.dtype)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, bits={self.weight_bits.numel() * WORD}")


def pack(module: nn.Module, names: list[str] | None = None) -> nn.Module:
    """The bit-packed inference form of a binary layer, or a copy of a whole model with its binary layers packed.

    For a model, ``names`` chooses the binary layers to pack (default: all); each must receive +/-1 inputs
    (the packed layers check it), so a first layer fed with images stays as it is (see
    :func:`htaf.models.bnn.packed`). The copy is returned in eval mode.
    """
    if isinstance(module, BinaryLinear):
        return PackedBinaryLinear(module)
    if isinstance(module, BinaryConv2d):
        return PackedBinaryConv2d(module)
    import copy

    packed = copy.deepcopy(module)
    layers = dict(binary_layers(packed))
    chosen = list(layers) if names is None else list(names)
    unknown = [name for name in chosen if name not in layers]
    if unknown:
        raise ValueError(f"no binary layer named {', '.join(map(repr, unknown))} in {type(module).__name__}; "
                         f"its binary layers: {', '.join(layers) or 'none'}")
    if not chosen:
        raise ValueError(f"{type(module).__name__} holds no BinaryLinear or BinaryConv2d layer to pack")
    for name in chosen:
        parent_name, _, child = name.rpartition(".")
        parent = packed.get_submodule(parent_name) if parent_name else packed
        setattr(parent, child, pack(layers[name]))
    return packed.eval()


def storage_bits(model: nn.Module) -> dict[str, int]:
    """Bits needed to store ``model`` for inference.

    ``float32``: every parameter and floating-point buffer (batch-norm statistics) at 32 bits.
    ``packed``: the binary layers' weights at 1 bit each plus their per-channel scales at 32 bits, everything
    else at 32 bits. ``binary_weights``: the number of 1-bit weights.
    """
    packed_layers = [m for m in model.modules() if isinstance(m, _PackedBinary)]
    # a packed layer stores its scale as a buffer; count it as the scale of a latent layer is counted (below)
    packed_scales = sum(m.scale.numel() for m in packed_layers if m.scale is not None)
    floats = sum(p.numel() for p in model.parameters()) + sum(
        b.numel() for b in model.buffers() if b.is_floating_point()) - packed_scales
    latent = sum(layer.weight.numel() for _, layer in binary_layers(model))
    packed = sum(m.weight_count for m in packed_layers)
    scales = sum(layer.weight.shape[0] for _, layer in binary_layers(model) if layer.scale == "mean") + packed_scales
    binary = latent + packed
    return {"float32": 32 * (floats + packed), "packed": 32 * (floats - latent + scales) + binary,
            "binary_weights": binary}

