"""Segmentation overlays: palettes, tinting, and the figure's panels and legend."""

from __future__ import annotations

import numpy as np

from cnnlab.plots import class_palette, overlay_labels, segmentation_overlays
from cnnlab.plots.segmentation import _voc_colors


def test_voc_colour_map_matches_the_devkit():
    # The VOC devkit's colour map (labelcolormap.m): background, aeroplane, bicycle, bird, ..., person (15).
    voc = _voc_colors(21)
    assert voc[:4].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]]
    assert voc[15].tolist() == [192, 128, 128] and voc[20].tolist() == [0, 64, 128]


def test_palettes_have_a_black_background_and_distinct_colours():
    for k in (2, 11, 21, 30):
        colors = class_palette(k)
        assert colors.shape == (k, 3) and colors[0].tolist() == [0, 0, 0]
        assert len({tuple(c) for c in colors.tolist()}) == k


def test_overlay_tints_classes_keeps_background_and_whitens_ignored_pixels():
    image = np.full((2, 3), 100, np.uint8)
    labels = np.array([[0, 1, 2], [255, 0, 1]])
    out = overlay_labels(image, labels, 3, ignore_index=255, alpha=0.5)
    gray = 100 / 255
    assert np.allclose(out[0, 0], gray) and np.allclose(out[1, 1], gray)  # background: the image itself
    assert np.allclose(out[0, 1], 0.5 * gray + 0.5 * class_palette(3)[1] / 255)
    assert np.allclose(out[1, 0], 0.5 * gray + 0.5)  # ignored: half white
    assert np.allclose(out[0, 1], out[1, 2])


def test_figure_has_image_truth_prediction_columns_and_a_legend_of_shown_classes():
    images = [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 3), np.uint8)]
    preds = [np.zeros((8, 8), np.int64), np.full((8, 8), 2)]
    truths = [np.ones((8, 8), np.int64), None]
    fig = segmentation_overlays(images, preds, ["bg", "cat", "dog", "fox"], truths, ["a", "b"])
    assert len(fig.axes) == 6
    assert [ax.get_title() for ax in fig.axes[:3]] == ["image", "ground truth", "prediction"]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["bg (untinted)", "cat", "dog"]  # fox is nowhere
    fig = segmentation_overlays(images, preds, ["bg", "cat", "dog", "fox"])
    assert len(fig.axes) == 4  # no ground truth column
