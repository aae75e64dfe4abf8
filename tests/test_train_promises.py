"""What the trainer promises, checked: frozen means frozen, a kill loses at most a minute, the clock is the user's."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from _tiny import TINY, make_idx_dataset, tiny_models, train_argv  # noqa: F401  (tiny_models is a fixture)
from cnnlab.cli import main
from cnnlab.models import _registry
from cnnlab.models._base import FeatureInfo, ZooModel
from cnnlab.models.layers import ClassifierHead
from cnnlab.train import TrainConfig, load_checkpoint, train
from cnnlab.train.runtime import precision_name, resolve_amp

pytestmark = pytest.mark.usefixtures("tiny_models")

TINY_BN = "tiny_bn_test_cnn"


class TinyBNNet(ZooModel):
    """Tiny with batch norm: conv 3x3 (8) -> BN -> ReLU -> max pool 2 -> conv 3x3 (16) -> BN -> ReLU -> pool, linear."""

    def __init__(self, num_classes: int = 10, in_chans: int = 1) -> None:
        super().__init__()
        self.num_classes, self.in_chans, self.num_features = num_classes, in_chans, 16
        self.stem = nn.Sequential(nn.Conv2d(in_chans, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2))
        self.stages = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.head = ClassifierHead(16, num_classes)
        self.feature_info = [FeatureInfo("stages", 16, 2)]


def tiny_bn_test_cnn(num_classes: int = 10, in_chans: int = 1) -> TinyBNNet:
    return TinyBNNet(num_classes, in_chans)


@pytest.fixture(scope="module")
def tiny_bn():
    _registry.register_model(tiny_bn_test_cnn, family="tiny", input_size=(1, 28, 28), min_size=8, num_classes=10,
                             paper="a test network")
    yield TINY_BN
    _registry._MODELS.pop(TINY_BN, None)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_idx_dataset(tmp_path_factory.mktemp("fashion"), n_train=320, n_test=64)


def _cfg(data: Path, out: Path, **kw) -> TrainConfig:
    base = dict(model=TINY, data_dir=str(data), epochs=1, batch_size=32, val_split=64, threads=1, quiet=True,
                out=str(out), download=False, tensorboard=False)
    return TrainConfig(**{**base, **kw})


# -- --freeze-backbone ---------------------------------------------------------------------------------


@pytest.mark.parametrize("frozen", [True, False])
def test_a_frozen_backbone_keeps_its_batch_norm_statistics(tiny_bn, data, tmp_path, frozen):
    start = tmp_path / "start.pt"
    torch.save(TinyBNNet().state_dict(), start)  # fresh weights: BN running mean 0, variance 1, 0 batches
    train(_cfg(data, tmp_path / "ft", model=TINY_BN, init=str(start), freeze_backbone=frozen, lr=0.1))
    before, after = torch.load(start, weights_only=True), load_checkpoint(tmp_path / "ft" / "last.pt")["model"]
    backbone = [k for k in before if not k.startswith("head.")]
    assert any("running_mean" in k for k in backbone) and any("num_batches_tracked" in k for k in backbone)
    unchanged = [k for k in backbone if torch.equal(before[k], after[k])]
    # Frozen: every weight, BN statistic and batch count as it was; trained: the statistics moved (control).
    assert (unchanged == backbone) if frozen else not any("running" in k for k in unchanged)
    assert not torch.equal(before["head.fc.weight"], after["head.fc.weight"])


# -- checkpoints by wall time --------------------------------------------------------------------------


class _CrashError(Exception):
    """A failure injected after an optimizer step, standing in for a kill."""


def _crash_after(steps: int):
    done = {"steps": 0}

    def hook(optimizer, args, kwargs) -> None:
        done["steps"] += 1
        if done["steps"] == steps:
            raise _CrashError

    return register_optimizer_step_post_hook(hook)


@pytest.mark.parametrize(("seconds", "expected_step"), [(1e-9, 4), (0.0, None)])
def test_checkpoints_by_wall_time_at_the_syncs(data, tmp_path, seconds, expected_step):
    handle = _crash_after(5)  # within the first epoch (8 steps): no epoch-end checkpoint yet
    try:
        with pytest.raises(_CrashError):
            train(_cfg(data, tmp_path / "run", log_every=2, checkpoint_seconds=seconds))
    finally:
        handle.remove()
    last = tmp_path / "run" / "last.pt"
    assert (load_checkpoint(last)["step"] if last.exists() else None) == expected_step


def test_checkpointing_every_minute_is_the_default():
    assert TrainConfig().checkpoint_seconds == 60
    assert "a kill loses at most" in TrainConfig.__dataclass_fields__["checkpoint_seconds"].metadata["help"]


# -- the run's clock and precision ---------------------------------------------------------------------


def test_the_clock_counts_from_the_start_given(data, tmp_path):
    results = train(_cfg(data, tmp_path / "a", epochs=50, time_budget=100, log_every=1), started=time.time() - 120)
    # The budget was spent before the first step ended: the run stops at its first sync, and says so.
    assert results["stopped_early"] == "time budget" and results["steps"] == 1
    assert results["wall_seconds"] >= 120


def test_the_cli_clock_starts_with_the_process(data, tmp_path, monkeypatch):
    monkeypatch.setattr("cnnlab.train.runtime.process_start_time", lambda: time.time() - 30)
    assert main(train_argv(data, 1, "--out", str(tmp_path / "run"))) == 0
    assert json.loads((tmp_path / "run" / "results.json").read_text())["wall_seconds"] >= 30


def test_process_start_time_is_this_process_start():
    code = ("import time; t = time.time(); from cnnlab.train.runtime import process_start_time as p; "
            "print(t - p())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert 0 <= float(out) < 10  # the interpreter's own start-up, before cnnlab was imported


@pytest.mark.parametrize("amp", ["off", "auto"])
def test_results_record_the_precision(data, tmp_path, amp):
    results = train(_cfg(data, tmp_path / "run", amp=amp))
    expected = precision_name(resolve_amp(amp, torch.device("cpu"))[0])
    assert results["precision"] == expected and (amp != "off" or expected == "fp32")
