"""ZFNet (Zeiler & Fergus 2014, Fig. 3): layer sizes, the per-layer count, LRN placement, small inputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.analysis.counting import conv_params, count_macs, count_params
from cnnlab.models import InputTooSmallError


def test_maps_match_figure_3():
    model = cnnlab.create_model("zfnet").eval()
    modules = dict(model.named_modules())
    sizes = {}
    for name in ("stem.conv1", "stem.pool", "stages.0.conv2", "stages.0.pool", "stages.1.conv5", "stages.1.pool"):
        modules[name].register_forward_hook(lambda m, i, o, key=name: sizes.__setitem__(key, tuple(o.shape[1:])))
    with torch.no_grad():
        model(torch.randn(1, 3, 224, 224))
    # Figure 3: 110 -> 55 (96 maps), 26 -> 13 (256 maps), 13 (384, 384, 256), 6x6x256 into the FC layers
    assert sizes == {"stem.conv1": (96, 110, 110), "stem.pool": (96, 55, 55), "stages.0.conv2": (256, 26, 26),
                     "stages.0.pool": (256, 13, 13), "stages.1.conv5": (256, 13, 13), "stages.1.pool": (256, 6, 6)}


def test_count_layer_by_layer():
    model = cnnlab.create_model("zfnet")
    convs = (conv_params(3, 96, 7) + conv_params(96, 256, 5) + conv_params(256, 384, 3)
             + conv_params(384, 384, 3) + conv_params(384, 256, 3))
    fcs = (256 * 6 * 6 + 1) * 4096 + (4096 + 1) * 4096 + (4096 + 1) * 1000
    assert (convs, fcs) == (3_726_464, 58_631_144)
    assert count_params(model) == convs + fcs == 62_357_608
    # MACs: output positions x kernel volume for the convs, weights for the FC layers
    macs = (110**2 * 96 * 147 + 26**2 * 256 * 2400 + 13**2 * (384 * 2304 + 384 * 3456 + 256 * 3456)
            + 9216 * 4096 + 4096 * 4096 + 4096 * 1000)
    assert count_macs(model, (3, 224, 224)) == macs == 1_168_032_896


def test_contrast_normalization_follows_the_pool_and_can_be_left_out():
    model = cnnlab.create_model("zfnet")
    assert [n for n, _ in model.stem.named_children()] == ["conv1", "pool", "lrn"]
    assert [n for n, _ in model.stages[0].named_children()] == ["conv2", "pool", "lrn"]
    plain = cnnlab.create_model("zfnet", lrn=False)
    assert not any(isinstance(m, nn.LocalResponseNorm) for m in plain.modules())
    assert count_params(plain) == count_params(model)


def test_dropout_on_the_hidden_outputs():
    head = cnnlab.create_model("zfnet").head
    assert head.drop_first is False and head.drop1.p == head.drop2.p == 0.5


def test_narrow_zfnet_takes_small_gray_images():
    model = cnnlab.create_model("zfnet", width_mult=0.125, hidden=64, num_classes=10, in_chans=1)
    assert model(torch.randn(2, 1, 47, 47)).shape == (2, 10)
    with pytest.raises(InputTooSmallError, match="at least 47x47"):
        model(torch.randn(1, 1, 46, 46))
