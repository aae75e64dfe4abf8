"""Segmentation data on disk (mask folders, Oxford-IIIT Pet, VOC 2012) and image/mask augmentation together."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from _segdata import write_fake_pet, write_fake_voc, write_mask_folder
from cnnlab.data.errors import DatasetFileError, DatasetNotFoundError
from cnnlab.data.segmentation import (
    PET_CLASSES,
    VOC_CLASSES,
    SegmentationAugment,
    joint_crop_flip,
    load_segmentation_splits,
    random_windows,
)


@pytest.mark.parametrize("palette", [True, False])
def test_mask_folder_with_palette_or_grayscale_masks(tmp_path, palette):
    root = write_mask_folder(tmp_path, palette=palette)
    splits = load_segmentation_splits(str(root), size=16, channels=3)
    assert splits["classes"] == ["class 0", "class 1", "class 2"]  # read off the training masks
    assert len(splits["train"]) == 6 and len(splits["test"]) == 3
    x, mask = splits["train"][0]
    assert x.shape == (3, 16, 16) and x.dtype == torch.uint8 and mask.shape == (16, 16)
    assert set(mask.unique().tolist()) <= {0, 1, 2, 255} and (mask[0] == 255).all()  # the border row is ignored
    # The red channel was drawn as 40 x class: away from the band edges, image and mask agree.
    stored = np.asarray(Image.open(root / "train" / "masks" / "img0.png"))
    assert set(np.unique(stored)) == {0, 1, 2, 255}


def test_classes_txt_names_the_classes_and_bad_values_name_the_file(tmp_path):
    root = write_mask_folder(tmp_path, classes=["sky", "road"])
    splits = load_segmentation_splits(str(root), size=16, channels=1)
    assert splits["classes"] == ["sky", "road"]
    with pytest.raises(DatasetFileError, match=r"img0.png has value 2, not a class index \(0..1\)"):
        splits["train"][0]


def test_folder_problems_are_one_clear_error(tmp_path):
    root = write_mask_folder(tmp_path / "a")
    (root / "train" / "masks" / "img3.png").unlink()
    with pytest.raises(DatasetFileError, match="img3.jpg has no mask"):
        load_segmentation_splits(str(root), 16, 3)
    root = write_mask_folder(tmp_path / "b")
    Image.new("RGB", (24, 20)).save(root / "test" / "masks" / "img0.png")
    with pytest.raises(DatasetFileError, match="RGB image; save masks as palette or grayscale"):
        load_segmentation_splits(str(root), 16, 3)["test"][0]
    with pytest.raises(DatasetNotFoundError, match="neither a segmentation data set"):
        load_segmentation_splits(str(tmp_path / "nowhere"), 16, 3)


def test_oxford_pet_trimaps_through_torchvision(tmp_path):
    write_fake_pet(tmp_path)
    splits = load_segmentation_splits("oxford-pet", size=16, channels=3, data_dir=tmp_path)
    assert splits["classes"] == PET_CLASSES and len(splits["train"]) == 4 and len(splits["test"]) == 1
    _, mask = splits["test"][0]
    # trimap 2 (background) -> 0, 1 (pet) -> 1, 3 (border) -> ignored
    assert mask[0, 0] == 0 and mask[8, 8] == 1 and mask[4, 4] == 255
    assert torch.bincount(mask.flatten().long(), minlength=256)[[0, 1, 255]].tolist() == [256 - 64, 36, 28]


def test_voc_2012_through_torchvision_val_is_the_test_split(tmp_path):
    write_fake_voc(tmp_path)
    splits = load_segmentation_splits("voc2012", size=12, channels=3, data_dir=tmp_path)
    assert splits["classes"] == VOC_CLASSES and len(VOC_CLASSES) == 21
    assert len(splits["train"]) == 2 and len(splits["test"]) == 1
    _, mask = splits["test"][0]
    assert mask[5, 5] == VOC_CLASSES.index("person") and (mask[2] == 255).all() and mask[0, 0] == 0


def test_named_sets_not_on_disk_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setattr("cnnlab.data.sources.SYSTEM_DATA_DIRS", ())
    monkeypatch.setattr("cnnlab.data.sources.CACHE_DIR", tmp_path / "cache")
    monkeypatch.delenv("CNNLAB_DATA", raising=False)
    with pytest.raises(DatasetNotFoundError, match="Oxford-IIIT Pet not found.*does not download"):
        load_segmentation_splits("oxford-pet", 16, 3, data_dir=tmp_path)
    with pytest.raises(DatasetNotFoundError, match="VOCdevkit/VOC2012"):
        load_segmentation_splits("voc2012", 16, 3, data_dir=tmp_path)


# -- image and mask augmented together -------------------------------------------------------------------


def _quadrants(batch: int, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks of four class quadrants (0 1 / 2 3) and images that show them: pixel = 60 x class + 10."""
    mask = torch.zeros(batch, size, size, dtype=torch.uint8)
    half = size // 2
    mask[:, :half, half:] = 1
    mask[:, half:, :half] = 2
    mask[:, half:, half:] = 3
    return (mask * 60 + 10).unsqueeze(1), mask


