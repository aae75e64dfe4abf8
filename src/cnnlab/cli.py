"""The ``cnnlab`` command: maps arguments onto the library and holds no logic of its own."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

__all__ = ["main"]


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


def _cmd_models(args: argparse.Namespace) -> int:
    from cnnlab.analysis.table import human, render
    from cnnlab.analysis.zoo import ZOO_COLUMNS, zoo_rows

    rows = zoo_rows(args.pattern, family=args.family)
    if not rows:
        raise CliError(f"no model matches {args.pattern!r}; `cnnlab models` lists them all")
    fmt = {"params": human, "macs": human}
    print(render(rows, args.format, ZOO_COLUMNS, formatters=fmt), end="")
    return 0


def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the model zoo with parameters and MACs",
                       description="List registered networks: family, parameters, multiply-accumulates "
                                   "(MACs) at the family's standard input, and whether 28x28 input fits.")
    p.add_argument("pattern", nargs="?", help="substring or shell pattern, e.g. 'resnet*' or 'vgg'")
    p.add_argument("--family", help="only this family (e.g. resnet, densenet)")
    p.add_argument("--format", choices=("table", "markdown", "csv", "json"), default="table")
    p.set_defaults(func=_cmd_models)


# Each subcommand registers itself here: (adder, ...) in the order --help shows them.
SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_models]


def build_parser() -> argparse.ArgumentParser:
    from cnnlab import __version__

    parser = argparse.ArgumentParser(prog="cnnlab", description="Build, train, measure and explain classic CNNs.")
    parser.add_argument("--version", action="version", version=f"cnnlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("cnnlab: interrupted", file=sys.stderr)
        return 130
    except (CliError, ValueError, KeyError, FileNotFoundError, NotADirectoryError, PermissionError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"cnnlab: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
