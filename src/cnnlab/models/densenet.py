"""Huang et al. 2017, Densely Connected Convolutional Networks (CVPR 2017, arXiv:1608.06993).

Every layer of a dense block reads the concatenation of the block's input and of all earlier layers'
outputs, and adds ``growth_rate`` (k) new maps to it. Transitions between blocks compress the channels
(1x1 conv, factor theta) and halve the resolution (2x2 average pool). Every "conv" of the paper is the
pre-activation sequence BN-ReLU-Conv.

- ImageNet networks (paper Table 1, torchvision's ``densenet121/161/169/201``): DenseNet-BC with a
  7x7/2 conv + 3x3/2 max-pool stem and four dense blocks.
- Small-image networks (paper Section 3, Table 2): one 3x3 conv stem (16 maps, or 2k for DenseNet-BC)
  and three dense blocks of equal depth; depth L counts the convs and the classifier, so a block has
  (L - 4) / 3 layers, or (L - 4) / 6 with bottlenecks.

``memory_efficient=True`` recomputes each layer's concatenation and first BN-ReLU-conv in the backward
pass instead of storing them (Pleiss et al. 2017, Memory-Efficient Implementation of DenseNets).
"""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from cnnlab.errors import ConfigError
from cnnlab.models._base import FeatureInfo, ZooModel
from cnnlab.models._registry import StateDict, Variant, register_converter, register_variants, remap_keys
from cnnlab.models.layers import (
    ClassifierHead,
    ConvNormAct,
    LayerFactory,
    check_choice,
    check_rate,
    conv_output_size,
    init_kaiming,
    make_act,
)

__all__ = [
    "DenseBlock",
    "DenseLayer",
    "DenseNet",
    "DenseNetConfig",
    "DenseStage",
    "NormActConv",
    "Transition",
    "VARIANTS",
    "compressed_channels",
    "min_input_size",
]

PAPER = "Huang et al. 2017, Densely Connected Convolutional Networks"
STEMS = ("imagenet", "cifar")


def compressed_channels(channels: int, compression: float) -> int:
    """Output channels of a transition: floor(theta * m) for m input maps (paper Section 3)."""
    return math.floor(compression * channels)


def _stem(stem: str, in_chans: int, out_chs: int, norm_layer: LayerFactory,
          act_layer: LayerFactory) -> nn.Sequential:
    if stem == "imagenet":
        conv = ConvNormAct(in_chans, out_chs, 7, stride=2, padding=3, norm_layer=norm_layer,
                           act_layer=act_layer)
        pool = nn.MaxPool2d(3, stride=2, padding=1)
        return nn.Sequential(OrderedDict([*conv.named_children(), ("pool", pool)]))
    # Small images: one 3x3 conv, no norm or activation (the first dense layer starts with BN-ReLU).
    conv = ConvNormAct(in_chans, out_chs, 3, bias=False, norm_layer=None, act_layer=None)
    return nn.Sequential(OrderedDict(conv.named_children()))


def _stem_stride(stem: str) -> int:
    return 4 if stem == "imagenet" else 1


def _final_map_size(size: int, stem: str, num_blocks: int) -> int:
    """Side of the last dense block's map for a square input of ``size``; 0 when the network cannot run."""
    if stem == "imagenet":
        size = conv_output_size(size, 7, stride=2, padding=3)
        size = conv_output_size(size, 3, stride=2, padding=1) if size >= 1 else 0
    for _ in range(num_blocks - 1):
        size = conv_output_size(size, 2, stride=2) if size >= 1 else 0  # a transition's 2x2 average pool
    return max(size, 0)


def min_input_size(stem: str, num_blocks: int) -> int:
    """Smallest square input whose last dense block still has a 1x1 map."""
    return next(n for n in itertools.count(1) if _final_map_size(n, stem, num_blocks) >= 1)


