r"""``icbm``: implicit concept bottleneck models (:mod:`htaf.models.icbm`), the paper's own model.

An image classifier whose last feature layer is K binary concepts: HTAF (or another unit) while training, the
exact Heaviside step at inference, a linear head on the bits.

Config keys (besides the engine's):

* ``arch`` (``"cnn"``: :func:`htaf.models.icbm.small_cnn` with ``channels``; ``"resnet18"``), ``num_concepts`` (K).
* ``method``: the concept unit, any of :func:`htaf.nn.unit_methods`: ``htaf`` (smooth while training, step at
  inference), ``htaf_hard`` (step forward, HTAF backward), ``htaf_anneal`` (``htaf`` whose ``alpha`` grows
  geometrically from the unit's ``alpha`` to ``alpha_end`` over training, :func:`htaf.nn.anneal`),
  ``sigmoid_smooth`` (the naive sigmoid bottleneck thresholded at inference), ``ste`` (straight-through step), ...
  or ``relu`` / ``identity`` (a continuous bottleneck: the *standard model*).
* ``surrogate_params``: the unit's parameters (HTAF's ``alpha`` and ``beta`` too), ``alpha_end``: ``htaf_anneal``'s
  final sharpness.
* ``peak_slope``: the unit's derivative at 0 (:func:`htaf.nn.make_unit`; ``None``: the family's defaults, or
  ``surrogate_params``; a continuous bottleneck ignores it). Default 1, HTAF's :math:`\alpha\beta/4` at
  :math:`\alpha=4, \beta=1`. STE has no parameter: its peak slope is 1/2 and it needs ``peak_slope=None``.
* ``activity_penalty``: weight of the mean concept activity added to the loss (sparser codes).
* ``concept_supervision``: weight of a binary cross-entropy that ties the first A concepts to the dataset's A
  ground-truth attributes (a jointly trained, *supervised* concept bottleneck; needs ``concept_shapes``).
* ``freeze_backbone``: keep the backbone and the concept map at their random initialisation and train only the
  normalisation and the head (the *untrained* floor).
* ``probe_images``: how many test images' concept vectors are stored in the results file (``concept_bits``).

Metrics added at the end (binary units only; the standard model has its accuracy alone):

* :func:`htaf.metrics.switch_metrics`: ``accuracy_step`` (= ``test_accuracy``), ``accuracy_smooth`` and
  ``switch_gap`` (smooth minus step, in accuracy);
* :func:`htaf.models.icbm.concept_statistics` of the test set's concepts (``bits_per_image``, ``never_on_share``, ...)
  and ``undecided_share``: the share of (image, concept) pairs whose smooth activation is more than 0.1 away from
  its bit (what the switch to the step changes for a smooth unit: the sign cannot change, only the magnitude);
* ``ablation_accuracy``: test accuracy with concept k switched off, for every k; ``head_weight``, ``head_bias``;
  ``concept_bits``: the first ``probe_images`` test images' concepts as hex strings (:func:`htaf.models.icbm.hex_to_bits`);
* with attributes (``concept_shapes``): ``concept_auc`` (K x A, :func:`htaf.models.icbm.concept_attribute_auc`),
  ``matched_concepts`` and ``matched_auc`` (:func:`htaf.models.icbm.match_concepts`), ``probe_<attribute>`` (a linear
  probe from all K bits, fitted on the training images, scored on the test images) and, for the ``"xor"`` label
  rule, ``probe_rule_bit0`` and ``probe_rule_bit1``.

>>> from htaf.experiments import get, resolve_config
>>> model = get("icbm").build_model(resolve_config("icbm", "smoke"))
>>> model.num_concepts, type(model.unit).__name__
(8, 'HTAF')
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from htaf import data, metrics
from htaf.data import concept_shapes
from htaf.experiments import (
    Batch,
    Config,
    ConfigError,
    Experiment,
    MAX_WIDTH,
    UnknownChoiceError,
    check_int,
    check_method,
    check_number,
    default_loss,
    register,
    tuning_sweeps,
    SEEDS,
    TUNING_SEEDS,
)
from htaf.models import icbm
from htaf.nn import ANNEAL_ALPHA_END, SWITCHABLE, anneal, make_unit, unit_family, use_mode

MODEL_DEFAULTS: dict[str, Any] = {
    "arch": "cnn",
    "channels": [16, 32, 64],
    "num_concepts": 32,
    "method": "htaf",
    "peak_slope": 1.0,
    "surrogate_params": {},
    "alpha_end": ANNEAL_ALPHA_END,
    "activity_penalty": 0.0,
    "concept_supervision": 0.0,
    "freeze_backbone": False,
    "probe_images": 1000,
}


def build_model(config: Config) -> icbm.ICBM:
    """The ICBM of ``config`` for its dataset (frozen backbone and concept map with ``freeze_backbone``)."""
    info = data.describe(config["dataset"], **config["data_kwargs"])
    if info.task != "classification" or len(info.input_shape) != 3:
        raise ConfigError(f"the icbm experiment needs an image classification dataset, got {config['dataset']!r}")
    model = icbm.build(config["arch"], info.input_shape, info.num_outputs, num_concepts=config["num_concepts"],
                       method=config["method"], peak_slope=config["peak_slope"],
                       surrogate_params=config["surrogate_params"], channels=config["channels"])
    if config["freeze_backbone"]:
        for module in (model.backbone, model.to_concepts):
            module.requires_grad_(False)
    return model


def validate(config: Config) -> None:
    """Check the model keys before any data loads."""
    if config["arch"] not in icbm.ARCHS:
        raise UnknownChoiceError("ICBM arch", config["arch"], list(icbm.ARCHS))
    check_method(config, kind="ICBM method")
    check_int(config, "num_concepts", 1, MAX_WIDTH)
    check_int(config, "probe_images", 0)
    check_number(config, "alpha_end")
    check_number(config, "activity_penalty", strict=False)
    check_number(config, "concept_supervision", strict=False)
    continuous = unit_family(config["method"]) is None
    if continuous and (config["activity_penalty"] or config["freeze_backbone"]):
        raise ConfigError("activity_penalty and freeze_backbone apply to binary concept units only; "
                          f"method {config['method']!r} is a continuous bottleneck")
    if config["concept_supervision"]:
        names = _attribute_names(config)
        if names is None:
            raise ConfigError(f"concept_supervision needs a dataset with ground-truth attributes (concept_shapes), "
                              f"not {config['dataset']!r}")
        if config["num_concepts"] < len(names):
            raise ConfigError(f"concept_supervision ties {len(names)} concepts to the attributes; "
                              f"num_concepts is {config['num_concepts']}")
    # what building the model would check, without building it (no torchvision, no weights)
    info = data.describe(config["dataset"], **config["data_kwargs"])
    if info.task != "classification" or len(info.input_shape) != 3:
        raise ConfigError(f"the icbm experiment needs an image classification dataset, got {config['dataset']!r}")
    try:
        make_unit(config["method"], peak_slope=config["peak_slope"], surrogate_params=config["surrogate_params"])
        if config["arch"] == "cnn":
            icbm.channel_widths(config["channels"])
    except (TypeError, ValueError) as error:
        raise ConfigError(f"invalid icbm config: {error}") from None


def _attribute_names(config: Config) -> tuple[str, ...] | None:
    return concept_shapes.ATTRIBUTE_NAMES if config["dataset"] == "concept_shapes" else None


def loss(outputs: torch.Tensor, batch: Batch, config: Config) -> torch.Tensor:
    """Cross entropy, plus (while training) the activity penalty and the concept supervision."""
    total = default_loss(outputs, batch, config)
    activity = getattr(outputs, "concept_activity", None)
    if activity is not None and config["activity_penalty"]:
        total = total + config["activity_penalty"] * activity.float().mean()
    logits = getattr(outputs, "concept_logits", None)
    if logits is not None and config["concept_supervision"]:
        if batch.attributes is None:
            raise ConfigError(f"concept_supervision needs attribute batches; {config['dataset']!r} has none")
        k = batch.attributes.shape[1]
        total = total + config["concept_supervision"] * F.binary_cross_entropy_with_logits(
            logits[:, :k].float(), batch.attributes.float())
    return total


def on_epoch_start(model: nn.Module, epoch: int, config: Config) -> None:
    """``htaf_anneal``: alpha from the unit's (first epoch) to ``alpha_end`` (last epoch), :func:`htaf.nn.anneal`."""
    anneal(model, epoch, config)


