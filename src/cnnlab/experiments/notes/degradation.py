"""The degradation problem (notes 002-004; He et al. 2016, Deep Residual Learning for Image Recognition, 4.1-4.2).

He et al. found that a deeper plain network reaches a *higher training error* than a shallower one (so it is
not overfitting), and that the same networks with identity shortcuts do not degrade. Here: plain-20,
plain-56, ResNet-20 and ResNet-56 (the CIFAR networks, option-A shortcuts, so each plain net has exactly
its ResNet's layers and parameters) trained on Fashion-MNIST with one recipe and budget; the measure is
the training error of the last epoch (the running error over its batches, as the paper's thin curves).

The trainings are the skip-connection experiment's too (same jobs, same keys): copy one experiment's
``runs/`` folder into the other's ``--out`` and it reuses them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cnnlab.experiments.catalogue import (
    Context,
    Experiment,
    Outcome,
    Verdict,
    combine_verdicts,
    register_experiment,
    verdict_from_difference,
)
from cnnlab.experiments.jobs import Job, JobResult

__all__ = ["NETWORKS", "Degradation", "error_curves", "final_training_errors", "training_jobs", "training_settings"]

# The four networks and the labels the figures use; "56" vs "20" and plain vs residual.
NETWORKS: dict[str, str] = {"plain20": "plain-20", "plain56": "plain-56", "resnet20": "ResNet-20",
                            "resnet56": "ResNet-56"}

# The recipe, the same for all four: He et al.'s SGD with momentum 0.9 (rate 0.05 with a cosine decay, for
# these short runs), no augmentation (the measure is the training error). Nothing is selected on a validation
# split, so none is carved out. "tiny" (tests) shrinks the networks: 1 or 2 blocks per stage, 4-8 channels.
_RECIPE: dict[str, Any] = {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4,
                           "batch_size": 128, "schedule": "cosine", "val_split": 0, "quiet": True,
                           "tensorboard": False, "log_every": 5}
_BUDGETS: dict[str, dict[str, Any]] = {
    "tiny": {"epochs": 2, "batch_size": 16, "log_every": 2},
    "quick": {"epochs": 3, "train_subset": 4000},
    "full": {"epochs": 4, "train_subset": 15000},
}
_TINY_SHAPES = {"20": {"depths": (1, 1, 1), "widths": (4, 8, 8), "stem_width": 4},
                "56": {"depths": (2, 2, 2), "widths": (4, 8, 8), "stem_width": 4}}


def training_settings(model: str, budget: str, seed: int) -> dict[str, Any]:
    """The TrainConfig settings of one network of the lineup at ``budget`` (without the data settings)."""
    settings = {**_RECIPE, **_BUDGETS[budget], "model": model, "seed": seed}
    if budget == "tiny":
        settings["model_args"] = dict(_TINY_SHAPES[model[-2:]])
    return settings


def training_jobs(ctx: Context, models: Sequence[str] = tuple(NETWORKS)) -> list[Job]:
    """One job per network and seed, keyed ``NAME-sSEED``."""
    return [Job(f"{m}-s{s}", training_settings(m, ctx.budget, s), {"model": m, "seed": s})
            for m in models for s in ctx.seed_list()]


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def final_training_errors(results: Mapping[str, JobResult], model: str, seeds: Sequence[int]) -> list[float]:
    """The last epoch's training error of ``model`` for each seed (failed runs are left out)."""
    errors = []
    for s in seeds:
        result = results[f"{model}-s{s}"]
        history = _rows(Path(result.result["run_dir"]) / "metrics.jsonl") if result.status == "ok" else []
        if history:
            errors.append(1.0 - float(history[-1]["train_accuracy"]))
    return errors


def error_curves(results: Mapping[str, JobResult], seed: int) -> dict[str, tuple[list[float], list[float]]]:
    """Training error against epochs (every logging window) of each network of one seed."""
    curves = {}
    for model, label in NETWORKS.items():
        result = results.get(f"{model}-s{seed}")
        if result is None or result.status != "ok":
            continue
        rows = _rows(Path(result.result["run_dir"]) / "curve.jsonl")
        curves[label] = ([r["epoch"] for r in rows], [1.0 - r["accuracy"] for r in rows])
    return curves


def degradation_verdict(errors: Mapping[str, Sequence[float]]) -> tuple[Verdict, dict[str, Verdict]]:
    """Both halves of the claim by the difference rule, and the whole: holds if both hold, does not hold if
    either does not, otherwise inconclusive."""
    pct = {"what": "final training error", "higher_is_better": False}
    plain = verdict_from_difference(errors["plain20"], errors["plain56"], claim_a_better=True,
                                    labels=("plain-20", "plain-56"), **pct)
    residual = verdict_from_difference(errors["resnet56"], errors["resnet20"], claim_a_better=False,
                                       labels=("ResNet-56", "ResNet-20"), **pct)
    parts = {"plain-56 degrades": plain, "ResNet-56 does not": residual}
    return combine_verdicts(list(parts.items())), parts


@register_experiment
class Degradation(Experiment):
    """Deeper plain nets train worse; residual nets of the same depth do not (the degradation problem)."""

    name = "degradation"
    claim = ("a deeper plain network reaches a higher training error than a shallower one (plain-56 vs plain-20), "
             "while with identity shortcuts the deeper one is no worse (ResNet-56 vs ResNet-20)")
    source = "002-004: the degradation problem (He et al. 2016, figures 1 and 6)"
    minutes = {"quick": 10, "full": 36}

    def run(self, ctx: Context) -> Outcome:
        from cnnlab import plots

        results = ctx.train(training_jobs(ctx))
        seeds = ctx.seed_list()
        errors = {m: final_training_errors(results, m, seeds) for m in NETWORKS}
        missing = [NETWORKS[m] for m, v in errors.items() if not v]
        if missing:
            verdict = Verdict("inconclusive at this budget", "every network needs a finished run",
                              f"no finished run of {', '.join(missing)}")
            parts: dict[str, Verdict] = {}
        else:
            verdict, parts = degradation_verdict(errors)
        curves = error_curves(results, seeds[0])
        figure = plots.training_error_curves(
            curves, title=f"{ctx.data.get('data', 'fashion-mnist')}: training error, budget {ctx.budget}, seed 0")
        numbers = {"final_training_error": errors, "parts": {k: v.__dict__ for k, v in parts.items()},
                   "curves_seed0": curves, "test_accuracy": _test_accuracy(results)}
        notes = [f"budget {ctx.budget}: {_describe(ctx.budget)}",
                 "training error = 1 - training accuracy over the last epoch's batches (BN in train mode), "
                 "as He et al. plot it"]
        return Outcome(numbers, figure, verdict, notes)


def _test_accuracy(results: Mapping[str, JobResult]) -> dict[str, float]:
    return {key: r.result["test_accuracy"] for key, r in results.items() if r.status == "ok"}


def _describe(budget: str) -> str:
    b = _BUDGETS[budget]
    images = f"{b['train_subset']} training images" if "train_subset" in b else "the generated training images"
    return f"{b['epochs']} epochs on {images}, SGD 0.05 cosine, batch {b.get('batch_size', _RECIPE['batch_size'])}"
