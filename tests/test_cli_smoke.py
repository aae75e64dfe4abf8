"""$CNNLAB_README_SMOKE cuts every training the command line starts to a smoke test (the README test's budget)."""

from __future__ import annotations

from cnnlab.cli._common import SMOKE_ENV, smoke_caps


def test_without_the_variable_nothing_changes(monkeypatch):
    monkeypatch.delenv(SMOKE_ENV, raising=False)
    settings = {"data": "fashion-mnist", "epochs": 30, "time_budget": 300}
    assert smoke_caps(settings) == settings
    monkeypatch.setenv(SMOKE_ENV, "0")
    assert smoke_caps(settings) == settings


def test_named_data_gets_one_epoch_of_a_subset_with_a_fractional_split(monkeypatch, capsys):
    monkeypatch.setenv(SMOKE_ENV, "1")
    capped = smoke_caps({"data": "fashion-mnist", "epochs": 30, "time_budget": 300, "recipe": "fast"})
    assert capped == {"data": "fashion-mnist", "epochs": 1, "time_budget": 20.0, "recipe": "fast",
                      "train_subset": 512, "val_split": 0.1}
    assert SMOKE_ENV in capsys.readouterr().err
    # Smaller settings stay: a subset of 100 images, no validation split.
    assert smoke_caps({"train_subset": 100, "val_split": 0})["train_subset"] == 100
    assert smoke_caps({"train_subset": 100, "val_split": 0})["val_split"] == 0


def test_an_image_folder_is_used_whole(monkeypatch, tmp_path):
    monkeypatch.setenv(SMOKE_ENV, "1")
    capped = smoke_caps({"data": str(tmp_path), "epochs": 3})
    assert capped == {"data": str(tmp_path), "epochs": 1}  # folders take no --train-subset
