"""A tiny registered classifier and small generated data sets (IDX, CIFAR, image folders) for tests."""

from __future__ import annotations

import gzip
import pickle
import struct
from collections import namedtuple
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from cnnlab.models import _registry
from cnnlab.models._base import FeatureInfo, ZooModel
from cnnlab.models.layers import ClassifierHead

TINY = "tiny_test_cnn"
TINY_AUX = "tiny_aux_test_cnn"  # returns (logits, aux_logits) in training, as GoogLeNet does
TINY_NODROP = "tiny_nodrop_test_cnn"  # a builder without a drop_rate argument
TINY_32 = "tiny32_test_cnn"  # needs inputs of at least 32x32, as LeNet-5 does
TinyOutputs = namedtuple("TinyOutputs", ["logits", "aux_logits"])


class TinyNet(ZooModel):
    """Tiny: conv 3x3 (8) -> ReLU -> max pool 2 -> conv 3x3 (16) -> ReLU -> pool, dropout, linear."""

    def __init__(self, num_classes: int = 10, in_chans: int = 1, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.num_classes, self.in_chans, self.num_features = num_classes, in_chans, 16
        self.stem = nn.Sequential(nn.Conv2d(in_chans, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.stages = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
        self.head = ClassifierHead(16, num_classes, drop_rate=drop_rate)
        self.feature_info = [FeatureInfo("stages", 16, 2)]


class TinyAuxNet(TinyNet):
    """Tiny with an auxiliary classifier on the stem (pool, linear), used in training only."""

    def __init__(self, num_classes: int = 10, in_chans: int = 1, drop_rate: float = 0.0) -> None:
        super().__init__(num_classes, in_chans, drop_rate)
        self.aux = ClassifierHead(8, num_classes)

    def forward(self, x: torch.Tensor):
        stem = self.stem(x)
        logits = self.forward_head(self.stages(stem))
        return TinyOutputs(logits, self.aux(stem)) if self.training else logits


def tiny_test_cnn(num_classes: int = 10, in_chans: int = 1, drop_rate: float = 0.0) -> TinyNet:
    return TinyNet(num_classes, in_chans, drop_rate)


def tiny_aux_test_cnn(num_classes: int = 10, in_chans: int = 1, drop_rate: float = 0.0) -> TinyAuxNet:
    return TinyAuxNet(num_classes, in_chans, drop_rate)


def tiny_nodrop_test_cnn(num_classes: int = 10, in_chans: int = 1) -> TinyNet:
    return TinyNet(num_classes, in_chans)


def tiny32_test_cnn(num_classes: int = 10, in_chans: int = 1, drop_rate: float = 0.0) -> TinyNet:
    return TinyNet(num_classes, in_chans, drop_rate)


_BUILDERS = {
    TINY: (tiny_test_cnn, 8),
    TINY_AUX: (tiny_aux_test_cnn, 8),
    TINY_NODROP: (tiny_nodrop_test_cnn, 8),
    TINY_32: (tiny32_test_cnn, 32),
}


def register_tiny() -> None:
    """Register the tiny models (once per process); tests remove them again with ``unregister_tiny``."""
    for name, (builder, min_size) in _BUILDERS.items():
        if name not in _registry._MODELS:
            _registry.register_model(
                builder,
                family="tiny",
                input_size=(1, 28, 28),
                min_size=min_size,
                num_classes=10,
                paper="a test network",
            )


def unregister_tiny() -> None:
    for name in _BUILDERS:
        _registry._MODELS.pop(name, None)


@contextmanager
def tiny_registered():
    register_tiny()
    try:
        yield TINY
    finally:
        unregister_tiny()


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    """Write a uint8 array in IDX format (optionally gzipped)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)
    return path


def class_images(labels: np.ndarray, size: int = 28, chans: int = 0, seed: int = 0) -> np.ndarray:
    """Learnable uint8 images: a square whose position and brightness encode the class, plus noise."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    shape = (n, size, size) if chans == 0 else (n, chans, size, size)
    images = rng.integers(0, 60, size=shape, dtype=np.int64)
    for i, label in enumerate(labels):
        r, c = divmod(int(label), 4)
        y0, x0 = 2 + r * (size // 4), 2 + c * (size // 5)
        images[i, ..., y0 : y0 + size // 5, x0 : x0 + size // 6] += 60 + 19 * int(label)
    return np.clip(images, 0, 255).astype(np.uint8)


def make_idx_dataset(
    root: Path, n_train: int = 256, n_test: int = 128, gz: bool = True, seed: int = 0
) -> Path:
    """A Fashion-MNIST-shaped IDX data set (10 classes, 28x28) in ``root``; returns ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        write_idx(root / f"{prefix}-images-idx3-ubyte", class_images(labels, seed=seed + n), gz)
        write_idx(root / f"{prefix}-labels-idx1-ubyte", labels, gz)
    return root


def make_cifar_dataset(root: Path, per_batch: int = 20, classes: int = 10) -> Path:
    """A CIFAR-10-layout folder (data_batch_1..5, test_batch, batches.meta) of small random batches."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        labels = rng.integers(0, classes, per_batch)
        data = class_images(labels, 32, 3).reshape(per_batch, -1)
        batch = {b"data": data, b"labels": labels.tolist(), b"batch_label": name.encode()}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {b"label_names": [f"class{i}".encode() for i in range(classes)]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


def make_image_folder(
    root: Path, per_class: int = 6, classes: tuple[str, ...] = ("cat", "dog", "fox"), size: int = 20
) -> Path:
    """ROOT/{train,test}/<class>/<n>.png of small RGB images."""
    from PIL import Image

    for split in ("train", "test"):
        for index, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            images = class_images(np.full(per_class, index), size, 3, seed=index + len(split))
            for i, img in enumerate(images):
                Image.fromarray(img.transpose(1, 2, 0)).save(folder / f"{i}.png")
    return root


def state_dicts_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def tiny_models():
    """The tiny test models, registered for one test module (use with pytest.mark.usefixtures)."""
    register_tiny()
    yield TINY
    unregister_tiny()


def train_argv(data_dir: Path, epochs: int = 2, *flags: str) -> list[str]:
    """``cnnlab train`` arguments for the tiny network on 320 generated images: batches of 32, 64 held out."""
    return [
        "train",
        TINY,
        "--data-dir",
        str(data_dir),
        "--epochs",
        str(epochs),
        "--batch-size",
        "32",
        "--val-split",
        "64",
        "--threads",
        "1",
        "--quiet",
        "--device",
        "cpu",
        *flags,
    ]
