"""Design spaces and their sampling: constraints, the MAC range, seeds, the scale rule, the closed-form MACs."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

import cnnlab.experiments.designspace.sampling as sampling
from cnnlab.analysis.counting import count_macs
from cnnlab.errors import ConfigError, UnknownNameError
from cnnlab.experiments.designspace import SPACES, ImageScale, anynet_macs, get_space, parse_macs_range, sample_space
from cnnlab.experiments.designspace.spaces import AnyNetSpace, log_uniform_grid
from cnnlab.models.regnet import AnyNet, AnyNetConfig, regnet_block_widths

N = 3


@pytest.fixture(scope="module")
def samples():
    return {name: sample_space(name, N, seed=3) for name in SPACES}


def _nondecreasing(values) -> bool:
    return all(b >= a for a, b in zip(values, values[1:]))


@pytest.mark.parametrize("name", sorted(SPACES))
def test_samples_satisfy_their_space_and_the_mac_range(samples, name):
    space = get_space(name)
    lo, hi = ImageScale().paper_regime()
    for s in samples[name]:
        cfg = s.config
        assert lo <= s.macs <= hi and len(cfg.depths) == 4 and cfg.strides == (2, 2, 2, 2)
        assert cfg.stem_width == 8 and cfg.stem_stride == 1  # the small-image scale
        for w, b, g in zip(cfg.widths, cfg.bottleneck_ratios, cfg.group_widths):
            assert round(w * b) % g == 0  # group-compatible
        if isinstance(space, AnyNetSpace):
            assert max(cfg.depths) <= 16 and all(b in (1, 2, 4) for b in s.point["b"])
            assert all(g in (1, 2, 4, 8, 16, 32) for g in s.point["g"])
            assert all(8 <= w <= 256 and w % 8 == 0 for w in s.point["widths"])  # 1024 * 1/4
            assert len(set(cfg.bottleneck_ratios)) == 1 or not space.shared_bottleneck
            assert len(set(cfg.group_widths)) == 1 or not space.shared_group
            assert _nondecreasing(cfg.widths) or not space.widths_nondecreasing
            assert _nondecreasing(cfg.depths) or not space.depths_nondecreasing
        else:
            p = s.point
            assert space.depth_range[0] <= p["depth"] <= space.depth_range[1] and sum(cfg.depths) == p["depth"]
            assert 8 <= p["w_0"] <= 64 and 2.0 <= p["w_a"] <= 64.0
            assert space.w_m_range[0] <= p["w_m"] <= space.w_m_range[1]
            assert p["b"] in space.bottleneck_ratios and (cfg.se_ratio > 0) == (name == "regnety")
            # The stage widths are the RegNet generator's: runs of its quantized per-block widths.
            blocks = regnet_block_widths(p["w_0"], p["w_a"], p["w_m"], p["depth"])
            assert [len(list(g)) for _, g in itertools.groupby(blocks)] == list(cfg.depths)


def test_the_recorded_macs_are_cnnlabs_counter_and_equal_the_closed_form(samples):
    scale = ImageScale()
    for name in ("anynetx_a", "regnety"):
        for s in samples[name][:2]:
            with torch.device("meta"):
                model = AnyNet(s.config, num_classes=10, in_chans=1)
            counted = count_macs(model, (1, 28, 28))
            assert s.macs == counted == anynet_macs(s.config, 28, scale.in_chans, scale.num_classes)


def test_closed_form_macs_by_hand():
    # Stem 3x3 1->8 at 28x28 (stride 1): 784 * 72; one block 8->16, stride 2, b = 1, g = 8 (2 groups):
    # 1x1 at 28x28 784 * 8 * 16, 3x3 at 14x14 196 * 16 * 8 * 9, 1x1 196 * 16 * 16, projection 196 * 8 * 16;
    # head 16 * 10.
    cfg = AnyNetConfig((1,), (16,), (8,), (1.0,), (2,), stem_width=8, stem_stride=1)
    expected = 784 * 72 + 784 * 128 + 196 * 16 * 8 * 9 + 196 * 256 + 196 * 128 + 160
    assert anynet_macs(cfg, 28, 1, 10) == expected


def test_sampling_is_reproducible_and_prefix_stable():
    a = sample_space("anynetx_c", 2, seed=11)
    b = sample_space("anynetx_c", 2, seed=11)
    longer = sample_space("anynetx_c", 3, seed=11)
    other = sample_space("anynetx_c", 2, seed=12)
    assert [s.to_dict() for s in a] == [s.to_dict() for s in b] == [s.to_dict() for s in longer[:2]]
    assert [s.point for s in a] != [s.point for s in other]
    assert [s.key for s in longer] == [f"anynetx_c-{i:04d}" for i in range(3)]


def test_a_custom_mac_range_is_respected():
    lo, hi = parse_macs_range("3M:4M")
    assert (lo, hi) == (3_000_000, 4_000_000)
    assert all(lo <= s.macs <= hi for s in sample_space("anynetx_e", 2, (lo, hi), seed=1))


def test_the_paper_regime_scales_with_width_squared_and_map_area():
    # 28x28, stride-1 stem, widths / 4: every stage map is 4x smaller per side than at 224 and every
    # width 4x narrower, so a network's MACs shrink 16 * 16 = 256-fold.
    assert ImageScale().paper_regime() == (int(360e6 / 256), int(400e6 / 256))
    assert ImageScale(image_size=32, in_chans=3).macs_factor == pytest.approx((32 / 112) ** 2 / 16)
    assert ImageScale(width_scale=0.5).stem_width == 16 and ImageScale().width(1024) == 256


def test_log_uniform_grid_stays_on_the_grid_and_is_log_linear():
    rng = np.random.default_rng(0)
    values = log_uniform_grid(rng, 8, 256, 8, 40_000)
    assert set(np.unique(values)) == set(range(8, 257, 8))
    # Each value v gets the log-length of (v - 8, v] (the first cell starts at 4): P(8) = log 2 / log 64.
    assert np.mean(values == 8) == pytest.approx(math.log(2) / math.log(64), abs=0.01)
    assert np.mean(values == 256) == pytest.approx(math.log(256 / 248) / math.log(64), abs=0.005)


@pytest.mark.parametrize("text", ["5M", "10M:5M", "x:1M", "0:1M"])
def test_bad_mac_ranges_are_config_errors(text):
    with pytest.raises(ConfigError):
        parse_macs_range(text)


def test_an_unreachable_range_says_how_far_it_got(monkeypatch):
    monkeypatch.setattr(sampling, "MAX_DRAWS", 8192)
    with pytest.raises(ConfigError, match="widen the MAC range"):
        sample_space("anynetx_e", 2, (10, 20), seed=0)


def test_unknown_space_lists_the_spaces():
    with pytest.raises(UnknownNameError, match="anynetx_a"):
        get_space("anynetx_z")
