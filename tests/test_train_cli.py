"""The train / eval / predict / ensemble subcommands map flags onto the library."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from _tiny import TINY, make_idx_dataset, tiny_models  # noqa: F401  (tiny_models is a fixture)
from cnnlab.cli import main
from cnnlab.data import load_arrays
from cnnlab.train import load_checkpoint

pytestmark = pytest.mark.usefixtures("tiny_models")


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """A run made through `cnnlab train` with a YAML config file and flags over it."""
    root = tmp_path_factory.mktemp("cli")
    data = make_idx_dataset(root / "data", n_train=160, n_test=40)
    config = root / "run.yaml"
    config.write_text("recipe: fast\nepochs: 5\nbatch_size: 32\nval_split: 32\nlr: 0.3\n")
    argv = [
        "train",
        TINY,
        "--config",
        str(config),
        "--data-dir",
        str(data),
        "--epochs",
        "2",
        "--threads",
        "1",
        "--quiet",
        "--out",
        str(root / "run"),
        "--no-tta-flip",
    ]
    assert main(argv) == 0
    return root, data


def test_train_applies_recipe_file_and_flags(cli_run):
    root, _ = cli_run
    cfg = json.loads((root / "run" / "config.json").read_text())
    assert (
        cfg["epochs"] == 2 and cfg["lr"] == 0.3 and cfg["schedule"] == "onecycle" and cfg["tta_flip"] is False
    )
    assert load_checkpoint(root / "run" / "last.pt")["epoch"] == 2


def test_eval_prints_accuracy(cli_run, capsys):
    root, _ = cli_run
    capsys.readouterr()
    assert main(["eval", str(root / "run" / "best.pt"), "--format", "json", "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    expected = json.loads((root / "run" / "results.json").read_text())["test_accuracy"]
    assert result["accuracy"] == pytest.approx(expected) and result["count"] == 40
    assert result["top5_accuracy"] == pytest.approx(json.loads((root / "run" / "results.json").read_text())[
        "top5_accuracy"])
    assert main(["eval", str(root / "run"), "--split", "val", "--device", "cpu", "--topk", "3"]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "top-3" in out


def test_predict_and_ensemble(cli_run, capsys, tmp_path):
    root, data = cli_run
    test = load_arrays("fashion-mnist", data, download=False)["test"]
    image = tmp_path / "x.png"
    Image.fromarray(test.images[0, 0].numpy()).save(image)
    capsys.readouterr()
    assert main(["predict", str(root / "run" / "best.pt"), str(image), "--topk", "2", "--device", "cpu"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{image}: ") and line.count("%") == 2
    run = root / "run"
    assert (
        main(["ensemble", str(run / "best.pt"), str(run / "last.pt"), "--format", "json", "--device", "cpu"])
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert len(result["members"]) == 2 and 0 <= result["ensemble_accuracy"] <= result["ensemble_top5_accuracy"] <= 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", TINY, "--recipe", "slow"], "invalid choice"),
        (["train", TINY, "--schedule", "plateau", "--val-split", "0"], "plateau schedule watches validation"),
        (["train", "no_such_net"], "unknown model 'no_such_net'"),
        (["eval", "missing.pt"], "missing.pt does not exist"),
    ],
)
def test_user_errors_are_one_line(argv, message, capsys, tmp_path):
    argv = [*argv, "--out", str(tmp_path / "r")] if argv[0] == "train" else argv
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse rejects bad choices itself
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and message in err
    if "invalid choice" not in message:
        assert err.count("\n") == 1 and err.startswith("cnnlab: error: ")


def test_resume_refuses_a_config_file(cli_run, capsys):
    root, _ = cli_run
    assert main(["train", "--resume", str(root / "run"), "--config", "x.yaml"]) == 2
    assert "leave out --config" in capsys.readouterr().err


def test_resume_extends_a_finished_run(cli_run, capsys):
    root, _ = cli_run
    assert main(["train", "--resume", str(root / "run"), "--epochs", "3", "--quiet"]) == 0
    assert load_checkpoint(root / "run" / "last.pt")["epoch"] == 3
    assert Path(root / "run" / "metrics.csv").read_text().count("\n") == 4


def test_a_run_on_two_classes_and_a_subset_is_evaluated_on_the_same_classes(tmp_path, capsys):
    data = make_idx_dataset(tmp_path / "data", n_train=320, n_test=60)
    out = tmp_path / "run"
    argv = ["train", TINY, "--data-dir", str(data), "--epochs", "1", "--batch-size", "16", "--val-split", "0.25",
            "--threads", "1", "--quiet", "--device", "cpu", "--out", str(out),
            "--classes", "7", "3", "--train-subset", "0.5"]
    assert main(argv) == 0
    splits = load_arrays("fashion-mnist", data, download=False)
    counts = {split: [int((a.labels == c).sum()) for c in (7, 3)] for split, a in splits.items()}
    results = json.loads((out / "results.json").read_text())
    assert results["num_classes"] == 2 and results["test_images"] == sum(counts["test"])
    meta = load_checkpoint(out / "last.pt")["data"]
    names = splits["train"].classes
    assert meta["classes"] == [names[7], names[3]]
    assert meta["train_images"] + meta["val_images"] == sum(round(n / 2) for n in counts["train"])
    capsys.readouterr()
    assert main(["eval", str(out / "last.pt"), "--split", "val", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == meta["val_images"] > 0


def test_no_test_leaves_the_test_split_unread(tmp_path, capsys, monkeypatch):
    """--no-test: a tuning run that must not see the test set; results.json says it was not tested."""
    import importlib

    tasks = importlib.import_module("cnnlab.train.tasks")  # where the trainer's evaluation is called from

    data = make_idx_dataset(tmp_path / "data", n_train=160, n_test=40)
    seen = []
    real = tasks.evaluate

    def counting(model, source, *args, **kwargs):
        seen.append(source.num_samples)
        return real(model, source, *args, **kwargs)

    monkeypatch.setattr(tasks, "evaluate", counting)
    argv = ["train", TINY, "--data-dir", str(data), "--epochs", "1", "--batch-size", "16", "--val-split", "32",
            "--threads", "1", "--quiet", "--device", "cpu", "--out", str(tmp_path / "run"), "--no-test"]
    assert main(argv) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["test_accuracy"] is None and results["test_images"] == 0
    assert results["best_val_accuracy"] is not None and seen == [32]  # validation only, never the 40 test images
    assert "not tested" in capsys.readouterr().out
