"""Simonyan & Zisserman 2015, Very Deep Convolutional Networks for Large-Scale Image Recognition (VGG).

Configurations A, B, D and E of the paper's Table 1 (``vgg11``, ``vgg13``, ``vgg16``, ``vgg19``) and
their batch-normalized forms (``_bn``), as torchvision builds them: 3x3 convolutions in five blocks of
64, 128, 256, 512, 512 channels, each block closed by a 2x2 max pool, then adaptive average pooling to
7x7 and a 4096-4096 MLP with dropout. The ``_bn`` convolutions keep their bias, as torchvision's do,
so parameter counts and weights match torchvision's exactly.

Anatomy: the stem is the first conv (conv-[BN]-ReLU at full resolution); stage i holds the rest of
block i and its max pool, so the stages end at strides 2, 4, 8, 16, 32. ``width_mult`` and ``hidden``
shrink the convolutions and the classifier for small experiments; the defaults build the standard nets.

``head="gap"`` replaces the three fully connected layers by global average pooling and one linear
classifier, as the notes say later work found possible ("these FC layers can be removed with no
performance downgrade, significantly reducing the number of necessary parameters"; GoogLeNet and ResNet
end this way): VGG-16 keeps its 14,714,688 convolution parameters and drops from 138,357,544 to
15,227,688 (the classifier 512 x 1000 + 1000 in place of 123,642,856).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from cnnlab.models._base import FeatureInfo, ZooModel
from cnnlab.models._registry import Variant, register_converter, register_variants, remap_keys
from cnnlab.models.layers import (
    ClassifierHead,
    ConvNormAct,
    LayerFactory,
    MlpHead,
    check_choice,
    check_width,
    init_kaiming,
    scale_width,
)

__all__ = ["VARIANTS", "VGG", "VGGConfig", "torchvision_key_rules"]

PAPER = "Simonyan & Zisserman 2015, Very Deep Convolutional Networks for Large-Scale Image Recognition"


def conv_paths(depths: tuple[int, ...]) -> list[str]:
    """Our module path of every 3x3 conv block, in network order: the stem, then stage by stage."""
    paths = ["stem"]
    for s, depth in enumerate(depths):
        first = 1 if s == 0 else 0  # block 1's first conv is the stem
        paths += [f"stages.{s}.{j}" for j in range(depth - first)]
    return paths


class VGG(ZooModel):
    """VGG: first 3x3 conv (stem); 5 stages of 3x3 conv-[BN]-ReLU ending in 2x2 max pool; MLP (or GAP) head."""

    def __init__(self, cfg: VGGConfig, num_classes: int = 1000, in_chans: int = 3,
                 norm_layer: LayerFactory | None = None, act_layer: LayerFactory = nn.ReLU) -> None:
        super().__init__(num_classes, in_chans)
        check_width(cfg.width_mult, cfg.hidden)
        check_choice("head", cfg.head, HEADS)
        widths = [scale_width(c, cfg.width_mult) for c in cfg.widths]
        # torchvision keeps the conv bias even before batch norm
        conv = partial(ConvNormAct, kernel_size=3, bias=True, norm_layer=norm_layer, act_layer=act_layer)
        self.stem = conv(in_chans, widths[0])  # (B, 64, H, W)
        stages: list[nn.Module] = []
        self.feature_info = []
        chs = widths[0]
        for s, (depth, width) in enumerate(zip(cfg.depths, widths)):
            first = 1 if s == 0 else 0
            blocks: list[nn.Module] = []
            for _ in range(depth - first):
                blocks.append(conv(chs, width))
                chs = width
            blocks.append(nn.MaxPool2d(2, stride=2))  # (B, width, H / 2**(s+1), W / 2**(s+1))
            stages.append(nn.Sequential(*blocks))
            self.feature_info.append(FeatureInfo(f"stages.{s}", width, 2 ** (s + 1)))
        self.stages = nn.Sequential(*stages)
        if cfg.head == "gap":  # global average pool -> dropout -> linear: no hidden FC layers
            self.num_features = chs
            self.head = ClassifierHead(chs, num_classes, drop_rate=cfg.drop_rate)
        else:
            self.num_features = cfg.hidden
            self.head = MlpHead(chs, num_classes, pool_size=7, hidden=cfg.hidden, drop_rate=cfg.drop_rate,
                                drop_first=False, act_layer=act_layer)
        init_kaiming(self)


@dataclass(frozen=True)
class VGGConfig:
    """A VGG configuration: convs per block (the paper's Table 1 columns) and widths."""

    depths: tuple[int, int, int, int, int]  # 3x3 convs in each of the five blocks
    widths: tuple[int, int, int, int, int] = (64, 128, 256, 512, 512)
    width_mult: float = 1.0  # multiplies every conv width
    hidden: int = 4096  # width of the two hidden classifier layers
    drop_rate: float = 0.5  # dropout after each hidden classifier layer ("gap": before the classifier)
    head: str = "mlp"  # "mlp": 7x7 pool, 4096-4096 MLP (the paper); "gap": global average pool, one linear


HEADS = ("mlp", "gap")

# The paper's Table 1: configurations A, B, D, E.
_DEPTHS = {
    "vgg11": ((1, 1, 2, 2, 2), "VGG-11 (configuration A)"),
    "vgg13": ((2, 2, 2, 2, 2), "VGG-13 (configuration B)"),
    "vgg16": ((2, 2, 3, 3, 3), "VGG-16 (configuration D)"),
    "vgg19": ((2, 2, 4, 4, 4), "VGG-19 (configuration E)"),
}
# The _bn variants are the same configurations with batch norm after every conv (norm_layer's default).
VARIANTS: dict[str, Variant] = {
    **{name: Variant(VGGConfig(depths), f"{label}.", torchvision=True) for name, (depths, label) in _DEPTHS.items()},
    **{f"{name}_bn": Variant(VGGConfig(depths), f"{label.split(' ')[0]} with batch norm after every conv.",
                             torchvision=True, defaults={"norm_layer": nn.BatchNorm2d})
       for name, (depths, label) in _DEPTHS.items()},
}

# 32 is the smallest side that survives the five 2x2 pools (32 -> 1).
register_variants(VGG, VARIANTS, paper=PAPER, min_size=32)


def torchvision_key_rules(depths: tuple[int, ...], batch_norm: bool) -> list[tuple[str, str]]:
    """Regex rules from torchvision's ``features.N`` / ``classifier.N`` keys to ours."""
    rules: list[tuple[str, str]] = []
    index = 0
    paths = iter(conv_paths(depths))
    for depth in depths:
        for _ in range(depth):
            path = next(paths)
            rules.append((rf"^features\.{index}\.", f"{path}.conv."))
            index += 1
            if batch_norm:
                rules.append((rf"^features\.{index}\.", f"{path}.bn."))
                index += 1
            index += 1  # ReLU
        index += 1  # max pool
    rules += [(r"^classifier\.0\.", "head.fc1."), (r"^classifier\.3\.", "head.fc2."),
              (r"^classifier\.6\.", "head.fc.")]
    return rules


@register_converter("vgg")
def _convert(name: str, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision's features.N (conv, [bn], relu, ..., pool) / classifier.N -> stem / stages / head."""
    # torchvision's *_bn builders put a BatchNorm2d after every conv, shifting the features.N indices
    return remap_keys(state_dict, torchvision_key_rules(VARIANTS[name].cfg.depths, name.endswith("_bn")))
