"""Inception v3 / v4 / Inception-ResNet-v2: aux head, grid sizes, analytic block sizes, residual scaling."""

from __future__ import annotations

from functools import partial

import pytest
import torch
import torchvision
from torch import nn

import cnnlab
from _zoo import build_meta
from cnnlab.analysis.counting import conv_params, count_params, meta_forward
from cnnlab.models import InputTooSmallError
from cnnlab.models._inception_base import INCEPTION_NORM
from cnnlab.models.inception import InceptionV3Aux, InceptionV3Outputs, ResidualInception
from cnnlab.models.layers import Branches, ConvNormAct, DropPath

INCEPTIONS = ["inception_v3", "inception_v4", "inception_resnet_v2"]
CONV = partial(ConvNormAct, norm_layer=INCEPTION_NORM, act_layer=nn.ReLU)


def _conv_bn(in_chs: int, out_chs: int, k: int | tuple[int, int]) -> int:
    return conv_params(in_chs, out_chs, k, bias=False) + 2 * out_chs


def _stage_maps(model: nn.Module, size: int) -> list[tuple[int, int, int]]:
    """(channels, height, width) of each stage's output for a size x size input."""
    shapes = []
    handles = [stage.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:])))
               for stage in model.stages]
    meta_forward(model, torch.empty(1, model.in_chans, size, size, device="meta"))
    for h in handles:
        h.remove()
    return shapes


@pytest.mark.parametrize("name,chs", [("inception_v3", (288, 768, 2048)), ("inception_v4", (384, 1024, 1536)),
                                      ("inception_resnet_v2", (320, 1088, 1536))])
def test_grids_are_35_17_8_at_299_and_3_1_at_75(name, chs):
    model = build_meta(name).eval()
    assert _stage_maps(model, 299) == [(chs[0], 35, 35), (chs[1], 17, 17), (chs[2], 8, 8)]
    assert _stage_maps(model, 75) == [(chs[0], 7, 7), (chs[1], 3, 3), (chs[2], 1, 1)]
    assert [f.reduction for f in model.feature_info] == [8, 16, 32]  # the strides, not 299 / map size


@pytest.mark.parametrize("name", INCEPTIONS)
def test_28x28_is_refused_in_one_sentence_naming_75(name):
    model = cnnlab.create_model(name, in_chans=1, num_classes=10)
    with pytest.raises(InputTooSmallError, match="at least 75x75") as err:
        model(torch.randn(1, 1, 28, 28))
    message = str(err.value)
    assert message.count(".") == 0 and "\n" not in message and "28x28" in message


def test_v3_aux_head_equals_torchvision_where_torchvision_takes_the_map():
    from torchvision.models.inception import InceptionAux

    torch.manual_seed(0)
    theirs = InceptionAux(768, 10).eval()
    ours = InceptionV3Aux(768, 10, CONV).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    with torch.no_grad():
        for size in (17, 23):  # 299 and 400 inputs
            x = torch.randn(2, 768, size, size)
            assert (ours(x) - theirs(x)).abs().max().item() <= 1e-5
        small = torch.randn(2, 768, 3, 3)  # 75x75 input: torchvision's 5x5/3 pooling cannot run
        with pytest.raises(RuntimeError):
            theirs(small)
        assert ours(small).shape == (2, 10)


def test_v3_trains_with_aux_head_from_75x75_and_eval_returns_a_tensor():
    model = cnnlab.create_model("inception_v3", num_classes=4, in_chans=1).train()
    out = model(torch.randn(2, 1, 75, 75))
    assert isinstance(out, InceptionV3Outputs)
    assert out.logits.shape == out.aux_logits.shape == (2, 4)
    model.eval()
    with torch.no_grad():
        assert isinstance(model(torch.randn(2, 1, 75, 75)), torch.Tensor)
    no_aux = build_meta("inception_v3", aux_logits=False)
    assert count_params(build_meta("inception_v3")) - count_params(no_aux) == (
        _conv_bn(768, 128, 1) + _conv_bn(128, 768, 5) + 768 * 1000 + 1000)


