"""Where the data sets live on disk and how to read them: Fashion-MNIST, MNIST, CIFAR-10/100, image folders.

Files are looked for in ``--data-dir``, then ``$CNNLAB_DATA``, then the system data directory (Debian's
``dataset-fashion-mnist`` package installs ``/usr/share/datasets/fashion-mnist/``), then cnnlab's cache
(``~/.cache/cnnlab``). When none holds them and downloading is allowed, torchvision fetches them into
``--data-dir`` or ``$CNNLAB_DATA`` when given, else the cache.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cnnlab.data.arrays import ArrayDataset
from cnnlab.data.errors import DatasetFileError, DatasetNotFoundError
from cnnlab.data.readers import read_cifar_batch, read_cifar_meta, read_idx
from cnnlab.errors import UnknownNameError

__all__ = [
    "DATASETS",
    "SYSTEM_DATA_DIRS",
    "DatasetSpec",
    "canonical_dataset_name",
    "data_roots",
    "download_root",
    "find_dataset_dir",
    "load_arrays",
    "not_found_error",
]

# Searched after --data-dir and $CNNLAB_DATA; module constants so tests can point them elsewhere.
SYSTEM_DATA_DIRS: tuple[Path, ...] = (Path("/usr/share/datasets"),)
# Where torchvision downloads go when no --data-dir or $CNNLAB_DATA is given; searched last.
CACHE_DIR = Path.home() / ".cache" / "cnnlab"

FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@dataclass(frozen=True)
class DatasetSpec:
    """A named data set: its folder names, the files each split needs, and how to fetch it."""

    name: str
    title: str
    folders: tuple[str, ...]  # sub-folders of a data root that may hold the files (ours, torchvision's)
    files: dict[str, tuple[str, ...]]  # split -> file names (IDX files may also be gzipped: name + ".gz")
    torchvision_class: str
    url: str
    apt_package: str | None = None


DATASETS: dict[str, DatasetSpec] = {
    "fashion-mnist": DatasetSpec(
        "fashion-mnist",
        "Fashion-MNIST",
        ("fashion-mnist", "FashionMNIST/raw"),
        {
            "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
            "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
        },
        "FashionMNIST",
        "https://github.com/zalandoresearch/fashion-mnist",
        "dataset-fashion-mnist",
    ),
    "mnist": DatasetSpec(
        "mnist",
        "MNIST",
        ("mnist", "MNIST/raw"),
        {
            "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
            "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
        },
        "MNIST",
        "https://yann.lecun.com/exdb/mnist/",
    ),
    "cifar10": DatasetSpec(
        "cifar10",
        "CIFAR-10",
        ("cifar-10-batches-py",),
        {
            "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
            "test": ("test_batch",),
            "meta": ("batches.meta",),
        },
        "CIFAR10",
        "https://www.cs.toronto.edu/~kriz/cifar.html",
    ),
    "cifar100": DatasetSpec(
        "cifar100",
        "CIFAR-100",
        ("cifar-100-python",),
        {"train": ("train",), "test": ("test",), "meta": ("meta",)},
        "CIFAR100",
        "https://www.cs.toronto.edu/~kriz/cifar.html",
    ),
}

_ALIASES = {
    "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "fmnist": "fashion-mnist",
    "cifar-10": "cifar10",
    "cifar_10": "cifar10",
    "cifar-100": "cifar100",
    "cifar_100": "cifar100",
}


def canonical_dataset_name(name: str) -> str | None:
    """The registered name of a data set ('FashionMNIST' -> 'fashion-mnist'), or None if not one of ours."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    return key if key in DATASETS else None


def data_roots(data_dir: str | Path | None = None) -> list[Path]:
    """The folders searched, in order: ``data_dir``, ``$CNNLAB_DATA``, the system data directories."""
    roots = [Path(data_dir).expanduser()] if data_dir else []
    if os.environ.get("CNNLAB_DATA"):
        roots.append(Path(os.environ["CNNLAB_DATA"]).expanduser())
    roots.extend(SYSTEM_DATA_DIRS)
    roots.append(CACHE_DIR)
    return roots


def _candidate_dirs(spec: DatasetSpec, roots: list[Path]) -> list[Path]:
    dirs: list[Path] = []
    for root in roots:
        dirs.extend(root / folder for folder in spec.folders)
        dirs.append(root)  # the files themselves may sit directly in --data-dir
    return list(dict.fromkeys(dirs))


