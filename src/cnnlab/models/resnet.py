"""He et al. 2016, Deep Residual Learning for Image Recognition (CVPR).

One ``ResNet`` class covers the family; every variant is a field of ``ResNetConfig``:

- ResNet-A/B (He et al. 2019, Bag of Tricks): the stride of a bottleneck's downsampling block sits on the
  first 1x1 conv in the original paper (``stride_in_1x1=True``) and on the 3x3 conv in torchvision (the
  default, ResNet-B).
- ResNet-C (Bag of Tricks): ``stem_type="deep"`` replaces the 7x7 stem conv by three 3x3 convs (32, 32, 64).
- ResNet-D (Bag of Tricks): ``avg_down=True`` makes the projection shortcut a 2x2 average pool followed by a
  stride-1 1x1 conv, so the shortcut no longer skips three quarters of its input.
- Pre-activation ResNet (He et al. 2016, Identity Mappings in Deep Residual Networks): ``preact=True`` puts
  BN-ReLU before every conv, keeps the shortcut path free of activations and adds a final BN-ReLU before
  the pooling.
- ResNeXt (Xie et al. 2017, Aggregated Residual Transformations): ``groups`` and ``width_per_group`` of the
  bottleneck's grouped 3x3 conv.
- Wide ResNet (Zagoruyko & Komodakis 2016, Wide Residual Networks): ``width_factor`` k widens the 3x3 convs.
- Stochastic depth (Huang et al. 2016, Deep Networks with Stochastic Depth): ``drop_path_rate`` drops whole
  residual branches per sample, with a rate rising linearly to ``drop_path_rate`` at the last block.
- Shortcut option A of the ResNet paper (``shortcut="A"``): parameter-free identity shortcuts that subsample
  with stride 2 and zero-pad the new channels (the CIFAR ResNets of ``resnet_cifar`` use it).
- Plain networks (``shortcut="none"``): the same layers without any shortcut, neither identity nor projection,
  so no block adds its input back: the ResNet paper's "plain" baselines (section 4.1) and the "noshort" nets of
  Li et al. 2018, Visualizing the Loss Landscape of Neural Nets.

The ten networks torchvision also has (resnet18 ... wide_resnet101_2) match it exactly: parameters, MACs,
and a converted state_dict loads strictly and gives the same outputs.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import CheckpointError, ConfigError
from cnnlab.models._base import FeatureInfo, ZooModel
from cnnlab.models._registry import Variant, register_converter, register_variants, remap_keys
from cnnlab.models.layers import (
    ClassifierHead,
    ConvNormAct,
    LayerFactory,
    check_choice,
    check_rate,
    init_kaiming,
    make_act,
    make_drop_path,
    stochastic_depth_rates,
    zero_norm_weight,
)

__all__ = [
    "VARIANTS",
    "BasicBlock",
    "Bottleneck",
    "NormAct",
    "PadShortcut",
    "PreActBasicBlock",
    "PreActBottleneck",
    "ResNet",
    "ResNetConfig",
    "bottleneck_width",
    "projection_shortcut",
]

PAPER = "He et al. 2016, Deep Residual Learning for Image Recognition"
_TRICKS_PAPER = "He et al. 2019, Bag of Tricks for Image Classification with Convolutional Neural Networks"
_PREACT_PAPER = "He et al. 2016, Identity Mappings in Deep Residual Networks"
_RESNEXT_PAPER = "Xie et al. 2017, Aggregated Residual Transformations for Deep Neural Networks"
_WRN_PAPER = "Zagoruyko & Komodakis 2016, Wide Residual Networks"

BLOCK_TYPES = ("basic", "bottleneck")
STEM_TYPES = ("", "deep", "cifar")
SHORTCUT_TYPES = ("A", "B", "none")
EXPANSION = {"basic": 1, "bottleneck": 4}  # block output channels = expansion x stage width (x k if basic)


# ----------------------------------------------------------------------------------------------- helpers


def bottleneck_width(planes: int, width_per_group: int = 64, groups: int = 1, width_factor: int = 1) -> int:
    """Channels of a bottleneck's 3x3 conv: int(planes * k * width_per_group / 64) * groups."""
    return int(planes * width_factor * width_per_group / 64) * groups


