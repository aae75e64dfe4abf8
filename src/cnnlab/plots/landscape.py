"""Loss-landscape figures (Li et al. 2018, Visualizing the Loss Landscape of Neural Nets), from arrays.

1-D curves (loss and accuracy along a direction or between two checkpoints), 2-D contour plots with
labelled levels (several networks side by side on the same levels), a 3-D surface, the optimization
trajectory on its PCA plane, the |lambda_min / lambda_max| map, training-error curves, and the composite
figure of the skip-connection experiment. A 2-D quantity ``z`` has shape ``(len(y), len(x))``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from cnnlab.errors import DataError

__all__ = [
    "curvature_map",
    "default_levels",
    "landscape_contours",
    "landscape_curves",
    "landscape_surface",
    "landscape_trajectory",
    "skip_connection_figure",
    "training_error_curves",
]

Curve = tuple[Sequence[float], Sequence[float]]  # (x, y)


def default_levels(*surfaces: np.ndarray, count: int = 20, cap: float = 10.0) -> np.ndarray:
    """``count`` evenly spaced contour levels from the lowest loss of ``surfaces`` up to ``cap`` (Li et al. draw
    cross-entropy from 0.1 to 10), or to the highest loss when every loss is above ``cap``."""
    finite = np.concatenate([np.asarray(s, dtype=float)[np.isfinite(s)].ravel() for s in surfaces])
    if finite.size == 0:
        raise DataError("no finite values to draw")
    low, high = float(finite.min()), float(finite.max())
    top = min(high, cap) if low < cap else high
    if top <= low:
        top = low + 1e-6
    return np.linspace(low, top, count)


def _levels(surfaces: Sequence[np.ndarray], levels: int | Sequence[float]) -> np.ndarray:
    return default_levels(*surfaces, count=levels) if isinstance(levels, int) else np.asarray(levels, dtype=float)


def _contour(ax: Axes, x: np.ndarray, y: np.ndarray, z: np.ndarray, levels: np.ndarray, title: str) -> None:
    z = np.asarray(z, dtype=float)
    if z.shape != (len(y), len(x)):
        raise DataError(f"a surface of shape {z.shape} does not fit x ({len(x)}) and y ({len(y)})")
    # Losses above the top level are drawn at it: a chaotic landscape's peaks would otherwise hide the basin.
    shown = np.where(np.isfinite(z), np.minimum(z, levels[-1]), levels[-1])
    filled = ax.contourf(x, y, shown, levels=levels, cmap="viridis", extend="max")
    lines = ax.contour(x, y, shown, levels=levels[::2], colors="white", linewidths=0.6)
    ax.clabel(lines, fmt="%.2g", fontsize=7)
    ax.plot([0], [0], marker="*", color="red", markersize=9, linestyle="none")
    ax.set_title(title, fontsize=9)
    ax.set_aspect("equal", adjustable="box")
    ax.figure.colorbar(filled, ax=ax, shrink=0.8, label="loss", format="%.3g")


def landscape_contours(surfaces: Mapping[str, np.ndarray], x: Sequence[float], y: Sequence[float], *,
                       levels: int | Sequence[float] = 20, xlabel: str = "direction 1",
                       ylabel: str = "direction 2") -> Figure:
    """Contour plots of one or more loss surfaces on the same grid, side by side, with the same labelled levels."""
    if not surfaces:
        raise DataError("no surface to draw")
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    shared = _levels(list(surfaces.values()), levels)
    fig = Figure(figsize=(5.2 * len(surfaces), 4.6), layout="constrained")
    axes = fig.subplots(1, len(surfaces), squeeze=False)[0]
    for ax, (label, z) in zip(axes, surfaces.items()):
        _contour(ax, x, y, z, shared, label)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    return fig


def landscape_surface(x: Sequence[float], y: Sequence[float], z: np.ndarray, *, title: str = "",
                      cap: float | None = 10.0) -> Figure:
    """The loss surface in 3-D, clipped at ``cap`` (said in the title) so the basin stays readable."""
    x, y, z = np.asarray(x, dtype=float), np.asarray(y, dtype=float), np.asarray(z, dtype=float)
    if z.shape != (len(y), len(x)):
        raise DataError(f"a surface of shape {z.shape} does not fit x ({len(x)}) and y ({len(y)})")
    clipped = cap is not None and np.nanmax(z) > cap
    shown = np.minimum(z, cap) if clipped else z
    fig = Figure(figsize=(6.4, 5.2), layout="constrained")
    ax = fig.add_subplot(projection="3d")
    xx, yy = np.meshgrid(x, y)
    ax.plot_surface(xx, yy, shown, cmap="viridis", linewidth=0, antialiased=True)
    ax.set_xlabel("direction 1")
    ax.set_ylabel("direction 2")
    ax.set_zlabel("loss")
    ax.set_title(title + (f" (loss clipped at {cap:g})" if clipped else ""), fontsize=9)
    return fig


def landscape_curves(x: Sequence[float], values: Mapping[str, Sequence[float]], *, xlabel: str = "",
                     title: str = "") -> Figure:
    """1-D landscape: loss and (when measured) accuracy along the line, train and test on the same axes.

    ``values`` holds ``train_loss``, ``train_accuracy`` (a fraction), and maybe ``test_loss``, ``test_accuracy``.
    """
    if "train_loss" not in values:
        raise DataError("a 1-D landscape needs its train_loss")
    x = np.asarray(x, dtype=float)
    accuracy = [k for k in values if k.endswith("_accuracy")]
    fig = Figure(figsize=(10 if accuracy else 5.5, 4.2), layout="constrained")
    axes = fig.subplots(1, 2 if accuracy else 1, squeeze=False)[0]
    for key in (k for k in values if k.endswith("_loss")):
        axes[0].plot(x, values[key], label=key.split("_")[0])
    axes[0].set_ylabel("loss (cross-entropy)")
    losses = np.concatenate([np.asarray(values[k], dtype=float) for k in values if k.endswith("_loss")])
    losses = losses[np.isfinite(losses) & (losses > 0)]
    if losses.size and losses.max() > 100 * losses.min():
        axes[0].set_yscale("log")  # far along a line the loss explodes; the basin would be a flat line
    if accuracy:
        for key in accuracy:
            axes[1].plot(x, 100 * np.asarray(values[key], dtype=float), label=key.split("_")[0])
        axes[1].set_ylabel("accuracy (%)")
    for ax in axes:
        ax.set_xlabel(xlabel)
        ax.axvline(0, color="0.6", linewidth=0.8)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return fig


def landscape_trajectory(x: Sequence[float], y: Sequence[float], z: np.ndarray, path: np.ndarray,
                         explained: Sequence[float], *, levels: int | Sequence[float] = 20, title: str = "") -> Figure:
    """The loss on the trajectory's PCA plane with the path of the saved weights drawn over it (Li et al. fig. 9)."""
    x, y, path = np.asarray(x, dtype=float), np.asarray(y, dtype=float), np.asarray(path, dtype=float)
    fig = Figure(figsize=(6, 5), layout="constrained")
    ax = fig.subplots()
    _contour(ax, x, y, z, _levels([z], levels), title)
    ax.set_aspect("auto")
    ax.plot(path[:, 0], path[:, 1], color="red", marker="o", markersize=3, linewidth=1)
    for i in (0, len(path) - 1):
        ax.annotate(f"epoch {i}", path[i], textcoords="offset points", xytext=(4, 4), fontsize=7, color="red")
    ax.set_xlabel(f"1st PCA component: {100 * explained[0]:.1f}% of the variance")
    ax.set_ylabel(f"2nd PCA component: {100 * explained[1]:.1f}%")
    return fig


