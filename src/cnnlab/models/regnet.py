"""Radosavovic et al. 2020, Designing Network Design Spaces (CVPR 2020): AnyNet, RegNetX and RegNetY.

AnyNet is the paper's generic network: a stem (3x3 stride-2 conv-BN-ReLU, 32 channels; the paper's
figure calls this width w0, which is not the RegNet parameter w_0), four stages of residual bottleneck
blocks and a head (global average pool + linear). Each stage i is free in its depth d_i, width w_i,
bottleneck ratio b_i, group width g_i and stride; an X block is 1x1, 3x3 grouped (stride), 1x1 + shortcut,
a Y block adds squeeze-excitation after the 3x3 conv. RegNet restricts AnyNet to quantized linear widths:
u_j = w_0 + w_a * j for block j < depth, s_j = round(log(u_j / w_0) / log(w_m)), w_j = w_0 * w_m^s_j
rounded to a multiple of 8; consecutive blocks of equal width form a stage. Finally each stage width is
adjusted so that its bottleneck width is a multiple of its group width.

Two model tables live here and they are not the same networks:

* ``regnetx_*`` / ``regnety_*`` are the paper's models as pycls's model zoo (``configs/dds_baselines``)
  defines them; ``tests/golden/published/regnet.json`` checks their parameters and FLOPs against the
  paper's tables as pycls's MODEL_ZOO.md lists them.
* ``regnet_x_*`` / ``regnet_y_*`` are torchvision's, with exactly torchvision's parameters, MACs and
  state_dict (through ``convert_torchvision``).

How torchvision's RegNets differ from pycls's (checked against pycls ``models/regnet.py``,
``models/blocks.py``, ``models/anynet.py`` and torchvision 0.29 ``models/regnet.py``):

* The (w_0, w_a, w_m, depth, group width) tuples of the shared sizes are the same (X 400MF, 800MF,
  1.6GF, 3.2GF, 8GF, 16GF, 32GF; Y 400MF, 800MF, 1.6GF, 3.2GF, 8GF, 16GF, 32GF), and so are the stem,
  the blocks and the SE width: both compute it from the block's *input* width, round(0.25 * w_in), and
  apply SE on the bottleneck width after the 3x3 conv. The quantized per-block widths are identical.
* The difference is the group-compatibility rounding of the stage widths. pycls rounds the bottleneck
  width to the nearest multiple of the group width with Python's round (ties to even, at least one
  group); torchvision uses ``_make_divisible`` (ties round up, and a result more than 10% below the
  input is bumped up one group). Three torchvision models come out different from the paper's:
  regnet_x_400mf (last stage 400 instead of 384: 5.50M vs 5.16M parameters), regnet_y_800mf
  (stages 144/784 instead of 128/768: 6.43M vs 6.26M) and regnet_y_8gf (first stage 224 instead of
  168: 39.38M vs 39.18M). timm names these ``regnetx_004_tv``, ``regnety_008_tv`` and
  ``regnety_080_tv`` ("torchvision group rounding"). The rule would also change the paper's X-4.0GF
  and Y-4.0GF, which torchvision lacks. Every other shared size is the same network in both.
* torchvision computes the widths with float32 tensors, pycls with float64 numpy; here they are pure
  Python floats (no tensor math, so builders work under ``torch.device("meta")``), which reproduce both
  for every registered configuration (``tests/test_regnet.py`` checks torchvision's directly).
* regnet_y_128gf (the SEER network) is torchvision-only; the paper's tables stop at 32GF.
* Tensor names differ (pycls ``s1.b1.f.a``, torchvision ``trunk_output.block1.block1-0.f.a.0``); the
  converter maps torchvision's onto ours (``stages.0.0.conv1.conv``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.models._base import FeatureInfo, ZooModel
from cnnlab.models._registry import Variant, register_converter, register_model, register_variants, remap_keys
from cnnlab.models.layers import (
    ClassifierHead,
    ConvNormAct,
    LayerFactory,
    SqueezeExcite,
    check_choice,
    check_rate,
    init_kaiming,
    make_divisible,
    make_drop_path,
    stochastic_depth_rates,
    zero_norm_weight,
)

__all__ = [
    "PAPER_VARIANTS",
    "TORCHVISION_VARIANTS",
    "AnyNet",
    "AnyNetConfig",
    "AnyStage",
    "RegNetParams",
    "ResBottleneckBlock",
    "adjust_widths_to_groups",
    "bottleneck_width",
    "generate_regnet_widths",
    "regnet_block_widths",
]

PAPER = "Radosavovic et al. 2020, Designing Network Design Spaces"
WIDTH_ROUNDINGS = ("pycls", "torchvision")


# ----------------------------------------------------------------------------------------------------------
# The RegNet generator: pure Python, usable on its own for design-space exploration
# ----------------------------------------------------------------------------------------------------------


def _check_regnet_params(w_0: int, w_a: float, w_m: float, depth: int, quantum: int) -> None:
    if depth < 1:
        raise ConfigError(f"RegNet depth must be at least 1, got {depth}")
    if w_a < 0 or w_0 <= 0 or w_m <= 1:
        raise ConfigError(f"RegNet needs w_a >= 0, w_0 > 0 and w_m > 1, got w_a={w_a}, w_0={w_0}, w_m={w_m}")
    if w_0 % quantum != 0:
        raise ConfigError(f"RegNet's w_0 must be a multiple of the width quantum {quantum}, got w_0={w_0}")


def regnet_block_widths(w_0: int, w_a: float, w_m: float, depth: int, quantum: int = 8) -> list[int]:
    """Per-block widths of a RegNet: u_j = w_0 + w_a j snapped to w_0 * w_m^k, then to multiples of q."""
    _check_regnet_params(w_0, w_a, w_m, depth, quantum)
    widths = []
    for j in range(depth):
        u = w_0 + w_a * j  # the continuous (linear) width of block j
        k = round(math.log(u / w_0) / math.log(w_m))
        widths.append(round(w_0 * w_m**k / quantum) * quantum)
    return widths


def generate_regnet_widths(
    w_0: int, w_a: float, w_m: float, depth: int, quantum: int = 8
) -> tuple[list[int], list[int]]:
    """Stage widths and depths of a RegNet: runs of equal block widths, before group-width adjustment."""
    widths: list[int] = []
    depths: list[int] = []
    for w in regnet_block_widths(w_0, w_a, w_m, depth, quantum):
        if widths and widths[-1] == w:
            depths[-1] += 1
        else:
            widths.append(w)
            depths.append(1)
    return widths, depths


def bottleneck_width(width: int, ratio: float) -> int:
    """Width of a block's 1x1 -> 3x3 -> 1x1 inner convs: round(width * ratio)."""
    return int(round(width * ratio))


