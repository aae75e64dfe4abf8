"""cnnlab.data: readers, discovery, splits, batch sources and batch augmentation."""

from __future__ import annotations

import gzip
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from _tiny import make_cifar_dataset, make_idx_dataset, make_image_folder, write_idx
from cnnlab.data import (
    ArrayDataset,
    BatchAugment,
    DatasetFileError,
    DatasetNotFoundError,
    FolderBatches,
    FolderDataset,
    TensorBatches,
    channel_stats,
    crop_flip_erase,
    cutmix,
    fit_to_size,
    hflip,
    list_image_folder,
    load_arrays,
    mixup,
    normalize,
    random_crop,
    random_erasing,
    read_cifar_batch,
    read_idx,
    sources,
    split_indices,
    train_val_split,
)

REAL_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture
def no_system_data(monkeypatch, tmp_path):
    """Hide the machine's installed data sets and $CNNLAB_DATA."""
    monkeypatch.setattr(sources, "SYSTEM_DATA_DIRS", (tmp_path / "no-system-data",))
    monkeypatch.setattr(sources, "CACHE_DIR", tmp_path / "no-cache")
    monkeypatch.delenv("CNNLAB_DATA", raising=False)


# -- IDX ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, gz):
    array = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    path = write_idx(tmp_path / "x-idx3-ubyte", array, gz)
    out = read_idx(path)
    assert out.shape == (5, 7, 3) and out.dtype == np.uint8
    assert np.array_equal(out, array)


def test_read_idx_truncated_names_the_file(tmp_path):
    path = write_idx(tmp_path / "images-idx3-ubyte", np.zeros((4, 6, 6), np.uint8))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DatasetFileError, match="images-idx3-ubyte is truncated"):
        read_idx(path)


def test_read_idx_bad_magic_and_corrupt_gzip(tmp_path):
    bad = tmp_path / "bad-idx1-ubyte"
    bad.write_bytes(b"\x12\x34\x08\x01\x00\x00\x00\x01\x00")
    with pytest.raises(DatasetFileError, match="bad-idx1-ubyte is not an IDX file"):
        read_idx(bad)
    gz = write_idx(tmp_path / "labels-idx1-ubyte", np.arange(100, dtype=np.uint8), gz=True)
    gz.write_bytes(gz.read_bytes()[:20])
    with pytest.raises(DatasetFileError, match="labels-idx1-ubyte.gz"):
        read_idx(gz)


# -- discovery ---------------------------------------------------------------------------------------


def test_load_arrays_from_data_dir(tmp_path, no_system_data):
    make_idx_dataset(tmp_path / "fm", n_train=40, n_test=12)
    splits = load_arrays("fashion-mnist", data_dir=tmp_path / "fm", download=False)
    assert len(splits["train"]) == 40 and len(splits["test"]) == 12
    assert splits["train"].image_shape == (1, 28, 28)
    assert splits["train"].classes[9] == "Ankle boot"
    raw = read_idx(tmp_path / "fm" / "train-labels-idx1-ubyte.gz")
    assert splits["train"].labels.tolist() == raw.tolist()


def test_search_order_data_dir_then_env(tmp_path, no_system_data, monkeypatch):
    make_idx_dataset(tmp_path / "env" / "fashion-mnist", n_train=30, n_test=10)
    monkeypatch.setenv("CNNLAB_DATA", str(tmp_path / "env"))
    assert len(load_arrays("fashion-mnist", download=False)["train"]) == 30  # $CNNLAB_DATA/fashion-mnist
    make_idx_dataset(tmp_path / "mine", n_train=20, n_test=10, gz=False)
    assert len(load_arrays("FashionMNIST", data_dir=tmp_path / "mine", download=False)["train"]) == 20


def test_missing_data_names_file_and_two_ways(tmp_path, no_system_data):
    with pytest.raises(DatasetNotFoundError) as err:
        load_arrays("fashion-mnist", data_dir=tmp_path, download=False)
    msg = str(err.value)
    assert "train-images-idx3-ubyte" in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "--data-dir" in msg and "CNNLAB_DATA" in msg


