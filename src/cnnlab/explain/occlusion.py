"""Occlusion sensitivity: how the class probability falls as a grey square slides over the image.

M. Zeiler, R. Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014 (arXiv:1311.2901),
section 4.2 and figure 7: if the classifier looks at the object, covering the object must lower the
probability of the class. The square is filled with ``fill``, 0 by default: in normalized input that is
the data set's mean pixel, the paper's grey.

Windows start at 0, stride, 2 stride, ... until one reaches the border; the last ones are cut at the
border, so every pixel is covered (captum's ``Occlusion`` places them the same way, and the two agree to
float precision). All occluded copies of all images go through the network in batches of ``batch_size``,
which is what makes it fast: captum evaluates one position per forward pass by default. The default batch
holds about 130,000 pixels (128 images at 28x28, 2 at 224x224): measured on 2 CPU cores, ResNet-20's
occlusion at 28x28 took 0.40 s in batches of 128 against 0.43 s at 256 and 1.0 s at 1,024, and ResNet-18's
at 224x224 4.9 s in batches of 4 to 8 against 7.3 s at 256; bigger batches push the activations out of the
caches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.explain._core import (
    Target,
    check_images,
    chunks,
    class_scores,
    explaining,
    logits_of,
    progress_bar,
    resolve_targets,
)

__all__ = ["OcclusionMap", "default_batch_size", "occlusion"]

_OUTPUTS = ("probability", "logit")


@dataclass
class OcclusionMap:
    """The result of :func:`occlusion` for a batch of B images."""

    attribution: torch.Tensor  # (B, H, W): mean drop of the target's output over the windows covering a pixel
    scores: torch.Tensor  # (B, rows, cols): the target's output with the window at each position
    base: torch.Tensor  # (B,): the target's output for the unoccluded image
    targets: torch.Tensor  # (B,): the class explained
    window: int
    stride: int
    output: str  # "probability" (softmax) or "logit"


def _window_masks(size: int, window: int, stride: int) -> torch.Tensor:
    """(positions, size) bool: the pixels each window position covers along one axis."""
    count = math.ceil((size - window) / stride) + 1
    starts = torch.arange(count) * stride
    pixels = torch.arange(size)
    return (pixels >= starts[:, None]) & (pixels < starts[:, None] + window)


def _check(images: torch.Tensor, window: int, stride: int, output: str) -> None:
    h, w = images.shape[-2:]
    if output not in _OUTPUTS:
        raise ConfigError(f"occlusion output must be one of {', '.join(_OUTPUTS)}, got {output!r}")
    if window < 1 or window > min(h, w):
        raise ConfigError(f"the occlusion window must be 1 to {min(h, w)} pixels for {h}x{w} images, got {window}")
    if not 1 <= stride <= window:
        raise ConfigError(f"the occlusion stride must be 1 to the window ({window}) so every pixel is covered, "
                          f"got {stride}")


def occlusion(model: nn.Module, images: torch.Tensor, target: Target = None, window: int = 8, stride: int = 4,
              fill: float = 0.0, output: str = "probability", batch_size: int | None = None,
              progress: bool = False) -> OcclusionMap:
    """Slide a ``window`` x ``window`` patch of ``fill`` over each image; the target's output at each position.

    ``batch_size``: occluded images per forward pass (default: :func:`default_batch_size` of the image size).
    """
    images = check_images(images)
    _check(images, window, stride, output)
    B, _, H, W = images.shape
    if batch_size is None:
        batch_size = default_batch_size(H, W)
    rows, cols = _window_masks(H, window, stride), _window_masks(W, window, stride)  # (nh, H), (nw, W)
    positions = len(rows) * len(cols)
    with explaining(model), torch.no_grad():
        logits = torch.cat([logits_of(model(images[p])) for p in chunks(B, batch_size)])
        targets = resolve_targets(target, logits)
        base = _read(logits, targets, output)
        pairs = torch.arange(B * positions)  # pair q: image q // positions, window position q % positions
        scores = torch.empty(B * positions, dtype=logits.dtype)
        for part in progress_bar(list(chunks(len(pairs), batch_size)), progress, "occlusion"):
            q = pairs[part]
            img, pos = q // positions, q % positions
            mask = rows[pos // len(cols)][:, :, None] & cols[pos % len(cols)][:, None, :]  # (k, H, W)
            x = images[img.to(images.device)]
            x = torch.where(mask.to(images.device)[:, None], torch.as_tensor(fill, dtype=x.dtype), x)
            scores[part] = _read(logits_of(model(x)), targets[img.to(targets.device)], output).cpu()
    scores = scores.view(B, len(rows), len(cols))
    drops = base.cpu().view(B, 1, 1) - scores
    R, C = rows.to(drops.dtype), cols.to(drops.dtype)
    covered = torch.einsum("ih,jw->hw", R, C)  # windows covering each pixel, >= 1 since stride <= window
    attribution = torch.einsum("bij,ih,jw->bhw", drops, R, C) / covered
    return OcclusionMap(attribution, scores, base.cpu(), targets.cpu(), window, stride, output)


def default_batch_size(height: int, width: int, pixels: int = 131_072, largest: int = 256) -> int:
    """A power of two of images holding about ``pixels`` pixels per forward pass, 1 to ``largest``."""
    fits = max(1, pixels // (height * width))
    return min(largest, 1 << (fits.bit_length() - 1))


def _read(logits: torch.Tensor, targets: torch.Tensor, output: str) -> torch.Tensor:
    values = logits.float().softmax(1) if output == "probability" else logits.float()
    return class_scores(values, targets)
