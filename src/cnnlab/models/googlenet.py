"""Szegedy et al. 2015, Going Deeper with Convolutions (GoogLeNet, Inception v1).

The network as torchvision builds it, so its weights load unchanged: batch norm after every
convolution, the "5x5" branch with a 3x3 kernel (a known torchvision deviation, pytorch/vision#906;
``kernel_5x5=5`` builds the paper's), and auxiliary heads that pool adaptively to 4x4, so the network
also takes small images such as 28x28 Fashion-MNIST.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.models._base import FeatureInfo, ZooModel
from cnnlab.models._registry import register_converter, register_model, remap_keys
from cnnlab.models.layers import Branches, ClassifierHead, ConvNormAct, LayerFactory, init_kaiming

__all__ = [
    "INCEPTION_NORM",
    "GoogLeNet",
    "GoogLeNetAux",
    "GoogLeNetConfig",
    "GoogLeNetOutputs",
    "Inception",
    "InceptionSpec",
    "googlenet",
    "to_inception_range",
]

# Google's Inception weights were trained with batch-norm epsilon 1e-3 (torchvision's BasicConv2d keeps it).
INCEPTION_NORM = partial(nn.BatchNorm2d, eps=1e-3)

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def to_inception_range(x: torch.Tensor) -> torch.Tensor:
    """Turn ImageNet mean/std-normalised RGB into the (x - 0.5) / 0.5 scaling Google's weights expect."""
    scale = x.new_tensor([s / 0.5 for s in _IMAGENET_STD]).view(1, 3, 1, 1)
    shift = x.new_tensor([(m - 0.5) / 0.5 for m in _IMAGENET_MEAN]).view(1, 3, 1, 1)
    return x * scale + shift


def check_transform_input(transform_input: bool, in_chans: int) -> None:
    """Reject ``transform_input`` for inputs that are not 3-channel RGB."""
    if transform_input and in_chans != 3:
        raise ValueError(f"transform_input re-normalises the three ImageNet RGB channels, "
                         f"so it needs in_chans=3, got {in_chans}")


class GoogLeNetOutputs(NamedTuple):
    """Training-mode outputs of GoogLeNet with auxiliary heads, in torchvision's order."""

    logits: torch.Tensor
    aux_logits2: torch.Tensor
    aux_logits1: torch.Tensor


@dataclass(frozen=True)
class InceptionSpec:
    """Branch widths of one Inception module (a row of the paper's Table 1)."""

    ch1x1: int
    ch3x3red: int
    ch3x3: int
    ch5x5red: int
    ch5x5: int
    pool_proj: int

    @property
    def out_chs(self) -> int:
        return self.ch1x1 + self.ch3x3 + self.ch5x5 + self.pool_proj


class Inception(Branches):
    """Inception module: 1x1 | 1x1 -> 3x3 | 1x1 -> "5x5" | 3x3 max-pool -> 1x1, concatenated."""

    def __init__(
        self,
        in_chs: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
        kernel_5x5: int = 3,
        norm_layer: LayerFactory | None = INCEPTION_NORM,
        act_layer: LayerFactory = nn.ReLU,
    ) -> None:
        conv = partial(ConvNormAct, norm_layer=norm_layer, act_layer=act_layer)
        super().__init__({
            "branch1": conv(in_chs, ch1x1, 1),
            "branch2": nn.Sequential(conv(in_chs, ch3x3red, 1), conv(ch3x3red, ch3x3, 3)),
            "branch3": nn.Sequential(conv(in_chs, ch5x5red, 1), conv(ch5x5red, ch5x5, kernel_5x5)),
            "branch4": nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                                     conv(in_chs, pool_proj, 1)),
        })
        self.out_chs = ch1x1 + ch3x3 + ch5x5 + pool_proj