def test_shifts_and_flips_keep_every_pixel_with_its_label():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (32, 12, 20), generator=g, dtype=torch.uint8)
    image = (labels * 60 + 10).unsqueeze(1)  # the image shows its mask: a pixel's value names its class
    out, mask = joint_crop_flip(image, labels, g, flip_p=0.5, padding=3)
    inside = mask != 255
    assert torch.equal(((out[:, 0].round() - 10) / 60)[inside], mask[inside].float())
    assert (out[:, 0][~inside] == 0).all()  # outside the image: 0 in the image, ignored in the mask
    assert 0.5 < inside.float().mean() < 1  # it did shift
    _, mask = joint_crop_flip(image, labels, g, flip_p=0.5)
    flipped = [torch.equal(mask[i], labels[i].long().flip(-1)) for i in range(32)]
    kept = [torch.equal(mask[i], labels[i].long()) for i in range(32)]
    assert any(flipped) and any(kept) and all(f or k for f, k in zip(flipped, kept))


def test_zoomed_crops_keep_image_and_mask_aligned():
    image, labels = _quadrants(16)
    g = torch.Generator().manual_seed(1)
    out, mask = joint_crop_flip(image, labels, g, flip_p=0.5, scale=(0.4, 1.0), padding=2)
    inside = mask != 255
    # Bilinear images blur a quadrant edge over a pixel; nearest-neighbour masks do not: compare away from edges.
    shown = ((out[:, 0] - 10) / 60).round().clamp(0, 3)
    edge = torch.zeros_like(inside)
    edge[:, 1:] |= mask[:, 1:] != mask[:, :-1]
    edge[:, :, 1:] |= mask[:, :, 1:] != mask[:, :, :-1]
    edge[:, :-1] |= edge[:, 1:].clone()
    edge[:, :, :-1] |= edge[:, :, 1:].clone()
    far = inside & ~edge
    assert far.float().mean() > 0.5
    assert torch.equal(shown[far], mask[far].float())
    # A crop of 0.4 of the side makes a quadrant at least 1.25x larger: some output rows see one class only.
    assert any(len(m[inside_i].unique()) < 4 for m, inside_i in zip(mask, inside))


def test_a_batch_split_over_processes_is_augmented_as_the_whole_batch():
    image, labels = _quadrants(8)
    whole = joint_crop_flip(image, labels, torch.Generator().manual_seed(5), 0.5, (0.5, 1.0), 2)
    parts = [joint_crop_flip(image[r * 4:(r + 1) * 4], labels[r * 4:(r + 1) * 4],
                             torch.Generator().manual_seed(5), 0.5, (0.5, 1.0), 2, shard=(r, 2)) for r in range(2)]
    assert torch.equal(torch.cat([p[1] for p in parts]), whole[1])
    assert torch.allclose(torch.cat([p[0] for p in parts]), whole[0])


def test_training_windows_cut_image_and_mask_alike_from_inside_the_image():
    g = torch.Generator().manual_seed(0)
    rows, cols = torch.meshgrid(torch.arange(24), torch.arange(40), indexing="ij")
    where = (rows * 40 + cols).expand(64, 24, 40)  # each pixel's index in the image
    image = torch.stack([where % 251, where // 251], 1).to(torch.uint8)  # (64, 2, 24, 40): the index, two channels
    out, mask = random_windows(image, where.clone(), 16, g)
    assert out.shape == (64, 2, 16, 16) and mask.shape == (64, 16, 16)
    assert torch.equal(out[:, 0].long() + 251 * out[:, 1].long(), mask)  # image and mask: the same pixels
    top, left = mask[:, 0, 0] // 40, mask[:, 0, 0] % 40
    expected = (top[:, None, None] + torch.arange(16)[:, None]) * 40 + left[:, None, None] + torch.arange(16)
    assert torch.equal(mask, expected)  # whole windows, pixels kept as they are
    assert top.max() <= 8 and left.max() <= 24 and len(set(zip(top.tolist(), left.tolist()))) > 32  # each its own
    assert top.max() == 8 and left.min() == 0  # every position can be drawn, the last included
    _, short = random_windows(image, where.clone(), 30, g)  # taller than the image: its whole height
    assert short.shape == (64, 24, 30) and (short[:, 0, 0] < 40).all()
    whole = random_windows(image, where.clone(), 16, torch.Generator().manual_seed(3))[1]
    parts = [random_windows(image[r * 32:(r + 1) * 32], where[r * 32:(r + 1) * 32], 16,
                            torch.Generator().manual_seed(3), shard=(r, 2))[1] for r in range(2)]
    assert torch.equal(torch.cat(parts), whole)  # a batch split over processes: the windows of the whole


def test_segmentation_augment_trains_on_windows_and_evaluates_whole_images():
    image, labels = _quadrants(4)
    aug = SegmentationAugment(mean=(0.5,), std=(0.25,), num_classes=4, hflip=True, train_crop=16)
    x, y = aug.train(image, labels, torch.Generator().manual_seed(0), None)
    assert x.shape == (4, 1, 16, 16) and y.shape == (4, 16, 16) and y.dtype == torch.int64
    assert torch.equal(((x[:, 0] * 0.25 + 0.5) * 255 - 10).div(60).round().long(), y)  # still aligned
    assert aug.eval(image).shape == (4, 1, 32, 32)


def test_segmentation_augment_normalizes_images_and_returns_int64_masks():
    image, labels = _quadrants(4)
    aug = SegmentationAugment(mean=(0.5,), std=(0.25,), num_classes=4, hflip=True, crop_scale=(0.5, 1.0))
    x, y = aug.train(image, labels, torch.Generator().manual_seed(0), None)
    assert x.dtype == torch.float32 and y.dtype == torch.int64 and y.shape == (4, 32, 32)
    plain = SegmentationAugment(mean=(0.5,), std=(0.25,), num_classes=4)
    x, y = plain.train(image, labels, torch.Generator(), None)
    assert torch.equal(y, labels.long())
    assert torch.allclose(x, (image.float() / 255 - 0.5) / 0.25)
    assert torch.allclose(plain.eval(image), x)
