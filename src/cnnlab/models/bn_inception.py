"""Ioffe & Szegedy 2015, Batch Normalization: Accelerating Deep Network Training by Reducing Internal
Covariate Shift (BN-Inception, also called Inception-v2).

The network of the paper's Figure 5 (appendix): GoogLeNet with batch normalization after every
convolution and with its 5x5 convolutions replaced by two 3x3 convolutions ("double 3x3", "with up to 128
filters"), average pooling in most modules' pooling branch, and two modules (3c, 4e) that halve the map
with stride-2 convolutions and a max pool whose output passes through unprojected. On 224x224:

    conv 7x7/2 (64) 112 -> max pool 3x3/2 56 -> conv 1x1 (64) -> conv 3x3 (192) -> max pool 3x3/2 28
    inception 3a, 3b (28x28: 256, 320), 3c (/2: 576 at 14x14)
    inception 4a, 4b, 4c, 4d (576, 576, 608, 608), 4e (/2: 1056 at 7x7)
    inception 5a, 5b (1024, 1024; 5b pools by max) -> global average pool -> linear

Each module is 1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 -> 3x3 | pool -> 1x1 (widths: the table's columns #1x1,
#3x3 reduce, #3x3, double #3x3 reduce, double #3x3, pool + proj). The stem, the stage split (strides 8,
16, 32) and the head are the Inception frame shared with GoogLeNet (``cnnlab.models._inception_base``);
the convolutions carry no bias (batch norm follows), the head no dropout (the paper's BN networks remove
it, Section 4.2.1). The figure gives no paddings: 3x3 convolutions pad 1, and the pass-through max pool of
3c and 4e pads 1 as their stride-2 convolutions do, so both halve any map alike (Caffe's unpadded
ceil-mode pool agrees with them only on even maps such as 28 and 14). 11,285,224 parameters;
``conv_bias=True`` adds the biases of the Caffe model most ports load (pytorchcv's 11,295,240), derived
in docs/zoo.md.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from functools import partial

from torch import nn

from cnnlab.models._inception_base import INCEPTION_NORM, InceptionNet
from cnnlab.models._registry import Variant, register_variants
from cnnlab.models.layers import Branches, ConvNormAct, LayerFactory

__all__ = ["VARIANTS", "BNInception", "BNInceptionConfig", "BNInceptionModule", "BNInceptionSpec"]

PAPER = ("Ioffe & Szegedy 2015, Batch Normalization: Accelerating Deep Network Training by Reducing Internal "
         "Covariate Shift")


@dataclass(frozen=True)
class BNInceptionSpec:
    """A row of the paper's Figure 5: branch widths, the pooling, and whether the module halves the map."""

    ch1x1: int  # 0 in the stride-2 modules (no 1x1 branch)
    ch3x3red: int
    ch3x3: int
    dbl3x3red: int
    dbl3x3: int
    pool: str  # "avg" or "max"
    pool_proj: int  # 0: the pooled input passes through unprojected (the stride-2 modules)
    stride: int = 1

    def out_chs(self, in_chs: int) -> int:
        return self.ch1x1 + self.ch3x3 + self.dbl3x3 + (self.pool_proj or in_chs)


class BNInceptionModule(Branches):
    """BN-Inception module: [1x1 |] 1x1 -> 3x3 | 1x1 -> 3x3 -> 3x3 | avg/max pool [-> 1x1], concatenated."""

    def __init__(self, in_chs: int, spec: BNInceptionSpec, conv: partial) -> None:
        s = spec.stride
        branches: dict[str, nn.Module] = {}
        if spec.ch1x1:
            branches["branch1x1"] = conv(in_chs, spec.ch1x1, 1)
        branches["branch3x3"] = nn.Sequential(conv(in_chs, spec.ch3x3red, 1), conv(spec.ch3x3red, spec.ch3x3, 3,
                                                                                  stride=s))
        branches["branch3x3dbl"] = nn.Sequential(conv(in_chs, spec.dbl3x3red, 1),
                                                 conv(spec.dbl3x3red, spec.dbl3x3, 3),
                                                 conv(spec.dbl3x3, spec.dbl3x3, 3, stride=s))
        if s > 1:  # the pooled input passes through; padded as the convolutions, so any map size halves alike
            pool: nn.Module = nn.MaxPool2d(3, stride=s, padding=1)
        elif spec.pool == "avg":
            pool = nn.AvgPool2d(3, stride=1, padding=1, ceil_mode=True)
        else:
            pool = nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True)
        branches["branch_pool"] = nn.Sequential(pool, conv(in_chs, spec.pool_proj, 1)) if spec.pool_proj else pool
        super().__init__(branches)
        self.out_chs = spec.out_chs(in_chs)


