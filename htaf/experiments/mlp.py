"""``mlp``: a multilayer perceptron classifier, the engine's baseline experiment.

>>> from htaf.experiments import get, resolve_config
>>> model = get("mlp").build_model(resolve_config("mlp", "smoke"))
>>> sum(p.numel() for p in model.parameters())
2410
"""

from __future__ import annotations

import math

from torch import nn

from htaf import data
from htaf.experiments import Config, Experiment, register
from htaf.models import MLP


def build_model(config: Config) -> nn.Module:
    info = data.describe(config["dataset"], **config["data_kwargs"])
    return MLP(
        in_features=math.prod(info.input_shape),
        hidden=config["hidden"],
        out_features=info.num_outputs,
        activation=config["activation"],
        activation_kwargs=config["activation_kwargs"],
    )


def gradient_norms(model: nn.Module) -> dict[str, float]:
    """L2 norm of each Linear layer's weight gradient, keyed ``grad_norm_<i>``."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return {f"grad_norm_{i}": layer.weight.grad.norm().item() for i, layer in enumerate(linears)}


MODEL_DEFAULTS = {"activation": "relu", "activation_kwargs": {}}

EXPERIMENT = register(
    Experiment(
        name="mlp",
        description="MLP classifier with a configurable activation (engine baseline)",
        profiles={
            "smoke": {"dataset": "digits", "batch_size": 64, "epochs": 3, "lr": 3e-3, "seed": 0,
                      "hidden": [32], **MODEL_DEFAULTS},
            "cpu": {"dataset": "mnist", "batch_size": 128, "epochs": 5, "lr": 1e-3, "seed": 0,
                    "hidden": [256, 256], **MODEL_DEFAULTS},
            "gpu": {"dataset": "mnist", "batch_size": 256, "epochs": 20, "lr": 1e-3, "seed": 0,
                    "hidden": [1024, 1024], "lr_schedule": "cosine", **MODEL_DEFAULTS},
        },
        build_model=build_model,
        train_metrics=gradient_norms,
    )
)
