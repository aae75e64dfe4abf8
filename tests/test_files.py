"""Atomic writes: the old file survives a failed write, stale temporaries go, and errors name the place."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import pytest

from cnnlab.errors import OutputPathError
from cnnlab.files import write_json_atomic, write_jsonl_atomic, write_text_atomic


def test_writes_replace_the_file_whole(tmp_path):
    path = tmp_path / "sub" / "a.json"
    write_json_atomic(path, {"x": 1})
    write_json_atomic(path, {"x": 2})
    assert json.loads(path.read_text()) == {"x": 2}
    write_jsonl_atomic(tmp_path / "rows.jsonl", [{"a": 1}, {"a": 2}])
    assert [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines()] == [{"a": 1}, {"a": 2}]
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.json"]  # no temporary left


def test_a_stale_temporary_of_a_dead_process_is_removed_on_the_next_write(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    stale = tmp_path / f".a.txt.{pid}.xyz.tmp"
    stale.write_text("half")
    alive = tmp_path / f".a.txt.{os.getppid()}.xyz.tmp"  # a running process's: kept
    alive.write_text("busy")
    write_text_atomic(tmp_path / "a.txt", "done")
    assert not stale.exists() and alive.exists()
    assert (tmp_path / "a.txt").read_text() == "done"


def test_a_file_where_a_folder_is_needed_is_a_user_error(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputPathError, match="is a file, not a folder"):
        write_text_atomic(tmp_path / "f" / "a.txt", "x")


def test_a_full_disk_says_so_and_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "a.txt"
    write_text_atomic(path, "old")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OutputPathError, match="no space left"):
        write_text_atomic(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_figures_are_rendered_in_memory_and_written_whole(tmp_path):
    from matplotlib.figure import Figure

    from cnnlab.files import save_figure_atomic

    fig = Figure()
    fig.subplots().plot([0, 1], [1, 0])
    png = save_figure_atomic(fig, tmp_path / "a.png")
    svg = save_figure_atomic(fig, tmp_path / "a.svg")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and b"<svg" in svg.read_bytes()[:400]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "a.svg"]
