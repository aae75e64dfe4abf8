"""Small generated segmentation data for tests: item sources for the scenes, mask folders, fake Pet and VOC trees."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from _tiny import write_idx


def write_items(root: Path, train: np.ndarray, train_labels, test: np.ndarray, test_labels) -> Path:
    """Fashion-MNIST-named IDX files of the given 28x28 uint8 items and labels in ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for prefix, images, labels in (("train", train, train_labels), ("t10k", test, test_labels)):
        write_idx(root / f"{prefix}-images-idx3-ubyte", np.asarray(images, np.uint8), gz=True)
        write_idx(root / f"{prefix}-labels-idx1-ubyte", np.asarray(labels, np.uint8), gz=True)
    return root


def shape_items(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` items: a class-dependent bright shape (bars, boxes, rings) with dark margins, random labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    yy, xx = np.mgrid[0:28, 0:28]
    items = np.zeros((n, 28, 28), np.uint8)
    for i, label in enumerate(labels):
        r = 4 + label  # the shape's size grows with the class
        if label % 2:
            inside = (abs(yy - 14) <= r) & (abs(xx - 14) <= 13 - label)
        else:
            inside = ((yy - 14) ** 2 + (xx - 14) ** 2 <= (r + 3) ** 2) & ((yy - 14) ** 2 + (xx - 14) ** 2 >= r**2)
        items[i][inside] = 120 + 12 * label + rng.integers(0, 8)
    return items, labels


def write_mask_folder(root: Path, n_train: int = 6, n_test: int = 3, size: tuple[int, int] = (20, 24),
                      palette: bool = True, classes: list[str] | None = None) -> Path:
    """ROOT/{train,test}/{images,masks}: RGB images whose red channel is 40 x the class of each pixel.

    Masks hold classes 0..2 in vertical bands and an ignored (255) border row; palette or grayscale PNGs.
    """
    h, w = size
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        (root / split / "images").mkdir(parents=True, exist_ok=True)
        (root / split / "masks").mkdir(parents=True, exist_ok=True)
        for i in range(n):
            cut = sorted(rng.integers(2, w - 2, 2))
            mask = np.zeros((h, w), np.uint8)
            mask[:, cut[0]:] = 1
            mask[:, cut[1]:] = 2
            mask[0] = 255
            image = np.stack([mask.astype(np.int64) * 40 % 256, np.full((h, w), 9), np.full((h, w), 9)], -1)
            Image.fromarray(image.astype(np.uint8)).save(root / split / "images" / f"img{i}.jpg", quality=100)
            img = Image.fromarray(mask)  # grayscale: the values are the classes
            if palette:  # a palette image whose indices are the classes and whose colours are not
                img.putpalette([v for k in range(256) for v in (k, 255 - k, 0)])
            img.save(root / split / "masks" / f"img{i}.png")
    if classes is not None:
        (root / "classes.txt").write_text("\n".join(classes) + "\n")
    return root


def write_fake_pet(root: Path, n: int = 4) -> Path:
    """The files torchvision.datasets.OxfordIIITPet reads (segmentation): images, trimaps, split lists."""
    base = root / "oxford-iiit-pet"
    (base / "images").mkdir(parents=True)
    (base / "annotations" / "trimaps").mkdir(parents=True)
    for split, names in (("trainval", [f"Abyssinian_{i}" for i in range(1, n + 1)]), ("test", ["Birman_1"])):
        lines = []
        for name in names:
            trimap = np.full((16, 16), 2, np.uint8)  # background
            trimap[4:12, 4:12] = 3  # border
            trimap[5:11, 5:11] = 1  # pet
            Image.fromarray(trimap).save(base / "annotations" / "trimaps" / f"{name}.png")
            Image.fromarray(np.full((16, 16, 3), 100, np.uint8)).save(base / "images" / f"{name}.jpg")
            lines.append(f"{name} 1 1 1")
        (base / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def write_fake_voc(root: Path) -> Path:
    """The files torchvision.datasets.VOCSegmentation reads for 2012: JPEGImages, SegmentationClass, lists."""
    base = root / "VOCdevkit" / "VOC2012"
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (base / folder).mkdir(parents=True)
    for split, names in (("train", ["2007_000032", "2007_000033"]), ("val", ["2007_000039"])):
        for name in names:
            mask = np.zeros((12, 12), np.uint8)
            mask[3:9, 3:9] = 15  # person
            mask[2, :] = 255  # VOC's outline: ignored
            img = Image.fromarray(mask)
            img.putpalette([v for k in range(256) for v in (k, k, k)])
            img.save(base / "SegmentationClass" / f"{name}.png")
            Image.fromarray(np.full((12, 12, 3), 50, np.uint8)).save(base / "JPEGImages" / f"{name}.jpg")
        (base / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(names) + "\n")
    return root