def test_v3_transform_input_matches_torchvision():
    torch.manual_seed(0)
    theirs = torchvision.models.inception_v3(weights=None, init_weights=False, transform_input=True).eval()
    ours = cnnlab.create_model("inception_v3", transform_input=True).eval()
    ours.load_state_dict(cnnlab.convert_torchvision("inception_v3", theirs.state_dict()), strict=True)
    x = torch.randn(2, 3, 75, 75)
    with torch.no_grad():
        assert (ours(x) - theirs(x)).abs().max().item() <= 1e-5


def test_v3_reset_classifier_resets_aux_head():
    model = build_meta("inception_v3")
    model.reset_classifier(0)
    assert isinstance(model.aux.fc, nn.Identity) and isinstance(model.head.fc, nn.Identity)
    model.reset_classifier(6)
    assert model.aux.fc.out_features == model.head.fc.out_features == 6


def test_v4_one_more_inception_a_block_adds_its_analytic_size():
    block_a = (_conv_bn(384, 96, 1)
               + _conv_bn(384, 64, 1) + _conv_bn(64, 96, 3)
               + _conv_bn(384, 64, 1) + _conv_bn(64, 96, 3) + _conv_bn(96, 96, 3)
               + _conv_bn(384, 96, 1))
    more = build_meta("inception_v4", depths=(5, 7, 3))
    assert count_params(more) - count_params(build_meta("inception_v4")) == block_a


@pytest.mark.parametrize("stage,block", [
    (0, _conv_bn(320, 32, 1) + _conv_bn(320, 32, 1) + _conv_bn(32, 32, 3) + _conv_bn(320, 32, 1)
     + _conv_bn(32, 48, 3) + _conv_bn(48, 64, 3) + conv_params(128, 320, 1)),
    (1, _conv_bn(1088, 192, 1) + _conv_bn(1088, 128, 1) + _conv_bn(128, 160, (1, 7))
     + _conv_bn(160, 192, (7, 1)) + conv_params(384, 1088, 1)),
    (2, _conv_bn(2080, 192, 1) + _conv_bn(2080, 192, 1) + _conv_bn(192, 224, (1, 3))
     + _conv_bn(224, 256, (3, 1)) + conv_params(448, 2080, 1)),
])
def test_inception_resnet_blocks_have_their_analytic_size(stage, block):
    depths = [10, 20, 10]
    depths[stage] += 1
    grown = build_meta("inception_resnet_v2", depths=tuple(depths))
    assert count_params(grown) - count_params(build_meta("inception_resnet_v2")) == block


def test_residual_block_computes_scaled_sum():
    torch.manual_seed(0)
    branches = Branches({"a": nn.Conv2d(8, 4, 1), "b": nn.Conv2d(8, 4, 3, padding=1)})
    block = ResidualInception(branches, 8, 8, scale=0.25)
    x = torch.randn(2, 8, 5, 5)
    expected = torch.relu(x + 0.25 * block.proj(torch.cat([branches["a"](x), branches["b"](x)], 1)))
    assert torch.allclose(block(x), expected, atol=1e-6)
    linear = ResidualInception(branches, 8, 8, scale=0.0, activate=False)
    assert torch.equal(linear(x), x)


def test_residual_scales_are_an_option_and_slim_defaults():
    def scales(model):
        return [m.scale for m in model.modules() if isinstance(m, ResidualInception)]

    default = scales(build_meta("inception_resnet_v2"))
    assert default == [0.17] * 10 + [0.10] * 20 + [0.20] * 9 + [1.0]
    custom = scales(build_meta("inception_resnet_v2", residual_scales=(0.3, 0.2, 0.1)))
    assert custom == [0.3] * 10 + [0.2] * 20 + [0.1] * 9 + [1.0]
    with pytest.raises(ValueError, match="residual_scales needs 3 values"):
        cnnlab.create_model("inception_resnet_v2", residual_scales=(0.1, 0.2))
    with pytest.raises(ValueError, match="depths"):
        cnnlab.create_model("inception_resnet_v2", depths=(10, 20, 0))


def test_drop_path_follows_the_linear_decay_rule():
    # Huang et al. 2016: residual block k of L = 10 + 20 + 10 drops with k / L * p_L.
    model = build_meta("inception_resnet_v2", drop_path_rate=0.4)
    rates = [m.drop_prob for m in model.modules() if isinstance(m, DropPath)]
    assert rates == pytest.approx([0.4 * k / 40 for k in range(1, 41)])
    assert not any(isinstance(m, DropPath) for m in build_meta("inception_resnet_v2").modules())
