"""What a user can get wrong, as error types of their own: the CLI prints these as one line (exit 2).

Anything else raised inside cnnlab is a defect and keeps its traceback. Each type also derives from the
built-in exception a Python caller would expect (``KeyError`` and ``ValueError`` for an unknown name,
``ValueError`` for a bad value or bad data, ``FileNotFoundError`` besides for a missing data file), so
library code can catch either.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "CnnlabError",
    "ConfigError",
    "DataError",
    "InputSizeError",
    "OutputPathError",
    "UnknownNameError",
]


class CnnlabError(Exception):
    """Base of every user error: bad input, a missing file, a setting that cannot work. One line, exit 2."""

    def __str__(self) -> str:  # KeyError and OSError subclasses would otherwise quote or prefix the message
        return str(self.args[0]) if self.args else ""


class UnknownNameError(CnnlabError, KeyError, ValueError):
    """A name that is not registered (model, recipe, method, design space, experiment); lists close matches."""


class ConfigError(CnnlabError, ValueError):
    """A setting, option or argument value that cannot work (out of range, wrong type, contradictory)."""


class InputSizeError(CnnlabError, ValueError):
    """An input of a shape the network cannot take (too small, wrong channel count, wrong rank)."""


class DataError(CnnlabError, ValueError):
    """A data set that is missing, unreadable or inconsistent; names the file and how to get it."""


class CheckpointError(CnnlabError, ValueError):
    """A file that is not a cnnlab checkpoint or state_dict, or is damaged or missing."""


class OutputPathError(CnnlabError, OSError):
    """An output place that cannot be written: a file where a folder is needed, no space, held by a run."""
