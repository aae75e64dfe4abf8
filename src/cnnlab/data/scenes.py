"""Fashion-MNIST scenes: seeded segmentation data that works offline wherever Fashion-MNIST does.

A scene is a black ``size`` x ``size`` canvas (64 by default) on which 1 to 4 Fashion-MNIST items are
pasted, each at a random position and a random scale (its 28x28 image resized to 21..42 pixels by
default), with a label map: 0 = background, k + 1 = Fashion-MNIST class k on the item's foreground pixels.

Foreground: a pixel of a placed (resized) item is foreground when its intensity is at least
``FOREGROUND_THRESHOLD`` = 16 of 255. Only foreground pixels are pasted, so a later item occludes the
earlier ones exactly where it is foreground, and image and label map agree pixel for pixel: a pixel is
labelled with an item's class if and only if it shows that item. About 7% of an item's nonzero pixels are
fainter than 16 (measured on the first 5000 training images), mostly its anti-aliased outline; they stay
background.

Items come from the matching split: test scenes hold test items only; validation scenes hold a seeded
sixth of the training items (the size of the test split) and training scenes the other five sixths, so
validation measures items the network never saw. The scenes are generated once per setting and cached
as uint8 tensors in a torch file (``<data root>/fashion-mnist-scenes/<key>.pt``, key = every generator
setting and a digest of the Fashion-MNIST arrays), then held on the device like the classification data.
Options follow the data set's name: ``fashion-mnist-scenes:size=96,train=20000,seed=1``.

``train_min_items``/``train_max_items`` give the training scenes their own number of items (validation and
test scenes keep ``min_items..max_items``, and are the very scenes the setting without them gives): denser
training scenes show more items per pixel computed, which is what a network short of training time lacks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cnnlab.data.arrays import ArrayDataset, split_indices
from cnnlab.data.sources import FASHION_CLASSES, data_roots, download_root, load_arrays
from cnnlab.errors import ConfigError
from cnnlab.files import save_torch_atomic
from cnnlab.options import format_options, parse_model_spec

__all__ = [
    "FOREGROUND_THRESHOLD",
    "SCENES_NAME",
    "SceneSpec",
    "generate_scenes",
    "is_scenes_name",
    "item_owners",
    "load_scenes",
    "scene_classes",
]

SCENES_NAME = "fashion-mnist-scenes"
_ALIASES = {"fashion-mnist-scenes", "fashion_mnist_scenes", "fmnist-scenes", "scenes"}
FOREGROUND_THRESHOLD = 16  # of 255, on the resized item: see the module docstring
ITEM_SIDE = 28  # Fashion-MNIST's images
VAL_ITEM_SHARE = 1 / 6  # of the training items, kept for validation scenes (10000 of 60000)
_FORMAT = "cnnlab-scenes-v1"  # bump when the generator changes what a setting produces
_SPLITS = ("train", "val", "test")  # in stream order: a split's scenes are drawn from seed (spec.seed, stream)


@dataclass(frozen=True)
class SceneSpec:
    """The settings of a scene data set: canvas side, split sizes, items per scene, scales and seed."""

    size: int = 64  # canvas side in pixels
    train: int = 10000  # training scenes
    val: int = 1000  # validation scenes (0: none)
    test: int = 2000  # test scenes
    min_items: int = 1  # items per scene, drawn uniformly from min_items..max_items
    max_items: int = 4
    min_scale: float = 0.75  # item side = 28 x scale, scale uniform in [min_scale, max_scale]
    max_scale: float = 1.5
    seed: int = 0
    train_min_items: int = 0  # items per training scene when set (both, or neither); 0: min_items..max_items
    train_max_items: int = 0

    @classmethod
    def parse(cls, text: str) -> SceneSpec:
        """The settings of ``fashion-mnist-scenes[:key=value,...]``; unknown keys name the known ones."""
        name, options = parse_model_spec(text)
        if name.lower() not in _ALIASES:
            raise ConfigError(f"{text!r} is not a scene data set; write {SCENES_NAME}[:key=value,...]")
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ConfigError(f"unknown scene option {unknown[0]!r}; the options are {', '.join(known)}")
        values = {}
        for key, value in options.items():
            kind = float if known[key] == "float" else int
            if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and value != int(value)):
                raise ConfigError(f"scene option {key} must be a {'number' if kind is float else 'whole number'}, "
                                  f"got {value!r}")
            values[key] = kind(value)
        return cls(**values).validate()

    def validate(self) -> SceneSpec:
        """Raise a ``ConfigError`` naming the first setting that cannot work; return self."""
        checks = [
            (self.size >= 16, f"scene size must be at least 16 pixels, got {self.size}"),
            (self.train >= 1 and self.test >= 1 and self.val >= 0,
             f"scene counts: train and test at least 1, val 0 or more; got {self.train}, {self.test}, {self.val}"),
            (1 <= self.min_items <= self.max_items, f"items per scene: 1 <= min_items <= max_items, got "
                                                    f"{self.min_items}..{self.max_items}"),
            ((self.train_min_items == 0) == (self.train_max_items == 0),
             f"set train_min_items and train_max_items together, got {self.train_min_items}.."
             f"{self.train_max_items}"),
            (not self.train_min_items or 1 <= self.train_min_items <= self.train_max_items,
             f"items per training scene: 1 <= train_min_items <= train_max_items, got {self.train_min_items}.."
             f"{self.train_max_items}"),
            (0.1 <= self.min_scale <= self.max_scale, f"scales: 0.1 <= min_scale <= max_scale, got "
                                                      f"{self.min_scale}..{self.max_scale}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        return self

    @property
    def name(self) -> str:
        """The data set's full name, every setting spelled out (what checkpoints store)."""
        return f"{SCENES_NAME}:{format_options(self.settings())}"

    def settings(self) -> dict:
        """Every setting, less the training-scene item counts when unset (names and caches made before them hold)."""
        values = asdict(self)
        if not self.train_min_items:
            del values["train_min_items"], values["train_max_items"]
        return values

    def count(self, split: str) -> int:
        return {"train": self.train, "val": self.val, "test": self.test}[split]

    def items(self, split: str) -> tuple[int, int]:
        """The least and most items a scene of ``split`` holds."""
        if split == "train" and self.train_min_items:
            return self.train_min_items, self.train_max_items
        return self.min_items, self.max_items


