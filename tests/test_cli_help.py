"""--help reads well: booleans are switches, each default is said once, recipes and examples are shown."""

from __future__ import annotations

import argparse
import re
import typing
from dataclasses import fields

import pytest

from cnnlab.cli import build_parser
from cnnlab.train.config import RECIPES, TrainConfig, _base_type


def _subparsers(parser: argparse.ArgumentParser, prefix: str = "cnnlab"):
    """(command line, parser) of every subcommand, nested ones (``data fetch``) included."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{prefix} {name}", sub
                yield from _subparsers(sub, f"{prefix} {name}")


def _bool_fields() -> list[str]:
    hints = typing.get_type_hints(TrainConfig)
    return [f.name for f in fields(TrainConfig) if _base_type(hints[f.name])[0] is bool]


@pytest.mark.parametrize("name", _bool_fields())
def test_every_boolean_setting_is_a_switch_both_ways(name):
    flag = name.replace("_", "-")
    parser = build_parser()
    assert getattr(parser.parse_args(["train", "lenet5", f"--{flag}"]), name) is True
    assert getattr(parser.parse_args(["train", "lenet5", f"--no-{flag}"]), name) is False


def test_optional_booleans_are_switches_too():
    assert "channels_last" in _bool_fields()  # bool | None: None lets the device decide


def test_no_help_line_says_its_default_twice():
    for command, sub in _subparsers(build_parser()):
        text = " ".join(sub.format_help().split())
        for action in sub._actions:
            if action.help and action.help is not argparse.SUPPRESS:
                helped = " ".join((action.help % {"default": action.default}).split())
                assert helped.count("default") <= 1, f"{command} {action.option_strings}: {helped}"
        assert "(default: None)" not in text, command


def test_recipe_help_lists_what_each_recipe_sets():
    text = " ".join(build_parser()._subparsers._group_actions[0].choices["train"].format_help().split())
    text = text.replace("- ", "-")  # argparse wraps at hyphens
    for name, settings in RECIPES.items():
        assert f"{name} sets" in text
        for key in settings:
            assert f"-{key.replace('_', '-')}" in text, (name, key)


def test_every_subcommand_ends_with_an_example():
    for command, sub in _subparsers(build_parser()):
        if any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
            continue  # a group such as `cnnlab data`: its actions show the examples
        help_text = sub.format_help()
        assert "examples:" in help_text, command
        lines = help_text.split("examples:")[1].strip().splitlines()
        assert lines and all(re.match(r"\s*cnnlab \S+", line) for line in lines), command
