"""The two ways reading a data set fails: a file that is not there, and a file that is not what it claims."""

from __future__ import annotations

__all__ = ["DatasetFileError", "DatasetNotFoundError"]


class DatasetFileError(ValueError):
    """A data file that exists but cannot be read (corrupt, truncated, wrong format); names the file."""


class DatasetNotFoundError(FileNotFoundError):
    """A data set that is not on disk and could not be downloaded; says which file and how to get it."""

    def __str__(self) -> str:  # FileNotFoundError would otherwise prepend an errno
        return str(self.args[0]) if self.args else ""