def _round_to_groups_pycls(w_bot: int, group_width: int, ratio: float) -> int:
    # pycls: nearest multiple (ties to even), of lcm(g, b) when the ratio is an integer > 1 so that
    # w = w_bot / b stays an integer.
    m = math.lcm(group_width, int(ratio)) if ratio > 1 else group_width
    return max(m, int(round(w_bot / m) * m))


def adjust_widths_to_groups(
    widths: Sequence[int],
    bottleneck_ratios: Sequence[float],
    group_widths: Sequence[int],
    rounding: str = "pycls",
) -> tuple[list[int], list[int]]:
    """Stage widths and group widths adjusted so each bottleneck width is a whole number of groups."""
    check_choice("rounding", rounding, WIDTH_ROUNDINGS)
    if not len(widths) == len(bottleneck_ratios) == len(group_widths):
        raise ConfigError("widths, bottleneck_ratios and group_widths need one entry per stage")
    new_widths, new_groups = [], []
    for w, b, g in zip(widths, bottleneck_ratios, group_widths):
        w_bot = max(1, int(w * b))
        g = min(g, w_bot)  # a group cannot be wider than the whole bottleneck
        w_bot = _round_to_groups_pycls(w_bot, g, b) if rounding == "pycls" else make_divisible(w_bot, g)
        new_widths.append(int(w_bot / b))
        new_groups.append(g)
    return new_widths, new_groups


