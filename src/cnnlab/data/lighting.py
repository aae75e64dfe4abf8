"""PCA colour augmentation ("fancy PCA"): Krizhevsky, Sutskever & Hinton 2012, ImageNet Classification with
Deep Convolutional Neural Networks, Sec. 4.1.

The paper performs PCA on the RGB pixel values of the training set and adds to every pixel of an image
``[p1, p2, p3] [a1 l1, a2 l2, a3 l3]^T``, where ``p_i`` and ``l_i`` are the eigenvectors and eigenvalues of
the 3x3 covariance of RGB pixel values and ``a_i ~ N(0, 0.1)`` is drawn once per image and training pass.
The paper does not state the pixel scale; here pixels are on the 0-1 scale (on 0-255 the same formula
would shift pixels by hundreds of grey levels), so a channel's shift is a few grey levels.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

__all__ = ["PCALighting", "rgb_pca"]


def rgb_pca(batches: Iterable[torch.Tensor]) -> tuple[tuple[float, ...], tuple[tuple[float, ...], ...]]:
    """(eigenvalues, eigenvectors as rows), largest first, of the covariance of 0-1 RGB pixel values.

    ``batches`` are uint8 (B, 3, H, W) tensors; every pixel of every image is one sample. Sums are kept in
    float64 batch by batch, so a whole data set never needs a float copy.
    """
    total = torch.zeros(3, dtype=torch.float64)
    outer = torch.zeros(3, 3, dtype=torch.float64)
    count = 0
    for batch in batches:
        if batch.dim() != 4 or batch.shape[1] != 3:
            raise ValueError(f"PCA lighting needs RGB batches (B, 3, H, W), got {tuple(batch.shape)}")
        pixels = batch.detach().to("cpu", torch.float64).div_(255.0).permute(1, 0, 2, 3).reshape(3, -1)
        total += pixels.sum(1)
        outer += pixels @ pixels.T
        count += pixels.shape[1]
    if count < 2:
        raise ValueError("PCA lighting needs at least two pixels to estimate a covariance")
    mean = total / count
    cov = (outer - count * torch.outer(mean, mean)) / (count - 1)
    values, vectors = torch.linalg.eigh(cov)  # ascending; columns are the eigenvectors
    order = values.argsort(descending=True)
    values = values[order].clamp_min(0.0)  # rounding can leave a tiny negative for a flat channel
    vectors = vectors[:, order].T
    return tuple(values.tolist()), tuple(tuple(v) for v in vectors.tolist())


@dataclass(frozen=True)
class PCALighting:
    """Fancy PCA lighting: a per-image RGB shift along the training set's colour principal axes."""

    eigvals: tuple[float, ...]  # covariance eigenvalues of 0-1 RGB pixel values, largest first
    eigvecs: tuple[tuple[float, ...], ...]  # the matching unit eigenvectors, one per row
    alpha_std: float = 0.1  # standard deviation of the per-image weights a_i (0.1 in the paper)

    def shifts(self, alphas: torch.Tensor) -> torch.Tensor:
        """(B, 3) shifts on the 0-1 scale for standard-normal draws ``alphas`` (B, 3): P (a * alpha_std * l)."""
        device, dtype = alphas.device, alphas.dtype
        values = torch.tensor(self.eigvals, device=device, dtype=dtype)
        vectors = torch.tensor(self.eigvecs, device=device, dtype=dtype)  # (3, 3), eigenvector i in row i
        return (alphas * self.alpha_std * values) @ vectors  # sum_i a_i l_i p_i
