"""Each verdict rule of the notes' experiments on fixed numbers (accuracies as fractions, one per seed), so the
decision is known beforehand: the difference rule says "holds" beyond twice the larger seed spread, "does not
hold" beyond it the other way, "inconclusive" within it; choices are made on validation numbers only."""

from __future__ import annotations

import pytest
import torch

from cnnlab.experiments.catalogue import Verdict, combine_verdicts
from cnnlab.experiments.notes import (
    augmentation,
    batchnorm_batch_size,
    batchnorm_learning_rate,
    bottlenecks,
    ensembles,
    fine_tuning,
    small_kernels,
)

HIGH, LOW, CLOSE = [0.90, 0.91, 0.92], [0.80, 0.81, 0.82], [0.905, 0.915, 0.925]  # spread 0.01 each


def _v(status: str) -> Verdict:
    return Verdict(status, "r", "m")


@pytest.mark.parametrize("statuses, expected", [
    (["holds", "holds"], "holds"),
    (["holds", "inconclusive at this budget"], "inconclusive at this budget"),
    (["holds", "does not hold", "inconclusive at this budget"], "does not hold"),
])
def test_a_claim_of_several_parts(statuses, expected):
    verdict = combine_verdicts([(f"part {i}", _v(s)) for i, s in enumerate(statuses)])
    assert verdict.status == expected
    assert "(part 0)" in verdict.rule and "(part 1)" in verdict.measured


def test_batchnorm_learning_rate_rule():
    lrs = (0.01, 0.1, 1.0, 10.0)  # upper half: 1.0 and 10.0
    test = {"batchnorm": {0.01: LOW, 0.1: HIGH, 1.0: HIGH, 10.0: HIGH},
            "none": {0.01: LOW, 0.1: HIGH, 1.0: LOW, 10.0: [0.1] * 3}}
    # Validation picks 0.1 for both, although the test numbers alone would not distinguish 0.1 from 1.0.
    val = {n: {lr: (HIGH if lr == 0.1 else LOW) for lr in lrs} for n in test}
    first = {"batchnorm": {lr: HIGH for lr in lrs}, "none": {lr: LOW for lr in lrs}}
    verdict, best = batchnorm_learning_rate.decide(test, val, first)
    assert best == {"batchnorm": 0.1, "none": 0.1}
    assert verdict.status == "holds"
    assert "lr 1, 10" in verdict.measured  # the upper half of the sweep, named
    # The plain network converging as fast makes the second part inconclusive, and so the claim.
    same_speed = {n: {lr: HIGH for lr in lrs} for n in test}
    assert batchnorm_learning_rate.decide(test, val, same_speed)[0].status == "inconclusive at this budget"
    # The plain network better at high learning rates: the claim does not hold.
    swapped = {"batchnorm": test["none"], "none": test["batchnorm"]}
    assert batchnorm_learning_rate.decide(swapped, val, first)[0].status == "does not hold"


def test_batchnorm_batch_size_rule():
    sizes = (2, 8, 32)
    flat = {b: HIGH for b in sizes}
    test = {"batchnorm": {2: LOW, 8: HIGH, 32: HIGH}, "layernorm": flat, "none": flat}
    val = {"batchnorm": {2: HIGH, 8: HIGH, 32: LOW}, "layernorm": {2: LOW, 8: LOW, 32: HIGH}, "none": flat}
    verdict, best = batchnorm_batch_size.decide(test, val)
    # The compared batch is the best larger one on validation (batch 2 itself is never the reference).
    assert best == {"batchnorm": 8, "layernorm": 32}
    assert verdict.status == "holds"  # batch norm - layer norm: 0 at batch 8, -10 points at batch 2
    # Both drop together at batch 2: the steps, not batch norm's statistics, did it (the first part is
    # inconclusive), and layer norm's own drop fails the second part.
    both = {**test, "layernorm": {2: LOW, 8: HIGH, 32: HIGH}}
    verdict = batchnorm_batch_size.decide(both, val)[0]
    assert verdict.status == "does not hold" and "minus layer norm's" in verdict.measured
    assert verdict.measured.index("inconclusive") < verdict.measured.index("(layer norm does not")
    bn_flat = {**test, "batchnorm": flat}
    assert batchnorm_batch_size.decide(bn_flat, val)[0].status == "inconclusive at this budget"
    bn_better_small = {**test, "batchnorm": {2: [0.99] * 3, 8: HIGH, 32: HIGH}}
    assert batchnorm_batch_size.decide(bn_better_small, val)[0].status == "does not hold"


def _counts(params: int, fields: list[int]) -> dict:
    return {"params": params, "macs": 10 * params, "receptive_fields": fields}


