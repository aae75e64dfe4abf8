"""From a config to batch sources: load the splits, carve validation, pick the model's input size."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from cnnlab.data import (
    ArrayDataset,
    BatchAugment,
    BatchSource,
    FolderBatches,
    FolderDataset,
    TensorBatches,
    canonical_dataset_name,
    channel_stats,
    find_folder_splits,
    fit_mode,
    load_arrays,
    select_classes,
    split_indices,
    stratified_subset,
    train_val_split,
)
from cnnlab.data.lighting import PCALighting, rgb_pca
from cnnlab.data.segmentation import SegmentationAugment
from cnnlab.errors import CheckpointError, ConfigError, DataError, InputSizeError
from cnnlab.models import ModelInfo
from cnnlab.train.config import TrainConfig, parse_scale_jitter
from cnnlab.train.distributed import DistEnv

__all__ = ["DataBundle", "DataMeta", "augment_from_meta", "check_ten_crop", "load_eval_source", "prepare_data"]

# ImageNet statistics (torchvision's) for image folders, whose own statistics would need a decoding pass.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Image-folder training images decoded to estimate the RGB covariance of PCA lighting: a seeded sample, as
# decoding every image of an ImageNet-sized folder would take longer than an epoch.
PCA_SAMPLE_IMAGES = 500
# --val-split when not given: images carved from a named data set's training split, and the share of an
# image folder's train/ (when it has no val/ of its own): a small folder of 60 images keeps 54 for training.
NAMED_VAL_IMAGES = 5000
FOLDER_VAL_FRACTION = 0.1


@dataclass
class DataMeta:
    """What a run trained on, stored in its checkpoints so evaluation and prediction feed the same input."""

    kind: str  # "tensor": arrays held whole on the device; "folder": image files decoded per batch
    dataset: str  # canonical name of a named data set, or the image folder's path
    classes: list[str]  # class names in label order
    mean: list[float]  # per-channel mean of the pixels (0-1 scale) subtracted before the model
    std: list[float]  # per-channel standard deviation the pixels are divided by
    image_shape: list[int]  # (C, H, W) of the images as stored (before padding or resizing)
    input_size: int  # side of the model's square input in pixels
    in_chans: int  # the model's input channels (3 on 1-channel data repeats the channel)
    train_images: int  # training images after the validation carve-out
    val_images: int
    test_images: int
    source: str  # where the files were read from
    class_subset: list[int] = field(default_factory=list)  # --classes: the data set's class indices kept
    task: str = "classification"  # or "segmentation": labels are then (H, W) label maps

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict[str, Any]:
        """The plain dict checkpoints store (the keys of format cnnlab-checkpoint-v1)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DataMeta:
        """The description ``to_dict()`` gave; a missing key means a damaged checkpoint."""
        missing = [f.name for f in fields(cls)
                   if f.name not in values and f.default is MISSING and f.default_factory is MISSING]
        if missing:
            raise CheckpointError(f"the checkpoint's data description lacks {', '.join(missing)}; it is damaged")
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})


@dataclass
class DataBundle:
    """The batch sources of a run and the transform from uint8 batches to model input."""

    train: BatchSource
    val: BatchSource | None
    test: BatchSource
    augment: BatchAugment
    meta: DataMeta

    @property
    def num_classes(self) -> int:
        return self.meta.num_classes


def _resolve_size(
    cfg: TrainConfig, info: ModelInfo, height: int, width: int, say: Callable[[str], None]
) -> int:
    size = cfg.image_size or max(height, width, info.min_size)
    if size < info.min_size:
        raise InputSizeError(
            f"{cfg.model} takes inputs of at least {info.min_size}x{info.min_size}; "
            f"--image-size {size} is too small"
        )
    mode = fit_mode(height, width, size)
    if mode != "none":
        how = "zero-padded" if mode == "pad" else "resized (bilinear)"
        why = (
            f"{cfg.model} takes at least {info.min_size}x{info.min_size}"
            if not cfg.image_size
            else "--image-size"
        )
        say(f"{why}: the {height}x{width} images are {how} to {size}x{size}")
    return size


def _model_chans(cfg: TrainConfig, data_chans: int) -> int:
    chans = cfg.in_chans or data_chans
    if chans != data_chans and data_chans != 1:
        raise ConfigError(
            f"the data has {data_chans} channels; --in-chans {chans} can only widen 1-channel data"
        )
    return chans


