"""VGG: the paper's configurations, batch-norm variants, the stage split, narrow trainable widths."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cnnlab
from _zoo import build_meta
from cnnlab.analysis.counting import conv_params, count_params
from cnnlab.models import InputTooSmallError
from test_alexnet import fit_losses, separable_batch

VGGS = ["vgg11", "vgg13", "vgg16", "vgg19"]
# Table 1 of the paper: 3x3 convs per block for configurations A (11), B (13), D (16), E (19).
TABLE_ONE = {
    "vgg11": [1, 1, 2, 2, 2],
    "vgg13": [2, 2, 2, 2, 2],
    "vgg16": [2, 2, 3, 3, 3],
    "vgg19": [2, 2, 4, 4, 4],
}


def _convs(module: nn.Module) -> list[nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


@pytest.mark.parametrize("name", VGGS + [f"{n}_bn" for n in VGGS])
def test_blocks_follow_table_one(name):
    model = build_meta(name)
    per_block = [len(_convs(model.stem)) + len(_convs(model.stages[0]))]
    per_block += [len(_convs(stage)) for stage in model.stages[1:]]
    assert per_block == TABLE_ONE[name.removesuffix("_bn")]
    weight_layers = len(_convs(model)) + sum(isinstance(m, nn.Linear) for m in model.modules())
    assert weight_layers == int(name.removesuffix("_bn").removeprefix("vgg"))
    assert all(isinstance(stage[-1], nn.MaxPool2d) for stage in model.stages)
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in _convs(model))


@pytest.mark.parametrize("name", VGGS)
def test_bn_variant_adds_a_norm_after_every_conv_and_keeps_the_bias(name):
    plain, bn = build_meta(name), build_meta(f"{name}_bn")
    norms = [m for m in bn.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == len(_convs(bn)) and not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    assert all(c.bias is not None for c in _convs(bn))
    assert count_params(bn) - count_params(plain) == sum(2 * n.num_features for n in norms)


def test_feature_info_strides_and_widths():
    info = build_meta("vgg16").feature_info
    assert [(f.num_chs, f.reduction) for f in info] == [(64, 2), (128, 4), (256, 8), (512, 16), (512, 32)]


def test_narrow_vgg_count_and_options():
    model = cnnlab.create_model("vgg11", width_mult=0.25, hidden=256, drop_rate=0.2, num_classes=10,
                                in_chans=1)
    widths = [16, 32, 64, 64, 128, 128, 128, 128]
    assert [c.out_channels for c in _convs(model)] == widths
    convs = sum(conv_params(i, o, 3) for i, o in zip([1, *widths[:-1]], widths))
    head = (128 * 7 * 7 + 1) * 256 + (256 + 1) * 256 + (256 + 1) * 10
    assert count_params(model) == convs + head
    assert model.head.drop1.p == model.head.drop2.p == 0.2
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)


def test_narrow_vgg_trains_on_cpu():
    model = cnnlab.create_model("vgg11_bn", width_mult=0.125, hidden=64, num_classes=2, in_chans=1,
                                drop_rate=0.0)
    losses = fit_losses(model, *separable_batch(32))
    assert losses[-1] < 0.25 * losses[0]


def test_28x28_is_refused_with_the_smallest_size():
    model = cnnlab.create_model("vgg11", width_mult=0.125, hidden=32, in_chans=1, num_classes=10)
    with pytest.raises(InputTooSmallError, match="at least 32x32"):
        model(torch.randn(1, 1, 28, 28))


def test_converter_maps_every_torchvision_key_of_the_bn_variant():
    import torchvision

    with torch.device("meta"):
        theirs = torchvision.models.vgg13_bn(weights=None)
    converted = cnnlab.convert_torchvision("vgg13_bn", theirs.state_dict())
    assert sorted(converted) == sorted(build_meta("vgg13_bn").state_dict())


def test_gap_head_drops_the_fully_connected_layers():
    """The notes: VGG's FC layers hold most of its parameters and can be removed (global average pooling)."""
    mlp, gap = build_meta("vgg16"), build_meta("vgg16", head="gap")
    convs = sum(conv_params(c.in_channels, c.out_channels, 3) for c in _convs(mlp))
    fcs = (512 * 7 * 7 + 1) * 4096 + (4096 + 1) * 4096 + (4096 + 1) * 1000
    assert (convs, fcs) == (14_714_688, 123_642_856) and count_params(mlp) == convs + fcs == 138_357_544
    assert count_params(gap) == convs + 512 * 1000 + 1000 == 15_227_688
    assert not any(isinstance(m, nn.Linear) and m.out_features == 4096 for m in gap.modules())
    assert gap.num_features == 512


def test_gap_head_runs_on_small_gray_images_and_resets():
    model = cnnlab.create_model("vgg11", head="gap", width_mult=0.125, num_classes=10, in_chans=1)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)
    model.reset_classifier(0)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 64)
    with pytest.raises(ValueError, match="head must be one of 'mlp', 'gap'"):
        cnnlab.create_model("vgg11", head="fc")