def _file_in(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _required_files(spec: DatasetSpec) -> list[str]:
    return [f for files in spec.files.values() for f in files]


def find_dataset_dir(spec: DatasetSpec, roots: list[Path]) -> tuple[Path | None, str]:
    """The first folder holding every file of ``spec``; else None and the first missing file's name."""
    first_missing = _required_files(spec)[0]
    best_found = -1
    for folder in _candidate_dirs(spec, roots):
        present = [f for f in _required_files(spec) if _file_in(folder, f)]
        if len(present) == len(_required_files(spec)):
            return folder, ""
        if present and len(present) > best_found:
            # A folder with some of the files: name what it lacks, not the first file of all.
            best_found = len(present)
            first_missing = str(folder / next(f for f in _required_files(spec) if f not in present))
    return None, first_missing


def download_root(roots: list[Path]) -> Path:
    """Where a download goes: the first root the user named (--data-dir, $CNNLAB_DATA), else the cache."""
    user_roots = [r for r in roots if r not in SYSTEM_DATA_DIRS and r != CACHE_DIR]
    return user_roots[0] if user_roots else CACHE_DIR


def _torchvision_download(spec: DatasetSpec, root: Path) -> None:
    import torchvision.datasets as tvd

    root.mkdir(parents=True, exist_ok=True)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30)  # an unreachable network should fail in seconds, not hang
    try:
        for train in (True, False):
            getattr(tvd, spec.torchvision_class)(str(root), train=train, download=True)
    finally:
        socket.setdefaulttimeout(previous)


# Replaced in tests to simulate a machine without network.
DOWNLOADER: Callable[[DatasetSpec, Path], None] = _torchvision_download


def not_found_error(spec: DatasetSpec, missing: str, roots: list[Path], why: str) -> DatasetNotFoundError:
    """The one message for a missing data set: what is missing, where cnnlab looked, why, and how to get it."""
    searched = ", ".join(str(r) for r in roots)
    wanted = ", ".join(_required_files(spec))
    first_way = (
        f"install Debian's package (sudo apt-get install {spec.apt_package})"
        if spec.apt_package
        else "run once where the network is reachable so torchvision downloads it"
    )
    return DatasetNotFoundError(
        f"{spec.title} not found: missing {missing} (searched {searched}); {why}. To get it, either "
        f"{first_way}, or put its files ({wanted}; .gz is fine) from {spec.url} in a folder and pass "
        f"--data-dir DIR or set CNNLAB_DATA=DIR"
    )


def load_arrays(
    name: str, data_dir: str | Path | None = None, download: bool = True
) -> dict[str, ArrayDataset]:
    """The train and test splits of a named data set as in-memory uint8 tensors."""
    key = canonical_dataset_name(name)
    if key is None:
        raise UnknownNameError(
            f"unknown data set {name!r}; choose one of {', '.join(DATASETS)} or an image-folder path"
        )
    spec = DATASETS[key]
    roots = data_roots(data_dir)
    folder, missing = find_dataset_dir(spec, roots)
    if folder is None:
        if not download:
            raise not_found_error(spec, missing, roots, "downloading is disabled (--no-download)")
        target = download_root(roots)
        try:
            DOWNLOADER(spec, target)
        except Exception as err:  # noqa: BLE001  (any download failure becomes the one clear message)
            raise not_found_error(spec, missing, roots, f"downloading into {target} failed ({err})") from err
        folder, missing = find_dataset_dir(spec, [target])
        if folder is None:
            raise not_found_error(spec, missing, roots, f"the download into {target} did not produce it")
    reader = _read_idx_split if key in ("fashion-mnist", "mnist") else _read_cifar_split
    return {split: reader(spec, folder, split) for split in ("train", "test")}


def _read_idx_split(spec: DatasetSpec, folder: Path, split: str) -> ArrayDataset:
    images_file, labels_file = (_file_in(folder, f) for f in spec.files[split])
    images = read_idx(images_file)
    labels = read_idx(labels_file)
    _check_pair(images, labels, images_file, labels_file)
    classes = FASHION_CLASSES if spec.name == "fashion-mnist" else [str(d) for d in range(10)]
    _check_labels(labels, len(classes), labels_file)
    return ArrayDataset(
        torch.from_numpy(images).unsqueeze(1),
        torch.from_numpy(labels.astype(np.int64)),
        classes,
        f"{spec.name}:{split}",
        str(folder),
    )


def _check_pair(images: np.ndarray, labels: np.ndarray, images_file: Path, labels_file: Path) -> None:
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DatasetFileError(
            f"{images_file} should hold uint8 images (N, H, W), got {images.dtype} {images.shape}"
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise DatasetFileError(
            f"{labels_file} holds {labels.shape} labels for the {len(images)} images of {images_file}"
        )


def _check_labels(labels: np.ndarray, num_classes: int, path: Path) -> None:
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DatasetFileError(
            f"{path} has labels outside 0..{num_classes - 1} (min {labels.min()}, max {labels.max()})"
        )


def _read_cifar_split(spec: DatasetSpec, folder: Path, split: str) -> ArrayDataset:
    label_key = "fine_labels" if spec.name == "cifar100" else "labels"
    meta_key = "fine_label_names" if spec.name == "cifar100" else "label_names"
    parts = [read_cifar_batch(_file_in(folder, f), label_key) for f in spec.files[split]]
    classes = read_cifar_meta(_file_in(folder, spec.files["meta"][0]), meta_key)
    labels = np.concatenate([p[1] for p in parts])
    _check_labels(labels, len(classes), folder / spec.files[split][0])
    images = torch.from_numpy(np.concatenate([p[0] for p in parts]))
    return ArrayDataset(images, torch.from_numpy(labels), classes, f"{spec.name}:{split}", str(folder))
