"""Data sets and batch-level augmentation: Fashion-MNIST, MNIST, CIFAR-10/100 and image folders."""

from cnnlab.data.arrays import (
    ArrayDataset,
    channel_stats,
    select_classes,
    split_indices,
    stratified_subset,
    train_val_split,
)
from cnnlab.data.augment import (
    BatchAugment,
    crop_flip_erase,
    cutmix,
    fit_mode,
    fit_to_size,
    hflip,
    mixup,
    normalize,
    random_crop,
    random_erasing,
)
from cnnlab.data.errors import DatasetFileError, DatasetNotFoundError
from cnnlab.data.folder import FolderDataset, find_folder_splits, load_image
from cnnlab.data.loaders import BatchSource, FolderBatches, TensorBatches, epoch_order
from cnnlab.data.readers import list_image_folder, read_cifar_batch, read_cifar_meta, read_idx
from cnnlab.data.sources import DATASETS, DatasetSpec, canonical_dataset_name, data_roots, load_arrays

__all__ = [
    "DATASETS",
    "ArrayDataset",
    "BatchAugment",
    "BatchSource",
    "DatasetFileError",
    "DatasetNotFoundError",
    "DatasetSpec",
    "FolderBatches",
    "FolderDataset",
    "TensorBatches",
    "canonical_dataset_name",
    "channel_stats",
    "crop_flip_erase",
    "cutmix",
    "data_roots",
    "epoch_order",
    "find_folder_splits",
    "fit_mode",
    "fit_to_size",
    "hflip",
    "list_image_folder",
    "load_arrays",
    "load_image",
    "mixup",
    "normalize",
    "random_crop",
    "random_erasing",
    "select_classes",
    "read_cifar_batch",
    "read_cifar_meta",
    "read_idx",
    "split_indices",
    "stratified_subset",
    "train_val_split",
]
