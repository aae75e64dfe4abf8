"""One parser for builder options: key=value lists and NAME:key=value specs."""

from __future__ import annotations

import pytest

from cnnlab.errors import ConfigError
from cnnlab.options import format_options, parse_model_spec, parse_options, split_top_level


def test_commas_inside_brackets_belong_to_the_value():
    assert split_top_level("a=(1,2), b=[3,4],c={'x': 1}") == ["a=(1,2)", "b=[3,4]", "c={'x': 1}"]


def test_values_are_literals_or_plain_strings():
    opts = parse_options("width_mult=0.25, block_config=(4,4,4),norm_layer=batchnorm,pool='max',x=None")
    assert opts == {"width_mult": 0.25, "block_config": (4, 4, 4), "norm_layer": "batchnorm", "pool": "max",
                    "x": None}
    assert parse_options(["a=1", "b=2,c=3"]) == {"a": 1, "b": 2, "c": 3}
    assert parse_options({"a": 1}) == {"a": 1} and parse_options(None) == {}


def test_specs_and_their_round_trip():
    name, opts = parse_model_spec("densenet_bc_100_12:block_config=(4,4,4),growth_rate=8")
    assert name == "densenet_bc_100_12" and opts == {"block_config": (4, 4, 4), "growth_rate": 8}
    assert parse_model_spec("lenet5") == ("lenet5", {})
    assert parse_options(format_options(opts)) == opts


@pytest.mark.parametrize("bad", ["width_mult", "=3", "1x=2", "a=1,b"])
def test_malformed_options_are_config_errors(bad):
    with pytest.raises(ConfigError, match="key=value"):
        parse_options(bad)
