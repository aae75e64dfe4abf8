"""Shared layers: norm/activation names, output-size arithmetic, drop path and its schedule, option checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.errors import ConfigError
from cnnlab.models.layers import (
    check_choice,
    check_rate,
    check_width,
    classifier_layer,
    conv_output_size,
    drop_path,
    make_divisible,
    scale_width,
    stochastic_depth_rates,
)


def test_norm_and_activation_by_name_reach_the_model():
    model = cnnlab.create_model("resnet18", norm_layer="layernorm", act_layer="silu")
    kinds = {type(m) for m in model.modules()}
    assert cnnlab.nn.LayerNorm in kinds and nn.SiLU in kinds
    assert nn.BatchNorm2d not in kinds and nn.ReLU not in kinds
    scratch = cnnlab.create_model("resnet20", norm_layer="scratch_batchnorm")
    assert any(isinstance(m, cnnlab.nn.BatchNorm2d) for m in scratch.modules())


def test_none_by_name_removes_the_norm_instead_of_restoring_the_default():
    unet = cnnlab.create_model("unet", norm_layer="none")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in unet.modules())


def test_unknown_layer_names_reach_the_builder_which_rejects_them():
    with pytest.raises(ValueError, match="act_layer"):
        cnnlab.create_model("lenet5", act_layer="softsign_typo")
    assert isinstance(cnnlab.create_model("lenet5", act_layer="tanh"), nn.Module)


@pytest.mark.parametrize(("n", "k", "s", "p", "d", "ceil", "expected"), [
    (224, 7, 2, 3, 1, False, 112), (112, 3, 2, 1, 1, False, 56), (28, 5, 1, 0, 1, False, 24),
    (13, 3, 2, 0, 1, True, 6), (109, 3, 2, 0, 1, True, 54), (32, 3, 1, 2, 2, False, 32),
])
def test_conv_output_size_matches_pytorch(n, k, s, p, d, ceil, expected):
    assert conv_output_size(n, k, s, p, d, ceil) == expected
    if d == 1:
        pool = nn.MaxPool2d(k, s, p, ceil_mode=ceil) if p <= k // 2 else None
        if pool is not None:
            assert pool(torch.zeros(1, 1, n, n)).shape[-1] == expected
    assert nn.Conv2d(1, 1, k, s, p, d)(torch.zeros(1, 1, n, n)).shape[-1] == conv_output_size(n, k, s, p, d)


def test_make_divisible_and_drop_path():
    assert make_divisible(37, 8) == 40 and make_divisible(30, 8) == 32 and make_divisible(10, 8) == 16
    x = torch.ones(1000, 4)
    dropped = drop_path(x, 0.25, training=True)
    kept = (dropped.sum(dim=1) > 0).float().mean().item()
    assert 0.68 < kept < 0.82
    assert torch.allclose(dropped[dropped.sum(dim=1) > 0], torch.full((1, 4), 1 / 0.75).expand(int(kept * 1000), 4))
    assert torch.equal(drop_path(x, 0.25, training=False), x)


def test_stochastic_depth_rates_follow_the_linear_decay_rule():
    # Huang et al. 2016, Sec. 3: p_l = l / L * p_L for blocks l = 1 ... L, counted through all stages.
    rates = stochastic_depth_rates((3, 4, 6, 3), 0.5)
    assert [len(stage) for stage in rates] == [3, 4, 6, 3]
    flat = [r for stage in rates for r in stage]
    assert flat == pytest.approx([0.5 * k / 16 for k in range(1, 17)])
    assert flat[0] == pytest.approx(0.5 / 16) and flat[-1] == pytest.approx(0.5)
    assert stochastic_depth_rates((2, 1), 0.0) == [[0.0, 0.0], [0.0]]


@pytest.mark.parametrize("name", ["resnet50", "regnety_400mf", "inception_resnet_v2"])
def test_every_family_with_drop_path_uses_the_one_rule(name):
    with torch.device("meta"):
        model = cnnlab.create_model(name, drop_path_rate=0.3)
    blocks = [m for m in model.modules() if hasattr(m, "drop_path")]
    rates = [b.drop_path.drop_prob for b in blocks]
    total = len(blocks)
    assert total > 10
    assert rates == pytest.approx([0.3 * k / total for k in range(1, total + 1)])


def test_option_checks_raise_config_errors():
    with pytest.raises(ConfigError, match=r"drop_rate must be in \[0, 1\), got 1.0"):
        check_rate("drop_rate", 1.0)
    with pytest.raises(ConfigError, match="pool must be one of 'avg', 'max'; got 'mean'"):
        check_choice("pool", "mean", ("avg", "max"))
    with pytest.raises(ConfigError, match="width_mult must be positive"):
        check_width(0.0)
    with pytest.raises(ConfigError, match="hidden"):
        check_width(1.0, hidden=0)
    check_rate("drop_rate", 0.0)
    check_choice("pool", "avg", ("avg", "max"))
    assert scale_width(64, 0.25) == 16 and scale_width(3, 0.1) == 1


def test_classifier_layer_is_linear_or_identity():
    assert isinstance(classifier_layer(8, 3), nn.Linear) and classifier_layer(8, 3).out_features == 3
    assert isinstance(classifier_layer(8, 0), nn.Identity)
