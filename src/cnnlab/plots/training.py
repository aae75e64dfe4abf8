"""Training figures: one run's loss, accuracy and learning rate against epochs.

The data are the rows a run directory holds: ``curve.jsonl`` (training loss, accuracy and learning rate
every ``--log-every`` steps, ``epoch`` fractional) and ``metrics.jsonl`` (per epoch: ``train_loss``,
``train_accuracy``, ``val_loss``, ``val_accuracy``, ``lr``; accuracies as fractions).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure

from cnnlab.errors import DataError

__all__ = ["run_curves"]

Row = Mapping[str, Any]
_TRAIN, _VAL = "tab:blue", "tab:orange"


def _series(rows: Sequence[Row], x: str, y: str, scale: float = 1.0) -> tuple[list[float], list[float]]:
    pairs = [(float(r[x]), scale * float(r[y])) for r in rows if r.get(x) is not None and r.get(y) is not None]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _panel(ax, curve: Sequence[Row], history: Sequence[Row], key: str, scale: float, label: str) -> None:
    """Training values every logging window (thin line), per epoch (dots), and validation per epoch."""
    xs, ys = _series(curve, "epoch", key, scale)
    if xs:
        ax.plot(xs, ys, color=_TRAIN, alpha=0.45, linewidth=1, label="training (every logging window)")
    xs, ys = _series(history, "epoch", f"train_{key}", scale)
    if xs:  # a mean over the epoch belongs to its middle, where the windows it averages lie
        ax.plot([x - 0.5 for x in xs], ys, color=_TRAIN, marker="o", linestyle="none" if curve else "-",
                label="training (epoch mean, at mid-epoch)")
    xs, ys = _series(history, "epoch", f"val_{key}", scale)
    if xs:
        ax.plot(xs, ys, color=_VAL, marker="s", label="validation (end of epoch)")
    ax.set_xlabel("Epoch")
    ax.set_ylabel(label)
    ax.grid(True, alpha=0.3)


def run_curves(history: Sequence[Row], curve: Sequence[Row] = (), *, title: str = "",
               label_smoothing: float = 0.0) -> Figure:
    """Loss, accuracy and learning rate of one run against epochs, in three panels with one shared legend.

    With ``label_smoothing`` the loss panel says that the training loss was computed against smoothed
    targets (so it sits above the validation loss, which is not).
    """
    if not history and not curve:
        raise DataError("the run has no metrics to plot yet")
    fig = Figure(figsize=(15, 4.6), layout="constrained")
    loss, accuracy, lr = fig.subplots(1, 3)
    _panel(loss, curve, history, "loss", 1.0, "Loss (cross-entropy)")
    _panel(accuracy, curve, history, "accuracy", 100.0, "Accuracy (%)")
    xs, ys = _series(curve, "epoch", "lr")
    if not xs:  # runs written before curve.jsonl held the rate: the rate at each epoch's end
        xs, ys = _series(history, "epoch", "lr")
    lr.plot(xs, ys, color="tab:green", marker="" if len(xs) > 20 else "o")
    lr.set_xlabel("Epoch")
    lr.set_ylabel("Learning rate")
    lr.grid(True, alpha=0.3)
    lr.set_ylim(bottom=0)
    for ax in (loss, accuracy, lr):
        ax.set_xlim(left=0)
    handles, labels = accuracy.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=len(handles), frameon=False)
    loss.set_title(f"loss (training: label smoothing {label_smoothing:g})" if label_smoothing else "loss")
    accuracy.set_title("accuracy")
    lr.set_title("learning rate")
    if title:
        fig.suptitle(title)
    return fig
