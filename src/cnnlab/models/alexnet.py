"""Krizhevsky, Sutskever & Hinton 2012, ImageNet Classification with Deep Convolutional Neural Networks.

``alexnet`` is torchvision's single-tower form (from Krizhevsky 2014, "One weird trick ..."): five
convolutions of 64, 192, 384, 256, 256 channels (the 2012 paper split 96, 256, 384, 384, 256 over two
GPUs), overlapping 3x3/2 max pooling, adaptive average pooling to 6x6, and a 4096-4096 MLP with dropout
before each hidden layer. Its parameters and multiply-adds equal torchvision's and its weights load
through the converter below.

``lrn=True`` adds the paper's local response normalization after the first two conv-ReLU pairs
(Section 3.3: n = 5, alpha = 1e-4, beta = 0.75, k = 2). ``width_mult`` and ``hidden`` shrink the
convolutions and the classifier for small experiments on a CPU; the defaults build the standard net.

``alexnet_paper`` is the network of the 2012 paper's Section 3.5 and Figure 2, on 227x227 input (the
figure's 224 gives no whole number of 11x11 stride-4 steps; 227 gives its 55x55 maps): convolutions of 96,
256, 384, 384, 256 kernels with no padding in the first, split over two towers (``towers=2``) as the two
GPUs were. "The kernels of the second, fourth, and fifth convolutional layers are connected only to those
kernel maps in the previous layer which reside on the same GPU": those three are grouped convolutions of
two groups (48 input maps per kernel in conv2, 192 in conv4 and conv5), while conv3 and the fully
connected layers see both towers. Each tower normalizes its own maps (the response normalization sums
over neighbouring maps of the same GPU only), then overlapping 3x3 stride-2 max pools follow; dropout 0.5
acts on the outputs of the two hidden fully connected layers ("we use dropout in the first two
fully-connected layers"). Its 60,965,224 parameters are derived layer by layer in docs/zoo.md.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.models._base import FeatureInfo, ZooModel
from cnnlab.models._registry import Variant, register_converter, register_variants, remap_keys
from cnnlab.models.layers import ConvNormAct, LayerFactory, MlpHead, check_width, init_kaiming, scale_width

__all__ = ["VARIANTS", "AlexNet", "AlexNetConfig", "TowerLRN", "paper_lrn"]

PAPER = "Krizhevsky et al. 2012, ImageNet Classification with Deep Convolutional Neural Networks"


def paper_lrn(size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0) -> nn.LocalResponseNorm:
    """The paper's response normalization b = a / (k + alpha * sum of a^2 over ``size`` maps) ** beta.

    PyTorch's layer (like Caffe's) multiplies alpha by the *mean* over the window, so the paper's alpha
    is passed times ``size``; a port that passes 1e-4 directly normalizes five times more weakly.
    """
    return nn.LocalResponseNorm(size, alpha=alpha * size, beta=beta, k=k)


class TowerLRN(nn.Module):
    """Response normalization of each tower's maps on their own: the channels split into ``towers`` groups."""

    def __init__(self, towers: int = 1) -> None:
        super().__init__()
        self.towers = towers
        self.lrn = paper_lrn()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.towers == 1:
            return self.lrn(x)
        # a window at a tower's edge stops there, as a GPU saw only its own maps
        return torch.cat([self.lrn(part) for part in x.chunk(self.towers, dim=1)], dim=1)

    def extra_repr(self) -> str:
        return f"towers={self.towers}"


def _lrn_layers(enabled: bool, towers: int) -> list[tuple[str, nn.Module]]:
    return [("lrn", TowerLRN(towers))] if enabled else []


def _check_towers(towers: int, widths: tuple[int, ...]) -> None:
    if towers < 1 or any(w % towers for w in widths):
        raise ConfigError(f"towers must be a positive divisor of every conv width {widths}, got {towers}; "
                          f"use towers=2 with even widths, as the paper's two GPUs")


