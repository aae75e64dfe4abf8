"""Atomic writes: the old file survives a failed write, stale temporaries go, and errors name the place."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import pytest

from cnnlab.errors import OutputPathError
from cnnlab.files import (
    DirectoryBusyError,
    DirectoryLock,
    DiskFullError,
    directory_holder,
    make_unique_directory,
    write_json_atomic,
    write_jsonl_atomic,
    write_text_atomic,
)


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


def test_a_full_disk_names_the_file_system(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 4160 vs 4096")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(DiskFullError) as err:
        write_text_atomic(tmp_path / "a.txt", "x")
    mount = tmp_path
    while not os.path.ismount(mount):
        mount = mount.parent
    assert str(err.value).startswith(f"no space left on {mount} (the file system holding {tmp_path})")


def test_unique_directories_never_reuse_a_name(tmp_path):
    made = [make_unique_directory(tmp_path / "runs" / "r") for _ in range(3)]
    assert [p.name for p in made] == ["r", "r-2", "r-3"] and all(p.is_dir() for p in made)
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputPathError, match="is a file"):
        make_unique_directory(tmp_path / "f" / "r")


def test_a_directory_lock_refuses_a_second_holder_and_names_the_first(tmp_path):
    with DirectoryLock(tmp_path / "run") as lock:
        assert directory_holder(tmp_path / "run") == os.getpid()
        with pytest.raises(DirectoryBusyError, match=f"in use by process {os.getpid()}") as err:
            DirectoryLock(tmp_path / "run").acquire()
        assert err.value.pid == os.getpid()
        assert lock.path == tmp_path / "run"
    assert directory_holder(tmp_path / "run") is None
    DirectoryLock(tmp_path / "run").acquire().release()  # free again once released


def test_a_killed_holder_leaves_no_lock(tmp_path):
    """The system drops an flock when its process dies, however it dies: a kill -9 blocks no one."""
    code = ("import fcntl, os, sys, time; f = open(sys.argv[1], 'a+'); fcntl.flock(f, fcntl.LOCK_EX); "
            "f.write(str(os.getpid())); f.flush(); print('locked', flush=True); time.sleep(60)")
    (tmp_path / "run").mkdir()
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "run" / ".lock")], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert directory_holder(tmp_path / "run") == holder.pid
    finally:
        holder.kill()
        holder.wait()
    assert directory_holder(tmp_path / "run") is None


def test_a_lock_on_a_file_path_is_a_user_error(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputPathError, match="is a file, not a folder"):
        DirectoryLock(tmp_path / "f").acquire()
