"""Filters, activation maps, top patches (receptive-field crops) and class / unit images."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.analysis.summary import layer_fields
from cnnlab.errors import ConfigError, UnknownNameError
from cnnlab.explain import (
    AscentSettings,
    activations,
    class_images,
    conv_filters,
    crop_patches,
    gaussian_blur,
    top_patches,
    unit_images,
)


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))


def test_filters_are_the_first_convolution_kernels_or_a_named_one():
    model = _net()
    assert torch.equal(conv_filters(model), model[0].weight.detach())
    assert torch.equal(conv_filters(model, "3"), model[3].weight.detach())
    with pytest.raises(ConfigError, match="no 2-D convolution kernels"):
        conv_filters(model, "7")


def test_activations_are_the_layer_output():
    model = _net().eval()
    x = torch.randn(5, 3, 12, 12)
    with torch.no_grad():
        expected = model[:4](x)
    assert torch.allclose(activations(model, x, "3", batch_size=2), expected, atol=1e-6)
    with pytest.raises(UnknownNameError):
        activations(model, x, "conv9")


def test_top_patches_are_the_strongest_units_cut_to_their_receptive_field():
    model = _net().eval()
    x = torch.randn(20, 3, 12, 12)
    with torch.no_grad():
        acts = model[:4](x)  # (20, 6, 4, 4)
    result = top_patches(model, x, "3", channels=[1, 4], k=3, batch_size=6)
    field = layer_fields(model, (3, 12, 12))["3"]
    for row, c in enumerate([1, 4]):
        best = acts[:, c].flatten(1).amax(1)  # each image's strongest unit
        assert torch.allclose(result.values[row], best.topk(3).values, atol=1e-6)
        assert result.image_index[row].tolist() == best.topk(3).indices.tolist()
        for j in range(3):
            i, (r, col) = int(result.image_index[row, j]), result.units[row, j].tolist()
            assert acts[i, c, r, col] == pytest.approx(float(result.values[row, j]), abs=1e-6)
            (top, bottom), (left, right) = field.unit_span((r, col))
            assert result.boxes[row, j].tolist() == [top, bottom, left, right]
    # conv 3 (pad 1) -> pool 2 -> conv 3: each unit sees 8x8 input pixels, 2 apart
    assert (result.boxes[..., 1] - result.boxes[..., 0] + 1).eq(8).all()
    streamed = top_patches(model, (x[i : i + 7] for i in range(0, 20, 7)), "3", channels=[1, 4], k=3)
    assert torch.equal(streamed.image_index, result.image_index)


def test_crops_copy_the_box_and_pad_outside_the_image():
    model = _net().eval()
    x = torch.arange(2 * 3 * 12 * 12, dtype=torch.float32).view(2, 3, 12, 12)
    result = top_patches(model, x, "3", channels=[0], k=2)
    patches = crop_patches(x, result, fill=-1.0)
    assert patches.shape == (1, 2, 3, 8, 8)
    for j in range(2):
        top, _, left, _ = result.boxes[0, j].tolist()
        image = x[int(result.image_index[0, j])]
        for dy in range(8):
            for dx in range(8):
                y, xx = top + dy, left + dx
                inside = 0 <= y < 12 and 0 <= xx < 12
                expected = image[:, y, xx] if inside else torch.full((3,), -1.0)
                assert torch.equal(patches[0, j, :, dy, dx], expected)


def test_class_images_raise_the_class_score_and_stay_in_bounds():
    model = _net()
    bounds = ([-1.0] * 3, [1.0] * 3)
    settings = AscentSettings(steps=30, seed=1)
    x = class_images(model, [0, 2], (3, 12, 12), bounds, settings)
    assert x.shape == (2, 3, 12, 12) and x.min() >= -1 and x.max() <= 1
    start = torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(1)) * settings.init_std
    with torch.no_grad():
        before, after = model(start), model(x)
    assert after[0, 0] > before[0, 0] and after[1, 2] > before[1, 2]
    assert torch.equal(x, class_images(model, [0, 2], (3, 12, 12), bounds, settings))  # seeded
    with pytest.raises(ConfigError, match="out of range"):
        class_images(model, [3], (3, 12, 12))


def test_unit_images_raise_the_channel_activation():
    model = _net()
    x = unit_images(model, "3", [5], (3, 12, 12), settings=AscentSettings(steps=30))
    with torch.no_grad():
        start = torch.randn(1, 3, 12, 12, generator=torch.Generator().manual_seed(0)) * 0.3
        assert model[:4](x)[0, 5].mean() > model[:4](start)[0, 5].mean()
    with pytest.raises(ConfigError, match="channel 6 does not exist"):
        unit_images(model, "3", [6], (3, 12, 12))


def test_gaussian_blur_keeps_constants_and_the_mean_of_a_spike():
    flat = torch.full((1, 2, 9, 9), 3.0)
    assert torch.allclose(gaussian_blur(flat, 1.0), flat)
    spike = torch.zeros(1, 1, 9, 9)
    spike[0, 0, 4, 4] = 1
    blurred = gaussian_blur(spike, 1.0)
    assert blurred.sum() == pytest.approx(1.0, abs=1e-6) and blurred[0, 0, 4, 4] < 1
    assert torch.allclose(blurred, blurred.flip(-1)) and torch.allclose(blurred, blurred.transpose(-1, -2))