def _augment(
    cfg: TrainConfig,
    mean,
    std,
    num_classes: int,
    size: int | None,
    in_chans: int,
    channels_last: bool,
    lighting: PCALighting | None = None,
    view_size: int | None = None,
) -> BatchAugment:
    return BatchAugment(
        mean=tuple(mean),
        std=tuple(std),
        num_classes=num_classes,
        size=size,
        in_chans=in_chans,
        crop_padding=cfg.crop_padding,
        hflip=cfg.hflip,
        random_erasing=cfg.random_erasing,
        mixup_alpha=cfg.mixup,
        cutmix_alpha=cfg.cutmix,
        channels_last=channels_last,
        lighting=lighting,
        view_size=view_size,
    )


def augment_from_meta(meta: DataMeta, channels_last: bool = False, crop_padding: int = 0) -> BatchAugment:
    """The evaluation transform a checkpoint was trained with (no random augmentation).

    ``crop_padding`` is the training crops' padding, where ten-crop testing cuts tensor data's crops from.
    """
    if meta.task == "segmentation":
        return SegmentationAugment(tuple(meta.mean), tuple(meta.std), meta.num_classes, in_chans=meta.in_chans,
                                   channels_last=channels_last)
    return BatchAugment(
        mean=tuple(meta.mean),
        std=tuple(meta.std),
        num_classes=meta.num_classes,
        size=meta.input_size if meta.kind == "tensor" else None,
        in_chans=meta.in_chans,
        crop_padding=crop_padding,
        channels_last=channels_last,
        view_size=meta.input_size if meta.kind == "folder" else None,
    )


def _pca_lighting(cfg: TrainConfig, chans: int, rgb_batches: Callable[[], Any], say) -> PCALighting | None:
    """The PCA lighting of a run (its statistics from ``rgb_batches()``), or None: off, or grayscale data."""
    if cfg.pca_lighting <= 0:
        return None
    if chans != 3:
        say(f"--pca-lighting skipped: {cfg.data} is grayscale, and PCA lighting shifts RGB colours")
        return None
    eigvals, eigvecs = rgb_pca(rgb_batches())
    return PCALighting(eigvals, eigvecs, cfg.pca_lighting)


def _check_tensor_augmentation(cfg: TrainConfig) -> None:
    """Refuse the image-folder options on a named data set: one line saying what to use instead."""
    if cfg.scale_jitter is not None:
        raise ConfigError(
            f"--scale-jitter resizes image-folder images; {cfg.data} is used at its own size "
            f"(random crops come from --crop-padding)"
        )
    if cfg.ten_crop:
        check_ten_crop(cfg.data, cfg.crop_padding)


def check_ten_crop(data: str, crop_padding: int) -> None:
    """Ten-crop testing of a named data set needs training crops of a zero-padded image to mirror."""
    if crop_padding <= 0:
        raise ConfigError(
            f"ten-crop testing on {data} cuts the crops from the image zero-padded by --crop-padding, as the "
            f"training crops are: give --crop-padding above 0"
        )


def _named_val_split(cfg: TrainConfig) -> float:
    return NAMED_VAL_IMAGES if cfg.val_split is None else cfg.val_split


def _train_batch(cfg: TrainConfig, images: int, env: DistEnv, say: Callable[[str], None]) -> int:
    """--batch-size, or every training image when there are fewer (split evenly over the processes)."""
    fitted = images - images % env.world_size
    if cfg.batch_size <= images or fitted < 1:
        return cfg.batch_size  # too few images for even one per process: the batch source says so
    say(f"--batch-size {cfg.batch_size} is more than the {images} training images: batches of {fitted}")
    return fitted


def _training_pool(train: ArrayDataset, cfg: TrainConfig) -> ArrayDataset:
    """The training images a run draws from: all of them, or the --train-subset share of each class."""
    return stratified_subset(train, cfg.train_subset, cfg.split_seed) if cfg.train_subset else train


