"""The design spaces of Radosavovic et al. 2020 (Designing Network Design Spaces), scaled to small images.

AnyNetX (Sec. 3.1): a stem, four stages of X blocks (1x1, 3x3 grouped, 1x1 + shortcut) and a head; each
stage i is free in its depth d_i, width w_i, bottleneck ratio b_i (width / bottleneck width) and group
width g_i. The paper samples d_i <= 16 and w_i <= 1024 (multiples of 8) log-uniformly, b_i from
{1, 2, 4} and g_i from {1, 2, ..., 32} (powers of two), and then constrains the space step by step:

- AnyNetX_A: every stage free;
- AnyNetX_B: one bottleneck ratio shared by all stages (b_i = b);
- AnyNetX_C: B with one shared group width as well (g_i = g);
- AnyNetX_D: C with non-decreasing widths (w_{i+1} >= w_i);
- AnyNetX_E: D with non-decreasing depths (d_{i+1} >= d_i).

RegNet (Sec. 3.3 and 4): the per-block widths follow u_j = w_0 + w_a j, quantized through w_m
(``cnnlab.models.regnet.regnet_block_widths``). ``regnet`` is the paper's first RegNet space
(d < 64, w_m in [1.5, 3], b and g as AnyNetX_E); ``regnetx`` the refined one the paper settles on
(b = 1, w_m >= 2, d in [12, 28] as pycls's RegNet sampler draws it); ``regnety`` adds squeeze-excitation
(ratio 0.25). w_0 and w_a are drawn log-uniformly from [8, 256] as pycls's sampler does
(``pycls/sweep/config.py``, REGNET_SAMPLER), depth uniformly, w_m log-uniformly; every RegNet must
come out with exactly four stages.

Scaling to small images (:class:`ImageScale`, documented in docs/designspace.md): the stem becomes a
3x3 stride-1 convolution (pycls's CIFAR stem), so each of the four stages halves the map: 28 -> 14, 7,
4, 2 (32 -> 16, 8, 4, 2), where ImageNet's 224 gives 56, 28, 14, 7; every width-like range of the paper
(the 32-wide stem, w_i <= 1024, w_0 and w_a) is multiplied by ``width_scale`` (1/4 by default) and kept
a multiple of 8; depths, bottleneck ratios and group widths keep the paper's ranges. The paper's
complexity regime scales with the width squared and the map area: 360-400 MF at 224 becomes
1/16 * 1/16 of it at 28x28 (about 1.41-1.56 M MACs), see :meth:`ImageScale.paper_regime`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from cnnlab.errors import ConfigError, UnknownNameError
from cnnlab.models.regnet import (
    AnyNetConfig,
    RegNetParams,
    adjust_widths_to_groups,
    bottleneck_width,
)

__all__ = [
    "PAPER",
    "SPACES",
    "AnyNetSpace",
    "DesignSpace",
    "ImageScale",
    "RegNetSpace",
    "anynet_macs",
    "config_from_dict",
    "config_to_dict",
    "get_space",
    "log_uniform_grid",
]

PAPER = "Radosavovic et al. 2020, Designing Network Design Spaces"
NUM_STAGES = 4
PAPER_STEM_WIDTH = 32
PAPER_REGIME_MACS = (360e6, 400e6)  # the paper's 400MF regime (Sec. 3.1), MACs at 224x224
GROUP_WIDTHS = (1, 2, 4, 8, 16, 32)
BOTTLENECK_RATIOS = (1, 2, 4)  # the paper's b = width / bottleneck width
SE_RATIO = 0.25


@dataclass(frozen=True)
class ImageScale:
    """How the paper's ImageNet design spaces shrink for small images: stem stride, widths, input."""

    image_size: int = 28
    in_chans: int = 1
    num_classes: int = 10
    width_scale: float = 0.25  # multiplies the stem width and every width range of the paper
    stem_stride: int = 1  # 1: four stride-2 stages leave a 2x2 map at 28 or 32 pixels
    quantum: int = 8  # widths stay multiples of this

    def __post_init__(self) -> None:
        if self.image_size < 8 or self.in_chans < 1 or self.num_classes < 2:
            raise ConfigError(f"image_size >= 8, in_chans >= 1 and num_classes >= 2 are needed, got {self}")
        if not 0 < self.width_scale <= 1 or self.stem_stride not in (1, 2):
            raise ConfigError(f"width_scale must be in (0, 1] and stem_stride 1 or 2, got {self}")

    def width(self, paper_width: float) -> int:
        """A paper width scaled, as a multiple of the quantum (at least one quantum)."""
        return max(self.quantum, int(round(paper_width * self.width_scale / self.quantum)) * self.quantum)

    @property
    def stem_width(self) -> int:
        """The stem's channels: the paper's 32, scaled."""
        return self.width(PAPER_STEM_WIDTH)

    @property
    def macs_factor(self) -> float:
        """MACs here / MACs of the same (unscaled) network at 224: width^2 times the map-area ratio."""
        # At 224 the stem halves the image (112); here it leaves image_size / stem_stride.
        return self.width_scale**2 * (self.image_size / self.stem_stride / 112) ** 2

    def paper_regime(self) -> tuple[int, int]:
        """The paper's 360-400 MF regime in MACs at this scale."""
        lo, hi = PAPER_REGIME_MACS
        return int(lo * self.macs_factor), int(hi * self.macs_factor)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def log_uniform_grid(rng: np.random.Generator, lo: float, hi: float, q: float, size: int) -> np.ndarray:
    """Log-uniform draws from the grid {lo, lo + q, ..., hi}: each value v gets the log-length of (v - q, v].

    The first value's cell starts at lo - min(q, lo / 2) so it is not left without mass (pycls's
    sweep samplers use the same cells); the grid's CDF is then linear in log(v).
    """
    start = lo - min(q, lo / 2)
    f = np.exp(rng.uniform(math.log(start), math.log(hi), size))
    values = np.ceil(f / q - 1e-9) * q
    return np.clip(values, lo, hi)


