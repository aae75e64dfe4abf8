"""Receptive fields read as pixels and a stride a person can say: '195 px, stride 5⅓'."""

from __future__ import annotations

from cnnlab.analysis.summary import summary
from cnnlab.analysis.table import fraction_text, receptive_field_text


def test_strides_print_as_fractions():
    assert fraction_text(4) == "4" and fraction_text(4.0) == "4"
    assert fraction_text(16 / 3) == "5⅓"  # AlexNet's adaptive pooling: 32 input units onto 6
    assert fraction_text(0.5) == "½" and fraction_text(2.75) == "2¾"
    assert fraction_text(32 / 7) == "32/7"  # no single Unicode glyph for 4/7


def test_receptive_field_text_has_units_and_axes():
    assert receptive_field_text({"size": 195, "stride": 16 / 3, "start": -66}) == "195 px, stride 5⅓"
    assert receptive_field_text({"size": [5, 7], "stride": [1, 1.5]}) == "5x7 px, stride 1x1½"
    assert receptive_field_text(None) == "-"


def test_summary_explains_its_receptive_field():
    text = summary("lenet5", (1, 32, 32)).render("table")
    line = next(x for x in text.splitlines() if x.startswith("Receptive field"))
    assert "32 px, stride 4" in line and "input pixels between neighbouring units" in line
