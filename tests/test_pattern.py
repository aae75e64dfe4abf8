"""The notes' layer pattern INPUT -> [[CONV -> RELU]*N -> POOL?]*M -> [FC -> RELU]*K -> FC, built from a spec."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import cnnlab
from _zoo import build_meta
from cnnlab import cli
from cnnlab.analysis.counting import conv_params, count_macs, count_params
from cnnlab.errors import ConfigError
from cnnlab.models import InputTooSmallError
from cnnlab.models.pattern import DEFAULT_SPEC, LayerSpec, parse_pattern, pattern_spec

VGG11 = ("conv3-64 -> pool -> conv3-128 -> pool -> [conv3-256]*2 -> pool -> [conv3-512]*2 -> pool "
         "-> [conv3-512]*2 -> pool -> [fc-4096]*2")


def test_default_spec_by_hand():
    model = cnnlab.create_model("pattern")
    assert model.spec == DEFAULT_SPEC == "[[conv3-32]*2 -> pool]*2 -> [fc-256]*1"
    convs = conv_params(1, 32, 3) + 3 * conv_params(32, 32, 3)
    fcs = (32 * 7 * 7 + 1) * 256 + (256 + 1) * 10  # two pools: 28 -> 7
    assert count_params(model) == convs + fcs == 432_298
    macs = 28 * 28 * 32 * (9 + 288) + 14 * 14 * 32 * 288 * 2 + 1568 * 256 + 256 * 10
    assert count_macs(model, (1, 28, 28)) == macs == 11_467_776
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_the_formula_written_out_is_the_same_network():
    literal = "INPUT -> [[CONV3-32 -> RELU]*2 -> POOL]*2 -> [FC-256 -> RELU]*1 -> FC"
    assert parse_pattern(literal) == parse_pattern(DEFAULT_SPEC)
    assert parse_pattern("[conv3-8]*2->pool") == (LayerSpec("conv", 8, 3), LayerSpec("conv", 8, 3), LayerSpec("pool"))
    assert parse_pattern("[[conv3-8]*0 -> pool]*2") == (LayerSpec("pool"), LayerSpec("pool"))  # N = 0


def test_pattern_spec_writes_n_m_k():
    spec = pattern_spec(n=2, m=3, k=2, widths=(64, 128, 256), hidden=512)
    assert spec == "[[conv3-64]*2 -> pool] -> [[conv3-128]*2 -> pool] -> [[conv3-256]*2 -> pool] -> [fc-512]*2"
    kinds = [layer.kind for layer in parse_pattern(spec)]
    assert kinds == ["conv", "conv", "pool"] * 3 + ["fc", "fc"]
    with pytest.raises(ConfigError, match="one width per block"):
        pattern_spec(n=2, m=3, k=1, widths=(64,))


def test_vgg11_written_as_a_pattern_has_vggs_count():
    """Configuration A of VGG as the formula: torchvision's published vgg11 num_params, 132,863,336."""
    model = build_meta("pattern", spec=VGG11, image_size=224, in_chans=3, num_classes=1000)
    assert count_params(model) == 132_863_336 == count_params(build_meta("vgg11"))
    assert count_macs(model, (3, 224, 224)) == count_macs(build_meta("vgg11"), (3, 224, 224))


def test_stages_end_at_the_pools():
    model = build_meta("pattern", spec="conv3-8 -> pool -> [conv3-16]*2 -> pool -> conv3-32 -> fc-20")
    assert [(f.module, f.num_chs, f.reduction) for f in model.feature_info] == [
        ("stages.0", 8, 2), ("stages.1", 16, 4), ("stages.2", 32, 4)]
    assert isinstance(model.stem, nn.Identity) and model.num_features == 20
    assert model.min_input_size == 4


def test_no_conv_is_a_linear_classifier_and_pools_set_the_smallest_input():
    linear = cnnlab.create_model("pattern", spec="input -> fc", num_classes=10)
    assert count_params(linear) == 28 * 28 * 10 + 10 and linear.feature_info == []
    deep = cnnlab.create_model("pattern", spec="[conv3-4 -> pool]*3", image_size=32)
    assert deep(torch.randn(1, 1, 8, 8)).shape == (1, 10)
    with pytest.raises(InputTooSmallError, match="at least 8x8"):
        deep(torch.randn(1, 1, 7, 7))
    with pytest.raises(ConfigError, match="image_size must be at least 32"):
        cnnlab.create_model("pattern", spec="[conv3-4 -> pool]*5", image_size=28)


def test_other_input_sizes_are_pooled_to_the_sized_map():
    model = cnnlab.create_model("pattern", image_size=28, in_chans=3)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)  # 8x8 after the pools, averaged to 7x7


@pytest.mark.parametrize("spec, match", [
    ("", "non-empty string"),
    ("conv4-8", "odd kernel"),
    ("[conv3-8 -> pool", "ends too early"),
    ("fc-10 -> conv3-8", "after an fc layer"),
    ("pool -> relu", "'relu' may only follow"),
    ("conv3-8*two", "whole number"),
    ("conv3-8 -> dense-4", "unknown layer 'dense-4'"),
    ("conv3-8 ; pool", "cannot read pattern"),
])
def test_bad_specs_are_one_clear_config_error(spec, match):
    with pytest.raises(ConfigError, match=match):
        cnnlab.create_model("pattern", spec=spec)


def test_cli_compare_takes_a_pattern(capsys):
    spec = "pattern:spec=[[conv3-16]*2 -> pool]*2 -> [fc-64]*1"
    assert cli.main(["compare", spec, "pattern", "--input", "1x28x28", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["model"] == "pattern(spec=[[conv3-16]*2 -> pool]*2 -> [fc-64]*1)"
    by_hand = conv_params(1, 16, 3) + 3 * conv_params(16, 16, 3) + (16 * 49 + 1) * 64 + 65 * 10
    assert rows[0]["params"] == by_hand and rows[1]["params"] == 432_298
