"""``cnnlab landscape`` end to end on a small CIFAR ResNet trained here: the files, the centre against the model's
own loss, the checkpoint untouched, resume after an interruption (and, slow, after SIGKILL), the line to another
checkpoint, --keep-epochs and the trajectory plane, one-line errors, and (slow) two torchrun processes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from _tiny import TINY, make_idx_dataset, make_image_folder, tiny_models  # noqa: F401  (a fixture)
from cnnlab.cli import main
from cnnlab.experiments.landscape import surface
from cnnlab.experiments.landscape.run import (
    LandscapeSettings,
    balanced_indices,
    landscape_checkpoint,
    load_landscape,
    training_subset,
)
from cnnlab.train import TrainConfig, load_checkpoint, load_trained_model, train
from cnnlab.train.build import build_model
from cnnlab.train.inputs import augment_from_meta

SMALL = {"depths": (1, 1, 1), "widths": (4, 8, 8), "stem_width": 4}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 7-conv CIFAR ResNet trained 3 epochs on 256 generated images, keeping its epochs."""
    root = tmp_path_factory.mktemp("landscape")
    data = make_idx_dataset(root / "data", n_train=320, n_test=64)
    run = root / "run"
    train(TrainConfig(model="resnet20", model_args=dict(SMALL), data_dir=str(data), download=False, epochs=3,
                      batch_size=32, val_split=64, lr=0.05, threads=1, quiet=True, tensorboard=False, out=str(run),
                      keep_epochs=True, amp="off"))
    return run, data


def _argv(run: Path, data: Path, out: Path, *flags: str) -> list[str]:
    return ["landscape", str(run), "--out", str(out), "--points", "48", "--threads", "1", "--quiet",
            "--data-dir", str(data), "--device", "cpu", *flags]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _own_loss(checkpoint: Path, data: Path, points: int, weights: dict | None = None) -> tuple[float, float]:
    """Cross-entropy and accuracy of a checkpoint's model (or of ``weights`` in it) on the landscape's subset."""
    model, ckpt = load_trained_model(checkpoint)
    if weights is not None:
        model = build_model(ckpt.config, ckpt.data.num_classes, ckpt.data.in_chans)
        model.load_state_dict(weights)
        model.eval()
    images, labels = training_subset(ckpt, points, 0, "train", str(data))
    with torch.no_grad():
        logits = model(augment_from_meta(ckpt.data).eval(images))
    return float(F.cross_entropy(logits, labels)), float((logits.argmax(1) == labels).double().mean())


def test_a_2d_landscape_end_to_end(trained, tmp_path, capsys):
    run, data = trained
    before = _sha(run / "last.pt")
    out = tmp_path / "land"
    argv = _argv(run, data, out, "--grid", "5", "--test", "--hessian", "--hessian-iters", "4",
                 "--hessian-points", "16", "--format", "json")
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert _sha(run / "last.pt") == before  # the checkpoint is read, never written
    for name in ("landscape.npz", "landscape.json", "directions.pt", "contour.png", "surface.png", "summary.json"):
        assert (out / name).stat().st_size > 0, name
    assert summary["files"] == ["landscape.npz", "landscape.json", "directions.pt", "contour.png", "surface.png"]
    loss, accuracy = _own_loss(run / "last.pt", data, 48)
    assert summary["centre"]["train_loss"] == pytest.approx(loss, rel=1e-5)
    assert summary["centre"]["train_accuracy"] == pytest.approx(accuracy)
    assert summary["data"]["points"] == 48 and summary["data"]["test_points"] == 48
    assert summary["batch_norm_folding"].startswith("7 batch norms folded")
    land = load_landscape(out)
    assert land.values["train_loss"].shape == (5, 5) and land.done.all()
    assert land.values["train_loss"][2, 2] == summary["centre"]["train_loss"]
    assert set(land.values) == {"train_loss", "train_accuracy", "test_loss", "test_accuracy"}
    hessian = summary["hessian"]
    assert hessian["lambda_min"] <= hessian["lambda_max"] and hessian["products"] == 4
    saved = torch.load(out / "directions.pt", weights_only=True)
    assert len(saved["directions"]) == 2 and saved["identity"]["kind"] == "random"
    # Rerunning the finished landscape computes nothing and keeps the Hessian.
    assert main(argv) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["computed_now"] == 0 and again["resumed"] and again["hessian"] == hessian


