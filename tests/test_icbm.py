"""Implicit concept bottleneck models: the model family, the concept metrics and the icbm experiment."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from htaf.nn import anneal_alpha
import torch
from torch import nn

import htaf
from htaf import data
from htaf.data import concept_shapes
from htaf.experiments import Batch, ConfigError, resolve_config
from htaf.experiments import icbm as icbm_experiment
from htaf.models import icbm
from htaf.nn import HTAF

SHAPE = (3, 16, 16)


def _model(method="htaf", k=8, **kwargs):
    torch.manual_seed(0)
    return icbm.build("cnn", SHAPE, 4, num_concepts=k, method=method, channels=(4, 8), **kwargs)


# --------------------------------------------------------------------------------------------
# The model family
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["htaf", "htaf_hard", "htaf_anneal", "sigmoid_smooth", "ste", "atan"])
def test_in_eval_the_head_sees_exactly_the_binary_concepts(method):
    model = _model(method, peak_slope=None if method == "ste" else 1.0)
    x = torch.randn(32, *SHAPE)
    model.train()
    model(x)  # batch-norm statistics
    model.eval()
    bits = model.concepts(x)
    assert bits.shape == (32, 8) and set(bits.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(model(x), model.head(bits))
    assert torch.equal(icbm.concepts(model, x), bits)


def test_training_forward_is_smooth_and_exposes_the_concept_tensors():
    model = _model("htaf").train()
    out = model(torch.randn(16, *SHAPE))
    activity = out.concept_activity
    assert activity.shape == (16, 8) and out.concept_logits.shape == (16, 8)
    assert bool(((activity > 0) & (activity < 1)).any())  # smooth HTAF, not bits
    assert torch.allclose(activity, torch.sigmoid(4.0 * torch.tanh(out.concept_logits)))


@pytest.mark.parametrize("method, slope", [("htaf", 1.0), ("htaf", 0.5), ("sigmoid_smooth", 1.0), ("atan", 2.0)])
def test_units_are_matched_at_peak_slope(method, slope):
    unit = icbm.build("cnn", SHAPE, 4, num_concepts=2, method=method, peak_slope=slope).unit
    x = torch.zeros(1, requires_grad=True)
    if isinstance(unit, HTAF):
        unit.mode = "hard"
    elif hasattr(unit, "mode"):
        unit.mode = "hard"
    unit(x).sum().backward()
    assert x.grad.item() == pytest.approx(slope, rel=1e-6)


def test_bad_input_names_the_problem():
    with pytest.raises(ValueError, match="continuous bottleneck"):
        _model("relu", peak_slope=None).concepts(torch.randn(2, *SHAPE))
    with pytest.raises(TypeError, match="no concept layer"):
        icbm.concepts(nn.Linear(3, 2), torch.randn(2, 3))
    with pytest.raises(ValueError, match="num_concepts"):
        _model("htaf", k=0)
    with pytest.raises(ValueError, match="unknown unit method"):
        icbm.build("cnn", SHAPE, 4, method="nonsense")
    with pytest.raises(ValueError, match="peak slope"):
        icbm.build("cnn", SHAPE, 4, method="ste", peak_slope=1.0)  # STE's peak slope is fixed at 1/2
    with pytest.raises(ValueError, match="unknown ICBM arch"):
        icbm.build("mlp", SHAPE, 4)


# --------------------------------------------------------------------------------------------
# Concept metrics
# --------------------------------------------------------------------------------------------


def test_concept_statistics_count_dead_and_constant_concepts():
    bits = torch.tensor([[1, 0, 1, 0], [1, 0, 0, 0], [1, 0, 1, 1]])
    found = icbm.concept_statistics(bits)
    assert found["bits_per_image"] == pytest.approx(2.0)
    assert found["never_on_share"] == 0.25 and found["always_on_share"] == 0.25 and found["distinct_codes"] == 3
    with pytest.raises(ValueError, match="0/1"):
        icbm.concept_statistics(torch.tensor([[0.5, 1.0]]))


def test_auc_recovers_a_planted_concept_and_its_negation():
    generator = torch.Generator().manual_seed(0)
    attributes = torch.randint(0, 2, (500, 3), generator=generator)
    noise = torch.randint(0, 2, (500, 2), generator=generator)
    bits = torch.cat([1 - attributes[:, 1:2], noise, attributes[:, 0:1], attributes[:, 2:3]], dim=1)
    auc = icbm.concept_attribute_auc(bits, attributes)
    assert auc.shape == (5, 3)
    assert auc[0, 1] == 1.0 and auc[3, 0] == 1.0 and auc[4, 2] == 1.0
    assert icbm.concept_attribute_auc(bits, attributes, oriented=True)[0, 1] == 0.0
    assert 0.5 <= auc[1:3].max() < 0.6
    chosen, mean = icbm.match_concepts(auc)
    assert chosen == [3, 0, 4] and mean == 1.0
    with pytest.raises(ValueError, match="constant"):
        icbm.concept_attribute_auc(bits, torch.ones(500, 1))
    with pytest.raises(ValueError, match="at least as many concepts"):
        icbm.match_concepts(auc.T)


def test_concept_agreement_is_invariant_to_permutation_and_negation():
    generator = torch.Generator().manual_seed(1)
    bits = torch.randint(0, 2, (400, 6), generator=generator)
    shuffled = 1 - bits[:, [3, 1, 5, 0, 2, 4]]
    same = icbm.concept_agreement(bits, shuffled)
    assert same["mean_agreement"] == 1.0 and same["agreements"] == [1.0] * 6
    other = icbm.concept_agreement(bits, torch.randint(0, 2, (400, 6), generator=generator))
    assert other["mean_agreement"] < 0.6 and other["chance"] == pytest.approx(0.5, abs=0.05)


def test_probe_reads_a_linear_target_and_not_a_parity():
    generator = torch.Generator().manual_seed(2)
    x = torch.randint(0, 2, (1200, 4), generator=generator).float()
    linear, parity = x[:, 0], (x[:, 1] + x[:, 2]) % 2
    assert icbm.probe_accuracy(x[:800], linear[:800], x[800:], linear[800:]) == 1.0
    assert icbm.probe_accuracy(x[:800], parity[:800], x[800:], parity[800:]) < 0.7


@pytest.mark.parametrize("k", [1, 5, 8, 33])
def test_hex_round_trip(k):
    bits = torch.randint(0, 2, (10, k), generator=torch.Generator().manual_seed(k)).float()
    assert torch.equal(icbm.hex_to_bits(icbm.bits_to_hex(bits), k), bits)


# --------------------------------------------------------------------------------------------
# concept_shapes' label rule that needs every attribute
# --------------------------------------------------------------------------------------------


def test_the_all_rule_needs_every_attribute_and_is_linear_in_them():
    attributes = np.array(list(itertools.product([0, 1], repeat=6)))
    labels = concept_shapes.labels_from_attributes(attributes, "all")
    assert sorted(labels.tolist()) == list(range(64))
    # the class of smallest Hamming distance is a linear function of the attributes (the ICBM head can express it)
    codes = attributes
    scores = (2 * attributes - 1) @ (2 * codes - 1).T  # 6 - 2 * Hamming distance
    assert (scores.argmax(axis=1) == np.arange(64)).all()
    assert data.describe("concept_shapes", label_rule="all").num_outputs == 64
    same = concept_shapes.generate(20, seed=3)
    other = concept_shapes.generate(20, seed=3, label_rule="all")
    assert torch.equal(same.images, other.images) and not torch.equal(same.labels, other.labels)
    with pytest.raises(ValueError, match="label_rule"):
        data.load("concept_shapes", "test", label_rule="majority")


# --------------------------------------------------------------------------------------------
# The experiment
# --------------------------------------------------------------------------------------------


def test_config_errors_name_the_problem():
    with pytest.raises(ConfigError, match="attributes"):
        resolve_config("icbm", "smoke", dataset="digits", data_kwargs={}, concept_supervision=1.0)
    with pytest.raises(ConfigError, match="num_concepts"):
        resolve_config("icbm", "smoke", num_concepts=0)
    with pytest.raises(ConfigError, match="valid choices"):
        resolve_config("icbm", "smoke", method="nonsense")
    with pytest.raises(ConfigError, match="continuous"):
        resolve_config("icbm", "smoke", method="relu", peak_slope=None, activity_penalty=0.1)
    with pytest.raises(ConfigError, match="peak slope"):
        resolve_config("icbm", "smoke", method="ste")
    with pytest.raises(ConfigError, match="ties 6 concepts"):
        resolve_config("icbm", "smoke", num_concepts=4, concept_supervision=1.0)


def test_semantic_metrics_need_attributes():
    config = resolve_config("icbm", "smoke", dataset="digits", data_kwargs={})
    model = icbm_experiment.build_model(config)
    with pytest.raises(ValueError, match="ground-truth attributes"):
        icbm_experiment.semantic_metrics(model, torch.zeros(360, 8), config, torch.device("cpu"))


def test_loss_adds_supervision_and_activity_penalty():
    config = resolve_config("icbm", "smoke", concept_supervision=2.0, activity_penalty=0.5)
    logits = torch.randn(4, 4)
    logits.concept_logits = torch.randn(4, 8)
    logits.concept_activity = torch.rand(4, 8)
    batch = Batch(torch.zeros(4), torch.tensor([0, 1, 2, 3]), torch.randint(0, 2, (4, 6)))
    expected = (nn.functional.cross_entropy(logits, batch.targets)
                + 0.5 * logits.concept_activity.mean()
                + 2.0 * nn.functional.binary_cross_entropy_with_logits(logits.concept_logits[:, :6],
                                                                       batch.attributes.float()))
    assert icbm_experiment.loss(logits, batch, config) == pytest.approx(expected.item())
    plain = torch.randn(4, 4)  # eval outputs carry no concept tensors: cross entropy only
    assert icbm_experiment.loss(plain, batch, config) == pytest.approx(
        nn.functional.cross_entropy(plain, batch.targets).item())


def test_alpha_schedule_sharpens_to_the_final_alpha():
    config = resolve_config("icbm", "smoke", method="htaf_anneal", surrogate_params={"alpha": 0.5}, alpha_end=4.0,
                            peak_slope=None, epochs=3)
    model = icbm_experiment.build_model(config)
    alphas = []
    for epoch in range(3):
        icbm_experiment.on_epoch_start(model, epoch, config)
        alphas.append(model.unit.alpha)
    assert alphas == pytest.approx([0.5, 2.0 ** 0.5, 4.0])  # geometric: 0.5 * (4 / 0.5) ** (e / 2)
    assert "_alpha_end" not in model.__dict__  # computed from the config alone: no state in the model


def test_sharpen_runs_keep_their_schedule_in_the_new_spelling():
    """The chapter's sharpen sweep (schema 2: surrogate_params alpha 16, alpha_start 1) anneals 1 -> 16 as before."""
    from htaf.experiments.icbm import GRIDS

    grid = GRIDS["cpu"]["fmnist_sharpen"]
    assert grid["surrogate_params"] == [{"alpha": 1.0}] and grid["alpha_end"] == [16.0]
    config = resolve_config("icbm", "smoke", **{key: values[0] for key, values in grid.items()
                                                if key not in ("dataset", "subset", "data_kwargs")})
    model = icbm_experiment.build_model(config)
    alphas = []
    for epoch in range(config["epochs"]):
        icbm_experiment.on_epoch_start(model, epoch, config)
        alphas.append(model.unit.alpha)
    assert alphas == [anneal_alpha(e, config["epochs"], 1.0, 16.0) for e in range(config["epochs"])]