@dataclass(frozen=True)
class BNInceptionConfig:
    """Stages of named modules (Figure 5) and the stem widths."""

    stages: tuple[tuple[tuple[str, BNInceptionSpec], ...], ...]
    stem_chs: tuple[int, int, int] = (64, 64, 192)  # conv 7x7/2, 1x1 reduce, conv 3x3


class BNInception(InceptionNet):
    """BN-Inception: stem (7x7/2, pool, 1x1, 3x3, pool) -> 3 stages of modules (3c, 4e halve) -> pool, fc."""

    def __init__(self, cfg: BNInceptionConfig, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0,
                 conv_bias: bool = False, norm_layer: LayerFactory | None = INCEPTION_NORM,
                 act_layer: LayerFactory = nn.ReLU) -> None:
        super().__init__(num_classes, in_chans)
        conv = partial(ConvNormAct, norm_layer=norm_layer, act_layer=act_layer,
                       bias=conv_bias or norm_layer is None)
        c1, c2, c3 = cfg.stem_chs
        stem = nn.Sequential(OrderedDict(
            conv1=conv(in_chans, c1, 7, stride=2),  # (B, 64, 112, 112) at 224
            pool1=nn.MaxPool2d(3, stride=2, ceil_mode=True),  # (B, 64, 56, 56)
            conv2_reduce=conv(c1, c2, 1),
            conv2=conv(c2, c3, 3),  # (B, 192, 56, 56)
            pool2=nn.MaxPool2d(3, stride=2, ceil_mode=True),  # (B, 192, 28, 28)
        ))
        chs, stages, stage_chs = c3, [], []
        for blocks in cfg.stages:
            layers: OrderedDict[str, nn.Module] = OrderedDict()
            for name, spec in blocks:
                layers[name] = BNInceptionModule(chs, spec, conv)
                chs = layers[name].out_chs
            stages.append(nn.Sequential(layers))
            stage_chs.append(chs)
        self._assemble(stem, stages, stage_chs, drop_rate=drop_rate)


def _row(name: str, *widths: int, pool: str = "avg", stride: int = 1) -> tuple[str, BNInceptionSpec]:
    c1, c3r, c3, d3r, d3, proj = widths
    return name, BNInceptionSpec(c1, c3r, c3, d3r, d3, pool, proj, stride)


# Figure 5: #1x1, #3x3 reduce, #3x3, double #3x3 reduce, double #3x3, pool proj (0: pass through).
_BN_INCEPTION = BNInceptionConfig(stages=(
    (_row("inception3a", 64, 64, 64, 64, 96, 32),
     _row("inception3b", 64, 64, 96, 64, 96, 64)),
    (_row("inception3c", 0, 128, 160, 64, 96, 0, pool="max", stride=2),
     _row("inception4a", 224, 64, 96, 96, 128, 128),
     _row("inception4b", 192, 96, 128, 96, 128, 128),
     _row("inception4c", 160, 128, 160, 128, 160, 128),
     _row("inception4d", 96, 128, 192, 160, 192, 128)),
    (_row("inception4e", 0, 128, 192, 192, 256, 0, pool="max", stride=2),
     _row("inception5a", 352, 192, 320, 160, 224, 128),
     _row("inception5b", 352, 192, 320, 192, 224, 128, pool="max")),
))

VARIANTS: dict[str, Variant] = {
    "bn_inception": Variant(_BN_INCEPTION, "BN-Inception (Inception-v2, Ioffe & Szegedy 2015, Figure 5): batch "
                                           "norm after every conv, double 3x3 in place of 5x5."),
}

# 7 is the smallest side that leaves the stem's second pool a map (7 -> 4 -> 2 -> 2 -> 1); later modules pad.
register_variants(BNInception, VARIANTS, paper=PAPER, min_size=7)
