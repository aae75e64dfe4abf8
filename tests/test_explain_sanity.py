"""The sanity check's pieces: rank correlation, SSIM, the layer cascade, randomization on a copy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cnnlab.explain import ModelState, cascade_layers, rank_correlation, sanity_check, ssim


def test_rank_correlation_is_spearmans_with_ties():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, size=(3, 5, 5)).astype(float)  # many ties
    b = a + rng.normal(size=a.shape)
    got = rank_correlation(a, b)
    expected = [stats.spearmanr(np.abs(x).ravel(), np.abs(y).ravel()).statistic for x, y in zip(a, b)]
    assert np.allclose(got, expected, atol=1e-12)
    assert rank_correlation(a, -a) == pytest.approx([1, 1, 1])  # absolute maps: the sign does not count
    assert rank_correlation(np.ones((1, 3, 3)), a[:1]) == [0.0]
    assert rank_correlation(np.ones((1, 3, 3)), np.zeros((1, 3, 3))) == [1.0]  # both constant: nothing changed


def _ssim_by_hand(x: np.ndarray, y: np.ndarray, size: int = 11, sigma: float = 1.5) -> float:
    """Wang et al. 2004, eq. 13-16, window by window with a Gaussian weighting, C1 = 0.01^2, C2 = 0.03^2."""
    t = np.arange(size) - (size - 1) / 2
    g = np.exp(-(t**2) / (2 * sigma**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    values = []
    for i in range(x.shape[0] - size + 1):
        for j in range(x.shape[1] - size + 1):
            a, b = x[i : i + size, j : j + size], y[i : i + size, j : j + size]
            ma, mb = (w * a).sum(), (w * b).sum()
            va, vb = (w * (a - ma) ** 2).sum(), (w * (b - mb) ** 2).sum()
            cov = (w * (a - ma) * (b - mb)).sum()
            values.append(((2 * ma * mb + 1e-4) * (2 * cov + 9e-4)) / ((ma**2 + mb**2 + 1e-4) * (va + vb + 9e-4)))
    return float(np.mean(values))


def test_ssim_is_wangs_on_maps_scaled_to_unit_range():
    rng = np.random.default_rng(1)
    a = rng.random((2, 13, 14))
    b = a + 0.3 * rng.random((2, 13, 14))
    def unit(m: np.ndarray) -> np.ndarray:
        return (m - m.min()) / (m.max() - m.min())

    expected = [_ssim_by_hand(unit(a[i]), unit(b[i])) for i in range(2)]
    assert np.allclose(ssim(a, b), expected, atol=1e-10)
    assert np.allclose(ssim(a, a), 1.0)


class Small(nn.Module):
    """conv - BN - ReLU - conv - ReLU - pool - linear, and an unused head that a forward never calls."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.bn, self.c2 = nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Conv2d(4, 6, 3, padding=1)
        self.fc, self.unused = nn.Linear(6, 3), nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.c2(torch.relu(self.bn(self.c1(x)))))
        return self.fc(x.mean((2, 3)))


def test_cascade_runs_from_the_top_over_used_layers():
    model = Small()
    assert cascade_layers(model, torch.randn(1, 1, 6, 6)) == ["fc", "c2", "bn", "c1"]


def test_sanity_check_randomizes_a_copy_and_starts_at_one():
    torch.manual_seed(0)
    model = Small()
    with torch.no_grad():
        model.bn.running_mean.fill_(0.3)
    before = ModelState.capture(model)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(3, 1, 8, 8)
    check = sanity_check(model, x, "saliency")
    assert before.changes() == [] and all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    assert check.layers == ["fc", "c2", "bn", "c1"]
    assert check.maps.shape == (5, 3, 8, 8)
    assert check.rank_correlation[0] == pytest.approx(1.0) and check.ssim[0] == pytest.approx(1.0)
    assert not np.allclose(check.maps[-1], check.maps[0])
    again = sanity_check(model, x, "saliency", steps=2)
    assert again.layers == ["c2", "c1"]  # two depths, the whole network last
    assert np.allclose(again.maps[-1], check.maps[-1])  # the same seeds per layer
