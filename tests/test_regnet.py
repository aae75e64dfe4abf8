"""AnyNet / RegNet: the width generator, the two rounding rules, block structure and model options."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.regnet import BlockParams

import cnnlab
from _zoo import build_meta
from cnnlab.analysis.counting import count_macs, count_params, meta_forward
from cnnlab.models.regnet import (
    PAPER_VARIANTS,
    TORCHVISION_VARIANTS,
    AnyNet,
    AnyNetConfig,
    RegNetParams,
    ResBottleneckBlock,
    adjust_widths_to_groups,
    generate_regnet_widths,
    regnet_block_widths,
)

ALL_VARIANTS = {name: row.cfg for name, row in {**PAPER_VARIANTS, **TORCHVISION_VARIANTS}.items()}
# torchvision name -> the paper's (pycls) name of the same (w_0, w_a, w_m, depth, group width).
TV_TO_PAPER = {
    "regnet_x_400mf": "regnetx_400mf", "regnet_x_800mf": "regnetx_800mf", "regnet_x_1_6gf": "regnetx_1_6gf",
    "regnet_x_3_2gf": "regnetx_3_2gf", "regnet_x_8gf": "regnetx_8_0gf", "regnet_x_16gf": "regnetx_16gf",
    "regnet_x_32gf": "regnetx_32gf", "regnet_y_400mf": "regnety_400mf", "regnet_y_800mf": "regnety_800mf",
    "regnet_y_1_6gf": "regnety_1_6gf", "regnet_y_3_2gf": "regnety_3_2gf", "regnet_y_8gf": "regnety_8_0gf",
    "regnet_y_16gf": "regnety_16gf", "regnet_y_32gf": "regnety_32gf",
}


def test_registered_names():
    names = set(cnnlab.list_models(family="regnet"))
    assert names == set(ALL_VARIANTS)
    assert len(PAPER_VARIANTS) == 24 and len(TORCHVISION_VARIANTS) == 15
    for name in TORCHVISION_VARIANTS:
        assert cnnlab.get_model_info(name).torchvision == name
    for name in PAPER_VARIANTS:
        assert cnnlab.get_model_info(name).torchvision is None


@pytest.mark.parametrize("name", sorted(ALL_VARIANTS))
def test_generator_with_torchvision_rounding_reproduces_torchvision(name):
    """Our pure-Python generator equals torchvision's float32 tensor code for every configuration."""
    p = ALL_VARIANTS[name]
    ours = RegNetParams(p.w_0, p.w_a, p.w_m, p.depth, p.group_width, width_rounding="torchvision").to_anynet()
    theirs = BlockParams.from_init_params(depth=p.depth, w_0=p.w_0, w_a=p.w_a, w_m=p.w_m,
                                          group_width=p.group_width)
    assert list(ours.depths) == theirs.depths
    assert list(ours.widths) == theirs.widths
    assert list(ours.group_widths) == theirs.group_widths


# Stage widths of pycls's models as mmdetection's RegNet configs list them (FPN in_channels of
# configs/regnet/*regnetx-{400MF,3.2GF,4GF,6.4GF}*): an implementation independent of this one.
MMDET_STAGE_WIDTHS = {
    "regnetx_400mf": (32, 64, 160, 384),
    "regnetx_3_2gf": (96, 192, 432, 1008),
    "regnetx_4_0gf": (80, 240, 560, 1360),
    "regnetx_6_4gf": (168, 392, 784, 1624),
}


@pytest.mark.parametrize("name", sorted(MMDET_STAGE_WIDTHS))
def test_pycls_rounding_matches_mmdetection_stage_widths(name):
    assert ALL_VARIANTS[name].to_anynet().widths == MMDET_STAGE_WIDTHS[name]


def test_block_widths_by_hand():
    # w_0=8, w_a=8, w_m=2: u = 8, 16, 24, 32 -> log2(u/8) = 0, 1, 1.58, 2 -> k = 0, 1, 2, 2.
    assert regnet_block_widths(8, 8.0, 2.0, 4) == [8, 16, 32, 32]
    assert generate_regnet_widths(8, 8.0, 2.0, 4) == ([8, 16, 32], [1, 1, 2])
    widths, depths = generate_regnet_widths(24, 36.44, 2.49, 13)
    assert sum(depths) == 13 and all(type(w) is int and w % 8 == 0 for w in widths)


