"""Where a run is: step counters, the current epoch's running totals and the history, saved in checkpoints.

Both dataclasses hold plain numbers, strings and lists only, so ``to_dict()`` is what ``last.pt`` stores
and ``torch.load(weights_only=True)`` reads back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["EpochTotals", "TrainState"]


@dataclass
class EpochTotals:
    """The current epoch's training totals so far, over all processes (folded in at every sync)."""

    loss_sum: float = 0.0  # per-image training loss, summed
    correct: float = 0.0  # images whose top prediction was their label
    seen: int = 0  # images trained on
    seconds: float = 0.0  # time spent in training steps (not evaluation)
    lr: float = 0.0  # learning rate of the latest step

    @property
    def loss(self) -> float:
        return self.loss_sum / max(self.seen, 1)

    @property
    def accuracy(self) -> float:
        return self.correct / max(self.seen, 1)

    @property
    def images_per_second(self) -> float:
        return self.seen / max(self.seconds, 1e-9)


@dataclass
class TrainState:
    """Where a run is; saved in every checkpoint as plain numbers and lists."""

    epochs: int  # planned epochs, the last maybe partial (a time budget shortens them in the first epoch)
    epoch: int = 0  # epochs completed
    step_in_epoch: int = 0  # steps completed in the current epoch
    global_step: int = 0  # optimizer steps completed
    wall_seconds: float = 0.0  # wall time of all sessions so far
    train_seconds: float = 0.0  # time spent in training steps (not evaluation): images/s
    train_images: int = 0  # images trained on, all processes together
    partial: EpochTotals = field(default_factory=EpochTotals)  # the current epoch's totals so far
    best_val: float | None = None  # best validation score so far: accuracy (classification), mIoU (segmentation)
    best_epoch: int | None = None
    history: list[dict] = field(default_factory=list)  # one metrics row per epoch
    curve: list[dict] = field(default_factory=list)  # training loss/accuracy every log_every steps
    replanned: bool = False  # the schedule was fitted to --time-budget
    total_steps: int | None = None  # the schedule's length when a time budget cut it (it may end mid-epoch)
    stop_reason: str | None = None

    def add_window(self, loss_sum: float, correct: float, seen: int, seconds: float, steps_per_epoch: int) -> None:
        """Fold the steps since the last sync (all processes' sums) into the totals and the curve."""
        if seen:
            self.curve.append({
                "step": self.global_step,
                "epoch": self.epoch + self.step_in_epoch / steps_per_epoch,
                "images": self.train_images + seen,
                "train_seconds": self.train_seconds + seconds,
                "loss": loss_sum / seen,
                "accuracy": correct / seen,
                "lr": self.partial.lr,  # of the window's last step
            })
        totals = self.partial
        totals.loss_sum += loss_sum
        totals.correct += correct
        totals.seen += seen
        totals.seconds += seconds
        self.train_seconds += seconds
        self.train_images += seen

    def finish_epoch(self, val: dict | None, wall_seconds: float, extra: dict | None = None) -> dict:
        """Count the current epoch done: its metrics row (with the task's ``extra`` columns), appended to the
        history; the totals start over."""
        self.epoch += 1
        self.wall_seconds = wall_seconds
        totals = self.partial
        row = {
            "epoch": self.epoch,
            "step": self.global_step,
            "train_loss": totals.loss,
            "train_accuracy": totals.accuracy,
            "val_loss": val["loss"] if val else None,
            "val_accuracy": val["accuracy"] if val else None,
            **{f"val_{key}": value for key, value in (val or {}).items() if key.startswith("top")},
            "lr": totals.lr,
            "images_per_second": totals.images_per_second,
            "epoch_seconds": totals.seconds,
            "wall_seconds": wall_seconds,
            **(extra or {}),
        }
        self.history.append(row)
        self.step_in_epoch, self.partial = 0, EpochTotals()
        return row

    def planned_steps(self, steps_per_epoch: int) -> int:
        """The schedule's length in optimizer steps: the budget's cut, else whole planned epochs."""
        return self.total_steps if self.total_steps is not None else self.epochs * steps_per_epoch

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainState:
        """The state ``to_dict()`` gave (older checkpoints' epoch totals may lack ``lr``)."""
        return cls(**{**values, "partial": EpochTotals(**values["partial"])})
