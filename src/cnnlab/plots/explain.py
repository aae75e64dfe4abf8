"""Explanation figures: filters, activation maps, attribution overlays, occlusion, patches, class images,
feature-space scatters, nearest neighbours and the sanity-check curve.

Images come as arrays (N, C, H, W) with C = 1 or 3, either uint8 or floats in [0, 1] (what a person
should see, not the normalized model input); maps come as (N, H, W) or (N, C, H, W) arrays. Every
function returns a ``matplotlib.figure.Figure`` and draws no pyplot state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from cnnlab.errors import DataError

__all__ = [
    "activation_grid",
    "attribution_grid",
    "embedding_scatter",
    "filter_grid",
    "image_grid",
    "neighbour_grid",
    "occlusion_grid",
    "patch_grid",
    "sanity_curves",
    "sanity_maps",
]

_CELL = 1.6  # inches per image cell
_MAX_COLUMNS = 8


def _display(image: np.ndarray) -> np.ndarray:
    """One (C, H, W) image as (H, W) grey or (H, W, 3) colour floats in [0, 1]."""
    img = np.asarray(image)
    img = img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img.astype(np.float32)
    if img.ndim == 2:
        return np.clip(img, 0, 1)
    if img.shape[0] == 1:
        return np.clip(img[0], 0, 1)
    return np.clip(np.transpose(img[:3], (1, 2, 0)), 0, 1)


def _grey(image: np.ndarray) -> np.ndarray:
    img = _display(image)
    return img if img.ndim == 2 else img.mean(2)


def _rescale(x: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] by its own minimum and maximum (a constant array becomes 0.5)."""
    x = np.asarray(x, dtype=np.float32)
    lo, hi = float(x.min()), float(x.max())
    return np.full_like(x, 0.5) if hi <= lo else (x - lo) / (hi - lo)


def _signed(x: np.ndarray) -> np.ndarray:
    """Signed values to [0, 1] with 0 at mid-grey (how deconvnet and guided backprop images are shown)."""
    x = np.asarray(x, dtype=np.float32)
    peak = float(np.abs(x).max())
    return np.full_like(x, 0.5) if peak == 0 else 0.5 + 0.5 * x / peak


