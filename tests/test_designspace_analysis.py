"""EDFs, complexity weights, width fits and the verdicts, on inputs whose answers are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cnnlab.errors import ConfigError
from cnnlab.experiments.designspace import (
    complexity_bins,
    complexity_weights,
    edf,
    edf_at,
    fit_linear_widths,
    fit_quantized_widths,
    monotone_verdict,
    rank_verdict,
    spearman,
)
from cnnlab.experiments.designspace.analysis import edf_curve, parameter_panels, space_summary, trend
from cnnlab.experiments.designspace.sampling import Sample
from cnnlab.experiments.designspace.sweep import Trial
from cnnlab.models.regnet import AnyNetConfig, regnet_block_widths
from cnnlab.plots import block_width_fits, design_space_edfs, error_vs_parameters, rank_agreement


def test_edf_of_known_errors_is_the_hand_step_function():
    errors = [0.3, 0.1, 0.3, 0.2]
    # F(e) = (1/4) #{e_i < e}: 0 up to 0.1, 1/4 on (0.1, 0.2], 2/4 on (0.2, 0.3], 1 above 0.3.
    expected = {0.05: 0.0, 0.1: 0.0, 0.15: 0.25, 0.2: 0.25, 0.25: 0.5, 0.3: 0.5, 0.31: 1.0}
    for e, f in expected.items():
        assert edf_at(errors, e) == pytest.approx(f)
    x, y = edf(errors)
    assert x.tolist() == [0.1, 0.2, 0.3] and y.tolist() == pytest.approx([0.25, 0.5, 1.0])


def test_weighted_edf_steps_by_the_weights():
    x, y = edf([2.0, 1.0, 3.0], [0.5, 0.25, 0.25])
    assert x.tolist() == [1.0, 2.0, 3.0] and y.tolist() == pytest.approx([0.25, 0.75, 1.0])
    assert edf_at([2.0, 1.0, 3.0], 2.5, [0.5, 0.25, 0.25]) == pytest.approx(0.75)


def test_complexity_weights_sum_to_one_and_give_every_occupied_bin_the_same_mass():
    macs = [1.0e6, 1.1e6, 1.2e6, 1.3e6, 3.9e6, 7.5e6]  # three networks low, one middle, two high
    edges = np.array([1e6, 2e6, 4e6, 8e6])
    w = complexity_weights(macs, edges)
    assert w.sum() == pytest.approx(1.0)
    # Three occupied bins of 1/3 each, holding 4, 1 and 1 networks: 1/12 each in the first.
    assert w.tolist() == pytest.approx([1 / 12] * 4 + [1 / 3, 1 / 3])
    per_bin = [w[(np.asarray(macs) >= lo) & (np.asarray(macs) < hi)].sum() for lo, hi in zip(edges, edges[1:])]
    assert per_bin == pytest.approx([1 / 3, 1 / 3, 1 / 3])


def test_complexity_bins_cover_all_values_log_spaced():
    edges = complexity_bins([1e6, 4e6, 2e6], 2)
    assert edges[0] == 1e6 and edges[-1] >= 4e6 and edges[1] == pytest.approx(2e6, rel=1e-6)
    with pytest.raises(ConfigError):
        complexity_weights([9e6], edges)


def test_spearman_by_hand():
    # ranks (1,2,3,4,5) and (2,1,4,3,5): d^2 = 1+1+1+1+0 = 4, rho = 1 - 6*4 / (5*24) = 0.8
    assert spearman([1, 2, 3, 4, 5], [20, 10, 40, 30, 50]) == pytest.approx(0.8)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # ties take their average rank: (1.5, 1.5, 3) vs (1, 2, 3) -> Pearson of ranks = sqrt(3)/2
    assert spearman([1, 1, 2], [1, 2, 3]) == pytest.approx(math.sqrt(3) / 2)


def _trial(key: str, error: float | None, depths=(1, 1, 1, 1), widths=(8, 16, 32, 64), macs=1_000_000,
           status="ok") -> Trial:
    cfg = AnyNetConfig(depths, widths, (8,) * 4, (1.0,) * 4, (2,) * 4, stem_width=8, stem_stride=1)
    point = {"depths": list(depths), "widths": list(widths), "b": [1] * 4, "g": [8] * 4}
    sample = Sample(key, int(key.split("-")[1]), "anynetx_a", point, cfg, macs, 1000)
    return Trial(sample, status, error, None if error is None else error + 0.01, 1.0)


def test_rank_verdict_holds_for_the_same_order_and_not_for_the_reverse():
    short = [_trial(f"a-{i}", 0.1 * i) for i in range(1, 9)]
    same = [_trial(f"a-{i}", 0.05 * i) for i in range(1, 9)]
    reverse = [_trial(f"a-{i}", 1 - 0.1 * i) for i in range(1, 9)]
    agree = rank_verdict(short, same)
    assert agree["rho"] == pytest.approx(1.0) and agree["holds"] and agree["p_value"] < 0.001  # 1/8! ~ 2.5e-5
    disagree = rank_verdict(short, reverse)
    assert disagree["rho"] == pytest.approx(-1.0) and not disagree["holds"] and disagree["p_value"] > 0.99
    with pytest.raises(ConfigError, match="at least 3"):
        rank_verdict(short[:2], same[:2])


def test_monotone_verdict_counts_the_top_decile_and_its_hypergeometric_p():
    # 20 networks, the two best (top decile) have non-decreasing widths; 4 of 20 in all.
    trials = [_trial(f"a-{i}", 0.1 + 0.01 * i, widths=(8, 16, 32, 64) if i in (0, 1, 10, 15) else (64, 8, 16, 32))
              for i in range(20)]
    v = monotone_verdict(trials)
    assert v["n_top"] == 2 and v["widths"]["k_top"] == 2 and v["widths"]["k_all"] == 4
    # P(both of 2 drawn from 20 are among the 4) = C(4,2) / C(20,2) = 6 / 190
    assert v["widths"]["p_value"] == pytest.approx(6 / 190) and v["widths"]["verdict"] == "supported"
    assert v["depths"]["verdict"].startswith("by construction")  # all depths (1,1,1,1) are non-decreasing


def test_failed_and_pending_trials_leave_the_edf_but_are_counted():
    trials = [_trial("a-0", 0.2), _trial("a-1", 0.4), _trial("a-2", None, status="failed"),
              _trial("a-3", None, status="pending")]
    curve = edf_curve("A", trials, complexity_bins([1e6], 1))
    assert (curve["n"], curve["failed"], curve["min"], curve["mean"]) == (2, 1, 20.0, 30.0)
    summary = space_summary(trials)
    assert (summary["n"], summary["failed"], summary["pending"]) == (2, 1, 1)


def test_linear_fit_recovers_a_line_and_reports_its_error():
    fit = fit_linear_widths([10, 20, 30, 40, 50])
    assert fit["e_fit"] < 0.01 and fit["w_a"] == pytest.approx(10, rel=0.05)
    stepped = fit_linear_widths([8, 8, 64, 64])
    assert stepped["e_fit"] > 0.1 and all(u > 0 for u in stepped["widths"])


def test_quantized_fit_recovers_widths_the_regnet_generator_made():
    widths = regnet_block_widths(16, 12.0, 2.0, 10)  # [16, 32, 32, 64, ...] by the paper's rule
    fit = fit_quantized_widths(widths)
    assert fit["e_fit"] == 0.0 and fit["widths"] == widths


def test_trend_is_the_median_per_bin():
    centers, medians = trend([1, 2, 3, 4, 5, 6], [10, 30, 20, 40, 60, 50], bins=2, log=False)
    assert centers == [2.0, 5.0] and medians == [20.0, 50.0]


def test_figures_draw_from_the_analysis_data():
    trials = [_trial(f"a-{i}", 0.1 + 0.02 * i, depths=(1, 1 + i % 2, 2, 2), macs=1_000_000 + 10_000 * i)
              for i in range(6)]
    edges = complexity_bins([t.sample.macs for t in trials], 2)
    fig = design_space_edfs([edf_curve("A", trials, edges), edf_curve("B", trials[:3], edges)])
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend[0] == "A  [6 | 10.0 | 15.0]" and len(fig.axes) == 2
    assert len(error_vs_parameters(parameter_panels(trials)).axes) >= 5
    from cnnlab.experiments.designspace.analysis import width_fits

    assert len(block_width_fits(width_fits(trials, top=2)).axes) == 2
    check = rank_verdict(trials, trials)
    assert "rho = 1.00" in rank_agreement(check).axes[0].get_title()
