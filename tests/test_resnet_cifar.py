"""ResNets for small images: the ResNet paper's CIFAR nets (option A/B), ResNet-18 for 32x32, WRN-d-k."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

import cnnlab
from _zoo import build_meta
from cnnlab.analysis.counting import conv_params, count_params
from cnnlab.errors import ConfigError
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


# ------------------------------------------------------------------------------------------- plain networks


class _OpCounter(TorchDispatchMode):
    """Counts the ATen operators one forward pass runs."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


def _ops(model: nn.Module, size: int = 32) -> Counter[str]:
    model.eval()
    with torch.no_grad(), _OpCounter() as counter:
        model(torch.randn(2, model.in_chans, size, size))
    return counter.ops


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110])
def test_plain_net_has_its_resnets_layers_and_parameters(depth):
    """Option A has no parameters: He et al. 4.2's plain and residual nets have the same count."""
    plain, residual = build_meta(f"plain{depth}"), build_meta(f"resnet{depth}")
    assert count_params(plain) == count_params(residual) == _cifar_resnet_count((depth - 2) // 6)
    assert not any(isinstance(m, PadShortcut) for m in plain.modules())
    assert all(block.downsample is None and not block.skip for stage in plain.stages for block in stage)
    assert [n for n, _ in plain.named_parameters()] == [n for n, _ in residual.named_parameters()]


def test_plain_net_is_the_residual_builder_without_shortcuts():
    a, b = cnnlab.create_model("plain20"), cnnlab.create_model("resnet20", shortcut="none")
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(a.eval()(x), b.eval()(x))


def test_plain_net_loses_exactly_the_projection_shortcuts():
    """Against option B, a plain net lacks the two 1x1 projections + BN (2,752 parameters, see above)."""
    assert count_params(build_meta("resnet56", shortcut="B")) - count_params(build_meta("plain56")) == 2752
    wide, plain_wide = ResNet(wide_resnet_config(16, 4)), ResNet(replace(wide_resnet_config(16, 4), shortcut="none"))
    projections = sum(conv_params(a, b, 1, bias=False) for a, b in ((16, 64), (64, 128), (128, 256)))
    assert count_params(wide) - count_params(plain_wide) == projections


@pytest.mark.parametrize("name, kwargs", [("plain20", {}), ("resnet20", {"shortcut": "none"}),
                                          ("wrn16_4", {"shortcut": "none"}), ("resnet18", {"shortcut": "none"}),
                                          ("resnet50", {"shortcut": "none"})])
def test_no_residual_addition_remains_in_a_plain_graph(name, kwargs):
    size = 32 if "resnet" not in name or "20" in name else 64
    assert _ops(cnnlab.create_model(name, **kwargs), size)["aten.add"] == 0


def test_every_residual_block_adds_once():
    """The check above can see an addition: ResNet-20 runs one per block (9), WRN-16-4 one per block (6)."""
    assert _ops(cnnlab.create_model("resnet20"))["aten.add"] == 9
    assert _ops(cnnlab.create_model("wrn16_4"))["aten.add"] == 6


@pytest.mark.parametrize("kwargs", [{"drop_path_rate": 0.1}, {"zero_init_residual": True}])
def test_plain_net_refuses_options_of_residual_branches(kwargs):
    with pytest.raises(ConfigError, match="plain network"):
        cnnlab.create_model("plain20", **kwargs)


def test_avg_down_needs_projection_shortcuts():
    with pytest.raises(ConfigError, match="shortcut='B'"):
        cnnlab.create_model("resnet50d", shortcut="none")
