"""Batch-level augmentation with tensor ops: a whole batch per call, no Python loop over samples.

Random draws are made for the *global* batch and the rank's slice is taken, so a batch split over N
processes is augmented exactly as the same batch in one process (``shard=(rank, world)``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cnnlab.data.lighting import PCALighting
from cnnlab.data.views import ten_crop
from cnnlab.errors import ConfigError, InputSizeError

__all__ = [
    "BatchAugment",
    "crop_flip_erase",
    "cutmix",
    "fit_mode",
    "fit_to_size",
    "hflip",
    "mixup",
    "normalize",
    "random_crop",
    "random_erasing",
]

Shard = tuple[int, int]  # (rank, world size)


def _draw(shape_first: int, shard: Shard, fn) -> torch.Tensor:
    """Call ``fn(global_batch)`` and keep this rank's rows."""
    rank, world = shard
    values = fn(shape_first * world)
    return values[rank * shape_first : (rank + 1) * shape_first]


def _erase_boxes(
    draws: torch.Tensor,
    height: int,
    width: int,
    p: float,
    scale: tuple[float, float],
    ratio: tuple[float, float],
) -> torch.Tensor:
    """Random-erasing masks (B, H, W) from uniform draws (B, 5): area, aspect, top, left, apply."""
    H, W = height, width
    area = H * W * (scale[0] + (scale[1] - scale[0]) * draws[:, 0])
    log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * draws[:, 1]
    h = (area * log_r.exp()).sqrt().round().clamp(1, H)
    w = (area / log_r.exp()).sqrt().round().clamp(1, W)
    top = (draws[:, 2] * (H - h + 1)).floor()
    left = (draws[:, 3] * (W - w + 1)).floor()
    ys = torch.arange(H, device=draws.device)
    xs = torch.arange(W, device=draws.device)
    in_rows = (ys >= top[:, None]) & (ys < (top + h)[:, None]) & (draws[:, 4, None] < p)  # (B, H)
    in_cols = (xs >= left[:, None]) & (xs < (left + w)[:, None])  # (B, W)
    return in_rows[:, :, None] & in_cols[:, None, :]


def crop_flip_erase(
    x: torch.Tensor,
    gen: torch.Generator,
    padding: int = 0,
    flip_p: float = 0.0,
    erase_p: float = 0.0,
    fill: torch.Tensor | None = None,
    shard: Shard = (0, 1),
    erase_scale: tuple[float, float] = (0.02, 0.33),
    erase_ratio: tuple[float, float] = (0.3, 3.3),
) -> torch.Tensor:
    """Random crop of a zero-padded image, horizontal flip and random erasing as one gather per pixel.

    Each output pixel's source position is computed from a few per-image random numbers and a single
    ``gather`` moves the pixels (one pass over the batch); erased rectangles are then filled with
    ``fill`` (C,), default 0.
    """
    B, C, H, W = x.shape
    dev = x.device
    Hp, Wp = H + 2 * padding, W + 2 * padding
    span = 2 * padding + 1
    offsets = _draw(B, shard, lambda n: torch.randint(0, span, (n, 2), generator=gen, device=dev))
    flips = _draw(B, shard, lambda n: torch.rand(n, generator=gen, device=dev)) < flip_p
    cols = torch.arange(W, device=dev)
    src_cols = torch.where(flips[:, None], cols.flip(0), cols) + offsets[:, 1, None]  # (B, W)
    src_rows = (torch.arange(H, device=dev) + offsets[:, 0, None]) * Wp  # (B, H)
    index = src_rows[:, :, None] + src_cols[:, None, :]  # (B, H, W) into the padded image
    flat = F.pad(x, (padding,) * 4).view(B, C, Hp * Wp) if padding else x.reshape(B, C, H * W)
    out = flat.gather(2, index.view(B, 1, H * W).expand(B, C, H * W)).view(B, C, H, W)
    if erase_p > 0:
        draws = _draw(B, shard, lambda n: torch.rand(n, 5, generator=gen, device=dev))
        erased = _erase_boxes(draws, H, W, erase_p, erase_scale, erase_ratio)  # (B, H, W)
        fill_value = torch.zeros(C, dtype=x.dtype, device=dev) if fill is None else fill.to(dev, x.dtype)
        out = torch.where(erased[:, None], fill_value.view(1, C, 1, 1), out)
    return out


