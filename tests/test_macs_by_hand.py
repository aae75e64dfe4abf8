"""Multiply-accumulates written out by hand, block by block, from each paper's layer table.

src/cnnlab/analysis/zoo_counts.json is a snapshot of what the counter gave when it was written: a change detector
for our own code, not evidence that a count is right. These formulas are the independent check for the
networks torchvision does not have (torchvision's published GFLOPS check the others): a convolution with
k x k kernels from C_in to C_out channels, producing an H x W map, costs C_out * H * W * (C_in / groups) * k * k
MACs, a linear layer in x out; normalization, activations, pooling and additions cost no MACs.
"""

from __future__ import annotations

import math

import pytest

from _zoo import build_meta
from cnnlab.analysis.counting import count_macs


def conv(c_in: int, c_out: int, k: int, side: int) -> int:
    """MACs of a k x k convolution producing a side x side map."""
    return c_out * side * side * c_in * k * k


def cifar_resnet_macs(n: int, num_classes: int = 10) -> int:
    """He et al. 2016, Sec. 4.2: 3x3 conv (16) at 32x32, then n two-conv blocks at 16/32/64 channels on
    32/16/8 maps (the first conv of a stage strides), option-A shortcuts (subsample and zero-pad: no MACs)."""
    total = conv(3, 16, 3, 32)
    in_chs = 16
    for width, side in ((16, 32), (32, 16), (64, 8)):
        for _ in range(n):
            total += conv(in_chs, width, 3, side) + conv(width, width, 3, side)
            in_chs = width
    return total + 64 * num_classes


def resnet18_cifar_macs(num_classes: int = 10) -> int:
    """ResNet-18 for 32x32: 3x3 stem (64), no max pool, two basic blocks per stage at 64/128/256/512 channels
    on 32/16/8/4 maps, 1x1 stride-2 projections where the width changes."""
    total = conv(3, 64, 3, 32)
    in_chs = 64
    for width, side in ((64, 32), (128, 16), (256, 8), (512, 4)):
        for _ in range(2):
            total += conv(in_chs, width, 3, side) + conv(width, width, 3, side)
            if in_chs != width:
                total += conv(in_chs, width, 1, side)
            in_chs = width
    return total + 512 * num_classes


def wrn_macs(depth: int, k: int, num_classes: int = 10) -> int:
    """Zagoruyko & Komodakis 2016, Table 1: 3x3 conv (16), then (depth - 4) / 6 pre-activation blocks per
    group at 16k/32k/64k channels on 32/16/8 maps; a 1x1 projection where the width changes."""
    n = (depth - 4) // 6
    total = conv(3, 16, 3, 32)
    in_chs = 16
    for width, side in ((16 * k, 32), (32 * k, 16), (64 * k, 8)):
        for _ in range(n):
            total += conv(in_chs, width, 3, side) + conv(width, width, 3, side)
            if in_chs != width:
                total += conv(in_chs, width, 1, side)
            in_chs = width
    return total + in_chs * num_classes


def densenet_small_macs(depth: int, k: int, bottleneck: bool, theta: float, num_classes: int = 10) -> int:
    """Huang et al. 2017, Sec. 3-4 (CIFAR): a 3x3 conv (2k channels for BC, else 16), three dense blocks on
    32/16/8 maps; a layer is [1x1 conv to 4k,] 3x3 conv to k on all maps before it; a transition is a 1x1
    conv to floor(theta * c) on the block's map, then 2x2 average pooling (no MACs)."""
    layers = (depth - 4) // 6 if bottleneck else (depth - 4) // 3
    c = 2 * k if bottleneck else 16
    total = conv(3, c, 3, 32)
    for block, side in enumerate((32, 16, 8)):
        if block > 0:
            out = math.floor(theta * c)
            total += conv(c, out, 1, 2 * side)  # on the previous block's map, before the pooling
            c = out
        for _ in range(layers):
            total += conv(c, 4 * k, 1, side) + conv(4 * k, k, 3, side) if bottleneck else conv(c, k, 3, side)
            c += k
    return total + c * num_classes


