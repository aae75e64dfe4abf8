"""What the notes' experiments share: the training settings every run starts from, how a budget's data is
described in a verdict, and how a finished (or diverged) run is read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cnnlab.experiments.catalogue import mean_and_spread
from cnnlab.experiments.jobs import JobResult

__all__ = ["BASE", "TINY_DATA", "budget_note", "figure_title", "mean_spread_text", "metric", "percent",
           "series_stats"]

# Every run of the catalogue: SGD with momentum and a cosine schedule (the trainer's defaults, fixed here
# so a change of default cannot change a verdict), full-precision arithmetic (the claims are about the
# networks; bf16 rounding would be one more thing that differs between a laptop and a GPU), no progress bar.
BASE: dict[str, Any] = {
    "optimizer": "sgd",
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "schedule": "cosine",
    "amp": "off",
    "quiet": True,
    "tensorboard": False,
}

# The tiny budget (tests): generated 28x28 images, one thread on the CPU, batches of 32, 48 held out.
TINY_DATA: dict[str, Any] = {"device": "cpu", "threads": 1, "batch_size": 32, "val_split": 48, "eval_batch_size": 256}


def metric(result: JobResult, key: str, chance: float) -> float:
    """``key`` of a run's results (e.g. "test_accuracy"); a run that failed (diverged) counts at ``chance``,
    which is what the predictions of a network with NaN weights are worth."""
    if result.status != "ok" or result.result.get(key) is None:
        return chance
    return float(result.result[key])


def percent(value: float) -> str:
    return f"{100 * value:.2f}%"


def mean_spread_text(values: Sequence[float]) -> str:
    """``"91.20% ± 0.35%"``: the mean and standard deviation over seeds of fractions."""
    mean, spread = mean_and_spread(values)
    return f"{percent(mean)} ± {percent(spread)}"


def series_stats(values: Mapping[Any, Sequence[float]]) -> dict[str, dict[str, float]]:
    """Per setting (a learning rate, a batch size, ...): mean and standard deviation over seeds."""
    out = {}
    for setting, vals in values.items():
        mean, spread = mean_and_spread(vals)
        out[str(setting)] = {"mean": mean, "std": spread}
    return out


def budget_note(budget: str, settings: Mapping[str, Any], extra: str = "") -> str:
    """What a budget trains on, for the verdict's notes: images, validation, epochs, batch."""
    subset = settings.get("train_subset")
    images = (f"a stratified subset of {subset:g} training images" if subset and subset >= 1
              else f"{100 * subset:g}% of the training images" if subset else "all training images")
    val = settings.get("val_split", 0)
    held = f"{val:g} of them" if val >= 1 else f"{100 * val:g}% of them"
    epochs = settings.get("epochs")
    text = (f"Budget `{budget}`: {images}, {held} held out for validation (the epoch whose weights are "
            f"kept, and any choice the experiment makes, are decided there), {epochs} epoch"
            f"{'s' if epochs != 1 else ''}, batch {settings.get('batch_size')}; the test set is evaluated "
            f"once per trained network.")
    if budget == "quick":
        text += " A quick run is a small-scale check: the full budget trains longer on more images."
    return f"{text} {extra}".strip()


def figure_title(name: str, budget: str, seeds: int, extra: str = "") -> str:
    """``"small-kernels (quick, 3 seeds)"``, with anything else the figure should say."""
    return f"{name} ({budget}, {seeds} seed{'s' if seeds != 1 else ''}{', ' + extra if extra else ''})"
