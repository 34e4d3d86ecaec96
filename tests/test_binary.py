"""Binary layers, bit packing and the BNN model family (htaf.nn binary layers, htaf.models.bnn)."""

from __future__ import annotations

import pytest
import torch

import htaf.functional as HF
from htaf.models import bnn
from htaf.nn import (
    BinaryConv2d,
    BinaryLinear,
    Spike,
    binary_layers,
    clip_latent_weights_,
    pack,
    popcount,
    storage_bits,
)


def signs(*shape, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.where(torch.rand(*shape, generator=generator) < 0.5, -1.0, 1.0)


def test_popcount_matches_python_bit_count():
    generator = torch.Generator().manual_seed(0)
    words = torch.randint(-2**63, 2**63 - 1, (1000,), generator=generator, dtype=torch.int64)
    expected = [int(w) & (2**64 - 1) for w in words.tolist()]
    assert popcount(words).tolist() == [e.bit_count() for e in expected]
    with pytest.raises(TypeError, match="int64"):
        popcount(torch.zeros(3, dtype=torch.int32))


def test_binary_linear_forward_uses_signs_and_scale():
    layer = BinaryLinear(3, 2, scale="mean")
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.5, -0.25, 0.0], [-1.0, 0.5, 0.75]]))
    x = torch.tensor([[1.0, 2.0, 3.0]])
    expected = torch.tensor([[(1 - 2 + 3) * 0.25, (-1 + 2 + 3) * 0.75]])  # sign(0) = +1
    torch.testing.assert_close(layer(x), expected)
    plain = BinaryLinear(3, 2, scale="none")
    with torch.no_grad():
        plain.weight.copy_(layer.weight)
    torch.testing.assert_close(plain(x), torch.tensor([[2.0, 4.0]]))


def test_weight_gradient_is_clipped_straight_through():
    layer = BinaryLinear(4, 1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.5, -2.0, 1.0, -1.5]]))
    layer(torch.ones(1, 4)).sum().backward()
    assert layer.weight.grad.tolist() == [[1.0, 0.0, 1.0, 0.0]]


def test_clip_latent_weights_only_touches_binary_layers():
    net = torch.nn.Sequential(BinaryLinear(2, 2), torch.nn.Linear(2, 2))
    with torch.no_grad():
        net[0].weight.fill_(3.0)
        net[1].weight.fill_(3.0)
    clip_latent_weights_(net)
    assert net[0].weight.max().item() == 1.0 and net[1].weight.max().item() == 3.0


@pytest.mark.parametrize("scale", ["none", "mean"])
@pytest.mark.parametrize("bias", [False, True])
def test_packed_linear_equals_float_forward(scale, bias):
    torch.manual_seed(0)
    layer = BinaryLinear(130, 7, bias=bias, scale=scale)
    x = signs(33, 130)
    assert torch.equal(pack(layer)(x), layer(x))


@pytest.mark.parametrize("padding,stride", [(0, 1), (1, 1), (1, 2), (2, 3)])
def test_packed_conv_equals_float_forward(padding, stride):
    torch.manual_seed(0)
    layer = BinaryConv2d(5, 6, 3, stride=stride, padding=padding, scale="mean")
    x = signs(3, 5, 11, 10)
    packed = pack(layer)
    assert torch.equal(packed(x), layer(x))
    assert packed(x).is_contiguous()


