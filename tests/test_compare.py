"""cnnlab.analysis.compare and `cnnlab compare`: networks side by side, torchvision's reference figures."""

from __future__ import annotations

import csv
import io
import json

import pytest
import torchvision
from torch import nn

from cnnlab import cli
from cnnlab.analysis.compare import (
    COMPARE_COLUMNS,
    compare_models,
    join_results,
    reference_rows,
    render_rows,
)
from cnnlab.analysis.counting import count_macs
from cnnlab.analysis.summary import summary
from cnnlab.errors import ConfigError, InputSizeError


def test_rows_are_the_summary_totals():
    rows = compare_models(["lenet5", "resnet20"], (1, 28, 28))
    assert [r["model"] for r in rows] == ["lenet5", "resnet20"]
    for row in rows:
        assert list(row) == [c for c in COMPARE_COLUMNS if c != "note"]  # measured rows carry no note
        total = summary(row["model"], (1, 28, 28)).total
        for key in ("params", "macs", "flops", "activation_bytes", "training_bytes", "receptive_field", "depth"):
            assert row[key] == total[key], key
    assert rows[1]["depth"] == 20 and rows[0]["input"] == "1x28x28"


def test_default_input_is_each_family_standard():
    rows = compare_models(["lenet5", "resnet20"])
    assert [r["input"] for r in rows] == ["1x32x32", "3x32x32"]


def test_modules_and_options():
    rows = compare_models([("mine", nn.Sequential(nn.Conv2d(1, 3, 5), nn.Flatten())), "resnet20"], (1, 28, 28),
                          num_classes=3)
    assert rows[0]["model"] == "mine" and rows[0]["params"] == 3 * 25 + 3 and rows[0]["macs"] == 3 * 24 * 24 * 25
    assert rows[1]["params"] == summary("resnet20", (1, 28, 28), num_classes=3).total["params"]
    with pytest.raises(ValueError, match="at least one"):
        compare_models([])


def test_join_results_takes_the_trainer_keys():
    rows = compare_models(["lenet5", "resnet20"], (1, 28, 28))
    results = [{"model": "resnet20", "test_accuracy": 0.91, "train_seconds": 12.5, "images_per_second": 800.0},
               {"model": "nin", "test_accuracy": 0.9}]
    joined = {r["model"]: r for r in join_results(rows, results)}
    assert joined["resnet20"]["test_accuracy"] == 0.91 and joined["resnet20"]["depth"] == 20
    assert "test_accuracy" not in joined["lenet5"]
    assert joined["nin"] == {"model": "nin", "test_accuracy": 0.9}


def test_reference_rows_read_torchvision_metadata():
    rows = {r["model"]: r for r in reference_rows("imagenet", ["resnet50", "vgg16", "googlenet"])}
    assert rows["resnet50"]["params"] == 25557032
    assert rows["resnet50"]["macs"] == 4_089_000_000  # _ops 4.089 "GFLOPS"
    assert rows["resnet50"]["weights"] == "IMAGENET1K_V1" and rows["resnet50"]["test_accuracy"] == 0.7613
    best = reference_rows("imagenet", ["resnet50"], weights="best")[0]
    meta = torchvision.models.ResNet50_Weights.DEFAULT.meta
    assert best["test_accuracy"] == round(meta["_metrics"]["ImageNet-1K"]["acc@1"] / 100, 6)
    everything = reference_rows("imagenet")
    assert len(everything) >= 60 and all(0 < r["test_accuracy"] < 1 and r["macs"] > 0 for r in everything)


def test_reference_rows_accept_cnnlab_names_and_reject_others():
    assert reference_rows("imagenet", ["resnext50_32x4d"])[0]["model"] == "resnext50_32x4d"
    with pytest.raises(ValueError, match="no torchvision counterpart"):
        reference_rows("imagenet", ["lenet5"])
    with pytest.raises(ValueError, match="no reference figures"):
        reference_rows("cifar10")
    with pytest.raises(ValueError, match="original"):
        reference_rows("imagenet", weights="newest")


