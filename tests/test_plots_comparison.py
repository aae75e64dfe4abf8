"""cnnlab.plots: figures are built from data, labelled with units, titled with data set and budget."""

from __future__ import annotations

import subprocess
import sys

import pytest
from matplotlib.figure import Figure

from cnnlab.plots import accuracy_vs_time, complexity_chart, learning_curves

RESULTS = [
    {"model": "lenet5", "test_accuracy": 0.89, "params": 61_706, "macs": 420_000, "train_seconds": 40.0},
    {"model": "resnet18", "test_accuracy": 0.93, "params": 11_200_000, "macs": 33_000_000, "train_seconds": 300.0},
    {"model": "nin", "test_accuracy": 0.91, "params": 2_000_000, "macs": 20_000_000, "train_seconds": 200.0},
]
REFERENCE = [
    {"model": "alexnet", "test_accuracy": 0.5652, "params": 61_100_840, "macs": 714_000_000},
    {"model": "vgg16", "test_accuracy": 0.7159, "params": 138_357_544, "macs": 15_470_000_000},
]


def _texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


def test_complexity_chart_bubbles_axes_and_title():
    fig = complexity_chart(RESULTS, dataset="Fashion-MNIST", budget="10 min on 2 CPU cores")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    bubbles = ax.collections[0]
    assert [tuple(p) for p in bubbles.get_offsets()] == [(r["macs"], 100 * r["test_accuracy"]) for r in RESULTS]
    sizes = bubbles.get_sizes()
    # area proportional to parameters (LeNet-5 is small enough to sit at the 4 pt^2 floor)
    assert sizes[1] / sizes[2] == pytest.approx(RESULTS[1]["params"] / RESULTS[2]["params"])
    assert ax.get_xscale() == "log"
    assert "MACs" in ax.get_xlabel() and "(%)" in ax.get_ylabel()
    assert "Fashion-MNIST" in ax.get_title() and "10 min on 2 CPU cores" in ax.get_title()
    assert set(_texts(ax)) == {"lenet5", "resnet18", "nin"}  # the user's networks are always named
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("parameters" in t for t in legend)


def test_complexity_chart_puts_reference_beside_results_on_one_bubble_scale():
    fig = complexity_chart(RESULTS, dataset="Fashion-MNIST", budget="5 epochs", reference=REFERENCE)
    mine, theirs = fig.axes
    assert "ImageNet" in theirs.get_title() and "Fashion-MNIST" in mine.get_title()
    per_param_mine = mine.collections[0].get_sizes()[1] / RESULTS[1]["params"]
    per_param_theirs = theirs.collections[0].get_sizes()[1] / REFERENCE[1]["params"]
    assert per_param_mine == pytest.approx(per_param_theirs)
    assert {"alexnet", "vgg16"} <= set(_texts(theirs))


def test_complexity_chart_of_reference_only_and_saving(tmp_path):
    fig = complexity_chart([], dataset="ImageNet-1K", reference=REFERENCE)
    assert len(fig.axes) == 1
    path = tmp_path / "chart.png"
    fig.savefig(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_complexity_chart_without_data_is_an_error():
    with pytest.raises(ValueError, match="test_accuracy"):
        complexity_chart([{"model": "x", "macs": 1}], dataset="Fashion-MNIST")


def test_accuracy_vs_time():
    fig = accuracy_vs_time(RESULTS, dataset="Fashion-MNIST", budget="10 min")
    ax = fig.axes[0]
    assert [tuple(p) for p in ax.collections[0].get_offsets()] == [
        (r["train_seconds"], 100 * r["test_accuracy"]) for r in RESULTS]
    assert "(s" in ax.get_xlabel() and "(%)" in ax.get_ylabel() and "10 min" in ax.get_title()
    assert set(_texts(ax)) == {"lenet5", "resnet18", "nin"}


def test_learning_curves_one_line_per_run_per_metric():
    histories = {
        name: [{"epoch": e, "val_accuracy": 0.5 + 0.1 * e, "train_loss": 1.0 / e} for e in range(1, 4)]
        for name in ("lenet5", "resnet18")
    }
    fig = learning_curves(histories, dataset="Fashion-MNIST", budget="3 epochs")
    accuracy, loss = fig.axes
    assert [line.get_label() for line in accuracy.get_lines()] == ["lenet5", "resnet18"]
    assert list(accuracy.get_lines()[0].get_ydata()) == pytest.approx([60.0, 70.0, 80.0])
    assert list(loss.get_lines()[1].get_ydata()) == pytest.approx([1.0, 0.5, 1 / 3])
    assert accuracy.get_xlabel() == "Epoch" and "(%)" in accuracy.get_ylabel()
    assert "Fashion-MNIST" in fig.get_suptitle() and "3 epochs" in fig.get_suptitle()
    with pytest.raises(ValueError, match="no runs"):
        learning_curves({}, dataset="Fashion-MNIST")


def test_plots_never_touch_pyplot():
    code = ("import sys, cnnlab.plots as p; "
            "p.complexity_chart([{'model': 'a', 'macs': 1e6, 'params': 1e5, 'test_accuracy': 0.5}], dataset='d'); "
            "print('matplotlib.pyplot' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
