"""Zeiler & Fergus 2014, Visualizing and Understanding Convolutional Networks (ZFNet, ILSVRC 2013).

The network of the paper's Figure 3, AlexNet with its first layers re-sized after the visualizations
showed aliasing and dead filters (Section 4.1): a 7x7 stride-2 first layer instead of 11x11 stride 4, and
a stride-2 second layer. On a 224x224 image:

    conv1  96 x 7x7 / 2, pad 1   -> 110x110   ReLU, 3x3 / 2 max pool -> 55x55, contrast normalization
    conv2 256 x 5x5 / 2          ->  26x26    ReLU, 3x3 / 2 max pool -> 13x13, contrast normalization
    conv3 384 x 3x3, pad 1       ->  13x13    ReLU
    conv4 384 x 3x3, pad 1       ->  13x13    ReLU
    conv5 256 x 3x3, pad 1       ->  13x13    ReLU, 3x3 / 2 max pool -> 6x6
    fc6 4096, fc7 4096 (ReLU, dropout 0.5), fc8 C classes

The figure's map sizes fix what it leaves out: conv1 pads one pixel (224 -> 110) and the pools round up
(110 -> 55, 26 -> 13), as Caffe's pooling does. The layers are dense (one GPU; Section 3: "similar to
Krizhevsky et al., except the sparse connections in layers 3, 4, 5 are replaced with dense connections").
"Contrast normalized across feature maps" is taken to be AlexNet's response normalization with its
constants (the paper names none). Dropout 0.5 on fc6 and fc7 (Section 3). 62,357,608 parameters at 1000
classes, derived layer by layer in docs/zoo.md.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from functools import partial

from torch import nn

from cnnlab.models._base import FeatureInfo, ZooModel
from cnnlab.models._registry import Variant, register_variants
from cnnlab.models.alexnet import paper_lrn
from cnnlab.models.layers import ConvNormAct, LayerFactory, MlpHead, check_width, init_kaiming, scale_width

__all__ = ["VARIANTS", "ZFNet", "ZFNetConfig"]

PAPER = "Zeiler & Fergus 2014, Visualizing and Understanding Convolutional Networks"


@dataclass(frozen=True)
class ZFNetConfig:
    """A ZFNet variant: conv widths, classifier width, dropout and the contrast normalization."""

    widths: tuple[int, int, int, int, int] = (96, 256, 384, 384, 256)  # conv1..conv5 channels
    width_mult: float = 1.0  # multiplies every conv width
    hidden: int = 4096  # width of the two hidden classifier layers
    drop_rate: float = 0.5  # dropout on the outputs of fc6 and fc7
    lrn: bool = True  # contrast normalization across maps after the first two pools


def _pool() -> nn.MaxPool2d:
    # ceil mode gives Figure 3's sizes: 110 -> 55 and 26 -> 13
    return nn.MaxPool2d(3, stride=2, ceil_mode=True)


class ZFNet(ZooModel):
    """ZFNet: conv1 7x7/2 + pool + LRN (stem); conv2 5x5/2 + pool + LRN, conv3-5 + pool (stages); MLP (head)."""

    def __init__(self, cfg: ZFNetConfig, num_classes: int = 1000, in_chans: int = 3,
                 norm_layer: LayerFactory | None = None, act_layer: LayerFactory = nn.ReLU) -> None:
        super().__init__(num_classes, in_chans)
        check_width(cfg.width_mult, cfg.hidden)
        c1, c2, c3, c4, c5 = (scale_width(c, cfg.width_mult) for c in cfg.widths)
        conv = partial(ConvNormAct, norm_layer=norm_layer, act_layer=act_layer)
        norm = [("lrn", paper_lrn())] if cfg.lrn else []
        self.stem = nn.Sequential(OrderedDict([
            ("conv1", conv(in_chans, c1, 7, stride=2, padding=1)),  # (B, 96, 110, 110) at 224
            ("pool", _pool()),  # (B, 96, 55, 55)
            *norm,
        ]))
        self.stages = nn.Sequential(
            nn.Sequential(OrderedDict([
                ("conv2", conv(c1, c2, 5, stride=2, padding=0)),  # (B, 256, 26, 26)
                ("pool", _pool()),  # (B, 256, 13, 13)
                *[(name, paper_lrn()) for name, _ in norm],
            ])),
            nn.Sequential(OrderedDict([
                ("conv3", conv(c2, c3, 3)),
                ("conv4", conv(c3, c4, 3)),
                ("conv5", conv(c4, c5, 3)),
                ("pool", _pool()),  # (B, 256, 6, 6)
            ])),
        )
        self.feature_info = [FeatureInfo("stages.0", c2, 16), FeatureInfo("stages.1", c5, 32)]
        self.num_features = cfg.hidden
        self.head = MlpHead(c5, num_classes, pool_size=6, hidden=cfg.hidden, drop_rate=cfg.drop_rate,
                            drop_first=False, act_layer=act_layer)
        # He init for the convs; the linears keep PyTorch's fan-in scaled default (as AlexNet here)
        init_kaiming(self, linear_std=None)


VARIANTS: dict[str, Variant] = {
    "zfnet": Variant(ZFNetConfig(), "ZFNet (Zeiler & Fergus Fig. 3): 7x7/2 and 5x5/2 first layers, "
                                    "96-256-384-384-256 kernels, two 4096 FC layers."),
}

# 47 is the smallest side that leaves every pool an output (47 -> 22 -> 11 -> 4 -> 2 -> 2 -> 1): a ceil-mode
# pool takes a window hanging over the edge as long as it starts inside the map.
register_variants(ZFNet, VARIANTS, paper=PAPER, min_size=47)
