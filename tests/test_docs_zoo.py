"""docs/zoo.md: its zoo table is `cnnlab models --format markdown`, its Inception table the live counts."""

from __future__ import annotations

import re
from pathlib import Path

from _inception_costs import reduction_rows
from _zoo import build_meta
from cnnlab import cli
from cnnlab.analysis.counting import count_forward

DOC = Path(__file__).resolve().parents[1] / "docs" / "zoo.md"


def _between(text: str, name: str) -> str:
    match = re.search(rf"<!-- BEGIN {name} -->\n(.*?)<!-- END {name} -->", text, re.S)
    assert match, f"docs/zoo.md has no <!-- BEGIN {name} --> ... <!-- END {name} --> block"
    return match.group(1)


def test_zoo_table_is_the_output_of_cnnlab_models(capsys):
    assert cli.main(["models", "--format", "markdown"]) == 0
    generated = capsys.readouterr().out
    assert _between(DOC.read_text(), "zoo table") == generated, (
        "docs/zoo.md's zoo table is stale: paste `cnnlab models --format markdown` between its markers")


def test_inception_reduction_table_is_counted_live():
    rows = _between(DOC.read_text(), "inception reductions").strip().splitlines()[2:]
    assert rows == reduction_rows()
    # the lecture's example: module 3b without reductions, 854M multiply-adds and a 672-deep output
    assert rows[1].split(" | ")[6:8] == ["854.2M", "672"]


def test_whole_naive_network_figures_in_the_text():
    text = " ".join(DOC.read_text().split())
    for reductions, params, gmacs in ((False, "97,531,080", "12.57"), (True, "7,005,832", "1.58")):
        counted = count_forward(build_meta("googlenet", kernel_5x5=5, reductions=reductions), (3, 224, 224))
        assert f"{counted.params:,}" == params and f"{counted.macs / 1e9:.2f}" == gmacs
        assert params in text and f"{gmacs} GMACs" in text
