r"""Deep Heaviside networks (DHNs): MLPs whose hidden units are exact 0/1 threshold units at inference.

Following Kong, Chen, Langer and Schmidt-Hieber (2025, arXiv 2505.00110), three variants:

``plain``
    :math:`h_0 = x`, :math:`h_l = H(W_l h_{l-1} + b_l)` for :math:`l = 1..L`, output :math:`W_{L+1} h_L + b_{L+1}`.
    Every deeper layer only sees the binary code :math:`h_1 \in \{0,1\}^m` of the first layer, so the
    network is constant on the cells of the first layer's hyperplane arrangement, whatever its depth:
    depth cannot add resolution. This is our reading of why plain DHNs are limited; the paper itself
    states the limitation as VC-dimension and approximation-rate bounds.

``skip``
    Skip connections from the input into every hidden layer:

    .. math:: h_1 = H(W_1 x + b_1), \qquad h_l = H(W_l h_{l-1} + V_l x + b_l), \quad l \ge 2.

    Each layer places fresh hyperplanes in input space, so depth refines the partition. This is our
    reading of the paper's skip connections: a skip between *binary* layers (``h_l + h_{l-1}``, or
    concatenating earlier binary layers) would still be a function of :math:`h_1` and could not fix
    the bottleneck, so the skip has to carry the real-valued input. All units stay exactly 0/1.

``linear``
    A share of the units in every hidden layer has the identity activation:

    .. math:: h_l = \big(H(A_l h_{l-1} + a_l),\; B_l h_{l-1} + c_l\big),

    with :math:`k = \mathrm{round}(\text{linear\_share} \cdot m)` linear units (at least one) and
    :math:`m - k` threshold units per layer. The linear units carry real-valued information forward.

Hidden threshold units are built by :func:`htaf.nn.make_unit` from ``method`` (any binary unit of
:func:`htaf.nn.unit_methods`):

* ``"htaf"``: :class:`htaf.nn.HTAF` in ``"smooth"`` mode with ``step_at_eval=True``: smooth HTAF while
  training, exact step at inference (the *switch*).
* ``"htaf_anneal"``: the same module; the experiment raises ``alpha`` geometrically during training
  (:func:`htaf.nn.anneal`) so that the smooth function approaches the step before the switch.
* ``"htaf_hard"``: :class:`htaf.nn.HTAF` in ``"hard"`` mode: exact step forward, HTAF derivative backward.
* any other name of :func:`htaf.surrogates.available` (``"ste"``, ``"rectangle"``, ``"sigmoid"``, ``"atan"``,
  ...): :class:`htaf.nn.Spike`, exact step forward, that surrogate's derivative backward.
* ``"<surrogate>_smooth"`` (``"sigmoid_smooth"``, ...): :class:`htaf.nn.Smooth`, the surrogate's smooth
  primitive while training, exact step at inference.
* a real activation (``"relu"``, ``"tanh"``, ...; :func:`htaf.nn.unit_methods` with ``binary=False``): not a
  DHN but the real-valued reference network of the same shape (its "threshold units" are those activations).

Firing statistics of the threshold units: :func:`htaf.metrics.firing_rates` and
:func:`htaf.metrics.firing_summary`.

>>> net = DHN(in_features=4, out_features=3, width=8, depth=3, variant="skip", method="htaf")
>>> net.eval()(torch.zeros(2, 4)).shape
torch.Size([2, 3])
>>> net.binary_units, net.linear_units
([8, 8, 8], [0, 0, 0])
"""

from __future__ import annotations

import torch
from torch import nn

from htaf.nn import check_unit_method, make_unit

__all__ = [
    "VARIANTS",
    "DHN",
    "DHNLayer",
    "n_linear_units",
]

VARIANTS = ("plain", "skip", "linear")


def n_linear_units(width: int, linear_share: float) -> int:
    r"""Number of identity units per layer in the ``linear`` variant:
    :math:`k = \min(m - 1, \max(1, \mathrm{round}(s\,m)))`, so both kinds of unit are present.

    >>> n_linear_units(64, 0.25), n_linear_units(10, 0.01)
    (16, 1)
    """
    if width < 2:
        raise ValueError(f"the linear variant needs width >= 2 (one linear, one threshold unit), got {width}")
    if not 0.0 < linear_share < 1.0:
        raise ValueError(f"linear_share must lie strictly between 0 and 1, got {linear_share!r}")
    return min(width - 1, max(1, round(linear_share * width)))


