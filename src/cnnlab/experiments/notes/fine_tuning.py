"""fine-tuning: with little labelled data, fine-tune a pretrained network rather than train one from scratch.

Claim (notes 004, "Advice for Architecture": "don't be a hero ... download a pretrained model and finetune
it on your data. You should rarely ever have to train a ConvNet from scratch"; CS231n's transfer-learning
notes: with a small data set, train a linear classifier on the pretrained features or fine-tune).

Measured: the VGG-style probe (``probe_vgg``) is pretrained on one half of the classes (0-4: on
Fashion-MNIST the tops, trousers, pullovers, dresses and coats) and then trained on the other half (5-9:
sandals, shirts, sneakers, bags, ankle boots) with 1%, 10% and 100% of their training labels, three ways:
from scratch, fine-tuned from the pretrained weights with a fresh classifier (``--init --new-head``,
every layer trained at a fifth of the learning rate) and with the pretrained backbone frozen (only the
new classifier trained). The rule (the catalogue's difference rule, twice the larger seed spread) at the
smallest label fraction: the better way of using the pretrained network, frozen or fine-tuned (chosen on
the validation split), beats training from scratch on test accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cnnlab.experiments.catalogue import (
    Context,
    Experiment,
    Outcome,
    mean_and_spread,
    register_experiment,
    verdict_from_difference,
)
from cnnlab.experiments.jobs import Job
from cnnlab.experiments.notes._runs import BASE, TINY_DATA, budget_note, figure_title, metric, series_stats

__all__ = ["FineTuning", "decide"]

SOURCE_CLASSES, TARGET_CLASSES = [0, 1, 2, 3, 4], [5, 6, 7, 8, 9]
MODES = ("scratch", "fine-tuned", "frozen backbone")
SLUGS = {"scratch": "scratch", "fine-tuned": "finetune", "frozen backbone": "frozen"}
LR = 0.05
FINE_TUNE_LR = LR / 5  # pretrained weights move less: the usual smaller rate for fine-tuning, fixed beforehand


@dataclass(frozen=True)
class Plan:
    """A budget's pretraining, the label fractions with the epochs each gets, the network and shared settings."""

    pretrain: dict[str, Any]
    epochs: dict[float, int]  # label fraction -> epochs: small fractions get more passes, enough steps to learn
    model_args: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)


PLANS = {
    "tiny": Plan({"epochs": 1, "val_split": 0.25}, {0.5: 2, 1.0: 1}, {"widths": (4, 8), "convs_per_stage": 1},
                 {**{k: v for k, v in TINY_DATA.items() if k != "val_split"}, "batch_size": 16, "val_split": 0.25}),
    "quick": Plan({"train_subset": 10000, "val_split": 2000, "epochs": 3}, {0.01: 50, 0.1: 5, 1.0: 2},
                  {"widths": (16, 32, 64), "convs_per_stage": 2}, {"batch_size": 64, "val_split": 0.2}),
    "full": Plan({"val_split": 3000, "epochs": 10}, {0.01: 80, 0.1: 12, 1.0: 8},
                 {"widths": (16, 32, 64), "convs_per_stage": 2}, {"batch_size": 64, "val_split": 0.2}),
}


def _fraction_text(fraction: float) -> str:
    return f"{100 * fraction:g}%"


def _key(mode: str, fraction: float, seed: int) -> str:
    return f"{SLUGS[mode]}-{_fraction_text(fraction).rstrip('%')}pct-s{seed}"


def decide(test_acc: dict[str, dict[float, list[float]]], val_acc: dict[str, dict[float, list[float]]]):
    """The verdict at the smallest label fraction from per-seed numbers (mode -> fraction -> values), and
    the way of using the pretrained network chosen there on validation."""
    smallest = min(test_acc["scratch"])
    chosen = max(("fine-tuned", "frozen backbone"), key=lambda m: mean_and_spread(val_acc[m][smallest])[0])
    verdict = verdict_from_difference(
        test_acc[chosen][smallest], test_acc["scratch"][smallest], claim_a_better=True,
        what=f"test accuracy with {_fraction_text(smallest)} of the labels",
        labels=(f"pretrained, {chosen} (chosen on validation)", "from scratch"))
    return verdict, chosen


