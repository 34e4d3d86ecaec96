"""A multilayer perceptron with a configurable activation: the engine's baseline model.

>>> model = MLP(in_features=64, hidden=[32], out_features=10, activation="relu")
>>> model(torch.zeros(5, 1, 8, 8)).shape
torch.Size([5, 10])
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

TORCH_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "identity": nn.Identity,
}


def make_activation(name: str, **kwargs: Any) -> nn.Module:
    """Build an activation module by name.

    ``'htaf'`` builds ``htaf.nn.HTAF(**kwargs)`` (e.g. ``alpha``, ``beta``,
    ``mode``); the other names are torch modules.

    >>> make_activation("tanh")
    Tanh()
    """
    if name == "htaf":
        from htaf.nn import HTAF

        return HTAF(**kwargs)
    if name not in TORCH_ACTIVATIONS:
        choices = ", ".join([*TORCH_ACTIVATIONS, "htaf"])
        raise ValueError(f"unknown activation {name!r}; choose one of {choices}")
    return TORCH_ACTIVATIONS[name](**kwargs)


class MLP(nn.Module):
    """Flatten, then ``Linear -> activation`` per hidden width, then a linear read-out."""

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int],
        out_features: int,
        activation: str = "relu",
        activation_kwargs: dict[str, Any] | None = None,
    ):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for next_width in hidden:
            layers += [nn.Linear(width, next_width), make_activation(activation, **(activation_kwargs or {}))]
            width = next_width
        layers.append(nn.Linear(width, out_features))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
