"""Ten-crop testing: Krizhevsky, Sutskever & Hinton 2012, ImageNet Classification with Deep Convolutional
Neural Networks, Sec. 4.1: "the network makes a prediction by extracting five 224x224 patches (the four
corner patches and the center patch) as well as their horizontal reflections (hence ten patches in all),
and averaging the predictions made by the network's softmax layer on the ten patches".
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from cnnlab.errors import InputSizeError

__all__ = ["five_crop_corners", "ten_crop"]


def five_crop_corners(height: int, width: int, size: int) -> list[tuple[int, int]]:
    """(top, left) of the four corner crops and the centre crop of side ``size``, in that order."""
    if size > min(height, width):
        raise InputSizeError(f"a {size}x{size} crop does not fit in a {height}x{width} image")
    bottom, right = height - size, width - size
    return [(0, 0), (0, right), (bottom, 0), (bottom, right), (bottom // 2, right // 2)]


def ten_crop(x: torch.Tensor, size: int) -> Iterator[torch.Tensor]:
    """The ten ``size`` x ``size`` views of a batch (B, C, H, W): five crops, then their mirror images."""
    crops = [x[..., t : t + size, c : c + size] for t, c in five_crop_corners(x.shape[-2], x.shape[-1], size)]
    yield from crops
    for crop in crops:
        yield crop.flip(-1)
