"""Occlusion: exact on a linear model, equal to captum, independent of batching, clear errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.explain import occlusion


def _linear(chans: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(chans * 5 * 6, 3))


@pytest.mark.parametrize("chans", [1, 3])
def test_one_pixel_window_on_a_linear_model_is_weight_times_pixel_difference(chans):
    model = _linear(chans)
    x = torch.randn(4, chans, 5, 6)
    fill = 0.25
    targets = torch.tensor([0, 2, 1, 2])
    result = occlusion(model, x, targets, window=1, stride=1, fill=fill, output="logit")
    w = model[1].weight.detach().view(3, chans, 5, 6)[targets]
    # score(x) - score(x with pixel (i, j) = fill in every channel) = sum_c w_cij (x_cij - fill)
    expected = (w * (x - fill)).sum(1)
    assert torch.allclose(result.attribution, expected, atol=1e-5)
    assert result.scores.shape == (4, 5, 6)
    assert torch.allclose(result.base.view(4, 1, 1) - result.scores, expected, atol=1e-5)


def test_windows_reach_the_border_and_batching_changes_nothing():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    x = torch.randn(3, 2, 11, 9)
    a = occlusion(model, x, window=4, stride=3, batch_size=7)
    b = occlusion(model, x, window=4, stride=3, batch_size=1000)
    assert a.scores.shape == (3, 4, 3)  # starts 0, 3, 6, 9 (cut at the border) and 0, 3, 6
    assert torch.allclose(a.attribution, b.attribution, atol=1e-6)
    assert torch.all((a.base >= 0) & (a.base <= 1))  # probabilities by default


def test_bad_windows_are_one_line_errors():
    model = _linear(1)
    x = torch.randn(1, 1, 5, 6)
    with pytest.raises(ConfigError, match="window must be 1 to 5"):
        occlusion(model, x, window=6)
    with pytest.raises(ConfigError, match="stride must be 1 to the window"):
        occlusion(model, x, window=2, stride=3)
    with pytest.raises(ConfigError, match="output must be one of"):
        occlusion(model, x, window=2, stride=1, output="softmax")


captum = pytest.importorskip("captum.attr", reason="captum is an optional dependency (cnnlab[explain])")


def test_equal_to_captum_occlusion():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(6 * 6 * 7, 4)).eval()
    x = torch.randn(3, 3, 12, 14)
    t = model(x).argmax(1)
    ours = occlusion(model, x, t, window=5, stride=3, fill=0.1)
    theirs = captum.Occlusion(lambda z: model(z).softmax(1)).attribute(
        x, sliding_window_shapes=(3, 5, 5), strides=(3, 3, 3), baselines=0.1, target=t, perturbations_per_eval=8)
    assert torch.allclose(ours.attribution, theirs[:, 0], atol=1e-5)
    assert torch.allclose(theirs[:, 0], theirs[:, 2])  # captum repeats the map over the channels


def test_default_batch_holds_about_130000_pixels():
    from cnnlab.explain.occlusion import default_batch_size

    assert default_batch_size(28, 28) == 128 and default_batch_size(224, 224) == 2
    assert default_batch_size(2000, 2000) == 1 and default_batch_size(4, 4) == 256
    sizes = [default_batch_size(s, s) for s in range(1, 400, 7)]
    assert all(n & (n - 1) == 0 for n in sizes)  # powers of two
    assert sizes == sorted(sizes, reverse=True)  # never more images for bigger images


def test_a_batch_size_below_one_is_a_clear_error():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    with pytest.raises(ConfigError, match="batch size must be at least 1"):
        occlusion(model, torch.randn(1, 1, 4, 4), window=2, stride=2, batch_size=0)
