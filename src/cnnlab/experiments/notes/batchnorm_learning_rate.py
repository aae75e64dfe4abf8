"""batchnorm-learning-rate: batch norm allows higher learning rates and converges faster.

Claim (notes 002, "Batch Normalization" / "Benefits of Batch Normalization"): with batch norm one "can
choose higher learning rate compared to not using. Training is more stable", with "faster convergence,
fewer training iterations for higher accuracy" (Ioffe & Szegedy 2015).

Measured: the same plain VGG-style network (``probe_vgg``: a 3x3 conv stem and three stages of three 3x3
conv layers, 10 conv layers in all) with batch norm after every conv and without any normalization,
trained over a learning-rate sweep (SGD with momentum 0.9, cosine schedule, no warmup) with several
seeds per setting. Two parts, each decided by the difference rule of the catalogue (a difference larger
than twice the larger seed spread):

- higher learning rates: over the upper half of the sweep, the test accuracy (averaged over those
  learning rates, per seed) of the batch-norm network beats the plain one's;
- faster convergence: at each network's own best learning rate (chosen on the validation split), its
  validation accuracy after the first epoch is higher with batch norm.

A run that diverges counts at chance accuracy. The notes' third benefit, less sensitivity to the
initialization, is not tested here (it needs a sweep of initial weight scales).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cnnlab.experiments.catalogue import (
    Context,
    Experiment,
    Outcome,
    combine_verdicts,
    mean_and_spread,
    register_experiment,
    verdict_from_difference,
)
from cnnlab.experiments.jobs import Job
from cnnlab.experiments.notes._runs import BASE, TINY_DATA, budget_note, figure_title, metric, series_stats

__all__ = ["BatchNormLearningRate", "decide"]

NORMS = ("batchnorm", "none")
LABELS = {"batchnorm": "batch norm", "none": "no normalization"}


@dataclass(frozen=True)
class Plan:
    """A budget's sweep: the learning rates, the network's options and the shared training settings."""

    lrs: tuple[float, ...]
    model_args: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)


PLANS = {
    "tiny": Plan((0.01, 0.1), {"widths": (4, 8), "convs_per_stage": 1}, {**TINY_DATA, "epochs": 2}),
    "quick": Plan((0.0125, 0.05, 0.2, 0.8), {"widths": (16, 32, 64), "convs_per_stage": 3},
                  {"train_subset": 10000, "val_split": 2000, "epochs": 4, "batch_size": 128}),
    "full": Plan((0.00625, 0.0125, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6),
                 {"widths": (16, 32, 64), "convs_per_stage": 3},
                 {"train_subset": 25000, "val_split": 5000, "epochs": 6, "batch_size": 128}),
}


def _key(norm: str, lr: float, seed: int) -> str:
    return f"{norm}-lr{lr:g}-s{seed}"


def decide(test_acc: dict[str, dict[float, list[float]]], val_acc: dict[str, dict[float, list[float]]],
           first_epoch_val: dict[str, dict[float, list[float]]]) -> tuple[Any, dict[str, float]]:
    """The verdict from per-seed numbers (norm -> learning rate -> values over seeds), and each network's
    best learning rate (by mean validation accuracy)."""
    lrs = sorted(next(iter(test_acc.values())))
    upper = lrs[len(lrs) // 2:]
    seeds = len(test_acc["batchnorm"][lrs[0]])

    def upper_mean(norm: str) -> list[float]:
        return [sum(test_acc[norm][lr][s] for lr in upper) / len(upper) for s in range(seeds)]

    best_lr = {norm: max(lrs, key=lambda lr, n=norm: mean_and_spread(val_acc[n][lr])[0]) for norm in NORMS}
    higher = verdict_from_difference(
        upper_mean("batchnorm"), upper_mean("none"), claim_a_better=True,
        what=f"test accuracy averaged over the upper half of the sweep (lr {', '.join(f'{lr:g}' for lr in upper)})",
        labels=("batch norm", "no normalization"))
    faster = verdict_from_difference(
        first_epoch_val["batchnorm"][best_lr["batchnorm"]], first_epoch_val["none"][best_lr["none"]],
        claim_a_better=True,
        what=(f"validation accuracy after epoch 1 at each network's best learning rate (batch norm "
              f"{best_lr['batchnorm']:g}, no normalization {best_lr['none']:g})"),
        labels=("batch norm", "no normalization"))
    return combine_verdicts([("higher learning rates", higher), ("faster convergence", faster)]), best_lr


@register_experiment
class BatchNormLearningRate(Experiment):
    """The plain VGG-style probe with and without batch norm over a learning-rate sweep."""

    name = "batchnorm-learning-rate"
    claim = "batch norm allows higher learning rates and converges faster"
    source = "002: Batch Normalization, Benefits of Batch Normalization"
    minutes = {"quick": 6, "full": 45}

    def run(self, ctx: Context) -> Outcome:
        plan = PLANS[ctx.budget]
        seeds = ctx.seed_list()
        jobs = [Job(_key(norm, lr, s), {**BASE, **plan.settings, "model": "probe_vgg", "lr": lr, "seed": s,
                                         "model_args": {**plan.model_args, "norm_layer": norm}},
                    {"norm": norm, "lr": lr, "seed": s})
                for norm in NORMS for lr in plan.lrs for s in seeds]
        results = ctx.train(jobs)
        chance = 1 / next((r.result["num_classes"] for r in results.values() if r.status == "ok"), 10)

        def per_seed(fn) -> dict[str, dict[float, list[float]]]:
            return {n: {lr: [fn(_key(n, lr, s)) for s in seeds] for lr in plan.lrs} for n in NORMS}

        def first_val(key: str) -> float:
            rows = ctx.history(key)
            return float(rows[0]["val_accuracy"]) if results[key].status == "ok" and rows else chance

        test_acc = per_seed(lambda k: metric(results[k], "test_accuracy", chance))
        val_acc = per_seed(lambda k: metric(results[k], "best_val_accuracy", chance))
        first = per_seed(first_val)
        verdict, best_lr = decide(test_acc, val_acc, first)
        curves = {n: {lr: [ctx.curve(_key(n, lr, s)) for s in seeds] for lr in (best_lr[n], max(plan.lrs))}
                  for n in NORMS}
        diverged = sorted(k for k, r in results.items() if r.status != "ok")
        from cnnlab.plots import learning_rate_figure

        figure = learning_rate_figure(
            {LABELS[n]: test_acc[n] for n in NORMS},
            {LABELS[n]: {f"lr {lr:g}" + (" (best)" if lr == best_lr[n] else " (highest)"): runs
                         for lr, runs in curves[n].items()} for n in NORMS},
            chance=chance, title=figure_title(self.name, ctx.budget, len(seeds)))
        numbers = {
            "learning_rates": list(plan.lrs),
            "test_accuracy": {n: {str(lr): v for lr, v in test_acc[n].items()} for n in NORMS},
            "best_val_accuracy": {n: {str(lr): v for lr, v in val_acc[n].items()} for n in NORMS},
            "first_epoch_val_accuracy": {n: {str(lr): v for lr, v in first[n].items()} for n in NORMS},
            "test_accuracy_summary": {n: series_stats(test_acc[n]) for n in NORMS},
            "best_lr_by_validation": best_lr,
            "diverged_runs": diverged,
            "model": {"name": "probe_vgg", **plan.model_args},
        }
        notes = [budget_note(ctx.budget, plan.settings),
                 f"Learning rates swept: {', '.join(f'{lr:g}' for lr in plan.lrs)} (SGD, momentum 0.9, cosine "
                 f"schedule, no warmup), the same for both networks."]
        if diverged:
            notes.append(f"Diverged (counted at chance accuracy, {100 * chance:.0f}%): {', '.join(diverged)}.")
        notes.append("Not tested: the notes' 'more robust to bad initialization' (it needs a sweep of weight scales).")
        return Outcome(numbers, figure, verdict, notes)
