"""What a run learns and measures, as one object the loop calls: image classification or semantic segmentation.

The loop (loop.py) is the same for both: config, checkpoints, exact resume, DDP, time budgets, progress.
A ``Task`` says how one batch's loss and hit count are computed, how a split is evaluated, which
validation number selects the weights (and drives the plateau schedule), and what the metrics rows and
results.json hold besides the common columns. ``task_for`` picks it from the data the run trains on.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.data import BatchAugment, BatchSource
from cnnlab.errors import ConfigError, InputSizeError
from cnnlab.models.unet import center_crop
from cnnlab.train.config import TrainConfig
from cnnlab.train.distributed import DistEnv
from cnnlab.train.evaluate import evaluate
from cnnlab.train.inputs import DataMeta
from cnnlab.train.segment import evaluate_segmentation

__all__ = ["ClassificationTask", "SegmentationTask", "Task", "check_task_settings", "soft_dice_loss", "task_for"]

# Settings that only a segmentation run reads, with the value that means "not used".
_SEGMENTATION_ONLY = {"class_weights": [], "dice_loss": 0.0, "crop_scale": [1.0, 1.0], "train_crop": None}
# Classification augmentations that have no per-pixel meaning here.
_CLASSIFICATION_ONLY = {"mixup": 0.0, "cutmix": 0.0, "random_erasing": 0.0}


class Task:
    """The interface: loss, hits, evaluation, selection score and the extra columns of a task."""

    name: str = ""
    score_key: str = "accuracy"  # the validation metric that selects the weights and drives --schedule plateau
    score_label: str = "accuracy"

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def hits(self, logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Correct predictions of a batch in images (a device tensor: no sync), for the running accuracy."""
        raise NotImplementedError

    def evaluate(self, model: nn.Module, source: BatchSource, augment: BatchAugment,
                 amp_dtype: torch.dtype | None = None, tta_flip: bool = False, env: DistEnv | None = None,
                 **options: Any) -> dict:
        """Metrics of ``model`` over a whole split: at least loss, accuracy (a fraction) and count (images).

        ``options`` are the classification evaluation's (``topk``, ``ten_crop``, ``progress``, ``confusion``);
        a task they do not apply to ignores them.
        """
        raise NotImplementedError

    def score(self, metrics: dict) -> float:
        return metrics[self.score_key]

    def check_model(self, model: nn.Module, in_chans: int) -> None:
        """Refuse, before training, settings the built network cannot take."""

    def epoch_columns(self, val: dict | None) -> dict:
        """Columns the metrics row of an epoch holds besides the common ones."""
        return {}

    def result_fields(self, test: dict) -> dict:
        """Fields results.json holds besides the common ones."""
        return {}


