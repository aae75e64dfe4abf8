"""From a config to segmentation batch sources: Fashion-MNIST scenes on the device, or image/mask files.

``inputs.prepare_data`` hands a segmentation network's run here. Batches are (uint8 images, uint8 label
maps); the transform is a ``SegmentationAugment`` (crops and flips applied to image and mask alike).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from cnnlab.data import ArrayDataset, BatchSource, FolderBatches, TensorBatches, channel_stats, split_indices
from cnnlab.data.scenes import SceneSpec, is_scenes_name, load_scenes
from cnnlab.data.segmentation import (
    MaskedImages,
    SegmentationAugment,
    is_mask_folder,
    load_segmentation_splits,
    named_segmentation_set,
)
from cnnlab.errors import ConfigError, DataError, InputSizeError
from cnnlab.models import ModelInfo
from cnnlab.train.config import TrainConfig
from cnnlab.train.distributed import DistEnv
from cnnlab.train.inputs import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    DataBundle,
    DataMeta,
    _default_workers,
    _model_chans,
)

__all__ = ["DEFAULT_FILE_SIZE", "is_segmentation_data", "load_segmentation_eval_source", "prepare_segmentation_data"]

DEFAULT_FILE_SIZE = 256  # side images and masks from files are decoded at without --image-size


def is_segmentation_data(name: str) -> bool:
    """Whether ``--data`` names segmentation data: the scenes, a named set, or an images/ + masks/ folder."""
    return is_scenes_name(name) or named_segmentation_set(name) is not None or is_mask_folder(name)


def _augment(cfg: TrainConfig, mean, std, num_classes: int, in_chans: int, channels_last: bool) -> SegmentationAugment:
    return SegmentationAugment(
        mean=tuple(mean),
        std=tuple(std),
        num_classes=num_classes,
        in_chans=in_chans,
        crop_padding=cfg.crop_padding,
        hflip=cfg.hflip,
        channels_last=channels_last,
        ignore_index=cfg.ignore_index,
        crop_scale=tuple(cfg.crop_scale),
        train_crop=cfg.train_crop,
    )


def _check_data(cfg: TrainConfig) -> None:
    if not is_segmentation_data(cfg.data):
        raise ConfigError(
            f"{cfg.model} is a segmentation network; train it on fashion-mnist-scenes, oxford-pet, voc2012 or a "
            f"folder with train/images, train/masks, test/images and test/masks (not {cfg.data!r})"
        )
    if cfg.classes or cfg.train_subset:
        raise ConfigError("--classes and --train-subset apply to classification data sets; the scenes take "
                          "their sizes as options (fashion-mnist-scenes:train=2000)")


def prepare_segmentation_data(
    cfg: TrainConfig,
    info: ModelInfo,
    device: torch.device,
    env: DistEnv,
    channels_last: bool,
    say: Callable[[str], None],
) -> DataBundle:
    """Batch sources for train / validation / test label maps and their joint augmentation."""
    _check_data(cfg)
    if is_scenes_name(cfg.data):
        return _prepare_scenes(cfg, info, device, env, channels_last, say)
    return _prepare_files(cfg, info, device, env, channels_last, say)


def _check_side(cfg: TrainConfig, info: ModelInfo, size: int) -> None:
    if size < info.min_size:
        raise InputSizeError(f"{cfg.model} takes inputs of at least {info.min_size}x{info.min_size}; the "
                             f"images are {size}x{size}")
    if cfg.train_crop and cfg.train_crop > size:
        raise ConfigError(f"--train-crop {cfg.train_crop} is larger than the {size}x{size} images; give at most {size}")


def _prepare_scenes(cfg, info, device, env, channels_last, say) -> DataBundle:
    spec = SceneSpec.parse(cfg.data)
    if cfg.image_size and cfg.image_size != spec.size:
        raise ConfigError(f"the scenes are {spec.size}x{spec.size}; generate them at {cfg.image_size} with "
                          f"--data fashion-mnist-scenes:size={cfg.image_size}")
    _check_side(cfg, info, spec.size)
    splits = load_scenes(spec, cfg.data_dir, cfg.download, say)
    train, val, test = splits["train"], splits["val"] if spec.val else None, splits["test"]
    mean, std = channel_stats(train.images)
    in_chans = _model_chans(cfg, 1)

    def source(data: ArrayDataset | None, is_train: bool) -> TensorBatches | None:
        if data is None:
            return None
        batch = cfg.batch_size if is_train else cfg.eval_batch_size
        return TensorBatches(data, batch, device, is_train, cfg.seed, env.rank, env.world_size)

    meta = DataMeta(
        kind="tensor",
        dataset=spec.name,
        classes=list(train.classes),
        mean=list(mean),
        std=list(std),
        image_shape=[1, spec.size, spec.size],
        input_size=spec.size,
        in_chans=in_chans,
        train_images=len(train),
        val_images=len(val) if val is not None else 0,
        test_images=len(test),
        source=train.source,
        task="segmentation",
    )
    augment = _augment(cfg, mean, std, len(train.classes), in_chans, channels_last)
    return DataBundle(source(train, True), source(val, False), source(test, False), augment, meta)


def _file_stats(chans: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if chans == 3:
        return IMAGENET_MEAN, IMAGENET_STD
    return (sum(IMAGENET_MEAN) / 3,) * chans, (sum(IMAGENET_STD) / 3,) * chans


def _prepare_files(cfg, info, device, env, channels_last, say) -> DataBundle:
    chans = cfg.in_chans or 3
    size = cfg.image_size or DEFAULT_FILE_SIZE
    _check_side(cfg, info, size)
    splits = load_segmentation_splits(cfg.data, size, chans, cfg.data_dir, cfg.ignore_index)
    full, test, classes = splits["train"], splits["test"], splits["classes"]
    train_idx, val_idx = split_indices(len(full), cfg.val_split, cfg.split_seed)
    train, val = full.subset(train_idx), full.subset(val_idx) if len(val_idx) else None
    workers = cfg.workers if cfg.workers is not None else _default_workers(env)
    mean, std = _file_stats(chans)

    def source(data: MaskedImages | None, is_train: bool) -> FolderBatches | None:
        if data is None:
            return None
        batch = cfg.batch_size if is_train else cfg.eval_batch_size
        return FolderBatches(data, batch, device, is_train, workers, cfg.seed, env.rank, env.world_size)

    name = named_segmentation_set(cfg.data) or cfg.data
    say(f"{name}: {len(train)} training, {len(val_idx)} validation, {len(test)} test images with masks, "
        f"decoded at {size}x{size} by {workers} worker(s)")
    meta = DataMeta(
        kind="folder",
        dataset=name,
        classes=list(classes),
        mean=list(mean),
        std=list(std),
        image_shape=[chans, size, size],
        input_size=size,
        in_chans=chans,
        train_images=len(train),
        val_images=len(val_idx),
        test_images=len(test),
        source=name,
        task="segmentation",
    )
    augment = _augment(cfg, mean, std, len(classes), chans, channels_last)
    return DataBundle(source(train, True), source(val, False), source(test, False), augment, meta)


def load_segmentation_eval_source(
    meta: DataMeta, split: str, batch_size: int, device: torch.device, cfg: TrainConfig, data_dir: str | None = None
) -> BatchSource:
    """The ``split`` ('test' or 'val') of the segmentation data a checkpoint was trained on."""
    data_dir = data_dir or cfg.data_dir
    if is_scenes_name(meta.dataset):
        splits = load_scenes(SceneSpec.parse(meta.dataset), data_dir, cfg.download)
        if split == "val" and len(splits["val"]) == 0:
            raise ConfigError("this run's scenes had no validation split (val=0); evaluate on the test split")
        return TensorBatches(splits[split], batch_size, device, False)
    splits = load_segmentation_splits(meta.dataset, meta.input_size, meta.in_chans, data_dir, cfg.ignore_index)
    if splits["classes"] != meta.classes:
        raise DataError(f"the checkpoint's classes {meta.classes} differ from {meta.dataset}'s "
                          f"{splits['classes']}; evaluate it on the data it was trained on")
    if split == "test":
        dataset = splits["test"]
    else:
        val_idx = split_indices(len(splits["train"]), cfg.val_split, cfg.split_seed)[1]
        if not len(val_idx):
            raise ConfigError("this run had no validation split (val_split 0); evaluate on the test split")
        dataset = splits["train"].subset(val_idx)
    return FolderBatches(dataset, batch_size, device, False, cfg.workers or 0)