def test_small_kernels_rule():
    counts = {"three 3x3": _counts(27, [18, 46]), "one 7x7": _counts(49, [18, 46]),
              "two 3x3": _counts(18, [14, 34]), "one 5x5": _counts(25, [14, 34])}
    acc = {"three 3x3": CLOSE, "one 7x7": HIGH, "two 3x3": HIGH, "one 5x5": HIGH}
    verdict = small_kernels.decide(counts, acc)
    assert verdict.status == "holds"  # 0.5 points within twice the spread of 1 point: at least as good
    assert "27 vs 49 parameters" in verdict.measured
    assert small_kernels.decide(counts, {**acc, "three 3x3": LOW}).status == "does not hold"
    wider = {**counts, "one 5x5": _counts(25, [16, 34])}
    assert small_kernels.decide(wider, acc).status == "does not hold"
    cheaper_large = {**counts, "one 7x7": _counts(20, [18, 46])}
    assert small_kernels.decide(cheaper_large, acc).status == "does not hold"


def test_bottlenecks_rule():
    counts = {"with 1x1 reductions": {"params": 60, "macs": 8}, "naive (no reductions)": {"params": 270, "macs": 29}}
    assert bottlenecks.decide(counts, {"with 1x1 reductions": CLOSE, "naive (no reductions)": HIGH}).status == "holds"
    worse = {"with 1x1 reductions": LOW, "naive (no reductions)": HIGH}
    assert bottlenecks.decide(counts, worse).status == "does not hold"


def test_ensemble_accuracy_by_k_on_hand_made_probabilities():
    labels = torch.tensor([0, 1, 1])
    # Member 0 gets sample 2 wrong, member 1 gets sample 1 wrong, member 2 gets samples 1 and 2 wrong but
    # only narrowly, so the average of all three is right everywhere.
    probs = [torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]),
             torch.tensor([[0.8, 0.2], [0.7, 0.3], [0.1, 0.9]]),
             torch.tensor([[0.6, 0.4], [0.55, 0.45], [0.55, 0.45]])]
    by_k = ensembles.ensemble_accuracies(probs, labels)
    assert by_k[1] == pytest.approx((2 / 3 + 2 / 3 + 1 / 3) / 3)
    # Pairs: {0,1}: sample 1 averages 0.45/0.55 -> right, sample 2 0.35/0.65 -> right: 3/3;
    # {0,2}: sample 1 0.375/0.625 right, sample 2 0.575/0.425 wrong: 2/3; {1,2}: sample 1 0.625 wrong, 2 right: 2/3.
    assert by_k[2] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    assert by_k[3] == pytest.approx(1.0)
    # Sampling keeps at most max_subsets subsets per k.
    assert ensembles.ensemble_accuracies(probs, labels, max_subsets=1)[2] == pytest.approx(1.0)


def test_ensemble_rule():
    assert ensembles.decide(HIGH, LOW).status == "holds"
    assert ensembles.decide(CLOSE, HIGH).status == "inconclusive at this budget"
    assert ensembles.decide(LOW, HIGH).status == "does not hold"


def test_fine_tuning_rule_uses_the_way_chosen_on_validation():
    test = {"scratch": {0.01: LOW, 1.0: HIGH}, "fine-tuned": {0.01: LOW, 1.0: HIGH},
            "frozen backbone": {0.01: HIGH, 1.0: HIGH}}
    val = {"scratch": {0.01: LOW, 1.0: HIGH}, "fine-tuned": {0.01: HIGH, 1.0: HIGH},
           "frozen backbone": {0.01: LOW, 1.0: HIGH}}
    verdict, chosen = fine_tuning.decide(test, val)
    # Validation prefers full fine-tuning, whose test accuracy at 1% is no better than scratch.
    assert chosen == "fine-tuned" and verdict.status == "inconclusive at this budget"
    val["frozen backbone"][0.01] = [0.99] * 3
    verdict, chosen = fine_tuning.decide(test, val)
    assert chosen == "frozen backbone" and verdict.status == "holds" and "1% of the labels" in verdict.measured


def test_augmentation_rule():
    train = {"off": [1.0, 1.0, 1.0], "on": [0.95, 0.95, 0.95]}
    test = {"off": [0.85, 0.86, 0.87], "on": [0.90, 0.91, 0.92]}
    verdict, gap = augmentation.decide(train, test)
    assert gap["off"] == pytest.approx([0.15, 0.14, 0.13]) and gap["on"] == pytest.approx([0.05, 0.04, 0.03])
    assert verdict.status == "holds"
    # Less overfitting but no better test accuracy: the second part is not met.
    same_test = {"off": test["on"], "on": test["on"]}
    worse_fit = {"off": [0.95] * 3, "on": [0.95] * 3}
    assert augmentation.decide(worse_fit, same_test)[0].status == "inconclusive at this budget"
    assert augmentation.decide({"off": train["on"], "on": train["off"]}, {"off": test["on"], "on": test["off"]})[
        0].status == "does not hold"
