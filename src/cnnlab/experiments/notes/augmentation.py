"""augmentation: data augmentation reduces overfitting.

Claim (notes 000, "AlexNet": "made use of modernized techniques such as Image Augmentation, Dropout";
notes 003, "AlexNet": "heavy data augmentations (flipping, jittering, cropping, etc.)"; Krizhevsky et al.
2012, Sec. 4.1: augmentation is their first means "to reduce overfitting").

Measured: the VGG-style probe (``probe_vgg``) trained for many epochs on a small subset of the training
images, with augmentation off and on (random crops after 2-pixel zero padding, horizontal flips and
random erasing, all per batch on the device). The training and validation error are logged every epoch
(the test set is evaluated once per network, at the end, with the weights of the best validation epoch);
those weights are also evaluated on the training images without augmentation. Two parts, each by the
catalogue's difference rule (twice the larger seed spread):

- less overfitting: the generalization gap (accuracy on the un-augmented training images minus test
  accuracy) is smaller with augmentation;
- better generalization: the test accuracy is higher with augmentation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cnnlab.experiments.catalogue import (
    Context,
    Experiment,
    Outcome,
    combine_verdicts,
    register_experiment,
    verdict_from_difference,
)
from cnnlab.experiments.jobs import Job
from cnnlab.experiments.notes._runs import BASE, TINY_DATA, budget_note, figure_title, metric, series_stats
from cnnlab.train.evaluate import evaluate, load_trained_model
from cnnlab.train.inputs import augment_from_meta, load_eval_source
from cnnlab.train.runtime import select_device

__all__ = ["AUGMENT", "Augmentation", "decide", "train_accuracy"]

# The augmentation switched on, fixed before any run: the crops, flips and erasing of the issue.
AUGMENT: dict[str, Any] = {"crop_padding": 2, "hflip": True, "random_erasing": 0.25}
ARMS = {"off": {"crop_padding": 0, "hflip": False, "random_erasing": 0.0}, "on": AUGMENT}
LABELS = {"off": "no augmentation", "on": "crops, flips, erasing"}


@dataclass(frozen=True)
class Plan:
    """A budget's network options and training settings (a small training set, many epochs)."""

    model_args: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)


PLANS = {
    "tiny": Plan({"widths": (4, 8), "convs_per_stage": 1}, {**TINY_DATA, "epochs": 2}),
    "quick": Plan({"widths": (16, 32, 64), "convs_per_stage": 2},
                  {"train_subset": 4000, "val_split": 1000, "epochs": 30, "batch_size": 128, "lr": 0.05}),
    "full": Plan({"widths": (32, 64, 128), "convs_per_stage": 2},
                 {"train_subset": 10000, "val_split": 2000, "epochs": 40, "batch_size": 128, "lr": 0.05}),
}


def train_accuracy(run_dir, data_dir: str | None = None, device: str = "auto") -> float:
    """Accuracy of a run's kept weights (best.pt, else last.pt) on its training images, un-augmented."""
    dev = select_device(device)
    path = run_dir / "best.pt" if (run_dir / "best.pt").exists() else run_dir / "last.pt"
    model, ckpt = load_trained_model(path, dev)
    source = load_eval_source(ckpt.data, "train", ckpt.config.eval_batch_size, dev, ckpt.config, data_dir)
    return evaluate(model, source, augment_from_meta(ckpt.data))["accuracy"]


def decide(train_acc: dict[str, list[float]], test_acc: dict[str, list[float]]):
    """The verdict from per-seed clean training and test accuracies of both arms ("off", "on")."""
    gap = {arm: [tr - te for tr, te in zip(train_acc[arm], test_acc[arm])] for arm in ARMS}
    less = verdict_from_difference(gap["on"], gap["off"], claim_a_better=True, higher_is_better=False,
                                   what="generalization gap (training minus test accuracy)",
                                   labels=("with augmentation", "without"))
    better = verdict_from_difference(test_acc["on"], test_acc["off"], claim_a_better=True, what="test accuracy",
                                     labels=("with augmentation", "without"))
    return combine_verdicts([("less overfitting", less), ("better test accuracy", better)]), gap


@register_experiment
class Augmentation(Experiment):
    """Crops, flips and random erasing on and off: training and validation error over the epochs."""

    name = "augmentation"
    claim = "data augmentation reduces overfitting"
    source = "000: AlexNet; 003: AlexNet"
    minutes = {"quick": 4, "full": 40}

    def run(self, ctx: Context) -> Outcome:
        plan = PLANS[ctx.budget]
        seeds = ctx.seed_list()
        jobs = [Job(f"aug-{arm}-s{s}", {**BASE, **plan.settings, **ARMS[arm], "model": "probe_vgg",
                                         "model_args": plan.model_args, "seed": s}, {"augment": arm, "seed": s})
                for arm in ARMS for s in seeds]
        results = ctx.train(jobs)
        chance = 1 / next((r.result["num_classes"] for r in results.values() if r.status == "ok"), 10)
        test_acc = {arm: [metric(results[f"aug-{arm}-s{s}"], "test_accuracy", chance) for s in seeds] for arm in ARMS}
        train_acc = {arm: [train_accuracy(ctx.run_dir(f"aug-{arm}-s{s}"), ctx.data.get("data_dir"))
                           if results[f"aug-{arm}-s{s}"].status == "ok" else chance for s in seeds] for arm in ARMS}
        verdict, gap = decide(train_acc, test_acc)
        histories = {arm: [ctx.history(f"aug-{arm}-s{s}") for s in seeds] for arm in ARMS}
        from cnnlab.plots import augmentation_figure

        figure = augmentation_figure({LABELS[arm]: histories[arm] for arm in ARMS},
                                     {LABELS[arm]: test_acc[arm] for arm in ARMS},
                                     {LABELS[arm]: train_acc[arm] for arm in ARMS},
                                     title=figure_title(self.name, ctx.budget, len(seeds)))
        numbers = {
            "augmentation": AUGMENT,
            "test_accuracy": test_acc,
            "clean_train_accuracy": train_acc,
            "generalization_gap": gap,
            "test_accuracy_summary": series_stats(test_acc),
            "history": {arm: [[{k: row.get(k) for k in ("epoch", "train_loss", "train_accuracy", "val_loss",
                                                         "val_accuracy")} for row in h] for h in histories[arm]]
                        for arm in ARMS},
            "model": {"name": "probe_vgg", **plan.model_args},
        }
        notes = [budget_note(ctx.budget, plan.settings),
                 "The training error in the figure is measured on the batches as trained (augmented when "
                 "augmentation is on); the gap in the verdict uses the un-augmented training images instead.",
                 "The test error is not followed over the epochs: the test set is evaluated once per network, "
                 "so the figure follows the validation error."]
        return Outcome(numbers, figure, verdict, notes)
