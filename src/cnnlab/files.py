"""Atomic file writes shared by every layer: text, JSON, JSON lines and torch objects.

Each write goes to a temporary file beside the target (named after the target and the writing process)
and is renamed into place, so a process killed at any moment leaves the old file or the new one, never
half of one. Temporary files that a killed process left behind are removed by the next write of the
same target.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from cnnlab.errors import OutputPathError

__all__ = ["save_torch_atomic", "write_bytes_atomic", "write_json_atomic", "write_jsonl_atomic", "write_text_atomic"]


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    return _write_atomic(Path(path), "w", lambda f: f.write(text))


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` (an .npz or .png made in memory) to ``path`` through a temporary file and a rename."""
    return _write_atomic(Path(path), "wb", lambda f: f.write(data))


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """``data`` as indented JSON (non-JSON values through ``str``), written atomically."""
    return write_text_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


def write_jsonl_atomic(path: str | Path, rows: Iterable[Any]) -> Path:
    """One JSON object per line, written atomically (the whole file each time)."""
    return write_text_atomic(path, "".join(json.dumps(row, default=str) + "\n" for row in rows))


def save_torch_atomic(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj)`` to ``path`` atomically, flushed to disk before the rename."""
    import torch

    def write(f: IO) -> None:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())

    return _write_atomic(Path(path), "wb", write)


def _write_atomic(path: Path, mode: str, write: Callable[[IO], object]) -> Path:
    _make_parent(path)
    _remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if _is_disk_full(err):
            raise OutputPathError(f"no space left on the device holding {path.parent}; {path.name} was not "
                                  f"written (the previous {path.name}, if any, is intact)") from err
        raise
    return path


def _make_parent(path: Path) -> None:
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise OutputPathError(f"cannot write {path}: {parent} is a file, not a folder")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as err:
        raise OutputPathError(f"cannot write {path}: a part of {parent} is a file, not a folder") from err


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}."


def _remove_stale_temporaries(path: Path) -> None:
    """Delete temporary files of ``path`` whose writing process no longer runs (it was killed mid-write)."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid_text = tmp.name[len(path.name) + 2:].split(".", 1)[0]
        if pid_text.isdigit() and not _process_alive(int(pid_text)):
            tmp.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _is_disk_full(err: BaseException) -> bool:
    # torch.save reports a full disk as a RuntimeError from its zip writer, not as an OSError.
    while err is not None:
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(err, RuntimeError) and ("unexpected pos" in str(err) or "No space left" in str(err)):
            return True
        err = err.__cause__ or err.__context__
    return False
