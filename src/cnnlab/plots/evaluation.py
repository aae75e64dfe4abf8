"""Evaluation figures: the confusion matrix of a classifier beside its per-class accuracy.

The data are what ``cnnlab.train.evaluate_checkpoint`` returns: ``confusion`` (counts, rows are the true
classes, columns the predicted ones) and the class names.
"""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.figure import Figure

from cnnlab.errors import DataError

__all__ = ["confusion_matrix"]


def _row_shares(matrix: Sequence[Sequence[int]]) -> list[list[float]]:
    """Each row as percentages of its true class (a row of zeros stays zeros)."""
    return [[100 * v / max(sum(row), 1) for v in row] for row in matrix]


def confusion_matrix(matrix: Sequence[Sequence[int]], classes: Sequence[str], *, title: str = "") -> Figure:
    """Confusion matrix as a heat map of row percentages (counts written in), and per-class accuracy beside it.

    Rows are the true classes and columns the predicted ones, so a row reads "images of this class were
    taken for ...": the diagonal is each class's accuracy, drawn again as bars on the right.
    """
    k = len(classes)
    if k == 0 or len(matrix) != k or any(len(row) != k for row in matrix):
        raise DataError(f"a confusion matrix needs {k} rows of {k} counts, one per class")
    shares = _row_shares(matrix)
    side = min(max(4.5, 0.55 * k + 2.5), 14)
    fig = Figure(figsize=(side + 3.0, side), layout="constrained")
    grid = fig.add_gridspec(1, 2, width_ratios=(side, 2.2))
    heat = fig.add_subplot(grid[0, 0])
    bars = fig.add_subplot(grid[0, 1], sharey=heat)
    image = heat.imshow(shares, cmap="Blues", vmin=0, vmax=100, aspect="equal")
    if k <= 20:  # counts stay legible up to about 20 classes
        for i, row in enumerate(matrix):
            for j, count in enumerate(row):
                dark = shares[i][j] > 55
                heat.text(j, i, str(count), ha="center", va="center", fontsize=7 if k > 10 else 8,
                          color="white" if dark else "black")
    ticks = list(range(k))
    heat.set_xticks(ticks, [str(c) for c in classes], rotation=45, ha="right", rotation_mode="anchor", fontsize=8)
    heat.set_yticks(ticks, [str(c) for c in classes], fontsize=8)
    heat.set_xlabel("Predicted class")
    heat.set_ylabel("True class")
    fig.colorbar(image, ax=heat, shrink=0.6, label="% of the true class")
    accuracy = [shares[i][i] for i in range(k)]
    bars.barh(ticks, accuracy, color="tab:blue", alpha=0.8)
    for i, value in enumerate(accuracy):
        inside = value > 20  # a short bar has its number beside it
        bars.text(value - 2 if inside else value + 2, i, f"{value:.1f}", ha="right" if inside else "left",
                  va="center", fontsize=7, color="white" if inside else "black")
    bars.set_xlim(0, 100)
    bars.set_xlabel("Accuracy (%)")
    bars.tick_params(labelleft=False)
    bars.set_title("accuracy per class", fontsize=9)
    bars.grid(True, axis="x", alpha=0.3)
    total = sum(sum(row) for row in matrix)
    correct = sum(matrix[i][i] for i in range(k))
    heading = f"Confusion matrix: {100 * correct / max(total, 1):.2f}% of {total:,} images correct"
    fig.suptitle(f"{title}\n{heading}" if title else heading)
    return fig
