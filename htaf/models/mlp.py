"""A multilayer perceptron whose hidden units are any unit of :func:`htaf.nn.make_unit`: the engine's baseline model.

>>> model = MLP(in_features=64, hidden=[32], out_features=10, method="relu")
>>> model(torch.zeros(5, 1, 8, 8)).shape
torch.Size([5, 10])
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from htaf.nn import make_unit

__all__ = ["MLP"]


class MLP(nn.Module):
    """Flatten, then ``Linear -> unit`` per hidden width, then a linear read-out.

    ``method`` and ``surrogate_params`` choose the unit (:func:`htaf.nn.make_unit`).
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int],
        out_features: int,
        method: str = "relu",
        surrogate_params: dict[str, Any] | None = None,
    ):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for next_width in hidden:
            unit = make_unit(method, surrogate_params=surrogate_params)
            layers += [nn.Linear(width, next_width), unit]
            width = next_width
        layers.append(nn.Linear(width, out_features))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
