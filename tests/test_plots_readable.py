"""Figures read at a glance: nothing cut at the canvas edge, bubbles whole, no two names on top of each other,
legends off the data, every mark explained. Checked on the rendered geometry (Agg, as savefig draws it)."""

from __future__ import annotations

import math

import pytest
from matplotlib.text import Text

from _figures import drawn, label_boxes, outside_canvas, overlaps
from cnnlab.analysis.compare import reference_rows
from cnnlab.plots import accuracy_vs_time, complexity_chart, confusion_matrix
from cnnlab.plots.comparison import family_of

# The demo lineup's shape (README table): close accuracies, sizes over three orders of magnitude.
DEMO = [("lenet5", .8108, 60_850, 326_520, 7.3), ("alexnet*", .8694, 813_790, 3.24e6, 18.5),
        ("vgg11_bn*", .8836, 2.25e6, 11.26e6, 41.4), ("nin_cifar*", .7989, 61_730, 10.9e6, 71.4),
        ("googlenet", .8820, 9.95e6, 15.66e6, 126.2), ("resnet20", .8825, 269_430, 30.82e6, 95.5),
        ("densenet_bc_100_12*", .7918, 46_360, 14.77e6, 106.9), ("regnetx_200mf", .8531, 2.32e6, 3.78e6, 48.9)]
ROWS = [{"model": m, "test_accuracy": a, "params": p, "macs": c, "train_seconds": t} for m, a, p, c, t in DEMO]
BUDGET = "1 epoch each, fast recipe, lr 0.05, 2 CPU threads"


def _legend_texts(fig) -> str:
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
    return " ".join(t.get_text() for legend in legends for t in legend.get_texts())


def _bubbles_inside(fig, ax, renderer) -> bool:
    frame = ax.get_window_extent(renderer)
    bubbles = ax.collections[0]
    centers = ax.transData.transform(bubbles.get_offsets())
    radii = [math.sqrt(s) / 2 * fig.dpi / 72 for s in bubbles.get_sizes()]
    return all(frame.x0 <= x - r and x + r <= frame.x1 and frame.y0 <= y - r and y + r <= frame.y1
               for (x, y), r in zip(centers, radii))


def test_complexity_chart_reads_at_a_glance():
    fig = complexity_chart(ROWS, dataset="Fashion-MNIST", budget=BUDGET)
    renderer = drawn(fig)
    ax = fig.axes[0]
    assert not outside_canvas(fig, renderer)
    assert _bubbles_inside(fig, ax, renderer)  # googlenet's big bubble is not cut by the frame
    labels = label_boxes(ax, renderer)
    assert sorted(t for t, _ in labels) == sorted(r["model"] for r in ROWS)
    assert not overlaps(labels)
    assert "options changed" in _legend_texts(fig)  # what the * means


def test_accuracy_vs_time_title_whole_and_legend_off_the_data():
    fig = accuracy_vs_time(ROWS, dataset="Fashion-MNIST", budget=BUDGET)
    renderer = drawn(fig)
    ax = fig.axes[0]
    assert not outside_canvas(fig, renderer)  # the long budget goes on a second title line
    assert not overlaps(label_boxes(ax, renderer))
    frame = ax.get_window_extent(renderer)
    for legend in fig.legends:
        box = legend.get_window_extent(renderer)
        assert box.y1 <= frame.y0 or box.x0 >= frame.x1  # below or beside the axes, never on the points


@pytest.mark.slow
def test_imagenet_reference_chart_by_family_with_every_network_named():
    rows = reference_rows("imagenet")
    fig = complexity_chart([], dataset="ImageNet-1K", reference=rows)
    renderer = drawn(fig)
    ax = fig.axes[0]
    assert not outside_canvas(fig, renderer) and _bubbles_inside(fig, ax, renderer)
    labels = label_boxes(ax, renderer)
    assert len(labels) == len(rows) and not overlaps(labels)
    assert "googlenet†" in [t for t, _ in labels]
    assert ax.get_ylabel().startswith("ImageNet top-1 (val)")
    legend = _legend_texts(fig)
    assert "auxiliary classifiers" in legend and "6.6M" in legend and "13.0M" in legend
    # One colour per family, and the family legend names them all.
    families = {family_of(r) for r in rows}
    assert "other" not in families and all(f in legend for f in families)
    colors = {family_of(r): tuple(c) for r, c in zip(rows, ax.collections[0].get_facecolors())}
    assert len(set(colors.values())) == len(families)


def test_family_of_torchvision_names():
    assert family_of({"model": "wide_resnet50_2"}) == "Wide ResNet"
    assert family_of({"model": "resnext50_32x4d"}) == "ResNeXt"
    assert family_of({"model": "resnet18"}) == "ResNet"
    assert family_of({"model": "inception_v3"}) == family_of({"model": "googlenet"})
    assert family_of({"model": "x", "family": "mine"}) == "mine"


def test_confusion_matrix_labels_inside_the_canvas():
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]
    matrix = [[90 if i == j else (8 if (i, j) in ((6, 0), (0, 6)) else 0) for j in range(10)] for i in range(10)]
    fig = confusion_matrix(matrix, classes, title="lenet5 on Fashion-MNIST (test split)")
    renderer = drawn(fig)
    assert not outside_canvas(fig, renderer)
    heat = fig.axes[0]
    assert [t.get_text() for t in heat.get_yticklabels()] == classes
    cells = [t for t in heat.texts if isinstance(t, Text)]
    assert len(cells) == 100 and cells[0].get_text() == "90"
