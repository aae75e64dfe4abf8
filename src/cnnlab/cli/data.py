"""``cnnlab data fetch``: get a named data set onto this machine (what ``make demo`` and ``make test`` run)."""

from __future__ import annotations

import argparse

from cnnlab.cli._common import examples, say

__all__ = ["register"]


def _cmd_fetch(args: argparse.Namespace) -> int:
    from cnnlab.data.fetch import fetch_dataset
    from cnnlab.errors import DataError

    try:
        result = fetch_dataset(args.name, args.data_dir, apt=args.apt, download=args.download)
    except DataError as err:
        if not args.optional:
            raise
        say(f"{err} (--optional: the tests that need it will be skipped)")
        return 0
    verb = {"found": "found in", "apt": "installed by apt-get into", "download": "downloaded into"}[result.how]
    say(f"{result.name}: {verb} {result.folder}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``data fetch``."""
    p = sub.add_parser("data", help="get a data set onto this machine",
                       description="Data sets: `cnnlab data fetch NAME` finds NAME on disk, else installs "
                                   "Debian's package (as root, where apt-get exists), else downloads it with "
                                   "torchvision, else says what is missing and how to get it.",
                       **examples("cnnlab data fetch fashion-mnist"))
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    f = actions.add_parser("fetch", help="find or fetch a data set",
                           description="Find or fetch a named data set.",
                           **examples("cnnlab data fetch fashion-mnist", "cnnlab data fetch cifar10 --data-dir data"))
    f.add_argument("name", help="fashion-mnist, mnist, cifar10 or cifar100")
    f.add_argument("--data-dir", help="look here first, and download here (default: $CNNLAB_DATA, else the cache)")
    f.add_argument("--apt", action=argparse.BooleanOptionalAction, default=True,
                   help="try Debian's package when running as root (default: on)")
    f.add_argument("--download", action=argparse.BooleanOptionalAction, default=True,
                   help="try torchvision's download (default: on)")
    f.add_argument("--optional", action="store_true", help="exit 0 with a note when the data cannot be had")
    f.set_defaults(func=_cmd_fetch)
