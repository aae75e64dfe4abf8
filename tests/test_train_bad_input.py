"""`cnnlab train` under bad input: one line and exit status 2, found early, and nothing lost or mixed up."""

from __future__ import annotations

import errno
import json
import os
import struct
from pathlib import Path

import pytest
import torch

from _tiny import TINY, make_idx_dataset, make_image_folder, tiny_models, train_argv  # noqa: F401  (a fixture)
from cnnlab.cli import main
from cnnlab.data import read_idx
from cnnlab.data.errors import DatasetFileError
from cnnlab.errors import ConfigError
from cnnlab.files import DirectoryLock
from cnnlab.train import TrainConfig, load_checkpoint
from cnnlab.train.build import build_model

pytestmark = pytest.mark.usefixtures("tiny_models")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_idx_dataset(tmp_path_factory.mktemp("fashion"), n_train=320, n_test=64)


@pytest.fixture(scope="module")
def broken_data(tmp_path_factory) -> Path:
    """A data folder whose training images are damaged: a run that loads it fails at once, naming the file."""
    root = make_idx_dataset(tmp_path_factory.mktemp("broken"), n_train=32, n_test=16)
    (root / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    return root


def _one_line_error(capsys, argv: list[str]) -> str:
    """Run ``cnnlab ARGV``; assert it failed as a user error (one line, exit 2) and return the message."""
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("cnnlab: error: ")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    return lines[0][len("cnnlab: error: "):]


# -- the output place ----------------------------------------------------------------------------------


def test_out_naming_a_file_is_refused_before_the_data_loads(broken_data, tmp_path, capsys):
    (tmp_path / "taken").write_text("not a folder")
    assert "train-images-idx3-ubyte.gz" in _one_line_error(capsys, train_argv(broken_data, 1))  # the data fails
    # ... but the output place is checked first.
    message = _one_line_error(capsys, train_argv(broken_data, 1, "--out", str(tmp_path / "taken")))
    assert f"{tmp_path / 'taken'} is a file, not a folder" in message


def test_a_second_writer_is_refused_naming_the_first(data, tmp_path, capsys):
    out = tmp_path / "run"
    with DirectoryLock(out):  # held as a run that is still training holds it
        message = _one_line_error(capsys, train_argv(data, 1, "--out", str(out)))
        assert f"{out} is being written by another run (process {os.getpid()})" in message
    assert not (out / "config.json").exists()  # the refused run wrote nothing there


def test_resuming_a_run_that_is_still_training_is_refused(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_argv(data, 1, "--out", str(out))) == 0
    with DirectoryLock(out):
        message = _one_line_error(capsys, ["train", "--resume", str(out), "--epochs", "2"])
        assert f"the run in {out} is still training (process {os.getpid()})" in message
        # A new run there hears of the writer first, then (once it is gone) of the run the folder holds.
        assert "being written by another run" in _one_line_error(capsys, train_argv(data, 1, "--out", str(out)))
    assert "already holds a run" in _one_line_error(capsys, train_argv(data, 1, "--out", str(out)))
    assert load_checkpoint(out / "last.pt")["state"]["epoch"] == 1


def test_default_run_names_are_unique_within_a_second(data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("cnnlab.train.loop.time.strftime", lambda fmt: "20250101-000000")  # the same second
    argv = [a for a in train_argv(data, 1)]
    assert main(argv) == 0 and main(argv) == 0
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    stem = f"{TINY}-fashion-mnist-20250101-000000"
    assert runs == [stem, f"{stem}-2"]
    assert all((tmp_path / "runs" / name / "results.json").is_file() for name in runs)


def test_a_failed_start_leaves_no_empty_run_directory(broken_data, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _one_line_error(capsys, train_argv(broken_data, 1))
    _one_line_error(capsys, train_argv(broken_data, 1, "--out", "mine"))
    assert list((tmp_path / "runs").iterdir()) == [] and not (tmp_path / "mine").exists()
    (tmp_path / "kept").mkdir()
    _one_line_error(capsys, train_argv(broken_data, 1, "--out", "kept"))
    assert (tmp_path / "kept").is_dir()  # a folder the user made stays


def test_disk_full_names_the_device_and_the_last_good_checkpoint(data, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    real_save = torch.save

    def save_until_full(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and "optimizer" in obj and obj["step"] > 8:  # the disk fills after epoch 1
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_until_full)
    message = _one_line_error(capsys, train_argv(data, 2, "--out", str(out), "--checkpoint-seconds", "0"))
    assert message.startswith("no space left on ")
    assert f"stopped at step 16: the last good checkpoint is {out / 'last.pt'} (step 8)" in message
    assert load_checkpoint(out / "last.pt")["step"] == 8
    assert [p.name for p in out.iterdir() if p.name.endswith(".tmp")] == []


# -- resuming ------------------------------------------------------------------------------------------


def test_resume_accepts_the_last_checkpoint_file(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_argv(data, 1, "--out", str(out))) == 0
    assert main(["train", "--resume", str(out / "last.pt"), "--epochs", "2", "--quiet"]) == 0
    assert load_checkpoint(out / "last.pt")["state"]["epoch"] == 2
    message = _one_line_error(capsys, ["train", "--resume", str(out / "best.pt")])
    assert "--resume takes a run directory or its last.pt" in message and f"--init {out / 'best.pt'}" in message


# -- the loss diverging --------------------------------------------------------------------------------


def test_divergence_before_the_first_checkpoint_names_no_checkpoint(data, tmp_path, capsys):
    out = tmp_path / "nan"
    message = _one_line_error(capsys, train_argv(data, 2, "--out", str(out), "--lr", "1e30", "--log-every", "1"))
    assert "stopped; no checkpoint was written before it" in message
    assert "NaN" in message or "infinite" in message
    assert not (out / "last.pt").exists()


def test_divergence_names_the_checkpoint_and_its_step(data, tmp_path, capsys):
    out = tmp_path / "nan"
    argv = train_argv(data, 3, "--out", str(out), "--schedule", "multistep", "--milestones", "1", "--gamma", "1e12",
                      "--log-every", "1")
    message = _one_line_error(capsys, argv)
    assert f"the last good checkpoint is {out / 'last.pt'} (step 8)" in message
    assert load_checkpoint(out / "last.pt")["step"] == 8


# -- settings and data that cannot make a meaningful run -----------------------------------------------


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--val-split", "1.0"], "--val-split 1 is ambiguous: a fraction is below 1 (0.1 = 10%) and a count is 2"),
        (["--val-split", "1"], "--val-split 1 is ambiguous"),
        (["--val-split", "2.5"], "--val-split 2.5 is neither a fraction (below 1) nor a whole number of images"),
        (["--train-subset", "1"], "--train-subset 1 is ambiguous"),
        (["--classes", "3"], "classes: name two or more"),
        ([f"{TINY}:drop_rate=abc"], f"{TINY}: model option drop_rate must be a number (float), got 'abc' (str)"),
    ],
)
def test_settings_without_a_clear_meaning_are_refused(data, tmp_path, capsys, flags, expected):
    argv = train_argv(data, 1, "--out", str(tmp_path / "run"))
    if flags[0].startswith(TINY):
        argv[1] = flags[0]
        flags = []
    assert expected in _one_line_error(capsys, [*argv, *flags])


def test_model_options_of_the_wrong_type_name_the_option():
    with pytest.raises(ConfigError, match=r"vgg11_bn: model option width_mult must be a number \(float\), got 'abc'"):
        build_model(TrainConfig(model="vgg11_bn", model_args={"width_mult": "abc"}), 10, 1)
    with pytest.raises(ConfigError, match=r"model option hidden must be a whole number \(int\), got 2.5 \(float\)"):
        build_model(TrainConfig(model="vgg11_bn", model_args={"hidden": 2.5}), 10, 1)
    model = build_model(TrainConfig(model="lenet5_relu", model_args={}), 10, 1)  # no options: nothing to check
    assert model.num_classes == 10


def test_an_option_that_takes_a_number_or_a_list_accepts_both():
    # anynet's group_widths is `int | Sequence[int]`: one shared width or one per stage
    per_stage = build_model(TrainConfig(model="anynet", model_args={"group_widths": [8, 8]}), 10, 1)
    shared = build_model(TrainConfig(model="anynet", model_args={"group_widths": 8}), 10, 1)
    assert sum(p.numel() for p in per_stage.parameters()) == sum(p.numel() for p in shared.parameters())
    with pytest.raises(ConfigError, match=r"anynet: model option stem_width must be a whole number"):
        build_model(TrainConfig(model="anynet", model_args={"stem_width": "wide"}), 10, 1)


def test_an_image_folder_of_one_class_is_refused(tmp_path, capsys):
    folder = make_image_folder(tmp_path / "pets", per_class=4, classes=("cat",), size=16)
    argv = ["train", TINY, "--data", str(folder), "--epochs", "1", "--val-split", "0", "--batch-size", "2",
            "--workers", "0", "--threads", "1", "--quiet", "--out", str(tmp_path / "run")]
    message = _one_line_error(capsys, argv)
    assert "holds one class (cat); a classifier needs two or more class subfolders" in message


def test_mismatched_image_and_label_counts_name_the_files(tmp_path, capsys):
    data = make_idx_dataset(tmp_path / "data", n_train=64, n_test=16, gz=False)
    labels = data / "train-labels-idx1-ubyte"
    raw = labels.read_bytes()
    labels.write_bytes(raw[:4] + struct.pack(">I", 63) + raw[8:-1])  # one label short
    message = _one_line_error(capsys, train_argv(data, 1, "--val-split", "0", "--out", str(tmp_path / "run")))
    assert f"{labels} holds (63,) labels for the 64 images of" in message


def test_labels_outside_the_classes_are_named(tmp_path, capsys):
    data = make_idx_dataset(tmp_path / "data", n_train=64, n_test=16, gz=False)
    labels = data / "t10k-labels-idx1-ubyte"
    raw = bytearray(labels.read_bytes())
    raw[-1] = 10  # Fashion-MNIST has classes 0..9
    labels.write_bytes(bytes(raw))
    message = _one_line_error(capsys, train_argv(data, 1, "--val-split", "0", "--out", str(tmp_path / "run")))
    assert f"{labels} has labels outside 0..9" in message and "max 10" in message


def test_an_idx_header_with_absurd_dimensions_is_one_short_message(tmp_path):
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 0x08, 200]) + b"\x00" * 4 * 200 + b"\x01" * 16)
    with pytest.raises(DatasetFileError) as err:
        read_idx(path)
    message = str(err.value)
    assert "declares 200 dimensions" in message and "\n" not in message and len(message) < 200


def test_the_nan_stop_through_the_cli_is_exit_2_with_the_advice(data, tmp_path, capsys):
    message = _one_line_error(capsys, train_argv(data, 1, "--out", str(tmp_path / "r"), "--lr", "1e30",
                                                 "--log-every", "1"))
    assert message.startswith("the training loss became") and "Try a lower --lr, --grad-clip 1.0" in message
    assert json.loads((tmp_path / "r" / "config.json").read_text())["lr"] == 1e30
