"""`cnnlab plot RUN_DIR`: one run's loss, accuracy and learning rate, from the files the run wrote."""

from __future__ import annotations

import json

import pytest

from _figures import drawn, outside_canvas
from _tiny import make_idx_dataset, tiny_models, train_argv  # noqa: F401  (tiny_models is a fixture)
from cnnlab.cli import main
from cnnlab.errors import DataError
from cnnlab.plots import run_curves
from cnnlab.train.runlog import read_run

pytestmark = pytest.mark.usefixtures("tiny_models")


def test_plot_draws_a_run_from_its_directory(tmp_path, capsys):
    data = make_idx_dataset(tmp_path / "data", n_train=320, n_test=40)
    out = tmp_path / "run"
    assert main([*train_argv(data, 2, "--log-every", "2"), "--out", str(out)]) == 0
    run = read_run(out)
    assert len(run.history) == 2 and run.results is not None
    # The curve holds the learning rate of each logging window: the cosine schedule falls from its peak.
    rates = [row["lr"] for row in run.curve]
    assert rates[0] > rates[-1] > 0 and rates == sorted(rates, reverse=True)
    capsys.readouterr()
    assert main(["plot", str(out)]) == 0
    assert (out / "curves.png").stat().st_size > 0 and "curves.png" in capsys.readouterr().err


def test_run_curves_panels_and_series():
    history = [{"epoch": e, "train_loss": 2.0 / e, "val_loss": 2.1 / e, "train_accuracy": 0.3 * e,
                "val_accuracy": 0.28 * e, "lr": 0.1 / e} for e in (1, 2, 3)]
    curve = [{"epoch": s / 4, "loss": 2.0 - s / 10, "accuracy": s / 12, "lr": 0.1 - s / 200} for s in range(1, 13)]
    fig = run_curves(history, curve, title="tiny on data")
    loss, accuracy, lr = fig.axes
    assert [a.get_title() for a in fig.axes] == ["loss", "accuracy", "learning rate"]
    val = next(line for line in accuracy.get_lines() if line.get_label().startswith("validation"))
    assert list(val.get_ydata()) == pytest.approx([28, 56, 84])  # percent
    assert list(lr.get_lines()[0].get_ydata()) == pytest.approx([0.1 - s / 200 for s in range(1, 13)])
    assert not outside_canvas(fig, drawn(fig))
    assert "label smoothing 0.1" in run_curves(history, curve, label_smoothing=0.1).axes[0].get_title()


def test_plot_of_a_folder_that_is_no_run_is_one_line(tmp_path, capsys):
    with pytest.raises(DataError, match="not a run directory"):
        read_run(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model": "m", "data": "d"}))
    assert main(["plot", str(tmp_path)]) == 2
    assert "no training record yet" in capsys.readouterr().err
