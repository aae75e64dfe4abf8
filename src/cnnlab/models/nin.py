"""Lin, Chen & Yan 2014, Network In Network (NiN).

A NiN ("mlpconv") block is a kxk convolution followed by two 1x1 convolutions, each with a ReLU: a
small MLP slid over the image. The last block outputs one map per class and global average pooling
turns the maps into logits, so there is no fully connected layer. Like the released configurations,
the last block keeps its ReLU.

``nin`` is the ImageNet-size network of d2l.ai (Section 8.3): blocks of 96 (11x11/4), 256 (5x5),
384 (3x3) channels, each followed by a 3x3/2 max pool, dropout, then a 3x3 block of ``num_classes``
channels. ``nin_cifar`` is the paper's CIFAR-10 model as its authors released it (the Caffe model-zoo
configuration, also ported to Lasagne and pytorchcv): mlpconv blocks 192-160-96 (5x5), 192-192-192
(5x5) and 192-192-classes (3x3), 3x3/2 max then average pooling in Caffe's ceil mode, dropout 0.5
after each pool; 966,986 parameters for 10 classes.

Anatomy: the stem is the first block with its pool, each stage a further block with its pool; the head
is the class block plus global average pooling, and ``reset_classifier(0)`` leaves the average-pooled
input of the class block (``num_features`` channels).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.models._base import FeatureInfo, ZooModel
from cnnlab.models._registry import Variant, register_variants
from cnnlab.models.layers import ConvNormAct, LayerFactory, check_rate, check_width, init_kaiming, scale_width

__all__ = ["VARIANTS", "MlpConvSpec", "NiN", "NiNConfig", "NiNHead", "mlpconv_layers", "scale_widths"]

PAPER = "Lin, Chen & Yan 2014, Network In Network"


@dataclass(frozen=True)
class MlpConvSpec:
    """One mlpconv block: a ``kernel`` x ``kernel`` conv then two 1x1 convs with the given widths."""

    widths: tuple[int, int, int]  # kxk conv, first 1x1, second 1x1 (0 means num_classes)
    kernel: int
    stride: int = 1
    padding: int = 0


def mlpconv_layers(in_chs: int, spec: MlpConvSpec, num_classes: int, norm_layer: LayerFactory | None,
                   act_layer: LayerFactory) -> list[tuple[str, nn.Module]]:
    """The three conv-[norm]-act layers of a block, named as the released Caffe model (conv, cccp1, cccp2)."""
    w0, w1, w2 = (w or num_classes for w in spec.widths)
    conv = partial(ConvNormAct, norm_layer=norm_layer, act_layer=act_layer)
    return [
        ("conv", conv(in_chs, w0, spec.kernel, spec.stride, spec.padding)),
        ("cccp1", conv(w0, w1, 1)),
        ("cccp2", conv(w1, w2, 1)),
    ]


def _pool(kind: str, ceil_mode: bool) -> nn.Module:
    if kind == "max":
        return nn.MaxPool2d(3, stride=2, ceil_mode=ceil_mode)
    return nn.AvgPool2d(3, stride=2, ceil_mode=ceil_mode)


class NiNHead(nn.Module):
    """Head: class mlpconv block (kxk conv, 1x1, 1x1 to num_classes maps) -> global average pool."""

    def __init__(self, in_chs: int, spec: MlpConvSpec, num_classes: int, norm_layer: LayerFactory | None,
                 act_layer: LayerFactory) -> None:
        super().__init__()
        self.in_chs = in_chs
        self.spec = spec
        self.norm_layer = norm_layer
        self.act_layer = act_layer
        self.fc = self._class_block(num_classes)

    def _class_block(self, num_classes: int) -> nn.Module:
        if num_classes <= 0:
            return nn.Identity()
        layers = mlpconv_layers(self.in_chs, self.spec, num_classes, self.norm_layer, self.act_layer)
        return nn.Sequential(OrderedDict(layers))

    def reset(self, num_classes: int) -> None:
        self.fc = self._class_block(num_classes)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if not pre_logits:
            x = self.fc(x)  # (B, num_classes, H, W)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)  # (B, C)


class NiN(ZooModel):
    """NiN: mlpconv block + pool (stem), mlpconv blocks + pool (stages), class block + GAP (head)."""

    def __init__(self, cfg: NiNConfig, num_classes: int = 1000, in_chans: int = 3,
                 norm_layer: LayerFactory | None = None, act_layer: LayerFactory = nn.ReLU) -> None:
        super().__init__(num_classes, in_chans)
        check_rate("drop_rate", cfg.drop_rate)
        cfg = scale_widths(cfg)
        parts: list[nn.Module] = []
        self.feature_info = []
        chs, reduction = in_chans, 1
        for i, (spec, pool, drop) in enumerate(zip(cfg.blocks, cfg.pools, cfg.drops)):
            layers = mlpconv_layers(chs, spec, num_classes, norm_layer, act_layer)
            layers.append(("pool", _pool(pool, cfg.ceil_mode)))
            if drop:
                layers.append(("drop", nn.Dropout(cfg.drop_rate)))
            parts.append(nn.Sequential(OrderedDict(layers)))
            chs = spec.widths[2]
            reduction *= spec.stride * 2
            if i > 0:
                self.feature_info.append(FeatureInfo(f"stages.{i - 1}", chs, reduction))
        self.stem = parts[0]
        self.stages = nn.Sequential(*parts[1:])
        self.num_features = chs
        self.head = NiNHead(chs, cfg.classifier, num_classes, norm_layer, act_layer)
        init_kaiming(self)


@dataclass(frozen=True)
class NiNConfig:
    """A NiN: feature blocks with the pool (and dropout) after each, and the class block."""

    blocks: tuple[MlpConvSpec, ...]  # the first is the stem
    pools: tuple[str, ...]  # 3x3/2 pooling after each block: "max" or "avg"
    drops: tuple[bool, ...]  # dropout after each block's pool
    classifier: MlpConvSpec  # the class block; its last width is num_classes
    ceil_mode: bool = False  # Caffe's pooling rounds the output size up
    drop_rate: float = 0.5
    width_mult: float = 1.0  # multiplies every hidden width (the class maps stay num_classes)


def scale_widths(cfg: NiNConfig) -> NiNConfig:
    """The config with every hidden width multiplied by its ``width_mult`` (then 1.0; the class width stays)."""
    check_width(cfg.width_mult)

    def scaled(spec: MlpConvSpec) -> MlpConvSpec:
        return replace(spec, widths=tuple(scale_width(w, cfg.width_mult) if w else 0 for w in spec.widths))

    return replace(cfg, blocks=tuple(scaled(b) for b in cfg.blocks), classifier=scaled(cfg.classifier),
                   width_mult=1.0)


VARIANTS: dict[str, Variant] = {
    "nin": Variant(NiNConfig(
        blocks=(MlpConvSpec((96, 96, 96), 11, stride=4), MlpConvSpec((256, 256, 256), 5, padding=2),
                MlpConvSpec((384, 384, 384), 3, padding=1)),
        pools=("max", "max", "max"),
        drops=(False, False, True),
        classifier=MlpConvSpec((0, 0, 0), 3, padding=1),
    ), "NiN for ImageNet-size inputs as in d2l.ai: 96 (11x11/4), 256 (5x5), 384 (3x3), classes (3x3).",
        # 67 is the smallest side whose third max pool still has a 3x3 window (67 -> 15 -> 7 -> 3 -> 1)
        entry={"input_size": (3, 224, 224), "min_size": 67, "num_classes": 1000}),
    "nin_cifar": Variant(NiNConfig(
        blocks=(MlpConvSpec((192, 160, 96), 5, padding=2), MlpConvSpec((192, 192, 192), 5, padding=2)),
        pools=("max", "avg"),
        drops=(True, True),
        classifier=MlpConvSpec((192, 192, 0), 3, padding=1),
        ceil_mode=True,
    ), "The paper's CIFAR-10 NiN: mlpconv 192-160-96 (5x5), 192-192-192 (5x5), 192-192-classes (3x3).",
        # ceil-mode pooling takes a 2x2 map, so 4 -> 2 -> 1 is the smallest input
        entry={"input_size": (3, 32, 32), "min_size": 4, "num_classes": 10}),
}

register_variants(NiN, VARIANTS, paper=PAPER)
