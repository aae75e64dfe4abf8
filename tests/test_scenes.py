"""Fashion-MNIST scenes: reproducible by seed, masks that match the placed items, test scenes of test items."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from _segdata import shape_items, write_items
from cnnlab.data import scenes
from cnnlab.data.scenes import FOREGROUND_THRESHOLD, SceneSpec, load_scenes, scene_classes
from cnnlab.errors import ConfigError

SMALL = SceneSpec(size=32, train=24, val=6, test=8)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("items")
    train, train_labels = shape_items(60, seed=1)
    test, test_labels = shape_items(20, seed=2)
    return write_items(root, train, train_labels, test, test_labels)


def test_same_seed_same_scenes_other_seed_other_scenes(source):
    from cnnlab.data import load_arrays

    a = load_scenes(SMALL, source)
    # Drawn again without the cache, from the test items and the test split's stream (2):
    fresh = scenes.generate_scenes(load_arrays("fashion-mnist", source)["test"], 8, SMALL, 2)
    assert torch.equal(a["test"].images, fresh.images) and torch.equal(a["test"].labels, fresh.labels)
    other = load_scenes(SceneSpec(size=32, train=24, val=6, test=8, seed=1), source)
    assert not torch.equal(a["train"].labels, other["train"].labels)


def test_sizes_counts_and_classes(source):
    s = load_scenes(SMALL, source)
    assert [len(s[k]) for k in ("train", "val", "test")] == [24, 6, 8]
    assert s["train"].images.shape == (24, 1, 32, 32) and s["train"].labels.shape == (24, 32, 32)
    assert s["train"].labels.dtype == torch.uint8 and s["train"].classes == scene_classes()
    assert scene_classes()[0] == "background" and len(scene_classes()) == 11
    p = s["train"].extra["placements"]
    counts = torch.bincount(p["scene"], minlength=24)
    assert counts.min() >= 1 and counts.max() <= 4
    assert ((p["top"] >= 0) & (p["top"] + p["side"] <= 32) & (p["left"] + p["side"] <= 32)).all()


def _expected(item: torch.Tensor, side: int) -> torch.Tensor:
    """An item drawn at ``side``: bilinear (antialiased when shrinking), rounded to uint8."""
    out = F.interpolate(item[None, None].float(), size=(side, side), mode="bilinear", align_corners=False,
                        antialias=side < 28)
    return out.round().clamp(0, 255)[0, 0].to(torch.uint8)


def test_masks_follow_the_placed_items_and_later_items_occlude_earlier_ones(source):
    from cnnlab.data import load_arrays

    spec = SceneSpec(size=48, train=10, val=0, test=12, max_items=4, seed=3)
    data = load_scenes(spec, source)["test"]
    items = load_arrays("fashion-mnist", source)["test"]
    p = data.extra["placements"]
    expected_img = torch.zeros(12, 48, 48, dtype=torch.uint8)
    expected_mask = torch.zeros(12, 48, 48, dtype=torch.uint8)
    for j in range(len(p["scene"])):  # paint in placement order, each item over the earlier ones
        s, top, left, side = (int(p[k][j]) for k in ("scene", "top", "left", "side"))
        patch = _expected(items.images[int(p["item"][j]), 0], side)
        assert int(p["label"][j]) == int(items.labels[int(p["item"][j])])
        fg = patch >= FOREGROUND_THRESHOLD
        expected_img[s, top:top + side, left:left + side][fg] = patch[fg]
        expected_mask[s, top:top + side, left:left + side][fg] = int(p["label"][j]) + 1
    assert torch.equal(data.images[:, 0], expected_img)
    assert torch.equal(data.labels, expected_mask)
    # And what a user can check on any scene: labelled pixels are exactly the ones bright enough to be an item.
    assert torch.equal(data.labels > 0, data.images[:, 0] >= FOREGROUND_THRESHOLD)
    assert (data.labels > 0).any() and (data.labels == 0).any()


def test_test_scenes_use_test_items_only_and_validation_items_are_not_training_items(tmp_path):
    # Every item is one constant value, its own: a resized constant stays that constant, so the values in a
    # scene name the items in it. Training items are 20..79, test items 200..219.
    train = np.arange(20, 80, dtype=np.uint8)[:, None, None].repeat(28, 1).repeat(28, 2)
    test = np.arange(200, 220, dtype=np.uint8)[:, None, None].repeat(28, 1).repeat(28, 2)
    root = write_items(tmp_path, train, np.arange(60) % 10, test, np.arange(20) % 10)
    s = load_scenes(SceneSpec(size=32, train=40, val=20, test=30), root)
    values = {k: set(torch.unique(s[k].images).tolist()) - {0} for k in ("train", "val", "test")}
    assert values["test"] <= set(range(200, 220)) and len(values["test"]) > 5
    assert values["train"] | values["val"] <= set(range(20, 80))
    assert not values["train"] & values["val"]  # validation scenes show items training never sees
    assert len(values["val"]) > 3


def test_the_cache_is_read_back_and_keyed_by_settings_and_source(source, tmp_path, monkeypatch):
    load_scenes(SMALL, source)
    cached = list((source / "fashion-mnist-scenes").glob("*.pt"))
    assert cached
    calls = []
    real = scenes.generate_scenes
    monkeypatch.setattr(scenes, "generate_scenes", lambda *a: calls.append(a) or real(*a))
    load_scenes(SMALL, source)
    assert calls == []  # read from the cache
    load_scenes(SceneSpec(size=32, train=24, val=6, test=9), source)
    assert len(calls) == 3  # another setting: generated anew
    other_items = write_items(tmp_path / "other", *shape_items(60, seed=5), *shape_items(20, seed=6))
    calls.clear()
    load_scenes(SMALL, other_items)
    assert len(calls) == 3  # other source data: generated anew


def test_a_damaged_cache_is_rebuilt(source):
    data = load_scenes(SMALL, source)
    for path in (source / "fashion-mnist-scenes").glob("*.pt"):
        path.write_bytes(b"not a torch file")
    again = load_scenes(SMALL, source)
    assert torch.equal(again["train"].labels, data["train"].labels)


@pytest.mark.parametrize(("text", "message"), [
    ("fashion-mnist-scenes:sise=32", "unknown scene option 'sise'"),
    ("fashion-mnist-scenes:size=8", "at least 16"),
    ("fashion-mnist-scenes:train=1.5", "whole number"),
    ("fashion-mnist-scenes:min_items=3,max_items=2", "min_items <= max_items"),
    ("mnist:size=32", "not a scene data set"),
    ("fashion-mnist-scenes:train_min_items=2", "together"),
    ("fashion-mnist-scenes:train_min_items=5,train_max_items=3", "train_min_items <= train_max_items"),
])
def test_bad_options_are_config_errors(text, message):
    with pytest.raises(ConfigError, match=message):
        SceneSpec.parse(text)


def test_the_name_spells_out_every_setting_and_parses_back():
    spec = SceneSpec.parse("fashion-mnist-scenes:size=96,train=500,max_scale=2")
    assert spec.size == 96 and spec.train == 500 and spec.max_scale == 2.0 and spec.test == 2000
    assert SceneSpec.parse(spec.name) == spec
    assert np.isclose(scenes.VAL_ITEM_SHARE * 60000, 10000)


def test_training_scenes_can_hold_their_own_number_of_items(source):
    dense = load_scenes(SceneSpec(size=32, train=24, val=6, test=8, train_min_items=5, train_max_items=6), source)
    counts = torch.bincount(dense["train"].extra["placements"]["scene"], minlength=24)
    assert counts.min() >= 5 and counts.max() <= 6
    # Validation and test scenes are those of the setting without the option, scene for scene.
    plain = load_scenes(SMALL, source)
    for split in ("val", "test"):
        assert torch.equal(dense[split].images, plain[split].images)
        assert torch.equal(dense[split].labels, plain[split].labels)
    assert (dense["train"].labels > 0).float().mean() > (plain["train"].labels > 0).float().mean()


def test_the_training_item_counts_are_named_only_when_set():
    assert "train_min_items" not in SceneSpec().name  # names (and caches) from before the option still hold
    spec = SceneSpec.parse("fashion-mnist-scenes:train=500,train_min_items=2,train_max_items=6")
    assert spec.items("train") == (2, 6) and spec.items("test") == (1, 4)
    assert SceneSpec.parse(spec.name) == spec and "train_max_items=6" in spec.name
