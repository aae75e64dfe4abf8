"""The packaged zoo counts equal live counts (a change detector), and published figures with their sources.

src/cnnlab/analysis/zoo_counts.json (written by tests/golden/regen_counts.py) is what `cnnlab models` prints
without building the networks; comparing it with a live count keeps it from going stale. It checks cnnlab
against itself; the independent checks are the published figures below and torchvision's metadata
(tests/test_torchvision_equivalence.py).
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
import torch

import cnnlab
from _tiny import tiny_registered
from _zoo import build_meta
from cnnlab import cli
from cnnlab.analysis import zoo
from cnnlab.analysis.counting import count_forward, count_inference_params, count_macs, count_params

GOLDEN = Path(__file__).parent / "golden"
COUNTS = zoo.packaged_counts()
# Keyed by model name, or by any label with a "model" field (one model checked in several variants).
PUBLISHED = {
    name: entry
    for path in sorted((GOLDEN / "published").glob("*.json"))
    for name, entry in json.loads(path.read_text()).items()
}


def test_every_model_is_in_the_packaged_table():
    assert sorted(COUNTS) == sorted(n for n in cnnlab.list_models() if cnnlab.get_model_info(n).family != "tiny")


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_packaged_counts_equal_live_counts(name):
    info = cnnlab.get_model_info(name)
    model = build_meta(name)
    assert list(info.input_size) == COUNTS[name]["input_size"]
    counted = count_forward(model, info.input_size)
    assert (counted.params, counted.macs) == (COUNTS[name]["params"], COUNTS[name]["macs"])
    assert count_params(model) == COUNTS[name]["all_params"]


def test_models_rows_read_the_table_and_count_the_rest_live(monkeypatch):
    def no_live_count(name):
        raise AssertionError(f"{name} was counted live")

    monkeypatch.setattr(zoo, "live_counts", no_live_count)
    rows = {r["name"]: r for r in zoo.zoo_rows("resnet*")}
    assert rows["resnet50"]["params"] == COUNTS["resnet50"]["params"] == 25_557_032  # torchvision's num_params
    monkeypatch.undo()
    with tiny_registered() as tiny:  # registered by a user: not in the table, counted now
        (row,) = zoo.zoo_rows(tiny)
        model = build_meta(tiny)
    assert (row["params"], row["macs"]) == (count_params(model), count_macs(model, (1, 28, 28)))
    assert row["all_params"] is None  # every parameter is used at inference


def test_a_table_entry_for_another_input_is_not_used(monkeypatch):
    stale = {name: dict(entry, input_size=[1, 8, 8], macs=-1) for name, entry in COUNTS.items()}
    monkeypatch.setattr(zoo, "packaged_counts", lambda: stale)
    row = {r["name"]: r for r in zoo.zoo_rows("lenet")}["lenet5"]
    assert row["macs"] == COUNTS["lenet5"]["macs"] and row["input"] == "1x32x32"


def test_models_count_the_network_at_inference_and_label_the_training_count():
    rows = {r["name"]: r for r in zoo.zoo_rows("*")}
    # torchvision's published num_params of GoogLeNet leaves out the auxiliary heads (its weights drop them)
    assert rows["googlenet"]["params"] == 6_624_904 and rows["googlenet"]["all_params"] == 13_004_888
    # torchvision's Inception-v3 num_params (27,161,264) keeps its auxiliary head; timm's 23.83M does not
    assert rows["inception_v3"]["params"] == 23_834_568 and rows["inception_v3"]["all_params"] == 27_161_264
    assert rows["resnet50"]["all_params"] is None
    aux = [n for n, r in rows.items() if r["all_params"] is not None]
    for name in aux:  # the difference is exactly the auxiliary heads the registry network carries
        model = build_meta(name)
        heads = sum(p.numel() for head in model.aux_taps.values() for p in getattr(model, head).parameters())
        assert rows[name]["all_params"] - rows[name]["params"] == heads


def test_inference_count_leaves_out_modules_never_called():
    class WithSpare(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 4, 3)
            self.spare = torch.nn.Linear(10, 10)  # registered, never called

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x)

    net = WithSpare()
    assert count_params(net) == 40 + 110
    assert count_inference_params(net, (1, 5, 5)) == 40


def test_cli_models_shows_the_smallest_input(capsys):
    assert cli.main(["models", "--format", "json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert list(rows["vgg16"]) == list(zoo.ZOO_COLUMNS)
    # VGG's five 2x2 pools need 32x32; LeNet-5 centres anything up to 32x32 in its field
    assert rows["vgg16"]["min_input"] == 32 and rows["lenet5"]["min_input"] == 1
    assert rows["inception_v3"]["min_input"] == 75
    with pytest.raises(SystemExit):
        cli.main(["models", "--help"])
    assert "padded to 32x32 for VGG" in " ".join(capsys.readouterr().out.split())


def test_every_model_without_torchvision_twin_has_a_published_reference():
    referenced = {entry.get("model", key) for key, entry in PUBLISHED.items()}
    lacking = [n for n in cnnlab.list_models() if not cnnlab.get_model_info(n).torchvision and n not in referenced]
    assert not lacking, f"no published figure to check against: {lacking}"


@pytest.mark.parametrize("key", sorted(PUBLISHED))
def test_published_figures(key):
    entry = PUBLISHED[key]
    name = entry.get("model", key)
    assert entry.get("source"), f"{name}: a published figure must name its source"
    kwargs = entry.get("kwargs", {})
    info = cnnlab.get_model_info(name)
    model = build_meta(name, **kwargs)
    checked = 0
    standard = (kwargs.get("in_chans", info.input_size[0]), *info.input_size[1:])
    size = tuple(entry.get("input_size", standard))
    params = count_inference_params(model, size)  # published figures describe the network at inference
    if "params" in entry:
        assert params == entry["params"]
        checked += 1
    if "params_m" in entry:
        got = params / 1e6
        assert _matches_scaled(got, entry["params_m"]), f"{name}: {got:.4f}M vs published {entry['params_m']}M"
        checked += 1
    if "macs_g" in entry:
        got = count_macs(model, size) / 1e9
        assert _matches_scaled(got, entry["macs_g"]), f"{name}: {got:.4f} GMACs vs published {entry['macs_g']}"
        checked += 1
    assert checked, f"{name}: entry checks nothing"


def _matches_scaled(value: float, expected: float) -> bool:
    exp = Decimal(str(expected))
    quantum = Decimal(1).scaleb(exp.as_tuple().exponent)
    return Decimal(repr(value)).quantize(quantum) == exp
