"""A multilayer perceptron whose hidden units are any unit of :func:`htaf.nn.make_unit`: the engine's baseline model.

>>> model = MLP(in_features=64, hidden=[32], out_features=10, method="relu")
>>> model(torch.zeros(5, 1, 8, 8)).shape
torch.Size([5, 10])
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import torch
from torch import nn

from htaf.nn import HTAF, REAL_ACTIVATIONS, make_unit

__all__ = ["MLP", "make_activation"]


def make_activation(name: str, **kwargs: Any) -> nn.Module:
    """Deprecated: use :func:`htaf.nn.make_unit`.

    Kept with its old meaning: ``'htaf'`` is ``htaf.nn.HTAF(**kwargs)`` (smooth unless ``kwargs`` say
    otherwise, also in eval mode) and ``'sigmoid'`` is ``torch.nn.Sigmoid``, whereas ``make_unit`` gives
    HTAF an exact step at inference and reads ``'sigmoid'`` as the sigmoid surrogate's spike.
    """
    warnings.warn("htaf.models.mlp.make_activation is deprecated; use htaf.nn.make_unit", DeprecationWarning,
                  stacklevel=2)
    if name == "htaf":
        return HTAF(**kwargs)
    legacy = {**REAL_ACTIVATIONS, "sigmoid": nn.Sigmoid}
    if name not in legacy:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join([*legacy, 'htaf'])}")
    return legacy[name](**kwargs)


class MLP(nn.Module):
    """Flatten, then ``Linear -> unit`` per hidden width, then a linear read-out.

    ``method`` and ``surrogate_params`` choose the unit (:func:`htaf.nn.make_unit`). The keywords
    ``activation`` and ``activation_kwargs`` are deprecated (see :func:`make_activation`).
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int],
        out_features: int,
        method: str = "relu",
        surrogate_params: dict[str, Any] | None = None,
        *,
        activation: str | None = None,
        activation_kwargs: dict[str, Any] | None = None,
    ):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for next_width in hidden:
            if activation is not None:
                unit = make_activation(activation, **(activation_kwargs or {}))
            else:
                unit = make_unit(method, surrogate_params=surrogate_params)
            layers += [nn.Linear(width, next_width), unit]
            width = next_width
        layers.append(nn.Linear(width, out_features))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
