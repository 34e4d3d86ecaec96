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
import dataclasses
import functools
import math
from typing import Iterator

import torch
from torch import nn

from . import functional as F
from . import surrogates
from ._kernels import HTAF_ALPHA, HTAF_BETA

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
        alpha: float = HTAF_ALPHA,
        beta: float = HTAF_BETA,
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

__all__ += ["Smooth", "make_unit", "unit_family", "unit_methods", "REAL_ACTIVATIONS"]


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
#: the real-valued twin of a binary network (the BNN family's reference: real weights, ReLU units)
FULL_PRECISION = "full_precision"
_SMOOTH_SUFFIX = "_smooth"
#: kinds of unit method: HTAF's module, a spike (step forward, surrogate backward), a smooth surrogate primitive,
#: a continuous activation, the full-precision reference
UNIT_KINDS = ("htaf", "spike", "smooth", "real", "reference")
#: the methods each kind of network accepts (:func:`unit_methods` with ``model``): threshold units (DHN, ICBM,
#: MLP: any unit), spiking neurons (SNN: a surrogate family, the LIF's spike wraps its surrogate) and sign units
#: (BNN: a surrogate family, the sign wraps it, or the full-precision twin)
MODEL_KINDS = {"threshold": ("htaf", "spike", "smooth", "real"), "spiking": ("surrogate",),
               "sign": ("surrogate", "reference")}
_HTAF_VARIANTS = {"htaf": "", "htaf_anneal": " (annealed alpha)", "htaf_hard": " (hard)"}
_REAL_LABELS = {"relu": "ReLU", "tanh": "tanh", "gelu": "GELU", "silu": "SiLU", "identity": "identity"}


@dataclasses.dataclass(frozen=True)
class UnitMethod:
    """One entry of the unit registry (:func:`unit_registry`): a ``method`` name, the ``kind`` of unit it builds
    (one of :data:`UNIT_KINDS`), its surrogate ``family`` (``None`` for a continuous unit) and its display ``label``.
    """

    name: str
    kind: str
    family: str | None
    label: str

    @property
    def binary(self) -> bool:
        """Whether the unit is binary at inference (an exact step or sign)."""
        return self.family is not None

    @property
    def surrogate(self) -> bool:
        """Whether ``name`` is a surrogate family itself (what a spiking or sign unit wraps)."""
        return self.family == self.name


def unit_registry() -> dict[str, UnitMethod]:
    """The one table of unit methods: ``method -> UnitMethod``, derived from the surrogate registry as it is now.

    HTAF's three variants, every other registered surrogate family as a spike and as ``<family>_smooth``, the
    continuous activations of :data:`REAL_ACTIVATIONS`, and ``"full_precision"`` (ReLU, the BNN's real-valued
    twin). :func:`unit_methods`, :func:`unit_family`, :func:`make_unit`, the experiments' method checks and the
    book's plot styles (:mod:`htaf.plotting`) all read it.

    >>> unit_registry()["htaf_hard"]
    UnitMethod(name='htaf_hard', kind='htaf', family='htaf', label='HTAF (hard)')
    >>> unit_registry()["sigmoid_smooth"].label, unit_registry()["full_precision"].kind
    ('sigmoid (smooth)', 'reference')
    """
    return dict(_unit_table(surrogates._registry_state()))


@functools.lru_cache(maxsize=16)
def _unit_table(state: tuple) -> dict[str, UnitMethod]:
    """The table for one state of the surrogate registry (built once per state: configs are validated by the
    thousand when a chapter reads its results). Callers get a copy."""
    table: dict[str, UnitMethod] = {}
    names = [name for name, _, _ in state]
    if "htaf" in names:
        label = surrogates.family_class("htaf").label
        for name, suffix in _HTAF_VARIANTS.items():
            table[name] = UnitMethod(name, "htaf", "htaf", label + suffix)
    others = [name for name in names if name != "htaf"]
    entries = [(name, "spike", name) for name in others]
    entries += [(f"{name}{_SMOOTH_SUFFIX}", "smooth", name) for name in others]
    for name, kind, family in sorted(entries):
        label = surrogates.family_class(family).label
        table[name] = UnitMethod(name, kind, family, label if kind == "spike" else f"{label} (smooth)")
    for name in REAL_ACTIVATIONS:
        table[name] = UnitMethod(name, "real", None, _REAL_LABELS.get(name, name))
    table[FULL_PRECISION] = UnitMethod(FULL_PRECISION, "reference", None, "full precision")
    return table


def _kinds(model: str) -> tuple[str, ...]:
    if model not in MODEL_KINDS:
        raise ValueError(f"unknown kind of network {model!r}; valid: {', '.join(MODEL_KINDS)}")
    return MODEL_KINDS[model]