def config_to_dict(config: AnyNetConfig) -> dict[str, Any]:
    """An AnyNetConfig as the keyword arguments of the ``anynet`` builder (JSON-able)."""
    return {
        "depths": list(config.depths),
        "widths": list(config.widths),
        "group_widths": list(config.group_widths),
        "bottleneck_ratios": list(config.bottleneck_ratios),
        "strides": list(config.strides),
        "stem_width": config.stem_width,
        "stem_stride": config.stem_stride,
        "se_ratio": config.se_ratio,
    }


def config_from_dict(values: Mapping[str, Any]) -> AnyNetConfig:
    """The inverse of :func:`config_to_dict`."""
    return AnyNetConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def _conv_side(side: int, stride: int) -> int:
    # 3x3 convs with padding 1 and 1x1 convs alike: ceil(side / stride)
    return (side - 1) // stride + 1


def anynet_macs(config: AnyNetConfig, image_size: int, in_chans: int, num_classes: int) -> int:
    """Conv + linear multiply-accumulates of an AnyNet on one square image, from its configuration alone.

    The same count as ``cnnlab.analysis.counting.count_macs`` on the built network (the tests check
    it); a fast pre-filter for rejection sampling, where building each candidate would dominate.
    """
    side = _conv_side(image_size, config.stem_stride)
    macs = side * side * in_chans * config.stem_width * 9
    w_in = config.stem_width
    for depth, w, g, ratio, stride in zip(config.depths, config.widths, config.group_widths,
                                          config.bottleneck_ratios, config.strides):
        w_b = bottleneck_width(w, ratio)
        for i in range(depth):
            s = stride if i == 0 else 1
            out = _conv_side(side, s)
            macs += side * side * w_in * w_b  # 1x1 in
            macs += out * out * w_b * g * 9  # 3x3 grouped: each output sees g input channels
            if config.se_ratio > 0:
                macs += 2 * w_b * int(round(config.se_ratio * w_in))  # SE's two 1x1 convs on a 1x1 map
            macs += out * out * w_b * w  # 1x1 out
            if w_in != w or s != 1:
                macs += out * out * w_in * w  # projection shortcut
            side, w_in = out, w
    return macs + w_in * num_classes


def _nondecreasing(values: Sequence[float]) -> bool:
    return all(b >= a for a, b in zip(values, values[1:]))


def _geomean(values: Sequence[float]) -> float:
    return float(math.exp(sum(math.log(v) for v in values) / len(values)))


@dataclass(frozen=True)
class _Space:
    """What every design space has: a name, the paper's title for it and a one-line description.

    Each space knows how to ``draw`` raw parameter vectors (uniform, log-uniform where the paper says),
    which draws satisfy its constraints (``raw_ok``), the plain ``point`` of one draw, the
    group-compatible AnyNet of a point (``config``, None when adjustment leaves the space) and the
    scalar ``parameters`` error is plotted against.
    """

    name: str
    title: str
    description: str


