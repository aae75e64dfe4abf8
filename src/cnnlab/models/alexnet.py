"""Krizhevsky, Sutskever & Hinton 2012, ImageNet Classification with Deep Convolutional Neural Networks.

``alexnet`` is torchvision's single-tower form (from Krizhevsky 2014, "One weird trick ..."): five
convolutions of 64, 192, 384, 256, 256 channels (the 2012 paper split 96, 256, 384, 384, 256 over two
GPUs), overlapping 3x3/2 max pooling, adaptive average pooling to 6x6, and a 4096-4096 MLP with dropout
before each hidden layer. Its parameters and multiply-adds equal torchvision's and its weights load
through the converter below.

``lrn=True`` adds the paper's local response normalization after the first two conv-ReLU pairs
(Section 3.3: n = 5, alpha = 1e-4, beta = 0.75, k = 2). ``width_mult`` and ``hidden`` shrink the
convolutions and the classifier for small experiments on a CPU; the defaults build the standard net.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from cnnlab.models._base import FeatureInfo, ZooModel
from cnnlab.models._registry import Variant, register_converter, register_variants, remap_keys
from cnnlab.models.layers import ConvNormAct, LayerFactory, MlpHead, check_width, init_kaiming, scale_width

__all__ = ["VARIANTS", "AlexNet", "AlexNetConfig", "paper_lrn"]

PAPER = "Krizhevsky et al. 2012, ImageNet Classification with Deep Convolutional Neural Networks"


def paper_lrn(size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0) -> nn.LocalResponseNorm:
    """The paper's response normalization b = a / (k + alpha * sum of a^2 over ``size`` maps) ** beta.

    PyTorch's layer (like Caffe's) multiplies alpha by the *mean* over the window, so the paper's alpha
    is passed times ``size``; a port that passes 1e-4 directly normalizes five times more weakly.
    """
    return nn.LocalResponseNorm(size, alpha=alpha * size, beta=beta, k=k)


def _lrn_layers(enabled: bool) -> list[tuple[str, nn.Module]]:
    return [("lrn", paper_lrn())] if enabled else []


class AlexNet(ZooModel):
    """AlexNet: conv1 + pool (stem); conv2 + pool, conv3-5 + pool (stages); 6x6 pool + MLP (head)."""

    def __init__(self, cfg: AlexNetConfig, num_classes: int = 1000, in_chans: int = 3,
                 norm_layer: LayerFactory | None = None, act_layer: LayerFactory = nn.ReLU) -> None:
        super().__init__(num_classes, in_chans)
        check_width(cfg.width_mult, cfg.hidden)
        c1, c2, c3, c4, c5 = (scale_width(c, cfg.width_mult) for c in cfg.widths)
        conv = partial(ConvNormAct, norm_layer=norm_layer, act_layer=act_layer)
        lrn = partial(_lrn_layers, cfg.lrn)
        self.stem = nn.Sequential(OrderedDict([
            ("conv1", conv(in_chans, c1, 11, stride=4, padding=2)),  # (B, 64, 55, 55) at 224
            *lrn(),
            ("pool", nn.MaxPool2d(3, stride=2)),  # (B, 64, 27, 27)
        ]))
        self.stages = nn.Sequential(
            nn.Sequential(OrderedDict([
                ("conv2", conv(c1, c2, 5, padding=2)),
                *lrn(),
                ("pool", nn.MaxPool2d(3, stride=2)),  # (B, 192, 13, 13)
            ])),
            nn.Sequential(OrderedDict([
                ("conv3", conv(c2, c3, 3)),
                ("conv4", conv(c3, c4, 3)),
                ("conv5", conv(c4, c5, 3)),
                ("pool", nn.MaxPool2d(3, stride=2)),  # (B, 256, 6, 6)
            ])),
        )
        self.feature_info = [FeatureInfo("stages.0", c2, 16), FeatureInfo("stages.1", c5, 32)]
        self.num_features = cfg.hidden
        self.head = MlpHead(c5, num_classes, pool_size=6, hidden=cfg.hidden, drop_rate=cfg.drop_rate,
                            drop_first=True, act_layer=act_layer)
        # He init for the convs; the linears keep PyTorch's fan-in scaled default, as torchvision's AlexNet
        # does, which (unlike N(0, 0.01)) still trains when ``hidden`` is small
        init_kaiming(self, linear_std=None)


@dataclass(frozen=True)
class AlexNetConfig:
    """An AlexNet variant."""

    widths: tuple[int, int, int, int, int] = (64, 192, 384, 256, 256)  # conv1..conv5 channels
    width_mult: float = 1.0  # multiplies every conv width
    hidden: int = 4096  # width of the two hidden classifier layers
    drop_rate: float = 0.5  # dropout before each hidden classifier layer
    lrn: bool = False  # the paper's local response normalization after conv1 and conv2


VARIANTS: dict[str, Variant] = {
    "alexnet": Variant(AlexNetConfig(), "AlexNet as torchvision builds it; ``lrn=True`` adds the paper's response "
                                        "normalization.", torchvision=True),
}

# 63 is the smallest side whose third max pool still has a 3x3 window (63 -> 15 -> 7 -> 3 -> 1).
register_variants(AlexNet, VARIANTS, paper=PAPER, min_size=63)


@register_converter("alexnet")
def _convert(name: str, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision's features.N / classifier.N -> stem / stages / head."""
    return remap_keys(state_dict, [
        (r"^features\.0\.", "stem.conv1.conv."),
        (r"^features\.3\.", "stages.0.conv2.conv."),
        (r"^features\.6\.", "stages.1.conv3.conv."),
        (r"^features\.8\.", "stages.1.conv4.conv."),
        (r"^features\.10\.", "stages.1.conv5.conv."),
        (r"^classifier\.1\.", "head.fc1."),
        (r"^classifier\.4\.", "head.fc2."),
        (r"^classifier\.6\.", "head.fc."),
    ])