def unit_methods(binary: bool | None = None, model: str = "threshold") -> list[str]:
    """Names :func:`make_unit` accepts for a ``model`` (:data:`MODEL_KINDS`: ``"threshold"``, the default, for
    DHN / ICBM / MLP units; ``"spiking"`` for the SNN; ``"sign"`` for the BNN), all of them (``binary=None``),
    the binary ones (``True``) or the continuous ones (``False``).

    >>> unit_methods(binary=False)
    ['relu', 'tanh', 'gelu', 'silu', 'identity']
    >>> [m for m in unit_methods(binary=True) if m.startswith(("htaf", "sigmoid"))]
    ['htaf', 'htaf_anneal', 'htaf_hard', 'sigmoid', 'sigmoid_smooth']
    >>> unit_methods(model="sign")[-2:], "htaf_hard" in unit_methods(model="spiking")
    (['triangle', 'full_precision'], False)
    """
    kinds = _kinds(model)
    return [name for name, spec in unit_registry().items()
            if (spec.kind in kinds or ("surrogate" in kinds and spec.surrogate))
            and (binary is None or spec.binary == binary)]


def check_unit_method(method: str, model: str = "threshold") -> UnitMethod:
    """The registry entry of ``method`` if a ``model`` network accepts it, else ``ValueError`` listing the valid ones.

    (:func:`htaf.experiments.check_method` is the same check for a config, raising the experiments' error.)
    """
    valid = unit_methods(model=model)
    if method not in valid:
        raise ValueError(f"unknown unit method {method!r}; valid: {', '.join(valid)}")
    return unit_registry()[method]


def unit_family(method: str) -> str | None:
    """The surrogate family behind a unit method (``None`` for a continuous activation).

    >>> unit_family("htaf_hard"), unit_family("sigmoid_smooth"), unit_family("ste"), unit_family("relu")
    ('htaf', 'sigmoid', 'ste', None)
    """
    table = unit_registry()
    if method not in table:
        raise ValueError(f"unknown unit method {method!r}; valid: {', '.join(table)}")
    return table[method].family


def unit_surrogate(method: str, peak_slope: float | None = None,
                   surrogate_params: dict[str, float] | None = None) -> surrogates.Surrogate | None:
    """The surrogate of unit ``method`` with ``surrogate_params`` over its family's defaults, rescaled to
    ``peak_slope`` (``None``: as given) by :func:`htaf.surrogates.with_peak_slope`: the one place the package
    resolves a unit's parameters and matches peak slopes (:func:`make_unit` builds every unit from it; for HTAF
    ``beta`` is rescaled and ``alpha`` kept). ``None`` for a continuous unit, which has no slope to match: it
    ignores ``peak_slope`` (so that an experiment's default slope applies to all its methods) and takes no
    ``surrogate_params``.

    >>> unit_surrogate("htaf_hard", 0.5), unit_surrogate("atan", 0.5), unit_surrogate("ste", 0.5)
    (HTAF(alpha=4.0, beta=0.5), Atan(alpha=1.0), STE())
    """
    family = unit_family(method)
    if family is None:
        if surrogate_params:
            raise ValueError(f"the continuous activation {method!r} takes no surrogate_params, "
                             f"got {sorted(surrogate_params)}")
        return None
    return surrogates.with_peak_slope(family, peak_slope, **(surrogate_params or {}))


def make_unit(
    method: str,
    *,
    peak_slope: float | None = None,
    surrogate_params: dict[str, float] | None = None,
    signed: bool = False,
) -> nn.Module:
    """The unit (activation) called ``method`` (a name of :func:`unit_registry`); every model family builds its
    units here.

    * ``"htaf"``, ``"htaf_anneal"``: :class:`HTAF` smooth while training, exact step in ``eval()``
      (``htaf_anneal``'s schedule of ``alpha`` is :func:`anneal_alpha`, applied by :func:`set_alpha`);
    * ``"htaf_hard"``: :class:`HTAF` in ``"hard"`` mode, exact step forward, HTAF derivative backward;
    * a surrogate name of :func:`htaf.surrogates.available` (``"ste"``, ``"atan"``, ...): :class:`Spike`,
      exact step forward, that surrogate's derivative backward;
    * ``"<surrogate>_smooth"`` (``"sigmoid_smooth"``, ...): :class:`Smooth`, the surrogate's primitive while
      training, exact step in ``eval()``;
    * ``"relu"``, ``"tanh"``, ``"gelu"``, ``"silu"``, ``"identity"``: continuous, never binarised;
      ``"full_precision"``: ReLU (the BNN's real-valued twin).

    ``surrogate_params`` are the parameters of the unit's surrogate family (HTAF's ``alpha`` and ``beta`` too;
    defaults: the family's), ``peak_slope`` rescales them so that the derivative at the threshold is this
    (:func:`unit_surrogate`, the one resolver). The spiking and sign units of the SNN and BNN wrap the resolved
    unit's ``.surrogate``. ``signed=True`` gives +/-1 instead of 0/1 (binary units only).

    >>> make_unit("htaf_hard", surrogate_params={"alpha": 8.0})
    HTAF(alpha=8.0, beta=1.0, mode='hard')
    >>> make_unit("sigmoid", surrogate_params={"alpha": 10.0})
    Spike(Sigmoid(alpha=10.0), signed=False)
    >>> make_unit("ste", signed=True), make_unit("sigmoid_smooth"), make_unit("relu")
    (Spike(STE(), signed=True), Smooth(Sigmoid(alpha=4.0), step_at_eval=True), ReLU())

    Raises:
        ValueError: an unknown ``method`` (the message lists :func:`unit_registry`), ``signed`` for a
            continuous activation, or ``surrogate_params`` for an activation that has none.
        TypeError: a parameter the surrogate family does not have.
    """
    surrogate = unit_surrogate(method, peak_slope, surrogate_params)
    kind = unit_registry()[method].kind
    if surrogate is None:
        if signed:
            raise ValueError(f"signed=True applies to binary units only, not to the activation {method!r}")
        return nn.ReLU() if kind == "reference" else REAL_ACTIVATIONS[method]()
    if kind == "htaf":
        if method == "htaf_hard":
            return HTAF(**surrogate.params, mode="hard", signed=signed)
        return HTAF(**surrogate.params, mode="smooth", step_at_eval=True, signed=signed)
    if kind == "smooth":
        return Smooth(surrogate, step_at_eval=True, signed=signed)
    return Spike(surrogate, signed=signed)


