"""Training learns, and evaluation agrees with it: accuracy far above chance, on generated and on real data.

The accuracy tests elsewhere check ranges or compare two cnnlab paths, which a normalization mismatch
between training and evaluation, or labels out of step with their images, would pass. Here a task that is
separable by construction must be learned to (nearly) 100%, the real Fashion-MNIST must give LeNet-5 an
accuracy no broken pipeline reaches, and ``cnnlab eval`` must reproduce the trainer's test figures exactly.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from _tiny import TINY, class_images, make_idx_dataset, tiny_models  # noqa: F401  (tiny_models is a fixture)
from cnnlab.cli import main
from cnnlab.data import load_arrays
from cnnlab.train import TrainConfig, evaluate_checkpoint, load_trained_model, train
from cnnlab.train.inputs import augment_from_meta

REAL_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(scope="module")
def separable(tmp_path_factory) -> Path:
    """1,000 training images whose class is the position of a bright square (tests/_tiny.class_images)."""
    return make_idx_dataset(tmp_path_factory.mktemp("separable"), n_train=1000, n_test=500)


@pytest.fixture(scope="module")
def learned(separable, tmp_path_factory) -> tuple[Path, dict]:
    """LeNet-5 (ReLU) trained two epochs on the separable task (default precision and layout: amp auto)."""
    out = tmp_path_factory.mktemp("learned") / "run"
    cfg = TrainConfig(model="lenet5_relu", data_dir=str(separable), epochs=2, batch_size=32, val_split=100,
                      lr=0.02, threads=1, quiet=True, out=str(out), download=False, tensorboard=False)
    return out, train(cfg)


def test_a_separable_task_is_learned(learned):
    _, results = learned
    # Chance is 10%; the classes differ by where a square lies, which LeNet's fully connected layers see.
    assert results["test_accuracy"] >= 0.98 and results["best_val_accuracy"] >= 0.98


def test_cnnlab_eval_reproduces_the_trainers_test_figures_exactly(learned, capsys):
    out, results = learned
    capsys.readouterr()
    assert main(["eval", str(out / "best.pt"), "--format", "json", "--device", "cpu"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["count"] == results["test_images"] == 500
    assert evaluated["accuracy"] == results["test_accuracy"] and evaluated["loss"] == results["test_loss"]
    assert evaluated["precision"] == results["precision"]


def test_eval_tta_flip_averages_the_mirror_images_probabilities(learned, separable, capsys):
    out, _ = learned
    capsys.readouterr()
    assert main(["eval", str(out / "best.pt"), "--tta-flip", "--format", "json", "--device", "cpu"]) == 0
    flipped = json.loads(capsys.readouterr().out)
    # The same by hand, in fp32: mean of the softmax of each image and of its mirror image.
    model, ckpt = load_trained_model(out / "best.pt")
    test = load_arrays("fashion-mnist", separable, download=False)["test"]
    with torch.no_grad():
        x = augment_from_meta(ckpt.data).eval(test.images)
        probs = (model(x).softmax(1) + model(x.flip(3)).softmax(1)) / 2
    accuracy = (probs.argmax(1) == test.labels).double().mean().item()
    assert flipped["tta_flip"] is True and flipped["count"] == 500
    assert flipped["accuracy"] == pytest.approx(accuracy, abs=2 / 500)  # bf16 may flip a near tie or two
    assert flipped["loss"] == pytest.approx(torch.nn.functional.nll_loss(probs.log(), test.labels).item(), rel=0.05)
    without = evaluate_checkpoint(out / "best.pt", tta_flip=False, device="cpu")
    assert without["tta_flip"] is False and without["loss"] != flipped["loss"]  # the mirror images were used


@pytest.mark.usefixtures("tiny_models")
@pytest.mark.parametrize("channels_last", [True, False])
def test_channels_last_is_the_layout_the_model_sees(separable, tmp_path, channels_last):
    seen = []

    def record(module, args):
        if isinstance(module, torch.nn.Conv2d) and not seen:
            seen.append(args[0].is_contiguous(memory_format=torch.channels_last) and args[0].shape[1] > 1)

    handle = torch.nn.modules.module.register_module_forward_pre_hook(record)
    try:
        train(TrainConfig(model=TINY, data_dir=str(separable), epochs=1, batch_size=250, val_split=0, threads=1,
                          quiet=True, out=str(tmp_path / "run"), in_chans=3, channels_last=channels_last,
                          tensorboard=False, download=False))
    finally:
        handle.remove()
    assert seen == [channels_last]  # (3 channels: a 1-channel tensor is contiguous in both layouts)


def _write_cifar100(root: Path, per_split: dict[str, int]) -> Path:
    """A CIFAR-100-layout folder (train, test, meta with fine labels and names), as torchvision unpacks it."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in per_split.items():
        fine = rng.integers(0, 100, n)
        batch = {b"data": class_images(fine % 10, 32, 3).reshape(n, -1), b"fine_labels": fine.tolist(),
                 b"coarse_labels": (fine // 5).tolist()}
        (folder / split).write_bytes(pickle.dumps(batch, protocol=2))
    names = {b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
             b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)]}
    (folder / "meta").write_bytes(pickle.dumps(names, protocol=2))
    return folder


