"""A checkpoint's own splits for evaluation: test, validation and the training images it learned from."""

from __future__ import annotations

import pytest
import torch

from _tiny import make_idx_dataset, tiny_models, train_argv  # noqa: F401  (tiny_models is a fixture)
from cnnlab.cli import main
from cnnlab.errors import ConfigError
from cnnlab.train.evaluate import load_trained_model
from cnnlab.train.inputs import load_eval_source

pytestmark = pytest.mark.usefixtures("tiny_models")


def test_train_val_and_test_splits_of_a_run(tmp_path):
    data = make_idx_dataset(tmp_path / "data", n_train=160, n_test=40)
    out = tmp_path / "run"
    assert main([*train_argv(data, 1, "--train-subset", "120"), "--out", str(out)]) == 0
    _, ckpt = load_trained_model(out / "last.pt")
    counts = {}
    for split in ("train", "val", "test"):
        source = load_eval_source(ckpt.data, split, 64, torch.device("cpu"), ckpt.config)
        ys = torch.cat([y for _, y in source.batches(0)])
        counts[split] = len(ys)
    # About 120 images kept (each class's share rounded), 64 of them held out for validation (train_argv's
    # --val-split), the rest trained on: the counts the run recorded.
    assert counts["val"] == ckpt.data.val_images == 64 and counts["test"] == 40
    assert counts["train"] == ckpt.data.train_images and abs(counts["train"] + 64 - 120) <= 5
    with pytest.raises(ConfigError, match="split must be"):
        load_eval_source(ckpt.data, "everything", 64, torch.device("cpu"), ckpt.config)
