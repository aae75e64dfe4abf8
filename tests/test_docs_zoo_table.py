"""The zoo table in the docs is what `cnnlab models --format markdown` prints now (regenerate it if not)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cnnlab.cli import main

ROOT = Path(__file__).resolve().parents[1]
TABLE = re.compile(r"<!-- BEGIN zoo table[^\n]*-->\n(.*?)<!-- END zoo table -->", re.S)


def _pages_with_the_table() -> dict[Path, str]:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return {page: m.group(1) for page in pages if page.is_file() and (m := TABLE.search(page.read_text()))}


def test_the_zoo_table_is_somewhere_in_the_docs():
    assert _pages_with_the_table(), "no page holds the <!-- BEGIN zoo table --> ... <!-- END zoo table --> block"


@pytest.mark.slow
def test_the_zoo_table_matches_cnnlab_models(capsys):
    capsys.readouterr()
    assert main(["models", "--format", "markdown"]) == 0
    printed = capsys.readouterr().out.strip()
    for page, table in _pages_with_the_table().items():
        assert table.strip() == printed, (
            f"{page.relative_to(ROOT)}'s zoo table differs from `cnnlab models --format markdown`; paste its output "
            f"between the BEGIN/END zoo table markers"
        )
