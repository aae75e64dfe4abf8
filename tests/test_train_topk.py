"""Top-k accuracy: counted by hand on small score tables, and through ``evaluate`` on a batch source."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cnnlab.data import ArrayDataset, BatchAugment, TensorBatches
from cnnlab.errors import ConfigError
from cnnlab.train import evaluate
from cnnlab.train.evaluate import topk_accuracy, topk_hits

SCORES = torch.tensor([[3.0, 2.0, 1.0, 0.0], [0.0, 1.0, 2.0, 3.0], [1.0, 4.0, 0.0, 2.0]])
LABELS = torch.tensor([2, 0, 3])


@pytest.mark.parametrize(
    ("k", "hits"),
    [
        (1, 0),  # row maxima are classes 0, 3, 1: none is the label
        (2, 1),  # row 3's two best are 1 and 3
        (3, 2),  # row 1's three best are 0, 1, 2
        (4, 3),  # k = the classes: every label is in
        (9, 3),  # k above the classes is still defined: every label is in
    ],
)
def test_topk_hits_counted_by_hand(k, hits):
    assert int(topk_hits(SCORES, LABELS, k)) == hits
    assert topk_accuracy(SCORES, LABELS, k) == pytest.approx(hits / 3)


def _dataset(n: int = 40, classes: int = 10) -> ArrayDataset:
    g = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (n, 1, 6, 6), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, classes, (n,), generator=g)
    return ArrayDataset(images, labels, [str(c) for c in range(classes)], "generated")


def test_evaluate_reports_topk_beside_top1():
    data = _dataset()
    model = nn.Sequential(nn.Flatten(), nn.Linear(36, 10))
    augment = BatchAugment(mean=(0.5,), std=(0.25,), num_classes=10)
    source = TensorBatches(data, 16, "cpu", train=False)
    result = evaluate(model, source, augment, topk=3)
    with torch.no_grad():
        logits = model(augment.eval(data.images)).numpy()
    ranked = np.argsort(-logits, axis=1)  # independent of torch.topk
    labels = data.labels.numpy()
    assert result["accuracy"] == pytest.approx(np.mean(ranked[:, 0] == labels))
    assert result["top3_accuracy"] == pytest.approx(np.mean([lab in row[:3] for lab, row in zip(labels, ranked)]))
    assert result["top3_accuracy"] >= result["accuracy"] and result["count"] == 40
    assert evaluate(model, source, augment, topk=10)["top10_accuracy"] == 1.0
    with pytest.raises(ConfigError, match="topk must be at least 1"):
        evaluate(model, source, augment, topk=0)


@pytest.mark.parametrize("command", ["train", "eval", "ensemble"])
def test_help_texts_render(command, capsys):
    from cnnlab.cli import main

    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0 and "--topk" in capsys.readouterr().out