@register_experiment
class FineTuning(Experiment):
    """Pretrain on half the classes; fine-tune (or freeze) on the other half with 1/10/100% of the labels."""

    name = "fine-tuning"
    claim = ("with little labelled data, a pretrained network fine-tuned beats one trained from scratch "
             "(don't be a hero)")
    source = "004: Advice for Architecture"
    minutes = {"quick": 6, "full": 20}

    def run(self, ctx: Context) -> Outcome:
        plan = PLANS[ctx.budget]
        seeds, fractions = ctx.seed_list(), sorted(plan.epochs)
        common = {**BASE, **plan.settings, "model": "probe_vgg", "model_args": plan.model_args}
        pretrain = ctx.train([Job(f"pretrain-s{s}", {**common, **plan.pretrain, "classes": SOURCE_CLASSES,
                                                      "lr": LR, "seed": s}, {"seed": s}) for s in seeds])
        jobs = []
        for s in seeds:
            weights = ctx.run_dir(f"pretrain-s{s}").resolve() / "best.pt"
            if not weights.exists():
                weights = weights.with_name("last.pt")
            for fraction in fractions:
                data = {"classes": TARGET_CLASSES, "epochs": plan.epochs[fraction], "seed": s,
                        **({"train_subset": fraction} if fraction < 1 else {})}
                ways = {"scratch": {"lr": LR},
                        "fine-tuned": {"lr": FINE_TUNE_LR, "init": str(weights), "new_head": True},
                        "frozen backbone": {"lr": LR, "init": str(weights), "new_head": True, "freeze_backbone": True}}
                if pretrain[f"pretrain-s{s}"].status != "ok":
                    ways = {"scratch": ways["scratch"]}  # nothing to start from: the pretrained runs count as failed
                jobs += [Job(_key(mode, fraction, s), {**common, **data, **extra},
                             {"mode": mode, "fraction": fraction, "seed": s}) for mode, extra in ways.items()]
        results = ctx.train(jobs)
        chance = 1 / len(TARGET_CLASSES)

        def per_seed(key: str) -> dict[str, dict[float, list[float]]]:
            return {m: {f: [metric(results[_key(m, f, s)], key, chance) if _key(m, f, s) in results else chance
                            for s in seeds] for f in fractions} for m in MODES}

        test_acc, val_acc = per_seed("test_accuracy"), per_seed("best_val_accuracy")
        verdict, chosen = decide(test_acc, val_acc)
        from cnnlab.plots import fine_tuning_figure

        figure = fine_tuning_figure(test_acc, chance=chance,
                                    title=figure_title(self.name, ctx.budget, len(seeds)))
        failed = sorted(k for k, r in {**pretrain, **results}.items() if r.status != "ok")
        numbers = {
            "label_fractions": fractions,
            "epochs": {str(f): plan.epochs[f] for f in fractions},
            "pretrain_test_accuracy": [metric(r, "test_accuracy", chance) for r in pretrain.values()],
            "test_accuracy": {m: {str(f): v for f, v in test_acc[m].items()} for m in MODES},
            "best_val_accuracy": {m: {str(f): v for f, v in val_acc[m].items()} for m in MODES},
            "test_accuracy_summary": {m: series_stats(test_acc[m]) for m in MODES},
            "chosen_on_validation": chosen,
            "failed_runs": failed,
            "model": {"name": "probe_vgg", **plan.model_args},
        }
        gap = {f: mean_and_spread(test_acc[chosen][f])[0] - mean_and_spread(test_acc["scratch"][f])[0]
               for f in fractions}
        notes = [budget_note(ctx.budget, {**plan.settings, "epochs": plan.pretrain["epochs"],
                                          "train_subset": plan.pretrain.get("train_subset"),
                                          "val_split": plan.pretrain["val_split"]},
                             extra="That describes the pretraining on classes 0-4."),
                 f"Target classes 5-9: each label fraction is a stratified share of their training images, "
                 f"{_fraction_text(plan.settings['val_split'])} of it held out for validation; epochs per fraction "
                 + ", ".join(f"{_fraction_text(f)}: {plan.epochs[f]}" for f in fractions)
                 + f"; learning rate {LR:g} (scratch, frozen) and {FINE_TUNE_LR:g} (fine-tuned), fixed beforehand.",
                 "Advantage of the pretrained network over scratch (test accuracy, points): "
                 + ", ".join(f"{_fraction_text(f)} of the labels {100 * g:+.2f}" for f, g in gap.items()) + "."]
        if failed:
            notes.append(f"Failed (counted at chance accuracy): {', '.join(failed)}.")
        return Outcome(numbers, figure, verdict, notes)
