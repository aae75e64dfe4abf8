"""The grid: parsing --grid/--range, point coordinates, the resumable file (an interrupted fill finishes to the
same grid, computing only the missing points), refusal of another landscape's folder, and the split of points
over processes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cnnlab.errors import ConfigError, OutputPathError
from cnnlab.experiments.landscape.grid import Axis, Grid, GridStore, fill_grid, parse_axes, rank_points
from cnnlab.train.distributed import DistEnv


def test_parse_axes():
    grid = parse_axes(2, "5x3", "-1:1,-0.5:0.5")
    assert grid.shape == (3, 5) and grid.size == 15
    assert grid.coords(0) == (-1.0, -0.5) and grid.coords(7) == (0.0, 0.0) and grid.coords(14) == (1.0, 0.5)
    assert grid.centre_index() == 7
    line = parse_axes(1, 21, "-0.5:1.5")
    assert line.shape == (21,) and line.coords(3) == pytest.approx((-0.2,)) and line.centre_index() == 5
    assert parse_axes(1, 11, "-0.5:1.5").centre_index() is None  # steps of 0.2 from -0.5 miss 0
    assert parse_axes(2, "4", "0:1").centre_index() == 0
    assert parse_axes(2, "4", "0.5:1").centre_index() is None
    for dims, grid_text, ranges, match in [(3, "5", "-1:1", "dims"), (2, "5x", "-1", "range"),
                                           (2, "5xa", "-1:1", "grid"), (2, "5x5x5", "-1:1", "1 or 2"),
                                           (1, "5", "1:-1", "low to high"), (1, "0", "-1:1", "at least 1")]:
        with pytest.raises(ConfigError, match=match):
            parse_axes(dims, grid_text, ranges)


class _Counting:
    """A deterministic function of the point that counts its calls and can fail after a number of them."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.calls: list[tuple[float, ...]] = []
        self.fail_after = fail_after

    def __call__(self, coords: tuple[float, ...]) -> dict[str, float]:
        if self.fail_after is not None and len(self.calls) == self.fail_after:
            raise KeyboardInterrupt  # a Ctrl-C (or SIGTERM turned into an exception) mid-grid
        self.calls.append(coords)
        x, y = coords
        return {"train_loss": x * x + 2 * y * y + 0.5 * x * y, "train_accuracy": 1.0 / (1.0 + x * x + y * y)}


IDENTITY = {"model": "toy", "directions": {"seed": 0}}
QUANTITIES = ["train_loss", "train_accuracy"]


def test_an_interrupted_grid_resumes_to_the_uninterrupted_one(tmp_path):
    grid = parse_axes(2, "6x5", "-1:1")
    whole = GridStore(tmp_path / "whole", grid, IDENTITY, QUANTITIES)
    assert fill_grid(whole, _Counting()) == 30

    first = _Counting(fail_after=13)
    with pytest.raises(KeyboardInterrupt):
        fill_grid(GridStore(tmp_path / "cut", grid, IDENTITY, QUANTITIES), first)
    reopened = GridStore(tmp_path / "cut", grid, IDENTITY, QUANTITIES)
    assert reopened.resumed and len(reopened.missing()) == 30 - 13  # written on the way out
    second = _Counting()
    assert fill_grid(reopened, second) == 17
    assert set(second.calls).isdisjoint(first.calls) and len(first.calls) + len(second.calls) == 30
    cut = np.load(tmp_path / "cut" / "landscape.npz")
    full = np.load(tmp_path / "whole" / "landscape.npz")
    assert sorted(cut.files) == sorted(full.files) == ["done", "train_accuracy", "train_loss", "x", "y"]
    for key in full.files:
        assert np.array_equal(cut[key], full[key]), key
    meta = json.loads((tmp_path / "cut" / "landscape.json").read_text())
    assert meta["points_done"] == meta["points"] == 30 and meta["shape"] == [5, 6]
    # A finished grid computes nothing more.
    assert fill_grid(GridStore(tmp_path / "cut", grid, IDENTITY, QUANTITIES), _Counting(fail_after=0)) == 0


def test_values_sit_at_their_coordinates(tmp_path):
    store = GridStore(tmp_path, parse_axes(2, "4x3", "0:3,0:2"), IDENTITY, QUANTITIES)
    fill_grid(store, _Counting())
    x, y = store.grid.axes[0].values(), store.grid.axes[1].values()
    xx, yy = np.meshgrid(x, y)  # (ny, nx): what contour(x, y, Z) takes
    assert np.array_equal(store.values["train_loss"], xx * xx + 2 * yy * yy + 0.5 * xx * yy)


def test_a_folder_of_another_landscape_is_refused(tmp_path):
    grid = parse_axes(1, 5, "-1:1")
    store = GridStore(tmp_path, grid, IDENTITY, ["train_loss"])
    fill_grid(store, lambda c: {"train_loss": c[0]})
    with pytest.raises(OutputPathError, match="directions differ"):
        GridStore(tmp_path, grid, {**IDENTITY, "directions": {"seed": 1}}, ["train_loss"])
    with pytest.raises(OutputPathError, match="axes differ"):
        GridStore(tmp_path, parse_axes(1, 7, "-1:1"), IDENTITY, ["train_loss"])
    (tmp_path / "landscape.npz").write_bytes(b"not an npz")
    with pytest.raises(OutputPathError, match="damaged"):
        GridStore(tmp_path, grid, IDENTITY, ["train_loss"])


@pytest.mark.parametrize("world", [1, 2, 3, 5])
def test_every_missing_point_goes_to_exactly_one_process(world):
    missing = [0, 2, 3, 7, 8, 9, 11]
    rounds = rank_points(missing, DistEnv(0, world, 0, world))
    taken = [r[rank] for rank in range(world) for r in rounds if rank < len(r)]
    assert sorted(taken) == missing
    assert all(len(r) <= world for r in rounds) and len(rounds) == -(-len(missing) // world)


def test_an_axis_needs_a_range():
    with pytest.raises(ConfigError):
        Axis(1.0, 1.0, 3)
    assert Axis(0.5, 0.5, 1).values().tolist() == [0.5]
    with pytest.raises(ConfigError, match="1-D or 2-D"):
        Grid(())