def train_metrics(model: nn.Module) -> dict[str, float]:
    """Per-layer gradient norms (:func:`htaf.metrics.gradient_norms`; the concept map is the second-last ``fc``)."""
    return metrics.gradient_norms(model)


@torch.no_grad()
def _collect(model: icbm.ICBM, loader, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Concept bits, smooth activations (the unit in smooth mode) and labels of every batch, in eval mode."""
    model.eval()
    bits, smooth, labels = [], [], []
    for batch in loader:
        x = batch[0].to(device).float()
        pre = model.pre_activations(x)
        bits.append((pre > 0).float().cpu())
        with use_mode(model, "smooth"):
            smooth.append(model.unit(pre).float().cpu() if isinstance(model.unit, SWITCHABLE) else bits[-1])
        labels.append(batch[1].cpu())
    return torch.cat(bits), torch.cat(smooth), torch.cat(labels)


def semantic_metrics(model: icbm.ICBM, test_bits: torch.Tensor, config: Config, device: torch.device) -> dict[str, Any]:
    """Alignment of the concepts with ``concept_shapes``' attributes (AUC, matching, linear probes)."""
    train_set = data.load(config["dataset"], "train", **config["data_kwargs"])
    test_set = data.load(config["dataset"], "test", **config["data_kwargs"])
    if not isinstance(train_set, data.AttributeDataset):
        raise ValueError(f"semantic metrics need a dataset with ground-truth attributes; {config['dataset']!r} has none")
    if config["subset"] is not None:
        train_set = train_set.head(config["subset"])
    batches = [(train_set.tensors[0][i:i + 256], train_set.tensors[1][i:i + 256])
               for i in range(0, len(train_set), 256)]
    train_bits = _collect(model, batches, device)[0]
    out: dict[str, Any] = {}
    auc = icbm.concept_attribute_auc(test_bits, test_set.attributes)
    out["concept_auc"] = auc.round(4).tolist()
    out["matched_concepts"], out["matched_auc"] = icbm.match_concepts(auc)
    names = train_set.attribute_names
    for j, name in enumerate(names):
        out[f"probe_{name}"] = icbm.probe_accuracy(train_bits, train_set.attributes[:, j], test_bits,
                                                      test_set.attributes[:, j])
    if config["data_kwargs"].get("label_rule", "xor") == "xor":
        for bit in (0, 1):
            out[f"probe_rule_bit{bit}"] = icbm.probe_accuracy(
                train_bits, (train_set.tensors[1] >> bit) & 1, test_bits, (test_set.tensors[1] >> bit) & 1)
    return out


def eval_metrics(model: nn.Module, loader: DataLoader, device: torch.device, config: Config) -> dict[str, Any]:
    """The switch gap, concept statistics, per-concept ablation and (with attributes) the semantic metrics."""
    on_epoch_start(model, config["epochs"] - 1, config)
    if not model.binary:
        return {}
    out: dict[str, Any] = metrics.switch_metrics(model, loader, device, config, EXPERIMENT)
    bits, smooth, labels = _collect(model, loader, device)
    out.update(icbm.concept_statistics(bits))
    out["undecided_share"] = float(((smooth - bits).abs() > 0.1).double().mean())
    weight, bias = model.head.weight.detach().float().cpu(), model.head.bias.detach().float().cpu()
    logits = bits @ weight.T + bias
    out["head_accuracy"] = float((logits.argmax(dim=1) == labels).double().mean())
    out["ablation_accuracy"] = [
        float(((logits - bits[:, k:k + 1] * weight[:, k]).argmax(dim=1) == labels).double().mean())
        for k in range(bits.shape[1])]
    out["head_weight"] = weight.numpy().round(5).tolist()
    out["head_bias"] = bias.numpy().round(5).tolist()
    out["concept_bits"] = icbm.bits_to_hex(bits[: config["probe_images"]]) if config["probe_images"] else []
    if _attribute_names(config) is not None:
        out.update(semantic_metrics(model, bits, config, device))
    return out


PROFILES: dict[str, Config] = {
    # CI: a small concept_shapes set and a tiny CNN, a few seconds per run
    "smoke": {**MODEL_DEFAULTS, "dataset": "concept_shapes", "batch_size": 64, "epochs": 2, "lr": 3e-3, "seed": 0,
              "data_kwargs": {"n_train": 256, "n_test": 128, "image_size": 16}, "channels": [8, 16],
              "num_concepts": 8, "probe_images": 64},
    # 2-core CPU: a narrow CNN (8-16-32 channels), the first 8000 training images, 3 epochs, cosine schedule, scored
    # on the first 2000 test images
    "cpu": {**MODEL_DEFAULTS, "dataset": "mnist", "subset": 8000, "data_kwargs": {"n_test": 2000}, "batch_size": 64,
            "epochs": 3, "lr": 3e-3, "seed": 0, "lr_schedule": "cosine", "channels": [8, 16, 32]},
    # one GPU: ResNet-18 on full CIFAR-10, 64 concepts, SGD as for ResNets on CIFAR, float32 (the exact step of a
    # bf16 pre-activation can flip concepts near the threshold)
    "gpu": {**MODEL_DEFAULTS, "dataset": "cifar10", "arch": "resnet18", "num_concepts": 64, "batch_size": 128,
            "epochs": 100, "lr": 0.1, "optimizer": "sgd", "momentum": 0.9, "weight_decay": 5e-4,
            "lr_schedule": "cosine", "amp": False, "seed": 0},
}

#: the concept units compared at matched peak slope 1, STE at its own (1/2), and the continuous standard model
MATCHED = ["htaf", "htaf_hard", "sigmoid_smooth"]
SHAPES = {"n_train": 2000, "n_test": 1000}


def _methods(**fixed: list[Any]) -> dict[str, dict[str, list[Any]]]:
    return {"matched": {"method": MATCHED, **fixed},
            "ste": {"method": ["ste"], "peak_slope": [None], **fixed},
            "standard": {"method": ["relu"], "peak_slope": [None], **fixed}}


#: the (alpha, beta) map of HTAF's concept unit (the sensitivity chapter's grid), on concept_shapes
MAP_ALPHAS = [1.0, 2.0, 4.0, 8.0, 16.0]
MAP_BETAS = [0.25, 0.5, 1.0, 2.0, 4.0]


def _map(alphas: list[float], betas: list[float], **fixed: list[Any]) -> dict[str, list[Any]]:
    """HTAF at every ``(alpha, beta)`` cell, parameters as given (no peak-slope matching)."""
    return {"method": ["htaf"], "peak_slope": [None],
            "surrogate_params": [{"alpha": a, "beta": b} for a in alphas for b in betas], **fixed}


def _gaps(**fixed: list[Any]) -> dict[str, dict[str, list[Any]]]:
    """More concepts (HTAF and the standard model at K = 128), and an alpha schedule that sharpens HTAF from alpha 1 to
    16 at beta 1 (peak slope 1/4 to 4), so that training ends close to the step used at inference."""
    return {"more_concepts": {"method": ["htaf"], "num_concepts": [128], **fixed},
            "more_concepts_standard": {"method": ["relu"], "peak_slope": [None], "num_concepts": [128], **fixed},
            "sharpen": {"method": ["htaf_anneal"], "peak_slope": [None], "surrogate_params": [{"alpha": 1.0}],
                        "alpha_end": [16.0], **fixed}}


#: training samples the map's selection runs hold out as a validation set (a fifth of concept_shapes' training set)
VALIDATION = {"smoke": 51, "cpu": 400}


def _with_selection(name: str, grid: dict[str, list[Any]], validation: int) -> dict[str, dict[str, list[Any]]]:
    """The sweep ``name`` and its selection twin ``<name>_selection``: the same runs without the last ``validation``
    training samples, which score them (``val_accuracy``), so that the map's best cell is chosen on validation data."""
    return {name: grid, f"{name}_selection": {**grid, "validation": [validation]}}


def _named(prefix: str, grids: dict[str, dict[str, list[Any]]]) -> dict[str, dict[str, list[Any]]]:
    return {f"{prefix}_{name}": grid for name, grid in grids.items()}


#: the tuned comparison on Fashion-MNIST (sweeps ``fmnist_tuning*`` and ``fmnist_tuned_<method>``): the concept units
#: of :data:`MATCHED` at each peak slope and learning rate of ``TUNING["cpu"]``, STE (its own slope) and the standard
#: model (no slope) at each learning rate, two seeds disjoint from the test seeds, trained without the last
#: ``TUNING_VALIDATION`` training images (the runs train on the first 8000 of the rest, the same images as the final
#: runs) and scored on them; each method's best setting on that validation accuracy (:data:`TUNED`) is then trained with
#: :data:`SEEDS` and compared on the test images (:func:`htaf.experiments.tuning_sweeps`)
TUNED_METHODS = [*MATCHED, "ste", "relu"]
#: the prefix of the tuned comparison's sweep names
TUNED_PREFIX = "fmnist_"
#: the peak slopes and learning rates the tuning sweeps try (``cpu`` only: the smoke profile has no tuned comparison)
TUNING = {"cpu": {"peak_slope": [0.5, 1.0, 2.0], "lr": [1e-3, 3e-3, 1e-2]}}
TUNING_VALIDATION = 10_000
OWN_SLOPE = {"ste": None, "relu": None}

#: each method's tuned setting: the peak slope and learning rate of best mean validation accuracy in the ``cpu``
#: tuning sweeps (:func:`htaf.findings.tuning`; a test and the chapter assert that this is still the choice)
TUNED: dict[str, dict[str, float | None]] = {
    "htaf": {"peak_slope": 0.5, "lr": 1e-2},
    "htaf_hard": {"peak_slope": 1.0, "lr": 3e-3},
    "sigmoid_smooth": {"peak_slope": 1.0, "lr": 3e-3},
    "ste": {"peak_slope": None, "lr": 1e-2},
    "relu": {"peak_slope": None, "lr": 1e-2},
}


def _tuning(profile: str, dataset: str) -> dict[str, dict[str, list[Any]]]:
    return _named(TUNED_PREFIX.removesuffix("_"), tuning_sweeps({"dataset": [dataset]}, TUNED_METHODS, TUNING[profile], TUNING_VALIDATION,
                                          TUNING_SEEDS, SEEDS, TUNED, own_slope=OWN_SLOPE))


#: the chapter's sweeps: ``GRIDS[profile][sweep] = grid``
GRIDS: dict[str, dict[str, dict[str, list[Any]]]] = {
    "smoke": {
        **_named("shapes", _methods(seed=SEEDS)),
        "shapes_ceiling": {"method": ["htaf"], "seed": SEEDS, "concept_supervision": [1.0]},
        "shapes_floor": {"method": ["htaf"], "seed": SEEDS, "freeze_backbone": [True]},
        **_with_selection("shapes_map", _map([1.0, 16.0], [0.25, 4.0], seed=[0, 1]), VALIDATION["smoke"]),
    },
    "cpu": {
        **_named("images", _methods(dataset=["mnist", "fashion_mnist"], seed=SEEDS)),
        **_named("cifar", _methods(dataset=["cifar10_subset"], subset=[None], data_kwargs=[{}], epochs=[6],
                                   seed=SEEDS)),
        **_named("shapes", _methods(dataset=["concept_shapes"], subset=[None], epochs=[10], seed=SEEDS,
                                    data_kwargs=[SHAPES])),
        # the label rule that needs every attribute: HTAF, the naive sigmoid bottleneck and the standard model, and on
        # both rules the supervised ceiling and the untrained floor
        "shapes_all": {"dataset": ["concept_shapes"], "subset": [None], "epochs": [10], "seed": SEEDS,
                       "data_kwargs": [{**SHAPES, "label_rule": "all"}], "method": ["htaf", "sigmoid_smooth"]},
        "shapes_all_standard": {"dataset": ["concept_shapes"], "subset": [None], "epochs": [10], "seed": SEEDS,
                                "data_kwargs": [{**SHAPES, "label_rule": "all"}], "method": ["relu"],
                                "peak_slope": [None]},
        "shapes_ceiling": {"dataset": ["concept_shapes"], "subset": [None], "epochs": [10], "seed": SEEDS,
                           "data_kwargs": [SHAPES, {**SHAPES, "label_rule": "all"}], "method": ["htaf"],
                           "concept_supervision": [1.0]},
        "shapes_floor": {"dataset": ["concept_shapes"], "subset": [None], "epochs": [10], "seed": SEEDS,
                         "data_kwargs": [SHAPES, {**SHAPES, "label_rule": "all"}], "method": ["htaf"],
                         "freeze_backbone": [True]},
        # what closes the gaps where HTAF misses a target (Fashion-MNIST, the CIFAR-10 subset)
        **_named("fmnist", _gaps(dataset=["fashion_mnist"], seed=SEEDS)),
        **_tuning("cpu", "fashion_mnist"),
        **_named("cifar", _gaps(dataset=["cifar10_subset"], subset=[None], data_kwargs=[{}], epochs=[6], seed=SEEDS)),
        # HTAF's (alpha, beta) map on concept_shapes (xor rule): step accuracy and switch gap per cell
        **_with_selection("shapes_map", _map(MAP_ALPHAS, MAP_BETAS, dataset=["concept_shapes"], subset=[None],
                                             epochs=[10], seed=[0, 1], data_kwargs=[SHAPES]), VALIDATION["cpu"]),
    },
    "gpu": {
        **_named("cifar", _methods(seed=SEEDS)),
    },
}

EXPERIMENT = register(
    Experiment(
        name="icbm",
        description="implicit concept bottleneck models: HTAF on the last feature layer, exact step at inference",
        profiles=PROFILES,
        build_model=build_model,
        validate=validate,
        loss=loss,
        on_epoch_start=on_epoch_start,
        train_metrics=train_metrics,
        eval_metrics=eval_metrics,
        nullable=("peak_slope",),
        grids=GRIDS,
    )
)
