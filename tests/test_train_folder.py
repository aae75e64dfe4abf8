"""A small image folder trains with the defaults: a fractional validation split (or its val/), a batch that fits."""

from __future__ import annotations

import shutil

import pytest

from _tiny import TINY, make_image_folder, tiny_models  # noqa: F401  (tiny_models is a fixture)
from cnnlab.errors import ConfigError
from cnnlab.train import TrainConfig, evaluate_checkpoint, train

pytestmark = pytest.mark.usefixtures("tiny_models")


def _cfg(folder, out, **kw) -> TrainConfig:
    # Only what a small folder needs to be fast here; --val-split and --batch-size keep their defaults.
    return TrainConfig(model=TINY, data=str(folder), image_size=16, in_chans=1, epochs=1, workers=0, threads=1,
                       quiet=True, out=str(out), **kw)


def test_sixty_images_train_with_the_default_split_and_batch(tmp_path, capsys):
    folder = make_image_folder(tmp_path / "pets", per_class=20, size=20)  # 60 training images, 3 classes
    results = train(_cfg(folder, tmp_path / "run"))
    err = capsys.readouterr().err
    # A tenth of 60 held out (not the 5,000 of a named data set), and batches of the 54 left (not 128).
    assert "54 training, 6 validation" in err
    assert "--batch-size 128 is more than the 54 training images: batches of 54" in err
    assert results["best_val_accuracy"] is not None and results["test_images"] == 60
    assert evaluate_checkpoint(tmp_path / "run" / "best.pt", "val", device="cpu")["count"] == 6


def test_a_val_subfolder_is_the_validation_set(tmp_path, capsys):
    folder = make_image_folder(tmp_path / "pets", per_class=4, size=20)
    shutil.copytree(folder / "test", folder / "val")
    (folder / "val" / "cat" / "0.png").unlink()  # 11 validation images, 12 test images
    results = train(_cfg(folder, tmp_path / "run"))
    assert "12 training, 11 validation (val/), 12 test images" in capsys.readouterr().err
    assert results["test_images"] == 12
    assert evaluate_checkpoint(tmp_path / "run" / "best.pt", "val", device="cpu")["count"] == 11


def test_a_split_that_leaves_nothing_names_the_flag(tmp_path):
    folder = make_image_folder(tmp_path / "pets", per_class=4, size=20)
    with pytest.raises(ConfigError, match="--val-split"):
        train(_cfg(folder, tmp_path / "run", val_split=5000))
