"""From a config to batch sources: load the splits, carve validation, pick the model's input size."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

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
from cnnlab.data.segmentation import SegmentationAugment
from cnnlab.errors import CheckpointError, ConfigError, DataError, InputSizeError
from cnnlab.models import ModelInfo
from cnnlab.train.config import TrainConfig
from cnnlab.train.distributed import DistEnv

__all__ = ["DataBundle", "DataMeta", "augment_from_meta", "load_eval_source", "prepare_data"]

# ImageNet statistics (torchvision's) for image folders, whose own statistics would need a decoding pass.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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
    cfg: TrainConfig, mean, std, num_classes: int, size: int | None, in_chans: int, channels_last: bool
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
    )


def augment_from_meta(meta: DataMeta, channels_last: bool = False) -> BatchAugment:
    """The evaluation transform a checkpoint was trained with (no random augmentation)."""
    if meta.task == "segmentation":
        return SegmentationAugment(tuple(meta.mean), tuple(meta.std), meta.num_classes, in_chans=meta.in_chans,
                                   channels_last=channels_last)
    return BatchAugment(
        mean=tuple(meta.mean),
        std=tuple(meta.std),
        num_classes=meta.num_classes,
        size=meta.input_size if meta.kind == "tensor" else None,
        in_chans=meta.in_chans,
        channels_last=channels_last,
    )


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
    splits = {k: select_classes(v, cfg.classes) for k, v in load_arrays(cfg.data, cfg.data_dir, cfg.download).items()}
    train, val = train_val_split(_training_pool(splits["train"], cfg), cfg.val_split, cfg.split_seed)
    mean, std = channel_stats(train.images)
    chans, height, width = train.image_shape
    size = _resolve_size(cfg, info, height, width, say)
    in_chans = _model_chans(cfg, chans)

    def source(data: ArrayDataset | None, is_train: bool) -> TensorBatches | None:
        if data is None:
            return None
        batch = cfg.batch_size if is_train else cfg.eval_batch_size
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
        _augment(cfg, mean, std, len(train.classes), size, in_chans, channels_last),
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
    full = FolderDataset(folders["train"], size, chans, train=True)
    test = FolderDataset(folders["test"], size, chans, train=False, classes=full.classes)
    train_idx, val_idx = split_indices(len(full), cfg.val_split, cfg.split_seed)
    train = full.subset(train_idx, train=True)
    val = full.subset(val_idx, train=False) if len(val_idx) else None
    workers = cfg.workers if cfg.workers is not None else _default_workers(env)
    mean = IMAGENET_MEAN if chans == 3 else (sum(IMAGENET_MEAN) / 3,)
    std = IMAGENET_STD if chans == 3 else (sum(IMAGENET_STD) / 3,)

    def source(data: FolderDataset | None, is_train: bool) -> FolderBatches | None:
        if data is None:
            return None
        batch = cfg.batch_size if is_train else cfg.eval_batch_size
        return FolderBatches(data, batch, device, is_train, workers, cfg.seed, env.rank, env.world_size)

    say(
        f"image folder {cfg.data}: {len(train)} training, {len(val_idx)} validation, {len(test)} test images "
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
        val_images=len(val_idx),
        test_images=len(test),
        source=str(folders["train"].parent),
    )
    return DataBundle(
        source(train, True),
        source(val, False),
        source(test, False),
        _augment(cfg, mean, std, len(full.classes), None, chans, channels_last),
        meta,
    )


def load_eval_source(
    meta: DataMeta,
    split: str,
    batch_size: int,
    device: torch.device,
    cfg: TrainConfig,
    data_dir: str | None = None,
) -> BatchSource:
    """The ``split`` ('test' or 'val') of the data set a checkpoint was trained on, for evaluation."""
    if meta.task == "segmentation":
        from cnnlab.train.seginputs import load_segmentation_eval_source

        return load_segmentation_eval_source(meta, split, batch_size, device, cfg, data_dir)
    name, data_dir = meta.dataset, data_dir or cfg.data_dir
    if canonical_dataset_name(name) is None:
        folders = find_folder_splits(name)
        chans, size = meta.in_chans, meta.input_size
        if split == "test":
            dataset = FolderDataset(folders["test"], size, chans, train=False, classes=meta.classes)
        else:
            full = FolderDataset(folders["train"], size, chans, train=False, classes=meta.classes)
            dataset = full.subset(split_indices(len(full), cfg.val_split, cfg.split_seed)[1], train=False)
        return FolderBatches(dataset, batch_size, device, False, cfg.workers or 0)
    splits = {k: select_classes(v, meta.class_subset) for k, v in load_arrays(name, data_dir, cfg.download).items()}
    if split == "test":
        arrays = splits["test"]
    else:
        arrays = train_val_split(_training_pool(splits["train"], cfg), cfg.val_split, cfg.split_seed)[1]
        if arrays is None:
            raise ConfigError("this run had no validation split (val_split 0); evaluate on the test split")
    if arrays.classes != meta.classes:
        raise DataError(
            f"the checkpoint's classes {meta.classes} differ from {name}'s {arrays.classes}; "
            f"evaluate it on the data set it was trained on"
        )
    return TensorBatches(arrays, batch_size, device, False)
