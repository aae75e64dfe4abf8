"""Semantic-segmentation metrics from one confusion matrix: pixel accuracy, IoU per class, mean IoU, Dice.

The matrix is summed over every batch of a split (and every process) before any ratio is taken, so the
numbers are those of the split's pixels pooled together, not averages of per-batch numbers (Pascal VOC's
measure, Everingham et al. 2010, Sec. 4.3; Long et al. 2015, FCN, Sec. 5: pixel accuracy and mean IU).

For class c with true positives TP, false positives FP and false negatives FN:
IoU = TP / (TP + FP + FN) and Dice = 2 TP / (2 TP + FP + FN). A class absent from both the targets and
the predictions (TP + FP + FN = 0) has no IoU: it is left out of the means (and reported as None), as
Pascal VOC does for classes a test set does not contain. Pixels whose target is ``ignore_index`` count
nowhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cnnlab.errors import DataError

__all__ = ["SegmentationScores", "confusion_matrix", "segmentation_scores"]


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                     ignore_index: int = 255) -> torch.Tensor:
    """(K, K) int64 pixel counts, row = true class, column = predicted class; ``ignore_index`` pixels left out."""
    valid = target != ignore_index
    t = target[valid].long()
    p = pred[valid].long()
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= num_classes):
        raise DataError(f"a label map holds class {int(t.max())}, outside 0..{num_classes - 1} and not the "
                        f"ignore index {ignore_index}")
    return torch.bincount(t * num_classes + p, minlength=num_classes * num_classes).view(num_classes, num_classes)


@dataclass(frozen=True)
class SegmentationScores:
    """The measures of one confusion matrix; per-class lists hold None for classes with no IoU."""

    pixel_accuracy: float  # correct pixels / counted pixels
    miou: float  # mean IoU over the classes that have one
    dice: float  # mean Dice over the same classes
    class_iou: list[float | None]
    class_dice: list[float | None]
    pixels: int  # pixels counted (ignore_index left out)


def segmentation_scores(conf: torch.Tensor) -> SegmentationScores:
    """Pixel accuracy, per-class and mean IoU and Dice of a (K, K) confusion matrix (rows: truth)."""
    conf = conf.double().cpu()
    tp = conf.diag()
    fp = conf.sum(0) - tp
    fn = conf.sum(1) - tp
    union = tp + fp + fn
    present = union > 0
    iou = torch.where(present, tp / union.clamp_min(1), torch.zeros_like(tp))
    dice = torch.where(present, 2 * tp / (union + tp).clamp_min(1), torch.zeros_like(tp))
    total = float(conf.sum())
    count = int(present.sum())
    return SegmentationScores(
        pixel_accuracy=float(tp.sum()) / total if total else 0.0,
        miou=float(iou[present].sum()) / count if count else 0.0,
        dice=float(dice[present].sum()) / count if count else 0.0,
        class_iou=[float(v) if ok else None for v, ok in zip(iou.tolist(), present.tolist())],
        class_dice=[float(v) if ok else None for v, ok in zip(dice.tolist(), present.tolist())],
        pixels=int(total),
    )