def test_partial_folder_names_the_exact_missing_file(tmp_path, no_system_data):
    folder = make_idx_dataset(tmp_path / "fm", n_train=20, n_test=10)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetNotFoundError, match=str(folder / "t10k-labels-idx1-ubyte")):
        load_arrays("fashion-mnist", data_dir=folder, download=False)


def test_failed_download_says_why(tmp_path, no_system_data, monkeypatch):
    def offline(spec, root):
        raise OSError("network is unreachable")

    monkeypatch.setattr(sources, "DOWNLOADER", offline)
    with pytest.raises(DatasetNotFoundError, match="network is unreachable") as err:
        load_arrays("mnist", data_dir=tmp_path)
    assert "train-images-idx3-ubyte" in str(err.value)


def test_download_lands_in_torchvision_layout(tmp_path, no_system_data, monkeypatch):
    calls = []

    def fake_download(spec, root):
        calls.append(root)
        make_idx_dataset(root / "MNIST" / "raw", n_train=16, n_test=8)

    monkeypatch.setattr(sources, "DOWNLOADER", fake_download)
    splits = load_arrays("mnist", data_dir=tmp_path / "dl")
    assert calls == [tmp_path / "dl"]
    assert len(splits["train"]) == 16 and splits["test"].classes == [str(d) for d in range(10)]


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="unknown data set 'imagenet21k'"):
        load_arrays("imagenet21k")


# -- CIFAR ---------------------------------------------------------------------------------------------


def test_cifar_batches(tmp_path, no_system_data):
    make_cifar_dataset(tmp_path, per_batch=12)
    splits = load_arrays("cifar10", data_dir=tmp_path, download=False)
    assert len(splits["train"]) == 60 and len(splits["test"]) == 12
    assert splits["train"].image_shape == (3, 32, 32) and splits["train"].classes[3] == "class3"
    raw = pickle.loads((tmp_path / "cifar-10-batches-py" / "data_batch_2").read_bytes())
    assert torch.equal(splits["train"].images[12:24].reshape(12, -1), torch.from_numpy(raw[b"data"]))


def test_cifar_truncated_and_malicious_pickles(tmp_path):
    folder = make_cifar_dataset(tmp_path, per_batch=8)
    batch = folder / "data_batch_1"
    batch.write_bytes(batch.read_bytes()[:100])
    with pytest.raises(DatasetFileError, match="data_batch_1"):
        read_cifar_batch(batch)
    evil = tmp_path / "evil"
    evil.write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")
    with pytest.raises(DatasetFileError, match="refusing to load os.system"):
        read_cifar_batch(evil)


# -- image folders -------------------------------------------------------------------------------------


def test_image_folder_listing_and_items(tmp_path):
    root = make_image_folder(tmp_path, per_class=4)
    samples, classes = list_image_folder(root / "train")
    assert classes == ["cat", "dog", "fox"] and len(samples) == 12
    ds = FolderDataset(root / "train", size=16, channels=3, train=False)
    x, label = ds[5]
    assert x.dtype == torch.uint8 and x.shape == (3, 16, 16) and label == 1
    gray = FolderDataset(root / "train", size=12, channels=1, train=True)
    assert gray[0][0].shape == (1, 12, 12)


@pytest.mark.parametrize("workers", [0, 1])
def test_corrupt_image_names_the_file(tmp_path, workers):
    root = make_image_folder(tmp_path, per_class=3)
    bad = root / "train" / "dog" / "1.png"
    bad.write_bytes(bad.read_bytes()[:60])  # a truncated PNG
    source = FolderBatches(FolderDataset(root / "train", 16), 4, "cpu", train=False, workers=workers)
    with pytest.raises(DatasetFileError) as err:
        list(source.batches(0))
    assert str(bad) in str(err.value) and "\n" not in str(err.value)


# -- splits and statistics -----------------------------------------------------------------------------


def _arrays(n: int = 50, size: int = 6) -> ArrayDataset:
    images = torch.randint(0, 256, (n, 1, size, size), dtype=torch.uint8)
    return ArrayDataset(images, torch.arange(n) % 10, [str(i) for i in range(10)], "toy")


