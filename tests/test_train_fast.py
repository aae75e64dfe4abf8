"""The fast recipe's network from flags: builder options with list values reach the ResNet builder."""

from __future__ import annotations

import argparse

import pytest
from torch import nn

from cnnlab.options import parse_options
from cnnlab.train import add_config_arguments, config_from_args
from cnnlab.train.build import build_model


def test_list_and_tuple_values_keep_their_commas():
    parsed = parse_options("depths=[1,1,1,1], widths=(16, 32, 64, 128),stem_width=16,shortcut=B")
    assert parsed == {"depths": [1, 1, 1, 1], "widths": (16, 32, 64, 128), "stem_width": 16, "shortcut": "B"}
    with pytest.raises(ValueError, match="key=value"):
        parse_options("depths=[1,1],2")


def test_resnet_options_from_the_command_line_shape_the_network():
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    options = "depths=[1,1,1,1],widths=[16,32,64,128],stem_width=16"
    argv = ["resnet18_cifar", "--recipe", "fast", "--model-args", options]
    cfg = config_from_args(parser.parse_args(argv))
    model = build_model(cfg, num_classes=10, in_chans=1)
    assert [len(stage) for stage in model.stages] == [1, 1, 1, 1]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs[0].in_channels == 1 and convs[0].out_channels == 16
    assert sorted({c.out_channels for c in convs}) == [16, 32, 64, 128]
    assert model.head.fc.in_features == 128 and model.head.fc.out_features == 10
