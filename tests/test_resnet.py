"""ImageNet ResNets: blocks, the Bag-of-Tricks variants A-D, pre-activation, stochastic depth, options."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cnnlab
from _zoo import build_meta
from cnnlab.analysis.counting import conv_params, count_macs, count_params
from cnnlab.models.resnet import (
    BasicBlock,
    Bottleneck,
    NormAct,
    PadShortcut,
    PreActBasicBlock,
    PreActBottleneck,
    ResNet,
    ResNetConfig,
    bottleneck_width,
)

IMAGENET = (3, 224, 224)


def _convs(module: nn.Module) -> list[nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


def _blocks(model: nn.Module) -> list[nn.Module]:
    return [block for stage in model.stages for block in stage]


def _bn(chs: int) -> int:
    return 2 * chs  # weight and bias


# ----------------------------------------------------------------------------------------------- blocks


def test_basic_block_is_two_3x3_convs_with_stride_on_the_first():
    block = BasicBlock(64, 128, 2, downsample=nn.Sequential(nn.Conv2d(64, 128, 1, 2, bias=False),
                                                            nn.BatchNorm2d(128)))
    convs = _convs(block)
    assert [c.kernel_size for c in convs[:2]] == [(3, 3), (3, 3)]
    assert [c.stride for c in convs[:2]] == [(2, 2), (1, 1)]
    assert block(torch.randn(2, 64, 8, 8)).shape == (2, 128, 4, 4)


@pytest.mark.parametrize("stride_in_1x1, strides", [(False, [1, 2, 1]), (True, [2, 1, 1])])
def test_bottleneck_puts_the_stride_on_the_3x3_or_on_the_first_1x1(stride_in_1x1, strides):
    block = Bottleneck(256, 128, 512, 2, downsample=PadShortcut(256, 512, 2), stride_in_1x1=stride_in_1x1)
    convs = _convs(block)
    assert [c.kernel_size[0] for c in convs] == [1, 3, 1]
    assert [c.stride[0] for c in convs] == strides
    assert block(torch.randn(2, 256, 8, 8)).shape == (2, 512, 4, 4)


def test_resnet_a_costs_fewer_macs_than_resnet_b_with_the_same_parameters():
    b = build_meta("resnet50")
    a = build_meta("resnet50", stride_in_1x1=True)
    assert count_params(a) == count_params(b)
    # In ResNet-A the downsampling block's 3x3 conv runs at the already reduced resolution.
    assert count_macs(a, IMAGENET) < count_macs(b, IMAGENET)
    first = a.stages[1][0]
    assert first.conv1.conv.stride == (2, 2) and first.conv2.conv.stride == (1, 1)


def test_resnext_and_wide_resnet_widths():
    assert bottleneck_width(64, width_per_group=4, groups=32) == 128
    assert bottleneck_width(64, width_factor=2) == 128
    resnext = build_meta("resnext50_32x4d")
    conv = resnext.stages[0][0].conv2.conv
    assert conv.groups == 32 and conv.out_channels == 128
    wide = build_meta("wide_resnet50_2")
    assert wide.stages[0][0].conv2.conv.out_channels == 128
    assert wide.stages[0][0].conv3.conv.out_channels == 256  # the output width is not widened


# ---------------------------------------------------------------------------------------- ResNet-C and -D


def test_deep_stem_is_three_3x3_convs_32_32_64():
    model = build_meta("resnet50c")
    convs = _convs(model.stem)
    layout = [(c.kernel_size[0], c.stride[0], c.out_channels) for c in convs]
    assert layout == [(3, 2, 32), (3, 1, 32), (3, 1, 64)]
    assert isinstance(model.stem.pool, nn.MaxPool2d)
    plain = _convs(build_meta("resnet50").stem)
    assert [(c.kernel_size[0], c.stride[0], c.out_channels) for c in plain] == [(7, 2, 64)]


def test_deep_stem_adds_the_macs_of_its_convs():
    """Three 3x3 convs at 112x112 instead of one 7x7: 112^2 * (3*9*32 + 32*9*32 + 32*9*64 - 3*49*64)."""
    extra = 112 * 112 * (3 * 9 * 32 + 32 * 9 * 32 + 32 * 9 * 64 - 3 * 49 * 64)
    base = count_macs(build_meta("resnet50"), IMAGENET)
    assert count_macs(build_meta("resnet50c"), IMAGENET) - base == extra
    # Average-pool shortcuts move the stride, not the work: ResNet-D costs what ResNet-C costs.
    assert count_macs(build_meta("resnet50d"), IMAGENET) - base == extra


def test_avg_down_shortcut_pools_then_projects_with_stride_one():
    model = build_meta("resnet50d")
    first_stage = model.stages[0][0].downsample
    assert not hasattr(first_stage, "pool")  # stride 1: nothing to pool
    for stage in model.stages[1:]:
        down = stage[0].downsample
        assert isinstance(down.pool, nn.AvgPool2d) and down.pool.stride == 2
        assert down.conv.stride == (1, 1) and down.conv.kernel_size == (1, 1)
    assert count_params(model) == count_params(build_meta("resnet50c"))


@pytest.mark.parametrize("size", [28, 29, 33])
def test_avg_down_shortcut_matches_the_residual_size_for_odd_inputs(size):
    model = cnnlab.create_model("resnet18d", num_classes=3, in_chans=1).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, size, size)).shape == (1, 3)


def test_option_a_shortcuts_drop_exactly_the_projection_parameters():
    """ResNet paper Table 3, option A: zero-padding shortcuts, no parameters where the width doubles."""
    a = build_meta("resnet34", shortcut="A")
    projections = sum(conv_params(c, 2 * c, 1, bias=False) + _bn(2 * c) for c in (64, 128, 256))
    assert count_params(build_meta("resnet34")) - count_params(a) == projections
    assert sum(isinstance(m, PadShortcut) for m in a.modules()) == 3


# ------------------------------------------------------------------------------------- pre-activation


def _preact_basic_count(depths: tuple[int, ...], num_classes: int = 1000) -> int:
    """Pre-activation ResNet with basic blocks, counted from the paper's layer table."""
    total = conv_params(3, 64, 7, bias=False)  # stem conv; the first block's BN-ReLU follows it
    in_chs = 64
    for i, depth in enumerate(depths):
        out = 64 * 2 ** i
        for j in range(depth):
            total += _bn(in_chs) + conv_params(in_chs, out, 3, bias=False)
            total += _bn(out) + conv_params(out, out, 3, bias=False)
            if j == 0 and in_chs != out:
                total += conv_params(in_chs, out, 1, bias=False)  # projection, no BN
            in_chs = out
    return total + _bn(in_chs) + in_chs * num_classes + num_classes  # final BN-ReLU, linear