# ----------------------------------------------------------------------------------------------------------
# Configurations
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnyNetConfig:
    """One AnyNet: per-stage depth, width, group width, bottleneck ratio and stride, plus SE and stem."""

    depths: tuple[int, ...]
    widths: tuple[int, ...]
    group_widths: tuple[int, ...]
    bottleneck_ratios: tuple[float, ...]
    strides: tuple[int, ...]
    se_ratio: float = 0.0  # 0: X blocks; > 0: Y blocks with SE width round(se_ratio * block input width)
    stem_width: int = 32
    stem_stride: int = 2

    def __post_init__(self) -> None:
        for field in ("depths", "widths", "group_widths", "bottleneck_ratios", "strides"):
            object.__setattr__(self, field, tuple(getattr(self, field)))
        n = len(self.depths)
        if n == 0:
            raise ConfigError("an AnyNet needs at least one stage")
        lengths = {len(self.widths), len(self.group_widths), len(self.bottleneck_ratios), len(self.strides)}
        if lengths != {n}:
            raise ConfigError(
                "depths, widths, group_widths, bottleneck_ratios and strides need one entry per stage")
        if min(self.depths) < 1 or min(self.widths) < 1 or min(self.group_widths) < 1:
            raise ConfigError("stage depths, widths and group widths must be positive")
        if min(self.strides) < 1 or self.stem_stride < 1 or self.stem_width < 1:
            raise ConfigError("strides and the stem width must be positive")
        check_rate("se_ratio", self.se_ratio)
        for i, (w, b, g) in enumerate(zip(self.widths, self.bottleneck_ratios, self.group_widths)):
            w_bot = bottleneck_width(w, b)
            if w_bot < 1 or w_bot % g:
                raise ConfigError(
                    f"stage {i}: bottleneck width {w_bot} (= round({w} * {b})) is not a multiple of group "
                    f"width {g}; adjust the widths with adjust_widths_to_groups"
                )

    @property
    def block_type(self) -> str:
        """'Y' (with squeeze-excitation) or 'X'."""
        return "Y" if self.se_ratio > 0 else "X"

    def reductions(self) -> list[int]:
        """Total stride of each stage's output."""
        out, r = [], self.stem_stride
        for s in self.strides:
            r *= s
            out.append(r)
        return out


@dataclass(frozen=True)
class RegNetParams:
    """A point of the RegNet design space: (w_0, w_a, w_m, depth, group width) plus block settings."""

    w_0: int
    w_a: float
    w_m: float
    depth: int
    group_width: int
    bottleneck_ratio: float = 1.0
    se_ratio: float = 0.0
    stem_width: int = 32
    stride: int = 2
    quantum: int = 8
    width_rounding: str = "pycls"  # group-compatibility rounding: "pycls" (the paper) or "torchvision"

    def __post_init__(self) -> None:
        check_choice("width_rounding", self.width_rounding, WIDTH_ROUNDINGS)

    def to_anynet(self) -> AnyNetConfig:
        """The AnyNet this RegNet generates."""
        widths, depths = generate_regnet_widths(self.w_0, self.w_a, self.w_m, self.depth, self.quantum)
        n = len(widths)
        ratios = [self.bottleneck_ratio] * n
        widths, groups = adjust_widths_to_groups(widths, ratios, [self.group_width] * n, self.width_rounding)
        return AnyNetConfig(
            depths=tuple(depths),
            widths=tuple(widths),
            group_widths=tuple(groups),
            bottleneck_ratios=tuple(ratios),
            strides=(self.stride,) * n,
            se_ratio=self.se_ratio,
            stem_width=self.stem_width,
        )