class DHNLayer(nn.Module):
    r"""One hidden layer: :math:`h = (\mathrm{act}(z_{1:m-k}),\ z_{m-k+1:m})` with
    :math:`z = W h_{\text{prev}} + b\ (+\ V x)`; the skip term :math:`Vx` is computed by :class:`DHN`
    for all layers at once and passed in.

    Args:
        in_features: size of the previous layer's output.
        width: number of units ``m``.
        activation: the threshold module applied to the first ``m - k`` units.
        n_linear: ``k``, units with identity activation (the last ``k`` of the layer).
    """

    def __init__(self, in_features: int, width: int, activation: nn.Module, n_linear: int = 0):
        super().__init__()
        if not 0 <= n_linear < width:
            raise ValueError(f"n_linear must lie in [0, width); got {n_linear} for width {width}")
        self.linear = nn.Linear(in_features, width)
        self.act = activation
        self.width = width
        self.n_linear = n_linear

    @property
    def n_binary(self) -> int:
        """Number of threshold units in the layer."""
        return self.width - self.n_linear

    def forward(self, h: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        z = self.linear(h)
        if skip is not None:
            z = z + skip
        if self.n_linear == 0:
            return self.act(z)
        return torch.cat([self.act(z[:, : self.n_binary]), z[:, self.n_binary :]], dim=1)


class DHN(nn.Module):
    """A deep Heaviside network: ``depth`` hidden layers of ``width`` units and a linear read-out.

    The input is flattened. See the module docstring for the variants and methods.

    Args:
        in_features: input size after flattening.
        out_features: number of outputs (classes, or 1 for scalar regression).
        width: units per hidden layer.
        depth: number of hidden layers, >= 1.
        variant: ``"plain"``, ``"skip"`` or ``"linear"``.
        method: how the threshold units are trained (``"htaf"``, ``"htaf_hard"``, ``"ste"``, ...), or a real
            activation (``"relu"``) for the reference network.
        linear_share: share of identity units per layer, used by the ``linear`` variant only.
        surrogate_params: parameters of the unit's surrogate family (HTAF's ``alpha`` and ``beta`` for the HTAF
            methods, e.g. ``{"alpha": 8.0}``); the family's defaults where not given.
        peak_slope: rescale the surrogate so that its derivative at the threshold is this
            (:func:`htaf.nn.make_unit`; ``None``: ``surrogate_params`` as given; ignored by a real activation).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        width: int = 64,
        depth: int = 2,
        variant: str = "plain",
        method: str = "htaf",
        linear_share: float = 0.25,
        surrogate_params: dict[str, float] | None = None,
        peak_slope: float | None = None,
    ):
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features),
                            ("width", width), ("depth", depth)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if variant not in VARIANTS:
            raise ValueError(f"unknown DHN variant {variant!r}; choose one of {', '.join(VARIANTS)}")
        n_linear = n_linear_units(width, linear_share) if variant == "linear" else 0
        try:
            check_unit_method(method)
        except ValueError as error:
            raise ValueError(str(error).replace("unknown unit method", "unknown DHN method")) from None
        self.variant, self.method = variant, method
        self.layers = nn.ModuleList(
            DHNLayer(
                in_features if i == 0 else width,
                width,
                make_unit(method, peak_slope=peak_slope, surrogate_params=surrogate_params),
                n_linear=n_linear,
            )
            for i in range(depth)
        )
        # rows [(l-2) m, (l-1) m) of this weight are V_l, the skip weights of hidden layer l >= 2;
        # one GEMM for all layers is about twice as fast on a CPU as one per layer
        self.skip = (
            nn.Linear(in_features, width * (depth - 1), bias=False) if variant == "skip" and depth > 1 else None
        )
        self.readout = nn.Linear(width, out_features)

    @property
    def binary_units(self) -> list[int]:
        """Threshold units per hidden layer."""
        return [layer.n_binary for layer in self.layers]

    @property
    def linear_units(self) -> list[int]:
        """Identity units per hidden layer."""
        return [layer.n_linear for layer in self.layers]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        h = self.layers[0](x)
        if self.skip is not None:
            skips = self.skip(x).split(self.layers[0].width, dim=1)
            for layer, skip in zip(self.layers[1:], skips):
                h = layer(h, skip)
        else:
            for layer in self.layers[1:]:
                h = layer(h)
        return self.readout(h)
