"""The landscape figures: built from arrays without pyplot, panels on shared levels, clipping said, bad shapes out."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from cnnlab import plots
from cnnlab.errors import DataError

X = np.linspace(-1, 1, 9)
Y = np.linspace(-1, 1, 7)
BOWL = 0.3 + np.add.outer(Y**2, 2 * X**2)  # (ny, nx)
ROUGH = BOWL + 3 * np.abs(np.sin(7 * np.add.outer(Y, X)))


def _levels_of(ax) -> np.ndarray:
    return np.asarray(next(c for c in ax.collections if hasattr(c, "levels")).levels)


def test_contours_side_by_side_share_their_levels():
    fig = plots.landscape_contours({"ResNet-56": BOWL, "plain-56": ROUGH}, X, Y, levels=12)
    assert isinstance(fig, Figure)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["ResNet-56", "plain-56"]
    assert np.array_equal(_levels_of(panels[0]), _levels_of(panels[1]))
    assert any(t.get_text() for t in panels[0].texts)  # labelled levels (clabel)
    assert plots.default_levels(BOWL, ROUGH, count=12)[0] == pytest.approx(0.3)
    assert plots.default_levels(np.array([[0.5, 50.0]]), count=3).tolist() == [0.5, 5.25, 10.0]  # capped at 10
    with pytest.raises(DataError, match="does not fit"):
        plots.landscape_contours({"bad": BOWL.T}, X, Y)


def test_surface_curves_trajectory_and_curvature():
    surface = plots.landscape_surface(X, Y, BOWL * 10, title="r56")
    assert "clipped at 10" in surface.axes[0].get_title()
    line = np.linspace(-0.5, 1.5, 21)
    values = {"train_loss": np.exp(8 * np.abs(line - 0.5)), "train_accuracy": np.full(21, 0.5),
              "test_loss": np.exp(8 * np.abs(line - 0.5)) + 0.1}
    curves = plots.landscape_curves(line, values, xlabel="α", title="a to b")
    assert len(curves.axes) == 2 and curves.axes[0].get_yscale() == "log"  # the loss spans 3 orders of magnitude
    assert [t.get_text() for t in curves.axes[0].get_legend().get_texts()] == ["train", "test"]
    with pytest.raises(DataError):
        plots.landscape_curves(line, {"test_loss": line})
    path = np.array([[-0.8, 0.5], [-0.3, 0.2], [0.0, 0.0]])
    traj = plots.landscape_trajectory(X, Y, BOWL, path, [0.9, 0.08])
    assert "90.0%" in traj.axes[0].get_xlabel() and "8.0%" in traj.axes[0].get_ylabel()
    assert isinstance(plots.curvature_map(X[:3], Y[:3], np.eye(3)), Figure)


def test_experiment_figures():
    curves = {"plain-20": ([0.5, 1.0], [0.4, 0.2]), "ResNet-56": ([0.5, 1.0], [0.3, 0.1])}
    fig = plots.training_error_curves(curves, title="errors")
    lines = fig.axes[0].get_lines()
    assert lines[0].get_linestyle() == "--" and lines[1].get_linestyle() == "-"  # plain nets dashed
    assert lines[1].get_ydata().tolist() == pytest.approx([30.0, 10.0])  # drawn in %
    bars = {"non-convex fraction": {"ResNet-56": 0.1, "plain-56": 0.6}}
    page = plots.skip_connection_figure(curves, {"ResNet-56": BOWL, "plain-56": ROUGH}, X, Y, bars, levels=10)
    titles = [ax.get_title() for ax in page.axes if ax.get_title()]
    assert titles[:2] == ["(a) training error", "(c) smoothness at this budget"] and "(b) plain-56" in titles
    with pytest.raises(DataError):
        plots.training_error_curves({})
