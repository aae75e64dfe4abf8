"""Figures of the notes' experiments (``cnnlab experiment``): sweeps, curves and variants, mean and spread over seeds.

Every function takes the numbers an experiment measured (accuracies as fractions, one value per seed)
and returns a ``Figure``; the spread drawn is the standard deviation over seeds, the same spread the
verdicts' rule uses, and each seed's own value is drawn as a faint dot.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure

from cnnlab.errors import DataError

__all__ = [
    "augmentation_figure",
    "batch_size_figure",
    "ensemble_figure",
    "fine_tuning_figure",
    "learning_rate_figure",
    "variants_figure",
]

Series = Mapping[Any, Sequence[float]]  # setting (x) -> one value per seed
_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    values = [float(v) for v in values]
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _check(data: Mapping, what: str) -> None:
    if not data:
        raise DataError(f"nothing to plot: no {what}")


def _sweep(ax, series: Mapping[str, Series], percent: bool = True, log_x: bool = False) -> None:
    """One line per label through the mean of each setting, error bars of one standard deviation, seed dots."""
    scale = 100 if percent else 1
    for color, (label, values) in zip(_COLORS * 4, series.items()):
        xs = sorted(values)
        stats = [_mean_std(values[x]) for x in xs]
        ax.errorbar(xs, [scale * m for m, _ in stats], yerr=[scale * s for _, s in stats], marker="o", capsize=3,
                    color=color, label=label)
        for x in xs:
            ax.scatter([x] * len(values[x]), [scale * v for v in values[x]], s=10, color=color, alpha=0.35,
                       linewidths=0)
    if log_x:
        ax.set_xscale("log", base=2)
        ticks = sorted({x for values in series.values() for x in values})
        ax.set_xticks(ticks, [f"{x:g}" for x in ticks])
        ax.minorticks_off()
    ax.grid(alpha=0.3)


def _chance_line(ax, chance: float | None) -> None:
    if chance:
        ax.axhline(100 * chance, color="0.6", linestyle=":", linewidth=1, label=f"chance ({100 * chance:.0f}%)")


def _mean_curve(runs: Sequence[Sequence[Mapping[str, Any]]], x: str, y: str) -> tuple[list[float], list[float]]:
    """The point-wise mean of ``y`` against ``x`` over seeds' curves (each point over the seeds that reached it)."""
    longest = max((len(r) for r in runs), default=0)
    xs, ys = [], []
    for i in range(longest):
        points = [run[i] for run in runs if i < len(run) and run[i].get(y) is not None]
        if points:
            xs.append(statistics.fmean(float(p[x]) for p in points))
            ys.append(statistics.fmean(float(p[y]) for p in points))
    return xs, ys


def learning_rate_figure(accuracy: Mapping[str, Series], curves: Mapping[str, Mapping[str, Sequence]],
                         chance: float | None = None, title: str = "") -> Figure:
    """Left: test accuracy against the learning rate per network. Right: training-loss curves (mean over
    seeds) per network and learning rate: ``curves[network][curve label] = [curve rows of each seed]``
    with rows holding ``epoch`` and ``loss``, as ``curve.jsonl`` does."""
    _check(accuracy, "accuracies")
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    _sweep(left, accuracy, log_x=True)
    _chance_line(left, chance)
    left.set_xlabel("Peak learning rate (log scale)")
    left.set_ylabel("Test accuracy (%)")
    left.legend(fontsize=8)
    for color, (network, by_lr) in zip(_COLORS, curves.items()):
        for style, (label, runs) in zip(("-", "--", ":"), by_lr.items()):
            xs, ys = _mean_curve(runs, "epoch", "loss")
            if xs:
                right.plot(xs, ys, style, color=color, label=f"{network}, {label}")
    right.set_xlabel("Epoch")
    right.set_ylabel("Training loss (cross-entropy,\nmean over each logging window)")
    right.grid(alpha=0.3)
    right.legend(fontsize=8)
    fig.suptitle(title)
    return fig


def batch_size_figure(accuracy: Mapping[str, Series], chance: float | None = None, title: str = "") -> Figure:
    """Test accuracy against the batch size (log scale, largest on the left) per normalization."""
    _check(accuracy, "accuracies")
    fig = Figure(figsize=(6.5, 4.2), layout="constrained")
    ax = fig.subplots()
    _sweep(ax, accuracy, log_x=True)
    _chance_line(ax, chance)
    ax.invert_xaxis()
    ax.set_xlabel("Batch size (log scale; learning rate scaled with it)")
    ax.set_ylabel("Test accuracy (%)")
    ax.legend(fontsize=8)
    fig.suptitle(title)
    return fig


