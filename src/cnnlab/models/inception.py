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
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.models._base import FeatureInfo, ZooModel
from cnnlab.models._registry import register_converter, register_model, remap_keys
from cnnlab.models.googlenet import INCEPTION_NORM, check_transform_input, to_inception_range
from cnnlab.models.layers import Branches, ClassifierHead, ConvNormAct, DropPath, LayerFactory, init_kaiming

__all__ = [
    "InceptionResnetConfig",
    "InceptionResnetStem",
    "InceptionResnetV2",
    "InceptionV3",
    "InceptionV3A",
    "InceptionV3Aux",
    "InceptionV3B",
    "InceptionV3C",
    "InceptionV3D",
    "InceptionV3E",
    "InceptionV3Outputs",
    "InceptionV4",
    "InceptionV4A",
    "InceptionV4B",
    "InceptionV4C",
    "InceptionV4Config",
    "InceptionV4Stem",
    "ReductionA",
    "ReductionB",
    "ResidualInception",
    "inception_resnet_a",
    "inception_resnet_b",
    "inception_resnet_c",
    "inception_resnet_v2",
    "inception_v3",
    "inception_v4",
]

# A ConvNormAct with its norm and activation bound: conv(in_chs, out_chs, kernel, stride=1, padding=None).
ConvFactory = Callable[..., nn.Module]


def _conv_factory(norm_layer: LayerFactory | None, act_layer: LayerFactory) -> ConvFactory:
    return partial(ConvNormAct, norm_layer=norm_layer, act_layer=act_layer)


def _avg_pool_3x3(count_include_pad: bool) -> nn.AvgPool2d:
    # torchvision's v3 averages zero padding in (F.avg_pool2d default); slim's v4 / Inception-ResNet do not
    return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=count_include_pad)


def _factorized_pair(conv: ConvFactory, in_chs: int, out_chs: int) -> Branches:
    """1x3 | 3x1 side by side: the expanded filter bank of the 8x8 modules."""
    return Branches({"1x3": conv(in_chs, out_chs, (1, 3)), "3x1": conv(in_chs, out_chs, (3, 1))})


def _classifier(in_features: int, num_classes: int) -> nn.Module:
    return nn.Linear(in_features, num_classes) if num_classes > 0 else nn.Identity()


def _per_stage(name: str, values: tuple, expected: int) -> tuple:
    if len(values) != expected:
        raise ValueError(f"{name} needs {expected} values (one per stage), got {len(values)}: {values!r}")
    return tuple(values)


# ---------------------------------------------------------------------------------------------------------
# Inception v3 blocks (torchvision's Mixed_5b ... Mixed_7c)


class InceptionV3A(Branches):
    """35x35 module: 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | avg-pool -> 1x1 (Mixed_5b-5d)."""

    def __init__(self, in_chs: int, pool_features: int, conv: ConvFactory) -> None:
        super().__init__({
            "branch1x1": conv(in_chs, 64, 1),
            "branch5x5": nn.Sequential(conv(in_chs, 48, 1), conv(48, 64, 5)),
            "branch3x3dbl": nn.Sequential(conv(in_chs, 64, 1), conv(64, 96, 3), conv(96, 96, 3)),
            "branch_pool": nn.Sequential(_avg_pool_3x3(True), conv(in_chs, pool_features, 1)),
        })
        self.out_chs = 64 + 64 + 96 + pool_features


class InceptionV3B(Branches):
    """35 -> 17 grid reduction: 3x3/2 | 1x1 -> 3x3 -> 3x3/2 | max-pool 3x3/2 (Mixed_6a)."""

    def __init__(self, in_chs: int, conv: ConvFactory) -> None:
        super().__init__({
            "branch3x3": conv(in_chs, 384, 3, stride=2, padding=0),
            "branch3x3dbl": nn.Sequential(conv(in_chs, 64, 1), conv(64, 96, 3),
                                          conv(96, 96, 3, stride=2, padding=0)),
            "branch_pool": nn.MaxPool2d(3, stride=2),
        })
        self.out_chs = 384 + 96 + in_chs


