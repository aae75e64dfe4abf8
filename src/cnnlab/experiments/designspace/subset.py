"""A seeded subset of a named data set's training images, written as a data folder the trainer reads.

The trainer has no option to train on part of a data set, so a sweep with ``subset=N`` writes N + V
training images (V: the validation images the trainer then carves off with ``val_split=V``), drawn
with a seed from the full training split, in the data set's own file format, next to an unchanged
copy of the test files. Every trial then points ``data_dir`` at that folder: the same images for every
network, and the test set evaluated as usual (for the report only, never for a choice).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
from pathlib import Path

import numpy as np

from cnnlab.data.arrays import ArrayDataset
from cnnlab.data.sources import DATASETS, canonical_dataset_name
from cnnlab.errors import ConfigError

__all__ = ["write_subset"]

_IDX_SETS = ("fashion-mnist", "mnist")


def _idx_bytes(array: np.ndarray) -> bytes:
    """A uint8 array in the IDX format (LeCun et al.): magic 0x0000 08 NDIM, big-endian dims, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def _source_file(folder: Path, name: str) -> Path:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise ConfigError(f"{folder} lacks {name}: the data set changed while the subset was written")


def _write_train_files(key: str, images: np.ndarray, labels: np.ndarray, folder: Path) -> None:
    spec = DATASETS[key]
    if key in _IDX_SETS:
        image_file, label_file = spec.files["train"]
        (folder / image_file).write_bytes(_idx_bytes(images[:, 0]))  # (N, 1, H, W) -> (N, H, W)
        (folder / label_file).write_bytes(_idx_bytes(labels.astype(np.uint8)))
        return
    # CIFAR python batches: the images split over the set's training files, rows of 3 x 32 x 32 bytes.
    label_key = b"fine_labels" if key == "cifar100" else b"labels"
    parts = np.array_split(np.arange(len(images)), len(spec.files["train"]))
    for name, part in zip(spec.files["train"], parts):
        batch = {b"data": images[part].reshape(len(part), -1), label_key: labels[part].tolist(),
                 b"batch_label": name.encode()}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))


def write_subset(train: ArrayDataset, data: str, n_train: int, n_val: int, seed: int, folder: str | Path) -> Path:
    """A folder holding ``n_train + n_val`` images of ``train`` (the training split of the named data set
    ``data``) and the set's test files; returns it.

    An existing folder written with the same arguments is reused; the folder appears whole or not at
    all (written beside it, then renamed).
    """
    key = canonical_dataset_name(data)
    if key is None:
        raise ConfigError(f"a training subset needs a named data set ({', '.join(DATASETS)}), got {data!r}")
    folder = Path(folder)
    recipe = {"data": key, "n_train": n_train, "n_val": n_val, "seed": seed}
    stamp = folder / "subset.json"
    if stamp.is_file():
        if json.loads(stamp.read_text()) == recipe:
            return folder
        raise ConfigError(f"{folder} holds another subset ({stamp.read_text().strip()}); remove it or pick "
                          f"another sweep folder")
    if folder.exists():
        raise ConfigError(f"{folder} exists but is not a data subset cnnlab wrote; remove it")
    if n_train < 1 or n_val < 0:
        raise ConfigError(f"a subset needs at least 1 training image and 0 or more validation images, "
                          f"got {n_train} and {n_val}")
    if n_train + n_val > len(train):
        raise ConfigError(f"{key} has {len(train)} training images; a subset of {n_train} plus {n_val} for "
                          f"validation does not fit")
    chosen = np.random.default_rng(seed).permutation(len(train))[: n_train + n_val]
    source = Path(train.source)  # the folder the training files were read from
    temp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(parents=True)
    _write_train_files(key, train.images.numpy()[chosen], train.labels.numpy()[chosen], temp)
    for name in (*DATASETS[key].files["test"], *DATASETS[key].files.get("meta", ())):
        original = _source_file(source, name)
        shutil.copyfile(original, temp / original.name)
    (temp / "subset.json").write_text(json.dumps(recipe))
    os.replace(temp, folder)
    return folder