def test_rounding_rules_differ_as_documented():
    # 392 / 16 = 24.5: pycls rounds half to even (384), torchvision half up (400).
    assert adjust_widths_to_groups([392], [1.0], [16], "pycls") == ([384], [16])
    assert adjust_widths_to_groups([392], [1.0], [16], "torchvision") == ([400], [16])
    # 96 / 40 = 2.4: pycls takes the nearest (80); torchvision refuses to drop more than 10% (120).
    assert adjust_widths_to_groups([96], [1.0], [40], "pycls") == ([80], [40])
    assert adjust_widths_to_groups([96], [1.0], [40], "torchvision") == ([120], [40])
    # A group wider than the bottleneck is narrowed to it.
    assert adjust_widths_to_groups([24], [1.0], [32], "pycls") == ([24], [24])
    # Integer bottleneck ratio > 1: the bottleneck is a multiple of lcm(g, b) so w = w_b / b is whole.
    # 31 * 4 = 124 -> nearest multiple of lcm(6, 4) = 12 is 120 -> w = 30.
    assert adjust_widths_to_groups([31], [4.0], [6], "pycls") == ([30], [6])


def test_torchvision_differs_from_the_paper_exactly_in_three_models():
    differ = {tv for tv, paper in TV_TO_PAPER.items()
              if ALL_VARIANTS[tv].to_anynet() != ALL_VARIANTS[paper].to_anynet()}
    assert differ == {"regnet_x_400mf", "regnet_y_800mf", "regnet_y_8gf"}
    for tv, paper in TV_TO_PAPER.items():
        same = count_params(build_meta(tv)) == count_params(build_meta(paper))
        assert same == (tv not in differ), tv


def test_converted_torchvision_weights_fit_torchvision_variant_only():
    theirs = torchvision.models.regnet_x_400mf(weights=None)
    converted = cnnlab.convert_torchvision("regnet_x_400mf", theirs.state_dict())
    cnnlab.create_model("regnet_x_400mf").load_state_dict(converted, strict=True)
    with pytest.raises(RuntimeError, match="size mismatch"):
        cnnlab.create_model("regnetx_400mf").load_state_dict(converted, strict=True)


def test_regnet_y_128gf_macs_match_torchvision_at_both_crop_sizes():
    """torchvision lists the SWAG weights first (384x384); the 224x224 figure is the linear-probe entry."""
    weights = torchvision.models.RegNet_Y_128GF_Weights
    model = build_meta("regnet_y_128gf")
    assert round(count_macs(model, (3, 384, 384)) / 1e9, 3) == weights.IMAGENET1K_SWAG_E2E_V1.meta["_ops"]
    assert round(count_macs(model, (3, 224, 224)) / 1e9, 3) == weights.IMAGENET1K_SWAG_LINEAR_V1.meta["_ops"]


def _block_params(w_in: int, w_out: int, stride: int, g: int, b: float, se: float) -> int:
    """Parameters of one X/Y block from its layer list (convs without bias, BN scale + shift)."""
    w_b = round(w_out * b)
    n = w_in * w_b + 2 * w_b  # 1x1
    n += 9 * g * w_b + 2 * w_b  # 3x3 grouped: each output channel sees g inputs
    if se:
        s = round(se * w_in)
        n += w_b * s + s + s * w_b + w_b  # two 1x1 convs with bias
    n += w_b * w_out + 2 * w_out  # 1x1
    if w_in != w_out or stride != 1:
        n += w_in * w_out + 2 * w_out  # projection shortcut
    return n


def test_small_anynet_parameter_count_from_layer_arithmetic():
    cfg = AnyNetConfig(depths=(1, 2), widths=(16, 32), group_widths=(8, 16), bottleneck_ratios=(1.0, 0.5),
                       strides=(2, 2), se_ratio=0.25, stem_width=8)
    model = AnyNet(cfg, num_classes=10, in_chans=1)
    expected = 9 * 1 * 8 + 2 * 8  # stem
    expected += _block_params(8, 16, 2, 8, 1.0, 0.25)
    expected += _block_params(16, 32, 2, 16, 0.5, 0.25) + _block_params(32, 32, 1, 16, 0.5, 0.25)
    expected += 32 * 10 + 10  # fc
    assert count_params(model) == expected


