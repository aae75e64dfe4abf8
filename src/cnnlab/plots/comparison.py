"""Comparison figures: accuracy against operations (bubbles sized by parameters), against time, and curves.

The data are the rows cnnlab already produces: training results (``cnnlab.train``'s ``results.json``:
``model``, ``test_accuracy`` as a fraction, ``params``, ``macs``, ``train_seconds``), comparison rows
(``cnnlab.analysis.compare``), torchvision's reference rows (same keys) and per-epoch histories (rows with
``epoch``, ``val_accuracy``, ``wall_seconds``, ...).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure

from cnnlab.errors import DataError

__all__ = ["accuracy_vs_time", "complexity_chart", "learning_curves"]

Row = Mapping[str, Any]

# Largest bubble, in points^2 (matplotlib's scatter sizes are areas).
_MAX_BUBBLE = 1600.0
_USER_COLOR = "tab:blue"
_REFERENCE_COLOR = "0.55"
_AXIS_LABELS = {
    "macs": "Multiply-accumulates per image (MACs, log scale)",
    "flops": "FLOPs per image (log scale)",
    "params": "Parameters (log scale)",
    "train_seconds": "Training time (s, training steps only)",
    "wall_seconds": "Training time (s, wall clock)",
    "epoch": "Epoch",
    "step": "Optimizer step",
    "test_accuracy": "Test accuracy (%)",
    "val_accuracy": "Validation accuracy (%)",
    "train_accuracy": "Training accuracy (%)",
    "train_loss": "Training loss (cross-entropy)",
    "val_loss": "Validation loss (cross-entropy)",
    "images": "Training images seen",
    "loss": "Training loss (cross-entropy, mean over each logging window)",
    "accuracy": "Training accuracy (%, each logging window)",
}


def _title(what: str, dataset: str, budget: str) -> str:
    return f"{dataset}: {what}" + (f" ({budget})" if budget else "")


def _is_fraction(key: str) -> bool:
    return key.endswith("accuracy")


def _value(row: Row, key: str) -> float | None:
    value = row.get(key)
    if value is None:
        return None
    return 100 * float(value) if _is_fraction(key) else float(value)


def _points(rows: Sequence[Row], x: str, y: str) -> list[tuple[Row, float, float]]:
    points = []
    for row in rows:
        vx, vy = _value(row, x), _value(row, y)
        if vx is not None and vy is not None:
            points.append((row, vx, vy))
    return points


def _bubble_scale(rows: Sequence[Row], size: str) -> float:
    largest = max((float(r[size]) for r in rows if r.get(size)), default=1.0)
    return _MAX_BUBBLE / largest


def _round_count(value: float) -> str:
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if value >= factor:
            return f"{value / factor:g}{suffix}"
    return f"{value:g}"


def _size_legend(ax, scale: float, largest: float, color: str) -> None:
    # Reference bubbles of round parameter counts (1M, 10M, 100M ...) up to the largest network.
    top = 10 ** math.floor(math.log10(largest)) if largest > 0 else 1
    for value in (top / 100, top / 10, top):
        if value * scale >= 4:
            ax.scatter([], [], s=value * scale, color=color, alpha=0.35, edgecolors="black", linewidths=0.5,
                       label=f"{_round_count(value)} parameters")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, labelspacing=1.6, borderpad=1.0,
              title="bubble area", title_fontsize=8, frameon=False)


def _place_labels(fig: Figure, ax, labels: list[tuple[str, float, float]], style: dict, always: bool) -> None:
    """Write labels beside their points; unless ``always``, skip any that would cover one already written."""
    ax.autoscale_view()
    to_pixels = ax.transData.transform
    taken: list[tuple[float, float, float, float]] = []
    height = style.get("fontsize", 8) * fig.dpi / 72
    for text, x, y in labels:
        px, py = to_pixels((x, y))
        box = (px + 4, py + 4, px + 4 + 0.62 * height * len(text), py + 4 + 1.2 * height)
        if not always and any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in taken):
            continue
        taken.append(box)
        ax.annotate(text, (x, y), xytext=(4, 4), textcoords="offset points", **style)


def _bubbles(fig: Figure, ax, points: list[tuple[Row, float, float]], size: str, scale: float, color: str,
             style: dict, always_label: bool) -> None:
    ax.scatter([p[1] for p in points], [p[2] for p in points],
               s=[max(float(p[0].get(size) or 0) * scale, 4.0) for p in points],
               color=color, alpha=0.45, edgecolors="black", linewidths=0.6, zorder=3)
    ax.set_xscale("log")
    ax.grid(True, which="both", alpha=0.3)
    # bigger networks first: their names matter most when space runs out
    ordered = sorted(points, key=lambda p: -float(p[0].get(size) or 0))
    _place_labels(fig, ax, [(str(r.get("model", "")), vx, vy) for r, vx, vy in ordered], style, always_label)


def complexity_chart(results: Sequence[Row], *, dataset: str, budget: str = "",
                     reference: Sequence[Row] = (), reference_title: str = "ImageNet-1K, torchvision's published "
                                                                           "weights",
                     x: str = "macs", y: str = "test_accuracy", size: str = "params") -> Figure:
    """Accuracy against operations per image, bubble area proportional to parameters, names beside bubbles.

    ``results`` are rows with ``model``, ``x``, ``y`` (accuracy as a fraction, drawn in percent) and
    ``size``; the title names ``dataset`` and the training ``budget`` (e.g. "10 min on 2 CPU cores").
    ``reference`` rows (``cnnlab.analysis.compare.reference_rows``) get a panel of their own beside
    the results, with the same bubble scale: their accuracies are on another data set. Reference names
    that would cover another label are left out.
    """
    user = _points(results, x, y)
    ref = _points(reference, x, y)
    if not user and not ref:
        raise DataError(f"no row has both {x!r} and {y!r} to plot")
    panels = [p for p in ((user, _USER_COLOR, True), (ref, _REFERENCE_COLOR, False)) if p[0]]
    fig = Figure(figsize=(7.5 * len(panels) + 1.5, 6), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    everything = [p[0] for panel in panels for p in panel[0]]
    scale = _bubble_scale(everything, size)
    for ax, (points, color, mine) in zip(axes, panels):
        style = {"fontsize": 9, "fontweight": "bold"} if mine else {"fontsize": 7, "color": "0.3"}
        _bubbles(fig, ax, points, size, scale, color, style, always_label=mine)
        ax.set_xlabel(_AXIS_LABELS.get(x, x))
        ax.set_ylabel(_AXIS_LABELS.get(y, y))
        ax.set_title(_title("accuracy vs. operations", dataset, budget) if mine else reference_title)
    largest = max(float(r.get(size) or 0) for r in everything)
    _size_legend(axes[-1], scale, largest, panels[-1][1])
    if len(panels) > 1:
        fig.suptitle("Model complexity comparison: accuracy, operations and parameters per network")
    return fig


def accuracy_vs_time(results: Sequence[Row], *, dataset: str, budget: str = "", x: str = "train_seconds",
                     y: str = "test_accuracy") -> Figure:
    """Accuracy against training time, one labelled point per network."""
    points = _points(results, x, y)
    if not points:
        raise DataError(f"no result has both {x!r} and {y!r} to plot")
    fig = Figure(figsize=(7.5, 5), layout="constrained")
    ax = fig.add_subplot()
    ax.scatter([p[1] for p in points], [p[2] for p in points], color=_USER_COLOR, edgecolors="black",
               linewidths=0.6, zorder=3, label="one training run")
    for row, vx, vy in points:
        ax.annotate(str(row.get("model", "")), (vx, vy), xytext=(4, 4), textcoords="offset points", fontsize=8)
    ax.set_xlabel(_AXIS_LABELS.get(x, x))
    ax.set_ylabel(_AXIS_LABELS.get(y, y))
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(_title("accuracy vs. training time", dataset, budget))
    return fig


def learning_curves(histories: Mapping[str, Sequence[Row]], *, dataset: str, budget: str = "",
                    metrics: Sequence[str] = ("val_accuracy", "train_loss"), x: str = "epoch") -> Figure:
    """Learning curves of several runs on shared axes: one panel per metric, one line per run.

    ``histories`` maps a run's label (the network) to its per-epoch rows, as ``metrics.jsonl`` holds them.
    """
    if not histories:
        raise DataError("no runs to plot")
    fig = Figure(figsize=(6 * len(metrics), 4.5), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        for label, rows in histories.items():
            points = _points(rows, x, metric)
            if points:
                ax.plot([p[1] for p in points], [p[2] for p in points], marker="o", markersize=3, label=label)
        ax.set_xlabel(_AXIS_LABELS.get(x, x))
        ax.set_ylabel(_AXIS_LABELS.get(metric, metric))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(_title("learning curves", dataset, budget))
    return fig