def test_an_interrupted_landscape_resumes_to_the_same_grid(trained, tmp_path, monkeypatch):
    run, data = trained
    settings = LandscapeSettings(grid="5x3", points=40, threads=1, device="cpu", progress=False, data_dir=str(data))
    landscape_checkpoint(run, tmp_path / "whole", settings)
    calls = {"n": 0}
    original = surface.SurfaceEvaluator.__call__

    def stop_after_six(self, coords):
        calls["n"] += 1
        if calls["n"] > 6:
            raise KeyboardInterrupt
        return original(self, coords)

    monkeypatch.setattr(surface.SurfaceEvaluator, "__call__", stop_after_six)
    with pytest.raises(KeyboardInterrupt):
        landscape_checkpoint(run, tmp_path / "cut", settings)
    assert int(np.load(tmp_path / "cut" / "landscape.npz")["done"].sum()) == 6
    monkeypatch.setattr(surface.SurfaceEvaluator, "__call__", original)
    summary = landscape_checkpoint(run, tmp_path / "cut", settings)
    assert summary["resumed"] and summary["computed_now"] == 15 - 6
    whole, cut = np.load(tmp_path / "whole" / "landscape.npz"), np.load(tmp_path / "cut" / "landscape.npz")
    for key in whole.files:
        assert np.array_equal(whole[key], cut[key]), key


