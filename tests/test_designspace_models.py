"""The design-space builders: ``anynet`` from stage lists, ``regnet`` from generator parameters, the notes' net."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import cnnlab
from _zoo import build_meta
from cnnlab.cli import main
from cnnlab.errors import ConfigError
from cnnlab.models.regnet import PAPER_VARIANTS
from cnnlab.train import resolve_config

PUBLISHED = json.loads((Path(__file__).parent / "golden" / "published" / "anynet.json").read_text())
GENERATOR = {key: entry for key, entry in PUBLISHED.items() if "stage_widths" in entry}


def test_the_generator_entries_cover_regnetx_200mf_to_800mf():
    params = {tuple(e["kwargs"].values()) for e in GENERATOR.values()}
    expected = {(p.w_0, p.w_a, p.w_m, p.depth, p.group_width)
                for name, p in ((n, row.cfg) for n, row in PAPER_VARIANTS.items()) if name in
                ("regnetx_200mf", "regnetx_400mf", "regnetx_600mf", "regnetx_800mf")}
    assert params == expected


@pytest.mark.parametrize("key", sorted(GENERATOR))
def test_regnet_from_its_parameters_has_the_published_widths_and_depths(key):
    entry = GENERATOR[key]
    model = build_meta("regnet", **entry["kwargs"])
    assert list(model.config.widths) == entry["stage_widths"]
    assert list(model.config.depths) == entry["stage_depths"]
    assert set(model.config.group_widths) == {entry["stage_group_width"]}
    assert set(model.config.bottleneck_ratios) == {1.0} and model.config.se_ratio == 0


def test_the_notes_network_is_two_stages_of_x_blocks():
    model = build_meta("regnetx_32layer")
    cfg = model.config
    assert (cfg.depths, cfg.widths, cfg.group_widths, cfg.bottleneck_ratios) == ((4, 6), (32, 80), (16, 16),
                                                                                  (1.0, 1.0))
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    shortcuts = [m for name, m in model.named_modules() if name.endswith("shortcut.conv")]
    # The notes' 32 layers: the convolutions and the classifier, without the two 1x1 projections.
    assert len(convs) - len(shortcuts) + len(linears) == 32 and len(shortcuts) == 2
    # g = 16 is a group width: 32 / 16 = 2 groups in stage 1, 80 / 16 = 5 in stage 2.
    assert [s[0].conv2.conv.groups for s in model.stages] == [2, 5]


def test_anynet_builds_from_model_args_text_as_the_trainer_reads_it():
    cfg = resolve_config({"model": "anynet",
                          "model_args": "depths=(1,2,2),widths=(16,32,64),group_widths=8,bottleneck_ratios=(1,0.5,0.5),"
                                        "stem_width=8,stem_stride=1,se_ratio=0.25"})
    model = cnnlab.create_model(cfg.model, **cfg.model_args).eval()
    assert model.config.group_widths == (8, 8, 8) and model.config.bottleneck_ratios == (1.0, 0.5, 0.5)
    assert model.config.block_type == "Y" and model.config.strides == (2, 2, 2)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_regnet_builder_equals_the_named_variant():
    a, b = build_meta("regnet", w_0=48, w_a=27.89, w_m=2.09, depth=16, group_width=8, se_ratio=0.25), \
        build_meta("regnety_400mf")
    assert a.config == b.config


@pytest.mark.parametrize("kwargs, message", [
    ({"widths": (24, 48)}, "multiple of group width"),
    ({"depths": (1, 2, 3)}, "one entry per stage"),
    ({"group_widths": (8, 8, 8)}, "one entry per stage"),
    ({"depths": 3}, "per-stage lists"),
])
def test_bad_anynet_options_are_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        cnnlab.create_model("anynet", **kwargs)


def test_bad_regnet_parameters_are_config_errors():
    with pytest.raises(ConfigError, match="w_m > 1"):
        cnnlab.create_model("regnet", w_m=0.9)


def test_cli_summary_takes_anynet_stage_lists(capsys):
    assert main(["summary", "anynet:depths=(1,1),widths=(16,32),group_widths=8", "--format", "json"]) == 0
    layers = json.loads(capsys.readouterr().out)["layers"]
    # Stem 32 wide (the default), then one block of 16 and one of 32 channels.
    assert [layer["output_shape"][0] for layer in layers if layer["name"].endswith("conv3.conv")] == [16, 32]
    assert main(["summary", "anynet:depths=(1,1),widths=(24,48)"]) == 2
    assert "multiple of group width" in capsys.readouterr().err