class GoogLeNetAux(nn.Module):
    """Auxiliary classifier: adaptive avg-pool 4x4 -> 1x1 conv (128) -> fc 1024 -> ReLU -> dropout -> fc."""

    def __init__(self, in_chs: int, num_classes: int, drop_rate: float = 0.7,
                 norm_layer: LayerFactory | None = INCEPTION_NORM, act_layer: LayerFactory = nn.ReLU) -> None:
        super().__init__()
        self.conv = ConvNormAct(in_chs, 128, 1, norm_layer=norm_layer, act_layer=act_layer)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.act = act_layer()
        self.drop = nn.Dropout(drop_rate)
        self.fc2 = _classifier(1024, num_classes)

    def reset(self, num_classes: int) -> None:
        self.fc2 = _classifier(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(x, 4)  # (B, C, 4, 4) whatever the map size: 14x14 at 224 input
        x = torch.flatten(self.conv(x), 1)  # (B, 2048)
        return self.fc2(self.drop(self.act(self.fc1(x))))


def _classifier(in_features: int, num_classes: int) -> nn.Module:
    return nn.Linear(in_features, num_classes) if num_classes > 0 else nn.Identity()


@dataclass(frozen=True)
class GoogLeNetConfig:
    """Stages of named Inception modules (pooling /2 before stages 2 and 3) and the auxiliary-head taps."""

    stages: tuple[tuple[tuple[str, InceptionSpec], ...], ...]
    aux_taps: tuple[str, str] = ("inception4a", "inception4d")  # feed aux1 and aux2
    stem_chs: int = 192


class GoogLeNet(ZooModel):
    """GoogLeNet: stem (7x7/2, pool, 1x1, 3x3, pool) -> 3 stages of Inception modules -> pool, dropout, fc."""

    def __init__(
        self,
        cfg: GoogLeNetConfig,
        num_classes: int = 1000,
        in_chans: int = 3,
        aux_logits: bool = True,
        transform_input: bool = False,
        drop_rate: float = 0.2,
        aux_drop_rate: float = 0.7,
        kernel_5x5: int = 3,
        norm_layer: LayerFactory | None = INCEPTION_NORM,
        act_layer: LayerFactory = nn.ReLU,
    ) -> None:
        super().__init__()
        check_transform_input(transform_input, in_chans)
        if kernel_5x5 < 1 or kernel_5x5 % 2 == 0:
            raise ValueError(f"kernel_5x5 must be an odd kernel size (3 as torchvision, 5 as the paper), "
                             f"got {kernel_5x5}")
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.aux_logits = aux_logits
        self.transform_input = transform_input
        conv = partial(ConvNormAct, norm_layer=norm_layer, act_layer=act_layer)
        self.stem = nn.Sequential(OrderedDict(
            conv1=conv(in_chans, 64, 7, stride=2),
            maxpool1=nn.MaxPool2d(3, stride=2, ceil_mode=True),
            conv2=conv(64, 64, 1),
            conv3=conv(64, cfg.stem_chs, 3),
            maxpool2=nn.MaxPool2d(3, stride=2, ceil_mode=True),
        ))
        chs, reduction = cfg.stem_chs, 8
        stages: list[nn.Module] = []
        self.feature_info = []
        tap_chs: dict[str, int] = {}
        for i, blocks in enumerate(cfg.stages):
            layers: OrderedDict[str, nn.Module] = OrderedDict()
            if i > 0:
                # torchvision pools 3x3/2 before stage 4 and 2x2/2 before stage 5 (both ceil mode)
                kernel = 3 if i < len(cfg.stages) - 1 else 2
                layers[f"maxpool{i + 2}"] = nn.MaxPool2d(kernel, stride=2, ceil_mode=True)
                reduction *= 2
            for name, spec in blocks:
                layers[name] = Inception(chs, spec.ch1x1, spec.ch3x3red, spec.ch3x3, spec.ch5x5red,
                                         spec.ch5x5, spec.pool_proj, kernel_5x5, norm_layer, act_layer)
                chs = spec.out_chs
                tap_chs[name] = chs
            stages.append(nn.Sequential(layers))
            self.feature_info.append(FeatureInfo(f"stages.{i}", chs, reduction))
        self.stages = nn.Sequential(*stages)
        self.num_features = chs
        self.aux_taps = {tap: f"aux{k + 1}" for k, tap in enumerate(cfg.aux_taps)} if aux_logits else {}
        for tap, head_name in self.aux_taps.items():
            aux_head = GoogLeNetAux(tap_chs[tap], num_classes, aux_drop_rate, norm_layer, act_layer)
            self.add_module(head_name, aux_head)
        self.head = ClassifierHead(chs, num_classes, drop_rate=drop_rate)
        init_kaiming(self)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return to_inception_range(x) if self.transform_input else x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(self._prepare(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor | GoogLeNetOutputs:
        """Logits; in training mode with auxiliary heads, ``GoogLeNetOutputs(logits, aux2, aux1)``."""
        if not (self.training and self.aux_taps):
            return self.forward_head(self.forward_features(x))
        x = self.stem(self._prepare(x))
        aux: dict[str, torch.Tensor] = {}
        for stage in self.stages:
            for name, block in stage.named_children():
                x = block(x)
                if name in self.aux_taps:
                    head_name = self.aux_taps[name]
                    aux[head_name] = getattr(self, head_name)(x)
        return GoogLeNetOutputs(self.forward_head(x), aux["aux2"], aux["aux1"])

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the main and auxiliary classifiers; ``num_classes=0`` makes them return features."""
        super().reset_classifier(num_classes)
        for head_name in self.aux_taps.values():
            getattr(self, head_name).reset(num_classes)


def _stage(*rows: tuple[str, int, int, int, int, int, int]) -> tuple[tuple[str, InceptionSpec], ...]:
    return tuple((name, InceptionSpec(*widths)) for name, *widths in rows)


# Table 1 of the paper: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
_GOOGLENET = GoogLeNetConfig(stages=(
    _stage(("inception3a", 64, 96, 128, 16, 32, 32),
           ("inception3b", 128, 128, 192, 32, 96, 64)),
    _stage(("inception4a", 192, 96, 208, 16, 48, 64),
           ("inception4b", 160, 112, 224, 24, 64, 64),
           ("inception4c", 128, 128, 256, 24, 64, 64),
           ("inception4d", 112, 144, 288, 32, 64, 64),
           ("inception4e", 256, 160, 320, 32, 128, 128)),
    _stage(("inception5a", 256, 160, 320, 32, 128, 128),
           ("inception5b", 384, 192, 384, 48, 128, 128)),
))

VARIANTS: dict[str, GoogLeNetConfig] = {"googlenet": _GOOGLENET}


@register_model(input_size=(3, 224, 224), min_size=15, torchvision="googlenet",
                paper="Szegedy et al. 2015, Going Deeper with Convolutions")
def googlenet(
    num_classes: int = 1000,
    in_chans: int = 3,
    aux_logits: bool = True,
    transform_input: bool = False,
    drop_rate: float = 0.2,
    aux_drop_rate: float = 0.7,
    kernel_5x5: int = 3,
    norm_layer: LayerFactory | None = INCEPTION_NORM,
    act_layer: LayerFactory = nn.ReLU,
) -> GoogLeNet:
    """GoogLeNet (Inception v1) as torchvision: two auxiliary heads (training mode only), 3x3 "5x5" branch."""
    return GoogLeNet(VARIANTS["googlenet"], num_classes=num_classes, in_chans=in_chans, aux_logits=aux_logits,
                     transform_input=transform_input, drop_rate=drop_rate, aux_drop_rate=aux_drop_rate,
                     kernel_5x5=kernel_5x5, norm_layer=norm_layer, act_layer=act_layer)


@register_converter("googlenet")
def _convert(name: str, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision's flat module names -> stem / stages / head; aux1 and aux2 keep their names."""
    return remap_keys(state_dict, [
        (r"^(conv[123])\.", r"stem.\1."),
        (r"^(inception3[ab])\.", r"stages.0.\1."),
        (r"^(inception4[a-e])\.", r"stages.1.\1."),
        (r"^(inception5[ab])\.", r"stages.2.\1."),
        (r"^fc\.", "head.fc."),
    ])