def random_crop(x: torch.Tensor, padding: int, gen: torch.Generator, shard: Shard = (0, 1)) -> torch.Tensor:
    """Zero-pad by ``padding`` and take a random crop of the original size per image."""
    return crop_flip_erase(x, gen, padding=padding, shard=shard) if padding > 0 else x


def hflip(x: torch.Tensor, gen: torch.Generator, p: float = 0.5, shard: Shard = (0, 1)) -> torch.Tensor:
    """Mirror each image left-right with probability ``p``."""
    return crop_flip_erase(x, gen, flip_p=p, shard=shard)


def random_erasing(
    x: torch.Tensor, gen: torch.Generator, p: float = 0.5, value: float = 0.0, shard: Shard = (0, 1)
) -> torch.Tensor:
    """Random erasing (Zhong et al. 2017): one random rectangle per image becomes ``value``, prob. p."""
    fill = torch.full((x.shape[1],), value, dtype=x.dtype)
    return crop_flip_erase(x, gen, erase_p=p, fill=fill, shard=shard)


def mixup(x: torch.Tensor, target: torch.Tensor, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup (Zhang et al. 2018) of each image with the batch reversed; ``target`` is soft (B, K)."""
    return x.lerp(x.flip(0), 1.0 - lam), target.lerp(target.flip(0), 1.0 - lam)


def cutmix(
    x: torch.Tensor, target: torch.Tensor, lam: float, rng: random.Random
) -> tuple[torch.Tensor, torch.Tensor]:
    """CutMix (Yun et al. 2019): paste one box of the reversed batch; targets mixed by the box's area."""
    H, W = x.shape[-2:]
    cut = math.sqrt(1.0 - lam)
    ch, cw = round(H * cut), round(W * cut)
    cy, cx = rng.randrange(H), rng.randrange(W)
    top, bottom = max(cy - ch // 2, 0), min(cy + ch - ch // 2, H)
    left, right = max(cx - cw // 2, 0), min(cx + cw - cw // 2, W)
    out = x.clone()
    out[..., top:bottom, left:right] = x.flip(0)[..., top:bottom, left:right]
    kept = 1.0 - (bottom - top) * (right - left) / (H * W)
    return out, target.lerp(target.flip(0), 1.0 - kept)


def fit_mode(height: int, width: int, size: int) -> str:
    """How ``fit_to_size`` brings an image to ``size``: 'none', 'pad' (at most 1/4 larger) or 'resize'."""
    if height == size and width == size:
        return "none"
    if size >= max(height, width) and size - min(height, width) <= min(height, width) // 4:
        return "pad"
    return "resize"


def fit_to_size(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bring images to ``size`` x ``size``: centered zero padding (28 -> 32, as LeNet's MNIST) or bilinear."""
    H, W = x.shape[-2:]
    mode = fit_mode(H, W, size)
    if mode == "none":
        return x
    if mode == "pad":
        top, left = (size - H) // 2, (size - W) // 2
        return F.pad(x, (left, size - W - left, top, size - H - top))
    out = F.interpolate(
        x.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=size < min(H, W)
    )
    return out.round_().clamp_(0, 255).to(x.dtype) if x.dtype == torch.uint8 else out


def normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float (x / 255 - mean) / std, with mean/std shaped (1, C, 1, 1)."""
    return x.to(mean.dtype).sub_(255.0 * mean).mul_(1.0 / (255.0 * std))


@dataclass
class BatchAugment:
    """Turns uint8 batches into normalized model input: fit, crop, flip, normalize, erase, mix."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_classes: int
    size: int | None = None  # model input side; None keeps the images' own size
    in_chans: int | None = None  # repeat grayscale to this many channels (e.g. 3 for ImageNet nets)
    crop_padding: int = 0
    hflip: bool = False
    random_erasing: float = 0.0
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    channels_last: bool = False
    dtype: torch.dtype = torch.float32
    lighting: PCALighting | None = None  # fancy PCA colour noise in training (RGB data)
    # side of the ten test crops when the images come larger than the model input (image folders); None: the
    # crops are cut from the image zero-padded by crop_padding, where the training crops came from
    view_size: int | None = None

    def __post_init__(self) -> None:
        self._stats: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def mixes(self) -> bool:
        """Whether training targets are soft (mixup or cutmix on)."""
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    def _mean_std(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if device not in self._stats:
            shape = (1, len(self.mean), 1, 1)
            self._stats[device] = (
                torch.tensor(self.mean, dtype=self.dtype, device=device).view(shape),
                torch.tensor(self.std, dtype=self.dtype, device=device).view(shape),
            )
        return self._stats[device]

    def _finish(self, x: torch.Tensor) -> torch.Tensor:
        x = normalize(x, *self._mean_std(x.device))
        if self.in_chans and self.in_chans != x.shape[1]:
            if x.shape[1] != 1:
                raise InputSizeError(f"cannot turn {x.shape[1]}-channel images into {self.in_chans} channels")
            x = x.expand(-1, self.in_chans, -1, -1)
        if self.channels_last:
            return x.contiguous(memory_format=torch.channels_last)
        return x.contiguous()

    def _fit(self, x: torch.Tensor) -> torch.Tensor:
        return fit_to_size(x, self.size) if self.size else x

    def eval(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized input for evaluation: no randomness."""
        return self._finish(self._fit(x))

    def ten_crop(self, x: torch.Tensor) -> Iterator[torch.Tensor]:
        """The ten normalized test views of a uint8 batch: four corners and centre, then their mirror images."""
        x = self._fit(x)
        if self.view_size is not None and self.view_size < min(x.shape[-2:]):
            size = self.view_size
        elif self.crop_padding > 0:
            size = x.shape[-1]
            x = F.pad(x, (self.crop_padding,) * 4)
        else:
            raise ConfigError(
                "ten-crop testing cuts its crops from the image zero-padded by --crop-padding (as the training "
                "crops were), which is 0 here: train with --crop-padding above 0"
            )
        for view in ten_crop(x, size):
            yield self._finish(view)

    def _light(self, x: torch.Tensor, gen: torch.Generator, shard: Shard) -> torch.Tensor:
        """Add each image's PCA lighting shift; on normalized input a 0-1 shift s becomes s / std."""
        alphas = _draw(x.shape[0], shard, lambda n: torch.randn(n, 3, generator=gen, device=x.device))
        std = self._mean_std(x.device)[1].view(1, -1)
        return x.add_((self.lighting.shifts(alphas.to(x.dtype)) / std)[:, :, None, None])

    def train(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        gen: torch.Generator,
        mix_rng: random.Random,
        shard: Shard = (0, 1),
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Augmented, normalized input and its target: class indices, or soft (B, K) when mixing."""
        x = self._fit(x)
        if self.crop_padding > 0 or self.hflip or self.random_erasing > 0:
            # erased pixels take the mean pixel: 0 once normalized, as in the paper
            fill = (torch.tensor(self.mean) * 255).round()
            x = crop_flip_erase(
                x, gen, self.crop_padding, 0.5 if self.hflip else 0.0, self.random_erasing, fill, shard
            )
        x = self._finish(x)
        if self.lighting is not None:
            x = self._light(x, gen, shard)
        if not self.mixes:
            return x, y
        target = F.one_hot(y, self.num_classes).to(x.dtype)
        use_cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha <= 0 or mix_rng.random() < 0.5)
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        lam = mix_rng.betavariate(alpha, alpha)
        return cutmix(x, target, lam, mix_rng) if use_cutmix else mixup(x, target, lam)
