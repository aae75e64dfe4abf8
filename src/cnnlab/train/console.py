"""What a run prints: notes on stderr, a progress bar per epoch, one line per epoch and the final result.

Only the main process prints (``enabled``); the files in the run directory are the record, this is the view.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tqdm import tqdm

from cnnlab.train.state import TrainState

__all__ = ["ProgressBar", "clock", "epoch_line", "notice", "print_epoch", "print_result"]


def notice(message: str, enabled: bool = True) -> None:
    """A one-line note to the user on stderr."""
    if enabled:
        print(f"note: {message}", file=sys.stderr, flush=True)


def clock(seconds: float) -> str:
    """``seconds`` as H:MM:SS."""
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class ProgressBar:
    """The bar of one epoch's steps: the epoch's loss, accuracy and speed, the rate and the run's ETA."""

    def __init__(self, state: TrainState, steps_per_epoch: int, enabled: bool) -> None:
        self.steps = steps_per_epoch
        self._bar = tqdm(
            total=steps_per_epoch,
            initial=state.step_in_epoch,
            desc=f"epoch {state.epoch + 1}/{state.epochs}",
            unit="step",
            disable=not enabled,
            leave=False,
            dynamic_ncols=True,
        )

    def update(self, state: TrainState, lr: float) -> None:
        """Show where ``state`` is (called at syncs, when the totals are current)."""
        if self._bar.disable:
            return
        totals = state.partial
        done_steps = state.epoch * self.steps + state.step_in_epoch
        left_steps = state.epochs * self.steps - done_steps
        per_step = totals.seconds / max(state.step_in_epoch, 1)
        self._bar.set_postfix_str(
            f"loss {totals.loss:.4f} acc {100 * totals.accuracy:.2f}% "
            f"{totals.images_per_second:,.0f} img/s lr {lr:.3g} run ETA {clock(left_steps * per_step)}",
            refresh=False,
        )
        self._bar.n = state.step_in_epoch
        self._bar.set_description(f"epoch {state.epoch + 1}/{state.epochs}", refresh=False)  # a budget may replan
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
        accuracy = f"test accuracy {100 * results['test_accuracy']:.2f}%"
        if "test_miou" in results:  # segmentation
            accuracy = (f"test mIoU {100 * results['test_miou']:.2f}%, "
                        f"pixel accuracy {100 * results['test_accuracy']:.2f}%")
        print(
            f"{accuracy} ({results['selected']}); "
            f"{results['images_per_second']:,.0f} img/s; results in {results_file}",
            flush=True,
        )