class AlexNet(ZooModel):
    """AlexNet: conv1 [+ LRN] + pool (stem); conv2 [+ LRN] + pool, conv3-5 + pool (stages); 6x6 pool + MLP (head)."""

    def __init__(self, cfg: AlexNetConfig, num_classes: int = 1000, in_chans: int = 3,
                 norm_layer: LayerFactory | None = None, act_layer: LayerFactory = nn.ReLU) -> None:
        super().__init__(num_classes, in_chans)
        check_width(cfg.width_mult, cfg.hidden)
        c1, c2, c3, c4, c5 = (scale_width(c, cfg.width_mult) for c in cfg.widths)
        _check_towers(cfg.towers, (c1, c2, c3, c4, c5))
        conv = partial(ConvNormAct, norm_layer=norm_layer, act_layer=act_layer)
        lrn = partial(_lrn_layers, cfg.lrn, cfg.towers)
        split = cfg.towers  # conv2, conv4 and conv5 see only their own tower's maps
        self.stem = nn.Sequential(OrderedDict([
            ("conv1", conv(in_chans, c1, 11, stride=4, padding=cfg.stem_padding)),  # (B, c1, 55, 55) at 224 / 227
            *lrn(),
            ("pool", nn.MaxPool2d(3, stride=2)),  # (B, c1, 27, 27)
        ]))
        self.stages = nn.Sequential(
            nn.Sequential(OrderedDict([
                ("conv2", conv(c1, c2, 5, padding=2, groups=split)),
                *lrn(),
                ("pool", nn.MaxPool2d(3, stride=2)),  # (B, c2, 13, 13)
            ])),
            nn.Sequential(OrderedDict([
                ("conv3", conv(c2, c3, 3)),
                ("conv4", conv(c3, c4, 3, groups=split)),
                ("conv5", conv(c4, c5, 3, groups=split)),
                ("pool", nn.MaxPool2d(3, stride=2)),  # (B, c5, 6, 6)
            ])),
        )
        self.feature_info = [FeatureInfo("stages.0", c2, 16), FeatureInfo("stages.1", c5, 32)]
        self.num_features = cfg.hidden
        self.head = MlpHead(c5, num_classes, pool_size=6, hidden=cfg.hidden, drop_rate=cfg.drop_rate,
                            drop_first=cfg.drop_first, act_layer=act_layer)
        # He init for the convs; the linears keep PyTorch's fan-in scaled default, as torchvision's AlexNet
        # does, which (unlike N(0, 0.01)) still trains when ``hidden`` is small
        init_kaiming(self, linear_std=None)


@dataclass(frozen=True)
class AlexNetConfig:
    """An AlexNet variant."""

    widths: tuple[int, int, int, int, int] = (64, 192, 384, 256, 256)  # conv1..conv5 channels
    width_mult: float = 1.0  # multiplies every conv width
    hidden: int = 4096  # width of the two hidden classifier layers
    drop_rate: float = 0.5  # dropout probability in the classifier
    drop_first: bool = True  # dropout before each hidden layer (torchvision) or after it (the paper, Caffe)
    lrn: bool = False  # the paper's local response normalization after conv1 and conv2
    towers: int = 1  # 2: conv2, conv4, conv5 and the normalization stay within each half (the paper's GPUs)
    stem_padding: int = 2  # zero padding of conv1 (torchvision 2; the paper 0, on 227x227 input)


_PAPER_NET = AlexNetConfig(widths=(96, 256, 384, 384, 256), drop_first=False, lrn=True, towers=2, stem_padding=0)

VARIANTS: dict[str, Variant] = {
    "alexnet": Variant(AlexNetConfig(), "AlexNet as torchvision builds it; ``lrn=True`` adds the paper's response "
                                        "normalization.", torchvision=True),
    # 67 is the smallest side without conv1 padding whose third max pool still has a 3x3 window
    # (67 -> 15 -> 7 -> 7 -> 3 -> 1).
    "alexnet_paper": Variant(_PAPER_NET, "AlexNet as the 2012 paper built it: two towers (conv2, conv4, conv5 "
                                         "grouped), 96-256-384-384-256 kernels, LRN per tower, 227x227 input.",
                             entry={"input_size": (3, 227, 227), "min_size": 67}),
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
