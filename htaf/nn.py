"""Modules: every binary unit and binary layer of the package.

* Units: :class:`HTAF` (smooth, hard or exact-step), :class:`Spike` (exact step, any surrogate backward),
  :class:`Smooth` (any surrogate's primitive while training, exact step at inference), :func:`use_mode`,
  and :func:`make_unit`, the one factory every model family builds its units with.
* Binary layers: :class:`BinaryLinear`, :class:`BinaryConv2d` (binary weights, real latent weights),
  :func:`clip_latent_weights_`, and the bit-packed inference form :func:`pack` (XNOR and popcount on integers).

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
    """Temporarily set every :class:`HTAF` and :class:`Smooth` module inside ``model`` to ``mode``.

    Used to measure the *switch gap*: the same trained network evaluated with smooth HTAF and with
    the exact step.

    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), HTAF())
    >>> with use_mode(net, "step"):
    ...     out = net(torch.randn(3, 2))
    >>> bool(((out == 0) | (out == 1)).all())
    True
    """
    _check_mode(mode)
    modules = [m for m in model.modules() if isinstance(m, SWITCHABLE)]
    saved = [(m.mode, m.step_at_eval) for m in modules]
    try:
        for m in modules:
            m.mode, m.step_at_eval = mode, False
        yield model
    finally:
        for m, (old_mode, old_flag) in zip(modules, saved):
            m.mode, m.step_at_eval = old_mode, old_flag


# --------------------------------------------------------------------------------------------
# Smooth surrogate units and the unit factory every model family builds its units with
# --------------------------------------------------------------------------------------------

from ._validation import check_float_tensor  # noqa: E402

__all__ += ["Smooth", "make_unit", "unit_family", "unit_methods", "unit_params", "REAL_ACTIVATIONS"]


class Smooth(nn.Module):
    """Any surrogate's smooth primitive as an activation, with the same three modes as :class:`HTAF`.

    * ``"smooth"``: ``surrogate.primitive(x)`` forward, its autograd gradient backward (for example the
      naive sigmoid bottleneck, ``Smooth("sigmoid")``);
    * ``"hard"``: exact step forward, the surrogate's derivative backward (as :class:`Spike`);
    * ``"step"``: exact step forward, detached.

    With ``step_at_eval`` (default) the module is the exact step in ``eval()`` mode; ``signed`` gives the
    +/-1 form ``2 F(x) - 1`` (``sign`` exactly). :func:`use_mode` switches it like :class:`HTAF`.

    >>> unit = Smooth("sigmoid", alpha=4.0)
    >>> x = torch.tensor([-1.0, 0.5])
    >>> unit(x).round(decimals=3), unit.eval()(x)
    (tensor([0.0180, 0.8810]), tensor([0., 1.]))
    """

    def __init__(self, surrogate: str | surrogates.Surrogate = "sigmoid", step_at_eval: bool = True,
                 signed: bool = False, mode: str = "smooth", **params):
        super().__init__()
        self.surrogate = surrogates.get(surrogate, **params)
        self.mode = _check_mode(mode)
        self.step_at_eval = bool(step_at_eval)
        self.signed = bool(signed)

    @property
    def active_mode(self) -> str:
        """The mode the next forward call uses (``"step"`` in eval mode when ``step_at_eval``)."""
        return "step" if self.step_at_eval and not self.training else self.mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mode = _check_mode(self.active_mode)
        if mode == "smooth":
            y = self.surrogate.primitive(check_float_tensor(x, "Smooth"))
            return 2.0 * y - 1.0 if self.signed else y
        if mode == "hard":
            return (F.sign_spike if self.signed else F.spike)(x, self.surrogate)
        return F.sign(x) if self.signed else F.heaviside(x)

    def extra_repr(self) -> str:
        extras = f", mode={self.mode!r}" if self.mode != "smooth" else ""
        extras += ", step_at_eval=True" if self.step_at_eval else ""
        extras += ", signed=True" if self.signed else ""
        return f"{self.surrogate!r}{extras}"


#: modules :func:`use_mode` switches between smooth, hard and step
SWITCHABLE = (HTAF, Smooth)

#: continuous activations :func:`make_unit` also builds (never binarised)
REAL_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU, "identity": nn.Identity,
}
_HTAF_METHODS = ("htaf", "htaf_anneal", "htaf_hard")
_SMOOTH_SUFFIX = "_smooth"


def unit_methods(binary: bool | None = None) -> list[str]:
    """Names :func:`make_unit` accepts: the binary units (``binary=True``), the real activations
    (``binary=False``) or both (default).

    >>> unit_methods(binary=False)
    ['relu', 'tanh', 'gelu', 'silu', 'identity']
    >>> [m for m in unit_methods(binary=True) if m.startswith(("htaf", "sigmoid"))]
    ['htaf', 'htaf_anneal', 'htaf_hard', 'sigmoid', 'sigmoid_smooth']
    """
    others = [name for name in surrogates.available() if name != "htaf"]
    binary_names = [*_HTAF_METHODS, *sorted([*others, *(f"{name}{_SMOOTH_SUFFIX}" for name in others)])]
    if binary is None:
        return [*binary_names, *REAL_ACTIVATIONS]
    return binary_names if binary else list(REAL_ACTIVATIONS)


def unit_family(method: str) -> str | None:
    """The surrogate family behind a unit method (``None`` for a continuous activation).

    >>> unit_family("htaf_hard"), unit_family("sigmoid_smooth"), unit_family("ste"), unit_family("relu")
    ('htaf', 'sigmoid', 'ste', None)
    """
    if method in REAL_ACTIVATIONS:
        return None
    if method not in unit_methods(binary=True):
        raise ValueError(f"unknown unit method {method!r}; valid: {', '.join(unit_methods())}")
    return "htaf" if method in _HTAF_METHODS else method.removesuffix(_SMOOTH_SUFFIX)


def unit_params(method: str, peak_slope: float | None = None,
                surrogate_params: dict[str, float] | None = None) -> dict[str, float]:
    """The surrogate parameters of unit ``method`` rescaled to ``peak_slope`` (``None``: ``surrogate_params`` as
    given, over the family's defaults), by :func:`htaf.surrogates.with_peak_slope`: the one place every model
    family matches peak slopes. A continuous activation takes neither.

    >>> unit_params("htaf_hard", 0.5), unit_params("atan", 0.5), unit_params("ste", 0.5)
    ({'alpha': 4.0, 'beta': 0.5}, {'alpha': 1.0}, {})
    """
    family = unit_family(method)
    if family is None:
        if peak_slope is not None or surrogate_params:
            raise ValueError(f"the continuous activation {method!r} takes no peak_slope or surrogate_params")
        return {}
    return dict(surrogates.with_peak_slope(family, peak_slope, **(surrogate_params or {})).params)


def make_unit(
    method: str,
    *,
    alpha: float = 4.0,
    beta: float = 1.0,
    surrogate_params: dict[str, float] | None = None,
    signed: bool = False,
    peak_slope: float | None = None,
) -> nn.Module:
    """The unit (activation) called ``method``; every model family builds its units here.

    * ``"htaf"``, ``"htaf_anneal"``: :class:`HTAF` smooth while training, exact step in ``eval()``
      (``htaf_anneal``'s schedule of ``alpha`` is the experiment's business);
    * ``"htaf_hard"``: :class:`HTAF` in ``"hard"`` mode, exact step forward, HTAF derivative backward;
    * a surrogate name of :func:`htaf.surrogates.available` (``"ste"``, ``"atan"``, ...): :class:`Spike`,
      exact step forward, that surrogate's derivative backward;
    * ``"<surrogate>_smooth"`` (``"sigmoid_smooth"``, ...): :class:`Smooth`, the surrogate's primitive while
      training, exact step in ``eval()``;
    * ``"relu"``, ``"tanh"``, ``"gelu"``, ``"silu"``, ``"identity"``: continuous, never binarised.

    ``alpha`` and ``beta`` parametrise HTAF; ``surrogate_params`` are the parameters of the unit's surrogate
    family (for the HTAF methods they may also give ``alpha`` and ``beta``, and win over the keywords).
    ``signed=True`` gives +/-1 instead of 0/1 (binary units only). ``peak_slope`` rescales the unit's surrogate so
    that its derivative at the threshold is this (:func:`unit_params`; for HTAF ``beta`` is rescaled, ``alpha``
    kept).

    >>> make_unit("htaf_hard", alpha=8.0)
    HTAF(alpha=8.0, beta=1.0, mode='hard')
    >>> make_unit("sigmoid", surrogate_params={"alpha": 10.0})
    Spike(Sigmoid(alpha=10.0), signed=False)
    >>> make_unit("ste", signed=True), make_unit("sigmoid_smooth"), make_unit("relu")
    (Spike(STE(), signed=True), Smooth(Sigmoid(alpha=4.0), step_at_eval=True), ReLU())

    Raises:
        ValueError: an unknown ``method`` (the message lists :func:`unit_methods`), ``signed`` for a
            continuous activation, or ``surrogate_params`` for an activation that has none.
        TypeError: a parameter the surrogate family does not have.
    """
    params = dict(surrogate_params or {})
    if peak_slope is not None:
        base = {"alpha": alpha, "beta": beta, **params} if method in _HTAF_METHODS else params
        params = unit_params(method, peak_slope, base)
    if method in REAL_ACTIVATIONS:
        if signed:
            raise ValueError(f"signed=True applies to binary units only, not to the activation {method!r}")
        if params:
            raise ValueError(f"the activation {method!r} takes no surrogate_params, got {sorted(params)}")
        return REAL_ACTIVATIONS[method]()
    if method in _HTAF_METHODS:
        params = {"alpha": alpha, "beta": beta, **params}
        surrogates.get("htaf", **params)  # unknown parameters fail here, naming the valid ones
        if method == "htaf_hard":
            return HTAF(**params, mode="hard", signed=signed)
        return HTAF(**params, mode="smooth", step_at_eval=True, signed=signed)
    if method in unit_methods(binary=True):
        if method.endswith(_SMOOTH_SUFFIX):
            return Smooth(method.removesuffix(_SMOOTH_SUFFIX), step_at_eval=True, signed=signed, **params)
        return Spike(method, signed=signed, **params)
    raise ValueError(f"unknown unit method {method!r}; valid: {', '.join(unit_methods())}")


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