def test_validation_split_is_seeded_and_disjoint():
    data = _arrays(50)
    train, val = train_val_split(data, 10, seed=3)
    assert len(train) == 40 and len(val) == 10
    tr, va = split_indices(50, 10, 3)
    assert set(tr.tolist()).isdisjoint(va.tolist()) and len(set(tr.tolist()) | set(va.tolist())) == 50
    assert torch.equal(val.images, data.images[va])
    assert torch.equal(split_indices(50, 10, 3)[1], va)
    assert not torch.equal(split_indices(50, 10, 4)[1], va)
    assert len(split_indices(50, 0.2, 0)[1]) == 10
    assert train_val_split(data, 0)[1] is None
    with pytest.raises(ValueError, match="leaves none"):
        split_indices(50, 50)


def test_channel_stats_match_numpy():
    images = torch.randint(0, 256, (9, 3, 5, 4), dtype=torch.uint8)
    mean, std = channel_stats(images)
    x = images.numpy().astype(np.float64).transpose(1, 0, 2, 3).reshape(3, -1) / 255
    assert np.allclose(mean, x.mean(1), atol=1e-12) and np.allclose(std, x.std(1), atol=1e-12)


# -- batch sources ---------------------------------------------------------------------------------------


def test_tensor_batches_cover_the_epoch_and_resume():
    data = _arrays(50)
    source = TensorBatches(data, 8, "cpu", train=True, seed=1)
    assert len(source) == 6  # the last partial batch is dropped
    labels = torch.cat([y for _, y in source.batches(0)])
    assert len(labels) == 48 and len(set(torch.cat(list(source.batch_indices(0))).tolist())) == 48
    again = torch.cat([y for _, y in source.batches(0)])
    assert torch.equal(labels, again)
    assert not torch.equal(torch.cat(list(source.batch_indices(1))), torch.cat(list(source.batch_indices(0))))
    tail = torch.cat([y for _, y in source.batches(0, start=4)])
    assert torch.equal(tail, labels[32:])


def test_sharded_batches_rebuild_the_global_batch():
    data = _arrays(40)
    whole = list(TensorBatches(data, 8, "cpu", train=True, seed=2).batches(3))
    parts = [list(TensorBatches(data, 8, "cpu", train=True, seed=2, rank=r, world=2).batches(3)) for r in (0, 1)]
    for step, (x, _) in enumerate(whole):
        assert torch.equal(torch.cat([parts[0][step][0], parts[1][step][0]]), x)
    evals = [torch.cat([y for _, y in TensorBatches(data, 7, "cpu", False, rank=r, world=2).batches(0)])
             for r in (0, 1)]
    assert sorted(torch.cat(evals).tolist()) == sorted(data.labels.tolist())
    with pytest.raises(ValueError, match="does not split evenly"):
        TensorBatches(data, 9, "cpu", train=True, world=2)


# -- augmentation --------------------------------------------------------------------------------------


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_random_crop_is_a_window_of_the_padded_image():
    x = torch.randint(1, 256, (16, 2, 9, 9), dtype=torch.uint8)
    out = random_crop(x, 3, _gen())
    padded = F.pad(x, (3,) * 4)
    shifts = set()
    for i in range(16):
        found = [(dy, dx) for dy in range(7) for dx in range(7)
                 if torch.equal(out[i], padded[i, :, dy:dy + 9, dx:dx + 9])]
        assert found, f"image {i} is not a crop of its padded input"
        shifts.add(found[0])
    assert len(shifts) > 1


def test_hflip_and_erasing():
    x = torch.randint(0, 256, (32, 1, 10, 12), dtype=torch.uint8)
    assert torch.equal(hflip(x, _gen(), p=1.0), x.flip(3))
    assert torch.equal(hflip(x, _gen(), p=0.0), x)
    xf = torch.randn(32, 3, 10, 12) + 5.0  # no pixel is 0 before erasing
    erased = random_erasing(xf, _gen(), p=1.0, value=0.0)
    changed = (erased != xf).any(1)  # (B, H, W)
    for i in range(32):
        rows, cols = changed[i].nonzero(as_tuple=True)
        area = len(rows)
        assert area >= 1
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert box == area, "erased pixels form one rectangle"
        assert area <= 0.33 * 120 * 1.5
        assert (erased[i][:, rows, cols] == 0).all()
    assert torch.equal(random_erasing(xf, _gen(), p=0.0), xf)


