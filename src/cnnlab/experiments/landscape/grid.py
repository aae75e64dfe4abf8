"""A 1-D or 2-D grid of points, filled resumably into a file and split over the processes of a torchrun job.

The grid lives in ``DIR/NAME.npz`` (the coordinates, one array per quantity shaped like the grid, and a
``done`` mask) beside ``DIR/NAME.json`` (what it is a landscape of: directions, data, model, checkpoint
hash). Both are rewritten whole and renamed into place as points finish, so a killed run leaves a
consistent pair; a restarted run checks that the metadata still describe the same landscape and computes
only the points not done. Under ``torchrun --nproc_per_node=N`` the missing points are dealt round-robin
to the processes (gloo on CPUs, NCCL on GPUs); rank 0 gathers every round and writes the file.

Array layout: a 2-D quantity has shape ``(ny, nx)``, row ``j`` at ``y[j]``, column ``i`` at ``x[i]`` (what
``matplotlib``'s ``contour(x, y, Z)`` takes); a 1-D quantity has shape ``(nx,)``.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch.distributed as dist

from cnnlab.errors import ConfigError, OutputPathError
from cnnlab.files import write_bytes_atomic, write_json_atomic
from cnnlab.train.distributed import DistEnv

__all__ = ["GRID_FORMAT", "Axis", "Grid", "GridStore", "fill_grid", "parse_axes", "rank_points"]

GRID_FORMAT = "cnnlab-landscape-v1"


@dataclass(frozen=True)
class Axis:
    """Evenly spaced coordinates along one direction: ``num`` points from ``start`` to ``stop`` inclusive."""

    start: float
    stop: float
    num: int

    def __post_init__(self) -> None:
        if self.num < 1:
            raise ConfigError(f"an axis needs at least 1 point, got {self.num}")
        if self.num > 1 and not self.stop > self.start:
            raise ConfigError(f"an axis range runs from low to high, got {self.start}:{self.stop}")

    def values(self) -> np.ndarray:
        return np.linspace(self.start, self.stop, self.num)

    def to_dict(self) -> dict[str, float]:
        return {"start": self.start, "stop": self.stop, "num": self.num}


@dataclass(frozen=True)
class Grid:
    """The points of a landscape: one axis (a line) or two (a plane), flattened row-major as ``(y, x)``."""

    axes: tuple[Axis, ...]

    def __post_init__(self) -> None:
        if len(self.axes) not in (1, 2):
            raise ConfigError(f"a landscape is 1-D or 2-D, got {len(self.axes)} axes")

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(a.num for a in reversed(self.axes))  # (ny, nx) or (nx,)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def coords(self, index: int) -> tuple[float, ...]:
        """The coordinates (x[, y]) of the point at flat ``index``."""
        if len(self.axes) == 1:
            return (float(self.axes[0].values()[index]),)
        j, i = divmod(index, self.axes[0].num)
        return float(self.axes[0].values()[i]), float(self.axes[1].values()[j])

    def centre_index(self) -> int | None:
        """The flat index of the origin, if it is a grid point."""
        hits = [np.flatnonzero(np.isclose(a.values(), 0.0, atol=1e-12)) for a in self.axes]
        if any(len(h) == 0 for h in hits):
            return None
        return int(hits[0][0]) if len(self.axes) == 1 else int(hits[1][0]) * self.axes[0].num + int(hits[0][0])


def _parse_range(text: str) -> tuple[float, float]:
    low, sep, high = text.strip().partition(":")
    try:
        if not sep:
            raise ValueError
        return float(low), float(high)
    except ValueError:
        raise ConfigError(f"a range is LOW:HIGH, e.g. -1:1, got {text!r}") from None


def parse_axes(dims: int, grid: str | int | Sequence[int], ranges: str | Sequence[tuple[float, float]]) -> Grid:
    """The grid of ``dims`` axes from ``--grid`` (``51`` or ``51x41``) and ``--range`` (``-1:1`` or
    ``-1:1,-0.5:0.5``); one value serves every axis."""
    if dims not in (1, 2):
        raise ConfigError(f"dims must be 1 or 2, got {dims}")
    if isinstance(grid, str):
        try:
            counts = [int(v) for v in grid.lower().replace(",", "x").split("x") if v.strip()]
        except ValueError:
            raise ConfigError(f"--grid takes points per axis, e.g. 51 or 51x41, got {grid!r}") from None
    elif isinstance(grid, int):
        counts = [grid]
    else:
        counts = [int(v) for v in grid]
    spans = [_parse_range(p) for p in ranges.split(",")] if isinstance(ranges, str) else [tuple(r) for r in ranges]
    if len(counts) == 1:
        counts *= dims
    if len(spans) == 1:
        spans *= dims
    if len(counts) != dims or len(spans) != dims:
        raise ConfigError(f"a {dims}-D landscape takes 1 or {dims} grid sizes and ranges, got {len(counts)} "
                          f"and {len(spans)}")
    return Grid(tuple(Axis(lo, hi, n) for (lo, hi), n in zip(spans, counts)))


class GridStore:
    """The landscape file pair ``NAME.npz`` + ``NAME.json`` of a folder: created, or reopened to resume."""

    def __init__(self, folder: str | Path, grid: Grid, identity: Mapping[str, Any], quantities: Sequence[str],
                 name: str = "landscape", extra: Mapping[str, Any] | None = None) -> None:
        self.folder = Path(folder)
        self.grid = grid
        self.name = name
        self.identity = json.loads(json.dumps({"format": GRID_FORMAT, **identity,
                                               "axes": [a.to_dict() for a in grid.axes]}, default=str))
        self.quantities = list(quantities)
        self.extra = dict(extra or {})
        self.values = {q: np.full(grid.shape, np.nan) for q in self.quantities}
        self.done = np.zeros(grid.shape, dtype=bool)
        self.resumed = self._load()

    @property
    def npz_path(self) -> Path:
        return self.folder / f"{self.name}.npz"

    @property
    def json_path(self) -> Path:
        return self.folder / f"{self.name}.json"

    def _load(self) -> bool:
        """Take the finished points of an earlier run of the same landscape; refuse one of another."""
        if not self.json_path.exists():
            return False
        try:
            meta = json.loads(self.json_path.read_text())
            with np.load(self.npz_path) as arrays:
                done = arrays["done"].astype(bool)
                values = {q: arrays[q] for q in self.quantities if q in arrays.files}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
            raise OutputPathError(f"{self.folder} holds a damaged landscape ({err}); remove {self.json_path.name} "
                                  f"and {self.npz_path.name} or choose another --out") from err
        stored = meta.get("identity", {})
        different = [k for k in sorted(set(stored) | set(self.identity)) if stored.get(k) != self.identity.get(k)]
        if different:
            raise OutputPathError(
                f"{self.folder} holds a landscape of other settings ({', '.join(different)} differ); choose another "
                f"--out, or remove {self.json_path.name} and {self.npz_path.name} to start over")
        if done.shape != self.grid.shape or set(values) != set(self.quantities):
            raise OutputPathError(f"{self.npz_path} does not match its metadata; remove it to start over")
        self.done, self.values = done, {q: values[q].astype(np.float64) for q in self.quantities}
        self.extra = {**meta.get("extra", {}), **self.extra}
        return True

    def missing(self) -> list[int]:
        """Flat indices of the points not computed yet, in order."""
        return [int(i) for i in np.flatnonzero(~self.done.reshape(-1))]

    def record(self, index: int, values: Mapping[str, float]) -> None:
        for q in self.quantities:
            self.values[q].reshape(-1)[index] = values[q]
        self.done.reshape(-1)[index] = True

    def arrays(self) -> dict[str, np.ndarray]:
        """Everything the .npz holds: the axes' coordinates, the quantities and the done mask."""
        coords = {name: axis.values() for name, axis in zip(("x", "y"), self.grid.axes)}
        return {**coords, **self.values, "done": self.done}

    def write(self) -> None:
        """Write the .npz, then the .json (rename each into place): a kill leaves the earlier pair or the new one."""
        buffer = io.BytesIO()
        np.savez(buffer, **self.arrays())
        write_bytes_atomic(self.npz_path, buffer.getvalue())
        write_json_atomic(self.json_path, {"identity": self.identity, "quantities": self.quantities,
                                           "shape": list(self.grid.shape), "points_done": int(self.done.sum()),
                                           "points": self.grid.size, "extra": self.extra})


