"""Golden parameter and MAC counts (checked-in JSON), and published figures with their sources."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

import cnnlab
from _zoo import build_meta
from cnnlab.analysis.counting import count_macs, count_params

GOLDEN = Path(__file__).parent / "golden"
COUNTS = json.loads((GOLDEN / "counts.json").read_text())
# Keyed by model name, or by any label with a "model" field (one model checked in several variants).
PUBLISHED = {
    name: entry
    for path in sorted((GOLDEN / "published").glob("*.json"))
    for name, entry in json.loads(path.read_text()).items()
}


def test_every_model_has_golden_counts():
    assert sorted(COUNTS) == sorted(cnnlab.list_models())


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_golden_counts(name):
    info = cnnlab.get_model_info(name)
    model = build_meta(name)
    assert list(info.input_size) == COUNTS[name]["input_size"]
    assert count_params(model) == COUNTS[name]["params"]
    assert count_macs(model, info.input_size) == COUNTS[name]["macs"]


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
    if "params" in entry:
        assert count_params(model) == entry["params"]
        checked += 1
    if "params_m" in entry:
        got = count_params(model) / 1e6
        assert _matches_scaled(got, entry["params_m"]), f"{name}: {got:.4f}M vs published {entry['params_m']}M"
        checked += 1
    if "macs_g" in entry:
        size = tuple(entry.get("input_size", info.input_size))
        got = count_macs(model, size) / 1e9
        assert _matches_scaled(got, entry["macs_g"]), f"{name}: {got:.4f} GMACs vs published {entry['macs_g']}"
        checked += 1
    assert checked, f"{name}: entry checks nothing"


def _matches_scaled(value: float, expected: float) -> bool:
    exp = Decimal(str(expected))
    quantum = Decimal(1).scaleb(exp.as_tuple().exponent)
    return Decimal(repr(value)).quantize(quantum) == exp
