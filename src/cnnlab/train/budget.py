"""--time-budget: fit the schedule's length to the seconds given, from how long the steps take.

The loop calls ``BudgetPlanner.after_sync`` at every sync and ``at_epoch_end`` after each validation.
Once a tenth of the first epoch is timed, the planner cuts the schedule (``TrainState.total_steps`` and
``epochs``) to what the budget holds, evaluations and the final test included; at epoch ends it revises
that plan from the time since. A schedule of known length (cosine, one-cycle) then anneals within the
budget instead of being stopped while its rate is still high.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from cnnlab.data import BatchSource
from cnnlab.train.config import TrainConfig
from cnnlab.train.distributed import DistEnv
from cnnlab.train.inputs import DataBundle
from cnnlab.train.schedules import steps_within_budget
from cnnlab.train.state import TrainState

__all__ = ["BudgetPlanner"]


@dataclass
class BudgetPlanner:
    """Fits a run's schedule to --time-budget: planned early in the first epoch, revised at epoch ends.

    Every rank plans from rank 0's clock (``TrainState.wall_seconds`` after a sync), so all plan alike.
    """

    budget: float | None  # seconds for the whole run, evaluations included; None: nothing to plan
    max_epochs: int  # --epochs: a revision never plans beyond it
    steps_per_epoch: int
    local_batch: int  # images per step on one process
    val_images: int  # images one process evaluates per validation pass (both views under --tta-flip)
    test_images: int  # the same for the final test
    say: Callable[[str], None]
    clocks: list[tuple[float, int]] = field(default_factory=list)  # (wall seconds, global step) to time from

    @classmethod
    def for_run(
        cls, cfg: TrainConfig, data: DataBundle, env: DistEnv, state: TrainState, say: Callable[[str], None]
    ) -> BudgetPlanner:
        """A planner for a run starting (or resuming) at ``state``."""
        views = 2 if cfg.tta_flip else 1
        return cls(
            budget=cfg.time_budget,
            max_epochs=cfg.epochs,
            steps_per_epoch=len(data.train),
            local_batch=data.train.local_batch,
            val_images=views * _rank_images(data.val, env),
            test_images=views * _rank_images(data.test, env),
            say=say,
            clocks=[(state.wall_seconds, state.global_step)],
        )

    def after_sync(self, state: TrainState) -> None:
        """Once a tenth of the first epoch is timed, shorten the schedule to end within the budget.

        Steps are timed from the first sync on, leaving out the first steps' one-time set-up costs (an
        epoch too short to time that way is timed whole).
        """
        steps = self.steps_per_epoch
        if self.budget is None or state.replanned or state.epoch != 0:
            return
        last = state.step_in_epoch == steps
        if len(self.clocks) == 1 and not last:
            self.clocks.append((state.wall_seconds, state.global_step))  # the set-up costs are behind
            return
        since_wall, since_step = self.clocks[-1]
        if state.global_step - since_step < math.ceil(steps / 10) and not last:
            return
        if state.global_step == since_step:  # too short an epoch to time from the first sync
            since_wall, since_step = self.clocks[0]
        state.replanned = True
        per_step = (state.wall_seconds - since_wall) / max(state.global_step - since_step, 1)
        self._fit(state, per_step, state.planned_steps(steps), revision=False)
        self.clocks.append((state.wall_seconds, state.global_step))  # revisions time from here

    def at_epoch_end(self, state: TrainState) -> None:
        """Refit the schedule to the budget from the time since the first plan.

        After the first epoch the plan may grow (up to --epochs) as well as shrink: the first plan was
        timed on a tenth of an epoch, which a busy moment can slow, and the one-cycle rate is still near
        its peak. Later it only shrinks, when the run has slowed down; growing then would raise an
        annealed rate again.
        """
        steps = self.steps_per_epoch
        since_wall, since_step = self.clocks[-1]
        if self.budget is None or state.epoch >= state.epochs or state.global_step - since_step < math.ceil(steps / 10):
            return
        # The time measured holds the validations of the epochs since: take them out to time a step.
        timed_steps = state.global_step - since_step
        epochs_timed = timed_steps / steps
        val_seconds = self._reserves((state.wall_seconds - since_wall) / timed_steps)[0]
        per_step = (state.wall_seconds - since_wall - epochs_timed * val_seconds) / timed_steps
        limit = self.max_epochs * steps if state.epoch == 1 else state.planned_steps(steps)
        self._fit(state, per_step, limit, revision=True)

    def _fit(self, state: TrainState, per_step: float, limit: int, revision: bool) -> None:
        """Plan the schedule's last step: as many steps as the budget holds at ``per_step``, up to ``limit``."""
        steps = self.steps_per_epoch
        val_seconds, test_seconds = self._reserves(per_step)
        # 2% of the budget is left for the epochs' checkpoints and logs and for a slower machine later on.
        left = 0.98 * self.budget - state.wall_seconds - test_seconds
        total = state.global_step + steps_within_budget(left, per_step, steps, state.step_in_epoch, val_seconds)
        if total % steps < steps // 50:
            total -= total % steps  # a last epoch of a few steps would only clutter the logs
        total = max(min(total, limit), state.global_step)
        planned = state.planned_steps(steps)
        if total == planned or (revision and abs(total - planned) <= planned // 100):
            return  # a revision within 1% is speed noise, which the 2% margin absorbs
        verb = "shortened" if total < planned else "lengthened"
        state.total_steps = total if total < self.max_epochs * steps else None
        state.epochs = math.ceil(total / steps)
        self.say(
            f"time budget {self.budget:g} s: the schedule is {verb} to {total / steps:.2f} epochs "
            f"({total} steps of about {per_step:.3f} s; {test_seconds:.0f} s kept for the test)"
        )

    def _reserves(self, per_step: float) -> tuple[float, float]:
        """Seconds of one validation pass and of the test, estimated from the seconds of a training step.

        An image's forward pass costs about a third of its training step; half is reserved, for margin.
        """
        per_image = 0.5 * per_step / self.local_batch
        return self.val_images * per_image, self.test_images * per_image


def _rank_images(source: BatchSource | None, env: DistEnv) -> int:
    """Images one process evaluates in a pass over ``source`` (ranks share evaluation sets)."""
    return 0 if source is None else math.ceil(source.num_samples / env.world_size)
