"""One parser for builder options, everywhere: ``key=value,key=value`` and ``NAME:key=value,...``.

Values are Python literals (``0.25``, ``(4,4,4)``, ``'max'``, ``None``) or, when they are not, plain
strings (``norm_layer=batchnorm``). Commas inside brackets belong to the value: ``block_config=(4,4,4)``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from typing import Any

from cnnlab.errors import ConfigError

__all__ = ["format_options", "parse_model_spec", "parse_options", "split_top_level"]


def split_top_level(text: str) -> list[str]:
    """``text`` cut at the commas outside brackets, each part stripped, empty parts dropped."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += (char in "([{") - (char in ")]}")
        if char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def parse_options(value: str | Mapping[str, Any] | Iterable[str] | None) -> dict[str, Any]:
    """Options from a mapping, from ``"k=v,k=v"`` text, or from a list of such words."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    items = split_top_level(value) if isinstance(value, str) else [p for w in value for p in split_top_level(w)]
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ConfigError(f"options look like key=value,key=value (e.g. width_mult=0.25), got {item!r}")
        out[key] = _literal(text.strip())
    return out


def parse_model_spec(text: str) -> tuple[str, dict[str, Any]]:
    """``"vgg11:width_mult=0.25,hidden=256"`` -> ``("vgg11", {"width_mult": 0.25, "hidden": 256})``."""
    name, _, args = text.partition(":")
    name = name.strip()
    if not name:
        raise ConfigError(f"a model is written NAME or NAME:key=value,...; got {text!r}")
    return name, parse_options(args)


def format_options(options: Mapping[str, Any]) -> str:
    """The inverse of ``parse_options`` for the values it produces: ``width_mult=0.25,block_config=(4,4,4)``."""
    return ",".join(f"{k}={_format(v)}" for k, v in options.items())


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _format(value: Any) -> str:
    if isinstance(value, tuple | list):
        return "(" + ",".join(_format(v) for v in value) + ")"
    return str(value)