@dataclass(frozen=True)
class AnyNetSpace(_Space):
    """AnyNetX_A..E: four free stages, optionally with shared b and g and non-decreasing widths and depths."""

    shared_bottleneck: bool = False
    shared_group: bool = False
    widths_nondecreasing: bool = False
    depths_nondecreasing: bool = False
    max_depth: int = 16
    max_width: int = 1024  # before scaling
    se_ratio: float = 0.0

    def draw(self, rng: np.random.Generator, size: int, scale: ImageScale) -> dict[str, np.ndarray]:
        shape = (size, NUM_STAGES)
        depths = log_uniform_grid(rng, 1, self.max_depth, 1, size * NUM_STAGES).reshape(shape)
        widths = log_uniform_grid(rng, scale.quantum, scale.width(self.max_width), scale.quantum,
                                  size * NUM_STAGES).reshape(shape)
        b = np.asarray(BOTTLENECK_RATIOS)[rng.integers(0, len(BOTTLENECK_RATIOS), shape)]
        g = np.asarray(GROUP_WIDTHS)[rng.integers(0, len(GROUP_WIDTHS), shape)]
        # A shared value is one draw for all stages, not a repeat of stage 1's: the same distribution.
        if self.shared_bottleneck:
            b = np.repeat(b[:, :1], NUM_STAGES, axis=1)
        if self.shared_group:
            g = np.repeat(g[:, :1], NUM_STAGES, axis=1)
        return {"depths": depths.astype(int), "widths": widths.astype(int), "b": b, "g": g}

    def raw_ok(self, raw: Mapping[str, np.ndarray]) -> np.ndarray:
        ok = np.ones(len(raw["depths"]), dtype=bool)
        if self.widths_nondecreasing:
            ok &= np.all(np.diff(raw["widths"], axis=1) >= 0, axis=1)
        if self.depths_nondecreasing:
            ok &= np.all(np.diff(raw["depths"], axis=1) >= 0, axis=1)
        return ok

    def point(self, raw: Mapping[str, np.ndarray], i: int) -> dict[str, Any]:
        return {"depths": [int(v) for v in raw["depths"][i]], "widths": [int(v) for v in raw["widths"][i]],
                "b": [int(v) for v in raw["b"][i]], "g": [int(v) for v in raw["g"][i]]}

    def config(self, point: Mapping[str, Any], scale: ImageScale) -> AnyNetConfig | None:
        ratios = [1.0 / b for b in point["b"]]
        widths, groups = adjust_widths_to_groups(point["widths"], ratios, point["g"], "pycls")
        config = AnyNetConfig(depths=tuple(point["depths"]), widths=tuple(widths), group_widths=tuple(groups),
                              bottleneck_ratios=tuple(ratios), strides=(2,) * NUM_STAGES, se_ratio=self.se_ratio,
                              stem_width=scale.stem_width, stem_stride=scale.stem_stride)
        return config if self.satisfies(config) else None

    def satisfies(self, config: AnyNetConfig) -> bool:
        """Whether a (group-adjusted) configuration lies in this space."""
        return (len(config.depths) == NUM_STAGES
                and (not self.shared_bottleneck or len(set(config.bottleneck_ratios)) == 1)
                and (not self.shared_group or len(set(config.group_widths)) == 1)
                and (not self.widths_nondecreasing or _nondecreasing(config.widths))
                and (not self.depths_nondecreasing or _nondecreasing(config.depths)))

    def parameters(self, point: Mapping[str, Any], config: AnyNetConfig) -> dict[str, float]:
        return {
            "depth d (blocks)": float(sum(config.depths)),
            "last stage width w_4": float(config.widths[-1]),
            "group width g (geometric mean)": _geomean(config.group_widths),
            "bottleneck ratio b (geometric mean)": _geomean([1 / r for r in config.bottleneck_ratios]),
        }


