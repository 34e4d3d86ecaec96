"""Datasets: digits, concept_shapes, regression, the missing-dataset error and the loaders."""

from urllib.error import URLError

import numpy as np
import pytest
import torch

from htaf import data
from htaf.data import concept_shapes, regression


def test_digits_is_a_fixed_normalised_split():
    train, test = data.load("digits", "train"), data.load("digits", "test")
    assert train.tensors[0].shape == (1440, 1, 8, 8) and test.tensors[0].shape == (357, 1, 8, 8)
    assert abs(train.tensors[0].mean().item()) < 1e-4 and abs(train.tensors[0].std().item() - 1) < 1e-3
    assert set(train.tensors[1].tolist()) == set(range(10))
    raw = data.load("digits", "train", normalise=False).tensors[0]
    assert raw.min() == 0 and raw.max() == 1


def test_describe_matches_loaded_shapes():
    for name, kwargs in [("digits", {}), ("concept_shapes", {"image_size": 16, "n_test": 4}), ("regression_bump", {"d": 5})]:
        info = data.describe(name, **kwargs)
        inputs, targets = data.load(name, "test", **kwargs).tensors
        assert tuple(inputs.shape[1:]) == info.input_shape
        assert info.task == ("regression" if name.startswith("regression") else "classification")


def test_unknown_dataset_lists_choices():
    with pytest.raises(ValueError, match="fashion_mnist"):
        data.load("imagenet", "train")


def test_missing_dataset_offline_names_dataset_layout_and_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("HTAF_DATA", str(tmp_path))
    monkeypatch.setenv("HTAF_DOWNLOAD", "0")
    with pytest.raises(data.DatasetNotFoundError) as error:
        data.load("mnist", "train")
    message = str(error.value)
    assert "'mnist'" in message and str(tmp_path) in message
    assert f"{tmp_path}/MNIST/raw/train-images-idx3-ubyte" in message and "HTAF_DATA" in message
    assert isinstance(error.value, FileNotFoundError)


def test_failed_download_becomes_dataset_not_found(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(self):
        raise URLError("network is unreachable")

    monkeypatch.setenv("HTAF_DATA", str(tmp_path))
    monkeypatch.delenv("HTAF_DOWNLOAD", raising=False)
    monkeypatch.setattr(torchvision.datasets.FashionMNIST, "download", offline)
    with pytest.raises(data.DatasetNotFoundError, match="(?s)FashionMNIST/raw.*HTAF_DATA"):
        data.load("fashion_mnist", "test")


def test_missing_cifar10_subset(tmp_path):
    with pytest.raises(data.DatasetNotFoundError, match="cifar10-subset/cifar10_subset.npz"):
        data.load("cifar10_subset", "train", root=tmp_path)


def test_cifar10_subset_reads_npz_layout(tmp_path):
    folder = tmp_path / "cifar10-subset"
    folder.mkdir()
    rng = np.random.default_rng(0)
    arrays = {f"x_{s}": rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8) for s, n in [("train", 6), ("test", 3)]}
    np.savez(folder / "cifar10_subset.npz", **arrays, y_train=np.arange(6, dtype=np.uint8), y_test=np.arange(3, dtype=np.uint8))
    test = data.load("cifar10_subset", "test", root=tmp_path, normalise=False)
    assert test.tensors[0].shape == (3, 3, 32, 32)
    assert torch.equal(test.tensors[0][1, 2] * 255, torch.from_numpy(arrays["x_test"][1, :, :, 2]).float())
    assert test.tensors[1].tolist() == [0, 1, 2]


@pytest.mark.parametrize("damage, fragment", [
    ({"x_test": np.zeros((3, 32, 32), np.uint8)}, "not N x 32 x 32 x 3 uint8 images"),
    ({"x_test": np.zeros((3, 32, 32, 3), np.float32)}, "not N x 32 x 32 x 3 uint8 images"),
    ({"y_test": np.arange(2, dtype=np.uint8)}, "not one integer label per image"),
    ({"y_test": np.array([0.0, 1.0, 2.0])}, "not one integer label per image"),
    ({"y_test": np.array([0, 1, 10])}, "labels outside 0..9"),
])
def test_a_malformed_cifar10_subset_is_a_damaged_dataset(tmp_path, damage, fragment):
    folder = tmp_path / "cifar10-subset"
    folder.mkdir()
    arrays = {"x_train": np.zeros((2, 32, 32, 3), np.uint8), "y_train": np.arange(2), "x_test": np.zeros((3, 32, 32, 3),
              np.uint8), "y_test": np.arange(3), **damage}
    np.savez(folder / "cifar10_subset.npz", **arrays)
    with pytest.raises(data.DatasetCorruptError, match=fragment):
        data.load("cifar10_subset", "test", root=tmp_path)


def test_concept_shapes_is_deterministic_from_seed():
    first, again, other = (concept_shapes.generate(32, seed=s) for s in (3, 3, 4))
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first.images, other.images)
    train = data.load("concept_shapes", "train", n_train=16)
    test = data.load("concept_shapes", "test", n_test=16)
    assert not torch.equal(train.tensors[0], test.tensors[0])
    assert train.attribute_names == concept_shapes.ATTRIBUTE_NAMES and train.attributes.shape == (16, 6)