def prepare_data(
    cfg: TrainConfig,
    info: ModelInfo,
    device: torch.device,
    env: DistEnv,
    channels_last: bool,
    say: Callable[[str], None],
) -> DataBundle:
    """Batch sources for train / validation / test and the augmentation, as the config asks."""
    from cnnlab.train.tasks import check_task_settings

    check_task_settings(cfg, info.task)
    if info.task == "segmentation":
        from cnnlab.train.seginputs import prepare_segmentation_data

        return prepare_segmentation_data(cfg, info, device, env, channels_last, say)
    _refuse_segmentation_data(cfg)
    if canonical_dataset_name(cfg.data) is None:
        return _prepare_folders(cfg, info, device, env, channels_last, say)
    _check_tensor_augmentation(cfg)
    splits = {k: select_classes(v, cfg.classes) for k, v in load_arrays(cfg.data, cfg.data_dir, cfg.download).items()}
    train, val = train_val_split(_training_pool(splits["train"], cfg), _named_val_split(cfg), cfg.split_seed)
    mean, std = channel_stats(train.images)
    chans, height, width = train.image_shape
    size = _resolve_size(cfg, info, height, width, say)
    in_chans = _model_chans(cfg, chans)

    def source(data: ArrayDataset | None, is_train: bool) -> TensorBatches | None:
        if data is None:
            return None
        batch = _train_batch(cfg, len(data), env, say) if is_train else cfg.eval_batch_size
        return TensorBatches(data, batch, device, is_train, cfg.seed, env.rank, env.world_size)

    meta = DataMeta(
        kind="tensor",
        dataset=canonical_dataset_name(cfg.data),
        classes=list(train.classes),
        mean=list(mean),
        std=list(std),
        image_shape=[chans, height, width],
        input_size=size,
        in_chans=in_chans,
        train_images=len(train),
        val_images=len(val) if val else 0,
        test_images=len(splits["test"]),
        source=train.source,
        class_subset=list(cfg.classes),
    )
    return DataBundle(
        source(train, True),
        source(val, False),
        source(splits["test"], False),
        _augment(
            cfg, mean, std, len(train.classes), size, in_chans, channels_last,
            lighting=_pca_lighting(cfg, chans, lambda: train.images.split(4096), say),
        ),
        meta,
    )


def _refuse_segmentation_data(cfg: TrainConfig) -> None:
    from cnnlab.train.seginputs import is_segmentation_data

    if is_segmentation_data(cfg.data):
        raise ConfigError(f"{cfg.data} is segmentation data (label maps); train a segmentation network on it, "
                          f"e.g. `cnnlab train unet:width=16,depth=3 --data {cfg.data}`")


def _default_workers(env: DistEnv) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(cores // env.local_world_size - 1, 0)


def _prepare_folders(
    cfg: TrainConfig,
    info: ModelInfo,
    device: torch.device,
    env: DistEnv,
    channels_last: bool,
    say: Callable[[str], None],
) -> DataBundle:
    if cfg.classes or cfg.train_subset:
        raise ConfigError("--classes and --train-subset apply to the named data sets; for an image folder, "
                          "make a folder holding the classes and images you want")
    folders = find_folder_splits(cfg.data)
    chans = cfg.in_chans or 3
    size = cfg.image_size or info.input_size[-1]
    if size < info.min_size:
        raise InputSizeError(f"{cfg.model} takes inputs of at least {info.min_size}x{info.min_size}; got {size}")
    scale = _folder_scale(cfg, size)
    full = FolderDataset(folders["train"], size, chans, train=True, scale=scale)
    if len(full.classes) < 2:
        raise DataError(
            f"{folders['train']} holds one class ({', '.join(full.classes)}); a classifier needs two or more "
            f"class subfolders (with one, every prediction is right and the accuracy means nothing)"
        )
    test = FolderDataset(folders["test"], size, chans, train=False, classes=full.classes, scale=scale,
                         canvas=cfg.ten_crop)
    train, val = _folder_train_val(full, folders, cfg)
    workers = cfg.workers if cfg.workers is not None else _default_workers(env)
    mean = IMAGENET_MEAN if chans == 3 else (sum(IMAGENET_MEAN) / 3,)
    std = IMAGENET_STD if chans == 3 else (sum(IMAGENET_STD) / 3,)

    def source(data: FolderDataset | None, is_train: bool) -> FolderBatches | None:
        if data is None:
            return None
        batch = _train_batch(cfg, len(data), env, say) if is_train else cfg.eval_batch_size
        return FolderBatches(data, batch, device, is_train, workers, cfg.seed, env.rank, env.world_size)

    say(
        f"image folder {cfg.data}: {len(train)} training, {len(val) if val else 0} validation"
        f"{' (val/)' if _uses_val_folder(folders, cfg) else ''}, {len(test)} test images "
        f"decoded at {size}x{size} by {workers} worker(s)"
    )
    meta = DataMeta(
        kind="folder",
        dataset=str(Path(cfg.data).expanduser()),
        classes=list(full.classes),
        mean=list(mean),
        std=list(std),
        image_shape=[chans, size, size],
        input_size=size,
        in_chans=chans,
        train_images=len(train),
        val_images=len(val) if val else 0,
        test_images=len(test),
        source=str(folders["train"].parent),
    )
    return DataBundle(
        source(train, True),
        source(val, False),
        source(test, False),
        _augment(
            cfg, mean, std, len(full.classes), None, chans, channels_last,
            lighting=_pca_lighting(cfg, chans, lambda: _folder_sample(train, workers, cfg.split_seed), say),
            view_size=size,
        ),
        meta,
    )


def _folder_scale(cfg: TrainConfig, size: int) -> tuple[int, int] | None:
    """The training scale range of --scale-jitter, checked against the crop size."""
    if cfg.scale_jitter is None:
        return None
    lo, hi = parse_scale_jitter(cfg.scale_jitter)
    if lo < size:
        raise ConfigError(f"--scale-jitter {cfg.scale_jitter}: the smallest scale {lo} is below the crop size "
                          f"{size} (--image-size)")
    return lo, hi


def _folder_sample(train: FolderDataset, workers: int, seed: int):
    """uint8 batches of a seeded sample of ``PCA_SAMPLE_IMAGES`` training images, centre-cropped."""
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:PCA_SAMPLE_IMAGES]
    loader = DataLoader(train.subset(order, train=False), batch_size=50, num_workers=workers)
    return (x for x, _ in loader)


