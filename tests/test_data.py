import numpy as np
import pytest
import torch
from PIL import Image

import data
from conftest import write_image_folder


def test_image_folder_loads_as_uint8_tensors(image_folder):
    logs = []
    ds = data.load_dataset(image_folder, log=logs.append)
    assert ds.train_images.shape == (120, 3, 32, 32)
    assert ds.train_images.dtype == torch.uint8
    assert ds.test_images.shape == (40, 3, 32, 32)
    assert ds.classes[0] == "airplane" and len(ds.classes) == 10
    assert ds.class_counts("train") == (12,) * 10
    assert ds.class_counts("test") == (4,) * 10
    assert any("decoding 160 images" in line for line in logs)


def test_second_load_comes_from_the_cache_with_equal_arrays(image_folder):
    first = data.load_dataset(image_folder, log=lambda line: None)
    logs = []
    second = data.load_dataset(image_folder, log=logs.append)
    assert any("decoded cache" in line for line in logs)
    assert torch.equal(first.train_images, second.train_images)
    assert torch.equal(first.test_labels, second.test_labels)


def test_cache_falls_back_to_user_folder(image_folder, tmp_path,
                                         monkeypatch):
    # a file where the cache folder would go makes the data folder unusable
    (image_folder / ".decoded").write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    data.load_dataset(image_folder, log=lambda line: None)
    cached = list((tmp_path / "cache" / "imbalance-cifar").glob("images-*"))
    assert len(cached) == 1
    assert sorted(p.name for p in cached[0].iterdir()) == sorted(
        f"{name}.npy" for name in data.ARRAYS)


def test_a_damaged_cache_is_decoded_again(image_folder):
    first = data.load_dataset(image_folder, log=lambda line: None)
    cached, = (image_folder / ".decoded").iterdir()
    (cached / "test_images.npy").write_bytes(b"not an array")
    logs = []
    second = data.load_dataset(image_folder, log=logs.append)
    assert any("ignoring the unreadable cache" in line for line in logs)
    assert any("decoding 160 images" in line for line in logs)
    assert torch.equal(first.test_images, second.test_images)
    logs = []
    data.load_dataset(image_folder, log=logs.append)
    assert any("decoded cache" in line for line in logs)


def test_a_changed_file_invalidates_the_cache(image_folder):
    data.load_dataset(image_folder, log=lambda line: None)
    path = image_folder / "train" / "bird" / "0000.png"
    Image.new("RGB", (32, 32), (1, 2, 3)).save(path)
    logs = []
    ds = data.load_dataset(image_folder, log=logs.append)
    assert not any("decoded cache" in line for line in logs)
    first_bird = (ds.train_labels == 2).nonzero()[0, 0]
    assert ds.train_images[first_bird, :, 0, 0].tolist() == [1, 2, 3]


def test_other_sizes_and_modes_become_rgb_32x32(tmp_path):
    root = write_image_folder(tmp_path / "d", 2, 1, classes=("a", "b"))
    Image.new("L", (50, 40), 200).save(root / "train" / "a" / "big.png")
    ds = data.load_dataset(root, log=lambda line: None)
    assert ds.train_images.shape == (5, 3, 32, 32)
    assert (ds.train_images[2] == 200).all()


def test_unreadable_image_is_reported_by_path(image_folder):
    bad = image_folder / "train" / "cat" / "broken.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(data.DataError, match="broken.png: cannot read"):
        data.load_dataset(image_folder, log=lambda line: None)


def test_class_folders_must_agree(image_folder):
    (image_folder / "test" / "truck").rename(image_folder / "test" / "lorry")
    with pytest.raises(data.DataError, match="only in train: \\['truck'\\]"):
        data.load_dataset(image_folder, log=lambda line: None)


def test_missing_test_folder_is_named(image_folder):
    import shutil
    shutil.rmtree(image_folder / "test")
    with pytest.raises(data.DataError, match="'test/' is missing"):
        data.load_dataset(image_folder, log=lambda line: None)


def test_missing_cifar10_gives_one_paragraph(tmp_path):
    with pytest.raises(data.DataError) as error:
        data.load_dataset(tmp_path / "nothing", download=False)
    message = str(error.value)
    assert "Could not find or download CIFAR-10" in message
    assert "--data-dir" in message and "\n" not in message


def test_subset_has_exact_counts_and_is_seeded():
    labels = torch.arange(10).repeat(50)
    counts = (50, 1, 0, 7, 20, 3, 3, 3, 3, 49)
    a = data.subset_indices(labels, counts, seed=1)
    assert torch.bincount(labels[a], minlength=10).tolist() == list(counts)
    assert torch.equal(a, data.subset_indices(labels, counts, seed=1))
    assert not torch.equal(a, data.subset_indices(labels, counts, seed=2))


