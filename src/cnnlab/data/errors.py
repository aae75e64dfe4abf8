"""The ways reading a data set fails: a file that is not there, and a file that is not what it claims."""

from __future__ import annotations

from cnnlab.errors import DataError

__all__ = ["DatasetFileError", "DatasetNotFoundError"]


class DatasetFileError(DataError, ValueError):
    """A data file or folder that exists but cannot be read (corrupt, truncated, wrong format or layout)."""


class DatasetNotFoundError(DataError, FileNotFoundError):
    """A data set that is not on disk and could not be downloaded; says which file and how to get it."""