def test_y_block_structure():
    block = ResBottleneckBlock(48, 104, stride=2, group_width=8, se_ratio=0.25)
    assert block.conv2.conv.groups == 104 // 8 and block.conv2.conv.stride == (2, 2)
    # SE sits on the bottleneck (104 channels) but its width comes from the block's input (0.25 * 48).
    assert block.se.fc1.in_channels == 104 and block.se.fc1.out_channels == 12
    assert isinstance(block.shortcut[0], nn.Conv2d) and not hasattr(block.conv3, "act")
    x_block = ResBottleneckBlock(104, 104, group_width=8)
    assert isinstance(x_block.se, nn.Identity) and isinstance(x_block.shortcut, nn.Identity)


def test_gray_28x28_feature_maps():
    model = build_meta("regnetx_200mf", in_chans=1, num_classes=10).eval()
    shapes = {}
    for i, stage in enumerate(model.stages):
        stage.register_forward_hook(lambda m, inp, out, i=i: shapes.__setitem__(i, tuple(out.shape)))
    out = meta_forward(model, torch.empty(2, 1, 28, 28, device="meta"))
    assert tuple(out.shape) == (2, 10)
    widths = ALL_VARIANTS["regnetx_200mf"].to_anynet().widths
    assert [shapes[i] for i in range(4)] == [(2, w, s, s) for w, s in zip(widths, (7, 4, 2, 1))]
    assert [f.reduction for f in model.feature_info] == [4, 8, 16, 32]


def test_variant_overrides_turn_x_into_y():
    # RegNetY-200MF is RegNetX-200MF's tuple with SE: an override reaches the same network.
    overridden = build_meta("regnetx_200mf", se_ratio=0.25)
    assert overridden.config == ALL_VARIANTS["regnety_200mf"].to_anynet()
    assert count_params(overridden) == count_params(build_meta("regnety_200mf"))
    tv_rounded = build_meta("regnetx_400mf", width_rounding="torchvision")
    assert count_params(tv_rounded) == count_params(build_meta("regnet_x_400mf"))


def test_drop_path_follows_the_linear_decay_rule():
    # Huang et al. 2016: block k of L drops with k / L * p_L, counted through the whole network.
    model = build_meta("regnetx_200mf", drop_path_rate=0.2)
    blocks = [m for m in model.modules() if isinstance(m, ResBottleneckBlock)]
    total = sum(ALL_VARIANTS["regnetx_200mf"].to_anynet().depths)
    assert len(blocks) == total
    assert [b.drop_path.drop_prob for b in blocks] == pytest.approx([0.2 * k / total for k in range(1, total + 1)])


def test_zero_init_last_makes_identity_blocks_start_as_relu():
    cfg = AnyNetConfig(depths=(2,), widths=(16,), group_widths=(8,), bottleneck_ratios=(1.0,), strides=(2,),
                       se_ratio=0.25, stem_width=8)
    model = AnyNet(cfg, num_classes=3, in_chans=1, zero_init_last=True).eval()
    block = model.stages[0][1]
    assert isinstance(block.shortcut, nn.Identity)
    assert torch.count_nonzero(block.conv3.bn.weight) == 0
    x = torch.randn(2, 16, 5, 5)
    assert torch.equal(block(x), torch.relu(x))


def test_bad_configurations_are_one_clear_error():
    with pytest.raises(ValueError, match="multiple of the width quantum"):
        regnet_block_widths(20, 10.0, 2.0, 4)
    with pytest.raises(ValueError, match="w_m > 1"):
        regnet_block_widths(24, 10.0, 1.0, 4)
    with pytest.raises(ValueError, match="one entry per stage"):
        AnyNetConfig(depths=(1, 1), widths=(16,), group_widths=(8,), bottleneck_ratios=(1.0,), strides=(2,))
    with pytest.raises(ValueError, match="not a multiple of group width"):
        AnyNetConfig(depths=(1,), widths=(24,), group_widths=(16,), bottleneck_ratios=(1.0,), strides=(2,))
    with pytest.raises(ValueError, match="width_rounding"):
        cnnlab.create_model("regnetx_200mf", width_rounding="timm")