class InceptionV3C(Branches):
    """17x17 module with factorized 7x7: 1x1 | 1x1 -> 1x7 -> 7x1 | 1x1 -> (7x1 -> 1x7) x 2 | pool -> 1x1."""

    def __init__(self, in_chs: int, channels_7x7: int, conv: ConvFactory) -> None:
        c7 = channels_7x7
        super().__init__({
            "branch1x1": conv(in_chs, 192, 1),
            "branch7x7": nn.Sequential(conv(in_chs, c7, 1), conv(c7, c7, (1, 7)), conv(c7, 192, (7, 1))),
            "branch7x7dbl": nn.Sequential(conv(in_chs, c7, 1), conv(c7, c7, (7, 1)), conv(c7, c7, (1, 7)),
                                          conv(c7, c7, (7, 1)), conv(c7, 192, (1, 7))),
            "branch_pool": nn.Sequential(_avg_pool_3x3(True), conv(in_chs, 192, 1)),
        })
        self.out_chs = 4 * 192


class InceptionV3D(Branches):
    """17 -> 8 grid reduction: 1x1 -> 3x3/2 | 1x1 -> 1x7 -> 7x1 -> 3x3/2 | max-pool 3x3/2 (Mixed_7a)."""

    def __init__(self, in_chs: int, conv: ConvFactory) -> None:
        super().__init__({
            "branch3x3": nn.Sequential(conv(in_chs, 192, 1), conv(192, 320, 3, stride=2, padding=0)),
            "branch7x7x3": nn.Sequential(conv(in_chs, 192, 1), conv(192, 192, (1, 7)), conv(192, 192, (7, 1)),
                                         conv(192, 192, 3, stride=2, padding=0)),
            "branch_pool": nn.MaxPool2d(3, stride=2),
        })
        self.out_chs = 320 + 192 + in_chs


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
        self.fc = _classifier(768, num_classes)

    def reset(self, num_classes: int) -> None:
        self.fc = _classifier(768, num_classes)

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