def _blank(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _grid(count: int, columns: int | None = None) -> tuple[int, int]:
    cols = min(count, columns or _MAX_COLUMNS)
    return math.ceil(count / cols), cols


def _need(count: int, what: str) -> None:
    if count < 1:
        raise DataError(f"nothing to plot: no {what}")


def filter_grid(weights: np.ndarray, title: str = "Filters", max_filters: int = 64,
                max_inputs: int = 16) -> Figure:
    """Kernels (out, in, kh, kw), each normalized to its own range: colour for 3 inputs, else one grey
    kernel per input channel (rows: filters, columns: input channels)."""
    w = np.asarray(weights, dtype=np.float32)
    if w.ndim != 4:
        raise DataError(f"filters must be (out, in, kh, kw), got shape {w.shape}")
    _need(len(w), "filters")
    w = w[:max_filters]
    if w.shape[1] in (1, 3):
        rows, cols = _grid(len(w), 16)
        fig = Figure(figsize=(cols * 0.6 + 0.5, rows * 0.6 + 0.8), layout="constrained")
        axes = fig.subplots(rows, cols, squeeze=False)
        for i, ax in enumerate(axes.flat):
            _blank(ax)
            if i < len(w):
                kernel = _rescale(w[i])
                ax.imshow(kernel[0] if w.shape[1] == 1 else np.transpose(kernel, (1, 2, 0)),
                          cmap="gray", interpolation="nearest", vmin=0, vmax=1)
    else:
        w = w[:, :max_inputs]
        fig = Figure(figsize=(w.shape[1] * 0.5 + 0.8, len(w) * 0.5 + 0.8), layout="constrained")
        axes = fig.subplots(len(w), w.shape[1], squeeze=False)
        for o in range(len(w)):
            kernel = _rescale(w[o])
            for i in range(w.shape[1]):
                _blank(axes[o, i])
                axes[o, i].imshow(kernel[i], cmap="gray", interpolation="nearest", vmin=0, vmax=1)
            axes[o, 0].set_ylabel(str(o), fontsize=6, rotation=0, labelpad=8)
        for i in range(w.shape[1]):
            axes[0, i].set_title(f"in {i}", fontsize=6)
    fig.suptitle(title, fontsize=10)
    return fig


def activation_grid(image: np.ndarray, maps: np.ndarray, title: str = "Activation maps",
                    max_maps: int = 32) -> Figure:
    """One image and the activation maps (C, h, w) of its channels, each on its own scale (viridis)."""
    maps = np.asarray(maps, dtype=np.float32)[:max_maps]
    _need(len(maps), "activation maps")
    rows, cols = _grid(len(maps) + 1)
    fig = Figure(figsize=(cols * _CELL * 0.8, rows * _CELL * 0.8 + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        _blank(ax)
    shown = _display(image)
    axes.flat[0].imshow(shown, cmap="gray" if shown.ndim == 2 else None, vmin=0, vmax=1)
    axes.flat[0].set_title("input", fontsize=7)
    for c, ax in enumerate(axes.flat[1 : len(maps) + 1]):
        ax.imshow(maps[c], cmap="viridis", interpolation="nearest")
        ax.set_title(f"channel {c}", fontsize=7)
    fig.suptitle(title, fontsize=10)
    return fig


def _map_panel(ax, image: np.ndarray, attribution: np.ndarray, style: str) -> None:
    if style == "heat":
        ax.imshow(_grey(image), cmap="gray", vmin=0, vmax=1)
        heat = np.asarray(attribution, dtype=np.float32)
        peak = float(heat.max())
        ax.imshow(heat / peak if peak > 0 else heat, cmap="jet", alpha=0.5, vmin=0, vmax=1)
    elif style == "signed":
        a = np.asarray(attribution, dtype=np.float32)
        shown = _signed(a)
        ax.imshow(shown[0] if a.ndim == 3 and a.shape[0] == 1 else
                  (np.transpose(shown, (1, 2, 0)) if a.ndim == 3 else shown),
                  cmap="gray", vmin=0, vmax=1)
    else:
        raise DataError(f"unknown map style {style!r}; use 'heat' or 'signed'")


def attribution_grid(images: np.ndarray, maps: np.ndarray, captions: Sequence[str], title: str,
                     style: str = "heat") -> Figure:
    """Each image above its map: ``heat`` overlays a non-negative (N, H, W) map on the grey image (jet,
    scaled to each map's maximum); ``signed`` shows (N, C, H, W) or (N, H, W) signed maps as images with
    zero at mid-grey, as Springenberg et al. and Zeiler & Fergus show theirs."""
    images, maps = np.asarray(images), np.asarray(maps)
    _need(len(images), "images")
    if len(maps) != len(images):
        raise DataError(f"{len(maps)} maps for {len(images)} images")
    blocks, cols = _grid(len(images))
    fig = Figure(figsize=(cols * _CELL + 0.3, blocks * 2 * _CELL + 0.9), layout="constrained")
    axes = fig.subplots(2 * blocks, cols, squeeze=False)
    for ax in axes.flat:
        _blank(ax)
    for i in range(len(images)):
        top, bottom = axes[2 * (i // cols), i % cols], axes[2 * (i // cols) + 1, i % cols]
        shown = _display(images[i])
        top.imshow(shown, cmap="gray" if shown.ndim == 2 else None, vmin=0, vmax=1)
        top.set_title(captions[i] if i < len(captions) else "", fontsize=6.5)
        _map_panel(bottom, images[i], maps[i], style)
    fig.suptitle(title, fontsize=10)
    return fig


def occlusion_grid(images: np.ndarray, scores: np.ndarray, attribution: np.ndarray, captions: Sequence[str],
                   title: str, output: str = "probability") -> Figure:
    """Zeiler & Fergus's figure 7 per image: the image, the target's ``output`` with the grey square at each
    position (the map), and the drop per pixel overlaid on the image."""
    images, scores, attribution = np.asarray(images), np.asarray(scores), np.asarray(attribution)
    _need(len(images), "images")
    cols = min(len(images), _MAX_COLUMNS)
    blocks = math.ceil(len(images) / cols)
    fig = Figure(figsize=(cols * _CELL + 0.6, blocks * 3 * _CELL + 0.9), layout="constrained")
    axes = fig.subplots(3 * blocks, cols, squeeze=False)
    for ax in axes.flat:
        _blank(ax)
    low, high = (0.0, 1.0) if output == "probability" else (float(scores.min()), float(scores.max()))
    for i in range(len(images)):
        r, c = 3 * (i // cols), i % cols
        shown = _display(images[i])
        axes[r, c].imshow(shown, cmap="gray" if shown.ndim == 2 else None, vmin=0, vmax=1)
        axes[r, c].set_title(captions[i] if i < len(captions) else "", fontsize=6.5)
        im = axes[r + 1, c].imshow(scores[i], cmap="viridis", vmin=low, vmax=high, interpolation="nearest")
        axes[r + 1, c].set_title(f"{output} of target,\nsquare at each place", fontsize=6)
        _map_panel(axes[r + 2, c], images[i], np.clip(attribution[i], 0, None), "heat")
        axes[r + 2, c].set_title("drop per pixel", fontsize=6)
    fig.colorbar(im, ax=axes[1::3].ravel().tolist(), shrink=0.6, label=output)
    fig.suptitle(title, fontsize=10)
    return fig


def patch_grid(patches: np.ndarray, row_labels: Sequence[str], title: str) -> Figure:
    """(rows, k, C, h, w) patches in [0, 1] or uint8: one row per channel, its strongest patches left to right."""
    patches = np.asarray(patches)
    if patches.ndim != 5:
        raise DataError(f"patches must be (rows, k, C, h, w), got shape {patches.shape}")
    _need(patches.shape[0] * patches.shape[1], "patches")
    rows, k = patches.shape[:2]
    fig = Figure(figsize=(k * 0.9 + 1.2, rows * 0.9 + 0.7), layout="constrained")
    axes = fig.subplots(rows, k, squeeze=False)
    for r in range(rows):
        for j in range(k):
            ax = axes[r, j]
            _blank(ax)
            shown = _display(patches[r, j])
            ax.imshow(shown, cmap="gray" if shown.ndim == 2 else None, vmin=0, vmax=1)
        axes[r, 0].set_ylabel(row_labels[r] if r < len(row_labels) else "", fontsize=7, rotation=0,
                              ha="right", va="center")
    fig.suptitle(title, fontsize=10)
    return fig


def image_grid(images: np.ndarray, captions: Sequence[str], title: str, columns: int | None = None) -> Figure:
    """Images (N, C, H, W) in [0, 1] or uint8 with a caption each (for instance one class image per class)."""
    images = np.asarray(images)
    _need(len(images), "images")
    rows, cols = _grid(len(images), columns or 5)
    fig = Figure(figsize=(cols * _CELL, rows * (_CELL + 0.25) + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        _blank(ax)
    for i, ax in enumerate(axes.flat[: len(images)]):
        shown = _display(images[i])
        ax.imshow(shown, cmap="gray" if shown.ndim == 2 else None, vmin=0, vmax=1)
        ax.set_title(captions[i] if i < len(captions) else "", fontsize=7)
    fig.suptitle(title, fontsize=10)
    return fig


def embedding_scatter(points: np.ndarray, labels: np.ndarray, class_names: Sequence[str], title: str,
                      note: str = "") -> Figure:
    """A 2-D embedding (N, 2) of feature vectors, coloured by class, with a legend of class names."""
    points, labels = np.asarray(points), np.asarray(labels)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) != len(labels):
        raise DataError(f"need (N, 2) points and N labels, got {points.shape} and {labels.shape}")
    _need(len(points), "points")
    fig = Figure(figsize=(7.5, 6.5), layout="constrained")
    ax = fig.add_subplot()
    cmap = "tab10" if len(class_names) <= 10 else "tab20"
    size = max(1.0, min(12.0, 4000.0 / len(points)))
    ax.scatter(points[:, 0], points[:, 1], c=labels, cmap=cmap, vmin=-0.5, vmax=max(len(class_names), 10) - 0.5,
               s=size, alpha=0.7, linewidths=0)
    colors = fig.colorbar(ax.collections[0], ax=ax, ticks=range(len(class_names)))
    colors.ax.set_yticklabels(list(class_names), fontsize=7)
    colors.ax.set_ylim(-0.5, len(class_names) - 0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title + (f"\n{note}" if note else ""), fontsize=10)
    return fig


def neighbour_grid(queries: np.ndarray, feature_neighbours: np.ndarray, pixel_neighbours: np.ndarray,
                   title: str, query_captions: Sequence[str] = ()) -> Figure:
    """Each query image, its nearest images in feature space, then its nearest in pixel space (Krizhevsky
    2012, figure 4): (Q, C, H, W) queries and (Q, k, C, H, W) neighbours."""
    queries = np.asarray(queries)
    feat, pix = np.asarray(feature_neighbours), np.asarray(pixel_neighbours)
    _need(len(queries), "query images")
    k = feat.shape[1]
    cols = 2 * k + 1
    fig = Figure(figsize=(cols * 0.95 + 0.4, len(queries) * 1.0 + 0.9), layout="constrained")
    axes = fig.subplots(len(queries), cols, squeeze=False)
    for q in range(len(queries)):
        row = [queries[q], *feat[q], *pix[q]]
        for j, (ax, img) in enumerate(zip(axes[q], row)):
            _blank(ax)
            shown = _display(img)
            ax.imshow(shown, cmap="gray" if shown.ndim == 2 else None, vmin=0, vmax=1)
            if j == 0:
                for spine in ax.spines.values():
                    spine.set_visible(True)
                    spine.set_color("red")
                if q < len(query_captions):
                    ax.set_ylabel(query_captions[q], fontsize=6, rotation=0, ha="right", va="center")
    axes[0, 0].set_title("query", fontsize=7)
    axes[0, 1 + k // 2].set_title("nearest in feature space", fontsize=7)
    axes[0, 1 + k + k // 2].set_title("nearest in pixel space", fontsize=7)
    fig.suptitle(title, fontsize=10)
    return fig


def sanity_curves(curves: Mapping[str, tuple[Sequence[str], np.ndarray, np.ndarray]], title: str,
                  threshold: float | None = 0.5) -> Figure:
    """Adebayo et al.'s cascading-randomization curves: for each method, (layer labels, rank correlation,
    SSIM) against the number of layers re-initialized from the top."""
    if not curves:
        raise DataError("nothing to plot: no sanity-check results")
    fig = Figure(figsize=(11, 4.8), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    longest: Sequence[str] = []
    lowest = min(float(np.min(np.concatenate([np.asarray(r), np.asarray(s)]))) for _, r, s in curves.values())
    for method, (labels, rho, sim) in curves.items():
        steps = np.arange(len(rho))
        axes[0].plot(steps, rho, marker="o", markersize=3, label=method)
        axes[1].plot(steps, sim, marker="o", markersize=3, label=method)
        longest = labels if len(labels) > len(longest) else longest
    for ax, name in zip(axes, ("Spearman rank correlation (absolute maps)", "SSIM")):
        ax.set_xticks(np.arange(len(longest)))
        ax.set_xticklabels(longest, rotation=70, ha="right", fontsize=6)
        ax.set_xlabel("re-initialized from the top down to layer")
        ax.set_title(name, fontsize=9)
        ax.grid(True, alpha=0.3)
        if threshold is not None:
            ax.axhline(threshold, color="0.5", linestyle=":", linewidth=1)
    axes[0].set_ylabel("similarity to the trained model's map")
    axes[0].set_ylim(min(-0.2, lowest - 0.05), 1.05)
    axes[1].legend(fontsize=7, loc="upper right")
    fig.suptitle(title, fontsize=10)
    return fig


def sanity_maps(image: np.ndarray, maps: Mapping[str, np.ndarray], step_labels: Sequence[str],
                title: str, max_steps: int = 10) -> Figure:
    """One image's map per method (rows) as more layers are re-initialized (columns; (steps, H, W) each)."""
    _need(len(maps), "methods")
    first = next(iter(maps.values()))
    pick = np.unique(np.linspace(0, len(first) - 1, min(max_steps, len(first))).round().astype(int))
    fig = Figure(figsize=((len(pick) + 1) * 1.2 + 0.5, len(maps) * 1.3 + 1.2), layout="constrained")
    axes = fig.subplots(len(maps), len(pick) + 1, squeeze=False)
    for r, (method, series) in enumerate(maps.items()):
        shown = _display(image)
        _blank(axes[r, 0])
        axes[r, 0].imshow(shown, cmap="gray" if shown.ndim == 2 else None, vmin=0, vmax=1)
        axes[r, 0].set_ylabel(method, fontsize=7, rotation=0, ha="right", va="center")
        for j, s in enumerate(pick):
            ax = axes[r, j + 1]
            _blank(ax)
            ax.imshow(_rescale(np.abs(series[s])), cmap="gray", vmin=0, vmax=1)
            if r == 0:
                ax.set_title(step_labels[s] if s < len(step_labels) else "", fontsize=5.5, rotation=30)
    fig.suptitle(title, fontsize=10)
    return fig
