"""What a run prints: notes on stderr, a progress bar per epoch, one line per epoch and the final result.

Only the main process prints (``enabled``); the files in the run directory are the record, this is the view.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tqdm import tqdm

from cnnlab.train.state import TrainState

__all__ = ["ProgressBar", "clock", "confusion_text", "epoch_line", "eval_bar", "notice", "print_epoch", "print_result"]

# Beyond this many classes the matrix is too wide for a terminal: only the per-class lines are printed.
_MATRIX_COLUMNS = 20


def notice(message: str, enabled: bool = True) -> None:
    """A one-line note to the user on stderr, on a line of its own above any progress bar."""
    if enabled:
        tqdm.write(f"note: {message}", file=sys.stderr)
        sys.stderr.flush()


def clock(seconds: float) -> str:
    """``seconds`` as H:MM:SS."""
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def eval_bar(batches: int, what: str, enabled: bool) -> tqdm:
    """The bar of an evaluation pass (validation, the final test, ``cnnlab eval``): batches done of ``batches``."""
    return tqdm(total=batches, desc=what, unit="batch", disable=not enabled, leave=False, dynamic_ncols=True,
                file=sys.stderr)


class ProgressBar:
    """The bar of one epoch's steps: the planned schedule, the epoch's loss, accuracy and speed, and the ETA.

    The bar's length is the steps this epoch runs under the plan, so a time budget that ends the schedule
    mid-epoch ends the bar at 100%. The ETA is the plan's, and never beyond what is left of the budget.
    """

    def __init__(self, state: TrainState, steps_per_epoch: int, enabled: bool, budget: float | None = None) -> None:
        self.steps = steps_per_epoch
        self.budget = budget
        self._bar = tqdm(
            total=self._epoch_steps(state),
            initial=state.step_in_epoch,
            desc=self._describe(state),
            unit="step",
            disable=not enabled,
            leave=False,
            dynamic_ncols=True,
            file=sys.stderr,
        )

    def _epoch_steps(self, state: TrainState) -> int:
        planned_here = state.planned_steps(self.steps) - state.epoch * self.steps
        return max(min(self.steps, planned_here), state.step_in_epoch, 1)

    def _describe(self, state: TrainState) -> str:
        """``epoch 1/5``; ``epoch 1/2.35`` once a budget cut the schedule; ``epoch 1/≤5`` while it is being timed."""
        planned = state.planned_steps(self.steps) / self.steps
        shown = f"{planned:g}" if planned.is_integer() else f"{planned:.2f}"
        timing = self.budget is not None and not state.replanned
        return f"epoch {state.epoch + 1}/{'≤' if timing else ''}{shown}"

    def eta(self, state: TrainState) -> float:
        """Seconds left: the planned steps at this epoch's pace, capped by what is left of the budget."""
        done_steps = state.epoch * self.steps + state.step_in_epoch
        left_steps = max(state.planned_steps(self.steps) - done_steps, 0)
        seconds = left_steps * state.partial.seconds / max(state.step_in_epoch, 1)
        if self.budget is not None:
            seconds = min(seconds, max(self.budget - state.wall_seconds, 0.0))
        return seconds

    def update(self, state: TrainState, lr: float) -> None:
        """Show where ``state`` is (called at syncs, when the totals are current)."""
        if self._bar.disable:
            return
        totals = state.partial
        budget = f" of {self.budget:g} s" if self.budget is not None else ""
        self._bar.set_postfix_str(
            f"loss {totals.loss:.4f} acc {100 * totals.accuracy:.2f}% "
            f"{totals.images_per_second:,.0f} img/s lr {lr:.3g} ETA {clock(self.eta(state))}{budget}",
            refresh=False,
        )
        self._bar.total = self._epoch_steps(state)  # a budget may have replanned
        self._bar.n = state.step_in_epoch
        self._bar.set_description(self._describe(state), refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()


def epoch_line(row: dict, epochs: int) -> str:
    """One epoch's metrics row as the line printed after it."""
    val = (
        f"  val loss {row['val_loss']:.4f} acc {100 * row['val_accuracy']:.2f}%"
        if row["val_accuracy"] is not None
        else ""
    )
    if row.get("val_miou") is not None:  # segmentation: accuracy is pixel accuracy; mIoU selects the weights
        val += f" mIoU {100 * row['val_miou']:.2f}%"
    return (
        f"epoch {row['epoch']}/{epochs}  train loss {row['train_loss']:.4f} acc "
        f"{100 * row['train_accuracy']:.2f}%{val}  lr {row['lr']:.3g}  "
        f"{row['images_per_second']:,.0f} img/s  {row['epoch_seconds']:.1f} s"
    )


def print_epoch(row: dict, epochs: int, enabled: bool = True) -> None:
    if enabled:
        print(epoch_line(row, epochs), flush=True)


def print_result(results: dict, results_file: Path, enabled: bool = True) -> None:
    """The run's last line: test accuracy, which weights, speed, and where the results are."""
    if enabled:
        if results["test_accuracy"] is None:
            accuracy = "not tested (--no-test)"
        elif "test_miou" in results:  # segmentation
            accuracy = (f"test mIoU {100 * results['test_miou']:.2f}%, "
                        f"pixel accuracy {100 * results['test_accuracy']:.2f}%")
        else:
            accuracy = f"test accuracy {100 * results['test_accuracy']:.2f}%"
        print(
            f"{accuracy} ({results['selected']}); "
            f"{results['images_per_second']:,.0f} img/s; results in {results_file}",
            flush=True,
        )


def confusion_text(classes: list[str], matrix: list[list[int]]) -> str:
    """The confusion matrix (rows: true class; columns: predicted class, by index), each class's accuracy and
    the class it is most often taken for."""
    k = len(classes)
    names = [f"{i} {name}" for i, name in enumerate(classes)]
    name_width = max(len(n) for n in names)
    cell = max(len(str(v)) for row in matrix for v in [*row, k - 1])
    show = k <= _MATRIX_COLUMNS
    columns = " ".join(str(j).rjust(cell) for j in range(k)) + "  " if show else ""
    lines = [
        "rows: true class; columns: predicted class (by index)" if show else "per class",
        f"{'':{name_width}}  {columns}accuracy  most often taken for",
    ]
    for i, row in enumerate(matrix):
        total = max(sum(row), 1)
        count, j = max(((v, j) for j, v in enumerate(row) if j != i), default=(0, i))
        confused = f"{classes[j]} ({100 * count / total:.1f}%)" if count else "-"
        cells = " ".join(str(v).rjust(cell) for v in row) + "  " if show else ""
        lines.append(f"{names[i]:{name_width}}  {cells}{100 * row[i] / total:7.1f}%  {confused}")
    return "\n".join(lines)
