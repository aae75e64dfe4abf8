"""batchnorm-batch-size: batch norm needs batches of reasonable size; layer norm does not depend on the batch.

Claim (notes 002, "Batch Normalization" and "Layer Normalization"): "The size of the minibatch is very
important here to get reasonable statistics from ... very small batch sizes lead to uninformative signals
for normalization, hence [they] should be avoided"; layer norm "can be used for batchsize 1, it is the
same for training and inference ... because it does not depend on the batchsize" (Ba et al. 2016).

Measured: the VGG-style probe (``probe_vgg``, three stages of two 3x3 convs) with batch norm, with layer
norm over (C, H, W) (``cnnlab.nn.LayerNorm``) and without normalization, trained on the same images for
the same number of epochs at batch sizes from large down to 2; the learning rate follows the linear
scaling rule (Goyal et al. 2017: lr = 0.1 x batch / 128), fixed before the run. The batch size changes
more than the normalization's statistics (a small batch takes more, noisier steps), so batch norm is
measured against layer norm, which sees the same steps but computes its statistics per image. Two
parts, each by the catalogue's difference rule (twice the larger seed spread) on test accuracy:

- batch norm loses ground at batch 2: batch norm's accuracy minus layer norm's (per seed) is lower at
  batch 2 than at batch norm's best larger batch size (chosen on the validation split);
- layer norm does not depend on the batch: its accuracy at batch 2 is not below that at its own best
  larger batch size.

The network without normalization shows what the batch size does by itself.
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

__all__ = ["BatchNormBatchSize", "decide"]

NORMS = ("batchnorm", "layernorm", "none")
LABELS = {"batchnorm": "batch norm", "layernorm": "layer norm", "none": "no normalization"}
BASE_LR, BASE_BATCH = 0.1, 128  # linear scaling rule: lr = BASE_LR * batch / BASE_BATCH


@dataclass(frozen=True)
class Plan:
    """A budget's batch sizes (largest first, ending at the smallest), network options and settings."""

    batch_sizes: tuple[int, ...]
    model_args: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)


PLANS = {
    "tiny": Plan((32, 2), {"widths": (4, 8), "convs_per_stage": 1},
                 {**{k: v for k, v in TINY_DATA.items() if k != "batch_size"}, "epochs": 1, "train_subset": 96}),
    "quick": Plan((128, 32, 8, 2), {"widths": (16, 32, 64), "convs_per_stage": 2},
                  {"train_subset": 5000, "val_split": 1000, "epochs": 2}),
    "full": Plan((256, 64, 16, 4, 2), {"widths": (16, 32, 64), "convs_per_stage": 2},
                 {"train_subset": 20000, "val_split": 5000, "epochs": 4}),
}


def scaled_lr(batch_size: int) -> float:
    """The linear scaling rule's learning rate for ``batch_size``."""
    return BASE_LR * batch_size / BASE_BATCH


def _key(norm: str, batch: int, seed: int) -> str:
    return f"{norm}-b{batch}-s{seed}"


def decide(test_acc: dict[str, dict[int, list[float]]],
           val_acc: dict[str, dict[int, list[float]]]) -> tuple[Any, dict[str, int]]:
    """The verdict from per-seed numbers (norm -> batch size -> values over seeds), and the batch size each
    norm is compared at: its best (by mean validation accuracy) among those larger than the smallest."""
    sizes = sorted(test_acc["batchnorm"])
    smallest, larger = sizes[0], sizes[1:]
    best = {n: max(larger, key=lambda b, n=n: mean_and_spread(val_acc[n][b])[0]) for n in ("batchnorm", "layernorm")}

    def bn_minus_ln(batch: int) -> list[float]:
        return [bn - ln for bn, ln in zip(test_acc["batchnorm"][batch], test_acc["layernorm"][batch])]

    bn = verdict_from_difference(
        bn_minus_ln(best["batchnorm"]), bn_minus_ln(smallest), claim_a_better=True,
        what="batch norm's test accuracy minus layer norm's",
        labels=(f"at batch {best['batchnorm']} (batch norm's best larger batch on validation)",
                f"at batch {smallest}"))
    ln = verdict_from_difference(
        test_acc["layernorm"][smallest], test_acc["layernorm"][best["layernorm"]], claim_a_better=False,
        what="layer-norm test accuracy",
        labels=(f"batch {smallest}", f"batch {best['layernorm']} (best larger batch on validation)"))
    return combine_verdicts([("batch norm loses ground at the smallest batch", bn),
                             ("layer norm does not depend on the batch", ln)]), best


@register_experiment
class BatchNormBatchSize(Experiment):
    """Batch norm against layer norm and no normalization as the batch shrinks to 2."""

    name = "batchnorm-batch-size"
    claim = "batch norm needs batches of reasonable size; layer norm does not depend on the batch"
    source = "002: Batch Normalization (side note), Layer Normalization"
    minutes = {"quick": 9, "full": 55}

    def run(self, ctx: Context) -> Outcome:
        plan = PLANS[ctx.budget]
        seeds = ctx.seed_list()
        jobs = [Job(_key(norm, b, s), {**BASE, **plan.settings, "model": "probe_vgg", "batch_size": b,
                                       "lr": scaled_lr(b), "seed": s,
                                       "model_args": {**plan.model_args, "norm_layer": norm}},
                    {"norm": norm, "batch_size": b, "seed": s})
                for norm in NORMS for b in plan.batch_sizes for s in seeds]
        results = ctx.train(jobs)
        chance = 1 / next((r.result["num_classes"] for r in results.values() if r.status == "ok"), 10)

        def per_seed(key: str) -> dict[str, dict[int, list[float]]]:
            return {n: {b: [metric(results[_key(n, b, s)], key, chance) for s in seeds] for b in plan.batch_sizes}
                    for n in NORMS}

        test_acc, val_acc = per_seed("test_accuracy"), per_seed("best_val_accuracy")
        verdict, best = decide(test_acc, val_acc)
        from cnnlab.plots import batch_size_figure

        figure = batch_size_figure({LABELS[n]: test_acc[n] for n in NORMS}, chance=chance,
                                   title=figure_title(self.name, ctx.budget, len(seeds)))
        diverged = sorted(k for k, r in results.items() if r.status != "ok")
        numbers = {
            "batch_sizes": list(plan.batch_sizes),
            "learning_rates": {str(b): scaled_lr(b) for b in plan.batch_sizes},
            "test_accuracy": {n: {str(b): v for b, v in test_acc[n].items()} for n in NORMS},
            "best_val_accuracy": {n: {str(b): v for b, v in val_acc[n].items()} for n in NORMS},
            "test_accuracy_summary": {n: series_stats(test_acc[n]) for n in NORMS},
            "best_batch_by_validation": best,
            "diverged_runs": diverged,
            "model": {"name": "probe_vgg", **plan.model_args},
        }
        notes = [budget_note(ctx.budget, {**plan.settings, "batch_size": "varied"}),
                 f"Learning rate by the linear scaling rule, {BASE_LR:g} x batch / {BASE_BATCH}: "
                 + ", ".join(f"batch {b}: {scaled_lr(b):g}" for b in plan.batch_sizes) + ".",
                 "Every batch size sees the same images for the same epochs, so small batches take more steps."]
        if diverged:
            notes.append(f"Diverged (counted at chance accuracy): {', '.join(diverged)}.")
        return Outcome(numbers, figure, verdict, notes)
