"""--time-budget: the schedule is fitted early in the first epoch, evaluations included."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest

from _tiny import TINY, make_idx_dataset, tiny_models  # noqa: F401  (tiny_models is a fixture)
from cnnlab.train import TrainConfig, TrainState, train
from cnnlab.train import loop as loop_module
from cnnlab.train import run as run_module
from cnnlab.train.budget import BudgetPlanner
from cnnlab.train.schedules import steps_within_budget

pytestmark = pytest.mark.usefixtures("tiny_models")


def _cost(n: int, step: float, steps: int, done: int, val: float) -> float:
    """Seconds of ``n`` more steps from ``done`` steps into an epoch: steps, then every epoch end's validation."""
    return n * step + val * math.ceil((done + n) / steps)


@pytest.mark.parametrize(
    ("seconds", "done", "val"),
    [(300.0, 50, 1.0), (900.0, 12, 0.0), (61.0, 30, 0.5), (14.5, 0, 2.0), (3.0, 90, 0.25), (0.5, 10, 0.5)],
)
def test_steps_within_budget_is_the_longest_plan_that_fits(seconds, done, val):
    step, steps = 0.125, 100  # 12.5 s of steps per epoch; binary fractions keep the boundaries exact
    fits = steps_within_budget(seconds, step, steps, done, val)
    longest = max((n for n in range(20_000) if _cost(n, step, steps, done, val) <= seconds), default=0)
    assert fits == longest


def test_planner_fits_the_schedule_a_tenth_into_the_first_epoch():
    """0.5 s of set-up, then 0.125 s a step: planned at step 11, timed from the first sync (step 1)."""
    notes: list[str] = []
    state = TrainState(epochs=50)
    planner = BudgetPlanner(
        budget=100.0, max_epochs=50, steps_per_epoch=100, local_batch=32, val_images=0, test_images=0,
        say=notes.append, clocks=[(0.0, 0)],
    )
    for step in range(1, 12):
        state.global_step = state.step_in_epoch = step
        state.wall_seconds = 0.5 + 0.125 * step
        planner.after_sync(state)
        assert state.replanned == (step == 11)
    # At step 11 (1.875 s) the 98% of the budget kept for steps leaves (98 - 1.875) / 0.125 = 769 steps.
    assert state.total_steps == 11 + 769 and state.epochs == 8
    assert notes == ["time budget 100 s: the schedule is shortened to 7.80 epochs (780 steps of about 0.125 s; "
                     "0 s kept for the test)"]
    planner.after_sync(state)  # planned once in the first epoch; later only at_epoch_end revises
    assert state.total_steps == 780 and len(notes) == 1


def test_planner_without_a_budget_changes_nothing():
    state = TrainState(epochs=5, epoch=0, step_in_epoch=100, global_step=100, wall_seconds=1e6)
    planner = BudgetPlanner(None, 5, 100, 32, 0, 0, say=print, clocks=[(0.0, 0)])
    planner.after_sync(state)
    state.epoch = 1
    planner.at_epoch_end(state)
    assert (state.epochs, state.total_steps, state.replanned) == (5, None, False)


def _budgeted_run(tmp_path, monkeypatch, tick, budget: float) -> tuple[dict, list[dict]]:
    """A tiny one-cycle run under --time-budget with a fake clock advancing ``tick(n)`` at its n-th reading."""
    clock = {"now": 0.0, "reads": 0}

    def perf_counter() -> float:
        clock["reads"] += 1
        clock["now"] += tick(clock["reads"])
        return clock["now"]

    for module in (loop_module, run_module):  # the loop's clock and the run's wall-time reading
        monkeypatch.setattr(module, "time", SimpleNamespace(perf_counter=perf_counter))
    data = make_idx_dataset(tmp_path / "fashion", n_train=640, n_test=64)
    cfg = TrainConfig(
        model=TINY,
        data="fashion-mnist",
        data_dir=str(data),
        download=False,
        epochs=50,
        batch_size=32,
        val_split=0,
        lr=0.05,
        schedule="onecycle",
        time_budget=budget,
        log_every=1,
        threads=1,
        quiet=True,
        out=str(tmp_path / "run"),
    )
    results = train(cfg)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    return results, rows


def test_budgeted_run_is_planned_in_its_first_epoch(tmp_path, monkeypatch, capsys):
    """With a steady clock the plan made a tenth into the first epoch holds, and the run fits it."""
    results, rows = _budgeted_run(tmp_path, monkeypatch, lambda n: 0.01, budget=3.0)
    assert "schedule is shortened" in capsys.readouterr().err
    assert 2 <= results["epochs_completed"] < 50 and results["stopped_early"] == "time budget"
    assert 0.9 * 3.0 <= results["wall_seconds"] <= 3.0  # the plan may end mid-epoch: no idle last epoch
    # The one-cycle schedule followed the shortened plan from the first epoch: it rose to its peak
    # within the run and annealed to (almost) zero by the last step.
    assert max(r["lr"] for r in rows) > 0.5 * 0.05 and rows[-1]["lr"] < 1e-3 * 0.05
    assert rows[-1]["step"] == results["steps"]  # the plan ended the run, not the clock


def test_plan_timed_on_a_slow_start_is_lengthened_after_the_first_epoch(tmp_path, monkeypatch, capsys):
    """A start ten times slower than the rest (another program busy) first plans too few epochs."""
    results, rows = _budgeted_run(tmp_path, monkeypatch, lambda n: 0.1 if n <= 8 else 0.01, budget=6.0)
    err = capsys.readouterr().err
    first = float(err.split("shortened to ")[1].split(" epoch")[0])
    assert "schedule is lengthened" in err
    assert results["epochs_completed"] > first and 0.9 * 6.0 <= results["wall_seconds"] <= 6.0
    assert rows[-1]["step"] == results["steps"] and rows[-1]["lr"] < 1e-3 * 0.05
