"""SqueezeNet: fire modules, the paper's per-layer parameter table, the conv head and its feature mode."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

import cnnlab
from _zoo import build_meta
from cnnlab.analysis.counting import count_params
from cnnlab.models import InputTooSmallError
from cnnlab.models import squeezenet as sq

# Iandola et al. 2016, Table 1, "# parameter before pruning" (SqueezeNet v1.0, 1000 classes).
PAPER_TABLE1 = {
    "conv1": 14_208, "fire2": 11_920, "fire3": 12_432, "fire4": 45_344, "fire5": 49_440,
    "fire6": 104_880, "fire7": 111_024, "fire8": 188_992, "fire9": 197_184, "conv10": 513_000,
}


def _fires(model: nn.Module) -> dict[str, nn.Module]:
    return {name.rsplit(".", 1)[-1]: m for name, m in model.named_modules() if isinstance(m, sq.Fire)}


def test_per_layer_parameters_match_paper_table1():
    model = build_meta("squeezenet1_0")
    ours = {"conv1": count_params(model.stem), "conv10": count_params(model.head)}
    ours.update({name: count_params(fire) for name, fire in _fires(model).items()})
    assert ours == PAPER_TABLE1
    assert count_params(model) == sum(PAPER_TABLE1.values()) == 1_248_424


def test_fire_module_squeezes_then_concatenates_both_expands():
    spec = sq.FireSpec(squeeze=4, expand1x1=6, expand3x3=10)
    fire = sq.Fire(12, spec).eval()
    assert fire.squeeze.conv.out_channels == 4 and fire.squeeze.conv.kernel_size == (1, 1)
    assert fire.expand1x1.conv.kernel_size == (1, 1) and fire.expand3x3.conv.kernel_size == (3, 3)
    x = torch.randn(2, 12, 7, 7)
    with torch.no_grad():
        out = fire(x)
        s = torch.relu(fire.squeeze.conv(x))
        e1 = torch.relu(fire.expand1x1.conv(s))
        e3 = torch.relu(fire.expand3x3.conv(s))
    assert out.shape == (2, 16, 7, 7)  # spatial size kept, channels e1x1 + e3x3
    torch.testing.assert_close(out, torch.cat([e1, e3], 1))


@pytest.mark.parametrize("name,chs", [("squeezenet1_0", [256, 512, 512]), ("squeezenet1_1", [128, 256, 512])])
def test_stage_widths_and_fire_numbering(name, chs):
    model = build_meta(name)
    assert [f.num_chs for f in model.feature_info] == chs
    assert [f.reduction for f in model.feature_info] == [4, 8, 16]
    assert list(_fires(model)) == [f"fire{i}" for i in range(2, 10)]  # paper numbering: fire2 ... fire9


@pytest.mark.parametrize("name", ["squeezenet1_0", "squeezenet1_1"])
def test_reset_classifier_zero_gives_pooled_512_features(name):
    torch.manual_seed(0)
    model = cnnlab.create_model(name, in_chans=1, num_classes=10).eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        fmap = model.forward_features(x)
        pre_logits = model.forward_head(fmap, pre_logits=True)
        model.reset_classifier(0)
        feats = model(x)
    assert model.num_features == 512
    assert feats.shape == (2, 512)
    torch.testing.assert_close(feats, fmap.mean((2, 3)))
    torch.testing.assert_close(pre_logits, feats)


def test_head_is_conv_relu_avgpool_like_torchvision():
    model = cnnlab.create_model("squeezenet1_1", num_classes=6).eval()
    assert isinstance(model.head.fc, nn.Conv2d) and model.head.fc.kernel_size == (1, 1)
    assert model.head.drop.p == 0.5
    with torch.no_grad():
        out = model(torch.randn(3, 3, 32, 32))
    assert out.shape == (3, 6)
    assert (out >= 0).all()  # the ReLU after the class conv makes every score non-negative
    model.reset_classifier(4)
    assert model.head.fc.out_channels == 4 and model.num_classes == 4


@pytest.mark.parametrize("name", ["squeezenet1_0", "squeezenet1_1"])
def test_min_size_equals_torchvision_published_and_28_fits(name):
    meta = next(iter(torchvision.models.get_model_weights(name))).meta
    info = cnnlab.get_model_info(name)
    assert (info.min_size, info.min_size) == meta["min_size"]
    assert info.takes_28
    model = cnnlab.create_model(name, in_chans=1)
    s = info.min_size - 1
    with pytest.raises(InputTooSmallError, match=f"at least {info.min_size}x{info.min_size}"):
        model(torch.randn(1, 1, s, s))


def test_norm_layer_option_adds_a_norm_after_every_conv_but_the_classifier():
    model = build_meta("squeezenet1_0", norm_layer=nn.BatchNorm2d)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    biased = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.bias is not None]
    assert len(norms) == 1 + 3 * 8  # conv1 and three convs per fire module
    assert biased == [model.head.fc]


@pytest.mark.parametrize("kwargs,match", [
    ({"drop_rate": 1.0}, "drop_rate"),
    ({"dropout": 0.2}, "takes no option 'dropout'"),
])
def test_bad_options_raise_one_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        cnnlab.create_model("squeezenet1_0", **kwargs)
