"""Train-and-compare: lineup parsing, resuming an interrupted comparison, the report's table and figures."""

from __future__ import annotations

import json

import pytest

from _tiny import make_idx_dataset
from cnnlab.cli import main
from cnnlab.experiments.lineup import DEMO_LINEUP, Contender, budget_text, parse_contender, run_comparison
from cnnlab.models import UnknownModelError


@pytest.fixture(scope="module")
def fashion_dir(tmp_path_factory):
    return make_idx_dataset(tmp_path_factory.mktemp("fashion"), n_train=192, n_test=64)


SETTINGS = {"data": "fashion-mnist", "epochs": 2, "batch_size": 32, "val_split": 0, "threads": 1,
            "quiet": True, "download": False, "lr": 0.01, "schedule": "cosine"}


def test_parse_contender_keeps_bracketed_commas_and_literals():
    c = parse_contender("densenet_bc_100_12:block_config=(4,4,4),growth_rate=8,norm_layer=none")
    assert c == Contender("densenet_bc_100_12", {"block_config": (4, 4, 4), "growth_rate": 8, "norm_layer": "none"})
    assert c.label == "densenet_bc_100_12(block_config=(4,4,4),growth_rate=8,norm_layer=none)"
    assert "/" not in c.slug and "(" not in c.slug
    assert parse_contender("lenet5").label == "lenet5"
    with pytest.raises(UnknownModelError, match="lenet5"):
        parse_contender("lenet6")
    with pytest.raises(ValueError, match="key=value"):
        parse_contender("vgg11:width_mult")


def test_demo_lineup_spans_the_notes_and_builds():
    families = {parse_contender(s).model.rstrip("0123456789_") for s in DEMO_LINEUP}
    assert len(DEMO_LINEUP) == 8 and len(families) == 8
    import torch

    import cnnlab

    for spec in DEMO_LINEUP:
        c = parse_contender(spec)
        with torch.device("meta"):
            cnnlab.create_model(c.model, num_classes=10, in_chans=1, **c.model_args)


def test_budget_text():
    assert budget_text({"epochs": 1, "recipe": "fast"}) == "1 epoch each, fast recipe"
    assert budget_text({"time_budget": 60, "epochs": 5}) == "60 s each, <= 5 epochs"


def test_comparison_trains_reports_and_resumes(fashion_dir, tmp_path):
    contenders = [parse_contender("lenet5_relu"), parse_contender("lenet5:pool='max'")]
    actions = []
    settings = dict(SETTINGS, data_dir=str(fashion_dir))
    report = run_comparison(contenders, tmp_path, settings, on_start=lambda i, c, a: actions.append(a))
    assert actions == ["train", "train"]
    assert [r["model"] for r in report.rows] == ["lenet5_relu", "lenet5(pool=max)"]
    for row in report.rows:
        assert 0.0 <= row["test_accuracy"] <= 1.0
        assert row["params"] > 0 and row["macs"] > 0 and row["depth"] == 5
        assert row["receptive_field"]["size"] > 1
    for path in report.files.values():
        assert path.exists() and path.stat().st_size > 0
    table = report.files["table"].read_text()
    assert "lenet5_relu" in table and "test_accuracy" in table
    stored = json.loads(report.files["json"].read_text())
    assert stored["dataset"] == "Fashion-MNIST" and len(stored["rows"]) == 2

    # Rerun: both finished, nothing retrains; drop one result: that network resumes from its checkpoint.
    first = report.rows[1]["test_accuracy"]
    (tmp_path / contenders[1].slug / "results.json").unlink()
    actions.clear()
    again = run_comparison(contenders, tmp_path, settings, on_start=lambda i, c, a: actions.append(a))
    assert actions == ["skip", "resume"]
    assert again.rows[1]["test_accuracy"] == pytest.approx(first)


def test_cli_compare_train_and_errors(fashion_dir, tmp_path, capsys):
    args = ["compare", "lenet5_relu", "--train", "--epochs", "1", "--data-dir", str(fashion_dir),
            "--out", str(tmp_path), "--quiet", "--threads", "1", "--batch-size", "32", "--format", "json"]
    assert main(args) == 0
    out = capsys.readouterr()
    rows = json.loads(out.out)
    assert rows[0]["model"] == "lenet5_relu" and rows[0]["test_accuracy"] is not None
    assert "learning_curves.png" in out.err
    # The same NAME:key=value form works without --train: the network is measured with its options.
    assert main(["compare", "vgg11:width_mult=0.25", "vgg11", "--input", "1x32x32", "--format", "json"]) == 0
    static = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in static] == ["vgg11(width_mult=0.25)", "vgg11"]
    assert static[0]["params"] < static[1]["params"] and static[0]["macs"] < static[1]["macs"] / 2
    assert main(["compare", "--train"]) == 2


def test_a_diverging_network_is_reported_and_the_others_still_train(fashion_dir, tmp_path, monkeypatch):
    import cnnlab.train
    from cnnlab.train import TrainingDivergedError

    real_train = cnnlab.train.train

    def train_or_diverge(cfg):
        if cfg.model == "lenet5":
            raise TrainingDivergedError("the training loss became NaN in epoch 1 near step 3")
        return real_train(cfg)

    monkeypatch.setattr(cnnlab.train, "train", train_or_diverge)
    contenders = [parse_contender("lenet5"), parse_contender("lenet5_relu")]
    report = run_comparison(contenders, tmp_path, dict(SETTINGS, data_dir=str(fashion_dir), epochs=1))
    by_model = {r["model"]: r for r in report.rows}
    assert by_model["lenet5"]["test_accuracy"] is None and "NaN" in by_model["lenet5"]["error"]
    assert by_model["lenet5_relu"]["test_accuracy"] is not None
    assert report.files["complexity"].exists()


def test_demo_takes_a_lineup_and_a_budget(fashion_dir, tmp_path, capsys):
    common = ["--data-dir", str(fashion_dir), "--quiet", "--threads", "1"]
    assert main(["demo", "--models", "lenet5_relu", "--epochs", "1", "--out", str(tmp_path / "e"), *common]) == 0
    config = json.loads((tmp_path / "e" / "lenet5_relu" / "config.json").read_text())
    assert config["model"] == "lenet5_relu" and config["epochs"] == 1 and config["time_budget"] is None
    assert "lenet5_relu" in capsys.readouterr().out
    assert main(["demo", "--models", "lenet5_relu", "--time-budget", "20", "--out", str(tmp_path / "t"), *common]) == 0
    config = json.loads((tmp_path / "t" / "lenet5_relu" / "config.json").read_text())
    assert config["time_budget"] == 20 and config["epochs"] > 1  # the budget, not an epoch count, ends it
    with pytest.raises(SystemExit):
        main(["demo", "--epochs", "1", "--time-budget", "20"])
    assert "notes' model-complexity comparison" in " ".join(_demo_help().split())


def _demo_help() -> str:
    from cnnlab.cli import build_parser

    return build_parser()._subparsers._group_actions[0].choices["demo"].format_help()
