"""Small pieces every subcommand shares: output formats, model specs and the usage error."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from cnnlab.errors import ConfigError
from cnnlab.options import parse_model_spec, parse_options

__all__ = ["SMOKE_ENV", "UsageError", "examples", "print_json_or", "say", "smoke_caps", "split_model_words"]

# Set (to anything but 0) by the README test: every training a command starts is cut to a smoke test.
SMOKE_ENV = "CNNLAB_README_SMOKE"
# What a smoke run may use at most: one epoch of 512 training images (a tenth held out when the run
# validates), 20 seconds when it has a time budget.
_SMOKE_EPOCHS, _SMOKE_IMAGES, _SMOKE_SECONDS = 1, 512, 20.0


class UsageError(ConfigError):
    """Arguments that do not make a command: printed as one line, exit status 2."""


class _ExampleFormatter(argparse.HelpFormatter):
    """argparse's formatter, except that the examples at the end keep their lines."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith(_EXAMPLES):
            return "\n".join(indent + line for line in text.splitlines())
        return super()._fill_text(text, width, indent)


class _RawExampleFormatter(argparse.RawDescriptionHelpFormatter):
    """A description laid out by hand (lists, tables), and the examples at the end, both kept as written."""


_EXAMPLES = "examples:"


def positive_int(text: str) -> int:
    """An argparse type: a whole number of 1 or more (argparse turns the error into a one-line usage error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number above 0, got {text}")
    return value


def examples(*lines: str, raw_description: bool = False) -> dict[str, Any]:
    """``add_parser`` keywords that end a subcommand's ``--help`` with example command lines
    (``raw_description``: the description keeps its own line breaks too)."""
    return {"epilog": "\n".join([_EXAMPLES, *(f"  {line}" for line in lines)]),
            "formatter_class": _RawExampleFormatter if raw_description else _ExampleFormatter}


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


def smoke_caps(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` (TrainConfig fields) cut to a smoke test's budget when $CNNLAB_README_SMOKE is set.

    The README test runs every command of the README as written; this keeps each training to seconds
    (a note says so). Settings left out are filled from TrainConfig's defaults before capping.
    """
    if os.environ.get(SMOKE_ENV, "0") in ("", "0"):
        return dict(settings)
    from cnnlab.train.config import TrainConfig

    default = TrainConfig()
    get = lambda key: settings.get(key, getattr(default, key))  # noqa: E731
    from cnnlab.data import canonical_dataset_name

    capped = dict(settings, epochs=min(int(get("epochs")), _SMOKE_EPOCHS))
    named = canonical_dataset_name(get("data")) is not None  # an image folder is used whole: it is small
    subset = get("train_subset")
    if named and (subset is None or subset > _SMOKE_IMAGES):
        capped["train_subset"] = _SMOKE_IMAGES
    if named and (get("val_split") is None or get("val_split") >= 1):
        capped["val_split"] = 0.1  # a count such as the default 5000 would take every image left
    if get("time_budget") is not None:
        capped["time_budget"] = min(float(get("time_budget")), _SMOKE_SECONDS)
    say(f"{SMOKE_ENV} is set: at most {_SMOKE_EPOCHS} epoch of {_SMOKE_IMAGES} training images"
        f"{f', {_SMOKE_SECONDS:g} s' if 'time_budget' in capped else ''}")
    return capped