def test_concept_shapes_images_show_their_attributes():
    """Recover every attribute from the pixels alone and compare with the ground truth."""
    sample = concept_shapes.generate(300, seed=1, image_size=24)
    measured = {name: [] for name in concept_shapes.ATTRIBUTE_NAMES}
    for image in sample.images.numpy():
        mask = image.max(axis=0) > 0.2
        rows, cols = np.nonzero(mask)
        box_area = (np.ptp(rows) + 1) * (np.ptp(cols) + 1)
        shape_pixels = image[:, mask]
        measured["round"].append(mask.sum() / box_area < 0.95)
        measured["red"].append(shape_pixels[0].mean() > shape_pixels[2].mean())
        measured["large"].append(mask.sum() > 57)
        measured["left"].append(cols.mean() < 12)
        measured["top"].append(rows.mean() < 12)
        measured["striped"].append(shape_pixels.max(axis=0).std() > 0.1)
    for index, name in enumerate(concept_shapes.ATTRIBUTE_NAMES):
        assert measured[name] == sample.attributes[:, index].bool().tolist(), name
    assert 0.3 < sample.attributes.float().mean() < 0.7


def test_concept_shapes_labels_follow_the_rules():
    sample = concept_shapes.generate(200, seed=2)
    for attributes, label in zip(sample.attributes.tolist(), sample.labels.tolist()):
        round_, red, large, left, _top, striped = map(bool, attributes)
        assert label == 2 * (red != (large and left)) + (round_ != striped)
    assert set(sample.labels.tolist()) == set(range(concept_shapes.NUM_CLASSES))


def test_regression_is_deterministic_with_noiseless_test_targets():
    x, y = regression.generate("bump", "train", d=3, n_train=2000, noise=0.2, seed=5)
    x_again, y_again = regression.generate("bump", "train", d=3, n_train=2000, noise=0.2, seed=5)
    assert torch.equal(x, x_again) and torch.equal(y, y_again)
    assert x.shape == (2000, 3) and 0 <= x.min() and x.max() <= 1
    clean = torch.exp(-8 * ((x.double() - 0.5) ** 2).sum(dim=1, keepdim=True))
    assert abs((y - clean).std().item() - 0.2) < 0.02
    x_test, y_test = regression.generate("bump", "test", d=3, n_test=50, seed=5)
    assert torch.allclose(y_test.double(), torch.exp(-8 * ((x_test.double() - 0.5) ** 2).sum(dim=1, keepdim=True)), atol=1e-6)


def test_sharded_batches_recompose_the_single_process_batches():
    dataset = data.load("digits", "train")
    single = list(data.EpochBatchSampler(dataset, batch_size=64, seed=7))
    ranks = [list(data.EpochBatchSampler(dataset, batch_size=32, seed=7, rank=r, world_size=2)) for r in (0, 1)]
    assert len(single) == len(ranks[0]) == 23
    for whole, part0, part1 in zip(single[:-1], *ranks):
        assert sorted(whole) == sorted(part0 + part1)


def test_shuffle_depends_on_seed_and_epoch_only():
    dataset = data.load("digits", "train")
    sampler = data.EpochBatchSampler(dataset, batch_size=64, seed=0)
    epoch0 = list(sampler)
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    fresh = data.EpochBatchSampler(dataset, batch_size=64, seed=0)
    fresh.set_epoch(1)
    assert epoch0 != epoch1 and list(fresh) == epoch1


def test_get_loaders_applies_subset_and_batch_size():
    train, test = data.get_loaders({"dataset": "digits", "batch_size": 50, "seed": 0, "subset": 120})
    assert [len(y) for _, y in train] == [50, 50, 20]
    assert sum(len(y) for _, y in test) == 357
    with pytest.raises(ValueError, match="divisible"):
        data.get_loaders({"dataset": "digits", "batch_size": 51, "seed": 0}, rank=0, world_size=2)


def test_a_validation_set_is_held_out_of_training_and_never_touches_the_test_set():
    full = data.load("digits", "train")
    train, held_out = data.split_validation(full, 288)
    assert (len(train), len(held_out)) == (1152, 288)
    assert torch.equal(torch.cat([train.tensors[0], held_out.tensors[0]]), full.tensors[0])  # disjoint, nothing lost
    config = {"dataset": "digits", "batch_size": 64, "seed": 0, "validation": 288}
    train_loader, test_loader = data.get_loaders(config)
    seen = torch.cat([x for x, _ in train_loader])
    assert len(seen) == 1152 and not any(torch.equal(seen[i], held_out.tensors[0][0]) for i in range(len(seen)))
    val = torch.cat([x for x, _ in data.validation_loader(config)])
    assert torch.equal(val, held_out.tensors[0])
    plain_test = torch.cat([x for x, _ in data.get_loaders({**config, "validation": None})[1]])
    assert torch.equal(torch.cat([x for x, _ in test_loader]), plain_test)
    assert data.validation_loader({**config, "validation": None}) is None
    # subset applies to what is left for training
    sub, _ = data.get_loaders({**config, "subset": 100})
    assert sum(len(y) for _, y in sub) == 100
    for bad in (0, 1440, True, 2.5):
        with pytest.raises(ValueError, match="validation must be a number of training samples from 1 to 1439"):
            data.split_validation(full, bad)
