"""Model families used by the experiments."""

from htaf.models.dhn import DHN, firing_rates, firing_summary
from htaf.models.mlp import MLP, make_activation
from htaf.models.snn import (
    LIF,
    DirectEncoder,
    RateEncoder,
    SpikingNet,
    csnn,
    fc_snn,
    lif_multistep,
    spike_rates,
)

__all__ = [
    "DHN", "LIF", "MLP", "DirectEncoder", "RateEncoder", "SpikingNet", "csnn", "fc_snn", "firing_rates",
    "firing_summary", "lif_multistep", "make_activation", "spike_rates",
]