def is_scenes_name(name: str) -> bool:
    """Whether a ``--data`` value names the scene data set (with or without options)."""
    return name.partition(":")[0].strip().lower() in _ALIASES


def scene_classes() -> list[str]:
    """Class names of the label maps: background, then Fashion-MNIST's ten classes."""
    return ["background", *FASHION_CLASSES]


def _placements(rng: np.random.Generator, scenes: int, pool: int, spec: SceneSpec,
                items: tuple[int, int]) -> dict[str, np.ndarray]:
    """Every item placement of ``scenes`` scenes in pasting order: scene, item index, side, top, left."""
    counts = rng.integers(items[0], items[1] + 1, size=scenes)
    scene = np.repeat(np.arange(scenes), counts)
    total = len(scene)
    item = rng.integers(0, pool, size=total)
    scale = rng.uniform(spec.min_scale, spec.max_scale, size=total)
    side = np.clip(np.rint(ITEM_SIDE * scale).astype(np.int64), 4, spec.size)
    top = (rng.random(total) * (spec.size - side + 1)).astype(np.int64)
    left = (rng.random(total) * (spec.size - side + 1)).astype(np.int64)
    return {"scene": scene, "item": item, "side": side, "top": top, "left": left}


def _resized_items(images: torch.Tensor, item: np.ndarray, side: np.ndarray) -> list[np.ndarray]:
    """Each placed item's image at its side (bilinear, antialiased when shrinking), in placement order."""
    out: list[np.ndarray] = [np.empty(0, np.uint8)] * len(item)
    for s in np.unique(side):
        where = np.flatnonzero(side == s)
        batch = images[torch.from_numpy(item[where])].float()  # (n, 1, 28, 28)
        resized = F.interpolate(batch, size=(int(s), int(s)), mode="bilinear", align_corners=False,
                                antialias=s < ITEM_SIDE)
        resized = resized.round_().clamp_(0, 255).to(torch.uint8)[:, 0].numpy()
        for j, patch in zip(where, resized):
            out[j] = patch
    return out


def generate_scenes(items: ArrayDataset, count: int, spec: SceneSpec, stream: int) -> ArrayDataset:
    """``count`` scenes of ``items`` (28x28 Fashion-MNIST images and labels), drawn from seed (spec.seed, stream)."""
    rng = np.random.default_rng([spec.seed, stream])
    split = _SPLITS[stream]
    place = _placements(rng, count, len(items), spec, spec.items(split))
    patches = _resized_items(items.images, place["item"], place["side"])
    labels = items.labels.numpy()[place["item"]] + 1
    canvas = np.zeros((count, spec.size, spec.size), np.uint8)
    masks = np.zeros((count, spec.size, spec.size), np.uint8)
    for j, patch in enumerate(patches):  # in pasting order: later items occlude earlier ones
        s, top, left, side = place["scene"][j], place["top"][j], place["left"][j], place["side"][j]
        window = np.s_[s, top : top + side, left : left + side]
        fg = patch >= FOREGROUND_THRESHOLD
        canvas[window][fg] = patch[fg]
        masks[window][fg] = labels[j]
    place["label"] = labels - 1
    return ArrayDataset(
        torch.from_numpy(canvas).unsqueeze(1),
        torch.from_numpy(masks),
        scene_classes(),
        name=f"{SCENES_NAME}:{split}",
        source=items.source,
        extra={"placements": {k: torch.from_numpy(v) for k, v in place.items()}},
    )