def variants_figure(rows: Sequence[Mapping[str, Any]], title: str = "") -> Figure:
    """Network variants side by side: test accuracy (mean, spread, seeds), parameters and MACs per image.

    Each row holds ``label``, ``group`` (variants compared with each other share one), ``accuracy`` (one
    value per seed), ``params`` and ``macs``; a row's ``receptive_fields`` are written under its label.
    """
    if not rows:
        raise DataError("nothing to plot: no variants")
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    acc_ax, params_ax, macs_ax = fig.subplots(1, 3)
    positions, x = [], 0.0
    for i, row in enumerate(rows):
        if i and row["group"] != rows[i - 1]["group"]:
            x += 0.6  # a gap between groups of variants
        positions.append(x)
        x += 1
    labels = [row["label"] + (f"\nRF {row['receptive_fields'][-1]}" if row.get("receptive_fields") else "")
              for row in rows]
    colors = [_COLORS[int(row["group"]) % len(_COLORS)] for row in rows]
    stats = [_mean_std(row["accuracy"]) for row in rows]
    acc_ax.bar(positions, [100 * m for m, _ in stats], yerr=[100 * s for _, s in stats], capsize=4, color=colors,
               alpha=0.75)
    for pos, row in zip(positions, rows):
        acc_ax.scatter([pos] * len(row["accuracy"]), [100 * v for v in row["accuracy"]], s=12, color="k",
                       zorder=3)
    low = min(min(row["accuracy"]) for row in rows)
    acc_ax.set_ylim(max(0.0, 100 * low - 5), 100)
    acc_ax.set_ylabel("Test accuracy (%)")
    counts = ((params_ax, "params", 1e3, "Parameters (thousands)"), (macs_ax, "macs", 1e6, "MACs per image (millions)"))
    for ax, key, scale, name in counts:
        ax.bar(positions, [row[key] / scale for row in rows], color=colors, alpha=0.75)
        ax.set_ylabel(name)
    for ax in (acc_ax, params_ax, macs_ax):
        ax.set_xticks(positions, labels, fontsize=8, rotation=20)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title)
    return fig


def ensemble_figure(error_by_k: Series, best_member: Sequence[float], mean_member: Sequence[float],
                    title: str = "") -> Figure:
    """Test error of the softmax-averaged ensemble against its size k, with the best and the mean member."""
    _check(error_by_k, "ensemble errors")
    fig = Figure(figsize=(6.5, 4.2), layout="constrained")
    ax = fig.subplots()
    _sweep(ax, {"ensemble of k (mean over subsets)": error_by_k})
    for values, label, style in ((best_member, "best member (chosen on validation)", "--"),
                                 (mean_member, "mean member", ":")):
        if values:
            mean, spread = _mean_std(values)
            ax.axhline(100 * mean, color="0.3", linestyle=style, label=f"{label}: {100 * mean:.2f}%")
            if spread:
                ax.axhspan(100 * (mean - spread), 100 * (mean + spread), color="0.5", alpha=0.12)
    ks = sorted(error_by_k)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("Networks in the ensemble (k)")
    ax.set_ylabel("Test error (%)")
    ax.legend(fontsize=8)
    fig.suptitle(title)
    return fig


def fine_tuning_figure(accuracy: Mapping[str, Series], chance: float | None = None, title: str = "") -> Figure:
    """Test accuracy against the share of labels used, per way of training (scratch, fine-tuned, frozen)."""
    _check(accuracy, "accuracies")
    fig = Figure(figsize=(6.5, 4.2), layout="constrained")
    ax = fig.subplots()
    _sweep(ax, {label: {100 * f: v for f, v in series.items()} for label, series in accuracy.items()})
    _chance_line(ax, chance)
    ax.set_xscale("log")
    shares = sorted({100 * f for series in accuracy.values() for f in series})
    ax.set_xticks(shares, [f"{s:g}%" for s in shares])
    ax.minorticks_off()
    ax.set_xlabel("Labelled training images of the new classes used (log scale)")
    ax.set_ylabel("Test accuracy on the new classes (%)")
    ax.legend(fontsize=8)
    fig.suptitle(title)
    return fig


def augmentation_figure(histories: Mapping[str, Sequence[Sequence[Mapping[str, Any]]]],
                        test_accuracy: Mapping[str, Sequence[float]], train_accuracy: Mapping[str, Sequence[float]],
                        title: str = "") -> Figure:
    """Left: training and validation error per epoch (mean over seeds) with and without augmentation.
    Right: the kept weights' error on the un-augmented training images and on the test set."""
    _check(histories, "training histories")
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    for color, (label, runs) in zip(_COLORS, histories.items()):
        for key, style, what in (("train_accuracy", "--", "training (as trained)"),
                                 ("val_accuracy", "-", "validation")):
            xs, ys = _mean_curve(runs, "epoch", key)
            if xs:
                left.plot(xs, [100 * (1 - y) for y in ys], style, color=color, label=f"{label}: {what}")
    left.set_xlabel("Epoch")
    left.set_ylabel("Error (%)")
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    labels = list(test_accuracy)
    width = 0.38
    for offset, (values, what) in zip((-width / 2, width / 2), ((train_accuracy, "training images, un-augmented"),
                                                                 (test_accuracy, "test set"))):
        stats = [_mean_std([1 - v for v in values[label]]) for label in labels]
        right.bar([i + offset for i in range(len(labels))], [100 * m for m, _ in stats],
                  yerr=[100 * s for _, s in stats], width=width, capsize=4, label=what, alpha=0.8)
    right.set_xticks(range(len(labels)), labels)
    right.set_ylabel("Error of the kept weights (%)")
    right.grid(axis="y", alpha=0.3)
    right.legend(fontsize=8)
    fig.suptitle(title)
    return fig
