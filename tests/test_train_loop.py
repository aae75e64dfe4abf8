"""End-to-end training in-process: run directory, metrics, selection, stops, evaluation, predict, ensembles."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from _tiny import (  # noqa: F401  (tiny_models is a fixture)
    TINY,
    TINY_32,
    TINY_AUX,
    make_cifar_dataset,
    make_idx_dataset,
    make_image_folder,
    tiny_models,
)
from cnnlab.analysis.compare import TRAINED_COLUMNS, render_rows
from cnnlab.data import TensorBatches, load_arrays
from cnnlab.errors import CnnlabError, OutputPathError
from cnnlab.train import (
    BestCheckpoint,
    TrainConfig,
    TrainingCheckpoint,
    TrainingDivergedError,
    ensemble_checkpoints,
    evaluate_checkpoint,
    load_checkpoint,
    load_run_checkpoint,
    load_trained_model,
    predict_files,
    predict_logits,
    resume_training,
    train,
)
from cnnlab.train.inputs import augment_from_meta

pytestmark = pytest.mark.usefixtures("tiny_models")


@pytest.fixture(scope="module")
def fashion_dir(tmp_path_factory) -> Path:
    return make_idx_dataset(tmp_path_factory.mktemp("fashion"), n_train=320, n_test=64)


def _cfg(data_dir: Path, out: Path, **kw) -> TrainConfig:
    base = dict(
        model=TINY,
        data="fashion-mnist",
        data_dir=str(data_dir),
        epochs=2,
        batch_size=32,
        val_split=64,
        lr=0.01,
        optimizer="adamw",
        weight_decay=0.0,
        threads=1,
        quiet=True,
        out=str(out),
        download=False,
        tensorboard=False,
    )
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def trained(fashion_dir, tmp_path_factory):
    """One 4-epoch run shared by the read-only tests below (fp32: evaluations here compare it exactly)."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    results = train(_cfg(fashion_dir, out, epochs=4, crop_padding=1, ema_decay=0.9, amp="off"))
    return out, results


def test_run_directory_contents(trained):
    out, results = trained
    assert sorted(p.name for p in out.iterdir()) == [
        ".lock",  # the run's lock (held while it trains; the system drops it when the process ends)
        "best.pt",
        "config.json",
        "curve.jsonl",
        "last.pt",
        "metrics.csv",
        "metrics.jsonl",
        "results.json",
    ]
    assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(results))
    assert 0.0 <= results["test_accuracy"] <= 1.0 and results["test_images"] == 64
    assert results["params"] == sum(p.numel() for p in load_trained_model(out / "last.pt")[0].parameters())
    assert results["macs"] > 0 and results["images_per_second"] > 0 and results["wall_seconds"] > 0
    assert {"cpu", "threads", "torch", "device"} <= set(results["hardware"])
    stored = TrainConfig.from_dict(json.loads((out / "config.json").read_text()))
    assert stored.epochs == 4 and stored.ema_decay == 0.9