def item_owners(spec: SceneSpec, scenes: ArrayDataset, split: str,
                data_dir: str | Path | None = None) -> tuple[torch.Tensor, np.ndarray]:
    """Per pixel of ``split``'s scenes, the index of the placed item it shows (-1: background); per placed item,
    its foreground pixels before occlusion. Pastes the items again as ``generate_scenes`` did, in order."""
    place = {k: v.numpy() for k, v in scenes.extra["placements"].items()}
    pool = _item_pools(load_arrays("fashion-mnist", data_dir, True), spec)[split]
    owner = np.full(tuple(scenes.labels.shape), -1, np.int64)
    foreground = np.zeros(len(place["item"]), np.int64)
    for j, patch in enumerate(_resized_items(pool.images, place["item"], place["side"])):
        s, top, left, side = (int(place[k][j]) for k in ("scene", "top", "left", "side"))
        fg = patch >= FOREGROUND_THRESHOLD
        owner[s, top : top + side, left : left + side][fg] = j  # later items overwrite, as they occlude
        foreground[j] = fg.sum()
    return torch.from_numpy(owner), foreground


def _digest(splits: dict[str, ArrayDataset]) -> str:
    """A digest of the item arrays: the cache key changes when the Fashion-MNIST files do."""
    h = hashlib.blake2b(digest_size=16)
    for key in sorted(splits):
        h.update(splits[key].images.numpy().tobytes())
        h.update(splits[key].labels.numpy().tobytes())
    return h.hexdigest()


def _item_pools(fashion: dict[str, ArrayDataset], spec: SceneSpec) -> dict[str, ArrayDataset]:
    """The items each split's scenes draw from: train and val share out the training items, test its own."""
    train_idx, val_idx = split_indices(len(fashion["train"]), VAL_ITEM_SHARE, spec.seed)
    return {
        "train": fashion["train"].subset(train_idx),
        "val": fashion["train"].subset(val_idx),
        "test": fashion["test"],
    }


def _cache_path(spec: SceneSpec, digest: str, data_dir: str | Path | None) -> Path:
    key = hashlib.blake2b(json.dumps([_FORMAT, spec.settings(), digest]).encode(), digest_size=10).hexdigest()
    return download_root(data_roots(data_dir)) / SCENES_NAME / f"{key}.pt"


def _read_cache(path: Path, spec: SceneSpec, source: str) -> dict[str, ArrayDataset] | None:
    """The cached splits, or None when there is no cache or it is not the one wanted (it is then rebuilt)."""
    if not path.is_file():
        return None
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
        if stored.get("format") != _FORMAT or stored.get("spec") != spec.settings():
            return None
        return {
            split: ArrayDataset(stored[f"{split}_images"], stored[f"{split}_masks"], scene_classes(),
                                f"{SCENES_NAME}:{split}", source, {"placements": stored[f"{split}_placements"]})
            for split in ("train", "val", "test")
        }
    except Exception:  # noqa: BLE001  (a damaged or foreign cache file is rebuilt, never trusted)
        return None


def _write_cache(path: Path, spec: SceneSpec, splits: dict[str, ArrayDataset], say: Callable[[str], None]) -> None:
    payload: dict = {"format": _FORMAT, "spec": spec.settings()}
    for split, data in splits.items():
        payload.update({f"{split}_images": data.images, f"{split}_masks": data.labels,
                        f"{split}_placements": data.extra["placements"]})
    try:
        save_torch_atomic(payload, path)
    except OSError as err:  # a read-only data root: the scenes are deterministic, so only time is lost
        say(f"could not cache the scenes in {path} ({err}); they are generated again next time")


def load_scenes(
    spec: SceneSpec,
    data_dir: str | Path | None = None,
    download: bool = True,
    say: Callable[[str], None] = lambda message: None,
) -> dict[str, ArrayDataset]:
    """The train, val and test scenes of ``spec`` (from the cache, else generated and cached)."""
    fashion = load_arrays("fashion-mnist", data_dir, download)
    path = _cache_path(spec, _digest(fashion), data_dir)
    cached = _read_cache(path, spec, fashion["train"].source)
    if cached is not None:
        return cached
    say(f"generating {spec.train} + {spec.val} + {spec.test} Fashion-MNIST scenes of {spec.size}x{spec.size} "
        f"(once; cached in {path})")
    pools = _item_pools(fashion, spec)
    splits = {split: generate_scenes(pools[split], max(spec.count(split), 0), spec, stream)
              for stream, split in enumerate(_SPLITS)}
    _write_cache(path, spec, splits, say)
    return splits