def _uses_val_folder(folders: dict[str, Path], cfg: TrainConfig) -> bool:
    return cfg.val_split is None and "val" in folders


def _folder_train_val(
    full: FolderDataset, folders: dict[str, Path], cfg: TrainConfig, train: bool = True
) -> tuple[FolderDataset, FolderDataset | None]:
    """(training images, validation images or None): the folder's val/, else a seeded share of train/."""
    if _uses_val_folder(folders, cfg):
        return full, FolderDataset(folders["val"], full.size, full.channels, train=False, classes=full.classes,
                                   scale=full.scale, canvas=full.canvas)
    fraction = FOLDER_VAL_FRACTION if cfg.val_split is None else cfg.val_split
    train_idx, val_idx = split_indices(len(full), fraction, cfg.split_seed)
    return full.subset(train_idx, train=train), full.subset(val_idx, train=False) if len(val_idx) else None


def load_eval_source(
    meta: DataMeta,
    split: str,
    batch_size: int,
    device: torch.device,
    cfg: TrainConfig,
    data_dir: str | None = None,
    ten_crop: bool = False,
) -> BatchSource:
    """The ``split`` ('test', 'val', or 'train': the images it trained on) of the data set a checkpoint was
    trained on, for evaluation (no augmentation).

    With ``ten_crop``, image-folder items are the whole resized centre square the ten crops are cut from.
    """
    if split not in ("test", "val", "train"):
        raise ConfigError(f"split must be 'test', 'val' or 'train', got {split!r}")
    part = 0 if split == "train" else 1  # (train, validation) of the carve-out
    if meta.task == "segmentation":
        from cnnlab.train.seginputs import load_segmentation_eval_source

        return load_segmentation_eval_source(meta, split, batch_size, device, cfg, data_dir)
    name, data_dir = meta.dataset, data_dir or cfg.data_dir
    if canonical_dataset_name(name) is None:
        folders = find_folder_splits(name)
        chans, size = meta.in_chans, meta.input_size
        scale = parse_scale_jitter(cfg.scale_jitter) if cfg.scale_jitter else None
        kw = {"train": False, "classes": meta.classes, "scale": scale, "canvas": ten_crop}
        if split == "test":
            dataset = FolderDataset(folders["test"], size, chans, **kw)
        else:
            full = FolderDataset(folders["train"], size, chans, **kw)
            dataset = _folder_train_val(full, folders, cfg, train=False)[part]
            if dataset is None:
                raise ConfigError("this run had no validation split (--val-split 0); evaluate on the test split")
        return FolderBatches(dataset, batch_size, device, False, cfg.workers or 0)
    splits = {k: select_classes(v, meta.class_subset) for k, v in load_arrays(name, data_dir, cfg.download).items()}
    if split == "test":
        arrays = splits["test"]
    else:
        arrays = train_val_split(_training_pool(splits["train"], cfg), _named_val_split(cfg), cfg.split_seed)[part]
        if arrays is None:
            raise ConfigError("this run had no validation split (--val-split 0); evaluate on the test split")
    if arrays.classes != meta.classes:
        raise DataError(
            f"the checkpoint's classes {meta.classes} differ from {name}'s {arrays.classes}; "
            f"evaluate it on the data set it was trained on"
        )
    return TensorBatches(arrays, batch_size, device, False)
