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
from matplotlib.lines import Line2D

from cnnlab.errors import DataError
from cnnlab.plots._labels import Point, fit_limits, place_labels

__all__ = ["accuracy_vs_time", "complexity_chart", "family_of", "learning_curves"]

Row = Mapping[str, Any]

# Largest bubble, in points^2 (matplotlib's scatter sizes are areas).
_MAX_BUBBLE = 1600.0
_USER_COLOR = "tab:blue"
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


def _title(what: str, dataset: str, budget: str, wrap: bool = False) -> str:
    """'Fashion-MNIST: accuracy vs. time (budget)'; with ``wrap`` the budget goes on a second line."""
    if not budget:
        return f"{dataset}: {what}"
    return f"{dataset}: {what}\n{budget}" if wrap else f"{dataset}: {what} ({budget})"


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
    """1e6 -> '1M', 6624904 -> '6.6M' (two significant digits)."""
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if value >= factor:
            return f"{float(f'{value / factor:.2g}'):g}{suffix}"
    return f"{value:g}"


def _size_legend(ax, scale: float, largest: float, color: str, notes: Sequence[str] = ()) -> None:
    """Reference bubbles of round parameter counts (1M, 10M, 100M ...) up to the largest network, and notes."""
    top = 10 ** math.floor(math.log10(1.5 * largest)) if largest > 0 else 1  # 9.95M: up to 10M, 645M: 100M
    handles = []
    for value in (top / 100, top / 10, top):
        if value * scale >= 4:
            handles.append(Line2D([], [], linestyle="none", marker="o", markersize=math.sqrt(value * scale),
                                  markerfacecolor=color, alpha=0.35, markeredgecolor="black",
                                  markeredgewidth=0.5, label=f"{_round_count(value)} parameters"))
    handles += [Line2D([], [], linestyle="none", label=note) for note in notes]
    biggest = math.sqrt(top * scale)  # points: entries are spaced so that the bubbles do not touch
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8,
              labelspacing=max(1.6, 0.9 * biggest / 8), borderpad=1.0, title="bubble area", title_fontsize=8,
              frameon=False, handletextpad=1.2, handlelength=max(2.0, biggest / 8))


# Families of torchvision's ImageNet networks, by name prefix (longest first where prefixes nest).
_FAMILIES = (
    ("alexnet", "AlexNet"), ("vgg", "VGG"), ("googlenet", "GoogLeNet, Inception"),
    ("inception", "GoogLeNet, Inception"), ("wide_resnet", "Wide ResNet"), ("resnext", "ResNeXt"),
    ("resnet", "ResNet"), ("densenet", "DenseNet"), ("squeezenet", "SqueezeNet"), ("regnet", "RegNet"),
    ("mobilenet", "MobileNet"), ("mnasnet", "MnasNet"), ("shufflenet", "ShuffleNet"),
    ("efficientnet", "EfficientNet"), ("convnext", "ConvNeXt"), ("maxvit", "MaxViT"), ("swin", "Swin"),
    ("vit", "ViT"),
)
# The 2-parameter-count story of GoogLeNet: torchvision publishes the network used at inference; the
# auxiliary classifiers that help training add 6.38M (torchvision.models.googlenet(aux_logits=True)
# has 13,004,888 parameters, as cnnlab's googlenet does: tests/golden/counts.json).
_GOOGLENET_AUX_PARAMS = 13_004_888
_OPTIONS_NOTE = "* built with options changed\n   from the paper's network\n   (the table lists them)"


def family_of(row: Row) -> str:
    """A row's network family: its ``family`` key, else read from a torchvision-style name."""
    if row.get("family"):
        return str(row["family"])
    name = str(row.get("model", "")).lower()
    return next((label for prefix, label in _FAMILIES if name.startswith(prefix)), "other")


