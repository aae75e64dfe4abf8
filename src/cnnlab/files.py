"""Atomic file writes shared by every layer: text, JSON, JSON lines and torch objects.

Each write goes to a temporary file beside the target (named after the target and the writing process)
and is renamed into place, so a process killed at any moment leaves the old file or the new one, never
half of one. Temporary files that a killed process left behind are removed by the next write of the
same target. A run directory is held by one writer at a time (``DirectoryLock``).
"""

from __future__ import annotations

import errno
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from cnnlab.errors import OutputPathError

__all__ = [
    "DirectoryBusyError",
    "DirectoryLock",
    "DiskFullError",
    "directory_holder",
    "make_unique_directory",
    "save_figure_atomic",
    "save_torch_atomic",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_jsonl_atomic",
    "write_text_atomic",
]

LOCK_NAME = ".lock"


class DiskFullError(OutputPathError):
    """The file system holding an output is full; the file being written was not replaced."""

    def __init__(self, message: str, where: str = "") -> None:
        super().__init__(message)
        self.where = where  # "no space left on MOUNT (the file system holding FOLDER)"


class DirectoryBusyError(OutputPathError):
    """Another process holds the directory's lock; ``pid`` is that process (None when it is not known)."""

    def __init__(self, message: str, pid: int | None = None) -> None:
        super().__init__(message)
        self.pid = pid


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    return _write_atomic(Path(path), "w", lambda f: f.write(text))


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` (an encoded image, say) to ``path`` through a temporary file and a rename."""
    return _write_atomic(Path(path), "wb", lambda f: f.write(data))


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """``data`` as indented JSON (non-JSON values through ``str``), written atomically."""
    return write_text_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


def write_jsonl_atomic(path: str | Path, rows: Iterable[Any]) -> Path:
    """One JSON object per line, written atomically (the whole file each time)."""
    return write_text_atomic(path, "".join(json.dumps(row, default=str) + "\n" for row in rows))


def save_figure_atomic(figure: Any, path: str | Path, dpi: int = 130) -> Path:
    """A matplotlib figure rendered in memory (format from the suffix: png, svg, pdf) and written atomically."""
    path = Path(path)
    buffer = io.BytesIO()
    figure.savefig(buffer, format=(path.suffix.lstrip(".") or "png").lower(), dpi=dpi)
    return write_bytes_atomic(path, buffer.getvalue())


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
            where = f"no space left on {_mount_point(path.parent)} (the file system holding {path.parent})"
            raise DiskFullError(f"{where}; {path.name} was not written (the previous {path.name}, if any, is "
                                f"intact)", where) from err
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


def _make_directory(path: Path) -> None:
    """Create the folder ``path`` (and its parents), or an ``OutputPathError`` saying why it cannot be."""
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{path} is a file, not a folder; choose another output folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as err:
        raise OutputPathError(f"cannot create the folder {path}: a part of it is a file, not a folder") from err
    except PermissionError as err:
        raise OutputPathError(f"cannot create the folder {path}: permission denied") from err
    except OSError as err:
        raise OutputPathError(f"cannot create the folder {path}: {err.strerror or err}") from err


def make_unique_directory(path: str | Path) -> Path:
    """Create a new folder ``path``, or ``path-2``, ``path-3``, ... when it exists: never one another made.

    The creation itself is the test (``mkdir`` fails on an existing folder), so two processes asking for
    the same name at the same moment get two folders.
    """
    path = Path(path)
    _make_directory(path.parent)
    for number in range(1, 10_000):
        candidate = path if number == 1 else path.with_name(f"{path.name}-{number}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
        except OSError as err:
            raise OutputPathError(f"cannot create the folder {candidate}: {err.strerror or err}") from err
    raise OutputPathError(f"cannot find a free name for {path}: {path}-2 to -9999 exist")


class DirectoryLock:
    """An exclusive lock on a folder (an ``flock`` on its ``.lock`` file), held until ``release()``.

    The operating system drops the lock when the holding process ends, however it ends (kill -9
    included), so a stale lock never blocks anyone. Where ``fcntl`` is missing (Windows) nothing is locked.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: IO | None = None

    def acquire(self) -> DirectoryLock:
        """Create the folder if needed and lock it; ``DirectoryBusyError`` naming the holder if it is held."""
        _make_directory(self.path)
        try:
            import fcntl
        except ImportError:
            return self
        lock_file = self.path / LOCK_NAME
        try:
            f = open(lock_file, "a+")  # noqa: SIM115  (held open for as long as the lock)
        except OSError as err:
            raise OutputPathError(f"cannot write in {self.path}: {err.strerror or err}") from err
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            pid = _lock_holder_pid(lock_file)
            holder = f"process {pid}" if pid else "another process"
            raise DirectoryBusyError(f"{self.path} is in use by {holder}", pid) from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._file = f
        return self

    def release(self) -> None:
        """Give the lock up (closing the file releases it)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> DirectoryLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def directory_holder(path: str | Path) -> int | None:
    """The process that holds ``path``'s lock now (0 when it cannot be told which), or None when it is free."""
    lock_file = Path(path) / LOCK_NAME
    try:
        import fcntl

        f = open(lock_file)  # noqa: SIM115
    except (ImportError, OSError):
        return None
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _lock_holder_pid(lock_file) or 0
        fcntl.flock(f, fcntl.LOCK_UN)
    return None


def _lock_holder_pid(lock_file: Path) -> int | None:
    try:
        text = lock_file.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _mount_point(path: Path) -> Path:
    """The mount point of the file system holding ``path`` (the device a full disk is named by)."""
    path = path.resolve()
    while not path.is_mount() and path != path.parent:
        path = path.parent
    return path


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
