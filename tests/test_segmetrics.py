"""Segmentation metrics: one confusion matrix over the split, mIoU without absent classes, ignored pixels."""

from __future__ import annotations

import pytest
import torch

from cnnlab.errors import DataError
from cnnlab.train.segmetrics import confusion_matrix, segmentation_scores
from cnnlab.train.tasks import soft_dice_loss

IGNORE = 255
# Four classes; class 3 appears nowhere that counts: its one prediction falls on an ignored pixel.
TARGET = torch.tensor([[0, 0, 1, 1], [2, 2, IGNORE, 0]])
PRED = torch.tensor([[0, 1, 1, 1], [2, 0, 3, 0]])


def test_hand_computed_example_with_an_absent_class_and_an_ignored_pixel():
    conf = confusion_matrix(PRED, TARGET, num_classes=4, ignore_index=IGNORE)
    # The seven counted (target, prediction) pairs: (0,0) (0,1) (1,1) (1,1) (2,2) (2,0) (0,0).
    assert conf.tolist() == [[2, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]
    s = segmentation_scores(conf)
    # By hand: class 0 TP 2, FP 1 (a 2 taken for 0), FN 1 (a 0 taken for 1): IoU 2/4, Dice 4/6.
    #          class 1 TP 2, FP 1, FN 0: IoU 2/3, Dice 4/5.  class 2 TP 1, FP 0, FN 1: IoU 1/2, Dice 2/3.
    #          class 3: no pixel predicted or labelled 3 -> no IoU, left out of the means.
    assert s.class_iou == pytest.approx([0.5, 2 / 3, 0.5, None])
    assert s.class_dice == pytest.approx([2 / 3, 4 / 5, 2 / 3, None])
    assert s.miou == pytest.approx((0.5 + 2 / 3 + 0.5) / 3)  # 5/9; counting class 3 as 0 would give 5/12
    assert s.dice == pytest.approx((2 / 3 + 4 / 5 + 2 / 3) / 3)
    assert s.pixel_accuracy == pytest.approx(5 / 7) and s.pixels == 7


def test_a_class_only_predicted_counts_as_zero():
    conf = confusion_matrix(torch.tensor([0, 1, 1]), torch.tensor([0, 0, 0]), num_classes=2)
    s = segmentation_scores(conf)
    assert s.class_iou == pytest.approx([1 / 3, 0.0]) and s.miou == pytest.approx(1 / 6)


def test_the_split_is_pooled_not_averaged_per_batch():
    batches = [(PRED[0], TARGET[0]), (PRED[1], TARGET[1])]
    pooled = sum(confusion_matrix(p, t, 4, IGNORE) for p, t in batches)
    assert torch.equal(pooled, confusion_matrix(PRED, TARGET, 4, IGNORE))
    per_batch = [segmentation_scores(confusion_matrix(p, t, 4, IGNORE)).miou for p, t in batches]
    # Batch 1: class 0 1/2, class 1 2/3 -> 7/12; batch 2: class 0 1/2, class 2 1/2 -> 1/2; their mean 13/24.
    assert per_batch == pytest.approx([7 / 12, 1 / 2])
    assert segmentation_scores(pooled).miou == pytest.approx(5 / 9) != pytest.approx(sum(per_batch) / 2)


def test_labels_outside_the_classes_are_a_data_error():
    with pytest.raises(DataError, match="outside 0..3"):
        confusion_matrix(torch.tensor([0]), torch.tensor([7]), num_classes=4)


def test_soft_dice_loss_is_zero_for_certain_right_answers_and_skips_ignored_pixels():
    target = torch.tensor([[[0, 1], [1, IGNORE]]])
    right = torch.nn.functional.one_hot(target.clamp(max=1), 2).permute(0, 3, 1, 2).float() * 50
    assert soft_dice_loss(right, target, IGNORE) == pytest.approx(0.0, abs=1e-6)
    # Whatever is predicted on the ignored pixel does not count.
    right[0, :, 1, 1] = torch.tensor([50.0, -50.0])
    assert soft_dice_loss(right, target, IGNORE) == pytest.approx(0.0, abs=1e-6)
    # Uniform probabilities on 1 background and 2 class-1 pixels: Dice (2*0.5+1)/(1.5+1+1) and (2*1+1)/(1.5+2+1).
    uniform = torch.zeros(1, 2, 2, 2)
    expected = 1 - ((2 * 0.5 + 1) / 3.5 + (2 * 1 + 1) / 4.5) / 2
    assert soft_dice_loss(uniform, target, IGNORE) == pytest.approx(expected)


def test_soft_dice_loss_matches_the_one_hot_formula_in_value_and_gradient():
    # Milletari's Eq. 1 written out with one-hot maps, against the gather/bincount form the trainer uses.
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 6, 7, generator=gen, requires_grad=True)
    target = torch.randint(0, 5, (3, 6, 7), generator=gen)
    target[0, :2] = IGNORE
    target[target == 4] = 3  # class 4 absent from the target: its term is then 1 / (sum p + 1)
    valid = (target != IGNORE).unsqueeze(1)
    probs = logits.softmax(1) * valid
    onehot = torch.nn.functional.one_hot(target.masked_fill(~valid[:, 0], 0), 5).permute(0, 3, 1, 2) * valid
    inter, total = (probs * onehot).sum((0, 2, 3)), probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    reference = 1 - ((2 * inter + 1) / (total + 1)).mean()
    loss = soft_dice_loss(logits, target, IGNORE)
    assert loss.item() == pytest.approx(reference.item(), rel=1e-6)
    (grad,) = torch.autograd.grad(loss, logits)
    (expected,) = torch.autograd.grad(reference, logits)
    assert torch.allclose(grad, expected, atol=1e-7)
    assert grad[0, :, :2].abs().max() == 0  # ignored pixels get no gradient