@pytest.mark.parametrize("name, depths", [("preact_resnet18", (2, 2, 2, 2)),
                                          ("preact_resnet34", (3, 4, 6, 3))])
def test_preact_resnet_parameter_count_is_analytic(name, depths):
    assert count_params(build_meta(name)) == _preact_basic_count(depths)


def test_preact_layout_bn_relu_before_convs_and_a_final_norm():
    model = build_meta("preact_resnet50")
    assert not hasattr(model.stem.conv1, "bn")  # the stem ends on a bare conv
    assert all(isinstance(b, PreActBottleneck) for b in _blocks(model))
    assert isinstance(model.final_norm, NormAct)
    assert model.feature_info[-1].module == "final_norm"
    down = model.stages[1][0].downsample
    assert not any(isinstance(m, nn.BatchNorm2d) for m in down.modules())  # projections are bare convs
    assert count_macs(model, IMAGENET) == count_macs(build_meta("resnet50"), IMAGENET)


def test_preact_block_keeps_a_clean_identity_path():
    """Last conv zeroed: a pre-activation block is exactly the identity, a post-activation one is ReLU."""
    x = torch.randn(4, 16, 6, 6)
    pre = PreActBasicBlock(16, 16).eval()
    pre.zero_init_last()
    post = BasicBlock(16, 16).eval()
    post.zero_init_last()
    with torch.no_grad():
        assert torch.equal(pre(x), x)
        assert torch.equal(post(x), torch.relu(x))


# ------------------------------------------------------------------------------- initialization and depth


@pytest.mark.parametrize("name, last", [("resnet18", "conv2"), ("resnet50", "conv3")])
def test_zero_init_residual_zeroes_each_blocks_last_norm(name, last):
    model = cnnlab.create_model(name, zero_init_residual=True)
    for block in _blocks(model):
        assert torch.count_nonzero(getattr(block, last).bn.weight) == 0
        assert torch.all(block.conv1.bn.weight == 1)
    default = cnnlab.create_model(name)
    assert all(torch.all(getattr(b, last).bn.weight == 1) for b in _blocks(default))


