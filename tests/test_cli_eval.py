"""What `cnnlab eval`, `predict` and `train --resume` tell a student about a finished run."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from _tiny import TINY, make_idx_dataset, tiny_models  # noqa: F401  (tiny_models is a fixture)
from cnnlab.cli import main
from cnnlab.data import load_arrays
from cnnlab.train.console import confusion_text

pytestmark = pytest.mark.usefixtures("tiny_models")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished 2-epoch run of the fast recipe (mirror TTA on) that kept a validation split."""
    root = tmp_path_factory.mktemp("evalrun")
    data = make_idx_dataset(root / "data", n_train=160, n_test=40)
    argv = ["train", TINY, "--recipe", "fast", "--epochs", "2", "--batch-size", "32", "--val-split", "32",
            "--data-dir", str(data), "--threads", "1", "--quiet", "--device", "cpu", "--out", str(root / "run")]
    assert main(argv) == 0
    return root / "run", data


def test_eval_of_a_run_directory_says_which_weights_and_where_tta_comes_from(run, capsys):
    out, _ = run
    capsys.readouterr()
    assert main(["eval", str(out), "--format", "json", "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    # The run kept a validation split: its best.pt holds the weights results.json reports.
    assert result["checkpoint"] == str(out / "best.pt")
    assert result["accuracy"] == pytest.approx(json.loads((out / "results.json").read_text())["test_accuracy"])
    assert f"evaluated {out / 'best.pt'} (best validation accuracy, after epoch" in captured.err
    assert "mirror TTA on (as the run was trained: its fast recipe)" in captured.err
    assert main(["eval", str(out / "last.pt"), "--no-tta-flip", "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "last weights, after epoch 2" in err and "mirror TTA off (--no-tta-flip)" in err


def test_eval_shows_the_confusion_matrix_and_per_class_accuracy(run, capsys, tmp_path):
    out, data = run
    capsys.readouterr()
    assert main(["eval", str(out), "--format", "json", "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    matrix = np.array(result["confusion"])
    labels = load_arrays("fashion-mnist", data, download=False)["test"].labels.numpy()
    assert matrix.shape == (10, 10) and matrix.sum() == result["count"] == 40
    assert (matrix.sum(1) == np.bincount(labels, minlength=10)).all()  # each row: the images of that class
    assert np.trace(matrix) / matrix.sum() == pytest.approx(result["accuracy"])
    shown = [a for a, n in zip(result["per_class_accuracy"], matrix.sum(1)) if n]
    assert shown == pytest.approx([matrix[i, i] / matrix[i].sum() for i in range(10) if matrix[i].sum()])
    assert (out / "confusion-test.png").stat().st_size > 0  # beside the checkpoint by default
    figure = tmp_path / "cm.png"
    assert main(["eval", str(out), "--device", "cpu", "--plot", str(figure)]) == 0
    text = capsys.readouterr().out
    assert figure.stat().st_size > 0 and "most often taken for" in text and "T-shirt/top" in text


def test_confusion_text_reads_rows_as_true_classes():
    text = confusion_text(["shirt", "t-shirt", "coat"], [[6, 3, 1], [1, 9, 0], [0, 0, 0]])
    lines = text.splitlines()
    assert lines[0].startswith("rows: true class")
    assert re.search(r"0 shirt\s+6\s+3\s+1\s+60\.0%\s+t-shirt \(30\.0%\)", lines[2])
    assert re.search(r"1 t-shirt\s+1\s+9\s+0\s+90\.0%\s+shirt \(10\.0%\)", lines[3])
    assert re.search(r"2 coat\s+0\s+0\s+0\s+0\.0%\s+-$", lines[4])  # no images of the class: nothing confused


def test_resuming_a_finished_run_says_it_is_complete(run, capsys):
    out, _ = run
    before = (out / "results.json").read_text()
    capsys.readouterr()
    assert main(["train", "--resume", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"{out} is complete (2 epochs" in err and f"cnnlab train --resume {out} --epochs 4" in err
    assert (out / "results.json").read_text() == before  # not tested again, wall_seconds untouched


def test_predict_notices_a_light_background_and_inverts(run, capsys, tmp_path):
    out, data = run
    test = load_arrays("fashion-mnist", data, download=False)["test"]
    dark = tmp_path / "dark.png"
    Image.fromarray(test.images[0, 0].numpy()).save(dark)
    light = tmp_path / "light.png"
    Image.fromarray(255 - test.images[0, 0].numpy()).save(light)
    capsys.readouterr()
    assert main(["predict", str(out), str(dark), str(light), "--device", "cpu", "--format", "json"]) == 0
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert [r["light_background"] for r in rows] == [False, True]
    assert f"{light} has a light background" in captured.err and "--invert" in captured.err
    assert str(dark) not in captured.err
    # The negative of the negative is the original: the same prediction.
    assert main(["predict", str(out), str(light), "--invert", "--device", "cpu", "--format", "json"]) == 0
    inverted = json.loads(capsys.readouterr().out)[0]
    assert inverted["inverted"] and inverted["top"] == rows[0]["top"]
