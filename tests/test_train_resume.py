"""Exact resumption: a run SIGKILLed mid-epoch and resumed ends bit-identical to one never interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from _tiny import make_idx_dataset, state_dicts_equal, train_argv
from cnnlab.train import load_checkpoint

DRIVER = Path(__file__).with_name("_driver.py")
STEPS_PER_EPOCH = (320 - 64) // 32  # 8
KILL_AT = 13  # fifth step of epoch 2
# (cadence flags, the last checkpoint before step 13): every 3 steps -> step 12; by wall time, due at every
# sync, with syncs every 3 steps of an epoch (steps 3, 6 and 8 of epoch 1, 11 of epoch 2) -> step 11.
CADENCES = [(("--checkpoint-every", "3"), 12), (("--checkpoint-seconds", "1e-9", "--log-every", "3"), 11)]


def _run(argv: list[str], kill_at: int | None = None, sig: str = "KILL") -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONHASHSEED="0")
    env.pop("CNNLAB_TEST_KILL_AT_STEP", None)
    if kill_at:
        env["CNNLAB_TEST_KILL_AT_STEP"] = str(kill_at)
        env["CNNLAB_TEST_SIGNAL"] = sig
    return subprocess.Popen(
        [sys.executable, str(DRIVER), *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen) -> tuple[int, str]:
    out, err = proc.communicate(timeout=240)
    return proc.returncode, out + err


@pytest.mark.slow
@pytest.mark.parametrize(("cadence", "survivor_step"), CADENCES)
def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path, cadence, survivor_step):
    data = make_idx_dataset(tmp_path / "data", n_train=320, n_test=64)
    # Every random source is in play: dropout, crops, flips, erasing, mixup, EMA.
    common = train_argv(
        data,
        3,
        *cadence,
        *("--deterministic", "--drop-rate", "0.2", "--crop-padding", "2", "--hflip"),
        *("--random-erasing", "0.3", "--mixup", "0.2", "--ema-decay", "0.9", "--lr", "0.05"),
    )
    whole_dir, killed_dir = tmp_path / "whole", tmp_path / "killed"
    whole = _run([*common, "--out", str(whole_dir)])
    killed = _run([*common, "--out", str(killed_dir)], kill_at=KILL_AT)
    code, log = _finish(killed)
    assert code == -signal.SIGKILL, log
    assert not (killed_dir / "results.json").exists()
    survivor = load_checkpoint(killed_dir / "last.pt")
    assert survivor["step"] == survivor_step
    assert survivor["state"]["step_in_epoch"] == survivor_step - STEPS_PER_EPOCH

    code, log = _finish(_run(["train", "--resume", str(killed_dir)]))
    assert code == 0, log
    assert "resuming" in log
    code, log = _finish(whole)
    assert code == 0, log

    a, b = load_checkpoint(whole_dir / "last.pt"), load_checkpoint(killed_dir / "last.pt")
    assert a["step"] == b["step"] == 3 * STEPS_PER_EPOCH
    assert state_dicts_equal(a["model"], b["model"])
    assert state_dicts_equal(a["ema"]["module"], b["ema"]["module"])
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])
    losses = [[row["train_loss"] for row in ck["state"]["history"]] for ck in (a, b)]
    assert losses[0] == losses[1]
    ra, rb = (json.loads((d / "results.json").read_text()) for d in (whole_dir, killed_dir))
    assert ra["test_accuracy"] == rb["test_accuracy"] and ra["test_loss"] == rb["test_loss"]


def test_ctrl_c_checkpoints_the_current_step(tmp_path):
    data = make_idx_dataset(tmp_path / "data", n_train=320, n_test=64)
    argv = train_argv(data, 2, "--out", str(tmp_path / "run"))
    code, log = _finish(_run(argv, kill_at=5, sig="INT"))
    assert code == 130, log
    assert f"cnnlab train --resume {tmp_path / 'run'}" in log
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["step"] == 5 and ckpt["state"]["step_in_epoch"] == 5 and ckpt["state"]["epoch"] == 0


def test_sigterm_checkpoints_the_current_step_and_exits_143(tmp_path):
    data = make_idx_dataset(tmp_path / "data", n_train=320, n_test=64)
    argv = train_argv(data, 2, "--out", str(tmp_path / "run"))
    code, log = _finish(_run(argv, kill_at=5, sig="TERM"))
    assert code == 143, log  # 128 + SIGTERM, as a shell reports a process ended by SIGTERM; Ctrl-C is 130
    assert "terminated: checkpoint saved" in log and "Traceback" not in log
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["step"] == 5 and ckpt["state"]["step_in_epoch"] == 5
