"""Inception v3 (Szegedy et al. 2016) and Inception-v4 / Inception-ResNet-v2 (Szegedy et al. 2017).

Papers: "Rethinking the Inception Architecture for Computer Vision" (2016) and "Inception-v4,
Inception-ResNet and the Impact of Residual Connections on Learning" (2017).

``inception_v3`` is torchvision's network (its weights load through the converter); its auxiliary head
also trains on inputs below 299 (see ``InceptionV3Aux``). ``inception_v4`` and ``inception_resnet_v2``
follow the TensorFlow-slim layer configuration that timm ports, which is what the published parameter
counts (42.68M, 55.84M) describe. Where slim departs from the 2017 paper's figures we keep slim's:
Inception-ResNet-v2 gets Inception v3's stem plus a "mixed 5b" module instead of the Inception-v4 stem,
ends with an unscaled C block without ReLU and a 1x1 conv to 1536 channels, and scales its residuals by
0.17 / 0.10 / 0.20 per stage (the paper only says 0.1 to 0.3).
All three take 299x299 images and need at least 75x75: their stems and grid reductions use unpadded
("valid") convolutions and poolings, so the maps are 35, 17 and 8 pixels wide at 299 input.

The three networks share their module types where the layouts agree and differ only in widths: v3's
35 -> 17 reduction (Mixed_6a) is Reduction-A, its 17x17 modules and 17 -> 8 reduction are Inception-B
and Reduction-B of other widths, and Inception-ResNet-v2's "mixed 5b" is v3's 35x35 module.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.models._inception_base import INCEPTION_NORM, ConvFactory, InceptionNet, conv_factory
from cnnlab.models._registry import Variant, register_converter, register_variants, remap_keys
from cnnlab.models.layers import Branches, LayerFactory, classifier_layer, make_drop_path, stochastic_depth_rates

__all__ = [
    "VARIANTS",
    "InceptionB",
    "InceptionResnetConfig",
    "InceptionResnetV2",
    "InceptionV3",
    "InceptionV3A",
    "InceptionV3Aux",
    "InceptionV3E",
    "InceptionV3Outputs",
    "InceptionV3Stem",
    "InceptionV4",
    "InceptionV4A",
    "InceptionV4C",
    "InceptionV4Config",
    "InceptionV4Stem",
    "ReductionA",
    "ReductionB",
    "ResidualInception",
    "inception_resnet_a",
    "inception_resnet_b",
    "inception_resnet_c",
]

PAPER_2016 = "Szegedy et al. 2016, Rethinking the Inception Architecture for Computer Vision"
PAPER_2017 = ("Szegedy et al. 2017, Inception-v4, Inception-ResNet and the Impact of Residual Connections "
              "on Learning")


def _avg_pool_3x3(count_include_pad: bool) -> nn.AvgPool2d:
    # torchvision's v3 averages zero padding in (F.avg_pool2d default); slim's v4 / Inception-ResNet do not
    return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=count_include_pad)


def _factorized_pair(conv: ConvFactory, in_chs: int, out_chs: int) -> Branches:
    """1x3 | 3x1 side by side: the expanded filter bank of the 8x8 modules."""
    return Branches({"1x3": conv(in_chs, out_chs, (1, 3)), "3x1": conv(in_chs, out_chs, (3, 1))})


# ---------------------------------------------------------------------------------------------------------
# Blocks of more than one network


class InceptionV3Stem(nn.Sequential):
    """Stem (v3; slim's for Inception-ResNet-v2): 3x3/2, 3x3, 3x3, max-pool, 1x1, 3x3, max-pool (299 -> 35)."""

    def __init__(self, in_chans: int, conv: ConvFactory) -> None:
        super().__init__(OrderedDict(
            conv1a=conv(in_chans, 32, 3, stride=2, padding=0),  # 299 -> 149
            conv2a=conv(32, 32, 3, padding=0),  # -> 147
            conv2b=conv(32, 64, 3),
            pool1=nn.MaxPool2d(3, stride=2),  # -> 73
            conv3b=conv(64, 80, 1),
            conv4a=conv(80, 192, 3, padding=0),  # -> 71
            pool2=nn.MaxPool2d(3, stride=2),  # -> 35
        ))
        self.out_chs = 192


class InceptionV3A(Branches):
    """35x35 module: 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | avg-pool -> 1x1 (Mixed_5b-5d; slim's mixed 5b)."""

    def __init__(self, in_chs: int, pool_features: int, conv: ConvFactory, ch1x1: int = 64,
                 count_include_pad: bool = True) -> None:
        super().__init__({
            "branch1x1": conv(in_chs, ch1x1, 1),
            "branch5x5": nn.Sequential(conv(in_chs, 48, 1), conv(48, 64, 5)),
            "branch3x3dbl": nn.Sequential(conv(in_chs, 64, 1), conv(64, 96, 3), conv(96, 96, 3)),
            "branch_pool": nn.Sequential(_avg_pool_3x3(count_include_pad), conv(in_chs, pool_features, 1)),
        })
        self.out_chs = ch1x1 + 64 + 96 + pool_features


class ReductionA(Branches):
    """Reduction-A (Figure 7, 35 -> 17): 3x3/2 (n) | 1x1 (k) -> 3x3 (l) -> 3x3/2 (m) | max-pool 3x3/2."""

    def __init__(self, in_chs: int, k: int, l: int, m: int, n: int,  # noqa: E741  (the paper's names)
                 conv: ConvFactory) -> None:
        super().__init__({
            "branch3x3": conv(in_chs, n, 3, stride=2, padding=0),
            "branch3x3dbl": nn.Sequential(conv(in_chs, k, 1), conv(k, l, 3),
                                          conv(l, m, 3, stride=2, padding=0)),
            "branch_pool": nn.MaxPool2d(3, stride=2),
        })
        self.out_chs = n + m + in_chs


class InceptionB(Branches):
    """17x17 module with factorized 7x7: 1x1 | 1x1 -> 1x7 -> 7x1 | 1x1 -> (7x1 -> 1x7) x 2 | avg-pool -> 1x1.

    ``branch7x7`` and ``branch7x7dbl`` list the widths of the towers' convs in order (v3's Mixed_6b-6e,
    the 2016 paper's Figure 6; Inception-v4's Inception-B, the 2017 paper's Figure 5).
    """

    def __init__(self, in_chs: int, conv: ConvFactory, ch1x1: int, branch7x7: tuple[int, int, int],
                 branch7x7dbl: tuple[int, int, int, int, int], pool_proj: int, count_include_pad: bool) -> None:
        a, b, c = branch7x7
        d1, d2, d3, d4, d5 = branch7x7dbl
        super().__init__({
            "branch1x1": conv(in_chs, ch1x1, 1),
            "branch7x7": nn.Sequential(conv(in_chs, a, 1), conv(a, b, (1, 7)), conv(b, c, (7, 1))),
            "branch7x7dbl": nn.Sequential(conv(in_chs, d1, 1), conv(d1, d2, (7, 1)), conv(d2, d3, (1, 7)),
                                          conv(d3, d4, (7, 1)), conv(d4, d5, (1, 7))),
            "branch_pool": nn.Sequential(_avg_pool_3x3(count_include_pad), conv(in_chs, pool_proj, 1)),
        })
        self.out_chs = ch1x1 + c + d5 + pool_proj


class ReductionB(Branches):
    """Reduction-B (17 -> 8): 1x1 -> 3x3/2 | 1x1 -> 1x7 -> 7x1 -> 3x3/2 | max-pool 3x3/2.

    ``branch3x3`` and ``branch7x7x3`` list the towers' conv widths (v3's Mixed_7a; the 2017 paper's Figure 8).
    """

    def __init__(self, in_chs: int, conv: ConvFactory, branch3x3: tuple[int, int],
                 branch7x7x3: tuple[int, int, int, int]) -> None:
        r, o = branch3x3
        a, b, c, d = branch7x7x3
        super().__init__({
            "branch3x3": nn.Sequential(conv(in_chs, r, 1), conv(r, o, 3, stride=2, padding=0)),
            "branch7x7x3": nn.Sequential(conv(in_chs, a, 1), conv(a, b, (1, 7)), conv(b, c, (7, 1)),
                                         conv(c, d, 3, stride=2, padding=0)),
            "branch_pool": nn.MaxPool2d(3, stride=2),
        })
        self.out_chs = o + d + in_chs


# ---------------------------------------------------------------------------------------------------------
# Inception v3 (torchvision's Mixed_5b ... Mixed_7c)


class InceptionV3E(Branches):
    """8x8 expanded module: 1x1 | 1x1 -> (1x3 | 3x1) | 1x1 -> 3x3 -> (1x3 | 3x1) | avg-pool -> 1x1."""

    def __init__(self, in_chs: int, conv: ConvFactory) -> None:
        super().__init__({
            "branch1x1": conv(in_chs, 320, 1),
            "branch3x3": nn.Sequential(conv(in_chs, 384, 1), _factorized_pair(conv, 384, 384)),
            "branch3x3dbl": nn.Sequential(conv(in_chs, 448, 1), conv(448, 384, 3),
                                          _factorized_pair(conv, 384, 384)),
            "branch_pool": nn.Sequential(_avg_pool_3x3(True), conv(in_chs, 192, 1)),
        })
        self.out_chs = 320 + 768 + 768 + 192


class InceptionV3Aux(nn.Module):
    """Auxiliary classifier (17x17 map): avg-pool 5x5/3 to 5x5 -> 1x1 conv (128) -> 5x5 conv (768) -> fc."""

    # torchvision's 5x5/3 pooling yields the 5x5 map the 5x5 conv needs only from 17x17 maps (inputs of 299
    # and up); smaller maps are pooled adaptively to 5x5 instead, so the network trains with its aux head
    # down to its 75x75 minimum. From 17x17 up the head is torchvision's exactly.
    min_map = 17

    def __init__(self, in_chs: int, num_classes: int, conv: ConvFactory) -> None:
        super().__init__()
        self.conv0 = conv(in_chs, 128, 1)
        self.conv1 = conv(128, 768, 5, padding=0)
        self.fc = classifier_layer(768, num_classes)

    def reset(self, num_classes: int) -> None:
        self.fc = classifier_layer(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) >= self.min_map:
            x = F.avg_pool2d(x, kernel_size=5, stride=3)  # torchvision's pooling: (B, 768, 5, 5) at 17x17
        else:
            x = F.adaptive_avg_pool2d(x, 5)
        x = self.conv1(self.conv0(x))  # (B, 768, 1, 1) at 5x5
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class InceptionV3Outputs(NamedTuple):
    """Training-mode outputs of Inception v3 with its auxiliary head, as torchvision's InceptionOutputs."""

    logits: torch.Tensor
    aux_logits: torch.Tensor


class InceptionV3(InceptionNet):
    """Inception v3: valid-conv stem (299 -> 35) -> 3x A | B, 4x C | D, 2x E -> avg-pool, dropout, fc."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        aux_logits: bool = True,
        transform_input: bool = False,
        drop_rate: float = 0.5,
        norm_layer: LayerFactory | None = INCEPTION_NORM,
        act_layer: LayerFactory = nn.ReLU,
    ) -> None:
        super().__init__(num_classes, in_chans)
        self.aux_logits = aux_logits
        conv = conv_factory(norm_layer, act_layer)
        stage1 = OrderedDict(mixed5b=InceptionV3A(192, 32, conv), mixed5c=InceptionV3A(256, 64, conv),
                             mixed5d=InceptionV3A(288, 64, conv))
        stage2: OrderedDict[str, nn.Module] = OrderedDict(mixed6a=ReductionA(288, 64, 96, 96, 384, conv))  # -> 17
        for name, c7 in (("mixed6b", 128), ("mixed6c", 160), ("mixed6d", 160), ("mixed6e", 192)):
            stage2[name] = InceptionB(768, conv, 192, (c7, c7, 192), (c7, c7, c7, c7, 192), 192, True)
        stage3 = OrderedDict(mixed7a=ReductionB(768, conv, (192, 320), (192, 192, 192, 192)),
                             mixed7b=InceptionV3E(1280, conv), mixed7c=InceptionV3E(2048, conv))  # -> 8
        # the auxiliary head reads the output of stage 2 (mixed6e)
        aux = {"mixed6e": ("aux", InceptionV3Aux(768, num_classes, conv))} if aux_logits else {}
        self._assemble(InceptionV3Stem(in_chans, conv), [nn.Sequential(s) for s in (stage1, stage2, stage3)],
                       (288, 768, 2048), drop_rate=drop_rate,
                       transform_input=transform_input, aux=aux)

    def _outputs(self, logits: torch.Tensor, aux: dict[str, torch.Tensor]) -> InceptionV3Outputs:
        return InceptionV3Outputs(logits, aux["aux"])


# ---------------------------------------------------------------------------------------------------------
# Inception v4 (paper Figures 3-8; slim's Mixed_3a ... Mixed_7d)


class InceptionV4Stem(nn.Sequential):
    """Stem (Figure 3): 3x3/2, 3x3, 3x3 -> max-pool | 3x3/2 -> two factorized towers -> 3x3/2 | max-pool."""

    def __init__(self, in_chans: int, conv: ConvFactory) -> None:
        super().__init__(OrderedDict(
            conv1a=conv(in_chans, 32, 3, stride=2, padding=0),  # 299 -> 149
            conv2a=conv(32, 32, 3, padding=0),  # -> 147
            conv2b=conv(32, 64, 3),
            mixed3a=Branches({  # -> 73, 64 + 96 channels
                "branch_pool": nn.MaxPool2d(3, stride=2),
                "branch3x3": conv(64, 96, 3, stride=2, padding=0),
            }),
            mixed4a=Branches({  # -> 71, 96 + 96 channels
                "branch3x3": nn.Sequential(conv(160, 64, 1), conv(64, 96, 3, padding=0)),
                "branch7x7x3": nn.Sequential(conv(160, 64, 1), conv(64, 64, (1, 7)), conv(64, 64, (7, 1)),
                                             conv(64, 96, 3, padding=0)),
            }),
            mixed5a=Branches({  # -> 35, 192 + 192 channels
                "branch3x3": conv(192, 192, 3, stride=2, padding=0),
                "branch_pool": nn.MaxPool2d(3, stride=2),
            }),
        ))
        self.out_chs = 384


class InceptionV4A(Branches):
    """Inception-A (Figure 4, 35x35): 1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 -> 3x3 | avg-pool -> 1x1."""

    def __init__(self, in_chs: int, conv: ConvFactory) -> None:
        super().__init__({
            "branch1x1": conv(in_chs, 96, 1),
            "branch3x3": nn.Sequential(conv(in_chs, 64, 1), conv(64, 96, 3)),
            "branch3x3dbl": nn.Sequential(conv(in_chs, 64, 1), conv(64, 96, 3), conv(96, 96, 3)),
            "branch_pool": nn.Sequential(_avg_pool_3x3(False), conv(in_chs, 96, 1)),
        })
        self.out_chs = 4 * 96


class InceptionV4C(Branches):
    """Inception-C (Figure 6, 8x8): 1x1 | 1x1 -> (1x3 | 3x1) | 1x1 -> 3x1 -> 1x3 -> (1x3 | 3x1) | pool."""

    def __init__(self, in_chs: int, conv: ConvFactory) -> None:
        super().__init__({
            "branch1x1": conv(in_chs, 256, 1),
            "branch3x3": nn.Sequential(conv(in_chs, 384, 1), _factorized_pair(conv, 384, 256)),
            "branch3x3dbl": nn.Sequential(conv(in_chs, 384, 1), conv(384, 448, (3, 1)),
                                          conv(448, 512, (1, 3)), _factorized_pair(conv, 512, 256)),
            "branch_pool": nn.Sequential(_avg_pool_3x3(False), conv(in_chs, 256, 1)),
        })
        self.out_chs = 6 * 256


def _check_depths(depths: tuple[int, ...], minimum: int) -> None:
    if len(depths) != 3 or any(not isinstance(d, int) or d < minimum for d in depths):
        raise ConfigError(f"depths must be three integers >= {minimum} (blocks per stage), got {depths!r}")


@dataclass(frozen=True)
class InceptionV4Config:
    """Number of Inception-A, -B and -C modules (after the stem, Reduction-A and Reduction-B)."""

    depths: tuple[int, int, int] = (4, 7, 3)

    def __post_init__(self) -> None:
        _check_depths(self.depths, minimum=0)


class InceptionV4(InceptionNet):
    """Inception-v4: stem (299 -> 35) -> 4x A | Reduction-A, 7x B | Reduction-B, 3x C -> pool, dropout, fc."""

    def __init__(
        self,
        cfg: InceptionV4Config,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.2,
        norm_layer: LayerFactory | None = INCEPTION_NORM,
        act_layer: LayerFactory = nn.ReLU,
    ) -> None:
        super().__init__(num_classes, in_chans)
        conv = conv_factory(norm_layer, act_layer)
        n_a, n_b, n_c = cfg.depths
        inception_b = [InceptionB(1024, conv, 384, (192, 224, 256), (192, 192, 224, 224, 256), 128, False)
                       for _ in range(n_b)]
        stages = [
            [InceptionV4A(384, conv) for _ in range(n_a)],
            # Reduction-A widths k, l, m, n of the paper's Table 1 (Inception-v4 row)
            [ReductionA(384, 192, 224, 256, 384, conv), *inception_b],
            [ReductionB(1024, conv, (192, 192), (256, 256, 320, 320))]
            + [InceptionV4C(1536, conv) for _ in range(n_c)],
        ]
        self._assemble(InceptionV4Stem(in_chans, conv), [nn.Sequential(*s) if s else nn.Identity() for s in stages],
                       (384, 1024, 1536), drop_rate=drop_rate)


# ---------------------------------------------------------------------------------------------------------
# Inception-ResNet-v2 (paper Figures 16-19; slim's Block35 / Block17 / Block8)


class ResidualInception(nn.Module):
    """Residual Inception block: x + scale * 1x1 conv (linear) (concat of branches) -> ReLU (optional)."""

    def __init__(self, branches: Branches, branch_chs: int, chs: int, scale: float, activate: bool = True,
                 drop_path_rate: float = 0.0, act_layer: LayerFactory = nn.ReLU) -> None:
        super().__init__()
        self.branches = branches
        self.proj = nn.Conv2d(branch_chs, chs, 1)  # back to the trunk width; bias, no norm, as slim
        self.scale = scale  # the paper's residual scaling (0.1-0.3) that keeps very wide residuals stable
        self.drop_path = make_drop_path(drop_path_rate)
        self.act = act_layer() if activate else nn.Identity()
        self.out_chs = chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.drop_path(self.proj(self.branches(x)) * self.scale))

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


def inception_resnet_a(chs: int, conv: ConvFactory, **kwargs) -> ResidualInception:
    """Inception-ResNet-A (35x35, slim Block35): 1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 -> 3x3, 128 -> chs."""
    branches = Branches({
        "branch1x1": conv(chs, 32, 1),
        "branch3x3": nn.Sequential(conv(chs, 32, 1), conv(32, 32, 3)),
        "branch3x3dbl": nn.Sequential(conv(chs, 32, 1), conv(32, 48, 3), conv(48, 64, 3)),
    })
    return ResidualInception(branches, 32 + 32 + 64, chs, **kwargs)


def inception_resnet_b(chs: int, conv: ConvFactory, **kwargs) -> ResidualInception:
    """Inception-ResNet-B (17x17, slim Block17): 1x1 | 1x1 -> 1x7 -> 7x1, 384 -> chs."""
    branches = Branches({
        "branch1x1": conv(chs, 192, 1),
        "branch7x7": nn.Sequential(conv(chs, 128, 1), conv(128, 160, (1, 7)), conv(160, 192, (7, 1))),
    })
    return ResidualInception(branches, 192 + 192, chs, **kwargs)


def inception_resnet_c(chs: int, conv: ConvFactory, **kwargs) -> ResidualInception:
    """Inception-ResNet-C (8x8, slim Block8): 1x1 | 1x1 -> 1x3 -> 3x1, 448 -> chs."""
    branches = Branches({
        "branch1x1": conv(chs, 192, 1),
        "branch3x3": nn.Sequential(conv(chs, 192, 1), conv(192, 224, (1, 3)), conv(224, 256, (3, 1))),
    })
    return ResidualInception(branches, 192 + 256, chs, **kwargs)


def _mixed_7a(in_chs: int, conv: ConvFactory) -> Branches:
    """17 -> 8 reduction (Figure 18): three 1x1 -> 3x3/2 towers | max-pool 3x3/2."""
    return Branches({
        "branch3x3a": nn.Sequential(conv(in_chs, 256, 1), conv(256, 384, 3, stride=2, padding=0)),
        "branch3x3b": nn.Sequential(conv(in_chs, 256, 1), conv(256, 288, 3, stride=2, padding=0)),
        "branch3x3dbl": nn.Sequential(conv(in_chs, 256, 1), conv(256, 288, 3),
                                      conv(288, 320, 3, stride=2, padding=0)),
        "branch_pool": nn.MaxPool2d(3, stride=2),
    })


@dataclass(frozen=True)
class InceptionResnetConfig:
    """Blocks per stage (A, B, C; the last C block has no ReLU, scale 1) and each stage's residual scale."""

    depths: tuple[int, int, int] = (10, 20, 10)
    residual_scales: tuple[float, float, float] = (0.17, 0.10, 0.20)

    def __post_init__(self) -> None:
        _check_depths(self.depths, minimum=1)
        if len(self.residual_scales) != 3:
            raise ConfigError(f"residual_scales needs 3 values (one per stage), got {len(self.residual_scales)}: "
                              f"{self.residual_scales!r}")


class InceptionResnetV2(InceptionNet):
    """Inception-ResNet-v2: stem -> mixed 5b, 10x A | mixed 6a, 20x B | mixed 7a, 10x C, 1x1 -> pool, fc."""

    def __init__(
        self,
        cfg: InceptionResnetConfig,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.2,
        drop_path_rate: float = 0.0,
        norm_layer: LayerFactory | None = INCEPTION_NORM,
        act_layer: LayerFactory = nn.ReLU,
    ) -> None:
        super().__init__(num_classes, in_chans)
        conv = conv_factory(norm_layer, act_layer)
        rates_a, rates_b, rates_c = stochastic_depth_rates(cfg.depths, drop_path_rate)
        scale_a, scale_b, scale_c = cfg.residual_scales

        def blocks(make, chs: int, scale: float, rates: list[float]) -> list[ResidualInception]:
            return [make(chs, conv, scale=scale, drop_path_rate=r, act_layer=act_layer) for r in rates]

        # slim's mixed 5b is v3's 35x35 module, 96 wide on the 1x1 branch, averaging without the padding
        stage1 = [InceptionV3A(192, 64, conv, ch1x1=96, count_include_pad=False),
                  *blocks(inception_resnet_a, 320, scale_a, rates_a)]
        # mixed 6a is Reduction-A with the Inception-ResNet-v2 widths k, l, m, n = 256, 256, 384, 384
        stage2 = [ReductionA(320, 256, 256, 384, 384, conv), *blocks(inception_resnet_b, 1088, scale_b, rates_b)]
        # slim ends the trunk with an unscaled C block without ReLU, then a 1x1 conv to 1536 channels
        stage3 = [_mixed_7a(1088, conv), *blocks(inception_resnet_c, 2080, scale_c, rates_c[:-1]),
                  inception_resnet_c(2080, conv, scale=1.0, activate=False, drop_path_rate=rates_c[-1],
                                     act_layer=act_layer),
                  conv(2080, 1536, 1)]
        self._assemble(InceptionV3Stem(in_chans, conv), [nn.Sequential(*s) for s in (stage1, stage2, stage3)],
                       (320, 1088, 1536), drop_rate=drop_rate)


# ---------------------------------------------------------------------------------------------------------
# Variants

VARIANTS: dict[str, tuple[type[InceptionNet], Variant]] = {
    "inception_v3": (InceptionV3, Variant(None, "Inception v3 as torchvision: auxiliary head on the 17x17 map "
                                                "(training mode only), 299x299 input.", torchvision=True,
                                          entry={"paper": PAPER_2016})),
    "inception_v4": (InceptionV4, Variant(InceptionV4Config(), "Inception-v4 (slim / timm layer configuration, "
                                                               "42.68M parameters); dropout 0.2 (paper: keep "
                                                               "0.8).")),
    "inception_resnet_v2": (InceptionResnetV2, Variant(InceptionResnetConfig(), "Inception-ResNet-v2 (slim / "
                                                       "timm configuration, 55.84M parameters); residual "
                                                       "scales per stage.")),
}

for _name, (_model, _row) in VARIANTS.items():
    register_variants(_model, {_name: _row}, paper=PAPER_2017, input_size=(3, 299, 299), min_size=75)


# ---------------------------------------------------------------------------------------------------------
# Torchvision conversion


def _branch_rules() -> list[tuple[str, str]]:
    """torchvision's flat branch convs (branch7x7_2, branch3x3dbl_3a, ...) -> our branch containers."""
    rules = [
        (r"\.branch3x3_2a\.", ".branch3x3.1.1x3."),
        (r"\.branch3x3_2b\.", ".branch3x3.1.3x1."),
        (r"\.branch3x3dbl_3a\.", ".branch3x3dbl.2.1x3."),
        (r"\.branch3x3dbl_3b\.", ".branch3x3dbl.2.3x1."),
        (r"\.branch_pool\.", ".branch_pool.1."),
    ]
    rules += [(rf"\.(branch\w+?)_{i}\.", rf".\1.{i - 1}.") for i in range(1, 6)]
    return rules


@register_converter("inception")
def _convert(name: str, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision's Inception3 names (Conv2d_1a_3x3, Mixed_6b.branch7x7_2, AuxLogits) -> ours."""
    renamed = remap_keys(state_dict, [
        (r"^Conv2d_(\d[ab])_\dx\d\.", r"stem.conv\1."),
        (r"^Mixed_5([bcd])\.", r"stages.0.mixed5\1."),
        (r"^Mixed_6([a-e])\.", r"stages.1.mixed6\1."),
        (r"^Mixed_7([abc])\.", r"stages.2.mixed7\1."),
        (r"^AuxLogits\.", "aux."),
        (r"^fc\.", "head.fc."),
    ])
    return remap_keys(renamed, _branch_rules())
