"""BN-Inception (Ioffe & Szegedy 2015, Figure 5): module widths, map sizes, the count, batch norm everywhere."""

from __future__ import annotations

import torch
from torch import nn

import cnnlab
from _zoo import build_meta
from cnnlab.analysis.counting import conv_params, count_params
from cnnlab.models.bn_inception import BNInceptionModule

# Figure 5: in, #1x1, #3x3 reduce, #3x3, double #3x3 reduce, double #3x3, pool proj (0: pass through), out.
FIGURE_5 = {
    "inception3a": (192, 64, 64, 64, 64, 96, 32, 256),
    "inception3b": (256, 64, 64, 96, 64, 96, 64, 320),
    "inception3c": (320, 0, 128, 160, 64, 96, 0, 576),
    "inception4a": (576, 224, 64, 96, 96, 128, 128, 576),
    "inception4b": (576, 192, 96, 128, 96, 128, 128, 576),
    "inception4c": (576, 160, 128, 160, 128, 160, 128, 608),
    "inception4d": (608, 96, 128, 192, 160, 192, 128, 608),
    "inception4e": (608, 0, 128, 192, 192, 256, 0, 1056),
    "inception5a": (1056, 352, 192, 320, 160, 224, 128, 1024),
    "inception5b": (1024, 352, 192, 320, 192, 224, 128, 1024),
}


def _conv_bn(in_chs: int, out_chs: int, k: int, bias: bool = False) -> int:
    return conv_params(in_chs, out_chs, k, bias=bias) + 2 * out_chs if out_chs else 0


def _module_params(in_chs, c1, c3r, c3, d3r, d3, proj, out, bias=False) -> int:
    return (_conv_bn(in_chs, c1, 1, bias) + _conv_bn(in_chs, c3r, 1, bias) + _conv_bn(c3r, c3, 3, bias)
            + _conv_bn(in_chs, d3r, 1, bias) + _conv_bn(d3r, d3, 3, bias) + _conv_bn(d3, d3, 3, bias)
            + _conv_bn(in_chs, proj, 1, bias))


def _by_hand(bias: bool = False) -> int:
    stem = _conv_bn(3, 64, 7, bias) + _conv_bn(64, 64, 1, bias) + _conv_bn(64, 192, 3, bias)
    return stem + sum(_module_params(*row, bias=bias) for row in FIGURE_5.values()) + 1024 * 1000 + 1000


def test_modules_follow_figure_5():
    model = build_meta("bn_inception")
    modules = {n.rsplit(".", 1)[-1]: m for n, m in model.named_modules() if isinstance(m, BNInceptionModule)}
    assert list(modules) == list(FIGURE_5)
    for name, module in modules.items():
        assert module.out_chs == FIGURE_5[name][-1]
        assert count_params(module) == _module_params(*FIGURE_5[name])
    kernels = {m.kernel_size for m in model.modules() if isinstance(m, nn.Conv2d)}
    assert kernels == {(7, 7), (1, 1), (3, 3)}  # the 5x5 convolutions became two 3x3
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert all(c.bias is None for c in convs)


def test_count_by_hand_and_with_the_caffe_biases():
    assert count_params(build_meta("bn_inception")) == _by_hand() == 11_285_224
    # the Caffe model most ports load keeps a bias in every convolution: pytorchcv's 11,295,240
    assert count_params(build_meta("bn_inception", conv_bias=True)) == _by_hand(bias=True) == 11_295_240


def test_maps_halve_in_3c_and_4e():
    model = cnnlab.create_model("bn_inception").eval()
    sizes = {}
    for name, module in model.named_modules():
        if isinstance(module, BNInceptionModule) or name == "stem":
            module.register_forward_hook(lambda m, i, o, key=name: sizes.__setitem__(key.rsplit(".", 1)[-1],
                                                                                     o.shape[-1]))
    with torch.no_grad():
        model(torch.randn(1, 3, 224, 224))
    assert sizes["stem"] == 28 and sizes["inception3b"] == 28
    assert sizes["inception3c"] == sizes["inception4d"] == 14
    assert sizes["inception4e"] == sizes["inception5b"] == 7


def test_takes_28x28_gray_images():
    model = cnnlab.create_model("bn_inception", in_chans=1, num_classes=10).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