def test_zero_init_residual_zeroes_the_last_conv_of_preact_blocks():
    model = cnnlab.create_model("preact_resnet18", zero_init_residual=True)
    assert all(torch.count_nonzero(b.conv2.weight) == 0 for b in _blocks(model))


def test_stochastic_depth_rates_rise_linearly_to_the_given_rate():
    # Huang et al. 2016: block k of L drops with k / L * p_L; resnet18 has L = 8 blocks.
    model = build_meta("resnet18", drop_path_rate=0.2)
    assert [b.drop_path.drop_prob for b in _blocks(model)] == pytest.approx([0.2 * k / 8 for k in range(1, 9)])
    assert all(isinstance(b.drop_path, nn.Identity) for b in _blocks(build_meta("resnet18")))


def test_drop_path_drops_whole_residual_branches_per_sample():
    torch.manual_seed(0)
    block = BasicBlock(8, 8, drop_path_rate=0.5).train()
    x = torch.randn(64, 8, 4, 4)
    with torch.no_grad():
        branch = block.conv2(block.conv1(x))  # same batch statistics as inside the forward
        out = block(x)
    kept = torch.relu(x + branch / 0.5)  # survivors are rescaled by 1 / keep
    dropped = torch.relu(x)
    is_kept = [torch.allclose(o, k, atol=1e-6) for o, k in zip(out, kept, strict=True)]
    is_dropped = [torch.allclose(o, d, atol=1e-6) for o, d in zip(out, dropped, strict=True)]
    assert all(k or d for k, d in zip(is_kept, is_dropped, strict=True))
    assert 10 < sum(is_kept) < 54  # about half of 64 samples keep their branch
    block.eval()
    with torch.no_grad():
        assert torch.allclose(block(x), torch.relu(x + block.conv2(block.conv1(x))))


def test_head_dropout_and_injected_layers():
    model = build_meta("resnet18", drop_rate=0.3, norm_layer=lambda c: nn.GroupNorm(8, c), act_layer=nn.SiLU)
    assert isinstance(model.head.drop, nn.Dropout) and model.head.drop.p == 0.3
    assert not any(isinstance(m, nn.BatchNorm2d | nn.ReLU) for m in model.modules())
    assert sum(isinstance(m, nn.GroupNorm) for m in model.modules()) == 20
    assert any(isinstance(m, nn.SiLU) for m in model.modules())


def test_custom_config_builds_a_small_resnet():
    cfg = ResNetConfig("bottleneck", (1, 1), (8, 16), stem_type="cifar", stem_width=8, groups=2,
                       width_per_group=8)
    model = ResNet(cfg, num_classes=4, in_chans=1)
    assert model.feature_info[-1].num_chs == 64 and model.num_features == 64
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 1, 9, 9)).shape == (2, 4)


# ------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("name, kwargs, match", [
    ("resnet50", {"stem_type": "wide"}, "stem_type must be one of"),
    ("resnet18", {"groups": 32}, "basic blocks have no grouped conv"),
    ("resnet18", {"stride_in_1x1": True}, "bottleneck blocks only"),
    ("resnet50", {"shortcut": "A", "avg_down": True}, "needs shortcut='B'"),
    ("resnet50", {"shortcut": "C"}, "shortcut must be one of"),
    ("resnet50", {"block_drop_rate": 0.1}, "needs basic blocks"),
    ("resnet18", {"drop_path_rate": 1.0}, r"drop_path_rate must be in \[0, 1\)"),
    ("resnet18", {"widen": 2}, "resnet18 takes no option 'widen'"),
    ("resnet18", {"depths": (2, 2)}, "one entry per stage"),
])
def test_bad_options_raise_one_clear_error(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_meta(name, **kwargs)


def test_converter_rejects_a_foreign_state_dict():
    with pytest.raises(ValueError, match="not a torchvision ResNet"):
        cnnlab.convert_torchvision("resnet18", {"features.0.weight": torch.zeros(1)})


def test_pad_shortcut_cannot_reduce_channels():
    with pytest.raises(ValueError, match="cannot reduce channels"):
        PadShortcut(64, 32)