def nin_cifar_macs(num_classes: int = 10) -> int:
    """Lin et al. 2014, the authors' released CIFAR-10 model: mlpconv 5x5 (192), 1x1 (160), 1x1 (96) on 32x32;
    5x5 (192), 1x1 (192) x 2 on 16x16; 3x3 (192), 1x1 (192), 1x1 (classes) on 8x8, then global average."""
    return (conv(3, 192, 5, 32) + conv(192, 160, 1, 32) + conv(160, 96, 1, 32)
            + conv(96, 192, 5, 16) + 2 * conv(192, 192, 1, 16)
            + conv(192, 192, 3, 8) + conv(192, 192, 1, 8) + conv(192, num_classes, 1, 8))


def nin_imagenet_macs(num_classes: int = 1000, in_chans: int = 3) -> int:
    """d2l.ai Sec. 8.3 NiN at 224x224: 11x11 stride 4 (96) -> 54x54, 5x5 (256) on 26x26, 3x3 (384) on 12x12,
    3x3 (classes) on 5x5, each followed by two 1x1 convs of the same width."""
    return (conv(in_chans, 96, 11, 54) + 2 * conv(96, 96, 1, 54)
            + conv(96, 256, 5, 26) + 2 * conv(256, 256, 1, 26)
            + conv(256, 384, 3, 12) + 2 * conv(384, 384, 1, 12)
            + conv(384, num_classes, 3, 5) + 2 * conv(num_classes, num_classes, 1, 5))


def lenet5_macs() -> int:
    """LeCun et al. 1998, Sec. II.B: C1 5x5 (6) on 28x28; C3 5x5 (16) on 10x10 reading 60 of the 96 S2 maps
    (Table I: six C3 maps read 3, nine read 4, one reads 6); C5 5x5 (120) on 1x1; F6 120 -> 84; output 84 -> 10.
    Subsampling (S2, S4) costs no MACs."""
    c3_inputs = 6 * 3 + 9 * 4 + 1 * 6
    return conv(1, 6, 5, 28) + 10 * 10 * c3_inputs * 5 * 5 + conv(16, 120, 5, 1) + 120 * 84 + 84 * 10


CASES = {
    **{f"resnet{6 * n + 2}": (lambda n=n: cifar_resnet_macs(n)) for n in (3, 5, 7, 9, 18)},
    "resnet18_cifar": resnet18_cifar_macs,
    "wrn16_4": lambda: wrn_macs(16, 4),
    "wrn16_8": lambda: wrn_macs(16, 8),
    "wrn28_2": lambda: wrn_macs(28, 2),
    "wrn28_10": lambda: wrn_macs(28, 10),
    "wrn40_2": lambda: wrn_macs(40, 2),
    "wrn40_4": lambda: wrn_macs(40, 4),
    "densenet_bc_100_12": lambda: densenet_small_macs(100, 12, True, 0.5),
    "densenet_bc_250_24": lambda: densenet_small_macs(250, 24, True, 0.5),
    "densenet_bc_190_40": lambda: densenet_small_macs(190, 40, True, 0.5),
    "densenet40_12": lambda: densenet_small_macs(40, 12, False, 1.0),
    "nin_cifar": nin_cifar_macs,
    "nin": nin_imagenet_macs,
    "lenet5": lenet5_macs,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_macs_equal_the_papers_layers_by_hand(name):
    model = build_meta(name)
    size = {"nin": (3, 224, 224), "lenet5": (1, 32, 32)}.get(name, (3, 32, 32))
    assert count_macs(model, size) == CASES[name]()


def test_hand_formulas_agree_with_figures_worked_out_in_the_docs():
    """Two totals worked out in full, so that a slip in the formulas above shows too."""
    # LeNet-5: 117,600 (C1) + 150,000 (C3) + 48,000 (C5) + 10,080 (F6) + 840 (output)
    assert lenet5_macs() == 326_520
    # NiN (CIFAR): 14,745,600 + 31,457,280 + 15,728,640 + 117,964,800 + 18,874,368 + 21,233,664 + 2,359,296 + 122,880
    assert nin_cifar_macs() == 222_486_528
