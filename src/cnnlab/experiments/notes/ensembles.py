"""ensembles: averaging the softmax outputs of several independently trained CNNs beats the best of them.

Claim (notes 003, "AlexNet": "7 CNN ensemble: 18.2% -> 15.4%" top-5 error; Krizhevsky et al. 2012,
Sec. 6): an ensemble of networks has a lower error than its members. The figure also shows how the
error falls with the number of members k; the verdict judges the whole ensemble.

Measured: groups of k = 7 copies of the VGG-style probe (``probe_vgg``) that differ only in their seed
(initial weights, data order); each group is one seed of the experiment. Every member's test-set
probabilities are computed once; the ensemble of k members averages them (softmax averaging, as AlexNet
and ``cnnlab.train.ensemble_checkpoints`` do), over every subset of k members of a group (at most 35),
k = 1..7. The rule (the catalogue's difference rule, twice the larger spread over groups): the test
accuracy of the whole ensemble beats that of the group's best single member, the member with the best
validation accuracy (never picked on the test set).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cnnlab.experiments.catalogue import (
    Context,
    Experiment,
    Outcome,
    Verdict,
    mean_and_spread,
    register_experiment,
    verdict_from_difference,
)
from cnnlab.experiments.jobs import Job
from cnnlab.experiments.notes._runs import BASE, TINY_DATA, budget_note, mean_spread_text
from cnnlab.train.evaluate import load_trained_model, predict_logits
from cnnlab.train.inputs import augment_from_meta, load_eval_source
from cnnlab.train.runtime import select_device

__all__ = ["Ensembles", "decide", "ensemble_accuracies", "member_probabilities"]

MAX_SUBSETS = 35  # C(7, 3): every subset of 7 members for each k; larger groups are sampled evenly


@dataclass(frozen=True)
class Plan:
    """A budget's ensemble size, the members' network options and their training settings."""

    members: int
    model_args: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)


PLANS = {
    "tiny": Plan(3, {"widths": (4, 8), "convs_per_stage": 1}, {**TINY_DATA, "epochs": 1}),
    "quick": Plan(7, {"widths": (16, 32, 64), "convs_per_stage": 2},
                  {"train_subset": 10000, "val_split": 2000, "epochs": 3, "batch_size": 128, "lr": 0.05}),
    "full": Plan(7, {"widths": (16, 32, 64), "convs_per_stage": 2},
                 {"val_split": 5000, "epochs": 8, "batch_size": 128, "lr": 0.05}),
}


def _key(group: int, member: int) -> str:
    return f"g{group}-m{member}"


def member_probabilities(run_dirs: list[Path], data_dir: str | None = None,
                         device: str = "auto") -> tuple[list[torch.Tensor], torch.Tensor]:
    """(softmax probabilities (N, K) of each trained run on the test set, labels (N,)), computed once each
    with the weights the run kept (best.pt, else last.pt)."""
    dev = select_device(device)
    probs, labels, source = [], None, None
    for run_dir in run_dirs:
        path = run_dir / "best.pt" if (run_dir / "best.pt").exists() else run_dir / "last.pt"
        model, ckpt = load_trained_model(path, dev)
        if source is None:  # every member trained on the same data: load the test split once
            source = load_eval_source(ckpt.data, "test", ckpt.config.eval_batch_size, dev, ckpt.config, data_dir)
        logits, y = predict_logits(model, source, augment_from_meta(ckpt.data), tta_flip=ckpt.config.tta_flip)
        probs.append(logits.softmax(1))
        labels = y if labels is None else labels
    return probs, labels


def ensemble_accuracies(probs: list[torch.Tensor], labels: torch.Tensor,
                        max_subsets: int = MAX_SUBSETS) -> dict[int, float]:
    """k -> test accuracy of the softmax-averaged ensemble of k members, averaged over subsets of k."""
    out = {}
    for k in range(1, len(probs) + 1):
        subsets = list(itertools.combinations(range(len(probs)), k))
        if len(subsets) > max_subsets:  # an even sample, so the mean stays unbiased over members
            step = len(subsets) / max_subsets
            subsets = [subsets[int(i * step)] for i in range(max_subsets)]
        accs = [float((sum(probs[i] for i in subset).argmax(1) == labels).double().mean()) for subset in subsets]
        out[k] = sum(accs) / len(accs)
    return out


def decide(full_ensemble: list[float], best_member: list[float]) -> Verdict:
    """The verdict from per-group test accuracies of the whole ensemble and of its best member."""
    return verdict_from_difference(full_ensemble, best_member, claim_a_better=True, what="test accuracy",
                                   labels=("the whole ensemble", "its best member (chosen on validation)"))


@register_experiment
class Ensembles(Experiment):
    """k = 1..7 independently trained networks, softmax-averaged, against the best single member."""

    name = "ensembles"
    claim = "an ensemble of CNNs, their softmax outputs averaged, beats its best member (AlexNet's 7 CNNs)"
    source = "003: AlexNet (7 CNN ensemble)"
    minutes = {"quick": 5, "full": 45}

    def run(self, ctx: Context) -> Outcome:
        plan = PLANS[ctx.budget]
        groups, members = ctx.seed_list(), range(plan.members)
        jobs = [Job(_key(g, m), {**BASE, **plan.settings, "model": "probe_vgg", "model_args": plan.model_args,
                                 "seed": g * plan.members + m}, {"group": g, "member": m})
                for g in groups for m in members]
        results = ctx.train(jobs)
        failed = sorted(k for k, r in results.items() if r.status != "ok")
        curve: dict[int, list[float]] = {}
        full, best, mean_member, per_group = [], [], [], {}
        for g in groups:
            keys = [_key(g, m) for m in members if results[_key(g, m)].status == "ok"]
            if not keys:
                continue
            probs, labels = member_probabilities([ctx.run_dir(k) for k in keys], ctx.data.get("data_dir"))
            by_k = ensemble_accuracies(probs, labels)
            chosen = max(keys, key=lambda k: results[k].result.get("best_val_accuracy") or 0.0)
            member_acc = [float((p.argmax(1) == labels).double().mean()) for p in probs]
            full.append(by_k[len(keys)])
            best.append(member_acc[keys.index(chosen)])
            mean_member.append(sum(member_acc) / len(member_acc))
            per_group[str(g)] = {"members": keys, "member_test_accuracy": member_acc,
                                 "best_member_by_validation": chosen, "ensemble_test_accuracy": by_k}
            for k, acc in by_k.items():
                curve.setdefault(k, []).append(acc)
        verdict = decide(full, best) if full else Verdict(
            "inconclusive at this budget", "needs trained members", "every member failed to train")
        from cnnlab.plots import ensemble_figure

        figure = ensemble_figure({k: [1 - a for a in v] for k, v in curve.items()},
                                 best_member=[1 - a for a in best], mean_member=[1 - a for a in mean_member],
                                 title=f"{self.name} ({ctx.budget}, {len(full)} group{'s' if len(full) != 1 else ''} "
                                       f"of {plan.members})")
        numbers = {
            "groups": per_group,
            "ensemble_test_accuracy_by_k": {str(k): v for k, v in curve.items()},
            "ensemble_test_error_by_k": {str(k): {"mean": 1 - mean_and_spread(v)[0], "std": mean_and_spread(v)[1]}
                                         for k, v in curve.items()},
            "whole_ensemble_test_accuracy": full,
            "best_member_test_accuracy": best,
            "mean_member_test_accuracy": mean_member,
            "failed_runs": failed,
            "model": {"name": "probe_vgg", **plan.model_args},
        }
        notes = [budget_note(ctx.budget, plan.settings),
                 f"Each seed of the experiment is a group of {plan.members} networks trained with their own "
                 f"seeds; an ensemble's accuracy for k members is the mean over subsets of k members of a group.",
                 f"Mean single member: {mean_spread_text(mean_member)}." if mean_member else ""]
        if failed:
            notes.append(f"Failed to train (left out of their group): {', '.join(failed)}.")
        return Outcome(numbers, figure, verdict, [n for n in notes if n])
