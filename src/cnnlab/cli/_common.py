"""Small pieces every subcommand shares: output formats, model specs and the usage error."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from cnnlab.errors import ConfigError
from cnnlab.options import parse_model_spec, parse_options

__all__ = ["UsageError", "examples", "print_json_or", "say", "split_model_words"]


class UsageError(ConfigError):
    """Arguments that do not make a command: printed as one line, exit status 2."""


class _ExampleFormatter(argparse.HelpFormatter):
    """argparse's formatter, except that the examples at the end keep their lines."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith(_EXAMPLES):
            return "\n".join(indent + line for line in text.splitlines())
        return super()._fill_text(text, width, indent)


_EXAMPLES = "examples:"


def examples(*lines: str) -> dict[str, Any]:
    """``add_parser`` keywords that end a subcommand's ``--help`` with example command lines."""
    return {"epilog": "\n".join([_EXAMPLES, *(f"  {line}" for line in lines)]),
            "formatter_class": _ExampleFormatter}


def print_json_or(args: argparse.Namespace, data: object, text: str) -> None:
    """``data`` as JSON with ``--format json``, else ``text``."""
    print(json.dumps(data, indent=2, default=str) if args.format == "json" else text)


def say(message: str) -> None:
    """A note for the user on stderr (stdout carries only results, so they can be piped)."""
    print(f"cnnlab: {message}", file=sys.stderr, flush=True)


def split_model_words(words: Sequence[str]) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, Any]]:
    """``NAME`` / ``NAME:key=value,...`` words as (name, options) and bare ``KEY=VALUE`` words as shared options.

    The one syntax for model options in every command: options after a colon belong to that network,
    bare ``KEY=VALUE`` words apply to all of them.
    """
    specs = [parse_model_spec(w) for w in words if ":" in w or "=" not in w]
    shared = parse_options([w for w in words if "=" in w and ":" not in w])
    return specs, shared