_KILLER = """
import os, signal, sys, time
from cnnlab.experiments.landscape import surface
original = surface.SurfaceEvaluator.__call__
count = [0]
def slow(self, coords):
    count[0] += 1
    if count[0] == 9:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.5)  # so that the file is written (every 2 s) before the kill
    return original(self, coords)
surface.SurfaceEvaluator.__call__ = slow
from cnnlab.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_a_killed_landscape_resumes_to_the_same_grid(trained, tmp_path):
    run, data = trained
    flags = ["--grid", "4x3"]
    assert main(_argv(run, data, tmp_path / "whole", *flags)) == 0
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), OMP_NUM_THREADS="1")
    killed = subprocess.run([sys.executable, "-c", _KILLER, *_argv(run, data, tmp_path / "cut", *flags)], env=env,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr
    done = int(np.load(tmp_path / "cut" / "landscape.npz")["done"].sum())
    assert 0 < done < 12  # killed mid-grid, after a write
    assert main(_argv(run, data, tmp_path / "cut", *flags)) == 0
    whole, cut = np.load(tmp_path / "whole" / "landscape.npz"), np.load(tmp_path / "cut" / "landscape.npz")
    for key in whole.files:
        assert np.array_equal(whole[key], cut[key]), key


def test_keep_epochs_keeps_plain_state_dicts(trained):
    run, _ = trained
    files = sorted((run / "epochs").glob("*.pt"))
    assert [f.name for f in files] == ["epoch-000.pt", "epoch-001.pt", "epoch-002.pt", "epoch-003.pt"]
    last = load_checkpoint(run / "last.pt")["model"]
    states = [torch.load(f, weights_only=True) for f in files]
    assert all(s.keys() == last.keys() for s in states)
    assert all(torch.equal(states[-1][k], v) for k, v in last.items())  # the last epoch is last.pt's weights
    assert not torch.equal(states[0]["head.fc.weight"], states[-1]["head.fc.weight"])  # epoch 0: before training


def test_the_trajectory_plane(trained, tmp_path, capsys):
    run, data = trained
    out = tmp_path / "traj"
    assert main(_argv(run, data, out, "--trajectory", str(run), "--grid", "4")) == 0
    assert (out / "trajectory.png").stat().st_size > 0
    extra = json.loads((out / "landscape.json").read_text())["extra"]["trajectory"]
    assert extra["files"] == ["epoch-000.pt", "epoch-001.pt", "epoch-002.pt", "epoch-003.pt"]
    assert np.allclose(extra["path"][-1], [0.0, 0.0], atol=1e-5)  # the centre is the last epoch's weights
    assert 0.0 < sum(extra["explained"]) <= 1.0 + 1e-6
    land = load_landscape(out)  # the grid covers the path
    path = np.asarray(extra["path"])
    assert land.x[0] < path[:, 0].min() and path[:, 0].max() < land.x[-1]
    assert land.y[0] < path[:, 1].min() and path[:, 1].max() < land.y[-1]


def test_the_line_to_another_checkpoint_ends_at_its_loss(trained, tmp_path, capsys):
    run, data = trained
    other = run / "epochs" / "epoch-000.pt"
    out = tmp_path / "line"
    assert main(_argv(run, data, out, "--to", str(other), "--dims", "1", "--grid", "21")) == 0
    assert (out / "landscape_1d.png").stat().st_size > 0
    land = load_landscape(out)
    assert land.x[0] == pytest.approx(-0.5) and land.x[15] == pytest.approx(1.0)
    centre, _ = _own_loss(run / "last.pt", data, 48)
    end, end_accuracy = _own_loss(run / "last.pt", data, 48, torch.load(other, weights_only=True))
    assert land.values["train_loss"][5] == pytest.approx(centre, rel=1e-5)
    assert land.values["train_loss"][15] == pytest.approx(end, rel=1e-4)  # running statistics moved along too
    assert land.values["train_accuracy"][15] == pytest.approx(end_accuracy)


def test_user_errors_are_one_line(trained, tmp_path, capsys):
    run, data = trained
    bare = tmp_path / "bare.pt"
    torch.save(load_checkpoint(run / "last.pt")["model"], bare)
    cases = [
        (_argv(bare, data, tmp_path / "a"), "not a cnnlab training checkpoint"),
        (_argv(run, data, tmp_path / "b", "--to", str(bare)), "--dims 1"),
        (_argv(run, data, tmp_path / "c", "--trajectory", str(tmp_path)), "--keep-epochs"),
        (_argv(run, data, tmp_path / "d", "--range", "1:-1"), "low to high"),
        (_argv(run, data, tmp_path / "e", "--points", "0"), "points must be"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert main(_argv(run, data, tmp_path / "f", "--grid", "3", "--dims", "1")) == 0
    capsys.readouterr()
    assert main(_argv(run, data, tmp_path / "f", "--grid", "3", "--dims", "1", "--seed", "1")) == 2
    assert "other settings (directions differ)" in capsys.readouterr().err


@pytest.mark.slow
def test_two_torchrun_processes_fill_the_grid_of_one(trained, tmp_path):
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("this PyTorch build has no gloo backend")
    run, data = trained
    flags = ["--grid", "5x3"]
    assert main(_argv(run, data, tmp_path / "one", *flags)) == 0
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), OMP_NUM_THREADS="1")
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    done = subprocess.run([*launcher, "-m", "cnnlab.cli", *_argv(run, data, tmp_path / "two", *flags)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    one, two = np.load(tmp_path / "one" / "landscape.npz"), np.load(tmp_path / "two" / "landscape.npz")
    for key in one.files:  # each point is computed whole by one process: the same numbers
        assert np.allclose(one[key], two[key], rtol=1e-6, atol=0), key
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["computed_now"] == 15


def test_the_subset_is_exact_and_class_balanced():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    picked = balanced_indices(labels, 3, 17, seed=2)
    assert len(picked) == 17 and torch.equal(picked, picked.sort().values) and len(set(picked.tolist())) == 17
    assert torch.bincount(labels[picked], minlength=3).tolist() == [9, 5, 3]  # 8.5, 5.1, 3.4: largest remainders
    assert torch.equal(picked, balanced_indices(labels, 3, 17, seed=2))
    assert not torch.equal(picked, balanced_indices(labels, 3, 17, seed=3))


@pytest.mark.usefixtures("tiny_models")
def test_an_image_folder_run(tmp_path):
    folder = make_image_folder(tmp_path / "images", per_class=6)
    run = tmp_path / "run"
    train(TrainConfig(model=TINY, data=str(folder), epochs=1, batch_size=6, val_split=3, workers=0, threads=1,
                      quiet=True, tensorboard=False, out=str(run), image_size=16, amp="off"))
    summary = landscape_checkpoint(run, tmp_path / "land", LandscapeSettings(
        dims=1, grid=5, points=9, threads=1, device="cpu", progress=False))
    assert summary["data"]["points"] == 9 and summary["centre"]["train_loss"] > 0
