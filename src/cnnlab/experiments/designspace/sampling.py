"""Sampling a design space under a complexity constraint, as the paper does: draw, reject, repeat.

Raw parameter vectors are drawn in batches from one seeded generator (uniform, log-uniform where the
paper says), those violating the space's constraints are dropped, the rest are made group-compatible
(``adjust_widths_to_groups``, pycls's rounding) and kept when the adjusted network still lies in the
space and its MACs fall in the range. A closed-form MAC count filters the candidates; the networks kept
are built on the meta device and counted with cnnlab's own counter, whose count is the one recorded
(and must be in range too). The same seed gives the same samples, and n samples are the first n of any
larger draw with that seed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cnnlab.analysis.counting import count_macs, count_params
from cnnlab.errors import ConfigError
from cnnlab.experiments.designspace.spaces import (
    DesignSpace,
    ImageScale,
    anynet_macs,
    config_from_dict,
    config_to_dict,
    get_space,
)
from cnnlab.models.regnet import AnyNet, AnyNetConfig

__all__ = ["Sample", "describe_samples", "parse_macs_range", "sample_key", "sample_space"]

BATCH = 4096  # raw draws per batch; part of what a seed means, so fixed
MAX_DRAWS = 20_000_000


@dataclass(frozen=True)
class Sample:
    """One sampled network: its key, the space's parameters, the AnyNet it is, its MACs and parameters."""

    key: str
    index: int
    space: str
    point: dict[str, Any]
    config: AnyNetConfig
    macs: int
    num_params: int

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "index": self.index, "space": self.space, "point": self.point,
                "config": config_to_dict(self.config), "macs": self.macs, "num_params": self.num_params}

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> Sample:
        return cls(row["key"], int(row["index"]), row["space"], dict(row["point"]), config_from_dict(row["config"]),
                   int(row["macs"]), int(row["num_params"]))

    @property
    def block_widths(self) -> list[int]:
        """The width of every block, stage by stage (the paper's per-block widths w_j)."""
        return [w for d, w in zip(self.config.depths, self.config.widths) for _ in range(d)]


def sample_key(space: str, index: int) -> str:
    """The folder name of sample ``index`` of a space."""
    return f"{space}-{index:04d}"


def parse_macs_range(text: str) -> tuple[int, int]:
    """``"5M:10M"`` (suffixes K, M, G; plain numbers too) as (low, high) MACs."""
    parts = text.split(":")
    if len(parts) != 2:
        raise ConfigError(f"a MAC range is LOW:HIGH, e.g. 5M:10M, got {text!r}")
    lo, hi = (_count(p) for p in parts)
    if not 0 < lo <= hi:
        raise ConfigError(f"a MAC range needs 0 < LOW <= HIGH, got {text!r}")
    return lo, hi


def _count(text: str) -> int:
    units = {"K": 1e3, "M": 1e6, "G": 1e9}
    t = text.strip().upper()
    try:
        return int(float(t[:-1]) * units[t[-1]]) if t and t[-1] in units else int(float(t))
    except ValueError:
        raise ConfigError(f"{text!r} is not a count such as 1.5M, 400K or 2000000") from None


def _counted(config: AnyNetConfig, scale: ImageScale) -> tuple[int, int]:
    """(MACs, parameters) of the built network, by cnnlab's counter on meta tensors."""
    with torch.device("meta"):
        model = AnyNet(config, num_classes=scale.num_classes, in_chans=scale.in_chans)
    return count_macs(model, (scale.in_chans, scale.image_size, scale.image_size)), count_params(model)


def sample_space(
    space: str | DesignSpace,
    n: int,
    macs: tuple[int, int] | None = None,
    seed: int = 0,
    scale: ImageScale | None = None,
) -> list[Sample]:
    """``n`` networks of ``space`` whose MACs lie in ``macs`` (default: the paper's regime at this scale)."""
    space = get_space(space) if isinstance(space, str) else space
    scale = scale or ImageScale()
    lo, hi = macs or scale.paper_regime()
    if n < 1:
        raise ConfigError(f"the number of samples must be 1 or more, got {n}")
    rng = np.random.default_rng(seed)
    samples: list[Sample] = []
    draws = 0
    while len(samples) < n:
        if draws >= MAX_DRAWS:
            raise ConfigError(
                f"only {len(samples)} of {n} {space.title} networks found with {lo:,}-{hi:,} MACs in {draws:,} "
                f"draws; widen the MAC range (the paper's regime here is {_range_text(scale.paper_regime())})")
        raw = space.draw(rng, BATCH, scale)
        draws += BATCH
        for i in np.flatnonzero(space.raw_ok(raw)):
            sample = _accept(space, space.point(raw, int(i)), scale, lo, hi, len(samples))
            if sample is not None:
                samples.append(sample)
                if len(samples) == n:
                    break
    return samples


def _accept(space: DesignSpace, point: dict[str, Any], scale: ImageScale, lo: int, hi: int,
            index: int) -> Sample | None:
    try:
        config = space.config(point, scale)
    except ValueError:
        return None  # a point the generator cannot turn into a network (e.g. a group wider than it)
    if config is None:
        return None
    estimate = anynet_macs(config, scale.image_size, scale.in_chans, scale.num_classes)
    if not lo <= estimate <= hi:
        return None
    counted, params = _counted(config, scale)
    if not lo <= counted <= hi:
        return None
    return Sample(sample_key(space.name, index), index, space.name, point, config, counted, params)


def _range_text(macs: tuple[int, int]) -> str:
    return f"{macs[0] / 1e6:.2f}M:{macs[1] / 1e6:.2f}M"


def describe_samples(samples: list[Sample]) -> dict[str, Any]:
    """Summary numbers of a sample: count, MAC range, depth and width ranges."""
    depths = [sum(s.config.depths) for s in samples]
    return {
        "n": len(samples),
        "macs_min": min(s.macs for s in samples),
        "macs_max": max(s.macs for s in samples),
        "depth_min": min(depths),
        "depth_max": max(depths),
        "params_geomean": math.exp(sum(math.log(s.num_params) for s in samples) / len(samples)),
    }
