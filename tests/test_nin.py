"""NiN: mlpconv blocks, the d2l and CIFAR-10 shapes, the class-map head, dropout placement, input sizes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnlab
from cnnlab.analysis.counting import conv_params, count_params
from cnnlab.models import InputTooSmallError


def _outputs(model: nn.Module, paths: list[str], x: torch.Tensor) -> dict[str, tuple[int, ...]]:
    mods = dict(model.named_modules())
    seen: dict[str, tuple[int, ...]] = {}
    hooks = [mods[p].register_forward_hook(lambda m, i, o, p=p: seen.__setitem__(p, tuple(o.shape[1:])))
             for p in paths]
    with torch.no_grad():
        model.eval()(x)
    for h in hooks:
        h.remove()
    return seen


def test_d2l_shapes_at_224():
    """d2l.ai Sec. 8.3 prints 96@54, 96@26, 256@26, 256@12, 384@12, 384@5, 10@5 for a 1x224x224 input."""
    model = cnnlab.create_model("nin", in_chans=1, num_classes=10)
    paths = ["stem.cccp2", "stem.pool", "stages.0.cccp2", "stages.0.pool", "stages.1.cccp2", "stages.1.pool",
             "head.fc"]
    got = _outputs(model, paths, torch.randn(1, 1, 224, 224))
    assert [got[p] for p in paths] == [(96, 54, 54), (96, 26, 26), (256, 26, 26), (256, 12, 12),
                                       (384, 12, 12), (384, 5, 5), (10, 5, 5)]


def test_cifar_shapes_match_the_released_model():
    """Caffe's ceil-mode pools take 32 to 16 to 8, and the last pool averages an 8x8 map."""
    model = cnnlab.create_model("nin_cifar")
    got = _outputs(model, ["stem", "stages.0", "head.fc"], torch.randn(1, 3, 32, 32))
    assert got == {"stem": (96, 16, 16), "stages.0": (192, 8, 8), "head.fc": (10, 8, 8)}


def test_every_block_is_a_conv_and_two_1x1_each_with_relu():
    model = cnnlab.create_model("nin_cifar")
    blocks = [model.stem, model.stages[0], model.head.fc]
    kernels = [[blk.conv.conv.kernel_size, blk.cccp1.conv.kernel_size, blk.cccp2.conv.kernel_size]
               for blk in blocks]
    assert kernels == [[(5, 5), (1, 1), (1, 1)], [(5, 5), (1, 1), (1, 1)], [(3, 3), (1, 1), (1, 1)]]
    for blk in blocks:
        assert all(isinstance(getattr(blk, n).act, nn.ReLU) for n in ("conv", "cccp1", "cccp2"))
    widths = [[blk.conv.conv.out_channels, blk.cccp1.conv.out_channels, blk.cccp2.conv.out_channels]
              for blk in blocks]
    assert widths == [[192, 160, 96], [192, 192, 192], [192, 192, 10]]
    assert not any(isinstance(m, nn.Linear) for m in model.modules())


def test_cifar_count_is_the_sum_of_its_convs():
    for classes in (10, 100):
        expected = (conv_params(3, 192, 5) + conv_params(192, 160, 1) + conv_params(160, 96, 1)
                    + conv_params(96, 192, 5) + 2 * conv_params(192, 192, 1)
                    + conv_params(192, 192, 3) + conv_params(192, 192, 1) + conv_params(192, classes, 1))
        assert count_params(cnnlab.create_model("nin_cifar", num_classes=classes)) == expected


@pytest.mark.parametrize(("name", "size"), [("nin", 96), ("nin_cifar", 32)])
def test_reset_classifier_zero_gives_pooled_features(name, size):
    model = cnnlab.create_model(name).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        maps = model.forward_features(x)
        model.reset_classifier(0)
        feats = model(x)
    assert feats.shape == (2, model.num_features)
    assert torch.allclose(feats, F.adaptive_avg_pool2d(maps, 1).flatten(1))


def test_reset_classifier_rebuilds_the_class_block():
    d2l = cnnlab.create_model("nin")
    d2l.reset_classifier(7)
    assert [d2l.head.fc.conv.conv.out_channels, d2l.head.fc.cccp2.conv.out_channels] == [7, 7]
    cifar = cnnlab.create_model("nin_cifar")
    cifar.reset_classifier(7)
    assert [cifar.head.fc.conv.conv.out_channels, cifar.head.fc.cccp2.conv.out_channels] == [192, 7]
    assert cifar(torch.randn(1, 3, 32, 32)).shape == (1, 7)


def test_dropout_placement_and_rate():
    def drops(model: nn.Module) -> list[str]:
        return [n for n, m in model.named_modules() if isinstance(m, nn.Dropout)]

    assert drops(cnnlab.create_model("nin")) == ["stages.1.drop"]  # d2l: before the class block only
    cifar = cnnlab.create_model("nin_cifar", drop_rate=0.3)
    assert drops(cifar) == ["stem.drop", "stages.0.drop"]  # the release: after both pools
    assert all(m.p == 0.3 for m in cifar.modules() if isinstance(m, nn.Dropout))


def test_input_sizes():
    assert cnnlab.create_model("nin_cifar", in_chans=1)(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(InputTooSmallError, match="at least 67x67"):
        cnnlab.create_model("nin", in_chans=1, num_classes=10)(torch.randn(1, 1, 28, 28))


def test_width_mult_scales_hidden_widths_but_not_the_classes():
    narrow = cnnlab.create_model("nin_cifar", num_classes=10, in_chans=1, width_mult=0.25)
    convs = [m for m in narrow.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [48, 40, 24, 48, 48, 48, 48, 48, 10]
    assert narrow(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match="width_mult"):
        cnnlab.create_model("nin_cifar", width_mult=0)
