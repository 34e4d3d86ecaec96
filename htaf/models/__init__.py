"""Model families used by the experiments."""

from htaf.models.mlp import MLP, make_activation

__all__ = ["MLP", "make_activation"]
