"""The same command under torchrun: 2 gloo processes on the CPU train like one process (same global batch)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from _tiny import make_idx_dataset, train_argv
from cnnlab.train import load_checkpoint

DRIVER = Path(__file__).with_name("_driver.py")


@pytest.mark.slow
def test_two_gloo_processes_match_one(tmp_path):
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("this PyTorch build has no gloo backend")
    data = make_idx_dataset(tmp_path / "data", n_train=320, n_test=64)
    # fp32 on purpose: under --amp auto a CPU with AVX512-BF16 or AMX trains in bf16, whose gradients (8
    # significant bits) round differently when a batch is split over two processes. Largest weight difference
    # from the one-process run after these 16 steps, measured on such a CPU: in fp32 5.6e-7 (DDP; likewise one
    # process on 2 threads, or one process running each batch as two halves); in bf16 1.7e-4 (DDP) and 2.1e-4
    # (one process, two halves: no DDP at all). Sharding errors move the weights far more: 6.8e-3 when one
    # image of the 32 goes to both ranks (and another to none), 4.3e-2 when both ranks train on the same half.
    common = train_argv(
        data,
        2,
        *("--crop-padding", "2", "--hflip", "--random-erasing", "0.3", "--lr", "0.05", "--checkpoint-every", "5"),
        *("--amp", "off"),
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    procs = {
        "ddp": subprocess.Popen(
            [*launcher, str(DRIVER), *common, "--out", str(tmp_path / "ddp")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ),
        "one": subprocess.Popen(
            [sys.executable, str(DRIVER), *common, "--out", str(tmp_path / "one")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ),
    }
    logs = {name: proc.communicate(timeout=300)[0] for name, proc in procs.items()}
    for name, proc in procs.items():
        assert proc.returncode == 0, logs[name]
    assert logs["ddp"].count("test accuracy") == 1  # only rank 0 reports
    one, ddp = load_checkpoint(tmp_path / "one" / "last.pt"), load_checkpoint(tmp_path / "ddp" / "last.pt")
    assert one["step"] == ddp["step"] == 2 * 8
    assert len(ddp["rng"]) == 2  # each rank's generators are saved
    for key, value in one["model"].items():  # at most 4.3e-5 here: 75x the fp32 drift, 1/150 of one wrong image
        assert torch.allclose(value, ddp["model"][key], atol=1e-5, rtol=1e-4), key
    rows = [json.loads((tmp_path / d / "results.json").read_text()) for d in ("one", "ddp")]
    assert rows[1]["hardware"]["processes"] == 2
    assert rows[0]["test_accuracy"] == pytest.approx(rows[1]["test_accuracy"], abs=1 / 64)
    history = [ck["state"]["history"] for ck in (one, ddp)]
    for a, b in zip(*history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
        assert a["val_accuracy"] == pytest.approx(b["val_accuracy"], abs=1 / 64)
