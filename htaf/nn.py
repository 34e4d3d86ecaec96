"""Modules: :class:`HTAF` (smooth, hard or exact-step), :class:`Spike` (any surrogate) and :func:`use_mode`.

>>> import torch, htaf
>>> act = htaf.nn.HTAF(alpha=4.0, beta=1.0, step_at_eval=True)
>>> x = torch.tensor([-1.0, 0.5])
>>> act(x).round(decimals=3)                      # training: smooth HTAF
tensor([0.0450, 0.8640])
>>> act.eval()(x)                                 # inference: exact step
tensor([0., 1.])
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

from . import functional as F
from . import surrogates

__all__ = ["HTAF", "Spike", "use_mode"]

MODES = ("smooth", "hard", "step")


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    return mode


class HTAF(nn.Module):
    r"""HTAF activation :math:`\sigma(\alpha\tanh(\beta x))` with three modes.

    * ``"smooth"``: HTAF forward, its exact gradient backward (a smooth activation; DHN / ICBM training).
    * ``"hard"``: exact step forward, HTAF's derivative backward (a spike / binarizer with HTAF surrogate).
    * ``"step"``: exact step forward, detached from autograd (pure inference).

    Args:
        alpha: sharpness, > 0.
        beta: tail rate, > 0.
        mode: one of the modes above.
        step_at_eval: when True, the module outputs the exact step whenever it is in ``eval()`` mode,
            whatever ``mode`` says: train smooth, infer binary.
        signed: output the +/-1 form (``tanh(alpha*tanh(beta*x)/2)`` smooth, ``sign`` exact) instead of 0/1.
    """

    def __init__(
        self,
        alpha: float = 4.0,
        beta: float = 1.0,
        mode: str = "smooth",
        step_at_eval: bool = False,
        signed: bool = False,
    ):
        super().__init__()
        self.surrogate = surrogates.HTAF(alpha=alpha, beta=beta)
        self.mode = mode
        self.step_at_eval = bool(step_at_eval)
        self.signed = bool(signed)

    # validated on every assignment (use_mode and users set it after construction), like the constructor
    @property
    def mode(self) -> str:
        """``"smooth"``, ``"hard"`` or ``"step"`` (see the class docstring); anything else raises ``ValueError``."""
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        self._mode = _check_mode(value)

    # alpha and beta live in the surrogate, so that the smooth and the hard path can never disagree;
    # setting one (for example to anneal alpha during training) is validated like the constructor.
    @property
    def alpha(self) -> float:
        return self.surrogate.alpha

    @alpha.setter
    def alpha(self, value: float) -> None:
        self.surrogate = surrogates.HTAF(alpha=value, beta=self.beta)

    @property
    def beta(self) -> float:
        return self.surrogate.beta

    @beta.setter
    def beta(self, value: float) -> None:
        self.surrogate = surrogates.HTAF(alpha=self.alpha, beta=value)

    @property
    def active_mode(self) -> str:
        """The mode the next forward call uses (``"step"`` in eval mode when ``step_at_eval``)."""
        if self.step_at_eval and not self.training:
            return "step"
        return self.mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mode = self.active_mode
        if mode == "smooth":
            return (F.htaf_sign if self.signed else F.htaf)(x, self.alpha, self.beta)
        if mode == "hard":
            return (F.sign_spike if self.signed else F.spike)(x, self.surrogate)
        return F.sign(x) if self.signed else F.heaviside(x)

    def extra_repr(self) -> str:
        extras = f", step_at_eval={self.step_at_eval}" if self.step_at_eval else ""
        extras += ", signed=True" if self.signed else ""
        return f"alpha={self.alpha}, beta={self.beta}, mode={self.mode!r}{extras}"


class Spike(nn.Module):
    """Exact step (or sign) forward with any registered surrogate's derivative backward.

    >>> Spike("atan", alpha=2.0)
    Spike(Atan(alpha=2.0), signed=False)
    """

    def __init__(self, surrogate: str | surrogates.Surrogate = "htaf", signed: bool = False, **params):
        super().__init__()
        self.surrogate = surrogates.get(surrogate, **params)
        self.signed = bool(signed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (F.sign_spike if self.signed else F.spike)(x, self.surrogate)

    def extra_repr(self) -> str:
        return f"{self.surrogate!r}, signed={self.signed}"


@contextlib.contextmanager
def use_mode(model: nn.Module, mode: str) -> Iterator[nn.Module]:
    """Temporarily set every :class:`HTAF` module inside ``model`` to ``mode``.

    Used to measure the *switch gap*: the same trained network evaluated with smooth HTAF and with
    the exact step.

    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), HTAF())
    >>> with use_mode(net, "step"):
    ...     out = net(torch.randn(3, 2))
    >>> bool(((out == 0) | (out == 1)).all())
    True
    """
    _check_mode(mode)
    modules = [m for m in model.modules() if isinstance(m, HTAF)]
    saved = [(m.mode, m.step_at_eval) for m in modules]
    try:
        for m in modules:
            m.mode, m.step_at_eval = mode, False
        yield model
    finally:
        for m, (old_mode, old_flag) in zip(modules, saved):
            m.mode, m.step_at_eval = old_mode, old_flag


# Binary layers (binary weights with real latent weights) and their bit-packed inference form.
from ._binary import (  # noqa: E402
    BinaryConv2d,
    BinaryLinear,
    PackedBinaryConv2d,
    PackedBinaryLinear,
    binary_layers,
    clip_latent_weights_,
    pack,
    popcount,
    storage_bits,
)

__all__ += [
    "BinaryLinear", "BinaryConv2d", "PackedBinaryLinear", "PackedBinaryConv2d", "binary_layers",
    "clip_latent_weights_", "pack", "popcount", "storage_bits",
]
