"""Batch sources: the in-memory fast path (uint8 tensor on the device, batches by index) and image folders.

Both yield uint8 ``(x, y)`` batches on the training device, one epoch at a time, in an order that is a
pure function of ``(seed, epoch)``: resuming at step ``s`` of an epoch needs no saved sampler state.
Training batches are slices of global batches: rank r of N takes the r-th part of each.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader

from cnnlab.data.arrays import ArrayDataset
from cnnlab.data.errors import DatasetFileError
from cnnlab.data.folder import FolderDataset
from cnnlab.errors import ConfigError

__all__ = ["BatchSource", "FolderBatches", "TensorBatches", "epoch_order"]

Batch = tuple[torch.Tensor, torch.Tensor]


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled sample order of one epoch: the same on every rank and every resume."""
    g = torch.Generator().manual_seed((seed * 1_000_003 + epoch) % (2**63))
    return torch.randperm(n, generator=g)


class BatchSource:
    """A split cut into batches: ``global_batch`` images per step over all ranks."""

    def __init__(
        self, num_samples: int, global_batch: int, train: bool, seed: int = 0, rank: int = 0, world: int = 1
    ) -> None:
        if global_batch < 1:
            raise ConfigError(f"batch size must be at least 1, got {global_batch}")
        if train and global_batch % world:
            raise ConfigError(f"batch size {global_batch} does not split evenly over {world} processes")
        if train and num_samples < global_batch:
            raise ConfigError(
                f"the training split has {num_samples} images, fewer than one batch of {global_batch}; "
                f"give a smaller --batch-size"
            )
        self.num_samples = num_samples
        self.global_batch = global_batch
        self.train = train
        self.seed = seed
        self.rank = rank
        self.world = world

    @property
    def local_batch(self) -> int:
        return self.global_batch // self.world if self.train else self.global_batch

    def __len__(self) -> int:
        """Steps per epoch. Training drops the last partial batch: every step sees a full batch."""
        if self.train:
            return self.num_samples // self.global_batch
        return math.ceil(len(range(self.rank, self.num_samples, self.world)) / self.global_batch)

    def rank_order(self, epoch: int) -> torch.Tensor:
        """This rank's sample indices for the whole of ``epoch``, step after step."""
        if not self.train:
            return torch.arange(self.rank, self.num_samples, self.world)
        steps, b = len(self), self.local_batch
        order = epoch_order(self.num_samples, self.seed, epoch)[: steps * self.global_batch]
        return order.view(steps, self.world, b)[:, self.rank].reshape(-1)  # rank r: part r of each batch

    def batch_indices(self, epoch: int, start: int = 0) -> Iterator[torch.Tensor]:
        """This rank's sample indices for each step of ``epoch`` from step ``start``."""
        yield from self.rank_order(epoch).split(self.local_batch)[start:]

    def batches(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        raise NotImplementedError


class TensorBatches(BatchSource):
    """The fast path: the whole split as uint8 on ``device``; a batch is one ``index_select``."""

    def __init__(
        self,
        data: ArrayDataset,
        global_batch: int,
        device: torch.device | str,
        train: bool,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        super().__init__(len(data), global_batch, train, seed, rank, world)
        self.device = torch.device(device)
        self.images = data.images.to(self.device).contiguous()  # (N, C, H, W) uint8
        self.labels = data.labels.to(self.device)
        self.image_shape = data.image_shape

    def batches(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        order = self.rank_order(epoch).to(self.device)  # one transfer per epoch, not one per step
        for idx in order.split(self.local_batch)[start:]:
            yield self.images.index_select(0, idx), self.labels.index_select(0, idx)


class _EpochBatchSampler:
    """Hands a DataLoader the index batches of the epoch (and start step) set before iterating."""

    def __init__(self, source: BatchSource) -> None:
        self.source = source
        self.epoch = 0
        self.start = 0

    def __iter__(self) -> Iterator[list[int]]:
        for idx in self.source.batch_indices(self.epoch, self.start):
            yield idx.tolist()

    def __len__(self) -> int:
        return len(self.source) - self.start


class FolderBatches(BatchSource):
    """Image-folder batches decoded by ``workers`` DataLoader processes, moved to ``device``."""

    def __init__(
        self,
        dataset: FolderDataset,
        global_batch: int,
        device: torch.device | str,
        train: bool,
        workers: int = 2,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        super().__init__(len(dataset), global_batch, train, seed, rank, world)
        self.device = torch.device(device)
        self.dataset = dataset
        self.image_shape = (dataset.channels, dataset.item_side, dataset.item_side)
        self._sampler = _EpochBatchSampler(self)
        self._generator = torch.Generator()
        self._loader = DataLoader(
            dataset,
            batch_sampler=self._sampler,
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=workers > 0,
            generator=self._generator,
        )

    def batches(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        self._sampler.epoch, self._sampler.start = epoch, start
        # Worker seeds follow (seed, epoch, rank), so per-sample crops repeat on a rerun.
        self._generator.manual_seed((self.seed * 1_000_003 + epoch) * 1009 + self.rank)
        try:
            for x, y in self._loader:
                yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        except DatasetFileError as err:
            raise DatasetFileError(_worker_message(str(err))) from None


def _worker_message(text: str) -> str:
    # A worker's error arrives wrapped in its traceback; keep the line that names the file.
    marker = "DatasetFileError: "
    lines = [ln for ln in text.splitlines() if marker in ln]
    return lines[-1].split(marker, 1)[1] if lines else text
