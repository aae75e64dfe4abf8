"""Iandola et al. 2016, SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and <0.5MB model size.

The network is a stack of fire modules: a 1x1 "squeeze" conv narrows the channels, then parallel 1x1 and
3x3 "expand" convs widen them again and their outputs are concatenated. There is no fully connected layer:
the head is a 1x1 conv to one map per class, ReLU and global average pooling.

- ``squeezenet1_0``: the paper's network (Table 1): 7x7/2 conv (96), fire2-fire9 with 3x3/2 max pools
  after conv1, fire4 and fire8.
- ``squeezenet1_1``: the authors' v1.1 from the SqueezeNet repository (same accuracy, 2.4x less
  computation): 3x3/2 conv (64), max pools after conv1, fire3 and fire5.
Both match torchvision's layouts (max pools in ceil mode, valid stem conv).
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.models._base import FeatureInfo, ZooModel
from cnnlab.models._registry import StateDict, Variant, register_converter, register_variants, remap_keys
from cnnlab.models.layers import ConvNormAct, LayerFactory, check_rate, conv_output_size, make_act

__all__ = [
    "VARIANTS",
    "Fire",
    "FireSpec",
    "SqueezeNet",
    "SqueezeNetConfig",
    "SqueezeNetHead",
    "min_input_size",
]

PAPER = ("Iandola et al. 2016, SqueezeNet: AlexNet-level accuracy with 50x fewer parameters "
         "and <0.5MB model size")
FIRST_FIRE = 2  # the paper numbers the modules fire2 ... fire9 (conv1 comes first)


def _pool() -> nn.MaxPool2d:
    # ceil_mode keeps the last partial window, as the Caffe original did.
    return nn.MaxPool2d(3, stride=2, ceil_mode=True)


def _final_map_size(size: int, stem_kernel: int, num_stages: int) -> int:
    """Side of the last fire module's map for a square input of ``size``; 0 when the network cannot run."""
    size = conv_output_size(size, stem_kernel, stride=2)
    for _ in range(num_stages):  # the stem's pool and one before every later stage
        size = conv_output_size(size, 3, stride=2, ceil_mode=True) if size >= 1 else 0
    return max(size, 0)


def min_input_size(stem_kernel: int, num_stages: int) -> int:
    """Smallest square input whose last fire module still has a 1x1 map."""
    return next(n for n in itertools.count(1) if _final_map_size(n, stem_kernel, num_stages) >= 1)


def _class_conv(in_chs: int, num_classes: int) -> nn.Module:
    """The 1x1 conv to one map per class, N(0, 0.01) as in the original; identity for ``num_classes=0``."""
    if num_classes == 0:
        return nn.Identity()
    conv = nn.Conv2d(in_chs, num_classes, 1)
    nn.init.normal_(conv.weight, 0.0, 0.01)
    nn.init.zeros_(conv.bias)
    return conv


