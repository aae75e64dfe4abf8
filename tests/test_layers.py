"""Shared layers: norm/activation names accepted by every builder, output-size arithmetic, drop path."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.models.layers import conv_out_size, drop_path, make_divisible


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
def test_conv_out_size_matches_pytorch(n, k, s, p, d, ceil, expected):
    assert conv_out_size(n, k, s, p, d, ceil) == expected
    if d == 1:
        pool = nn.MaxPool2d(k, s, p, ceil_mode=ceil) if p <= k // 2 else None
        if pool is not None:
            assert pool(torch.zeros(1, 1, n, n)).shape[-1] == expected
    assert nn.Conv2d(1, 1, k, s, p, d)(torch.zeros(1, 1, n, n)).shape[-1] == conv_out_size(n, k, s, p, d)


def test_make_divisible_and_drop_path():
    assert make_divisible(37, 8) == 40 and make_divisible(30, 8) == 32 and make_divisible(10, 8) == 16
    x = torch.ones(1000, 4)
    dropped = drop_path(x, 0.25, training=True)
    kept = (dropped.sum(dim=1) > 0).float().mean().item()
    assert 0.68 < kept < 0.82
    assert torch.allclose(dropped[dropped.sum(dim=1) > 0], torch.full((1, 4), 1 / 0.75).expand(int(kept * 1000), 4))
    assert torch.equal(drop_path(x, 0.25, training=False), x)
