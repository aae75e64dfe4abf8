"""Image folders (one subfolder per class) decoded by DataLoader workers into fixed-size uint8 tensors.

Decoding JPEGs cannot be vectorized, so this is the per-sample path: each worker decodes, resizes and
crops one image; flips, erasing, mixup and normalization then run per batch on the device like the
in-memory path.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from cnnlab.data.errors import DatasetFileError, DatasetNotFoundError
from cnnlab.data.readers import list_image_folder

__all__ = ["FolderDataset", "find_folder_splits", "load_image"]

# Eval resizes the short side to size / 0.875 and takes the center, the ImageNet convention (224 of 256).
_CENTER_FRACTION = 0.875


def load_image(path: str | Path, channels: int) -> Image.Image:
    """Decode an image file fully as RGB (3 channels) or L (1 channel); a clear error names a bad file."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()  # force the decode here: a truncated file fails now, not later
            return img.convert("L" if channels == 1 else "RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DatasetFileError(f"cannot read image {path}: {err}") from err


def _to_uint8_tensor(img: Image.Image) -> torch.Tensor:
    data = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
    chans = len(img.getbands())
    return data.view(img.height, img.width, chans).permute(2, 0, 1).contiguous()  # (C, H, W)


class FolderDataset(Dataset):
    """(path, label) pairs of a class-per-subfolder tree; items are uint8 (C, size, size) and a label."""

    def __init__(
        self,
        root: str | Path,
        size: int,
        channels: int = 3,
        train: bool = True,
        classes: list[str] | None = None,
    ) -> None:
        samples, found = list_image_folder(root)
        if classes is not None and found != classes:
            raise DatasetFileError(f"{root} has classes {found}, but the training folder has {classes}")
        self.root = Path(root)
        self.samples = samples
        self.classes = found
        self.size = size
        self.channels = channels
        self.train = train
        self.labels = torch.tensor([label for _, label in samples], dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.samples)

    def subset(self, indices: torch.Tensor, train: bool) -> FolderDataset:
        """The samples at ``indices``, decoded for training (random crops) or evaluation (center crops)."""
        out = copy.copy(self)
        out.samples = [self.samples[i] for i in indices.tolist()]
        out.labels = self.labels[indices]
        out.train = train
        return out

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        img = load_image(path, self.channels)
        img = self._random_resized_crop(img) if self.train else self._center_crop(img)
        return _to_uint8_tensor(img), label

    def _center_crop(self, img: Image.Image) -> Image.Image:
        short = round(self.size / _CENTER_FRACTION)
        scale = short / min(img.size)
        img = img.resize(
            (max(short, round(img.width * scale)), max(short, round(img.height * scale))), Image.BILINEAR
        )
        left, top = (img.width - self.size) // 2, (img.height - self.size) // 2
        return img.crop((left, top, left + self.size, top + self.size))

    def _random_resized_crop(self, img: Image.Image) -> Image.Image:
        # Inception-style crop (Szegedy et al. 2015): 8%-100% of the area, aspect ratio 3/4 to 4/3.
        w, h = img.size
        area = w * h
        for _ in range(10):
            target = area * float(torch.empty(1).uniform_(0.08, 1.0))
            ratio = math.exp(float(torch.empty(1).uniform_(math.log(3 / 4), math.log(4 / 3))))
            cw, ch = round((target * ratio) ** 0.5), round((target / ratio) ** 0.5)
            if 0 < cw <= w and 0 < ch <= h:
                left = int(torch.randint(0, w - cw + 1, (1,)))
                top = int(torch.randint(0, h - ch + 1, (1,)))
                box = (left, top, left + cw, top + ch)
                return img.resize((self.size, self.size), Image.BILINEAR, box=box)
        return self._center_crop(img)


def find_folder_splits(root: str | Path) -> dict[str, Path]:
    """The folders of an image-folder data set: ROOT/train, ROOT/test (or ROOT/val), and ROOT/val beside test/.

    Keys ``train`` and ``test``, and ``val`` when ROOT holds both test/ and val/ (a validation set of its own).
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetNotFoundError(f"{root} is neither a known data set name nor a folder")
    train = root / "train"
    test = next((root / n for n in ("test", "val") if (root / n).is_dir()), None)
    if not train.is_dir() or test is None:
        raise DatasetFileError(
            f"image folder {root} needs a train/ and a test/ (or val/) subfolder, each with one "
            f"subfolder of images per class"
        )
    found = {"train": train, "test": test}
    if test.name == "test" and (root / "val").is_dir():
        found["val"] = root / "val"
    return found
