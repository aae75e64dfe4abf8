"""Learning-rate schedules as short pure functions of the step, each multiplied by a linear warmup.

Every function returns a factor of the peak rate for optimizer step ``step`` (0-based) of ``total``.
Reduce-on-plateau is the exception that needs history: ``Plateau`` counts how many times validation
accuracy stalled, and the factor is ``gamma ** reductions``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from cnnlab.errors import ConfigError
from cnnlab.train.config import TrainConfig

__all__ = [
    "Plateau",
    "config_lr",
    "constant",
    "cosine",
    "lr_at",
    "multistep",
    "onecycle",
    "step_decay",
    "steps_within_budget",
    "warmup",
]


def warmup(step: int, warmup_steps: int) -> float:
    """Linear warmup: (step + 1) / warmup_steps until it reaches 1."""
    return 1.0 if step >= warmup_steps else (step + 1) / warmup_steps


def constant(step: int, total: int) -> float:
    return 1.0


def step_decay(step: int, step_size: int, gamma: float) -> float:
    """gamma ** floor(step / step_size): the ``step`` schedule (step_size in steps)."""
    return gamma ** (step // step_size)


def multistep(step: int, milestones: list[int], gamma: float) -> float:
    """gamma ** (milestones passed): AlexNet/ResNet-CIFAR style drops at fixed steps."""
    return gamma ** sum(step >= m for m in milestones)


def cosine(step: int, total: int, floor: float = 0.0) -> float:
    """Half-cosine from 1 down to ``floor`` over ``total`` steps (Loshchilov & Hutter 2017, no restarts)."""
    progress = min(step / max(total, 1), 1.0)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def onecycle(
    step: int, total: int, peak: float = 0.25, start_div: float = 25.0, end_div: float = 1e4
) -> float:
    """One-cycle (Smith & Topin 2018): cosine up from 1/start_div to 1 over ``peak`` of the run, then down."""
    top = max(round(peak * total), 1)
    if step < top:
        return _cos_between(1.0 / start_div, 1.0, step / top)
    return _cos_between(1.0, 1.0 / end_div, (step - top) / max(total - top, 1))


def _cos_between(start: float, end: float, progress: float) -> float:
    progress = min(max(progress, 0.0), 1.0)
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * progress))


def steps_within_budget(
    seconds: float, step_seconds: float, steps_per_epoch: int, steps_done: int = 0, val_seconds: float = 0.0
) -> int:
    """How many more training steps fit in ``seconds``, counting the validation that ends each epoch.

    The run stands ``steps_done`` steps into an epoch; a step takes ``step_seconds`` and every epoch end,
    that of a last partial epoch too, ``val_seconds``. The answer may end mid-epoch.
    """
    epoch_cost = steps_per_epoch * step_seconds + val_seconds
    this_epoch = steps_per_epoch - steps_done
    if seconds < this_epoch * step_seconds + val_seconds:
        return max(int((seconds - val_seconds) // step_seconds), 0)
    left = seconds - this_epoch * step_seconds - val_seconds
    whole = int(left // epoch_cost)
    left -= whole * epoch_cost
    partial = int((left - val_seconds) // step_seconds) if left > val_seconds else 0
    return this_epoch + whole * steps_per_epoch + min(partial, steps_per_epoch - 1)


@dataclass
class Plateau:
    """Reduce-on-plateau bookkeeping: after ``patience`` epochs without a gain of ``threshold``, decay."""

    patience: int = 3
    threshold: float = 1e-3
    best: float = -math.inf
    bad_epochs: int = 0
    reductions: int = 0

    def observe(self, accuracy: float) -> bool:
        """Record an epoch's validation accuracy; True when the rate was just reduced."""
        if accuracy > self.best + self.threshold:
            self.best, self.bad_epochs = accuracy, 0
            return False
        self.bad_epochs += 1
        if self.bad_epochs > self.patience:
            self.reductions += 1
            self.bad_epochs = 0
            return True
        return False

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)


def lr_at(
    step: int,
    *,
    name: str,
    base_lr: float,
    total: int,
    steps_per_epoch: int,
    warmup_steps: int = 0,
    gamma: float = 0.1,
    step_epochs: int = 30,
    milestones: list[int] | None = None,
    min_lr: float = 0.0,
    onecycle_peak: float = 0.25,
    plateau_reductions: int = 0,
) -> float:
    """The learning rate of ``step`` under schedule ``name``; epoch arguments are converted to steps."""
    floor = min_lr / base_lr
    if name == "constant":
        factor = constant(step, total)
    elif name == "step":
        factor = step_decay(step, max(step_epochs * steps_per_epoch, 1), gamma)
    elif name == "multistep":
        factor = multistep(step, [m * steps_per_epoch for m in milestones or []], gamma)
    elif name == "plateau":
        factor = gamma**plateau_reductions
    elif name == "cosine":
        factor = cosine(max(step - warmup_steps, 0), max(total - warmup_steps, 1), floor)
    elif name == "onecycle":
        factor = onecycle(step, total, onecycle_peak)
    else:
        raise ConfigError(f"unknown schedule {name!r}; choose constant, step, multistep, plateau, cosine or onecycle")
    return base_lr * max(factor, floor) * warmup(step, warmup_steps)


def config_lr(cfg: TrainConfig, step: int, total: int, steps_per_epoch: int, plateau_reductions: int = 0) -> float:
    """The learning rate of ``step`` of ``total`` under ``cfg``'s schedule settings."""
    return lr_at(
        step,
        name=cfg.schedule,
        base_lr=cfg.lr,
        total=total,
        steps_per_epoch=steps_per_epoch,
        warmup_steps=round(cfg.warmup_epochs * steps_per_epoch),
        gamma=cfg.gamma,
        step_epochs=cfg.step_epochs,
        milestones=cfg.milestones,
        min_lr=cfg.min_lr,
        onecycle_peak=cfg.onecycle_peak,
        plateau_reductions=plateau_reductions,
    )