@pytest.mark.usefixtures("tiny_models")
def test_cifar100_trains_on_its_hundred_fine_classes(tmp_path, capsys):
    _write_cifar100(tmp_path / "data", {"train": 120, "test": 40})
    out = tmp_path / "run"
    argv = ["train", TINY, "--data", "cifar100", "--data-dir", str(tmp_path / "data"), "--epochs", "1",
            "--batch-size", "20", "--val-split", "20", "--threads", "1", "--quiet", "--no-download", "--out", str(out)]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["num_classes"] == 100 and results["input_size"] == [3, 32, 32] and results["test_images"] == 40
    model, ckpt = load_trained_model(out / "last.pt")
    assert ckpt.data.classes[:2] == ["fine0", "fine1"] and model.get_classifier().out_features == 100
    capsys.readouterr()
    assert main(["eval", str(out / "last.pt"), "--format", "json", "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == results["test_accuracy"]


@pytest.mark.slow
@pytest.mark.skipif(not REAL_FASHION.is_dir(), reason="the real Fashion-MNIST is not installed (cnnlab data fetch)")
def test_lenet5_learns_fashion_mnist_in_one_epoch(tmp_path, monkeypatch):
    monkeypatch.delenv("CNNLAB_DATA", raising=False)
    cfg = TrainConfig(model="lenet5_relu", data_dir=str(REAL_FASHION), epochs=1, quiet=True, download=False,
                      tensorboard=False, out=str(tmp_path / "run"))
    results = train(cfg)
    # Measured with these defaults (SGD 0.05, cosine, batch 128, 5,000 validation images), seeds 0/1/2:
    # test 84.4 / 84.5 / 85.2%, validation 84.6 / 85.3 / 85.3%. A pipeline that mislabels or misnormalizes
    # stays near chance (10%); 80% leaves room for other machines and library versions.
    assert results["test_images"] == 10_000 and results["test_accuracy"] > 0.80
    assert results["best_val_accuracy"] > 0.80


def test_the_demo_trains_its_lineup_and_writes_the_report(tmp_path, monkeypatch, capsys):
    """`cnnlab demo` end to end on two small networks (the lineup and its settings replaced in the library)."""
    import cnnlab.experiments.lineup as lineup

    data = make_idx_dataset(tmp_path / "data", n_train=192, n_test=64)
    monkeypatch.setattr(lineup, "DEMO_LINEUP", ("lenet5_relu", "lenet5:pool='max'"))
    monkeypatch.setattr(lineup, "DEMO_SETTINGS", {**lineup.DEMO_SETTINGS, "batch_size": 64, "download": False,
                                                  "tensorboard": False})
    out = tmp_path / "demo"
    assert main(["demo", "--data-dir", str(data), "--out", str(out), "--threads", "1", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "lenet5_relu" in printed and "lenet5(pool=max)" in printed
    for run in ("lenet5_relu", "lenet5-pool=max"):
        results = json.loads((out / run / "results.json").read_text())
        assert results["epochs_completed"] == 1 and results["test_images"] == 64
    assert len(list(out.glob("*.png"))) >= 3 and list(out.glob("*.md")) + list(out.glob("*.csv"))
