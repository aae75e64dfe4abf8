"""What a run prints: the bar follows the planned schedule and the budget, notes get lines of their own."""

from __future__ import annotations

import re

import torch

from cnnlab.data import BatchAugment, TensorBatches
from cnnlab.data.arrays import ArrayDataset
from cnnlab.train.console import ProgressBar, notice
from cnnlab.train.evaluate import evaluate
from cnnlab.train.state import TrainState


def _state(epochs: int, step: int, seconds: float, wall: float, total_steps: int | None = None) -> TrainState:
    state = TrainState(epochs=epochs, step_in_epoch=step, global_step=step, wall_seconds=wall)
    state.partial.seconds, state.total_steps, state.replanned = seconds, total_steps, total_steps is not None
    return state


def test_eta_is_the_plans_and_never_past_the_budget():
    # 10 of 100 steps in 1 s: 490 steps of a 5-epoch plan left, 49 s at this pace.
    state = _state(epochs=5, step=10, seconds=1.0, wall=2.0)
    assert ProgressBar(state, 100, enabled=False).eta(state) == 49.0
    # With a 30 s budget, 2 s spent, the run ends within 28 s whatever the plan says.
    assert ProgressBar(state, 100, enabled=False, budget=30).eta(state) == 28.0


def test_the_bar_shows_the_planned_schedule():
    timing = _state(epochs=5, step=10, seconds=1.0, wall=2.0)
    bar = ProgressBar(timing, 100, enabled=False, budget=30)
    assert bar._describe(timing) == "epoch 1/≤5"  # being timed: at most the 5 epochs asked for
    planned = _state(epochs=1, step=10, seconds=1.0, wall=2.0, total_steps=17)
    assert bar._describe(planned) == "epoch 1/0.17"
    assert bar._epoch_steps(planned) == 17  # the bar ends where the schedule does, at 100%
    assert ProgressBar(planned, 100, enabled=False)._epoch_steps(_state(3, 0, 0, 0)) == 100


def test_notes_are_printed_on_lines_of_their_own(capsys):
    state = _state(epochs=2, step=3, seconds=0.3, wall=0.5)
    bar = ProgressBar(state, 10, enabled=True)
    bar.update(state, 0.1)
    notice("the schedule is shortened")
    bar.close()
    err = capsys.readouterr().err
    pieces = re.split(r"[\r\n]", err)
    assert any(p.startswith("note: the schedule is shortened") for p in pieces)
    assert not any("note:" in p and not p.startswith("note:") for p in pieces)  # never inside the bar's line


def test_evaluation_shows_a_bar_only_when_asked(capsys):
    data = ArrayDataset(torch.zeros(40, 1, 4, 4, dtype=torch.uint8), torch.zeros(40, dtype=torch.int64),
                        [str(i) for i in range(2)], "zeros", "memory")
    source = TensorBatches(data, 16, torch.device("cpu"), False)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
    augment = BatchAugment(mean=(0.5,), std=(0.5,), num_classes=2)
    assert evaluate(model, source, augment)["count"] == 40
    assert capsys.readouterr().err == ""
    evaluate(model, source, augment, progress="test")
    assert re.search(r"test: +\d+%.*/3 ", capsys.readouterr().err)  # batches done of the 3