# ----------------------------------------------------------------------------------------------------------
# Blocks
# ----------------------------------------------------------------------------------------------------------


class ResBottleneckBlock(nn.Module):
    """X/Y block: 1x1, 3x3 grouped (stride), [SE], 1x1, + shortcut (1x1 conv-BN if shape changes), ReLU."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        stride: int = 1,
        group_width: int = 1,
        bottleneck_ratio: float = 1.0,
        se_ratio: float = 0.0,
        norm_layer: LayerFactory = nn.BatchNorm2d,
        act_layer: LayerFactory = nn.ReLU,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        w_b = bottleneck_width(out_chs, bottleneck_ratio)
        na = {"norm_layer": norm_layer, "act_layer": act_layer}
        self.conv1 = ConvNormAct(in_chs, w_b, 1, **na)
        self.conv2 = ConvNormAct(w_b, w_b, 3, stride=stride, groups=w_b // group_width, **na)
        # Both pycls and torchvision size the SE bottleneck from the block's input width, not w_b.
        se_chs = int(round(se_ratio * in_chs))
        self.se = SqueezeExcite(w_b, se_chs, act_layer=act_layer) if se_ratio > 0 else nn.Identity()
        self.conv3 = ConvNormAct(w_b, out_chs, 1, norm_layer=norm_layer, act_layer=None)
        if in_chs != out_chs or stride != 1:
            self.shortcut: nn.Module = ConvNormAct(in_chs, out_chs, 1, stride=stride, norm_layer=norm_layer,
                                                   act_layer=None)
        else:
            self.shortcut = nn.Identity()
        self.drop_path = make_drop_path(drop_path_rate)
        self.act = act_layer()

    def zero_init_last(self) -> None:
        """Start the residual branch at zero (last norm's scale = 0) so the block begins as the identity."""
        zero_norm_weight(getattr(self.conv3, "bn", None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.shortcut(x)
        x = self.conv3(self.se(self.conv2(self.conv1(x))))
        return self.act(self.drop_path(x) + shortcut)


class AnyStage(nn.Sequential):
    """Stage: ``depth`` blocks of one width; the first takes the stride and the width change."""

    def __init__(self, in_chs: int, out_chs: int, stride: int, depth: int, drop_path_rates: Sequence[float],
                 **block_kwargs) -> None:
        super().__init__(*(
            ResBottleneckBlock(in_chs if i == 0 else out_chs, out_chs, stride if i == 0 else 1,
                               drop_path_rate=drop_path_rates[i], **block_kwargs)
            for i in range(depth)
        ))


# ----------------------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------------------


class AnyNet(ZooModel):
    """AnyNet: stem (3x3 s2 conv-BN-ReLU) -> stages of X/Y bottleneck blocks -> global pool + linear.

    A ``RegNetParams`` config builds the AnyNet it generates (``to_anynet``).
    """

    def __init__(
        self,
        config: AnyNetConfig | RegNetParams,
        num_classes: int = 1000,
        in_chans: int = 3,
        norm_layer: LayerFactory = nn.BatchNorm2d,
        act_layer: LayerFactory = nn.ReLU,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        zero_init_last: bool = False,
    ) -> None:
        super().__init__(num_classes, in_chans)
        check_rate("drop_rate", drop_rate)
        check_rate("drop_path_rate", drop_path_rate)
        if isinstance(config, RegNetParams):
            config = config.to_anynet()
        self.config = config
        na = {"norm_layer": norm_layer, "act_layer": act_layer}
        self.stem = ConvNormAct(in_chans, config.stem_width, 3, stride=config.stem_stride, **na)
        self.stages = nn.Sequential(*self._make_stages(config, drop_path_rate, na))
        self.num_features = config.widths[-1]
        self.head = ClassifierHead(self.num_features, num_classes, drop_rate=drop_rate)
        self.feature_info = [
            FeatureInfo(f"stages.{i}", w, r)
            for i, (w, r) in enumerate(zip(config.widths, config.reductions()))
        ]
        init_kaiming(self)
        if zero_init_last:
            for m in self.modules():
                if isinstance(m, ResBottleneckBlock):
                    m.zero_init_last()

    @staticmethod
    def _make_stages(config: AnyNetConfig, drop_path_rate: float, na: dict) -> list[AnyStage]:
        rates = stochastic_depth_rates(config.depths, drop_path_rate)
        stages, prev = [], config.stem_width
        for d, w, g, b, s, r in zip(config.depths, config.widths, config.group_widths, config.bottleneck_ratios,
                                    config.strides, rates):
            stages.append(AnyStage(prev, w, s, d, r, group_width=g, bottleneck_ratio=b, se_ratio=config.se_ratio,
                                   **na))
            prev = w
        return stages


# ----------------------------------------------------------------------------------------------------------
# Variant tables
# ----------------------------------------------------------------------------------------------------------

_SE = 0.25


def _params(block: str, w_0: int, w_a: float, w_m: float, depth: int, group_width: int, **kw) -> RegNetParams:
    return RegNetParams(w_0=w_0, w_a=w_a, w_m=w_m, depth=depth, group_width=group_width,
                        se_ratio=_SE if block == "Y" else 0.0, **kw)


# The paper's models: pycls's configs/dds_baselines/regnet{x,y}/*.yaml (REGNET.W0, WA, WM, DEPTH, GROUP_W).
_PAPER_TABLE = (  # block type, size, w_0, w_a, w_m, depth, group width
    ("X", "200MF", 24, 36.44, 2.49, 13, 8),
    ("X", "400MF", 24, 24.48, 2.54, 22, 16),
    ("X", "600MF", 48, 36.97, 2.24, 16, 24),
    ("X", "800MF", 56, 35.73, 2.28, 16, 16),
    ("X", "1.6GF", 80, 34.01, 2.25, 18, 24),
    ("X", "3.2GF", 88, 26.31, 2.25, 25, 48),
    ("X", "4.0GF", 96, 38.65, 2.43, 23, 40),
    ("X", "6.4GF", 184, 60.83, 2.07, 17, 56),
    ("X", "8.0GF", 80, 49.56, 2.88, 23, 120),
    ("X", "12GF", 168, 73.36, 2.37, 19, 112),
    ("X", "16GF", 216, 55.59, 2.1, 22, 128),
    ("X", "32GF", 320, 69.86, 2.0, 23, 168),
    ("Y", "200MF", 24, 36.44, 2.49, 13, 8),
    ("Y", "400MF", 48, 27.89, 2.09, 16, 8),
    ("Y", "600MF", 48, 32.54, 2.32, 15, 16),
    ("Y", "800MF", 56, 38.84, 2.4, 14, 16),
    ("Y", "1.6GF", 48, 20.71, 2.65, 27, 24),
    ("Y", "3.2GF", 80, 42.63, 2.66, 21, 24),
    ("Y", "4.0GF", 96, 31.41, 2.24, 22, 64),
    ("Y", "6.4GF", 112, 33.22, 2.27, 25, 72),
    ("Y", "8.0GF", 192, 76.82, 2.19, 17, 56),
    ("Y", "12GF", 168, 73.36, 2.37, 19, 112),
    ("Y", "16GF", 200, 106.23, 2.48, 18, 112),
    ("Y", "32GF", 232, 115.89, 2.53, 20, 232),
)

PAPER_VARIANTS: dict[str, Variant] = {
    f"regnet{block.lower()}_{size.lower().replace('.', '_')}":
        Variant(_params(block, *params), f"The paper's RegNet{block}-{size} (pycls model zoo).")
    for block, size, *params in _PAPER_TABLE
}


def _tv(block: str, w_0: int, w_a: float, w_m: float, depth: int, group_width: int, doc: str) -> Variant:
    params = _params(block, w_0, w_a, w_m, depth, group_width, width_rounding="torchvision")
    return Variant(params, doc, torchvision=True)


_SAME = "(the same network as the paper's)"

# torchvision's models (torchvision/models/regnet.py): same tuples, torchvision's width rounding.
TORCHVISION_VARIANTS: dict[str, Variant] = {
    "regnet_x_400mf": _tv("X", 24, 24.48, 2.54, 22, 16, "torchvision's RegNetX-400MF: its width rounding makes "
                                                        "the last stage 400 wide (pycls: 384)."),
    "regnet_x_800mf": _tv("X", 56, 35.73, 2.28, 16, 16, f"torchvision's RegNetX-800MF {_SAME}."),
    "regnet_x_1_6gf": _tv("X", 80, 34.01, 2.25, 18, 24, f"torchvision's RegNetX-1.6GF {_SAME}."),
    "regnet_x_3_2gf": _tv("X", 88, 26.31, 2.25, 25, 48, f"torchvision's RegNetX-3.2GF {_SAME}."),
    "regnet_x_8gf": _tv("X", 80, 49.56, 2.88, 23, 120, "torchvision's RegNetX-8GF (the same network as the "
                                                       "paper's 8.0GF)."),
    "regnet_x_16gf": _tv("X", 216, 55.59, 2.1, 22, 128, f"torchvision's RegNetX-16GF {_SAME}."),
    "regnet_x_32gf": _tv("X", 320, 69.86, 2.0, 23, 168, f"torchvision's RegNetX-32GF {_SAME}."),
    "regnet_y_400mf": _tv("Y", 48, 27.89, 2.09, 16, 8, f"torchvision's RegNetY-400MF {_SAME}."),
    "regnet_y_800mf": _tv("Y", 56, 38.84, 2.4, 14, 16, "torchvision's RegNetY-800MF: its width rounding gives "
                                                       "stages 144/784 (pycls: 128/768)."),
    "regnet_y_1_6gf": _tv("Y", 48, 20.71, 2.65, 27, 24, f"torchvision's RegNetY-1.6GF {_SAME}."),
    "regnet_y_3_2gf": _tv("Y", 80, 42.63, 2.66, 21, 24, f"torchvision's RegNetY-3.2GF {_SAME}."),
    "regnet_y_8gf": _tv("Y", 192, 76.82, 2.19, 17, 56, "torchvision's RegNetY-8GF: its width rounding makes the "
                                                       "first stage 224 wide (pycls: 168)."),
    "regnet_y_16gf": _tv("Y", 200, 106.23, 2.48, 18, 112, f"torchvision's RegNetY-16GF {_SAME}."),
    "regnet_y_32gf": _tv("Y", 232, 115.89, 2.53, 20, 232, f"torchvision's RegNetY-32GF {_SAME}."),
    "regnet_y_128gf": _tv("Y", 456, 160.83, 2.52, 27, 264, "torchvision's RegNetY-128GF (SEER's network; not in "
                                                           "the paper's tables)."),
}

register_variants(AnyNet, {**TORCHVISION_VARIANTS, **PAPER_VARIANTS}, paper=PAPER, min_size=1)


# ----------------------------------------------------------------------------------------------------------
# Torchvision conversion
# ----------------------------------------------------------------------------------------------------------

_TV_BLOCK_PARTS = [
    (r"\.proj\.0\.", ".shortcut.conv."),
    (r"\.proj\.1\.", ".shortcut.bn."),
    (r"\.f\.a\.0\.", ".conv1.conv."),
    (r"\.f\.a\.1\.", ".conv1.bn."),
    (r"\.f\.b\.0\.", ".conv2.conv."),
    (r"\.f\.b\.1\.", ".conv2.bn."),
    (r"\.f\.se\.", ".se."),
    (r"\.f\.c\.0\.", ".conv3.conv."),
    (r"\.f\.c\.1\.", ".conv3.bn."),
    (r"^stem\.0\.", "stem.conv."),
    (r"^stem\.1\.", "stem.bn."),
    (r"^fc\.", "head.fc."),
]


@register_converter("regnet")
def _convert(name: str, state_dict) -> dict[str, torch.Tensor]:
    # torchvision numbers stages from 1 ("trunk_output.block2.block2-0."), nn.Sequential from 0.
    num_stages = len(TORCHVISION_VARIANTS[name].cfg.to_anynet().depths)
    stage_rules = [(rf"^trunk_output\.block{s}\.block{s}-(\d+)\.", rf"stages.{s - 1}.\1.")
                   for s in range(1, num_stages + 1)]
    return remap_keys(remap_keys(state_dict, _TV_BLOCK_PARTS), stage_rules)


# ----------------------------------------------------------------------------------------------------------
# Builders from stage lists and from generator parameters (design-space exploration)
# ----------------------------------------------------------------------------------------------------------
# Self-contained on purpose: AnyNets given by their stage lists, RegNets by (w_0, w_a, w_m, depth,
# group_width), and the notes' 32-layer RegNetX, registered under the family "anynet".

# The notes' 32-layer RegNetX (d2l, Zhang et al., "Dive into Deep Learning" 8.8, class RegNetX32): a
# 32-channel 3x3 stride-2 stem, two stages of X blocks with group width g = 16 and bottleneck ratio 1,
# widths c = (32, 80) and depths d = (4, 6), each stage stride 2, global pool and linear. 32 layers:
# the stem conv, 10 blocks x 3 convs, the classifier (the two 1x1 shortcut convs are not counted).
# d2l's ResNeXtBlock(num_channels, groups, bot_mul) takes `groups` as the channels per group (its 3x3
# conv has bot_channels // groups groups), so g = 16 is a group width, as the notes say. d2l trains it
# on Fashion-MNIST resized to 96x96.
NOTES_REGNETX_32 = AnyNetConfig(depths=(4, 6), widths=(32, 80), group_widths=(16, 16),
                                bottleneck_ratios=(1.0, 1.0), strides=(2, 2), stem_width=32, stem_stride=2)


def _per_stage(value, n: int, name: str) -> tuple:
    """A per-stage list from a sequence of n entries or one value shared by every stage."""
    if isinstance(value, str):
        raise ConfigError(f"{name} must be a number or one number per stage, got {value!r}")
    if isinstance(value, Sequence):
        if len(value) != n:
            raise ConfigError(f"{name} needs one entry per stage ({n}), got {len(value)}: {tuple(value)}")
        return tuple(value)
    return (value,) * n


def anynet_config(
    depths: Sequence[int] = NOTES_REGNETX_32.depths,
    widths: Sequence[int] = NOTES_REGNETX_32.widths,
    group_widths: int | Sequence[int] = 16,
    bottleneck_ratios: float | Sequence[float] = 1.0,
    strides: int | Sequence[int] = 2,
    stem_width: int = 32,
    stem_stride: int = 2,
    se_ratio: float = 0.0,
) -> AnyNetConfig:
    """An AnyNetConfig from stage lists; a single group width, ratio or stride is shared by every stage."""
    if isinstance(depths, int | str) or isinstance(widths, int | str):
        raise ConfigError("depths and widths are per-stage lists, e.g. depths=(1,2,4),widths=(32,64,128)")
    n = len(depths)
    return AnyNetConfig(
        depths=tuple(int(d) for d in depths),
        widths=tuple(int(w) for w in widths),
        group_widths=tuple(int(g) for g in _per_stage(group_widths, n, "group_widths")),
        bottleneck_ratios=tuple(float(b) for b in _per_stage(bottleneck_ratios, n, "bottleneck_ratios")),
        strides=tuple(int(s) for s in _per_stage(strides, n, "strides")),
        se_ratio=float(se_ratio),
        stem_width=int(stem_width),
        stem_stride=int(stem_stride),
    )


_ANYNET_REG = {"family": "anynet", "min_size": 1, "paper": PAPER}


@register_model(name="anynet", input_size=(1, 28, 28), num_classes=10, **_ANYNET_REG)
def anynet(
    num_classes: int = 10,
    in_chans: int = 1,
    *,
    depths: Sequence[int] = NOTES_REGNETX_32.depths,
    widths: Sequence[int] = NOTES_REGNETX_32.widths,
    group_widths: int | Sequence[int] = 16,
    bottleneck_ratios: float | Sequence[float] = 1.0,
    strides: int | Sequence[int] = 2,
    stem_width: int = 32,
    stem_stride: int = 2,
    se_ratio: float = 0.0,
    norm_layer: LayerFactory = nn.BatchNorm2d,
    act_layer: LayerFactory = nn.ReLU,
    drop_rate: float = 0.0,
    drop_path_rate: float = 0.0,
    zero_init_last: bool = False,
) -> AnyNet:
    """Any AnyNet from its stage lists (bottleneck ratio = bottleneck width / width); defaults: the notes' net."""
    try:
        config = anynet_config(depths, widths, group_widths, bottleneck_ratios, strides, stem_width, stem_stride,
                               se_ratio)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:  # an option given as text that is not a number
        raise ConfigError(f"anynet: {err}") from err
    return AnyNet(config, num_classes, in_chans, norm_layer, act_layer, drop_rate, drop_path_rate, zero_init_last)


@register_model(name="regnet", input_size=(3, 224, 224), **_ANYNET_REG)
def regnet(
    num_classes: int = 1000,
    in_chans: int = 3,
    *,
    w_0: int = 24,
    w_a: float = 36.44,
    w_m: float = 2.49,
    depth: int = 13,
    group_width: int = 8,
    bottleneck_ratio: float = 1.0,
    se_ratio: float = 0.0,
    stem_width: int = 32,
    stem_stride: int = 2,
    stride: int = 2,
    quantum: int = 8,
    width_rounding: str = "pycls",
    norm_layer: LayerFactory = nn.BatchNorm2d,
    act_layer: LayerFactory = nn.ReLU,
    drop_rate: float = 0.0,
    drop_path_rate: float = 0.0,
    zero_init_last: bool = False,
) -> AnyNet:
    """A RegNet from (w_0, w_a, w_m, depth, group_width) as the paper generates it; defaults: RegNetX-200MF."""
    try:
        params = RegNetParams(w_0=int(w_0), w_a=float(w_a), w_m=float(w_m), depth=int(depth),
                              group_width=int(group_width), bottleneck_ratio=float(bottleneck_ratio),
                              se_ratio=float(se_ratio), stem_width=int(stem_width), stride=int(stride),
                              quantum=int(quantum), width_rounding=width_rounding)
        config = replace(params.to_anynet(), stem_stride=int(stem_stride))
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:  # an option given as text that is not a number
        raise ConfigError(f"regnet: {err}") from err
    return AnyNet(config, num_classes, in_chans, norm_layer, act_layer, drop_rate, drop_path_rate, zero_init_last)


@register_model(name="regnetx_32layer", input_size=(1, 96, 96), num_classes=10, **_ANYNET_REG)
def regnetx_32layer(
    num_classes: int = 10,
    in_chans: int = 1,
    *,
    norm_layer: LayerFactory = nn.BatchNorm2d,
    act_layer: LayerFactory = nn.ReLU,
    drop_rate: float = 0.0,
    drop_path_rate: float = 0.0,
    zero_init_last: bool = False,
) -> AnyNet:
    """The notes' 32-layer RegNetX (d2l's RegNetX32): g=16, b=1, c=(32, 80), d=(4, 6), 32-wide stem."""
    return AnyNet(NOTES_REGNETX_32, num_classes, in_chans, norm_layer, act_layer, drop_rate, drop_path_rate,
                  zero_init_last)