class InceptionV3(ZooModel):
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
        super().__init__()
        check_transform_input(transform_input, in_chans)
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.aux_logits = aux_logits
        self.transform_input = transform_input
        conv = _conv_factory(norm_layer, act_layer)
        self.stem = nn.Sequential(OrderedDict(
            conv1a=conv(in_chans, 32, 3, stride=2, padding=0),  # 299 -> 149
            conv2a=conv(32, 32, 3, padding=0),  # -> 147
            conv2b=conv(32, 64, 3),
            pool1=nn.MaxPool2d(3, stride=2),  # -> 73
            conv3b=conv(64, 80, 1),
            conv4a=conv(80, 192, 3, padding=0),  # -> 71
            pool2=nn.MaxPool2d(3, stride=2),  # -> 35
        ))
        stage1 = OrderedDict(mixed5b=InceptionV3A(192, 32, conv), mixed5c=InceptionV3A(256, 64, conv),
                             mixed5d=InceptionV3A(288, 64, conv))
        stage2 = OrderedDict(mixed6a=InceptionV3B(288, conv))  # -> 17
        for name, c7 in (("mixed6b", 128), ("mixed6c", 160), ("mixed6d", 160), ("mixed6e", 192)):
            stage2[name] = InceptionV3C(768, c7, conv)
        stage3 = OrderedDict(mixed7a=InceptionV3D(768, conv), mixed7b=InceptionV3E(1280, conv),
                             mixed7c=InceptionV3E(2048, conv))  # -> 8
        self.stages = nn.Sequential(*(nn.Sequential(s) for s in (stage1, stage2, stage3)))
        self.feature_info = [FeatureInfo("stages.0", 288, 8), FeatureInfo("stages.1", 768, 16),
                             FeatureInfo("stages.2", 2048, 32)]
        self.num_features = 2048
        if aux_logits:
            self.aux = InceptionV3Aux(768, num_classes, conv)  # reads the output of stage 2 (mixed6e)
        self.head = ClassifierHead(2048, num_classes, drop_rate=drop_rate)
        init_kaiming(self)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return to_inception_range(x) if self.transform_input else x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(self._prepare(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits; in training mode with the auxiliary head, ``(logits, aux_logits)`` as torchvision."""
        if not (self.training and self.aux_logits):
            return self.forward_head(self.forward_features(x))
        x = self.stages[1](self.stages[0](self.stem(self._prepare(x))))
        aux = self.aux(x)
        return InceptionV3Outputs(self.forward_head(self.stages[2](x)), aux)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the main and auxiliary classifiers; ``num_classes=0`` makes them return features."""
        super().reset_classifier(num_classes)
        if self.aux_logits:
            self.aux.reset(num_classes)


# ---------------------------------------------------------------------------------------------------------
# Inception v4 blocks (paper Figures 3-8; slim's Mixed_3a ... Mixed_7d)


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


class InceptionV4B(Branches):
    """Inception-B (Figure 5, 17x17): 1x1 | 1x1 -> 1x7 -> 7x1 | 1x1 -> (7x1 -> 1x7) x 2 | pool -> 1x1."""

    def __init__(self, in_chs: int, conv: ConvFactory) -> None:
        super().__init__({
            "branch1x1": conv(in_chs, 384, 1),
            "branch7x7": nn.Sequential(conv(in_chs, 192, 1), conv(192, 224, (1, 7)), conv(224, 256, (7, 1))),
            "branch7x7dbl": nn.Sequential(conv(in_chs, 192, 1), conv(192, 192, (7, 1)),
                                          conv(192, 224, (1, 7)), conv(224, 224, (7, 1)),
                                          conv(224, 256, (1, 7))),
            "branch_pool": nn.Sequential(_avg_pool_3x3(False), conv(in_chs, 128, 1)),
        })
        self.out_chs = 384 + 256 + 256 + 128


class ReductionB(Branches):
    """Reduction-B (Figure 8, 17 -> 8): 1x1 -> 3x3/2 | 1x1 -> 1x7 -> 7x1 -> 3x3/2 | max-pool 3x3/2."""

    def __init__(self, in_chs: int, conv: ConvFactory) -> None:
        super().__init__({
            "branch3x3": nn.Sequential(conv(in_chs, 192, 1), conv(192, 192, 3, stride=2, padding=0)),
            "branch7x7x3": nn.Sequential(conv(in_chs, 256, 1), conv(256, 256, (1, 7)), conv(256, 320, (7, 1)),
                                         conv(320, 320, 3, stride=2, padding=0)),
            "branch_pool": nn.MaxPool2d(3, stride=2),
        })
        self.out_chs = 192 + 320 + in_chs


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


@dataclass(frozen=True)
class InceptionV4Config:
    """Number of Inception-A, -B and -C modules (after the stem, Reduction-A and Reduction-B)."""

    depths: tuple[int, int, int] = (4, 7, 3)


class InceptionV4(ZooModel):
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
        super().__init__()
        _check_depths(cfg.depths, minimum=0)
        self.num_classes = num_classes
        self.in_chans = in_chans
        conv = _conv_factory(norm_layer, act_layer)
        self.stem = InceptionV4Stem(in_chans, conv)
        n_a, n_b, n_c = cfg.depths
        stage1 = [InceptionV4A(384, conv) for _ in range(n_a)]
        # Reduction-A widths k, l, m, n of the paper's Table 1 (Inception-v4 row)
        stage2 = [ReductionA(384, 192, 224, 256, 384, conv)] + [InceptionV4B(1024, conv) for _ in range(n_b)]
        stage3 = [ReductionB(1024, conv)] + [InceptionV4C(1536, conv) for _ in range(n_c)]
        self.stages = nn.Sequential(*(_sequential_or_identity(s) for s in (stage1, stage2, stage3)))
        self.feature_info = [FeatureInfo("stages.0", 384, 8), FeatureInfo("stages.1", 1024, 16),
                             FeatureInfo("stages.2", 1536, 32)]
        self.num_features = 1536
        self.head = ClassifierHead(1536, num_classes, drop_rate=drop_rate)
        init_kaiming(self)


def _sequential_or_identity(blocks: list[nn.Module]) -> nn.Module:
    return nn.Sequential(*blocks) if blocks else nn.Identity()


def _check_depths(depths: tuple[int, ...], minimum: int) -> None:
    if len(depths) != 3 or any(not isinstance(d, int) or d < minimum for d in depths):
        raise ValueError(f"depths must be three integers >= {minimum} (blocks per stage), got {depths!r}")


# ---------------------------------------------------------------------------------------------------------
# Inception-ResNet-v2 blocks (paper Figures 16-19; slim's Block35 / Block17 / Block8)


class ResidualInception(nn.Module):
    """Residual Inception block: x + scale * 1x1 conv (linear) (concat of branches) -> ReLU (optional)."""

    def __init__(self, branches: Branches, branch_chs: int, chs: int, scale: float, activate: bool = True,
                 drop_path_rate: float = 0.0, act_layer: LayerFactory = nn.ReLU) -> None:
        super().__init__()
        self.branches = branches
        self.proj = nn.Conv2d(branch_chs, chs, 1)  # back to the trunk width; bias, no norm, as slim
        self.scale = scale  # the paper's residual scaling (0.1-0.3) that keeps very wide residuals stable
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()
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


class InceptionResnetStem(nn.Sequential):
    """Stem (slim, Inception v3's): 3x3/2, 3x3, 3x3, max-pool, 1x1, 3x3, max-pool (299 -> 35, 192 chs)."""

    def __init__(self, in_chans: int, conv: ConvFactory) -> None:
        super().__init__(OrderedDict(
            conv1a=conv(in_chans, 32, 3, stride=2, padding=0),
            conv2a=conv(32, 32, 3, padding=0),
            conv2b=conv(32, 64, 3),
            pool3a=nn.MaxPool2d(3, stride=2),
            conv3b=conv(64, 80, 1),
            conv4a=conv(80, 192, 3, padding=0),
            pool5a=nn.MaxPool2d(3, stride=2),
        ))
        self.out_chs = 192


def _mixed_5b(in_chs: int, conv: ConvFactory) -> Branches:
    """35x35 widening to 320 channels: 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | avg-pool -> 1x1."""
    return Branches({
        "branch1x1": conv(in_chs, 96, 1),
        "branch5x5": nn.Sequential(conv(in_chs, 48, 1), conv(48, 64, 5)),
        "branch3x3dbl": nn.Sequential(conv(in_chs, 64, 1), conv(64, 96, 3), conv(96, 96, 3)),
        "branch_pool": nn.Sequential(_avg_pool_3x3(False), conv(in_chs, 64, 1)),
    })


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
    scales: tuple[float, float, float] = (0.17, 0.10, 0.20)


class InceptionResnetV2(ZooModel):
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
        super().__init__()
        _check_depths(cfg.depths, minimum=1)
        self.num_classes = num_classes
        self.in_chans = in_chans
        conv = _conv_factory(norm_layer, act_layer)
        self.stem = InceptionResnetStem(in_chans, conv)
        total = sum(cfg.depths)
        rates = iter([drop_path_rate * i / max(total - 1, 1) for i in range(total)])  # linear decay rule
        n_a, n_b, n_c = cfg.depths
        scale_a, scale_b, scale_c = cfg.scales
        stage1 = [_mixed_5b(192, conv)] + [
            inception_resnet_a(320, conv, scale=scale_a, drop_path_rate=next(rates), act_layer=act_layer)
            for _ in range(n_a)]
        # mixed 6a is Reduction-A with the Inception-ResNet-v2 widths k, l, m, n = 256, 256, 384, 384
        stage2 = [ReductionA(320, 256, 256, 384, 384, conv)] + [
            inception_resnet_b(1088, conv, scale=scale_b, drop_path_rate=next(rates), act_layer=act_layer)
            for _ in range(n_b)]
        stage3: list[nn.Module] = [_mixed_7a(1088, conv)] + [
            inception_resnet_c(2080, conv, scale=scale_c, drop_path_rate=next(rates), act_layer=act_layer)
            for _ in range(n_c - 1)]
        # slim ends the trunk with an unscaled C block without ReLU, then a 1x1 conv to 1536 channels
        stage3 += [inception_resnet_c(2080, conv, scale=1.0, activate=False, drop_path_rate=next(rates),
                                      act_layer=act_layer),
                   conv(2080, 1536, 1)]
        self.stages = nn.Sequential(nn.Sequential(*stage1), nn.Sequential(*stage2), nn.Sequential(*stage3))
        self.feature_info = [FeatureInfo("stages.0", 320, 8), FeatureInfo("stages.1", 1088, 16),
                             FeatureInfo("stages.2", 1536, 32)]
        self.num_features = 1536
        self.head = ClassifierHead(1536, num_classes, drop_rate=drop_rate)
        init_kaiming(self)


# ---------------------------------------------------------------------------------------------------------
# Builders

_INCEPTION_V4 = InceptionV4Config()
_INCEPTION_RESNET_V2 = InceptionResnetConfig()
VARIANTS: dict[str, InceptionV4Config | InceptionResnetConfig] = {
    "inception_v4": _INCEPTION_V4,
    "inception_resnet_v2": _INCEPTION_RESNET_V2,
}
_SIZE_299 = dict(input_size=(3, 299, 299), min_size=75)


@register_model(**_SIZE_299, torchvision="inception_v3",
                paper="Szegedy et al. 2016, Rethinking the Inception Architecture for Computer Vision")
def inception_v3(
    num_classes: int = 1000,
    in_chans: int = 3,
    aux_logits: bool = True,
    transform_input: bool = False,
    drop_rate: float = 0.5,
    norm_layer: LayerFactory | None = INCEPTION_NORM,
    act_layer: LayerFactory = nn.ReLU,
) -> InceptionV3:
    """Inception v3 as torchvision: auxiliary head on the 17x17 map (training mode only), 299x299 input."""
    return InceptionV3(num_classes=num_classes, in_chans=in_chans, aux_logits=aux_logits,
                       transform_input=transform_input, drop_rate=drop_rate, norm_layer=norm_layer,
                       act_layer=act_layer)


_PAPER_2017 = ("Szegedy et al. 2017, Inception-v4, Inception-ResNet and the Impact of Residual Connections "
               "on Learning")


@register_model(**_SIZE_299, paper=_PAPER_2017)
def inception_v4(
    num_classes: int = 1000,
    in_chans: int = 3,
    depths: tuple[int, int, int] | None = None,
    drop_rate: float = 0.2,
    norm_layer: LayerFactory | None = INCEPTION_NORM,
    act_layer: LayerFactory = nn.ReLU,
) -> InceptionV4:
    """Inception-v4 (slim / timm layer configuration, 42.68M parameters); dropout 0.2 (paper: keep 0.8)."""
    cfg = _INCEPTION_V4 if depths is None else replace(_INCEPTION_V4, depths=tuple(depths))
    return InceptionV4(cfg, num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate,
                       norm_layer=norm_layer, act_layer=act_layer)


@register_model(**_SIZE_299, paper=_PAPER_2017)
def inception_resnet_v2(
    num_classes: int = 1000,
    in_chans: int = 3,
    depths: tuple[int, int, int] | None = None,
    residual_scales: tuple[float, float, float] | None = None,
    drop_rate: float = 0.2,
    drop_path_rate: float = 0.0,
    norm_layer: LayerFactory | None = INCEPTION_NORM,
    act_layer: LayerFactory = nn.ReLU,
) -> InceptionResnetV2:
    """Inception-ResNet-v2 (slim / timm configuration, 55.84M parameters); residual scales per stage."""
    cfg = _INCEPTION_RESNET_V2
    if depths is not None:
        cfg = replace(cfg, depths=tuple(depths))
    if residual_scales is not None:
        cfg = replace(cfg, scales=_per_stage("residual_scales", tuple(residual_scales), 3))
    return InceptionResnetV2(cfg, num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate,
                             drop_path_rate=drop_path_rate, norm_layer=norm_layer, act_layer=act_layer)


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