def test_freeze_backbone_trains_only_normalisation_and_head():
    model = icbm_experiment.build_model(resolve_config("icbm", "smoke", freeze_backbone=True))
    trainable = {name.split(".")[0] for name, p in model.named_parameters() if p.requires_grad}
    assert {"norm", "head"} <= trainable and "to_concepts" not in trainable
    assert not any(p.requires_grad for p in model.backbone.parameters() if p.dim() > 1)


def test_smoke_run_records_consistent_concept_metrics():
    result = htaf.run("icbm", "smoke", epochs=2)
    m = result["metrics"]
    assert m["accuracy_step"] == m["test_accuracy"] == pytest.approx(m["head_accuracy"])
    assert m["switch_gap"] == pytest.approx(m["accuracy_smooth"] - m["accuracy_step"])
    k, classes = 8, 4
    assert len(m["ablation_accuracy"]) == k and np.array(m["head_weight"]).shape == (classes, k)
    bits = icbm.hex_to_bits(m["concept_bits"], k)
    assert bits.shape == (64, k)
    assert m["bits_per_image"] == pytest.approx(bits.sum(dim=1).mean().item(), abs=1.5)  # over 64 of 128 images
    assert np.array(m["concept_auc"]).shape == (k, 6) and len(m["matched_concepts"]) == 6
    assert all(0.0 <= m[f"probe_{name}"] <= 1.0 for name in concept_shapes.ATTRIBUTE_NAMES)
    assert "probe_rule_bit0" in m and "grad_norm_fc1" in result["history"][-1]
    # re-running the model's logits from the stored bits and head gives its step accuracy
    test = data.load("concept_shapes", "test", **result["config"]["data_kwargs"])
    logits = bits @ torch.tensor(m["head_weight"]).T + torch.tensor(m["head_bias"])
    stored = float((logits.argmax(1) == test.tensors[1][:64]).double().mean())
    assert abs(stored - m["head_accuracy"]) < 0.25


def test_standard_model_has_accuracy_only():
    result = htaf.run("icbm", "smoke", epochs=1, method="relu", peak_slope=None)
    assert "concept_bits" not in result["metrics"] and "test_accuracy" in result["metrics"]


def test_gpu_profile_builds_resnet18_for_cifar():
    config = resolve_config("icbm", "gpu")
    assert config["arch"] == "resnet18" and config["dataset"] == "cifar10" and not config["amp"]
    model = icbm_experiment.build_model(config).eval()
    assert model.concepts(torch.zeros(2, 3, 32, 32)).shape == (2, 64)
