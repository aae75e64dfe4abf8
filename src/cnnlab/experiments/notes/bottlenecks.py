"""bottlenecks: 1x1 reductions cut an Inception module's cost without costing accuracy.

Claim (notes 003, "GoogleNet": "bottle neck layers are added to decrease depth - adds 1x1 conv before 3x3
and 5x5 convs to reduce the number of input channels - after the pooling layer, 1x1 conv is used to
reduce the number of channels"; notes 000, "GoogLeNet": "cheaper while having more improved accuracy",
and "Network In Networks": 1x1 convolutions "minimize the number of parameters without sacrificing
accuracy"; Szegedy et al. 2015, Sec. 4, Fig. 2).

Measured: the Inception probe (``probe_inception``: a conv stem and the modules 3a, 3b and 4a of
GoogLeNet's Table 1 at a quarter of their widths) with the 1x1 reductions (Fig. 2b) and without them
(the naive module of Fig. 2a, whose pooling branch passes every input channel on). Three parts: fewer
multiply-accumulates, fewer parameters (both counted), and a test accuracy not worse by more than twice
the larger seed spread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from cnnlab.analysis.counting import count_macs, count_params
from cnnlab.experiments.catalogue import (
    Context,
    Experiment,
    Outcome,
    Verdict,
    combine_verdicts,
    register_experiment,
    verdict_from_difference,
)
from cnnlab.experiments.jobs import Job
from cnnlab.experiments.notes._runs import BASE, TINY_DATA, budget_note, figure_title, metric, series_stats
from cnnlab.models import create_model

__all__ = ["Bottlenecks", "decide", "module_counts"]

VARIANTS = {"with 1x1 reductions": True, "naive (no reductions)": False}
KEYS = {"with 1x1 reductions": "reduced", "naive (no reductions)": "naive"}


@dataclass(frozen=True)
class Plan:
    """A budget's width multiplier of the probe and its training settings."""

    width_mult: float
    settings: dict[str, Any] = field(default_factory=dict)


PLANS = {
    "tiny": Plan(0.25, {**TINY_DATA, "epochs": 1}),
    "quick": Plan(1.0, {"train_subset": 8000, "val_split": 1500, "epochs": 2, "batch_size": 128, "lr": 0.05}),
    "full": Plan(1.0, {"train_subset": 30000, "val_split": 5000, "epochs": 5, "batch_size": 128, "lr": 0.05}),
}


def module_counts(reductions: bool, width_mult: float,
                  input_size: tuple[int, int, int] = (1, 28, 28)) -> dict[str, Any]:
    """Parameters and MACs per image of the whole probe and of its Inception stages (10 classes)."""
    with torch.device("meta"):
        model = create_model("probe_inception", num_classes=10, in_chans=input_size[0], reductions=reductions,
                             width_mult=width_mult)
    return {"params": count_params(model), "macs": count_macs(model, input_size),
            "stage_params": count_params(model.stages), "out_channels": model.num_features}


def decide(counts: dict[str, dict[str, Any]], test_acc: dict[str, list[float]]) -> Verdict:
    """The verdict from both variants' counts and per-seed test accuracies, keyed by variant label."""
    reduced, naive = (counts[label] for label in VARIANTS)
    cheaper = Verdict("holds" if reduced["macs"] < naive["macs"] else "does not hold",
                      "holds if the network with reductions needs fewer multiply-accumulates",
                      f"{reduced['macs'] / 1e6:.2f}M vs {naive['macs'] / 1e6:.2f}M MACs per image "
                      f"({naive['macs'] / reduced['macs']:.1f}x fewer)")
    smaller = Verdict("holds" if reduced["params"] < naive["params"] else "does not hold",
                      "holds if the network with reductions has fewer parameters",
                      f"{reduced['params']:,} vs {naive['params']:,} parameters")
    labels = tuple(VARIANTS)
    accurate = verdict_from_difference(test_acc[labels[0]], test_acc[labels[1]], claim_a_better=False,
                                       what="test accuracy", labels=("with reductions", "naive"))
    return combine_verdicts([("cost", cheaper), ("parameters", smaller), ("accuracy", accurate)])


@register_experiment
class Bottlenecks(Experiment):
    """GoogLeNet-style Inception modules with and without 1x1 reductions."""

    name = "bottlenecks"
    claim = "1x1 bottlenecks cut an Inception module's cost without costing accuracy"
    source = "003: GoogleNet; 000: GoogLeNet, Network In Networks"
    minutes = {"quick": 8, "full": 60}

    def run(self, ctx: Context) -> Outcome:
        plan = PLANS[ctx.budget]
        seeds = ctx.seed_list()
        jobs = [Job(f"{KEYS[label]}-s{s}", {**BASE, **plan.settings, "model": "probe_inception", "seed": s,
                                             "model_args": {"reductions": reductions, "width_mult": plan.width_mult}},
                    {"variant": label, "seed": s})
                for label, reductions in VARIANTS.items() for s in seeds]
        results = ctx.train(jobs)
        chance = 1 / next((r.result["num_classes"] for r in results.values() if r.status == "ok"), 10)
        shape = next((tuple(r.result["input_size"]) for r in results.values() if r.status == "ok"), (1, 28, 28))
        test_acc = {label: [metric(results[f"{KEYS[label]}-s{s}"], "test_accuracy", chance) for s in seeds]
                    for label in VARIANTS}
        counts = {label: module_counts(reductions, plan.width_mult, shape) for label, reductions in VARIANTS.items()}
        seconds = {label: [results[f"{KEYS[label]}-s{s}"].result.get("train_seconds") for s in seeds]
                   for label in VARIANTS}
        verdict = decide(counts, test_acc)
        from cnnlab.plots import variants_figure

        figure = variants_figure([{"label": label, "group": 0, "accuracy": test_acc[label], **counts[label]}
                                  for label in VARIANTS],
                                 title=figure_title(self.name, ctx.budget, len(seeds)))
        numbers = {
            "variants": {label: {**counts[label], "test_accuracy": test_acc[label],
                                 "train_seconds": seconds[label]} for label in VARIANTS},
            "test_accuracy_summary": series_stats(test_acc),
            "model": {"name": "probe_inception", "width_mult": plan.width_mult},
        }
        notes = [budget_note(ctx.budget, plan.settings),
                 "Both networks have the same stem, the same 1x1, 3x3 and 5x5 branch widths and the same "
                 "classifier; the naive modules' outputs are wider because their pooling branch keeps every "
                 f"input channel ({counts[tuple(VARIANTS)[1]]['out_channels']} against "
                 f"{counts[tuple(VARIANTS)[0]]['out_channels']} features at the end)."]
        return Outcome(numbers, figure, verdict, notes)
