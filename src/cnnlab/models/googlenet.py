"""Szegedy et al. 2015, Going Deeper with Convolutions (GoogLeNet, Inception v1).

The network as torchvision builds it, so its weights load unchanged: batch norm after every
convolution, the "5x5" branch with a 3x3 kernel (a known torchvision deviation, pytorch/vision#906;
``kernel_5x5=5`` builds the paper's), and auxiliary heads that pool adaptively to 4x4, so the network
also takes small images such as 28x28 Fashion-MNIST.

``reductions=False`` builds every module as the paper's "naive version" (Fig. 2a): the 1x1, 3x3 and 5x5
convolutions read the module's whole input, and the 3x3 max pool passes every input channel on, so the
output only grows ("the problem here is the depth of the output", as the notes put it). The 1x1
reductions of Fig. 2b are what keep GoogLeNet at 6.6M parameters and 1.5 GMACs; docs/zoo.md tabulates
what they save in each module.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.models._inception_base import INCEPTION_NORM, InceptionNet, conv_factory
from cnnlab.models._registry import Variant, register_converter, register_variants, remap_keys
from cnnlab.models.layers import Branches, ConvNormAct, LayerFactory, check_rate, classifier_layer

__all__ = [
    "VARIANTS",
    "GoogLeNet",
    "GoogLeNetAux",
    "GoogLeNetConfig",
    "GoogLeNetOutputs",
    "Inception",
    "InceptionSpec",
]

PAPER = "Szegedy et al. 2015, Going Deeper with Convolutions"


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
    """Inception module: 1x1 | 1x1 -> 3x3 | 1x1 -> "5x5" | 3x3 max-pool -> 1x1, concatenated.

    ``reductions=False`` is the naive module (Fig. 2a): 1x1 | 3x3 | 5x5 on the whole input | 3x3 max-pool
    passing every input channel on; ``ch3x3red``, ``ch5x5red`` and ``pool_proj`` are then unused.
    """

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
        reductions: bool = True,
    ) -> None:
        conv = conv_factory(norm_layer, act_layer)
        pool = nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True)
        if reductions:
            branches = {
                "branch1": conv(in_chs, ch1x1, 1),
                "branch2": nn.Sequential(conv(in_chs, ch3x3red, 1), conv(ch3x3red, ch3x3, 3)),
                "branch3": nn.Sequential(conv(in_chs, ch5x5red, 1), conv(ch5x5red, ch5x5, kernel_5x5)),
                "branch4": nn.Sequential(pool, conv(in_chs, pool_proj, 1)),
            }
        else:  # Fig. 2a: the big kernels see every input channel, the pool keeps them all
            branches = {
                "branch1": conv(in_chs, ch1x1, 1),
                "branch2": conv(in_chs, ch3x3, 3),
                "branch3": conv(in_chs, ch5x5, kernel_5x5),
                "branch4": pool,
            }
        super().__init__(branches)
        self.reductions = reductions
        self.out_chs = ch1x1 + ch3x3 + ch5x5 + (pool_proj if reductions else in_chs)


class GoogLeNetAux(nn.Module):
    """Auxiliary classifier: adaptive avg-pool 4x4 -> 1x1 conv (128) -> fc 1024 -> ReLU -> dropout -> fc."""

    def __init__(self, in_chs: int, num_classes: int, drop_rate: float = 0.7,
                 norm_layer: LayerFactory | None = INCEPTION_NORM, act_layer: LayerFactory = nn.ReLU) -> None:
        super().__init__()
        self.conv = ConvNormAct(in_chs, 128, 1, norm_layer=norm_layer, act_layer=act_layer)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.act = act_layer()
        self.drop = nn.Dropout(drop_rate)
        self.fc2 = classifier_layer(1024, num_classes)

    def reset(self, num_classes: int) -> None:
        self.fc2 = classifier_layer(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(x, 4)  # (B, C, 4, 4) whatever the map size: 14x14 at 224 input
        x = torch.flatten(self.conv(x), 1)  # (B, 2048)
        return self.fc2(self.drop(self.act(self.fc1(x))))


@dataclass(frozen=True)
class GoogLeNetConfig:
    """Stages of named Inception modules (pooling /2 before stages 2 and 3) and the auxiliary-head taps."""

    stages: tuple[tuple[tuple[str, InceptionSpec], ...], ...]
    aux_taps: tuple[str, str] = ("inception4a", "inception4d")  # feed aux1 and aux2
    stem_chs: int = 192


class GoogLeNet(InceptionNet):
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
        reductions: bool = True,
        norm_layer: LayerFactory | None = INCEPTION_NORM,
        act_layer: LayerFactory = nn.ReLU,
    ) -> None:
        super().__init__(num_classes, in_chans)
        if kernel_5x5 < 1 or kernel_5x5 % 2 == 0:
            raise ConfigError(f"kernel_5x5 must be an odd kernel size (3 as torchvision, 5 as the paper), "
                              f"got {kernel_5x5}")
        check_rate("aux_drop_rate", aux_drop_rate)
        self.aux_logits = aux_logits
        conv = conv_factory(norm_layer, act_layer)
        stem = nn.Sequential(OrderedDict(
            conv1=conv(in_chans, 64, 7, stride=2),
            maxpool1=nn.MaxPool2d(3, stride=2, ceil_mode=True),
            conv2=conv(64, 64, 1),
            conv3=conv(64, cfg.stem_chs, 3),
            maxpool2=nn.MaxPool2d(3, stride=2, ceil_mode=True),
        ))
        chs = cfg.stem_chs
        stages: list[nn.Module] = []
        stage_chs: list[int] = []
        tap_chs: dict[str, int] = {}
        for i, blocks in enumerate(cfg.stages):
            layers: OrderedDict[str, nn.Module] = OrderedDict()
            if i > 0:
                # torchvision pools 3x3/2 before stage 4 and 2x2/2 before stage 5 (both ceil mode)
                kernel = 3 if i < len(cfg.stages) - 1 else 2
                layers[f"maxpool{i + 2}"] = nn.MaxPool2d(kernel, stride=2, ceil_mode=True)
            for name, spec in blocks:
                block = Inception(chs, spec.ch1x1, spec.ch3x3red, spec.ch3x3, spec.ch5x5red, spec.ch5x5,
                                  spec.pool_proj, kernel_5x5, norm_layer, act_layer, reductions=reductions)
                layers[name] = block
                chs = block.out_chs
                tap_chs[name] = chs
            stages.append(nn.Sequential(layers))
            stage_chs.append(chs)
        aux = {tap: (f"aux{k + 1}", GoogLeNetAux(tap_chs[tap], num_classes, aux_drop_rate, norm_layer, act_layer))
               for k, tap in enumerate(cfg.aux_taps)} if aux_logits else {}
        self._assemble(stem, stages, stage_chs, drop_rate=drop_rate,
                       transform_input=transform_input, aux=aux)

    def _outputs(self, logits: torch.Tensor, aux: dict[str, torch.Tensor]) -> GoogLeNetOutputs:
        return GoogLeNetOutputs(logits, aux["aux2"], aux["aux1"])


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

VARIANTS: dict[str, Variant] = {
    "googlenet": Variant(_GOOGLENET, "GoogLeNet (Inception v1) as torchvision: two auxiliary heads (training mode "
                                     "only), 3x3 \"5x5\" branch.", torchvision=True),
}

register_variants(GoogLeNet, VARIANTS, paper=PAPER, min_size=15)


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