def canonical_surrogate_params(method: str, surrogate_params: dict[str, float] | None) -> dict[str, float]:
    """``surrogate_params`` of unit ``method`` in the one form a config stores, so that one computation has one hash:
    numbers as floats, entries equal to the family's default dropped (``{}`` and ``{"alpha": 4.0, "beta": 1.0}``
    name the same ``htaf`` run), sorted by name. A method without parameters (a continuous unit, STE) rejects any.

    >>> canonical_surrogate_params("htaf", {"beta": 1, "alpha": 8}), canonical_surrogate_params("htaf_hard", {"alpha": 4})
    ({'alpha': 8.0}, {})

    Raises:
        ValueError: an unknown method, or parameters the method does not have (the message names the valid ones).
    """
    params = dict(surrogate_params or {})
    family = unit_family(method)
    defaults = surrogates.family_class(family).defaults if family is not None else {}
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)} for unit method {method!r}; "
                         f"valid: {', '.join(defaults) or 'none'}")
    canonical = {}
    for key in sorted(params):
        value = params[key]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = float(value)
        if value != defaults[key]:
            canonical[key] = value
    return canonical


# --------------------------------------------------------------------------------------------
# HTAF's annealed sharpness (``htaf_anneal``)
# --------------------------------------------------------------------------------------------

__all__ += ["UnitMethod", "unit_registry", "unit_surrogate", "check_unit_method", "canonical_surrogate_params",
            "FULL_PRECISION", "ANNEAL_ALPHA_END", "anneal_alpha", "set_alpha", "anneal"]

#: the default final sharpness of ``htaf_anneal`` (config key ``alpha_end``)
ANNEAL_ALPHA_END = 32.0


def anneal_alpha(epoch: int, epochs: int, alpha_start: float, alpha_end: float) -> float:
    r"""Geometric schedule :math:`\alpha_e = \alpha_0 (\alpha_1/\alpha_0)^{e/(E-1)}` for epoch ``e`` of ``E``.

    The first epoch uses ``alpha_start``, the last ``alpha_end``.

    >>> [round(anneal_alpha(e, 3, 2.0, 32.0), 3) for e in range(3)]
    [2.0, 8.0, 32.0]
    """
    if alpha_start <= 0 or alpha_end <= 0:
        raise ValueError(f"alpha_start and alpha_end must be > 0, got {alpha_start!r}, {alpha_end!r}")
    if epochs <= 1:
        return float(alpha_end)
    progress = min(max(epoch / (epochs - 1), 0.0), 1.0)
    return float(alpha_start * math.exp(progress * math.log(alpha_end / alpha_start)))


def set_alpha(model: nn.Module, alpha: float) -> None:
    """Set the sharpness of every :class:`HTAF` module in ``model`` (forward and surrogate)."""
    for module in model.modules():
        if isinstance(module, HTAF):
            module.alpha = alpha


def anneal(model: nn.Module, epoch: int, config: dict) -> float | None:
    """``htaf_anneal``'s schedule, the one every experiment uses: at the start of ``epoch`` (from 0) set every HTAF
    unit of ``model`` to :func:`anneal_alpha` from the unit's resolved ``alpha`` (``surrogate_params`` or HTAF's
    default; peak-slope matching keeps it) to ``config["alpha_end"]`` over ``config["epochs"]``. Computed from the
    config alone (no state kept between calls). Returns the alpha set, or ``None`` for any other method.
    """
    if config["method"] != "htaf_anneal":
        return None
    start = unit_surrogate(config["method"], config["peak_slope"], config["surrogate_params"]).alpha
    alpha = anneal_alpha(epoch, config["epochs"], start, config["alpha_end"])
    set_alpha(model, alpha)
    return alpha


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