def curvature_map(x: Sequence[float], y: Sequence[float], ratio: np.ndarray, *, title: str = "") -> Figure:
    """|lambda_min / lambda_max| over a grid: dark where the surface is convex (Li et al. 2018, figure 7)."""
    fig = Figure(figsize=(5.6, 4.6), layout="constrained")
    ax = fig.subplots()
    image = ax.pcolormesh(np.asarray(x), np.asarray(y), np.asarray(ratio, dtype=float), cmap="magma",
                          shading="nearest", vmin=0.0, vmax=max(1.0, float(np.nanmax(ratio))))
    fig.colorbar(image, ax=ax, label="|λmin / λmax|")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("direction 1")
    ax.set_ylabel("direction 2")
    return fig


def _error_curves(ax: Axes, curves: Mapping[str, Curve]) -> None:
    for label, (epochs, error) in curves.items():
        style = "--" if label.startswith("plain") else "-"
        ax.plot(epochs, 100 * np.asarray(error, dtype=float), style, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training error (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)


def training_error_curves(curves: Mapping[str, Curve], *, title: str = "") -> Figure:
    """Training error (a fraction, drawn in %) against epochs, one line per network; plain nets dashed (He et al.
    2016, figure 6)."""
    if not curves:
        raise DataError("no curves to draw")
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.subplots()
    _error_curves(ax, curves)
    ax.set_title(title, fontsize=10)
    return fig


def skip_connection_figure(curves: Mapping[str, Curve], surfaces: Mapping[str, np.ndarray], x: Sequence[float],
                           y: Sequence[float], bars: Mapping[str, Mapping[str, float]], *,
                           levels: int | Sequence[float] = 20, title: str = "") -> Figure:
    """The skip-connection experiment on one page: (a) training-error curves, (b) the landscapes side by side on
    the same levels, (c) the smoothness numbers (``bars``: measure -> network -> value)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    fig = Figure(figsize=(5.2 * max(len(surfaces), 2), 9.4), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 1.1])
    upper = top.subplots(1, 2)
    _error_curves(upper[0], curves)
    upper[0].set_title("(a) training error", fontsize=10)
    _bars(upper[1], bars)
    upper[1].set_title("(c) smoothness at this budget", fontsize=10)
    shared = _levels(list(surfaces.values()), levels)
    lower = bottom.subplots(1, len(surfaces), squeeze=False)[0]
    for ax, (label, z) in zip(lower, surfaces.items()):
        _contour(ax, x, y, z, shared, f"(b) {label}")
        ax.set_xlabel("direction 1")
        ax.set_ylabel("direction 2")
    fig.suptitle(title)
    return fig


def _bars(ax: Axes, bars: Mapping[str, Mapping[str, float]]) -> None:
    measures = list(bars)
    networks = list(dict.fromkeys(n for m in measures for n in bars[m]))
    width = 0.8 / max(len(networks), 1)
    for k, network in enumerate(networks):
        heights = [bars[m].get(network, np.nan) for m in measures]
        drawn = ax.bar(np.arange(len(measures)) + k * width, heights, width, label=network)
        ax.bar_label(drawn, fmt="%.3g", fontsize=7)  # the measures differ in scale: say each value
    ax.set_xticks(np.arange(len(measures)) + width * (len(networks) - 1) / 2, measures, fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