@dataclass(frozen=True)
class RegNetSpace(_Space):
    """RegNet: widths from (w_0, w_a, w_m, depth) quantized linearly, one group width and bottleneck ratio."""

    depth_range: tuple[int, int] = (12, 28)
    w_0_range: tuple[int, int] = (8, 256)  # before scaling
    w_a_range: tuple[float, float] = (8.0, 256.0)  # before scaling
    w_m_range: tuple[float, float] = (2.0, 3.0)
    bottleneck_ratios: tuple[int, ...] = (1,)
    group_widths: tuple[int, ...] = GROUP_WIDTHS
    se_ratio: float = 0.0

    def draw(self, rng: np.random.Generator, size: int, scale: ImageScale) -> dict[str, np.ndarray]:
        w0_lo, w0_hi = (scale.width(w) for w in self.w_0_range)
        wa_lo, wa_hi = (round(w * scale.width_scale, 1) for w in self.w_a_range)
        return {
            "depth": rng.integers(self.depth_range[0], self.depth_range[1] + 1, size),
            "w_0": log_uniform_grid(rng, w0_lo, w0_hi, scale.quantum, size).astype(int),
            "w_a": log_uniform_grid(rng, wa_lo, wa_hi, 0.1, size),
            "w_m": log_uniform_grid(rng, self.w_m_range[0], self.w_m_range[1], 0.001, size),
            "g": np.asarray(self.group_widths)[rng.integers(0, len(self.group_widths), size)],
            "b": np.asarray(self.bottleneck_ratios)[rng.integers(0, len(self.bottleneck_ratios), size)],
        }

    def raw_ok(self, raw: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.ones(len(raw["depth"]), dtype=bool)

    def point(self, raw: Mapping[str, np.ndarray], i: int) -> dict[str, Any]:
        return {"depth": int(raw["depth"][i]), "w_0": int(raw["w_0"][i]), "w_a": round(float(raw["w_a"][i]), 1),
                "w_m": round(float(raw["w_m"][i]), 3), "g": int(raw["g"][i]), "b": int(raw["b"][i])}

    def params(self, point: Mapping[str, Any], scale: ImageScale) -> RegNetParams:
        """The generator parameters of a point."""
        return RegNetParams(w_0=point["w_0"], w_a=point["w_a"], w_m=point["w_m"], depth=point["depth"],
                            group_width=point["g"], bottleneck_ratio=1.0 / point["b"], se_ratio=self.se_ratio,
                            stem_width=scale.stem_width, quantum=scale.quantum)

    def config(self, point: Mapping[str, Any], scale: ImageScale) -> AnyNetConfig | None:
        config = self.params(point, scale).to_anynet()
        if len(config.depths) != NUM_STAGES:
            return None
        return AnyNetConfig(**{**config_to_dict(config), "stem_stride": scale.stem_stride})

    def parameters(self, point: Mapping[str, Any], config: AnyNetConfig) -> dict[str, float]:
        return {"depth d (blocks)": float(point["depth"]), "w_0": float(point["w_0"]), "w_a": float(point["w_a"]),
                "w_m": float(point["w_m"]), "group width g": float(point["g"]), "bottleneck ratio b": float(point["b"])}


DesignSpace = AnyNetSpace | RegNetSpace

_ANYNET_TEXT = "d_i <= 16, w_i <= 1024 (scaled), b_i in {1,2,4}, g_i in {1,...,32}"

SPACES: dict[str, DesignSpace] = {
    "anynetx_a": AnyNetSpace("anynetx_a", "AnyNetX_A", f"every stage free: {_ANYNET_TEXT}"),
    "anynetx_b": AnyNetSpace("anynetx_b", "AnyNetX_B", "A with one bottleneck ratio shared by all stages",
                             shared_bottleneck=True),
    "anynetx_c": AnyNetSpace("anynetx_c", "AnyNetX_C", "B with one group width shared as well",
                             shared_bottleneck=True, shared_group=True),
    "anynetx_d": AnyNetSpace("anynetx_d", "AnyNetX_D", "C with non-decreasing widths, w_{i+1} >= w_i",
                             shared_bottleneck=True, shared_group=True, widths_nondecreasing=True),
    "anynetx_e": AnyNetSpace("anynetx_e", "AnyNetX_E", "D with non-decreasing depths, d_{i+1} >= d_i",
                             shared_bottleneck=True, shared_group=True, widths_nondecreasing=True,
                             depths_nondecreasing=True),
    "regnet": RegNetSpace("regnet", "RegNet", "the paper's first RegNet: d < 64, w_m in [1.5, 3], b and g as E",
                          depth_range=(1, 63), w_m_range=(1.5, 3.0), bottleneck_ratios=BOTTLENECK_RATIOS),
    "regnetx": RegNetSpace("regnetx", "RegNetX", "the refined RegNet: b = 1, w_m >= 2, d in [12, 28]"),
    "regnety": RegNetSpace("regnety", "RegNetY", "RegNetX with squeeze-excitation (ratio 0.25)",
                           se_ratio=SE_RATIO),
}


def get_space(name: str) -> DesignSpace:
    """The design space called ``name``; an UnknownNameError lists them."""
    key = name.strip().lower().replace("-", "_")
    if key not in SPACES:
        raise UnknownNameError(f"unknown design space {name!r}; choose one of {', '.join(SPACES)}")
    return SPACES[key]