@contextmanager
def _buffers_restored(module: nn.Module) -> Iterator[None]:
    """Undo buffer updates (BN running statistics) that a checkpoint's recomputation makes a second time."""
    saved = [b.clone() for b in module.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buf, old in zip(module.buffers(), saved):
                buf.copy_(old)


def _checkpoint_contexts(module: nn.Module) -> tuple:
    return nullcontext(), _buffers_restored(module)


class NormActConv(nn.Sequential):
    """Pre-activation unit: norm -> activation -> conv (no bias; 'same' padding)."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, norm_layer: LayerFactory = nn.BatchNorm2d,
                 act_layer: LayerFactory = nn.ReLU) -> None:
        super().__init__()
        self.bn = norm_layer(in_chs)
        self.act = make_act(act_layer)
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, padding=kernel_size // 2, bias=False)


class DenseLayer(nn.Module):
    """Dense layer: concat(inputs) -> [BN-ReLU-1x1 conv (bn_size*k)] -> BN-ReLU-3x3 conv (k) -> dropout."""

    def __init__(
        self,
        in_chs: int,
        growth_rate: int,
        bn_size: int = 4,
        bottleneck: bool = True,
        drop_rate: float = 0.0,
        memory_efficient: bool = False,
        norm_layer: LayerFactory = nn.BatchNorm2d,
        act_layer: LayerFactory = nn.ReLU,
    ) -> None:
        super().__init__()
        mid_chs = bn_size * growth_rate if bottleneck else in_chs
        self.bottleneck: NormActConv | None = (
            NormActConv(in_chs, mid_chs, 1, norm_layer, act_layer) if bottleneck else None)
        self.conv3x3 = NormActConv(mid_chs, growth_rate, 3, norm_layer, act_layer)
        # The paper puts dropout after the layer's convolutions; like torchvision, on the k new maps.
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.memory_efficient = memory_efficient

    def _first_unit(self) -> NormActConv:
        return self.bottleneck if self.bottleneck is not None else self.conv3x3

    def _concat_first_unit(self, *features: torch.Tensor) -> torch.Tensor:
        """The part whose activations grow with depth: concatenation and the first BN-ReLU-conv."""
        return self._first_unit()(torch.cat(features, 1))  # (B, sum C_i, H, W) -> (B, 4k or k, H, W)

    def _recomputes(self, features: list[torch.Tensor]) -> bool:
        return self.memory_efficient and torch.is_grad_enabled() and any(f.requires_grad for f in features)

    def forward(self, features: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        features = [features] if isinstance(features, torch.Tensor) else list(features)
        if self._recomputes(features):
            x = checkpoint(self._concat_first_unit, *features, use_reentrant=False,
                           context_fn=partial(_checkpoint_contexts, self._first_unit()))
        else:
            x = self._concat_first_unit(*features)
        if self.bottleneck is not None:
            x = self.conv3x3(x)
        return self.drop(x)  # (B, k, H, W)


class DenseBlock(nn.ModuleDict):
    """Dense block: layer i reads [x, f_1, ..., f_{i-1}] and the block returns their concatenation."""

    def __init__(self, num_layers: int, in_chs: int, growth_rate: int, **layer_kwargs) -> None:
        super().__init__()
        for i in range(num_layers):
            self[f"denselayer{i + 1}"] = DenseLayer(in_chs + i * growth_rate, growth_rate, **layer_kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)  # (B, C_in + L*k, H, W)


class Transition(nn.Sequential):
    """Transition: BN-ReLU-1x1 conv (compression) - 2x2 average pool (stride 2)."""

    def __init__(self, in_chs: int, out_chs: int, norm_layer: LayerFactory = nn.BatchNorm2d,
                 act_layer: LayerFactory = nn.ReLU) -> None:
        super().__init__()
        self.bn = norm_layer(in_chs)
        self.act = make_act(act_layer)
        self.conv = nn.Conv2d(in_chs, out_chs, 1, bias=False)
        self.pool = nn.AvgPool2d(2, stride=2)


class DenseStage(nn.Sequential):
    """Stage: [transition from the previous block] -> dense block (the first stage has no transition)."""

    def __init__(self, transition: Transition | None, block: DenseBlock) -> None:
        super().__init__()
        if transition is not None:
            self.transition = transition
        self.block = block


@dataclass(frozen=True)
class DenseNetConfig:
    """One DenseNet: growth rate, layers per block, and the options that make it -B, -C or ImageNet-style."""

    growth_rate: int  # k: maps each dense layer adds
    block_config: tuple[int, ...]  # dense layers per block
    stem: str = "imagenet"  # "imagenet": 7x7/2 conv-BN-ReLU + 3x3/2 max pool; "cifar": one 3x3 conv
    stem_chs: int | None = None  # maps out of the stem; None: 2k (the paper's rule for DenseNet-BC)
    bottleneck: bool = True  # B: a BN-ReLU-1x1 conv to bn_size*k maps before each 3x3 conv
    bn_size: int = 4  # bottleneck width in multiples of k
    compression: float = 0.5  # C: theta, transition output = floor(theta * input maps)

    def __post_init__(self) -> None:
        object.__setattr__(self, "block_config", tuple(self.block_config))
        if self.growth_rate < 1:
            raise ConfigError(f"growth_rate must be a positive number of maps, got {self.growth_rate}")
        if not self.block_config or min(self.block_config) < 1:
            raise ConfigError(f"block_config must list one or more blocks of >= 1 layers, "
                              f"got {self.block_config}")
        check_choice("stem", self.stem, STEMS)
        if self.stem_chs is not None and self.stem_chs < 1:
            raise ConfigError(f"stem_chs must be positive or None (2 * growth_rate), got {self.stem_chs}")
        if self.bn_size < 1:
            raise ConfigError(f"bn_size must be a positive multiple of the growth rate, got {self.bn_size}")
        if not 0.0 < self.compression <= 1.0:
            raise ConfigError(f"compression (theta) must be in (0, 1], got {self.compression}")

    @property
    def init_chs(self) -> int:
        return self.stem_chs if self.stem_chs is not None else 2 * self.growth_rate


class DenseNet(ZooModel):
    """DenseNet: stem -> dense blocks joined by transitions -> BN-ReLU -> global average pool -> linear."""

    def __init__(
        self,
        cfg: DenseNetConfig,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        memory_efficient: bool = False,
        norm_layer: LayerFactory = nn.BatchNorm2d,
        act_layer: LayerFactory = nn.ReLU,
    ) -> None:
        super().__init__(num_classes, in_chans)
        check_rate("drop_rate", drop_rate)
        self.cfg = cfg
        self.min_input_size = min_input_size(cfg.stem, len(cfg.block_config))
        self.stem = _stem(cfg.stem, in_chans, cfg.init_chs, norm_layer, act_layer)

        layer_kwargs = dict(bn_size=cfg.bn_size, bottleneck=cfg.bottleneck, drop_rate=drop_rate,
                            memory_efficient=memory_efficient, norm_layer=norm_layer, act_layer=act_layer)
        stages: list[DenseStage] = []
        self.feature_info = []
        chs, reduction = cfg.init_chs, _stem_stride(cfg.stem)
        for i, num_layers in enumerate(cfg.block_config):
            transition = None
            if i > 0:
                out_chs = compressed_channels(chs, cfg.compression)
                transition = Transition(chs, out_chs, norm_layer, act_layer)
                chs, reduction = out_chs, reduction * 2
            block = DenseBlock(num_layers, chs, cfg.growth_rate, **layer_kwargs)
            stages.append(DenseStage(transition, block))
            chs += num_layers * cfg.growth_rate
            self.feature_info.append(FeatureInfo(f"stages.{i}", chs, reduction))
        self.stages = nn.Sequential(*stages)
        # The last stage's map as the classifier sees it: after the final BN-ReLU.
        self.final_norm = nn.Sequential(OrderedDict([("bn", norm_layer(chs)), ("act", make_act(act_layer))]))
        self.feature_info[-1] = FeatureInfo("final_norm", chs, reduction)
        self.num_features = chs
        self.head = ClassifierHead(chs, num_classes)
        init_kaiming(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.final_norm(self.stages(self.stem(x)))


VARIANTS: dict[str, Variant] = {
    # ImageNet (paper Table 1; torchvision's layouts). Stem width 2k: 64 for k=32, 96 for k=48.
    "densenet121": Variant(DenseNetConfig(32, (6, 12, 24, 16)),
                           "DenseNet-121 (DenseNet-BC, k=32, blocks 6-12-24-16), ImageNet.", torchvision=True),
    "densenet161": Variant(DenseNetConfig(48, (6, 12, 36, 24)),
                           "DenseNet-161 (DenseNet-BC, k=48, blocks 6-12-36-24), ImageNet.", torchvision=True),
    "densenet169": Variant(DenseNetConfig(32, (6, 12, 32, 32)),
                           "DenseNet-169 (DenseNet-BC, k=32, blocks 6-12-32-32), ImageNet.", torchvision=True),
    "densenet201": Variant(DenseNetConfig(32, (6, 12, 48, 32)),
                           "DenseNet-201 (DenseNet-BC, k=32, blocks 6-12-48-32), ImageNet.", torchvision=True),
    # Small images (paper Table 2): three equal blocks; BC: (L - 4) / 6 layers each, plain: (L - 4) / 3.
    "densenet_bc_100_12": Variant(DenseNetConfig(12, (16, 16, 16), stem="cifar"),
                                  "DenseNet-BC (L=100, k=12) for 32x32 images: 0.8M parameters (paper Table 2)."),
    "densenet_bc_250_24": Variant(DenseNetConfig(24, (41, 41, 41), stem="cifar"),
                                  "DenseNet-BC (L=250, k=24) for 32x32 images: 15.3M parameters (paper Table 2)."),
    "densenet_bc_190_40": Variant(DenseNetConfig(40, (31, 31, 31), stem="cifar"),
                                  "DenseNet-BC (L=190, k=40) for 32x32 images: 25.6M parameters (paper Table 2)."),
    "densenet40_12": Variant(DenseNetConfig(12, (12, 12, 12), stem="cifar", stem_chs=16, bottleneck=False,
                                            compression=1.0),
                             "DenseNet (L=40, k=12), no bottleneck or compression, for 32x32 images: 1.0M "
                             "parameters (Table 2)."),
}

# Each stem's standard input and classes: ImageNet's, and CIFAR-10's for the small-image networks.
register_variants(DenseNet, VARIANTS, paper=PAPER,
                  input_size=lambda cfg: (3, 224, 224) if cfg.stem == "imagenet" else (3, 32, 32),
                  num_classes=lambda cfg: 1000 if cfg.stem == "imagenet" else 10,
                  min_size=lambda cfg: min_input_size(cfg.stem, len(cfg.block_config)))


def _torchvision_rules(num_blocks: int) -> list[tuple[str, str]]:
    """torchvision's features.denseblock{i}.denselayer{j}.{norm1,conv1,norm2,conv2} onto our stages.

    Old checkpoints spell the layer keys ``norm.1``/``conv.2`` (torchvision renames them when it loads
    its own weights); the rules accept both spellings.
    """
    rules = [
        (r"^features\.conv0\.", "stem.conv."),
        (r"^features\.norm0\.", "stem.bn."),
        (rf"^features\.norm{num_blocks + 1}\.", "final_norm.bn."),
        (r"^classifier\.", "head.fc."),
    ]
    for i in range(1, num_blocks + 1):
        layer = rf"^features\.denseblock{i}\.(denselayer\d+)\."
        ours = rf"stages.{i - 1}.block.\1."
        rules += [
            (layer + r"norm\.?1\.", ours + "bottleneck.bn."),
            (layer + r"conv\.?1\.", ours + "bottleneck.conv."),
            (layer + r"norm\.?2\.", ours + "conv3x3.bn."),
            (layer + r"conv\.?2\.", ours + "conv3x3.conv."),
        ]
        if i < num_blocks:
            rules += [
                (rf"^features\.transition{i}\.norm\.", f"stages.{i}.transition.bn."),
                (rf"^features\.transition{i}\.conv\.", f"stages.{i}.transition.conv."),
            ]
    return rules


@register_converter("densenet")
def _convert(name: str, state_dict: StateDict) -> dict[str, torch.Tensor]:
    return remap_keys(state_dict, _torchvision_rules(len(VARIANTS[name].cfg.block_config)))