def test_smaller_subset_is_nested_in_larger_one_per_class():
    labels = torch.arange(10).repeat(50)
    small = set(data.subset_indices(labels, (5,) * 10, 0).tolist())
    large = set(data.subset_indices(labels, (20,) * 10, 0).tolist())
    assert small < large


def test_crop_and_flip_moves_pixels_as_asked():
    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.float).view(2, 3, 32, 32)
    centre = torch.tensor([[4, 4], [4, 4]])
    same = data.crop_and_flip(x, centre, torch.tensor([False, False]))
    assert torch.equal(same, x)
    flipped = data.crop_and_flip(x, centre, torch.tensor([True, False]))
    assert torch.equal(flipped[0], x[0].flip(2))
    assert torch.equal(flipped[1], x[1])
    corner = data.crop_and_flip(x, torch.tensor([[0, 0], [8, 8]]),
                                torch.tensor([False, False]))
    assert (corner[0, :, :4, :] == 0).all()
    assert torch.equal(corner[0, :, 4:, 4:], x[0, :, :28, :28])
    assert torch.equal(corner[1, :, :28, :28], x[1, :, 4:, 4:])


def test_batches_cover_the_subset_once_per_epoch_and_repeat():
    images = torch.arange(50, dtype=torch.uint8).view(50, 1, 1, 1).expand(
        50, 3, 32, 32).contiguous()
    labels = torch.arange(50) % 10
    indices = torch.tensor([3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37])
    batches = data.Batches(images, labels, indices, 4, lambda x: x.float(),
                           False, seed=0, device=torch.device("cpu"))
    assert len(batches) == 3

    def seen(epoch):
        return [int(v) for x, _ in batches.epoch(epoch) for v in x[:, 0, 0, 0]]

    assert sorted(seen(0)) == indices.tolist()
    assert seen(0) == seen(0)
    assert seen(0) != seen(1)



def test_unshuffled_batches_come_class_by_class_in_one_order():
    images = torch.arange(50, dtype=torch.uint8).view(50, 1, 1, 1).expand(
        50, 3, 32, 32).contiguous()
    labels = torch.arange(50) % 10
    indices = torch.tensor([3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 40])
    batches = data.Batches(images, labels, indices, 5, lambda x: x.float(),
                           True, seed=0, device=torch.device("cpu"),
                           shuffle=False)

    def served(epoch):
        return [int(v) for _, y in batches.epoch(epoch) for v in y]

    # every image once, classes in label order, the same order every epoch
    assert served(0) == sorted(labels[indices].tolist())
    assert served(0) == served(1)
    # within a class, images keep their stored order
    assert batches.indices.tolist() == [40, 11, 31, 3, 13, 23, 5, 7, 17,
                                        37, 19, 29]
    # augmentation stays random from epoch to epoch
    first, second = (next(iter(batches.epoch(e)))[0] for e in (0, 1))
    assert not torch.equal(first, second)

def test_normalise_mean_image_and_per_channel():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (64, 3, 32, 32), generator=g,
                           dtype=torch.uint8)
    everything = torch.arange(64)
    centred = data.Normalise("mean-image", images, everything, "cpu")(images)
    assert centred.mean(0).abs().max() < 1e-3
    assert centred.abs().max() > 100     # still on the 0-255 scale
    scaled = data.Normalise("per-channel", images, everything, "cpu")(images)
    assert scaled.mean((0, 2, 3)).abs().max() < 1e-4
    assert (scaled.std((0, 2, 3)) - 1).abs().max() < 1e-3


def test_normalise_statistics_are_exact_across_blocks():
    g = torch.Generator().manual_seed(1)
    images = torch.randint(200, 256, (300, 3, 8, 8), generator=g,
                           dtype=torch.uint8)
    subset = torch.randperm(300, generator=g)[:250]
    exact = images[subset].double()
    for chunk in (7, 64, 4096):
        centred = data.Normalise("mean-image", images, subset, "cpu",
                                 chunk=chunk)
        assert torch.equal(centred.shift,
                           exact.mean(0).float())
        scaled = data.Normalise("per-channel", images, subset, "cpu",
                                chunk=chunk)
        std = exact.transpose(0, 1).flatten(1).std(1, unbiased=False)
        assert torch.allclose(scaled.scale.flatten(), std.float(),
                              rtol=1e-5)


def test_synthetic_dataset_is_balanced():
    ds = data.synthetic_dataset()
    assert ds.class_counts("train") == (60,) * 10
    assert np.unique(ds.test_labels.numpy()).tolist() == list(range(10))