def test_render_rows_formats():
    rows = compare_models(["lenet5"], (1, 32, 32))
    table = render_rows(rows)
    assert "32 px, stride 4" in table and "60.85K" in table  # receptive field in pixels, parameters in K
    parsed = list(csv.DictReader(io.StringIO(render_rows(rows, "csv"))))
    assert parsed[0]["params"] == "60850" and json.loads(parsed[0]["receptive_field"])["size"] == 32
    assert json.loads(render_rows(rows, "json"))[0]["macs"] == 326520
    assert render_rows(rows, "markdown").startswith("| model |")


def test_cli_compare_json(capsys):
    assert cli.main(["compare", "lenet5", "resnet20", "--input", "1x28x28", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in rows] == ["lenet5", "resnet20"]
    assert rows[1]["receptive_field"] == summary("resnet20", (1, 28, 28)).total["receptive_field"]


def test_cli_compare_table_with_options(capsys):
    assert cli.main(["compare", "resnet20", "resnet32", "shortcut='B'", "--input", "3x32x32"]) == 0
    out = capsys.readouterr().out
    assert "resnet20" in out and "resnet32" in out and "params" in out.splitlines()[0]


def test_cli_compare_reference_and_plot(capsys, tmp_path):
    path = tmp_path / "reference.png"
    assert cli.main(["compare", "--reference", "imagenet", "resnet50", "alexnet", "--plot", str(path)]) == 0
    captured = capsys.readouterr()
    assert "76.13%" in captured.out and "IMAGENET1K_V1" in captured.out
    assert path.stat().st_size > 10_000 and str(path) in captured.err


@pytest.mark.parametrize("argv, message", [
    (["compare"], "name the networks"),
    (["compare", "lenet5", "--input", "1x28"], "1x28 is the wrong shape"),
    (["compare", "lenet5", "--input", "nope"], "CxHxW"),
    (["compare", "lenet5", "--plot", "x.png"], "--reference"),
    (["compare", "lenett5"], "unknown model"),
    (["compare", "--reference", "imagenet", "lenet5"], "no torchvision counterpart"),
])
def test_cli_compare_bad_input_exits_2_with_one_line(capsys, argv, message):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_bad_options_are_config_errors():
    # ConfigError is a ValueError: callers catching ValueError keep working
    with pytest.raises(ConfigError, match="at least one network"):
        compare_models([])
    with pytest.raises(ConfigError, match="no reference figures"):
        reference_rows("cifar10")
    with pytest.raises(ConfigError, match="'original' or 'best'"):
        reference_rows(weights="newest")
    with pytest.raises(ConfigError, match="unknown format"):
        render_rows(compare_models(["lenet5"]), "xml")


def test_an_input_a_network_cannot_take_is_an_input_size_error():
    with pytest.raises(InputSizeError, match="cannot run on a 3x28x28 input"):
        count_macs(nn.Conv2d(1, 2, 3), (3, 28, 28))
    (row,) = compare_models([("conv5", nn.Conv2d(1, 2, 5))], (1, 2, 2))  # a row says why, the others go on
    assert "cannot run on a 1x2x2 input" in row["note"] and "params" not in row


def test_a_network_that_cannot_take_the_input_gets_a_row_saying_why(capsys):
    assert cli.main(["compare", "lenet5", "alexnet", "--input", "3x224x224", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in rows] == ["lenet5", "alexnet"]
    assert "at most 32x32" in rows[0]["note"] and rows[0]["params"] is None
    assert rows[1]["params"] == 61_100_840 and rows[1]["note"] is None
    assert cli.main(["compare", "alexnet", "--input", "3x224x224"]) == 0
    assert "note" not in capsys.readouterr().out.splitlines()[0]  # no note, no column
