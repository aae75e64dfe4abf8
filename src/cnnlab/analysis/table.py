"""Render rows of dicts as a terminal table, Markdown, CSV or JSON: one formatter for every report."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

from cnnlab.errors import ConfigError

__all__ = ["FORMATS", "fraction_text", "human", "receptive_field_text", "render"]

FORMATS = ("table", "markdown", "csv", "json")


def human(n: float, unit: str = "") -> str:
    """1234567 -> '1.23M'; small numbers stay whole."""
    for factor, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= factor:
            return f"{n / factor:.2f}{suffix}{unit}"
    return f"{n:g}{unit}" if isinstance(n, float) else f"{n}{unit}"


_VULGAR = {(1, 2): "½", (1, 3): "⅓", (2, 3): "⅔", (1, 4): "¼", (3, 4): "¾", (1, 5): "⅕", (2, 5): "⅖",
           (3, 5): "⅗", (4, 5): "⅘", (1, 6): "⅙", (5, 6): "⅚", (1, 7): "⅐", (1, 8): "⅛", (3, 8): "⅜",
           (5, 8): "⅝", (7, 8): "⅞", (1, 9): "⅑", (1, 10): "⅒"}


def fraction_text(value: float) -> str:
    """A stride such as 16/3 as '5⅓' (a Unicode fraction where one exists, else '32/7'); whole numbers stay whole."""
    frac = Fraction(value).limit_denominator(1000)
    if frac.denominator == 1:
        return str(frac.numerator)
    whole, part = divmod(frac.numerator, frac.denominator)
    glyph = _VULGAR.get((part, frac.denominator))
    if glyph is None:
        return f"{frac.numerator}/{frac.denominator}"
    return f"{whole}{glyph}" if whole else glyph


def _per_axis(value: Any, fmt: Callable[[Any], str]) -> str:
    return "x".join(fmt(v) for v in value) if isinstance(value, list | tuple) else fmt(value)


def receptive_field_text(field: dict[str, Any] | str | None) -> str:
    """A receptive field ``{size, stride, ...}`` as '195 px, stride 5⅓' (per axis 'HxW' when they differ);
    a field that covers the whole input at every unit is 'global'."""
    if not field:
        return "-"
    if isinstance(field, str):
        return field
    return f"{_per_axis(field['size'], str)} px, stride {_per_axis(field['stride'], fraction_text)}"


def render(rows: Sequence[dict[str, Any]], fmt: str = "table", columns: Sequence[str] | None = None,
           formatters: dict[str, Callable[[Any], str]] | None = None, extra: dict[str, Any] | None = None) -> str:
    """Rows as text. ``formatters`` apply to table/markdown only; CSV and JSON keep raw values."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    columns = list(columns or (rows[0].keys() if rows else []))
    if fmt == "json":
        payload: Any = [{c: r.get(c) for c in columns} for r in rows]
        if extra is not None:
            payload = {"rows": payload, **extra}
        return json.dumps(payload, indent=2, default=_json_default)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({c: _csv_cell(r.get(c)) for c in columns})
        return buf.getvalue()
    formatters = formatters or {}
    cells = [[_cell(r.get(c), formatters.get(c)) for c in columns] for r in rows]
    if fmt == "markdown":
        lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in cells]
        return "\n".join(lines) + "\n"
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    numeric = [all(_is_number(r.get(c)) for r in rows if r.get(c) is not None) for c in columns]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    out = [line(columns), line(["-" * w for w in widths])] + [line(row) for row in cells]
    return "\n".join(out) + "\n"


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _cell(value: Any, fmt: Callable[[Any], str] | None) -> str:
    if value is None:
        return "-"
    if fmt is not None:
        return fmt(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list | tuple):
        return "x".join(str(v) for v in value)
    return str(value)


def _csv_cell(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return "x".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value)
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return str(value)