def _conv(in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    # Every conv of the family is bias-free: a norm layer (before or after it) supplies the shift.
    return nn.Conv2d(in_chs, out_chs, kernel_size, stride, kernel_size // 2, groups=groups, bias=False)


def _conv_norm(in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, groups: int = 1, *,
               norm_layer: LayerFactory | None, act_layer: LayerFactory | None) -> ConvNormAct:
    return ConvNormAct(in_chs, out_chs, kernel_size, stride, groups=groups, bias=False,
                       norm_layer=norm_layer, act_layer=act_layer)


class NormAct(nn.Sequential):
    """NormAct: norm -> activation, the unit that precedes each conv of a pre-activation network."""

    def __init__(self, channels: int, norm_layer: LayerFactory = nn.BatchNorm2d,
                 act_layer: LayerFactory = nn.ReLU) -> None:
        super().__init__()
        self.bn = norm_layer(channels)
        self.act = make_act(act_layer)


# ------------------------------------------------------------------------------------------------ shortcuts


class PadShortcut(nn.Module):
    """Option-A shortcut: identity with stride-s subsampling and zero-padded new channels (no parameters)."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1) -> None:
        super().__init__()
        if out_chs < in_chs:
            raise ConfigError(f"a zero-padding shortcut cannot reduce channels ({in_chs} -> {out_chs}); "
                             "use shortcut='B' (projection)")
        self.in_chs, self.out_chs, self.stride = in_chs, out_chs, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, ::self.stride, ::self.stride]  # same size as a padded 3x3 stride-s conv: ceil(H / s)
        return F.pad(x, (0, 0, 0, 0, 0, self.out_chs - self.in_chs))  # new channels are zeros

    def extra_repr(self) -> str:
        return f"{self.in_chs}, {self.out_chs}, stride={self.stride}"


def projection_shortcut(in_chs: int, out_chs: int, stride: int, avg_down: bool = False,
                        norm_layer: LayerFactory | None = nn.BatchNorm2d) -> nn.Sequential:
    """Option-B shortcut: [2x2 avg-pool (ResNet-D)] -> 1x1 conv -> [norm] (no norm in pre-activation nets)."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    if avg_down and stride > 1:
        # ceil_mode and count_include_pad=False keep odd sizes equal to the strided 3x3 conv's output.
        layers["pool"] = nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False)
        stride = 1
    layers["conv"] = _conv(in_chs, out_chs, 1, stride)
    if norm_layer is not None:
        layers["bn"] = norm_layer(out_chs)
    return nn.Sequential(layers)


# --------------------------------------------------------------------------------------------------- blocks


class _ResidualBlock(nn.Module):
    """What every ResNet block ends with: its shortcut, drop-path and (post-activation only) final activation."""

    downsample: nn.Module | None
    last: str  # the unit that closes the residual branch
    skip: bool  # False in a plain network: the block is its branch alone, nothing is added back

    def _close(self, downsample: nn.Module | None, drop_path_rate: float,
               act_layer: LayerFactory | None = None, skip: bool = True) -> None:
        # Registered after the branch's layers, so the state_dict lists them in network order.
        if not skip and (downsample is not None or drop_path_rate > 0):
            raise ConfigError("a block without a shortcut has no projection and no branch to drop")
        self.skip = skip
        self.downsample = downsample
        self.drop_path = make_drop_path(drop_path_rate)
        if act_layer is not None:
            self.act = make_act(act_layer)


class _PostActBlock(_ResidualBlock):
    """Frame of BasicBlock and Bottleneck: act(drop_path(residual(x)) + shortcut(x)); act(residual(x)) if plain."""

    def zero_init_last(self) -> None:
        """Zero the last norm's scale so the block starts as the identity (Goyal et al. 2017)."""
        zero_norm_weight(getattr(getattr(self, self.last), "bn", None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.drop_path(self.residual(x))
        if self.skip:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.act(out)


class _PreActBlock(_ResidualBlock):
    """Frame of the pre-activation blocks: drop_path(residual(norm1(x))) + shortcut (none if plain), no activation
    after."""

    def zero_init_last(self) -> None:
        """Zero the last conv so the block starts as the identity (no norm follows it here)."""
        nn.init.zeros_(getattr(self, self.last).weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.norm1(x)
        out = self.drop_path(self.residual(pre))
        if not self.skip:
            return out
        # A shape-changing shortcut reads the activated input, as in the paper's code; identity reads x.
        return out + (x if self.downsample is None else self.downsample(pre))


class BasicBlock(_PostActBlock):
    """BasicBlock: 3x3 (stride), 3x3, + shortcut, ReLU."""

    last = "conv2"

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, downsample: nn.Module | None = None,
                 norm_layer: LayerFactory = nn.BatchNorm2d, act_layer: LayerFactory = nn.ReLU,
                 drop_path_rate: float = 0.0, drop_rate: float = 0.0, skip: bool = True) -> None:
        super().__init__()
        self.conv1 = _conv_norm(in_chs, out_chs, 3, stride, norm_layer=norm_layer, act_layer=act_layer)
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()  # WRN's dropout between convs
        self.conv2 = _conv_norm(out_chs, out_chs, 3, norm_layer=norm_layer, act_layer=None)
        self._close(downsample, drop_path_rate, act_layer, skip)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.drop(self.conv1(x)))


class Bottleneck(_PostActBlock):
    """Bottleneck: 1x1, 3x3 (stride, groups), 1x1, + shortcut, ReLU; stride on the first 1x1 in ResNet-A."""

    last = "conv3"

    def __init__(self, in_chs: int, mid_chs: int, out_chs: int, stride: int = 1,
                 downsample: nn.Module | None = None, groups: int = 1, stride_in_1x1: bool = False,
                 norm_layer: LayerFactory = nn.BatchNorm2d, act_layer: LayerFactory = nn.ReLU,
                 drop_path_rate: float = 0.0, skip: bool = True) -> None:
        super().__init__()
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = _conv_norm(in_chs, mid_chs, 1, s1, norm_layer=norm_layer, act_layer=act_layer)
        self.conv2 = _conv_norm(mid_chs, mid_chs, 3, s3, groups, norm_layer=norm_layer, act_layer=act_layer)
        self.conv3 = _conv_norm(mid_chs, out_chs, 1, norm_layer=norm_layer, act_layer=None)
        self._close(downsample, drop_path_rate, act_layer, skip)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(self.conv2(self.conv1(x)))


class PreActBasicBlock(_PreActBlock):
    """PreActBasicBlock: BN-ReLU, 3x3 (stride), BN-ReLU, [dropout], 3x3, + shortcut (no activation after)."""

    last = "conv2"

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, downsample: nn.Module | None = None,
                 norm_layer: LayerFactory = nn.BatchNorm2d, act_layer: LayerFactory = nn.ReLU,
                 drop_path_rate: float = 0.0, drop_rate: float = 0.0, skip: bool = True) -> None:
        super().__init__()
        self.norm1 = NormAct(in_chs, norm_layer, act_layer)
        self.conv1 = _conv(in_chs, out_chs, 3, stride)
        self.norm2 = NormAct(out_chs, norm_layer, act_layer)
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()  # WRN's dropout between convs
        self.conv2 = _conv(out_chs, out_chs, 3)
        self._close(downsample, drop_path_rate, skip=skip)

    def residual(self, pre: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.drop(self.norm2(self.conv1(pre))))


class PreActBottleneck(_PreActBlock):
    """PreActBottleneck: BN-ReLU, 1x1, BN-ReLU, 3x3 (stride, groups), BN-ReLU, 1x1, + shortcut."""

    last = "conv3"

    def __init__(self, in_chs: int, mid_chs: int, out_chs: int, stride: int = 1,
                 downsample: nn.Module | None = None, groups: int = 1, stride_in_1x1: bool = False,
                 norm_layer: LayerFactory = nn.BatchNorm2d, act_layer: LayerFactory = nn.ReLU,
                 drop_path_rate: float = 0.0, skip: bool = True) -> None:
        super().__init__()
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.norm1 = NormAct(in_chs, norm_layer, act_layer)
        self.conv1 = _conv(in_chs, mid_chs, 1, s1)
        self.norm2 = NormAct(mid_chs, norm_layer, act_layer)
        self.conv2 = _conv(mid_chs, mid_chs, 3, s3, groups)
        self.norm3 = NormAct(mid_chs, norm_layer, act_layer)
        self.conv3 = _conv(mid_chs, out_chs, 1)
        self._close(downsample, drop_path_rate, skip=skip)

    def residual(self, pre: torch.Tensor) -> torch.Tensor:
        return self.conv3(self.norm3(self.conv2(self.norm2(self.conv1(pre)))))


# ---------------------------------------------------------------------------------------------------- model


@dataclass(frozen=True)
class ResNetConfig:
    """The architecture of one ResNet variant (the first stage has stride 1, every later one stride 2)."""

    block: str  # "basic" (two 3x3 convs) or "bottleneck" (1x1, 3x3, 1x1 with 4x expansion)
    depths: tuple[int, ...]  # residual blocks per stage
    widths: tuple[int, ...] = (64, 128, 256, 512)  # per-stage base width ("planes"); a bottleneck outputs 4x
    stem_type: str = ""  # "": 7x7/2 conv + 3x3/2 max-pool; "deep": three 3x3 + max-pool; "cifar": one 3x3
    stem_width: int = 64  # stem output channels (the deep stem's first two convs have half of it)
    groups: int = 1  # ResNeXt cardinality of the bottleneck's 3x3 conv
    width_per_group: int = 64  # ResNeXt width per group at the first stage (64, groups=1: plain ResNet)
    width_factor: int = 1  # Wide ResNet k: widens a bottleneck's 3x3 conv or a whole basic block
    avg_down: bool = False  # ResNet-D: average-pool then stride-1 1x1 conv in projection shortcuts
    stride_in_1x1: bool = False  # ResNet-A: a bottleneck downsamples in its first 1x1 conv instead of the 3x3
    preact: bool = False  # pre-activation blocks (Identity Mappings) with a final norm-act before pooling
    shortcut: str = "B"  # where the shape changes: "B" 1x1 projection, "A" zero-padded identity; "none": plain

    def __post_init__(self) -> None:
        check_choice("block", self.block, BLOCK_TYPES)
        check_choice("stem_type", self.stem_type, STEM_TYPES)
        check_choice("shortcut", self.shortcut, SHORTCUT_TYPES)
        if not self.depths or len(self.depths) != len(self.widths):
            raise ConfigError(f"depths {self.depths} and widths {self.widths} need one entry per stage each")
        if min(self.depths) < 1 or min(self.widths) < 1 or self.stem_width < 2:
            raise ConfigError("every stage needs at least one block and every width must be positive")
        if self.groups < 1 or self.width_per_group < 1 or self.width_factor < 1:
            raise ConfigError("groups, width_per_group and width_factor must be positive integers")
        if self.block == "basic" and (self.groups != 1 or self.width_per_group != 64):
            raise ConfigError("basic blocks have no grouped conv: use groups=1 and width_per_group=64, "
                              "or block='bottleneck' for ResNeXt")
        if self.block == "basic" and self.stride_in_1x1:
            raise ConfigError("stride_in_1x1 (ResNet-A) applies to bottleneck blocks only")
        if self.avg_down and self.shortcut != "B":
            raise ConfigError("avg_down (ResNet-D) changes projection shortcuts; it needs shortcut='B'")

    @property
    def expansion(self) -> int:
        return EXPANSION[self.block]


def _make_stem(cfg: ResNetConfig, in_chans: int, norm_layer: LayerFactory,
               act_layer: LayerFactory) -> tuple[nn.Sequential, int]:
    """The stem and its total stride; a pre-activation stem ends on a bare conv (the blocks normalize)."""
    last_norm, last_act = (None, None) if cfg.preact else (norm_layer, act_layer)
    width = cfg.stem_width
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    if cfg.stem_type == "deep":
        mid = width // 2
        layers["conv1"] = _conv_norm(in_chans, mid, 3, 2, norm_layer=norm_layer, act_layer=act_layer)
        layers["conv2"] = _conv_norm(mid, mid, 3, norm_layer=norm_layer, act_layer=act_layer)
        layers["conv3"] = _conv_norm(mid, width, 3, norm_layer=last_norm, act_layer=last_act)
    elif cfg.stem_type == "cifar":
        layers["conv1"] = _conv_norm(in_chans, width, 3, norm_layer=last_norm, act_layer=last_act)
        return nn.Sequential(layers), 1
    else:
        layers["conv1"] = _conv_norm(in_chans, width, 7, 2, norm_layer=last_norm, act_layer=last_act)
    layers["pool"] = nn.MaxPool2d(3, 2, 1)
    return nn.Sequential(layers), 4


def _make_shortcut(cfg: ResNetConfig, in_chs: int, out_chs: int, stride: int,
                   norm_layer: LayerFactory) -> nn.Module | None:
    if cfg.shortcut == "none" or (stride == 1 and in_chs == out_chs):
        return None
    if cfg.shortcut == "A":
        return PadShortcut(in_chs, out_chs, stride)
    # Pre-activation projections are bare convs: the next block's pre-activation normalizes the sum.
    return projection_shortcut(in_chs, out_chs, stride, cfg.avg_down, None if cfg.preact else norm_layer)


def _make_block(cfg: ResNetConfig, in_chs: int, planes: int, stride: int, drop_path_rate: float,
                drop_rate: float, norm_layer: LayerFactory, act_layer: LayerFactory) -> tuple[nn.Module, int]:
    """One residual block and its output channels."""
    if cfg.block == "basic":
        out_chs = planes * cfg.width_factor
        block_cls = PreActBasicBlock if cfg.preact else BasicBlock
        downsample = _make_shortcut(cfg, in_chs, out_chs, stride, norm_layer)
        return block_cls(in_chs, out_chs, stride, downsample, norm_layer=norm_layer, act_layer=act_layer,
                         drop_path_rate=drop_path_rate, drop_rate=drop_rate, skip=cfg.shortcut != "none"), out_chs
    out_chs = planes * cfg.expansion
    mid_chs = bottleneck_width(planes, cfg.width_per_group, cfg.groups, cfg.width_factor)
    block_cls = PreActBottleneck if cfg.preact else Bottleneck
    downsample = _make_shortcut(cfg, in_chs, out_chs, stride, norm_layer)
    return block_cls(in_chs, mid_chs, out_chs, stride, downsample, groups=cfg.groups,
                     stride_in_1x1=cfg.stride_in_1x1, norm_layer=norm_layer, act_layer=act_layer,
                     drop_path_rate=drop_path_rate, skip=cfg.shortcut != "none"), out_chs


class ResNet(ZooModel):
    """ResNet: stem -> stages of residual blocks -> [final norm-act if pre-activation] -> pool -> linear."""

    def __init__(
        self,
        cfg: ResNetConfig,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        block_drop_rate: float = 0.0,
        zero_init_residual: bool = False,
        norm_layer: LayerFactory = nn.BatchNorm2d,
        act_layer: LayerFactory = nn.ReLU,
    ) -> None:
        super().__init__(num_classes, in_chans)
        for name, rate in (("drop_rate", drop_rate), ("drop_path_rate", drop_path_rate),
                           ("block_drop_rate", block_drop_rate)):
            check_rate(name, rate)
        if block_drop_rate > 0 and cfg.block != "basic":
            raise ConfigError("block_drop_rate (dropout between the two convs, as in WRNs) needs basic blocks")
        if cfg.shortcut == "none" and (drop_path_rate > 0 or zero_init_residual):
            raise ConfigError("a plain network (shortcut='none') has no residual branches: leave out drop_path_rate "
                              "and zero_init_residual (zeroing a block's last norm would cut the network)")
        self.cfg = cfg
        self.stem, reduction = _make_stem(cfg, in_chans, norm_layer, act_layer)

        in_chs = cfg.stem_width
        stages: list[nn.Sequential] = []
        self.feature_info = []
        rates = stochastic_depth_rates(cfg.depths, drop_path_rate)
        for i, (depth, planes) in enumerate(zip(cfg.depths, cfg.widths, strict=True)):
            stride = 1 if i == 0 else 2
            blocks = []
            for j in range(depth):
                block, in_chs = _make_block(cfg, in_chs, planes, stride if j == 0 else 1, rates[i][j],
                                            block_drop_rate, norm_layer, act_layer)
                blocks.append(block)
            stages.append(nn.Sequential(*blocks))
            reduction *= stride
            self.feature_info.append(FeatureInfo(f"stages.{i}", in_chs, reduction))
        self.stages = nn.Sequential(*stages)
        # Identity Mappings: the last block's sum is not activated, so normalize it once before pooling.
        self.final_norm = NormAct(in_chs, norm_layer, act_layer) if cfg.preact else nn.Identity()
        if cfg.preact:
            self.feature_info[-1] = FeatureInfo("final_norm", in_chs, reduction)
        self.num_features = in_chs
        self.head = ClassifierHead(in_chs, num_classes, drop_rate=drop_rate)

        init_kaiming(self, linear_std=None)  # torchvision's init: He fan-out convs, default linear
        if zero_init_residual:
            for m in self.modules():
                if hasattr(m, "zero_init_last"):
                    m.zero_init_last()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.final_norm(self.stages(self.stem(x)))  # (B, C, H/32, W/32) for the ImageNet stems


# ----------------------------------------------------------------------------------------------- variants

_DEPTHS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
_PREACT_DOCS = {18: "Pre-activation ResNet-18: BN-ReLU before each conv, final BN-ReLU before pooling.",
                34: "Pre-activation ResNet-34.", 50: "Pre-activation ResNet-50 (bottlenecks).",
                101: "Pre-activation ResNet-101.", 152: "Pre-activation ResNet-152."}


def _plain(depth: int, **kw) -> ResNetConfig:
    return ResNetConfig("basic" if depth < 50 else "bottleneck", _DEPTHS[depth], **kw)


_RESNEXT = {"paper": _RESNEXT_PAPER}
_WRN = {"paper": _WRN_PAPER}
_TRICKS = {"paper": _TRICKS_PAPER}
_PREACT = {"paper": _PREACT_PAPER}

VARIANTS: dict[str, Variant] = {
    "resnet18": Variant(_plain(18), "ResNet-18: basic blocks (2, 2, 2, 2).", torchvision=True),
    "resnet34": Variant(_plain(34), "ResNet-34: basic blocks (3, 4, 6, 3).", torchvision=True),
    "resnet50": Variant(_plain(50), "ResNet-50: bottlenecks (3, 4, 6, 3), stride on the 3x3 (ResNet-B, as "
                                    "torchvision).", torchvision=True),
    "resnet101": Variant(_plain(101), "ResNet-101: bottlenecks (3, 4, 23, 3).", torchvision=True),
    "resnet152": Variant(_plain(152), "ResNet-152: bottlenecks (3, 8, 36, 3).", torchvision=True),
    "resnext50_32x4d": Variant(_plain(50, groups=32, width_per_group=4), "ResNeXt-50 32x4d: ResNet-50 with 32 "
                               "groups of width 4 in the first stage's 3x3 convs.", entry=_RESNEXT, torchvision=True),
    "resnext101_32x8d": Variant(_plain(101, groups=32, width_per_group=8), "ResNeXt-101 32x8d.",
                                entry=_RESNEXT, torchvision=True),
    "resnext101_64x4d": Variant(_plain(101, groups=64, width_per_group=4), "ResNeXt-101 64x4d.",
                                entry=_RESNEXT, torchvision=True),
    "wide_resnet50_2": Variant(_plain(50, width_factor=2), "WRN-50-2-bottleneck: ResNet-50 with twice as wide "
                               "3x3 convs (k = 2).", entry=_WRN, torchvision=True),
    "wide_resnet101_2": Variant(_plain(101, width_factor=2), "WRN-101-2-bottleneck: ResNet-101 with twice as "
                                "wide 3x3 convs (k = 2).", entry=_WRN, torchvision=True),
    "resnet50c": Variant(_plain(50, stem_type="deep"), "ResNet-50-C: deep stem of three 3x3 convs (32, 32, 64).",
                         entry=_TRICKS),
    **{f"resnet{d}d": Variant(_plain(d, stem_type="deep", avg_down=True), f"ResNet-{d}-D: deep stem and "
                              "average-pool projection shortcuts.", entry=_TRICKS) for d in _DEPTHS},
    **{f"preact_resnet{d}": Variant(_plain(d, preact=True), doc, entry=_PREACT)
       for d, doc in _PREACT_DOCS.items()},
}

register_variants(ResNet, VARIANTS, paper=PAPER, min_size=1)


# ------------------------------------------------------------------------------------ torchvision conversion


def _torchvision_rules() -> list[tuple[str, str]]:
    rules = [
        (r"^conv1\.", "stem.conv1.conv."),
        (r"^bn1\.", "stem.conv1.bn."),
        (r"^fc\.", "head.fc."),
    ]
    for i in range(1, 5):  # torchvision's layer1..layer4 are our stages.0..3
        rules += [
            (rf"^layer{i}\.(\d+)\.conv(\d)\.", rf"stages.{i - 1}.\1.conv\2.conv."),
            (rf"^layer{i}\.(\d+)\.bn(\d)\.", rf"stages.{i - 1}.\1.conv\2.bn."),
            (rf"^layer{i}\.(\d+)\.downsample\.0\.", rf"stages.{i - 1}.\1.downsample.conv."),
            (rf"^layer{i}\.(\d+)\.downsample\.1\.", rf"stages.{i - 1}.\1.downsample.bn."),
        ]
    return rules


@register_converter("resnet")
def _convert_torchvision(name: str, state_dict) -> dict[str, torch.Tensor]:
    """torchvision ResNet/ResNeXt/Wide ResNet keys -> ours (one map for the whole family)."""
    stray = [k for k in state_dict if not re.match(r"^(conv1|bn1|fc|layer[1-4])\.", k)]
    if stray:
        raise CheckpointError(f"{name}: not a torchvision ResNet state_dict (unexpected key {stray[0]!r})")
    return remap_keys(state_dict, _torchvision_rules())
