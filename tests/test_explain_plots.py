"""Explanation figures: each returns a Figure with the panels it promises, and refuses empty input."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from cnnlab.errors import DataError
from cnnlab.plots import (
    activation_grid,
    attribution_grid,
    embedding_scatter,
    filter_grid,
    image_grid,
    neighbour_grid,
    occlusion_grid,
    patch_grid,
    sanity_curves,
    sanity_maps,
)

RNG = np.random.default_rng(0)


def _images(n: int, c: int = 1, side: int = 8) -> np.ndarray:
    return RNG.integers(0, 256, (n, c, side, side)).astype(np.uint8)


def _images_shown(fig: Figure) -> int:
    return sum(len(ax.images) for ax in fig.axes)


def test_filter_grid_colour_grey_and_per_input():
    assert _images_shown(filter_grid(RNG.normal(size=(6, 3, 5, 5)))) == 6
    assert _images_shown(filter_grid(RNG.normal(size=(6, 1, 5, 5)))) == 6
    assert _images_shown(filter_grid(RNG.normal(size=(4, 5, 3, 3)))) == 20  # one grey kernel per input channel
    with pytest.raises(DataError):
        filter_grid(np.zeros((3, 3)))


def test_attribution_and_occlusion_figures_show_image_and_map():
    images = _images(3, 3)
    fig = attribution_grid(images, RNG.random((3, 8, 8)), ["a", "b", "c"], "t")
    assert _images_shown(fig) == 3 + 2 * 3  # image, then grey image under the heat map
    assert [ax.get_title() for ax in fig.axes[:3]] == ["a", "b", "c"]
    signed = attribution_grid(images, RNG.normal(size=(3, 3, 8, 8)), ["a", "b", "c"], "t", style="signed")
    assert _images_shown(signed) == 6
    occ = occlusion_grid(images, RNG.random((3, 4, 4)), RNG.random((3, 8, 8)), ["a", "b", "c"], "t")
    assert _images_shown(occ) == 3 + 3 + 6
    with pytest.raises(DataError, match="2 maps for 3 images"):
        attribution_grid(images, RNG.random((2, 8, 8)), [], "t")


def test_grids_of_activations_patches_images_neighbours():
    assert _images_shown(activation_grid(_images(1)[0], RNG.random((5, 4, 4)))) == 6
    assert _images_shown(patch_grid(RNG.random((2, 3, 1, 5, 5)), ["c0", "c1"], "t")) == 6
    assert _images_shown(image_grid(RNG.random((4, 3, 8, 8)), ["w", "x", "y", "z"], "t")) == 4
    fig = neighbour_grid(_images(2), _images(6).reshape(2, 3, 1, 8, 8), _images(6).reshape(2, 3, 1, 8, 8), "t")
    assert _images_shown(fig) == 2 * 7
    with pytest.raises(DataError):
        image_grid(np.zeros((0, 1, 4, 4)), [], "t")


def test_scatter_and_sanity_figures():
    fig = embedding_scatter(RNG.normal(size=(50, 2)), RNG.integers(0, 3, 50), ["a", "b", "c"], "t", "note")
    assert len(fig.axes[0].collections[0].get_offsets()) == 50
    curves = {"saliency": (["trained", "fc", "conv"], np.array([1, 0.4, 0.1]), np.array([1, 0.5, 0.2]))}
    fig = sanity_curves(curves, "t")
    assert [len(ax.lines) for ax in fig.axes[:2]] == [2, 2]  # the curve and the 0.5 line
    maps = sanity_maps(_images(1)[0], {"saliency": RNG.random((3, 8, 8))}, ["trained", "fc", "conv"], "t")
    assert _images_shown(maps) == 4
    with pytest.raises(DataError):
        sanity_curves({}, "t")
