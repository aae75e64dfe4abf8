"""TrainConfig: every field documented and a flag; defaults < recipe < file < flags; clear errors."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields

import pytest

from cnnlab.errors import CnnlabError, ConfigError, UnknownNameError
from cnnlab.train import RECIPES, TrainConfig, add_config_arguments, config_from_args, resolve_config
from cnnlab.train.config import RECIPE_NAMES


def _parse(argv: list[str], config_file=None) -> TrainConfig:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    return config_from_args(parser.parse_args(argv), config_file)


def test_every_field_is_documented_and_a_flag():
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    dests = {a.dest for a in parser._actions}
    for f in fields(TrainConfig):
        assert len(f.metadata.get("help", "")) > 10, f"{f.name} has no help text"
        assert f.name in dests, f"{f.name} has no command-line flag"


def test_flags_become_typed_values():
    cfg = _parse(
        [
            "resnet20",
            "--epochs",
            "3",
            "--lr",
            "0.2",
            "--nesterov",
            "--no-hflip",
            "--milestones",
            "2",
            "5",
            "--betas",
            "0.8",
            "0.99",
            "--drop-rate",
            "none",
            "--channels-last",
            "--no-norm-bias-decay",
        ]
    )
    assert cfg.model == "resnet20" and cfg.epochs == 3 and cfg.lr == 0.2 and cfg.nesterov is True
    assert cfg.hflip is False and cfg.milestones == [2, 5] and cfg.betas == [0.8, 0.99]
    assert cfg.drop_rate is None and cfg.channels_last is True and cfg.norm_bias_decay is False
    untouched = TrainConfig()
    assert cfg.batch_size == untouched.batch_size  # absent flags keep the defaults


def test_bad_flag_values_are_one_line_errors(capsys):
    with pytest.raises(SystemExit):
        _parse(["m", "--epochs", "2.5"])
    assert "epochs must be int" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _parse(["m", "--schedule", "linear"])


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_precedence_defaults_recipe_file_flags(tmp_path, suffix):
    settings = {"recipe": "fast", "epochs": 4, "lr": 0.3, "crop-padding": 4}
    path = tmp_path / f"run{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(settings))
    else:
        path.write_text("".join(f"{k}: {v}\n" for k, v in settings.items()))
    cfg = _parse(["lenet5", "--lr", "0.01"], path)
    assert cfg.lr == 0.01  # flag over file
    assert cfg.epochs == 4 and cfg.crop_padding == 4  # file over recipe
    assert cfg.schedule == RECIPES["fast"]["schedule"]  # recipe over defaults
    assert cfg.momentum == TrainConfig().momentum  # defaults where nobody says otherwise


def test_unknown_setting_suggests_the_close_one(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epoch: 3\n")
    with pytest.raises(ValueError, match="unknown setting 'epoch'.*did you mean epochs"):
        resolve_config({}, path)
    with pytest.raises(FileNotFoundError, match="config file .* does not exist"):
        resolve_config({}, tmp_path / "missing.yaml")


def test_validation_errors():
    ok = TrainConfig(model="m")
    assert ok.validate() is ok
    cases = {
        "no model given": TrainConfig(),
        "plateau schedule watches validation": TrainConfig(model="m", schedule="plateau", val_split=0),
        "multistep schedule needs": TrainConfig(model="m", schedule="multistep"),
        r"label_smoothing must be in \[0, 1\)": TrainConfig(model="m", label_smoothing=1.0),
        "freeze_backbone needs": TrainConfig(model="m", freeze_backbone=True),
        "optimizer must be one of": TrainConfig(model="m", optimizer="lamb"),
        "unknown recipe": TrainConfig(model="m", recipe="slow"),
    }
    for message, cfg in cases.items():
        with pytest.raises(ValueError, match=message) as err:
            cfg.validate()
        assert isinstance(err.value, CnnlabError)  # the CLI prints it as one line


def test_user_errors_have_cnnlab_types(tmp_path):
    with pytest.raises(UnknownNameError, match="unknown recipe 'fats'; did you mean fast"):
        resolve_config({"recipe": "fats"})
    with pytest.raises(ConfigError, match="epochs must be int"):
        resolve_config({"epochs": "many"})
    with pytest.raises(ConfigError, match="unknown setting"):
        resolve_config({"epoch": 3})
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_config({}, tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("a: [1,\n")
    with pytest.raises(ConfigError, match="cannot parse config file") as err:
        resolve_config({}, tmp_path / "bad.yaml")
    assert "\n" not in str(err.value)


def test_recipes_are_valid_and_paper_matches_resnet():
    assert set(RECIPES) == set(RECIPE_NAMES)
    for name in RECIPES:
        resolve_config({"recipe": name, "model": "m"}).validate()
    paper = resolve_config({"recipe": "paper"})
    # He et al. 2016, Sec. 3.4: SGD, mini-batch 256, lr 0.1 divided by 10 at plateaus, wd 1e-4, momentum 0.9.
    assert (paper.optimizer, paper.batch_size, paper.lr, paper.gamma) == ("sgd", 256, 0.1, 0.1)
    assert (paper.weight_decay, paper.momentum, paper.schedule) == (1e-4, 0.9, "plateau")


def test_round_trip_through_a_plain_dict():
    cfg = resolve_config({"model": "vgg11", "recipe": "fast", "milestones": [3]})
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_model_args_reach_the_builder_from_flags_and_files(tmp_path):
    from cnnlab.options import parse_options
    from cnnlab.train.build import build_model
    from cnnlab.train.config import TrainConfig, resolve_config

    assert parse_options("width_mult=0.25, hidden=64,norm_layer=none") == {
        "width_mult": 0.25, "hidden": 64, "norm_layer": "none"}
    cfg = resolve_config({"model": "vgg11", "model_args": "width_mult=0.125,hidden=32"})
    model = build_model(cfg, num_classes=10, in_chans=1)
    assert model.head.fc.in_features == 32
    assert TrainConfig.from_dict(cfg.to_dict()).model_args == {"width_mult": 0.125, "hidden": 32}
    with pytest.raises(ValueError, match="key=value"):
        parse_options("width_mult")


def test_classes_and_train_subset_select_the_data(tmp_path):
    """--classes keeps and relabels classes in the given order; --train-subset keeps a share of each class,
    before the validation carve-out; evaluation of the checkpoint sees the same classes."""
    import torch

    from cnnlab.data import ArrayDataset, select_classes, stratified_subset
    from cnnlab.errors import ConfigError

    labels = torch.arange(10).repeat_interleave(20)
    data = ArrayDataset(torch.zeros(200, 1, 4, 4, dtype=torch.uint8), labels, [f"c{i}" for i in range(10)])
    picked = select_classes(data, [7, 2])
    assert picked.classes == ["c7", "c2"] and len(picked) == 40
    assert picked.labels.tolist() == [1] * 20 + [0] * 20  # file order kept: class 2's images come first
    half = stratified_subset(data, 0.5, seed=3)
    assert len(half) == 100 and half.class_counts() == [10] * 10
    assert stratified_subset(data, 30, seed=3).class_counts() == [3] * 10
    assert stratified_subset(data, 0.5, seed=3).labels.equal(half.labels)  # seeded
    with pytest.raises(ConfigError, match="not indices"):
        select_classes(data, [10])
    with pytest.raises(ConfigError, match="not within"):
        stratified_subset(data, 500)
