"""The ``cnnlab`` command: maps arguments onto the library and holds no logic of its own.

Each subcommand lives in a module of this package with a ``register(subparsers)`` function; ``main``
builds the parser from them in the order ``--help`` lists them. A :class:`cnnlab.errors.CnnlabError`
(something the user can fix) is printed as one line with exit status 2; any other exception is a
defect of cnnlab and keeps its traceback.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence

from cnnlab.cli import data as _data
from cnnlab.cli import designspace as _designspace
from cnnlab.cli import experiment as _experiment
from cnnlab.cli import explain as _explain
from cnnlab.cli import landscape as _landscape
from cnnlab.cli import train as _train
from cnnlab.cli import zoo as _zoo
from cnnlab.errors import CnnlabError

__all__ = ["build_parser", "main"]

# A path the user named that is missing or closed to us: the system's message names it, which is all
# there is to say. Every other user mistake is a CnnlabError; any other exception is a bug and keeps
# its traceback.
_PATH_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)

# In the order --help shows them.
_MODULES = (_zoo, _train, _explain, _landscape, _designspace, _experiment, _data)


def build_parser() -> argparse.ArgumentParser:
    """The ``cnnlab`` argument parser with every subcommand."""
    from cnnlab import __version__

    parser = argparse.ArgumentParser(prog="cnnlab", description="Build, train, measure and explain classic CNNs.")
    parser.add_argument("--version", action="version", version=f"cnnlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    previous = _exit_on_sigterm()
    try:
        return int(args.func(args) or 0)
    except _Terminated:
        print("cnnlab: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("cnnlab: interrupted", file=sys.stderr)
        return 130
    except (CnnlabError, *_PATH_ERRORS) as err:
        print(f"cnnlab: error: {err}", file=sys.stderr)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, so ``finally`` blocks run before it exits 143."""


def _exit_on_sigterm():
    """Turn SIGTERM into an exception (exit 143 after cleanup); long-running commands install their own."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: object) -> None:
        raise _Terminated

    return signal.signal(signal.SIGTERM, handler)