class ClassificationTask(Task):
    """Image classification: cross-entropy on class indices (or mixed soft targets), top-1 accuracy."""

    name = "classification"

    def __init__(self, cfg: TrainConfig) -> None:
        check_task_settings(cfg, self.name)
        self.label_smoothing = cfg.label_smoothing

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), target, label_smoothing=self.label_smoothing)

    def hits(self, logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (logits.argmax(1) == y).sum()

    def evaluate(self, model, source, augment, amp_dtype=None, tta_flip=False, env=None, **options) -> dict:
        return evaluate(model, source, augment, amp_dtype, tta_flip, env, **options)

    def result_fields(self, test: dict) -> dict:
        # Top-k accuracy of the test split, under torchvision's name (acc@5 = top5_accuracy).
        return {key: value for key, value in test.items() if key.startswith("top") and key.endswith("_accuracy")}


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """1 - the mean over classes of the soft Dice 2 sum(p g) / (sum p + sum g), over the batch's counted pixels.

    Milletari et al. 2016 (V-Net), Eq. 1, with the softmax probabilities p and one-hot targets g of every
    class pooled over the batch; 1 is added to numerator and denominator so that a class absent from both
    scores 1 rather than 0/0.
    """
    num_classes = logits.shape[1]
    valid = target != ignore_index  # (B, H, W)
    label = target.masked_fill(~valid, 0)
    probs = logits.float().softmax(1)
    # sum(p g) per class is the true class's probability summed over that class's pixels: no one-hot map
    # (B, K, H, W) is built, which made the Dice term a sixth of a compact U-Net's step on the CPU.
    true_prob = probs.gather(1, label.unsqueeze(1)).squeeze(1) * valid
    inter = true_prob.new_zeros(num_classes).index_add_(0, label.flatten(), true_prob.flatten())
    prob_sum = (probs * valid.unsqueeze(1)).sum((0, 2, 3))
    label_sum = torch.bincount(label[valid], minlength=num_classes).to(prob_sum.dtype)
    return 1 - ((2 * inter + 1) / (prob_sum + label_sum + 1)).mean()


class SegmentationTask(Task):
    """Semantic segmentation: per-pixel cross-entropy (+ Dice), pixel accuracy; weights selected by mIoU."""

    name = "segmentation"
    score_key = "miou"
    score_label = "mIoU"

    def __init__(self, cfg: TrainConfig, meta: DataMeta) -> None:
        check_task_settings(cfg, self.name)
        self.classes = list(meta.classes)
        self.num_classes = len(self.classes)
        self.ignore_index = cfg.ignore_index
        self.label_smoothing = cfg.label_smoothing
        self.dice_weight = cfg.dice_loss
        if cfg.class_weights and len(cfg.class_weights) != self.num_classes:
            raise ConfigError(f"class_weights gives {len(cfg.class_weights)} weights for the "
                              f"{self.num_classes} classes {', '.join(self.classes)}; give one per class")
        self.class_weights = list(cfg.class_weights) or None
        self.train_crop = cfg.train_crop
        self._weights: dict[torch.device, torch.Tensor] = {}

    def check_model(self, model: nn.Module, in_chans: int) -> None:
        """A --train-crop window must be an input the network takes (a U-Net: a multiple of 2^depth)."""
        check = getattr(model, "check_input", None)
        if not self.train_crop or check is None:
            return
        try:
            check(torch.empty(1, in_chans, self.train_crop, self.train_crop, device="meta"))
        except InputSizeError as err:
            raise ConfigError(f"--train-crop {self.train_crop}: {err}") from None

    def _weight(self, device: torch.device) -> torch.Tensor | None:
        if self.class_weights is None:
            return None
        if device not in self._weights:
            self._weights[device] = torch.tensor(self.class_weights, dtype=torch.float32, device=device)
        return self._weights[device]

    def crop(self, target: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """The target's centre that a valid-convolution U-Net's smaller output covers (the whole map otherwise)."""
        return center_crop(target, *logits.shape[-2:]) if target.shape[-2:] != logits.shape[-2:] else target

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = self.crop(target, logits)
        weight = self._weight(logits.device)
        per_pixel = F.cross_entropy(logits.float(), target, weight=weight, ignore_index=self.ignore_index,
                                    label_smoothing=self.label_smoothing, reduction="none")  # (B, H, W)
        valid = target != self.ignore_index
        # The weighted mean PyTorch takes, kept finite for a batch of ignored pixels only.
        counted = weight[target.masked_fill(~valid, 0)].masked_fill(~valid, 0).sum() if weight is not None \
            else valid.sum()
        loss = per_pixel.sum() / counted.clamp_min(1)
        if self.dice_weight:
            loss = loss + self.dice_weight * soft_dice_loss(logits, target, self.ignore_index)
        return loss

    def hits(self, logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The batch's pixel accuracy times its image count: the running accuracy is then pixel accuracy."""
        target = self.crop(target, logits)
        valid = target != self.ignore_index
        correct = ((logits.argmax(1) == target) & valid).sum()
        return correct * len(target) / valid.sum().clamp_min(1)

    def evaluate(self, model, source, augment, amp_dtype=None, tta_flip=False, env=None, **options) -> dict:
        return evaluate_segmentation(model, source, augment, self.classes, self.ignore_index, amp_dtype, tta_flip,
                                     env)

    def epoch_columns(self, val: dict | None) -> dict:
        keys = ("miou", "dice", "class_iou")
        return {f"val_{k}": val[k] if val else None for k in keys}

    def result_fields(self, test: dict) -> dict:
        return {
            "task": self.name,
            "test_pixel_accuracy": test["accuracy"],
            "test_miou": test["miou"],
            "test_dice": test["dice"],
            "test_class_iou": test["class_iou"],
            "test_pixels": test["pixels"],
            "ignore_index": self.ignore_index,
        }


def check_task_settings(cfg: TrainConfig, task: str) -> None:
    """Refuse the settings of the other task (before any data is loaded): they would be silently ignored."""
    if task == "segmentation":
        _refuse(cfg, _CLASSIFICATION_ONLY, "classification (they mix or erase images, not label maps)")
    else:
        _refuse(cfg, _SEGMENTATION_ONLY, "segmentation networks")


def _refuse(cfg: TrainConfig, unused: dict, owner: str) -> None:
    given = [k for k, off in unused.items() if getattr(cfg, k) != off]
    if given:
        one = len(given) == 1
        raise ConfigError(f"{', '.join(given)} {'applies' if one else 'apply'} to {owner}; leave "
                          f"{'it' if one else 'them'} out for {cfg.model}")


def task_for(cfg: TrainConfig, meta: DataMeta) -> Task:
    """The task of a run on the data ``meta`` describes."""
    return SegmentationTask(cfg, meta) if meta.task == "segmentation" else ClassificationTask(cfg)
