"""Segmentation data on disk and its augmentation: image/mask folders, Oxford-IIIT Pet, Pascal VOC 2012.

Folder format (``--data PATH``)::

    PATH/train/images/NAME.png   PATH/train/masks/NAME.png     (any image type; masks PNG)
    PATH/test/images/NAME.png    PATH/test/masks/NAME.png      (or val/ instead of test/)
    PATH/classes.txt             optional: one class name per line, in label order

A mask holds one class index per pixel: a palette PNG (its palette indices, as Pascal VOC stores them) or
a grayscale/integer PNG (its values). The value ``ignore_index`` (255 by default) marks pixels left out of
the loss and the metrics. Without classes.txt the classes are 0 .. the largest value of the training
masks, found by reading them once.

Oxford-IIIT Pet (``--data oxford-pet``; Parkhi et al. 2012) and Pascal VOC 2012 (``--data voc2012``;
Everingham et al. 2010) are read through torchvision's dataset classes when their files are in a data
root (``--data-dir``, ``$CNNLAB_DATA``, ~/.cache/cnnlab); cnnlab does not download them. The pets'
trimaps become background 0, pet 1 and, for the uncertain border, ``ignore_index``; VOC's masks keep their
21 classes and their 255 border. VOC's public labelled splits are train and val: val is the test split.

Images and masks are decoded at a fixed square side (the image bilinear, the mask nearest-neighbour),
then augmented per batch on the device by :func:`joint_crop_flip`, one random geometry per image applied
to both.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from cnnlab.data.augment import BatchAugment, Shard, _draw
from cnnlab.data.errors import DatasetFileError, DatasetNotFoundError
from cnnlab.data.folder import load_image
from cnnlab.data.readers import IMAGE_EXTENSIONS
from cnnlab.data.sources import data_roots
from cnnlab.errors import ConfigError

__all__ = [
    "NAMED_SEGMENTATION_SETS",
    "PET_CLASSES",
    "VOC_CLASSES",
    "MaskedImages",
    "SegmentationAugment",
    "is_mask_folder",
    "joint_crop_flip",
    "load_mask",
    "load_segmentation_splits",
    "named_segmentation_set",
    "random_windows",
]

PET_CLASSES = ["background", "pet"]
VOC_CLASSES = [
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
]
NAMED_SEGMENTATION_SETS = {
    "oxford-pet": "oxford-pet", "oxford-iiit-pet": "oxford-pet", "pets": "oxford-pet",
    "voc2012": "voc2012", "voc": "voc2012", "pascal-voc": "voc2012", "pascal-voc-2012": "voc2012",
}


def named_segmentation_set(name: str) -> str | None:
    """The canonical name of a named segmentation set ('oxford-pet', 'voc2012'), or None."""
    return NAMED_SEGMENTATION_SETS.get(name.strip().lower())


def is_mask_folder(path: str | Path) -> bool:
    """Whether ``path`` is a folder in the segmentation layout (train/images and train/masks)."""
    root = Path(path).expanduser()
    return (root / "train" / "images").is_dir() and (root / "train" / "masks").is_dir()


def load_mask(path: str | Path) -> np.ndarray:
    """A mask file as a (H, W) integer array of class indices; RGB masks are refused with what to do."""
    try:
        with Image.open(path) as img:
            img.load()
            return _mask_array(img, path)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DatasetFileError(f"cannot read mask {path}: {err}") from err


def _mask_array(img: Image.Image, path: str | Path) -> np.ndarray:
    if img.mode in ("P", "L", "1"):
        return np.asarray(img, dtype=np.uint8)  # a palette image reads as its palette indices
    if img.mode in ("I", "I;16", "I;16B", "I;16L"):
        values = np.asarray(img).astype(np.int64)
        if values.min() < 0 or values.max() > 255:
            raise DatasetFileError(f"mask {path} has values outside 0..255; cnnlab stores label maps as uint8")
        return values.astype(np.uint8)
    raise DatasetFileError(
        f"mask {path} is a {img.mode} image; save masks as palette or grayscale PNGs whose values are the "
        f"class indices (colours cannot be told from classes)"
    )


class MaskedImages(Dataset):
    """Image and mask pairs decoded at ``size`` x ``size``: uint8 image (C, S, S), uint8 label map (S, S)."""

    def __init__(
        self,
        pairs: Sequence[tuple[Path, Path]] | Dataset,
        size: int,
        channels: int,
        num_classes: int,
        ignore_index: int = 255,
        lookup: Sequence[int] | None = None,
        names: Sequence[str] | None = None,
    ) -> None:
        self.pairs = pairs  # (image file, mask file) pairs, or a torchvision data set giving PIL pairs
        self.indices = list(range(len(pairs)))
        self.size = size
        self.channels = channels
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        # Stored mask value -> class index (or ignore_index): the pets' trimap codes, identity elsewhere.
        self.lookup = np.asarray(lookup if lookup is not None else range(256), dtype=np.uint8)
        self.names = list(names) if names is not None else [str(i) for i in self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def subset(self, indices: torch.Tensor) -> MaskedImages:
        """The pairs at ``indices`` (positions in this set)."""
        out = copy.copy(self)
        out.indices = [self.indices[i] for i in indices.tolist()]
        return out

    def name(self, index: int) -> str:
        return self.names[self.indices[index]]

    def _open(self, index: int) -> tuple[Image.Image, np.ndarray, str]:
        item = self.indices[index]
        if isinstance(self.pairs, Dataset):
            img, mask = self.pairs[item]
            return img.convert("L" if self.channels == 1 else "RGB"), _mask_array(mask, self.names[item]), \
                self.names[item]
        image_path, mask_path = self.pairs[item]
        return load_image(image_path, self.channels), load_mask(mask_path), str(mask_path)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        img, mask, where = self._open(index)
        if mask.shape != (img.height, img.width):
            raise DatasetFileError(f"mask {where} is {mask.shape[1]}x{mask.shape[0]} but its image is "
                                   f"{img.width}x{img.height}")
        labels = self.lookup[mask]
        bad = (labels >= self.num_classes) & (labels != self.ignore_index)
        if bad.any():
            raise DatasetFileError(f"mask {where} has value {int(mask[bad][0])}, not a class index "
                                   f"(0..{self.num_classes - 1}) nor the ignore index {self.ignore_index}")
        img = img.resize((self.size, self.size), Image.BILINEAR)
        label_img = Image.fromarray(labels).resize((self.size, self.size), Image.NEAREST)
        x = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
        x = x.view(self.size, self.size, self.channels).permute(2, 0, 1).contiguous()  # (C, S, S)
        return x, torch.from_numpy(np.asarray(label_img, dtype=np.uint8).copy())  # (S, S)


def _pairs(split_dir: Path) -> list[tuple[Path, Path]]:
    """(image, mask) file pairs of one split folder, matched by name; a missing mask names the image."""
    images = sorted(p for p in (split_dir / "images").iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not images:
        raise DatasetFileError(f"{split_dir / 'images'} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    masks = {p.stem: p for p in (split_dir / "masks").iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS}
    missing = [p for p in images if p.stem not in masks]
    if missing:
        raise DatasetFileError(f"image {missing[0]} has no mask {split_dir / 'masks' / missing[0].stem}.png "
                               f"({len(missing)} of {len(images)} images lack one)")
    return [(p, masks[p.stem]) for p in images]


def _folder_classes(root: Path, train: list[tuple[Path, Path]], ignore_index: int) -> list[str]:
    names_file = root / "classes.txt"
    if names_file.is_file():
        names = [line.strip() for line in names_file.read_text().splitlines() if line.strip()]
        if not names:
            raise DatasetFileError(f"{names_file} names no classes; write one class name per line")
        return names
    largest = 0
    for _, mask_path in train:
        values = np.unique(load_mask(mask_path))
        values = values[values != ignore_index]
        largest = max(largest, int(values.max()) if len(values) else 0)
    return [f"class {i}" for i in range(max(largest + 1, 2))]


def _folder_splits(root: Path, size: int, channels: int, ignore_index: int) -> dict:
    test_dir = next((root / n for n in ("test", "val") if (root / n / "images").is_dir()), None)
    if not is_mask_folder(root) or test_dir is None:
        raise DatasetFileError(f"segmentation folder {root} needs train/images, train/masks and test/images, "
                               f"test/masks (or val/): image files and same-named mask PNGs")
    train, test = _pairs(root / "train"), _pairs(test_dir)
    classes = _folder_classes(root, train, ignore_index)
    return {
        "train": MaskedImages(train, size, channels, len(classes), ignore_index, names=[str(m) for _, m in train]),
        "test": MaskedImages(test, size, channels, len(classes), ignore_index, names=[str(m) for _, m in test]),
        "classes": classes,
    }


def _find_root(marker: str, data_dir: str | Path | None) -> Path | None:
    return next((root for root in data_roots(data_dir) if (root / marker).is_dir()), None)


def _not_found(title: str, marker: str, data_dir: str | Path | None, how: str) -> DatasetNotFoundError:
    searched = ", ".join(str(r) for r in data_roots(data_dir))
    return DatasetNotFoundError(f"{title} not found: no {marker} folder in {searched}; cnnlab does not download "
                                f"it. {how}, then pass --data-dir DIR or set CNNLAB_DATA=DIR")


def _torchvision_splits(name: str, size: int, channels: int, data_dir: str | Path | None, ignore_index: int) -> dict:
    import torchvision.datasets as tvd

    if name == "oxford-pet":
        root = _find_root("oxford-iiit-pet", data_dir)
        if root is None:
            raise _not_found("Oxford-IIIT Pet", "oxford-iiit-pet", data_dir,
                             "Get it with torchvision.datasets.OxfordIIITPet(DIR, target_types='segmentation', "
                             "download=True) (images.tar.gz and annotations.tar.gz from "
                             "https://www.robots.ox.ac.uk/~vgg/data/pets/ unpacked in DIR/oxford-iiit-pet)")
        # Trimap codes (the data set's README): 1 pet, 2 background, 3 border; 0 is unused.
        lookup = [ignore_index] * 256
        lookup[1], lookup[2], lookup[3] = 1, 0, ignore_index
        classes, made = PET_CLASSES, {}
        for split, tv_split in (("train", "trainval"), ("test", "test")):
            data = _call_torchvision(tvd.OxfordIIITPet, root, split=tv_split, target_types="segmentation")
            made[split] = MaskedImages(data, size, channels, 2, ignore_index, lookup,
                                       [str(p) for p in getattr(data, "_segs", range(len(data)))])
    else:
        root = _find_root("VOCdevkit/VOC2012", data_dir)
        if root is None:
            raise _not_found("Pascal VOC 2012", "VOCdevkit/VOC2012", data_dir,
                             "Get VOCtrainval_11-May-2012.tar from http://host.robots.ox.ac.uk/pascal/VOC/voc2012/ "
                             "and unpack it in DIR (or use torchvision.datasets.VOCSegmentation(DIR, download=True))")
        lookup = list(range(256))
        classes, made = VOC_CLASSES, {}
        for split, tv_split in (("train", "train"), ("test", "val")):
            data = _call_torchvision(tvd.VOCSegmentation, root, year="2012", image_set=tv_split)
            made[split] = MaskedImages(data, size, channels, len(VOC_CLASSES), ignore_index, lookup,
                                       [str(p) for p in data.masks])
    return {**made, "classes": classes}


def _call_torchvision(cls, root: Path, **kwargs) -> Dataset:
    try:
        return cls(str(root), download=False, **kwargs)
    except (RuntimeError, OSError) as err:  # torchvision's "Dataset not found or corrupted", a missing split list
        raise DatasetFileError(f"{cls.__name__} cannot read {root}: {err}") from err


def load_segmentation_splits(
    name: str, size: int, channels: int, data_dir: str | Path | None = None, ignore_index: int = 255
) -> dict:
    """{'train', 'test': MaskedImages, 'classes': names} of a named segmentation set or a mask folder."""
    if not 0 <= ignore_index <= 255:
        raise ConfigError(f"ignore_index must be a mask value 0..255, got {ignore_index}")
    known = named_segmentation_set(name)
    if known is not None:
        return _torchvision_splits(known, size, channels, data_dir, ignore_index)
    root = Path(name).expanduser()
    if not root.is_dir():
        raise DatasetNotFoundError(f"{name} is neither a segmentation data set (fashion-mnist-scenes, oxford-pet, "
                                   f"voc2012) nor a folder")
    return _folder_splits(root, size, channels, ignore_index)


# -- augmentation of image and mask together -----------------------------------------------------------------


def joint_crop_flip(
    x: torch.Tensor,
    mask: torch.Tensor,
    gen: torch.Generator,
    flip_p: float = 0.0,
    scale: tuple[float, float] = (1.0, 1.0),
    padding: int = 0,
    ignore_index: int = 255,
    shard: Shard = (0, 1),
) -> tuple[torch.Tensor, torch.Tensor]:
    """One random crop (side ``scale`` of the image's, anywhere within ``padding`` pixels of it) and mirror
    per image, applied alike to images (B, C, H, W; bilinear) and masks (B, H, W; nearest-neighbour).

    The crop is resized back to H x W. Its corner sits on a whole pixel, so at scale 1 a crop is an exact
    shift. Pixels from outside the image are 0 in the image and ``ignore_index`` in the mask. Returns the
    float image and the int64 mask.
    """
    B, _, H, W = x.shape
    dev = x.device
    draws = _draw(B, shard, lambda n: torch.rand(n, 4, generator=gen, device=dev))  # flip, scale, left, top
    side = scale[0] + (scale[1] - scale[0]) * draws[:, 1]  # crop side / image side
    theta = torch.zeros(B, 2, 3, device=dev)
    for axis, (extent, draw) in enumerate(((W, draws[:, 2]), (H, draws[:, 3]))):
        crop = side * extent  # pixels
        corner = (draw * (extent + 2 * padding - crop + 1)).floor().clamp(max=extent + 2 * padding - crop) - padding
        theta[:, axis, axis] = side
        theta[:, axis, 2] = 2 * (corner + crop / 2) / extent - 1  # the crop's centre, in [-1, 1] units
    theta[:, 0, 0] = torch.where(draws[:, 0] < flip_p, -theta[:, 0, 0], theta[:, 0, 0])
    grid = F.affine_grid(theta, [B, 1, H, W], align_corners=False)
    # Labels shifted by one so that outside pixels (0 after zero padding) become -1, then ignore_index.
    shifted = F.grid_sample(mask.float().unsqueeze(1) + 1, grid, mode="nearest", padding_mode="zeros",
                            align_corners=False)  # (B, 1, H, W)
    outside = shifted < 0.5
    # Border padding, then zeros where the mask is outside: within half a pixel of the edge both see the edge pixel.
    image = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    labels = shifted[:, 0].round().long() - 1
    return image.masked_fill_(outside, 0.0), labels.masked_fill_(outside[:, 0], ignore_index)


def random_windows(
    x: torch.Tensor,
    mask: torch.Tensor,
    side: int,
    gen: torch.Generator,
    shard: Shard = (0, 1),
) -> tuple[torch.Tensor, torch.Tensor]:
    """One random ``side`` x ``side`` window per image, cut alike from images (B, C, H, W) and masks (B, H, W).

    Windows lie wholly inside the image (no padding) and keep the pixels as they are (no resampling); an
    image no larger than ``side`` along a dimension is kept whole along it.
    """
    B, _, H, W = x.shape
    dev = x.device
    draws = _draw(B, shard, lambda n: torch.rand(n, 2, generator=gen, device=dev))  # top, left
    rows = _window_indices(draws[:, 0], H, side)  # (B, h)
    cols = _window_indices(draws[:, 1], W, side)  # (B, w)
    batch = torch.arange(B, device=dev)[:, None, None]
    # Advanced indexing around the channel slice puts it last: (B, h, w, C), a channels-last view after permute.
    image = x[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    return image, mask[batch, rows[:, :, None], cols[:, None, :]]


def _window_indices(draw: torch.Tensor, extent: int, side: int) -> torch.Tensor:
    """Per image, the pixel indices along one dimension of a window of ``side`` (the whole extent if smaller)."""
    side = min(side, extent)
    start = (draw * (extent - side + 1)).floor().long().clamp(max=extent - side)
    return start[:, None] + torch.arange(side, device=draw.device)


@dataclass
class SegmentationAugment(BatchAugment):
    """Turns uint8 image batches and label maps into model input and int64 targets: crop and flip both alike."""

    ignore_index: int = 255
    crop_scale: tuple[float, float] = (1.0, 1.0)  # random crops of this share of the side (zoom), resized back
    train_crop: int | None = None  # train on a random window of this side per image

    def train(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        gen: torch.Generator,
        mix_rng,
        shard: Shard = (0, 1),
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Augmented, normalized images and their label maps (B, H, W) int64."""
        if self.train_crop and self.train_crop < max(x.shape[-2:]):
            x, y = random_windows(x, y, self.train_crop, gen, shard)
        if self.hflip or self.crop_padding > 0 or tuple(self.crop_scale) != (1.0, 1.0):
            x, y = joint_crop_flip(x, y, gen, 0.5 if self.hflip else 0.0, tuple(self.crop_scale),
                                   self.crop_padding, self.ignore_index, shard)
        return self._finish(x), y.long()