def test_shards_are_augmented_like_the_whole_batch():
    x = torch.randint(0, 256, (12, 1, 8, 8), dtype=torch.uint8)
    whole = crop_flip_erase(x, _gen(5), padding=2, flip_p=0.5, erase_p=0.5)
    halves = [crop_flip_erase(x[r * 6:(r + 1) * 6], _gen(5), 2, 0.5, 0.5, shard=(r, 2)) for r in (0, 1)]
    assert torch.equal(torch.cat(halves), whole)


def test_mixup_and_cutmix_targets():
    x = torch.randn(6, 1, 8, 8)
    target = F.one_hot(torch.arange(6) % 3, 3).float()
    mixed, soft = mixup(x, target, 0.7)
    assert torch.allclose(mixed, 0.7 * x + 0.3 * x.flip(0))
    assert torch.allclose(soft.sum(1), torch.ones(6))
    cut, soft = cutmix(x, target, 0.75, random.Random(0))
    pasted = (cut != x).any(1).float().mean((1, 2))  # fraction of each image taken from its partner
    partner_differs = (x != x.flip(0)).any(1).all()
    assert partner_differs
    assert torch.allclose(soft, target * (1 - pasted[:, None]) + target.flip(0) * pasted[:, None], atol=1e-6)


def test_fit_to_size_pads_small_gaps_and_resizes_large_ones():
    x = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8)
    padded = fit_to_size(x, 32)
    assert padded.shape == (2, 1, 32, 32) and torch.equal(padded[..., 2:30, 2:30], x)
    assert padded[..., :2, :].sum() == 0
    assert fit_to_size(x, 64).shape == (2, 1, 64, 64)
    assert fit_to_size(x, 28) is x


def test_normalize_and_batch_augment_output():
    x = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    mean, std = torch.tensor([0.3]).view(1, 1, 1, 1), torch.tensor([0.4]).view(1, 1, 1, 1)
    assert torch.allclose(normalize(x, mean, std), (x.float() / 255 - 0.3) / 0.4, atol=1e-6)
    aug = BatchAugment((0.3,), (0.4,), 10, size=32, in_chans=3, crop_padding=2, hflip=True, random_erasing=0.5,
                       mixup_alpha=0.2)
    y = torch.arange(4)
    xb, target = aug.train(x, y, _gen(), random.Random(0))
    assert xb.shape == (4, 3, 32, 32) and xb.dtype == torch.float32
    assert target.shape == (4, 10) and torch.allclose(target.sum(1), torch.ones(4))
    # Evaluation input written out by hand: centred zero padding 28 -> 32, the channel repeated, normalized.
    expected = ((F.pad(x, (2, 2, 2, 2)).float() / 255 - 0.3) / 0.4).expand(4, 3, 32, 32)
    assert torch.allclose(aug.eval(x), expected, atol=1e-5)


# -- the real Fashion-MNIST (Debian's dataset-fashion-mnist), where installed -------------------------


@pytest.mark.skipif(not REAL_FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist(monkeypatch):
    monkeypatch.delenv("CNNLAB_DATA", raising=False)
    splits = load_arrays("fashion-mnist", download=False)
    train, test = splits["train"], splits["test"]
    # Xiao et al. 2017: 60,000 training and 10,000 test images, 28x28 grayscale, balanced over 10 classes.
    assert len(train) == 60000 and len(test) == 10000
    assert train.image_shape == (1, 28, 28)
    assert train.class_counts() == [6000] * 10 and test.class_counts() == [1000] * 10
    with gzip.open(REAL_FASHION / "t10k-labels-idx1-ubyte.gz") as f:
        assert test.labels[:20].tolist() == list(f.read()[8:28])
    mean, std = channel_stats(train.images)
    assert abs(mean[0] - 0.2860) < 5e-4 and abs(std[0] - 0.3530) < 5e-4  # the commonly quoted statistics
