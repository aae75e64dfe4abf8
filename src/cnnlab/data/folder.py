"""Image folders (one subfolder per class) decoded by DataLoader workers into fixed-size uint8 tensors.

Decoding JPEGs cannot be vectorized, so this is the per-sample path: each worker decodes, resizes and
crops one image; flips, erasing, mixup and normalization then run per batch on the device like the
in-memory path.

Training crops are Inception-style random resized crops by default, or, with a training scale range
(``scale``), VGG's scale jittering (Simonyan & Zisserman 2015, Sec. 3.1): the shorter side is resized to S
drawn uniformly from [S_min, S_max], then a random crop of the input size is taken (S fixed at 256 with a
227 crop is AlexNet's, Krizhevsky et al. 2012, Sec. 2 and 4.1). Evaluation resizes the shorter side to Q
and takes the centre: Q = size / 0.875 by default, Q = (S_min + S_max) / 2 with a scale range (VGG, Sec. 4.1).
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
from cnnlab.errors import ConfigError

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
        scale: tuple[int, int] | None = None,
        canvas: bool = False,
    ) -> None:
        samples, found = list_image_folder(root)
        if classes is not None and found != classes:
            raise DatasetFileError(f"{root} has classes {found}, but the training folder has {classes}")
        if scale is not None and not size <= scale[0] <= scale[1]:
            raise ConfigError(f"the training scales {scale[0]}..{scale[1]} must be at least the crop size {size}")
        self.root = Path(root)
        self.samples = samples
        self.classes = found
        self.size = size
        self.channels = channels
        self.train = train
        self.scale = scale  # training shorter sides [S_min, S_max]; None: random resized crops
        self.canvas = canvas  # evaluation items are the whole Q x Q centre square (for ten-crop testing)
        self.labels = torch.tensor([label for _, label in samples], dtype=torch.int64)

    @property
    def eval_side(self) -> int:
        """Q: the shorter side evaluation images are resized to before the centre is taken."""
        return round(sum(self.scale) / 2) if self.scale else round(self.size / _CENTER_FRACTION)

    @property
    def item_side(self) -> int:
        """The side of the square uint8 images this dataset returns."""
        return self.eval_side if self.canvas and not self.train else self.size

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
        if self.train:
            img = self._scale_jittered_crop(img) if self.scale else self._random_resized_crop(img)
        else:
            img = self._center_crop(img)
        return _to_uint8_tensor(img), label

    def _center_crop(self, img: Image.Image) -> Image.Image:
        img = _resize_shorter_side(img, self.eval_side)
        side = self.item_side
        left, top = (img.width - side) // 2, (img.height - side) // 2
        return img.crop((left, top, left + side, top + side))

    def _scale_jittered_crop(self, img: Image.Image) -> Image.Image:
        img = _resize_shorter_side(img, int(torch.randint(self.scale[0], self.scale[1] + 1, (1,))))
        left = int(torch.randint(0, img.width - self.size + 1, (1,)))
        top = int(torch.randint(0, img.height - self.size + 1, (1,)))
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


def _resize_shorter_side(img: Image.Image, short: int) -> Image.Image:
    scale = short / min(img.size)
    return img.resize((max(short, round(img.width * scale)), max(short, round(img.height * scale))), Image.BILINEAR)


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