def _init_weights(model: nn.Module, skip: nn.Module) -> None:
    """He-uniform convs with zero bias (torchvision's recipe), leaving ``skip`` (the class conv) as is."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and m is not skip:
            nn.init.kaiming_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


@dataclass(frozen=True)
class FireSpec:
    """Widths of one fire module."""

    squeeze: int  # s1x1: 1x1 squeeze filters
    expand1x1: int  # e1x1: 1x1 expand filters
    expand3x3: int  # e3x3: 3x3 expand filters

    @property
    def out_chs(self) -> int:
        return self.expand1x1 + self.expand3x3


class Fire(nn.Module):
    """Fire module: squeeze 1x1 -> ReLU -> [expand 1x1 -> ReLU, expand 3x3 -> ReLU] concatenated."""

    def __init__(self, in_chs: int, spec: FireSpec, norm_layer: LayerFactory | None = None,
                 act_layer: LayerFactory = nn.ReLU) -> None:
        super().__init__()
        layers = dict(norm_layer=norm_layer, act_layer=act_layer)
        self.squeeze = ConvNormAct(in_chs, spec.squeeze, 1, **layers)
        self.expand1x1 = ConvNormAct(spec.squeeze, spec.expand1x1, 1, **layers)
        self.expand3x3 = ConvNormAct(spec.squeeze, spec.expand3x3, 3, **layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.squeeze(x)  # (B, s1x1, H, W)
        return torch.cat([self.expand1x1(s), self.expand3x3(s)], 1)  # (B, e1x1 + e3x3, H, W)


class SqueezeNetHead(nn.Module):
    """Head: dropout -> 1x1 conv to classes (``fc``) -> ReLU -> global average pool -> flatten."""

    def __init__(self, in_features: int, num_classes: int, drop_rate: float = 0.5,
                 act_layer: LayerFactory = nn.ReLU) -> None:
        super().__init__()
        self.in_features = in_features
        self.num_classes = num_classes
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.fc = _class_conv(in_features, num_classes)
        self.act = make_act(act_layer)

    def reset(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.fc = _class_conv(self.in_features, num_classes)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(x)
        if not pre_logits and self.num_classes > 0:
            x = self.act(self.fc(x))  # (B, num_classes, H, W)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)  # (B, num_classes) or (B, in_features)


@dataclass(frozen=True)
class SqueezeNetConfig:
    """A SqueezeNet: stem conv, then stages of fire modules, a 3x3/2 max pool before each stage."""

    stem_chs: int
    stem_kernel: int
    stages: tuple[tuple[FireSpec, ...], ...]


class SqueezeNet(ZooModel):
    """SqueezeNet: conv1 (stride 2) - max pool -> stages of fire modules -> 1x1 conv classifier - avg pool."""

    def __init__(
        self,
        cfg: SqueezeNetConfig,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.5,
        norm_layer: LayerFactory | None = None,
        act_layer: LayerFactory = nn.ReLU,
    ) -> None:
        super().__init__(num_classes, in_chans)
        check_rate("drop_rate", drop_rate)
        self.cfg = cfg
        self.min_input_size = min_input_size(cfg.stem_kernel, len(cfg.stages))
        conv = ConvNormAct(in_chans, cfg.stem_chs, cfg.stem_kernel, stride=2, padding=0,
                           norm_layer=norm_layer, act_layer=act_layer)
        self.stem = nn.Sequential(OrderedDict([*conv.named_children(), ("pool", _pool())]))

        stages: list[nn.Sequential] = []
        self.feature_info = []
        chs, reduction, number = cfg.stem_chs, 4, FIRST_FIRE
        for i, specs in enumerate(cfg.stages):
            modules: list[tuple[str, nn.Module]] = []
            if i > 0:
                modules.append(("pool", _pool()))
                reduction *= 2
            for spec in specs:
                modules.append((f"fire{number}", Fire(chs, spec, norm_layer, act_layer)))
                chs, number = spec.out_chs, number + 1
            stages.append(nn.Sequential(OrderedDict(modules)))
            self.feature_info.append(FeatureInfo(f"stages.{i}", chs, reduction))
        self.stages = nn.Sequential(*stages)
        self.num_features = chs
        self.head = SqueezeNetHead(chs, num_classes, drop_rate, act_layer)
        _init_weights(self, skip=self.head.fc)


def _fires(*squeeze: int) -> tuple[FireSpec, ...]:
    # Both versions expand to 4x the squeeze width, half with 1x1 and half with 3x3 filters.
    return tuple(FireSpec(s, 4 * s, 4 * s) for s in squeeze)


VARIANTS: dict[str, Variant] = {
    "squeezenet1_0": Variant(SqueezeNetConfig(96, 7, (_fires(16, 16, 32), _fires(32, 48, 48, 64), _fires(64))),
                             "SqueezeNet v1.0 (paper Table 1): 1.25M parameters.", torchvision=True),
    "squeezenet1_1": Variant(SqueezeNetConfig(64, 3, (_fires(16, 16), _fires(32, 32), _fires(48, 48, 64, 64))),
                             "SqueezeNet v1.1 (authors' repository): 2.4x less computation than v1.0 at the same "
                             "accuracy.", torchvision=True),
}

register_variants(SqueezeNet, VARIANTS, paper=PAPER,
                  min_size=lambda cfg: min_input_size(cfg.stem_kernel, len(cfg.stages)))


def _torchvision_rules(cfg: SqueezeNetConfig) -> list[tuple[str, str]]:
    """torchvision's flat ``features.{index}`` (conv, relu, pool, fires and pools) onto stem and stages."""
    rules = [(r"^features\.0\.", "stem.conv."), (r"^classifier\.1\.", "head.fc.")]
    index, number = 3, FIRST_FIRE  # features.0-2 are conv1, its ReLU and the first pool
    for i, specs in enumerate(cfg.stages):
        index += 1 if i > 0 else 0  # the max pool that opens the stage
        for _ in specs:
            fire = rf"^features\.{index}\.(squeeze|expand1x1|expand3x3)\."
            rules.append((fire, rf"stages.{i}.fire{number}.\1.conv."))
            index, number = index + 1, number + 1
    return rules


@register_converter("squeezenet")
def _convert(name: str, state_dict: StateDict) -> dict[str, torch.Tensor]:
    return remap_keys(state_dict, _torchvision_rules(VARIANTS[name].cfg))