def test_metrics_files_agree(trained):
    out, _ = trained
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4] == [r["epoch"] for r in lines]
    for row, line in zip(rows, lines):
        for key in (
            "train_loss",
            "train_accuracy",
            "val_accuracy",
            "lr",
            "images_per_second",
            "epoch_seconds",
        ):
            assert float(row[key]) == pytest.approx(line[key])
    assert lines[-1]["train_loss"] < lines[0]["train_loss"]  # it learns
    assert lines[-1]["step"] == 4 * (256 // 32)


def test_results_use_the_best_validation_epoch(trained):
    out, results = trained
    history = load_checkpoint(out / "last.pt")["state"]["history"]
    best_epoch = max(range(4), key=lambda i: (history[i]["val_accuracy"], -i)) + 1
    assert results["selected"] == f"best validation accuracy (epoch {best_epoch})"
    assert load_checkpoint(out / "best.pt")["epoch"] == best_epoch
    assert evaluate_checkpoint(out / "best.pt", device="cpu")["accuracy"] == pytest.approx(
        results["test_accuracy"]
    )
    val = evaluate_checkpoint(out / "best.pt", split="val", device="cpu")
    assert val["count"] == 64 and val["accuracy"] == pytest.approx(results["best_val_accuracy"])


def test_top5_beside_top1_in_results_metrics_and_eval(trained):
    out, results = trained
    model, ckpt = load_trained_model(out / "best.pt")
    test = load_arrays("fashion-mnist", ckpt.config.data_dir, download=False)["test"]
    logits, labels = predict_logits(model, TensorBatches(test, 50, "cpu", train=False), augment_from_meta(ckpt.data))
    top5 = logits.argsort(dim=1, descending=True)[:, :5]
    expected = float((top5 == labels[:, None]).any(1).double().mean())
    assert results["top5_accuracy"] == pytest.approx(expected)
    assert results["test_accuracy"] <= results["top5_accuracy"] <= 1.0
    assert evaluate_checkpoint(out / "best.pt", device="cpu")["top5_accuracy"] == pytest.approx(expected)
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(row["val_accuracy"] <= row["val_top5_accuracy"] <= 1.0 for row in lines)
    assert "top5_accuracy" in render_rows([results], "markdown", TRAINED_COLUMNS).splitlines()[0]


# The keys of format cnnlab-checkpoint-v1 as the loop wrote them before the typed payloads: files written
# then must load, and files written now must load in code that reads these keys.
V1_LAST_KEYS = ["config", "data", "ema", "epoch", "format", "model", "model_name", "optimizer", "rng", "scaler",
                "scheduler", "state", "step"]
V1_BEST_KEYS = ["config", "data", "ema", "epoch", "format", "model", "model_name", "step", "val_accuracy"]
V1_DATA_KEYS = ["classes", "dataset", "image_shape", "in_chans", "input_size", "kind", "mean", "source", "std",
                "test_images", "train_images", "val_images"]
V1_PARTIAL_KEYS = ["correct", "loss_sum", "seconds", "seen"]  # and "lr" once a step has run


def test_checkpoint_files_keep_the_v1_layout_and_round_trip(trained):
    out, _ = trained
    last, best = load_checkpoint(out / "last.pt"), load_checkpoint(out / "best.pt")
    assert sorted(last) == V1_LAST_KEYS and sorted(best) == V1_BEST_KEYS
    # v1 files keep every key; keys added since (with defaults, so older files load) are listed here.
    assert sorted(last["data"]) == sorted([*V1_DATA_KEYS, "class_subset", "task"]) == sorted(best["data"])
    assert set(V1_PARTIAL_KEYS) <= set(last["state"]["partial"]) <= {*V1_PARTIAL_KEYS, "lr"}
    typed_last, typed_best = load_run_checkpoint(out / "last.pt"), load_run_checkpoint(out / "best.pt")
    assert isinstance(typed_last, TrainingCheckpoint) and isinstance(typed_best, BestCheckpoint)
    assert typed_last.state.epoch == last["epoch"] == 4 and typed_last.data.classes == last["data"]["classes"]
    assert typed_best.val_accuracy == best["val_accuracy"] and typed_best.epoch == best["epoch"]
    for typed, plain in ((typed_last, last), (typed_best, best)):
        again = typed.to_dict()
        values = {k: v for k, v in plain.items() if k not in ("model", "ema", "optimizer", "rng")}  # no tensors
        assert sorted(again) == sorted(plain) and {k: again[k] for k in values} == values
        assert all(torch.equal(again["model"][k], v) for k, v in plain["model"].items())
    # EMA weights are what last.pt predicts with; best.pt holds the evaluated weights themselves.
    assert typed_last.weights is typed_last.ema["module"] and typed_best.weights is typed_best.model


def test_a_checkpoint_without_lr_in_its_epoch_totals_resumes(trained, tmp_path):
    """Older v1 files reset the epoch totals without "lr" at epoch ends: they still load."""
    out, _ = trained
    plain = load_checkpoint(out / "last.pt")
    plain["state"]["partial"] = {"loss_sum": 0.0, "correct": 0.0, "seen": 0, "seconds": 0.0}
    path = tmp_path / "old" / "last.pt"
    path.parent.mkdir()
    torch.save(plain, path)
    assert load_run_checkpoint(path).state.partial.lr == 0.0


def test_predict_matches_the_model(trained, fashion_dir, tmp_path):
    out, _ = trained
    test = load_arrays("fashion-mnist", fashion_dir, download=False)["test"]
    files = []
    for i in range(3):
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(test.images[i, 0].numpy()).save(files[-1])
    rows = predict_files(out / "best.pt", files, topk=3, device="cpu")
    model, ckpt = load_trained_model(out / "best.pt")
    with torch.no_grad():
        expected = model(augment_from_meta(ckpt.data).eval(test.images[:3])).softmax(1)
    for i, row in enumerate(rows):
        probs = [t["probability"] for t in row["top"]]
        assert len(probs) == 3 and probs == sorted(probs, reverse=True)
        assert row["top"][0]["class"] == test.classes[int(expected[i].argmax())]
        assert probs[0] == pytest.approx(float(expected[i].max()), abs=1e-5)


def test_ensemble_averages_softmax(trained, fashion_dir, tmp_path):
    out, _ = trained
    second = tmp_path / "second"
    train(_cfg(fashion_dir, second, epochs=1, seed=7))
    paths = [out / "best.pt", second / "last.pt"]
    result = ensemble_checkpoints(paths, device="cpu")
    test = load_arrays("fashion-mnist", fashion_dir, download=False)["test"]
    probs = 0
    for path in paths:
        model, ckpt = load_trained_model(path)
        source = TensorBatches(test, 50, "cpu", train=False)
        logits, labels = predict_logits(model, source, augment_from_meta(ckpt.data))
        probs = probs + logits.softmax(1)
    expected = float((probs.argmax(1) == labels).double().mean())
    assert result["ensemble_accuracy"] == pytest.approx(expected)
    top5 = float((probs.argsort(1, descending=True)[:, :5] == labels[:, None]).any(1).double().mean())
    assert result["ensemble_top5_accuracy"] == pytest.approx(top5)
    assert all(m["accuracy"] <= m["top5_accuracy"] for m in result["members"])
    assert [m["checkpoint"] for m in result["members"]] == [str(p) for p in paths]
    with pytest.raises(ValueError, match="at least two"):
        ensemble_checkpoints(paths[:1])


def test_refuses_to_overwrite_a_run_and_to_change_settings_on_resume(trained, fashion_dir):
    out, _ = trained
    with pytest.raises(OutputPathError, match="already holds a run"):
        train(_cfg(fashion_dir, out))
    with pytest.raises(ValueError, match="cannot change lr when resuming"):
        resume_training(out, {"lr": 0.5})


def test_diverging_loss_stops_and_keeps_the_last_good_checkpoint(fashion_dir, tmp_path):
    # After epoch 1 the rate jumps by 1e12: the loss overflows within a few steps.
    cfg = _cfg(
        fashion_dir,
        tmp_path / "nan",
        optimizer="sgd",
        lr=0.05,
        schedule="multistep",
        milestones=[1],
        gamma=1e12,
        epochs=3,
        log_every=1,
    )
    with pytest.raises(TrainingDivergedError, match="last good checkpoint") as err:
        train(cfg)
    assert "NaN" in str(err.value) or "infinite" in str(err.value)
    assert isinstance(err.value, CnnlabError) and isinstance(err.value, RuntimeError)  # one line in the CLI
    last = load_checkpoint(tmp_path / "nan" / "last.pt")
    assert last["state"]["epoch"] == 1 and last["step"] == 8
    assert all(torch.isfinite(v).all() for v in last["model"].values())
    assert not (tmp_path / "nan" / "results.json").exists()


def test_time_budget_stops_mid_epoch_and_reports(fashion_dir, tmp_path):
    results = train(_cfg(fashion_dir, tmp_path / "budget", epochs=50, time_budget=1e-6, log_every=1))
    assert results["stopped_early"] == "time budget"
    assert results["epochs_completed"] == 0 and results["steps"] == 1 and results["selected"] == "last"
    assert load_checkpoint(tmp_path / "budget" / "last.pt")["state"]["step_in_epoch"] == 1
    assert (tmp_path / "budget" / "results.json").exists()
    resumed = resume_training(tmp_path / "budget", {"time_budget": 1e6, "epochs": 1})
    assert resumed["stopped_early"] is None and resumed["epochs_completed"] == 1 and resumed["steps"] == 8


def test_padding_notice_and_input_size(fashion_dir, tmp_path, capsys):
    results = train(_cfg(fashion_dir, tmp_path / "pad", model=TINY_32, epochs=1, val_split=0))
    assert results["input_size"] == [1, 32, 32]
    assert "28x28 images are zero-padded to 32x32" in capsys.readouterr().err
    assert results["selected"] == "last" and results["best_val_accuracy"] is None


def test_aux_outputs_grayscale_to_rgb_and_mixing(fashion_dir, tmp_path):
    results = train(
        _cfg(
            fashion_dir,
            tmp_path / "aux",
            model=TINY_AUX,
            epochs=1,
            in_chans=3,
            mixup=0.2,
            cutmix=1.0,
            random_erasing=0.25,
            hflip=True,
            label_smoothing=0.1,
            grad_clip=1.0,
            tta_flip=True,
            drop_rate=0.1,
        )
    )
    assert results["input_size"] == [3, 28, 28]
    model, _ = load_trained_model(tmp_path / "aux" / "last.pt")
    assert model.stem[0].weight.shape[1] == 3 and model.head.drop.p == 0.1


def test_fine_tune_frozen_backbone_on_an_image_folder(trained, tmp_path):
    out, _ = trained
    folder = make_image_folder(tmp_path / "pets", per_class=8, size=20)
    cfg = TrainConfig(
        model=TINY,
        data=str(folder),
        image_size=16,
        in_chans=1,
        val_split=0,
        epochs=1,
        batch_size=8,
        eval_batch_size=8,
        workers=0,
        threads=1,
        quiet=True,
        out=str(tmp_path / "ft"),
        init=str(out / "best.pt"),
        freeze_backbone=True,
        hflip=True,
    )
    results = train(cfg)
    assert results["test_images"] == 24
    source = load_checkpoint(out / "best.pt")["model"]
    tuned = load_checkpoint(tmp_path / "ft" / "last.pt")["model"]
    assert torch.equal(tuned["stem.0.weight"], source["stem.0.weight"])  # frozen
    assert tuned["head.fc.weight"].shape == (3, 16)
    assert load_checkpoint(tmp_path / "ft" / "last.pt")["data"]["classes"] == ["cat", "dog", "fox"]


def test_cifar_layout_trains(tmp_path):
    make_cifar_dataset(tmp_path / "data", per_batch=16)
    results = train(
        TrainConfig(
            model=TINY,
            data="cifar10",
            data_dir=str(tmp_path / "data"),
            epochs=1,
            batch_size=16,
            val_split=16,
            threads=1,
            quiet=True,
            out=str(tmp_path / "c"),
        )
    )
    assert results["input_size"] == [3, 32, 32] and results["test_images"] == 16


def test_curve_logs_training_loss_within_epochs(fashion_dir, tmp_path):
    """curve.jsonl: one row every log_every steps, steps/images/time increasing, matching the totals."""
    train(_cfg(fashion_dir, tmp_path / "run", log_every=2))
    rows = [json.loads(line) for line in (tmp_path / "run" / "curve.jsonl").read_text().splitlines()]
    steps_per_epoch = (320 - 64) // 32
    assert [r["step"] for r in rows] == list(range(2, 2 * steps_per_epoch + 1, 2))
    assert all(b["images"] - a["images"] == 64 for a, b in zip(rows, rows[1:]))
    assert all(b["train_seconds"] > a["train_seconds"] for a, b in zip(rows, rows[1:]))
    assert rows[-1]["epoch"] == pytest.approx(2.0)
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert rows[-1]["images"] == 2 * (320 - 64)  # two epochs of the training images left after validation
    assert 0 < results["train_seconds"] < results["wall_seconds"]  # steps are a part of the run's time
    assert all(0.0 <= r["accuracy"] <= 1.0 and r["loss"] > 0 for r in rows)


def test_tensorboard_scalars_match_the_metrics_across_a_resume(fashion_dir, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "tb"
    train(_cfg(fashion_dir, out, epochs=2, tensorboard=True))
    resume_training(out, {"epochs": 3})  # the resumed session appends epoch 3 to the same log
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {"train_loss", "train_accuracy", "val_accuracy", "lr", "images_per_second"} <= set(
        events.Tags()["scalars"]
    )
    for key in ("train_loss", "val_accuracy", "lr"):
        logged = {e.step: e.value for e in events.Scalars(key)}
        assert logged == pytest.approx({row["epoch"]: row[key] for row in lines})


def test_tensorboard_off_writes_no_log(fashion_dir, tmp_path):
    train(_cfg(fashion_dir, tmp_path / "notb", epochs=1, tensorboard=False))
    assert not (tmp_path / "notb" / "tensorboard").exists()


@pytest.mark.slow
def test_compiled_training_saves_plain_weights(fashion_dir, tmp_path):
    torch._dynamo.reset()
    out = tmp_path / "compiled"
    results = train(_cfg(fashion_dir, out, epochs=1, compile=True))
    state = load_checkpoint(out / "last.pt")["model"]
    assert not any("_orig_mod" in key for key in state)  # loadable without torch.compile
    assert evaluate_checkpoint(out / "last.pt", device="cpu")["accuracy"] == pytest.approx(results["test_accuracy"])
