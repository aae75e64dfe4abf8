"""small-kernels: stacked 3x3 convolutions see as far as one large kernel, with fewer parameters, and do at
least as well.

Claim (notes 003, "VGGNet": "stack of 3x3 conv (stride 1) layers has the same receptive field as one 7x7
conv layer ... fewer parameters 3*(3^2 C^2) vs 7^2 C^2 for C channels per layer"; notes 004, "Layer
Sizing Patterns": "the conv layers should be using small filters (e.g. 3x3 or at most 5x5)"; Simonyan &
Zisserman 2015, Sec. 2.3).

Measured: the VGG-style probe (``probe_vgg``) with C channels in every layer and each of its three
stages either three 3x3 conv layers or one 7x7 (and, as a second pair, two 3x3 layers or one 5x5).
For each pair, three parts: the receptive field of every stage is the same (traced by
``cnnlab.analysis``), the stack has fewer parameters (counted), and its test accuracy is not worse by
more than twice the larger seed spread. The claim holds when every part of both pairs holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from cnnlab.analysis.counting import count_macs, count_params
from cnnlab.analysis.summary import layer_fields
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

__all__ = ["PAIRS", "SmallKernels", "decide", "variant_counts"]

# (label, convs per stage, kernel size): each pair is (the stack of 3x3 layers, the one large kernel).
PAIRS: tuple[tuple[tuple[str, int, int], tuple[str, int, int]], ...] = (
    (("three 3x3", 3, 3), ("one 7x7", 1, 7)),
    (("two 3x3", 2, 3), ("one 5x5", 1, 5)),
)


@dataclass(frozen=True)
class Plan:
    """A budget's network width (the same C in every layer), stages and training settings."""

    width: int
    stages: int
    settings: dict[str, Any] = field(default_factory=dict)


PLANS = {
    "tiny": Plan(4, 2, {**TINY_DATA, "epochs": 1}),
    "quick": Plan(32, 3, {"train_subset": 10000, "val_split": 2000, "epochs": 3, "batch_size": 128, "lr": 0.05}),
    "full": Plan(32, 3, {"train_subset": 40000, "val_split": 5000, "epochs": 5, "batch_size": 128, "lr": 0.05}),
}


def _slug(label: str) -> str:
    return label.replace(" ", "-")


def _model_args(plan: Plan, convs: int, kernel: int) -> dict[str, Any]:
    return {"widths": (plan.width,) * plan.stages, "convs_per_stage": convs, "kernel_size": kernel}


def variant_counts(model_args: dict[str, Any], input_size: tuple[int, int, int] = (1, 28, 28)) -> dict[str, Any]:
    """Parameters, MACs per image and every stage's receptive field of one variant (10 classes)."""
    with torch.device("meta"):
        model = create_model("probe_vgg", num_classes=10, in_chans=input_size[0], **model_args)
    fields = layer_fields(model, input_size)
    stages = [f.module for f in model.feature_info]
    return {"params": count_params(model), "macs": count_macs(model, input_size),
            "receptive_fields": [fields[s].as_dict()["size"] for s in stages]}


def decide(counts: dict[str, dict[str, Any]], test_acc: dict[str, list[float]]) -> Verdict:
    """The verdict from each variant's counts and per-seed test accuracies, keyed by variant label."""
    parts = []
    for (stack, _, _), (large, _, _) in PAIRS:
        a, b = counts[stack], counts[large]
        same = a["receptive_fields"] == b["receptive_fields"]
        parts.append((f"{stack} vs {large}: receptive field", Verdict(
            "holds" if same else "does not hold", "holds if every stage's receptive field is the same",
            f"receptive field per stage {a['receptive_fields']} vs {b['receptive_fields']} pixels")))
        parts.append((f"{stack} vs {large}: parameters", Verdict(
            "holds" if a["params"] < b["params"] else "does not hold", "holds if the stack has fewer parameters",
            f"{a['params']:,} vs {b['params']:,} parameters ({a['params'] / b['params']:.2f}x)")))
        parts.append((f"{stack} vs {large}: accuracy", verdict_from_difference(
            test_acc[stack], test_acc[large], claim_a_better=False, what="test accuracy", labels=(stack, large))))
    return combine_verdicts(parts)


@register_experiment
class SmallKernels(Experiment):
    """Stacks of 3x3 convolutions against one 7x7 (and one 5x5) at matched receptive field."""

    name = "small-kernels"
    claim = ("three stacked 3x3 convolutions see as far as one 7x7 with fewer parameters and do at least as well "
             "(two 3x3 and one 5x5 alike)")
    source = "003: VGGNet; 004: Layer Sizing Patterns"
    minutes = {"quick": 7, "full": 40}

    def run(self, ctx: Context) -> Outcome:
        plan = PLANS[ctx.budget]
        seeds = ctx.seed_list()
        variants = [v for pair in PAIRS for v in pair]
        jobs = [Job(f"{_slug(label)}-s{s}", {**BASE, **plan.settings, "model": "probe_vgg", "seed": s,
                                              "model_args": _model_args(plan, convs, kernel)},
                    {"variant": label, "seed": s})
                for label, convs, kernel in variants for s in seeds]
        results = ctx.train(jobs)
        chance = 1 / next((r.result["num_classes"] for r in results.values() if r.status == "ok"), 10)
        test_acc = {label: [metric(results[f"{_slug(label)}-s{s}"], "test_accuracy", chance) for s in seeds]
                    for label, _, _ in variants}
        shape = next((tuple(r.result["input_size"]) for r in results.values() if r.status == "ok"), (1, 28, 28))
        counts = {label: variant_counts(_model_args(plan, convs, kernel), shape) for label, convs, kernel in variants}
        verdict = decide(counts, test_acc)
        from cnnlab.plots import variants_figure

        figure = variants_figure(
            [{"label": label, "group": pair_index, "accuracy": test_acc[label], **counts[label]}
             for pair_index, pair in enumerate(PAIRS) for label, _, _ in pair],
            title=figure_title(self.name, ctx.budget, len(seeds), f"{plan.width} channels in every layer"))
        numbers = {
            "variants": {label: {"convs_per_stage": convs, "kernel_size": kernel, **counts[label],
                                 "test_accuracy": test_acc[label]} for label, convs, kernel in variants},
            "test_accuracy_summary": series_stats(test_acc),
            "model": {"name": "probe_vgg", "widths": [plan.width] * plan.stages},
        }
        notes = [budget_note(ctx.budget, plan.settings),
                 f"Every layer has {plan.width} channels, so a stage's weights are exactly the notes' "
                 f"3(3^2 C^2) against 7^2 C^2 (plus the norms' scales and shifts); MACs are per "
                 f"{shape[1]}x{shape[2]} image."]
        return Outcome(numbers, figure, verdict, notes)