def test_packed_weights_are_32_times_smaller():
    layer = BinaryLinear(1024, 256)
    packed = pack(layer)
    assert packed.weight_bits.numel() * 64 == layer.weight.numel()
    assert packed.nbytes * 32 == layer.weight.numel() * 4


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="valid choices: none, mean"):
        BinaryLinear(2, 2, scale="max")
    with pytest.raises(ValueError, match="unknown binarizer 'bogus'.*ste"):
        BinaryConv2d(2, 2, 3, binarizer="bogus")
    with pytest.raises(TypeError, match="floating-point"):
        BinaryLinear(2, 2)(torch.ones(1, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"expects input of shape \[batch, 8\]"):
        pack(BinaryLinear(8, 2))(torch.ones(1, 9))
    with pytest.raises(ValueError, match=r"shape \[batch, 3, height, width\]"):
        pack(BinaryConv2d(3, 2, 3))(torch.ones(1, 4, 5, 5))
    with pytest.raises(ValueError, match=r"\+/-1 inputs"):
        pack(BinaryLinear(2, 2))(torch.tensor([[0.5, 1.0]]))
    with pytest.raises(ValueError, match="no BinaryLinear or BinaryConv2d"):
        pack(torch.nn.Sequential(torch.nn.Linear(2, 2)))
    with pytest.raises(ValueError, match="no binary layer named 'x'"):
        pack(torch.nn.Sequential(BinaryLinear(2, 2)), names=["x"])


# --------------------------------------------------------------------------------------------
# Model family
# --------------------------------------------------------------------------------------------

SHAPES = {"mlp": (1, 12, 12), "cnn": (1, 12, 12), "vgg_small": (3, 16, 16), "resnet18": (3, 16, 16)}


@pytest.mark.parametrize("arch", list(SHAPES))
def test_trained_model_packs_exactly(arch):
    """A few training steps, then the bit-packed model gives exactly the float model's outputs."""
    torch.manual_seed(0)
    options = {"hidden": [32, 32]} if arch == "mlp" else ({"channels": 8, "fc_hidden": 16} if arch == "cnn" else {})
    net = bnn.build(arch, SHAPES[arch], 5, method="htaf", peak_slope=0.5, **options)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    x, y = torch.randn(16, *SHAPES[arch]), torch.randint(0, 5, (16,))
    for _ in range(3):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()
        clip_latent_weights_(net)
    net.eval()
    packed = bnn.packed(net)
    assert bnn.packable(net), "every architecture has layers with +/-1 inputs"
    with torch.no_grad():
        assert torch.equal(packed(x), net(x))


def test_activation_units_and_matched_slope():
    unit = bnn.sign_unit("htaf", peak_slope=0.5)
    assert isinstance(unit, Spike) and unit.signed
    x = torch.zeros(1, requires_grad=True)
    unit(x).sum().backward()
    assert x.grad.item() == pytest.approx(1.0)  # the sign's slope is twice the step's
    ste = bnn.sign_unit("ste", peak_slope=0.5)
    y = torch.tensor([0.5, 1.5], requires_grad=True)
    ste(y).sum().backward()
    assert y.grad.tolist() == [1.0, 0.0]
    assert isinstance(bnn.sign_unit("full_precision"), torch.nn.ReLU)
    with pytest.raises(ValueError, match="unknown unit method .bogus.*full_precision"):
        bnn.sign_unit("bogus")
    with pytest.raises(ValueError, match="unknown unit method 'htaf_hard'"):  # a sign unit wraps a surrogate family
        bnn.sign_unit("htaf_hard")
    with pytest.raises(ValueError, match="unknown BNN arch"):
        bnn.build("bogus", (1, 8, 8), 10)


def test_full_precision_twin_has_no_binary_layer_and_same_shape():
    binary = bnn.binary_mlp(64, 10, hidden=[16, 16], method="ste")
    real = bnn.binary_mlp(64, 10, hidden=[16, 16], method="full_precision")
    assert [n for n, _ in binary_layers(binary)] == ["body.1.0"]
    assert list(binary_layers(real)) == []
    assert sum(p.numel() for p in binary.parameters()) == sum(p.numel() for p in real.parameters())


def test_first_and_last_layers_by_configuration():
    net = bnn.binary_mlp(64, 10, hidden=[16, 16], method="ste", binary_first=True, binary_last=True)
    assert [n for n, _ in binary_layers(net)] == ["body.0.0", "body.1.0", "head.0"]
    assert bnn.packable(net) == ["body.1.0", "head.0"]  # the first layer sees real pixels


def test_storage_bits_counts_one_bit_per_binary_weight():
    net = bnn.binary_mlp(64, 10, hidden=[32, 32], method="ste")
    bits = storage_bits(net)
    assert bits["binary_weights"] == 32 * 32
    assert bits["float32"] - bits["packed"] == 31 * 32 * 32


def test_set_surrogate_replaces_every_signed_spike():
    from htaf import surrogates

    net = bnn.binary_mlp(16, 3, hidden=[8, 8], method="ede")
    bnn.set_surrogate(net, surrogates.get("ede", t=3.0))
    assert {m.surrogate.t for m in net.modules() if isinstance(m, Spike)} == {3.0}


def test_sign_convention_matches_functional():
    x = torch.tensor([-1.0, 0.0, 2.0])
    assert bnn.sign_unit("ste")(x).tolist() == HF.sign(x).tolist() == [-1.0, 1.0, 1.0]


# --------------------------------------------------------------------------------------------
# The bnn experiment
# --------------------------------------------------------------------------------------------


def test_bnn_run_records_flips_clipping_and_exact_packing():
    import htaf

    record = htaf.run("bnn", "smoke", epochs=2, lr=0.05, subset=None)  # every training image: enough steps to clip
    history = record["history"]
    assert all(0.0 < row["flip_ratio"] < 1.0 for row in history)
    assert history[-1]["clip_share"] > 0.0  # a large learning rate pushes latent weights to the bound
    assert {"grad_norm_fc1", "grad_norm_fc2", "grad_norm_fc3", "grad_norm_fc4"} <= set(history[0])
    metrics = record["metrics"]
    assert metrics["packed_matches"] is True
    assert metrics["bits_packed"] < metrics["bits_float32"]


def test_bnn_latent_weights_stay_clipped(monkeypatch):
    from htaf.experiments import bnn as experiment
    from htaf.experiments import get, resolve_config

    config = resolve_config("bnn", "smoke")
    model = get("bnn").build_model(config)
    experiment.on_epoch_start(model, 0, config)
    with torch.no_grad():
        for _, layer in binary_layers(model):
            layer.weight.mul_(100.0)
    out = experiment.after_step(model, config)
    assert all(layer.weight.abs().max() <= 1.0 for _, layer in binary_layers(model))
    assert out["clip_share"] > 0.5 and out["flip_ratio"] == 0.0  # scaling keeps every sign


def test_ede_schedule_runs_from_t_min_to_t_max():
    from htaf.experiments import bnn as experiment
    from htaf.experiments import get, resolve_config

    config = resolve_config("bnn", "smoke", method="ede", peak_slope=None, epochs=3)
    model = get("bnn").build_model(config)
    seen = []
    for epoch in range(3):
        experiment.on_epoch_start(model, epoch, config)
        values = {m.surrogate.t for m in model.modules() if isinstance(m, Spike)}
        assert len(values) == 1  # every unit of the network follows the schedule
        seen.append(values.pop())
    assert seen == pytest.approx([0.1, 1.0, 10.0])


@pytest.mark.parametrize("key,value,message", [
    ("arch", "bogus", "unknown value of 'arch'"),
    ("method", "bogus", "unknown method 'bogus'"),
    ("scale", "max", "valid choices: none, mean"),
    ("hidden", [0], "layer widths (integers between 1 and"),
    ("ede_t_min", 20.0, "ede_t_min <= ede_t_max"),
])
def test_bnn_bad_config_exits_2_before_data(key, value, message, capsys):
    import json

    from htaf.__main__ import main

    assert main(["run", "bnn", "--set", f"{key}={json.dumps(value)}"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("scale", ["none", "mean"])
def test_storage_bits_of_a_packed_model_equal_those_of_its_latent_model(scale):
    net = torch.nn.Sequential(BinaryConv2d(3, 8, 3, padding=1, scale=scale), torch.nn.BatchNorm2d(8),
                              BinaryLinear(8 * 4 * 4, 16, bias=True, scale=scale), torch.nn.Linear(16, 10))
    packed = pack(net)
    assert storage_bits(packed) == storage_bits(net)
    assert storage_bits(packed)["binary_weights"] == 8 * 3 * 9 + 16 * 128


def test_packed_layers_take_an_empty_batch():
    linear, conv = BinaryLinear(70, 5), BinaryConv2d(2, 4, 3, padding=1)
    assert pack(linear)(torch.ones(0, 70)).shape == linear(torch.ones(0, 70)).shape == (0, 5)
    assert pack(conv)(torch.ones(0, 2, 6, 6)).shape == conv(torch.ones(0, 2, 6, 6)).shape == (0, 4, 6, 6)


def test_a_layer_with_non_finite_latent_weights_is_not_packed():
    layer = BinaryLinear(8, 4)
    with torch.no_grad():
        layer.weight[1, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        pack(layer)


@pytest.mark.parametrize("bound", [-1.0, 0.0, float("nan"), float("inf")])
def test_clipping_needs_a_positive_finite_bound(bound):
    net = torch.nn.Sequential(BinaryLinear(4, 3))
    before = net[0].weight.detach().clone()
    with pytest.raises(ValueError, match="bound must be a finite number greater than 0"):
        clip_latent_weights_(net, bound=bound)
    assert torch.equal(net[0].weight, before)


def test_one_weight_hook_object_keeps_each_models_flip_counter_out_of_the_model():
    """bnn, domains and sensitivity_bnn share one BinaryWeightHooks; its per-run state is keyed by the model."""
    import gc

    from htaf.experiments import bnn as bnn_experiment
    from htaf.experiments import domains, get, sensitivity  # noqa: F401 (registers the experiments)

    hooks = bnn_experiment.WEIGHT_HOOKS
    for name in ("bnn", "domains", "sensitivity_bnn"):
        assert get(name).after_step in (hooks.after_step, bnn_experiment.after_step)
        assert get(name).on_epoch_start in (hooks.on_epoch_start, bnn_experiment.on_epoch_start)
    a, b = (bnn.binary_mlp(16, 3, hidden=[8, 8], method="ste") for _ in range(2))
    for net in (a, b):
        hooks.on_epoch_start(net, 0, {})
        assert "_flip_counter" not in net.__dict__
    with torch.no_grad():
        a.body[1][0].weight.neg_()  # every binary weight of a flips, none of b
    assert hooks.after_step(a, {})["flip_ratio"] == 1.0 and hooks.after_step(b, {})["flip_ratio"] == 0.0
    assert hooks.after_step(bnn.binary_mlp(16, 3, hidden=[8], method="full_precision"), {}) is None
    count = len(hooks._counters)
    del a
    gc.collect()
    assert len(hooks._counters) == count - 1  # the state goes with its model