def _family_colors(rows: Sequence[Row]) -> dict[str, Any]:
    """One colour per family, in order of appearance (tab20: distinct up to 20 families)."""
    import matplotlib

    palette = matplotlib.colormaps["tab20"].colors
    families = list(dict.fromkeys(family_of(r) for r in rows))
    return {family: palette[(2 * i) % 20 + (2 * i) // 20] for i, family in enumerate(families)}


def _radius(row: Row, size: str, scale: float) -> float:
    """A bubble's radius in points from its area in points^2."""
    return math.sqrt(max(float(row.get(size) or 0) * scale, 4.0)) / 2


def _bubbles(ax, points: list[tuple[Row, float, float]], size: str, scale: float, colors: Sequence[Any]) -> None:
    ax.scatter([p[1] for p in points], [p[2] for p in points],
               s=[max(float(p[0].get(size) or 0) * scale, 4.0) for p in points],
               c=list(colors), alpha=0.45, edgecolors="black", linewidths=0.6, zorder=3)
    ax.set_xscale("log")
    ax.grid(True, which="both", alpha=0.3)


def _label_text(row: Row) -> str:
    name = str(row.get("model", ""))
    return name + "†" if name == "googlenet" and row.get("weights") else name


def _label_points(fig: Figure, panels: Sequence[tuple[Any, list[tuple[Row, float, float]], dict]], size: str,
                  scale: float) -> None:
    """Fit each panel's limits to its whole bubbles, then name every bubble, biggest first."""
    for ax, points, _ in panels:
        fit_limits(fig, ax, [Point(x, y, _radius(r, size, scale), "") for r, x, y in points])
    for ax, points, style in panels:
        ordered = sorted(points, key=lambda p: -float(p[0].get(size) or 0))
        place_labels(fig, ax, [Point(x, y, _radius(r, size, scale), _label_text(r)) for r, x, y in ordered], style)


def complexity_chart(results: Sequence[Row], *, dataset: str, budget: str = "",
                     reference: Sequence[Row] = (), reference_title: str = "ImageNet-1K, torchvision's published "
                                                                           "weights",
                     x: str = "macs", y: str = "test_accuracy", size: str = "params") -> Figure:
    """Accuracy against operations per image, bubble area proportional to parameters, names beside bubbles.

    ``results`` are rows with ``model``, ``x``, ``y`` (accuracy as a fraction, drawn in percent) and
    ``size``; the title names ``dataset`` and the training ``budget`` (e.g. "10 min on 2 CPU cores").
    ``reference`` rows (``cnnlab.analysis.compare.reference_rows``) get a panel of their own beside the
    results, on the same bubble scale (their accuracies are on another data set), coloured by family.
    Every bubble is named, placed clear of the others' names; a name ending in ``*`` is a network built
    with changed options, and the legend says so.
    """
    user = _points(results, x, y)
    ref = _points(reference, x, y)
    if not user and not ref:
        raise DataError(f"no row has both {x!r} and {y!r} to plot")
    panels = [p for p in ((user, True), (ref, False)) if p[0]]
    widths = [7.5 if mine else 12.5 for _, mine in panels]
    fig = Figure(figsize=(sum(widths) + 2.4, 8.5 if ref else 6), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False, width_ratios=widths)[0]
    everything = [p[0] for panel, _ in panels for p in panel]
    scale = _bubble_scale(everything, size)
    family_colors = _family_colors([r for r, _, _ in ref])
    labelled = []
    for ax, (points, mine) in zip(axes, panels):
        if mine:
            _bubbles(ax, points, size, scale, [_USER_COLOR] * len(points))
            ax.set_ylabel(_AXIS_LABELS.get(y, y))
            ax.set_title(_title("accuracy vs. operations", dataset, budget, wrap=True))
            style = {"fontsize": 8.5, "fontweight": "bold"}
        else:
            _bubbles(ax, points, size, scale, [family_colors[family_of(r)] for r, _, _ in points])
            ax.set_ylabel("ImageNet top-1 (val) accuracy (%)" if y == "test_accuracy" else _AXIS_LABELS.get(y, y))
            ax.set_title(reference_title)
            style = {"fontsize": 6.5, "color": "0.15"}
            _family_legend(fig, family_colors)
        ax.set_xlabel(_AXIS_LABELS.get(x, x))
        labelled.append((ax, points, style))
    notes = []
    if any(str(r.get("model", "")).endswith("*") for r, _, _ in user):
        notes.append(_OPTIONS_NOTE)
    googlenet = next((r for r, _, _ in ref if r.get("model") == "googlenet" and r.get("weights")), None)
    if googlenet is not None:
        notes.append(f"† googlenet: {float(googlenet[size]) / 1e6:.1f}M parameters at\n   inference; "
                     f"{_GOOGLENET_AUX_PARAMS / 1e6:.1f}M with the two\n   auxiliary classifiers of training")
    largest = max(float(r.get(size) or 0) for r in everything)
    _size_legend(axes[-1], scale, largest, _USER_COLOR if not ref else "0.6", notes)
    if len(panels) > 1:
        fig.suptitle("Model complexity comparison: accuracy, operations and parameters per network")
    _label_points(fig, labelled, size, scale)
    return fig


def _family_legend(fig: Figure, colors: Mapping[str, Any]) -> None:
    """The families' colours, in a legend under the panels (the size legend sits to the right)."""
    handles = [Line2D([], [], linestyle="none", marker="o", markersize=7, markerfacecolor=color, alpha=0.6,
                      markeredgecolor="black", markeredgewidth=0.5, label=family) for family, color in colors.items()]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 9), fontsize=8,
               frameon=False, title="network family (colour)", title_fontsize=8)


def accuracy_vs_time(results: Sequence[Row], *, dataset: str, budget: str = "", x: str = "train_seconds",
                     y: str = "test_accuracy") -> Figure:
    """Accuracy against training time, one named point per network (names clear of each other)."""
    points = _points(results, x, y)
    if not points:
        raise DataError(f"no result has both {x!r} and {y!r} to plot")
    fig = Figure(figsize=(8, 5.5), layout="constrained")
    ax = fig.add_subplot()
    ax.scatter([p[1] for p in points], [p[2] for p in points], color=_USER_COLOR, edgecolors="black",
               linewidths=0.6, zorder=3)
    ax.set_xlabel(_AXIS_LABELS.get(x, x))
    ax.set_ylabel(_AXIS_LABELS.get(y, y))
    ax.grid(True, alpha=0.3)
    ax.set_title(_title("accuracy vs. training time", dataset, budget, wrap=True))
    if any(str(r.get("model", "")).endswith("*") for r, _, _ in points):
        fig.legend(handles=[Line2D([], [], linestyle="none", label=_OPTIONS_NOTE.replace("\n  ", ""))],
                   loc="outside lower center", frameon=False, fontsize=8)
    dots = [Point(vx, vy, 3.5, str(r.get("model", ""))) for r, vx, vy in points]
    fit_limits(fig, ax, dots)
    place_labels(fig, ax, dots, {"fontsize": 8.5})
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
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:  # one legend for all panels, beside them: it never covers a curve
        fig.legend(handles, labels, loc="outside right upper", fontsize=8, frameon=False)
    fig.suptitle(_title("learning curves", dataset, budget))
    return fig
