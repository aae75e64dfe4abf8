"""ResNets for small images: the ResNet paper's CIFAR nets (option A/B), ResNet-18 for 32x32, WRN-d-k."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cnnlab
from _zoo import build_meta
from cnnlab.analysis.counting import conv_params, count_params
from cnnlab.models.resnet import PadShortcut, PreActBasicBlock, ResNet
from cnnlab.models.resnet_cifar import cifar_resnet_config, wide_resnet_config


def _bn(chs: int) -> int:
    return 2 * chs


def _cifar_resnet_count(n: int, num_classes: int = 10) -> int:
    """Section 4.2: 3x3 conv (16) + BN, 3 stages of n two-conv blocks at 16/32/64, option A, linear."""
    total = conv_params(3, 16, 3, bias=False) + _bn(16)
    in_chs = 16
    for out in (16, 32, 64):
        for _ in range(n):
            total += conv_params(in_chs, out, 3, bias=False) + _bn(out)
            total += conv_params(out, out, 3, bias=False) + _bn(out)
            in_chs = out
    return total + 64 * num_classes + num_classes


def _wrn_count(depth: int, k: int, num_classes: int = 10) -> int:
    """WRN-d-k: 3x3 conv (16), pre-activation blocks at 16k/32k/64k, 1x1 projections where widths change."""
    n = (depth - 4) // 6
    total = conv_params(3, 16, 3, bias=False)
    in_chs = 16
    for out in (16 * k, 32 * k, 64 * k):
        for _ in range(n):
            total += _bn(in_chs) + conv_params(in_chs, out, 3, bias=False)
            total += _bn(out) + conv_params(out, out, 3, bias=False)
            if in_chs != out:
                total += conv_params(in_chs, out, 1, bias=False)
            in_chs = out
    return total + _bn(in_chs) + in_chs * num_classes + num_classes


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110])
def test_cifar_resnet_count_is_analytic_with_option_a(depth):
    model = build_meta(f"resnet{depth}")
    assert count_params(model) == _cifar_resnet_count((depth - 2) // 6)
    assert sum(isinstance(m, PadShortcut) for m in model.modules()) == 2  # where 16 -> 32 and 32 -> 64


def test_option_b_adds_two_projections():
    """shortcut='B': 1x1 conv + BN where the width doubles (16 -> 32, 32 -> 64): 576 + 2176 parameters."""
    extra = sum(conv_params(c, 2 * c, 1, bias=False) + _bn(2 * c) for c in (16, 32))
    assert extra == 2752
    assert count_params(build_meta("resnet56", shortcut="B")) - count_params(build_meta("resnet56")) == extra


def test_stage_maps_are_32_16_8_with_16_32_64_channels():
    model = cnnlab.create_model("resnet20").eval()
    shapes = []
    for stage in model.stages:
        stage.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:])))
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
    assert shapes == [(16, 32, 32), (32, 16, 16), (64, 8, 8)]
    assert [(f.num_chs, f.reduction) for f in model.feature_info] == [(16, 1), (32, 2), (64, 4)]


def test_pad_shortcut_subsamples_and_zero_pads():
    x = torch.randn(2, 16, 7, 7)
    shortcut = PadShortcut(16, 32, 2)
    out = shortcut(x)
    assert out.shape == (2, 32, 4, 4)
    assert torch.equal(out[:, :16], x[:, :, ::2, ::2])
    assert torch.count_nonzero(out[:, 16:]) == 0
    assert not list(shortcut.parameters())


def test_resnet18_cifar_has_a_one_conv_stem_and_no_max_pool():
    for name in ("resnet18_cifar", "preact_resnet18_cifar"):
        model = build_meta(name)
        assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
        conv = model.stem.conv1.conv
        assert conv.kernel_size == (3, 3) and conv.stride == (1, 1) and conv.out_channels == 64
        assert [f.reduction for f in model.feature_info] == [1, 2, 4, 8]


def test_preact_resnet18_cifar_keeps_the_papers_final_norm():
    """kuangliu/pytorch-cifar's PreActResNet18 has 11,171,146 parameters, no final BN; we add BN(512)."""
    assert count_params(build_meta("preact_resnet18_cifar")) == 11_171_146 + _bn(512)


@pytest.mark.parametrize("depth, k", [(16, 4), (16, 8), (28, 2), (28, 10), (40, 2), (40, 4), (40, 1),
                                      (22, 3)])
def test_wrn_count_is_analytic(depth, k):
    model = ResNet(wide_resnet_config(depth, k), num_classes=10)
    assert count_params(model) == _wrn_count(depth, k)


def test_wrn_layout():
    model = build_meta("wrn28_10")
    assert [len(stage) for stage in model.stages] == [4, 4, 4]
    assert all(isinstance(b, PreActBasicBlock) for stage in model.stages for b in stage)
    assert [f.num_chs for f in model.feature_info] == [160, 320, 640]
    assert model.stem.conv1.conv.out_channels == 16 and not hasattr(model.stem.conv1, "bn")
    first = model.stages[0][0].downsample
    assert first.conv.in_channels == 16 and first.conv.out_channels == 160 and not hasattr(first, "bn")
    # WRN-40-1 keeps 16 channels in its first stage: an identity shortcut there.
    thin = ResNet(wide_resnet_config(40, 1))
    assert thin.stages[0][0].downsample is None


def test_wrn_dropout_sits_between_the_two_convs():
    model = cnnlab.create_model("wrn16_4", block_drop_rate=0.3)
    block = model.stages[1][0]
    assert isinstance(block.drop, nn.Dropout) and block.drop.p == 0.3
    order: list[str] = []
    for name in ("conv1", "norm2", "drop", "conv2"):
        getattr(block, name).register_forward_hook(lambda m, i, o, name=name: order.append(name))
    model.eval()
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
    assert order == ["conv1", "norm2", "drop", "conv2"]
    assert all(isinstance(b.drop, nn.Identity) for s in build_meta("wrn16_4").stages for b in s)


@pytest.mark.parametrize("make, arg", [(cifar_resnet_config, 21), (cifar_resnet_config, 2),
                                       (wide_resnet_config, 27), (wide_resnet_config, 4)])
def test_impossible_depths_are_refused(make, arg):
    with pytest.raises(ValueError, match="layers"):
        make(arg) if make is cifar_resnet_config else make(arg, 2)


def test_zero_widening_factor_is_refused():
    with pytest.raises(ValueError, match="widening factor"):
        wide_resnet_config(28, 0)
