"""Model families used by the experiments."""

from htaf.models.dhn import DHN, firing_rates, firing_summary
from htaf.models.mlp import MLP, make_activation

__all__ = ["DHN", "MLP", "firing_rates", "firing_summary", "make_activation"]