def rank_points(missing: Sequence[int], env: DistEnv) -> list[list[int]]:
    """Rounds of points: round r gives rank k the point ``missing[r * world + k]`` (if there is one)."""
    world = env.world_size
    return [list(missing[start:start + world]) for start in range(0, len(missing), world)]


def _gather(index: int | None, values: dict[str, float] | None, env: DistEnv) -> list[tuple[int, dict] | None]:
    if not env.enabled:
        return [(index, values)] if index is not None else []
    out: list = [None] * env.world_size
    dist.all_gather_object(out, (index, values) if index is not None else None)
    return [row for row in out if row is not None]


def fill_grid(store: GridStore, evaluate: Callable[[tuple[float, ...]], dict[str, float]],
              env: DistEnv | None = None, flush_seconds: float = 2.0,
              on_point: Callable[[int], None] | None = None) -> int:
    """Compute every missing point of ``store`` (this rank's share of each round), writing the file at least
    every ``flush_seconds`` and at the end (rank 0); returns the number of points computed by all ranks."""
    env = env or DistEnv()
    computed = 0
    last_write = time.monotonic()
    try:
        for round_points in rank_points(store.missing(), env):
            mine = round_points[env.rank] if env.rank < len(round_points) else None
            values = evaluate(store.grid.coords(mine)) if mine is not None else None
            for index, result in _gather(mine, values, env):
                store.record(index, result)
                computed += 1
            if on_point is not None:
                on_point(len(round_points))
            if env.is_main and time.monotonic() - last_write >= flush_seconds:
                store.write()
                last_write = time.monotonic()
    finally:
        if env.is_main:
            store.write()
    return computed

