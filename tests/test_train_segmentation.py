"""U-Net through the one trainer: it learns, it resumes exactly, eval and predict read its runs, errors are clear."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import cnnlab
from _segdata import shape_items, write_items
from _tiny import state_dicts_equal
from cnnlab.cli import main
from cnnlab.data import TensorBatches, channel_stats
from cnnlab.data.scenes import SceneSpec, item_owners, load_scenes
from cnnlab.data.segmentation import SegmentationAugment
from cnnlab.models.unet import valid_output_size
from cnnlab.train import TrainConfig, load_checkpoint, resume_training, train
from cnnlab.train.inputs import DataMeta
from cnnlab.train.segment import evaluate_segmentation
from cnnlab.train.tasks import SegmentationTask

SCENES = "fashion-mnist-scenes:size=32,train=64,val=16,test=16"


@pytest.fixture(scope="module")
def items(tmp_path_factory) -> Path:
    """A Fashion-MNIST-shaped source of class-shaped items (scenes are generated from it)."""
    return write_items(tmp_path_factory.mktemp("items"), *shape_items(80, seed=1), *shape_items(30, seed=2))


def _argv(items: Path, out: Path, *flags: str, model: str = "unet:width=4,depth=2", data: str = SCENES) -> list[str]:
    return ["train", model, "--data", data, "--data-dir", str(items), "--epochs", "2", "--batch-size", "16",
            "--threads", "1", "--quiet", "--device", "cpu", "--amp", "off", "--out", str(out), *flags]


def test_a_small_unet_overfits_a_handful_of_scenes(items):
    scenes = load_scenes(SceneSpec(size=32, train=8, val=0, test=1, max_items=3), items)["train"]
    mean, std = channel_stats(scenes.images)
    augment = SegmentationAugment(mean, std, 11)
    meta = DataMeta("tensor", "scenes", scenes.classes, list(mean), list(std), [1, 32, 32], 32, 1, 8, 0, 1, "",
                    task="segmentation")
    task = SegmentationTask(TrainConfig(model="unet"), meta)
    model = cnnlab.create_model("unet", num_classes=11, width=8, depth=2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.03, weight_decay=0)
    x, y = augment.eval(scenes.images), scenes.labels.long()
    source = TensorBatches(scenes, 8, "cpu", False)
    miou = 0.0
    for step in range(1, 201):  # about 100 steps are needed (measured: mIoU 0.98 after 100)
        loss = task.loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 25 == 0:
            miou = evaluate_segmentation(model, source, augment, scenes.classes)["miou"]
            if miou > 0.95:
                break
    assert miou > 0.95, f"mIoU {miou:.3f} after {step} steps"
    assert model.training  # evaluation put the model back as it found it


def test_train_eval_predict_on_scenes(items, tmp_path, capsys):
    run = tmp_path / "run"
    weights = ["--class-weights", *["0.5"] + ["1"] * 10]
    assert main(_argv(items, run, "--hflip", "--crop-scale", "0.8", "1", "--dice-loss", "0.5", *weights)) == 0
    printed = capsys.readouterr().out
    assert "mIoU" in printed and "test mIoU" in printed
    results = json.loads((run / "results.json").read_text())
    assert results["task"] == "segmentation" and results["num_classes"] == 11
    assert results["selected"].startswith("best validation mIoU")
    assert set(results["test_class_iou"]) == {"background", *cnnlab.data.sources.FASHION_CLASSES}
    present = [v for v in results["test_class_iou"].values() if v is not None]
    assert results["test_miou"] == pytest.approx(sum(present) / len(present))
    assert results["test_pixels"] == 16 * 32 * 32 and results["test_images"] == 16
    assert results["best_val_miou"] is not None and "best_val_accuracy" not in results
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(0 <= r["val_miou"] <= 1 and len(r["val_class_iou"]) == 11 for r in rows)

    assert main(["eval", str(run / "best.pt"), "--data-dir", str(items), "--device", "cpu", "--format", "json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["miou"] == pytest.approx(results["test_miou"], abs=1e-6)
    assert evaluated["accuracy"] == pytest.approx(results["test_pixel_accuracy"], abs=1e-6)

    out = tmp_path / "pred"
    assert main(["predict", str(run), "--data-dir", str(items), "--count", "3", "--out", str(out), "--device", "cpu",
                 "--format", "json"]) == 0
    predicted = json.loads(capsys.readouterr().out)
    assert [r["image"] for r in predicted["images"]] == ["test-0", "test-1", "test-2"]
    assert (out / "overlays.png").is_file()
    mask = np.asarray(Image.open(out / "masks" / "test-0.png"))
    assert mask.shape == (32, 32) and mask.max() < 11


def test_predict_image_files_finds_their_ground_truth_in_the_folder_layout(items, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_argv(items, run, "--epochs", "1")) == 0
    scene = load_scenes(SceneSpec.parse(SCENES), items)["test"]
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(scene.images[0, 0].numpy()).save(tmp_path / "images" / "a.png")
    Image.fromarray(scene.labels[0].numpy()).save(tmp_path / "masks" / "a.png")
    Image.fromarray(scene.images[1, 0].numpy()).save(tmp_path / "b.png")
    capsys.readouterr()
    assert main(["predict", str(run), str(tmp_path / "images" / "a.png"), str(tmp_path / "b.png"), "--out",
                 str(tmp_path / "p"), "--device", "cpu", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)["images"]
    assert rows[0]["ground_truth"] == str(tmp_path / "masks" / "a.png") and rows[1]["ground_truth"] is None


def test_resume_continues_exactly(items, tmp_path):
    def config(epochs: int, out: Path) -> TrainConfig:
        return TrainConfig(model="unet", model_args={"width": 4, "depth": 2}, data=SCENES, data_dir=str(items),
                           epochs=epochs, batch_size=16, schedule="constant", optimizer="adamw", lr=0.01,
                           hflip=True, crop_scale=[0.7, 1.0], crop_padding=2, dice_loss=0.3, threads=1, quiet=True,
                           device="cpu", amp="off", out=str(out), tensorboard=False)

    whole = train(config(2, tmp_path / "whole"))
    train(config(1, tmp_path / "halves"))
    resumed = resume_training(tmp_path / "halves", {"epochs": 2})
    a, b = load_checkpoint(tmp_path / "whole" / "last.pt"), load_checkpoint(tmp_path / "halves" / "last.pt")
    assert state_dicts_equal(a["model"], b["model"])
    assert resumed["test_miou"] == whole["test_miou"]


def test_the_auxiliary_loss_trains_the_contracting_path(items, tmp_path, monkeypatch):
    def run(name: str) -> tuple[dict, dict]:
        out = tmp_path / name
        results = train(TrainConfig(model="unet", model_args={"width": 4, "depth": 2, "aux_logits": True},
                                    data=SCENES, data_dir=str(items), epochs=1, batch_size=16, optimizer="adamw",
                                    lr=0.01, threads=1, quiet=True, device="cpu", amp="off", out=str(out),
                                    tensorboard=False))
        return results, load_checkpoint(out / "last.pt")["model"]

    deep, deep_weights = run("weighted")
    monkeypatch.setattr("cnnlab.train.loop.aux_loss_weight", lambda name: 0.0)
    plain, plain_weights = run("unweighted")
    assert {"aux.fc.weight", "aux.fc.bias"} <= set(deep_weights)
    # Same seed, weights and batches: the runs differ only by the auxiliary loss, which reaches the encoder
    # and trains the auxiliary head (it stays at its initial weights where its loss weighs nothing).
    assert not torch.equal(deep_weights["stem.conv1.conv.weight"], plain_weights["stem.conv1.conv.weight"])
    assert not torch.equal(deep_weights["aux.fc.weight"], plain_weights["aux.fc.weight"])
    assert deep["params"] == plain["params"] and 0 <= deep["test_miou"] <= 1  # tested on the main output


def test_training_on_windows_tests_whole_scenes(items, tmp_path, monkeypatch):
    import cnnlab.data.segmentation as segmentation

    cut = []
    windows = segmentation.random_windows

    def recorded(x, mask, side, gen, shard=(0, 1)):
        image, labels = windows(x, mask, side, gen, shard)
        cut.append((tuple(x.shape[-2:]), tuple(image.shape[-2:]), tuple(labels.shape[-2:])))
        return image, labels

    monkeypatch.setattr(segmentation, "random_windows", recorded)
    assert main(_argv(items, tmp_path / "win", "--train-crop", "16")) == 0
    assert len(cut) == 2 * 4 and set(cut) == {((32, 32), (16, 16), (16, 16))}  # every training batch, 2 epochs
    results = json.loads((tmp_path / "win" / "results.json").read_text())
    assert results["test_pixels"] == 16 * 32 * 32 and 0 <= results["test_miou"] <= 1
    assert json.loads((tmp_path / "win" / "config.json").read_text())["train_crop"] == 16


def test_checkpoints_written_before_segmentation_load_as_classification():
    meta = DataMeta("tensor", "fashion-mnist", ["a", "b"], [0.5], [0.2], [1, 28, 28], 28, 1, 10, 0, 5, "")
    stored = meta.to_dict()
    del stored["task"], stored["class_subset"]  # a v1 file's data description
    assert DataMeta.from_dict(stored).task == "classification"


def test_the_valid_convolution_unet_trains_on_the_centre_crop(items, tmp_path):
    out_side = valid_output_size(48, depth=2)  # 48 -> 8 (each double conv takes 4 pixels off)
    assert out_side == 8
    data = "fashion-mnist-scenes:size=48,train=32,val=0,test=8"
    assert main(_argv(items, tmp_path / "valid", model="unet:width=4,depth=2,padding=valid", data=data)) == 0
    results = json.loads((tmp_path / "valid" / "results.json").read_text())
    assert results["test_pixels"] == 8 * out_side**2 and results["selected"] == "last"


@pytest.mark.parametrize(("argv", "message"), [
    (["--data", "fashion-mnist"], "unet is a segmentation network; train it on fashion-mnist-scenes"),
    (["--mixup", "0.2"], "mixup applies to classification"),
    (["--class-weights", "1", "2"], "class_weights gives 2 weights for the 11 classes"),
    (["--image-size", "64"], "the scenes are 32x32; generate them at 64"),
    (["--data", "fashion-mnist-scenes:sise=3"], "unknown scene option 'sise'"),
    (["--train-crop", "18"], "--train-crop 18: unet needs height and width divisible by 4"),
    (["--train-crop", "40"], "--train-crop 40 is larger than the 32x32 images"),
])
def test_user_errors_are_one_line(items, tmp_path, capsys, argv, message):
    base = _argv(items, tmp_path / "r")
    assert main([*base, *argv]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("note: ")]
    assert len(errors) == 1 and message in errors[0]


def test_a_classifier_refuses_segmentation_data_and_segmentation_settings(items, tmp_path, capsys):
    from _tiny import TINY, tiny_registered

    with tiny_registered():
        assert main(_argv(items, tmp_path / "a", model=TINY)) == 2
        assert "is segmentation data (label maps)" in capsys.readouterr().err
        assert main(_argv(items, tmp_path / "b", "--dice-loss", "1", model=TINY, data="fashion-mnist")) == 2
        assert "dice_loss applies to segmentation networks" in capsys.readouterr().err


@pytest.mark.slow
def test_two_gloo_processes_pool_one_confusion_matrix(items, tmp_path):
    """Each rank tests half the scenes; the pooled matrix gives the numbers one process gets for the same weights."""
    import os
    import subprocess
    import sys

    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("this PyTorch build has no gloo backend")
    driver = Path(__file__).with_name("_driver.py")
    # No batch norm: each rank's running statistics would be its own, and rank 1 tests with its own.
    argv = [arg for arg in _argv(items, tmp_path / "ddp", model="unet:width=4,depth=2,norm_layer=none")
            if arg != "--quiet"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    proc = subprocess.run([*launcher, str(driver), *argv], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("test mIoU") == 1  # only rank 0 reports
    results = json.loads((tmp_path / "ddp" / "results.json").read_text())
    assert results["hardware"]["processes"] == 2
    assert results["test_pixels"] == 16 * 32 * 32  # both halves of the test scenes counted
    one = subprocess.run([sys.executable, str(driver), "eval", str(tmp_path / "ddp" / "best.pt"), "--data-dir",
                          str(items), "--device", "cpu", "--format", "json"], env=env, capture_output=True, text=True,
                         timeout=120)
    evaluated = json.loads(one.stdout)
    assert evaluated["pixels"] == results["test_pixels"]
    assert evaluated["miou"] == pytest.approx(results["test_miou"], abs=1e-6)


def test_the_error_analysis_reads_a_run_on_its_validation_scenes(items, tmp_path):
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "segmentation_errors.py"
    spec = importlib.util.spec_from_file_location("segmentation_errors", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    results = train(TrainConfig(model="unet", model_args={"width": 4, "depth": 2}, data=SCENES, data_dir=str(items),
                                epochs=2, batch_size=16, optimizer="adamw", lr=0.01, threads=1, quiet=True,
                                device="cpu", amp="off", out=str(tmp_path / "run"), tensorboard=False))
    report = script.analyse(load_checkpoint(tmp_path / "run" / "best.pt"), str(items))
    # The weights the run kept for their validation mIoU, labelling the same validation scenes.
    assert report["val_scenes"] == 16 and abs(report["miou"] - results["best_val_miou"]) < 1e-6
    assert report["miou_with_item_confusions_corrected"] >= report["miou"]
    val = load_scenes(SceneSpec.parse(SCENES), items)["val"]
    owner, foreground = item_owners(SceneSpec.parse(SCENES), val, "val", str(items))
    labels = val.extra["placements"]["label"] + 1
    # Each pixel's item is the one the label map shows: item pixels and only they have an owner, of its class.
    shown = owner >= 0
    assert torch.equal(shown, val.labels > 0) and torch.equal(labels[owner[shown]], val.labels[shown].long())
    assert (torch.bincount(owner[shown], minlength=len(foreground)).numpy() <= foreground).all()
    placed = sum(row["items"] for row in report["pixel_accuracy_by_visible_share"])
    assert 16 <= placed <= len(labels)  # the last item of a scene is always seen
