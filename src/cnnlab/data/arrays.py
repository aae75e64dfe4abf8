"""In-memory splits: uint8 images and int64 labels as tensors, with a seeded validation carve-out."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from cnnlab.errors import ConfigError, DataError

__all__ = ["ArrayDataset", "channel_stats", "select_classes", "split_indices", "stratified_subset", "train_val_split"]


@dataclass
class ArrayDataset:
    """A split held in memory: ``images`` uint8 (N, C, H, W), labels (N,) or label maps (N, H, W), class names.

    Classification labels are int64 class indices (N,); segmentation labels are uint8 label maps (N, H, W)
    of class indices per pixel (255 and other values past the classes can mark pixels to ignore).
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    name: str = ""
    source: str = ""  # where the files were read from
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            shape = tuple(self.images.shape)
            raise DataError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {shape}")
        n, _, height, width = self.images.shape
        expected = (n, height, width) if self.labels.dim() == 3 else (n,)
        if self.labels.shape != expected:
            raise DataError(f"{n} images but labels of shape {tuple(self.labels.shape)}; labels are (N,) class "
                            f"indices or (N, H, W) label maps of the images' size")

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.images.shape[1:])

    def subset(self, indices: torch.Tensor, name: str | None = None) -> ArrayDataset:
        """The images at ``indices`` (a copy) under the same classes."""
        return ArrayDataset(
            self.images[indices],
            self.labels[indices],
            self.classes,
            name or self.name,
            self.source,
            dict(self.extra),
        )

    def class_counts(self) -> list[int]:
        """Number of images per class, in class order."""
        return torch.bincount(self.labels, minlength=len(self.classes)).tolist()


def select_classes(data: ArrayDataset, classes: list[int]) -> ArrayDataset:
    """The images of ``classes`` only, relabelled 0..k-1 in the order given (class names follow)."""
    if not classes:
        return data
    bad = [c for c in classes if not 0 <= c < len(data.classes)]
    if bad:
        raise ConfigError(f"classes {bad} are not indices of {data.name or 'the data set'}'s "
                          f"{len(data.classes)} classes (0..{len(data.classes) - 1})")
    relabel = torch.full((len(data.classes),), -1, dtype=torch.int64)
    relabel[torch.tensor(classes)] = torch.arange(len(classes))
    keep = (relabel[data.labels] >= 0).nonzero().squeeze(1)
    return ArrayDataset(data.images[keep], relabel[data.labels[keep]], [data.classes[c] for c in classes],
                        data.name, data.source, dict(data.extra))


def stratified_subset(data: ArrayDataset, size: float, seed: int = 0) -> ArrayDataset:
    """``size`` images (a count, or a fraction below 1) with every class in its share, seeded."""
    n = len(data)
    count = round(size * n) if size < 1 else int(size)
    if not 0 < count <= n:
        raise ConfigError(f"a training subset of {count} images is not within the {n} available")
    if count == n:
        return data
    generator = torch.Generator().manual_seed(seed)
    picked = []
    for label in range(len(data.classes)):
        members = (data.labels == label).nonzero().squeeze(1)
        members = members[torch.randperm(len(members), generator=generator)]
        picked.append(members[: round(len(members) * count / n)])
    indices = torch.cat(picked).sort().values
    return data.subset(indices, f"{data.name}:subset")


def split_indices(n: int, val_size: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded (train, validation) indices of ``n`` samples; ``val_size`` < 1 is a fraction, else a count."""
    if val_size < 0:
        raise ConfigError(f"val_size must be >= 0 (a fraction below 1 or an image count), got {val_size}")
    count = round(val_size * n) if val_size < 1 else int(val_size)
    if count >= n:
        raise ConfigError(f"a validation split of {count} images leaves none of the {n} for training; "
                          f"give a smaller --val-split (a fraction such as 0.1, or a count), or 0 for none")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    # Sorted, so each side keeps file order and the epoch permutation alone decides batch order.
    return order[count:].sort().values, order[:count].sort().values


def train_val_split(
    data: ArrayDataset, val_size: float, seed: int = 0
) -> tuple[ArrayDataset, ArrayDataset | None]:
    """Carve a seeded validation set off ``data`` (None when ``val_size`` is 0)."""
    train_idx, val_idx = split_indices(len(data), val_size, seed)
    if len(val_idx) == 0:
        return data, None
    return data.subset(train_idx, f"{data.name}:train"), data.subset(val_idx, f"{data.name}:val")


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 images, as fractions of 255."""
    chans = images.shape[1]
    total = torch.zeros(chans, dtype=torch.int64)
    total_sq = torch.zeros(chans, dtype=torch.int64)
    # Exact integer sums, chunked so no full-size wide copy of a 60000-image set is made.
    for chunk in images.split(4096):
        x = chunk.transpose(0, 1).reshape(chans, -1).to(torch.int32)  # (C, n * H * W)
        total += x.sum(1, dtype=torch.int64)
        total_sq += x.square().sum(1, dtype=torch.int64)
    count = images.numel() // chans
    mean = total.double() / count
    std = (total_sq.double() / count - mean * mean).clamp_min(0).sqrt()
    return tuple((mean / 255).tolist()), tuple((std / 255).clamp_min(1e-3).tolist())
