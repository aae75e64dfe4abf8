"""Readers for the on-disk formats: IDX (MNIST, Fashion-MNIST), CIFAR python batches, image folders.

Each reader returns numpy arrays and raises ``DatasetFileError`` naming the file when the bytes are not
what the format promises; nothing is skipped silently.
"""

from __future__ import annotations

import gzip
import io
import pickle
import zlib
from pathlib import Path

import numpy as np

from cnnlab.data.errors import DatasetFileError, DatasetNotFoundError

__all__ = [
    "IMAGE_EXTENSIONS",
    "list_image_folder",
    "read_cifar_batch",
    "read_cifar_meta",
    "read_idx",
]

# IDX type byte -> numpy big-endian dtype (the format's spec, LeCun et al., MNIST page)
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
# Labels are 1-D, grayscale images 3-D (N, H, W); 4 leaves room for (N, H, W, C). More is a damaged header.
_IDX_MAX_DIMS = 4

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when the name ends in .gz."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        raise DatasetFileError(
            f"cannot read {path}: {err} (the file is corrupt or truncated; fetch it again)"
        ) from err


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (optionally gzipped) as a numpy array of its declared shape and type."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DatasetFileError(f"{path} is not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    ndim = raw[3]
    if not 1 <= ndim <= _IDX_MAX_DIMS:
        raise DatasetFileError(
            f"{path} is damaged or not an IDX data file: its header declares {ndim} dimensions (images and "
            f"labels have 1 to {_IDX_MAX_DIMS})"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetFileError(
            f"{path} is truncated: its header declares {ndim} dimensions but the file ends first"
        )
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    found = len(raw) - header
    if found != expected:
        what = "truncated" if found < expected else "longer than its header says"
        raise DatasetFileError(f"{path} is {what}: shape {dims} needs {expected} data bytes, found {found}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only plain containers and numpy arrays: a data file must not run code."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _load_pickle(path: Path) -> dict:
    try:
        obj = _ArrayUnpickler(io.BytesIO(_read_bytes(path)), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise DatasetFileError(f"cannot read CIFAR batch {path}: {err} (corrupt or truncated file)") from err
    if not isinstance(obj, dict):
        raise DatasetFileError(f"{path} is not a CIFAR batch: it holds a {type(obj).__name__}, not a dict")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def read_cifar_batch(path: str | Path, label_key: str = "labels") -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR python batch as (images uint8 (N, 3, 32, 32), labels int64 (N,))."""
    path = Path(path)
    batch = _load_pickle(path)
    if "data" not in batch or label_key not in batch:
        raise DatasetFileError(
            f"{path} is not a CIFAR batch: keys {sorted(batch)} lack 'data' or {label_key!r}"
        )
    data = np.asarray(batch["data"])
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DatasetFileError(f"{path}: 'data' should be uint8 (N, 3072), got {data.dtype} {data.shape}")
    if len(labels) != len(data):
        raise DatasetFileError(f"{path}: {len(data)} images but {len(labels)} labels")
    return data.reshape(-1, 3, 32, 32), labels


def read_cifar_meta(path: str | Path, key: str) -> list[str]:
    """Class names from a CIFAR meta file (``label_names`` for CIFAR-10, ``fine_label_names`` for 100)."""
    path = Path(path)
    meta = _load_pickle(path)
    if key not in meta:
        raise DatasetFileError(f"{path}: no {key!r} entry (keys: {sorted(meta)})")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in meta[key]]


def list_image_folder(root: str | Path) -> tuple[list[tuple[Path, int]], list[str]]:
    """(path, class index) pairs of a class-per-subfolder tree, and the sorted class names."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetNotFoundError(f"image folder {root} does not exist or is not a directory")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DatasetFileError(f"{root} has no class subfolders; expected {root}/<class>/<image files>")
    samples: list[tuple[Path, int]] = []
    for index, name in enumerate(classes):
        files = sorted(
            p for p in (root / name).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
        )
        samples.extend((p, index) for p in files)
    if not samples:
        raise DatasetFileError(f"{root} has class folders but no images ({', '.join(IMAGE_EXTENSIONS)})")
    return samples, classes
