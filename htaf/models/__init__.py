"""Model families used by the experiments."""

from htaf.models.dhn import DHN
from htaf.models.mlp import MLP
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
    "DHN", "LIF", "MLP", "DirectEncoder", "RateEncoder", "SpikingNet", "csnn", "fc_snn", "lif_multistep", "spike_rates",
]
