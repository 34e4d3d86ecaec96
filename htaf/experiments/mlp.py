"""``mlp``: a multilayer perceptron classifier, the engine's baseline experiment.

Config keys (besides the engine's): ``hidden`` (widths), ``method`` (any :func:`htaf.nn.unit_methods`
name: ``relu``, ``htaf``, a surrogate spike, ...) and ``surrogate_params``. Per epoch,
``grad_norm_fc<k>`` is the gradient norm of the k-th linear layer (:func:`htaf.metrics.gradient_norms`).

>>> from htaf.experiments import get, resolve_config
>>> model = get("mlp").build_model(resolve_config("mlp", "smoke"))
>>> sum(p.numel() for p in model.parameters())
2410
"""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from htaf import data, metrics
from htaf.experiments import Config, Experiment, check_method, check_widths, register
from htaf.models import MLP


def build_model(config: Config) -> nn.Module:
    info = data.describe(config["dataset"], **config["data_kwargs"])
    return MLP(
        in_features=math.prod(info.input_shape),
        hidden=config["hidden"],
        out_features=info.num_outputs,
        method=config["method"],
        surrogate_params=config["surrogate_params"],
    )


def validate(config: Config) -> None:
    """``hidden`` widths, a known ``method`` and ``surrogate_params`` that method accepts."""
    check_widths(config, "hidden")
    check_method(config)


MODEL_DEFAULTS: dict[str, Any] = {"method": "relu", "surrogate_params": {}}

#: ``GRIDS["mlp"][profile][sweep]``: the baseline run of each profile
GRIDS: dict[str, dict[str, dict[str, dict[str, list[Any]]]]] = {
    "mlp": {profile: {"baseline": {}} for profile in ("smoke", "cpu", "gpu")},
}

EXPERIMENT = register(
    Experiment(
        name="mlp",
        description="MLP classifier with a configurable unit (engine baseline)",
        profiles={
            "smoke": {"dataset": "digits", "batch_size": 64, "epochs": 3, "lr": 3e-3, "seed": 0,
                      "hidden": [32], **MODEL_DEFAULTS},
            "cpu": {"dataset": "mnist", "batch_size": 128, "epochs": 5, "lr": 1e-3, "seed": 0,
                    "hidden": [256, 256], **MODEL_DEFAULTS},
            "gpu": {"dataset": "mnist", "batch_size": 256, "epochs": 20, "lr": 1e-3, "seed": 0,
                    "hidden": [1024, 1024], "lr_schedule": "cosine", **MODEL_DEFAULTS},
        },
        build_model=build_model,
        train_metrics=metrics.gradient_norms,
        validate=validate,
        grids=GRIDS["mlp"],
    )
)
