"""Segmentation figures: each image beside its ground truth (when known) and the prediction, as colour overlays.

Class 0 (background) is black and shows the image untinted; the other classes take matplotlib's
qualitative colours (tab10 up to 10 of them, tab20 up to 20), and beyond 20 Pascal VOC's colour map (the
devkit's bit-interleaved one). Ignored pixels are tinted white. The legend names the classes shown.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Patch

__all__ = ["class_palette", "overlay_labels", "segmentation_overlays"]

_IGNORE_COLOR = (255, 255, 255)


def _voc_colors(num_classes: int) -> np.ndarray:
    """Pascal VOC's colour map: the bits of k spread over the high bits of R, G and B."""
    colors = np.zeros((num_classes, 3), dtype=np.uint8)
    for k in range(num_classes):
        code, rgb = k, [0, 0, 0]
        for bit in range(7, -1, -1):  # the lowest 3 bits of k go to the top bit of R, G, B, and so on
            for channel in range(3):
                rgb[channel] |= ((code >> channel) & 1) << bit
            code >>= 3
        colors[k] = rgb
    return colors


def class_palette(num_classes: int) -> np.ndarray:
    """(K, 3) uint8 colours of classes 0..K-1: black background, then colours told apart at a glance."""
    foreground = num_classes - 1
    if foreground > 20:
        return _voc_colors(num_classes)
    table = colormaps["tab10" if foreground <= 10 else "tab20"].colors
    colors = np.zeros((num_classes, 3), dtype=np.uint8)
    colors[1:] = np.round(np.asarray(table[:foreground]) * 255)
    return colors


def overlay_labels(image: np.ndarray, labels: np.ndarray, num_classes: int, ignore_index: int = 255,
                   alpha: float = 0.55) -> np.ndarray:
    """(H, W, 3) floats in [0, 1]: ``image`` ((H, W) or (H, W, C) uint8) with each class pixel tinted its colour."""
    rgb = image.astype(np.float64) / 255.0
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    elif rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    palette = np.vstack([class_palette(num_classes), np.zeros((256 - num_classes, 3), np.uint8)])
    palette[ignore_index] = _IGNORE_COLOR
    colors = palette[labels.astype(np.int64)].astype(np.float64) / 255.0
    tinted = (labels > 0) & ((labels < num_classes) | (labels == ignore_index))
    out = rgb.copy()
    out[tinted] = (1 - alpha) * rgb[tinted] + alpha * colors[tinted]
    return out


def segmentation_overlays(
    images: Sequence[np.ndarray],
    predictions: Sequence[np.ndarray],
    classes: Sequence[str],
    truths: Sequence[np.ndarray | None] | None = None,
    titles: Sequence[str] | None = None,
    ignore_index: int = 255,
) -> Figure:
    """One row per image: the image, its ground truth when any is known, the prediction; a legend of classes."""
    rows = len(images)
    with_truth = truths is not None and any(t is not None for t in truths)
    cols = 3 if with_truth else 2
    fig = Figure(figsize=(2.4 * cols, 2.4 * rows + 0.9), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    shown: set[int] = set()
    for r in range(rows):
        panels = [("image", images[r], None)]
        if with_truth:
            panels.append(("ground truth", images[r], truths[r]))
        panels.append(("prediction", images[r], predictions[r]))
        for c, (label, image, labels) in enumerate(panels):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if labels is None and label == "ground truth":
                ax.set_axis_off()
                continue
            if labels is None:
                ax.imshow(overlay_labels(image, np.zeros(image.shape[:2], np.int64), len(classes)))
            else:
                ax.imshow(overlay_labels(image, labels, len(classes), ignore_index), interpolation="nearest")
                shown.update(int(v) for v in np.unique(labels) if v < len(classes))
            if r == 0:
                ax.set_title(label, fontsize=10)
            if c == 0 and titles is not None:
                ax.set_ylabel(titles[r], fontsize=8)
    palette = class_palette(len(classes)) / 255.0
    handles = [Patch(facecolor=palette[k], edgecolor="0.5", label=classes[k] + (" (untinted)" if k == 0 else ""))
               for k in sorted(shown)]
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4), fontsize=8, frameon=False)
    return fig
