"""FractalNet: the expansion rule, the count, drop-path (local and global) and its options."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.analysis.counting import conv_params, count_macs, count_params
from cnnlab.errors import ConfigError
from cnnlab.models.fractalnet import FractalBlock, join_masks


def _plain_block(columns: int, chs: int = 4) -> FractalBlock:
    """A block without batch norm or dropout: training mode then changes nothing but drop-path."""
    torch.manual_seed(0)
    return FractalBlock(3, chs, columns, norm_layer=None)


def _run(layers, x: torch.Tensor) -> torch.Tensor:
    for layer in layers:
        x = layer(x)
    return x


def test_columns_hold_1_2_4_layers():
    block = FractalBlock(3, 8, columns=4)
    assert [len(column) for column in block.columns] == [1, 2, 4, 8] and block.depth == 8
    assert [list(block.ending_columns(level)) for level in range(1, 9)] == [
        [3], [2, 3], [3], [1, 2, 3], [3], [2, 3], [3], [0, 1, 2, 3]]


def test_block_computes_the_expansion_rule():
    """f_2(z) = join(conv(conv(z)), conv(z)); f_3(z) = join(f_2(f_2(z)), conv(z)), joins at one depth merged."""
    z = torch.randn(2, 3, 6, 6)
    f2 = _plain_block(2).eval()
    a, (b1, b2) = f2.columns
    assert torch.allclose(f2(z), (a[0](z) + b2(b1(z))) / 2)
    f3 = _plain_block(3).eval()
    c0, c1, c2 = f3.columns
    half = (c1[0](z) + c2[1](c2[0](z))) / 2  # the inner f_2 ends at depth 2: columns 1 and 2
    whole = (c0[0](z) + c1[1](half) + c2[3](c2[2](half))) / 3  # depth 4: all three columns in one join
    assert torch.allclose(f3(z), whole, atol=1e-6)


def test_fractalnet20_count_layer_by_layer():
    """5 blocks of 3 columns: per block 3 convs read the block input and 4 read its width (3x3, no bias, BN)."""
    model = cnnlab.create_model("fractalnet20")
    widths, inputs = (64, 128, 256, 512, 512), (3, 64, 128, 256, 512)
    blocks = sum(3 * conv_params(c, w, 3, bias=False) + 4 * conv_params(w, w, 3, bias=False) + 7 * 2 * w
                 for c, w in zip(inputs, widths))
    assert count_params(model) == blocks + 512 * 10 + 10 == 33_724_618
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 5 * 7
    sides = (32, 16, 8, 4, 2)
    macs = sum(s * s * w * 9 * (3 * c + 4 * w) for s, c, w in zip(sides, inputs, widths)) + 5120
    assert count_macs(model, (3, 32, 32)) == macs == 845_222_912


def test_forty_layer_version_has_15_convs_per_block():
    model = cnnlab.create_model("fractalnet20", columns=4)
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == 5 * 15
    assert cnnlab.summary(model, (3, 32, 32)).total["depth"] == 41  # 5 x 2^3 convs + the classifier


def test_join_masks_keep_at_least_one_input():
    torch.manual_seed(0)
    keep = join_masks(3, 1, None, 0.9, 500, torch.device("cpu"))
    assert keep.shape == (3, 500) and bool((keep.sum(0) >= 1).all())
    assert 0.05 < keep.mean().item() < 0.5  # mostly dropped, each image rescued once
    assert bool((join_masks(2, 0, None, 0.0, 10, torch.device("cpu")) == 1).all())


def test_join_masks_follow_the_global_column():
    global_columns = torch.tensor([-1, 0, 2, 3])
    keep = join_masks(2, 2, global_columns, 0.0, 4, torch.device("cpu"))  # a join of columns 2 and 3
    assert keep.T.tolist() == [[1, 1], [1, 1], [1, 0], [0, 1]]  # column 0 is not in this join: unaffected


@pytest.mark.parametrize("column", [0, 1, 2])
def test_global_drop_path_runs_one_column(column):
    block = _plain_block(3).train()
    z = torch.randn(1, 3, 6, 6)
    got = block(z, global_columns=torch.tensor([column]))
    assert torch.allclose(got, _run(block.columns[column], z), atol=1e-6)


def test_local_drop_path_is_random_in_training_and_off_in_evaluation():
    block = FractalBlock(3, 4, 3, local_drop_rate=0.5, norm_layer=None)
    z = torch.randn(8, 3, 6, 6)
    block.eval()
    assert torch.equal(block(z), block(z))
    block.train()
    torch.manual_seed(1)
    first = block(z)
    torch.manual_seed(2)
    assert not torch.allclose(first, block(z))


def test_every_training_image_gets_a_global_column_or_local():
    model = cnnlab.create_model("fractalnet20", global_drop_ratio=1.0).train()
    columns = model.sample_global_columns(1000, torch.device("cpu"))
    assert set(columns.tolist()) == {0, 1, 2}
    assert model.eval().sample_global_columns(4, torch.device("cpu")) is None
    local = cnnlab.create_model("fractalnet20", global_drop_ratio=0.0).train()
    assert local.sample_global_columns(4, torch.device("cpu")) is None


def test_dropout_per_block_follows_the_paper():
    model = cnnlab.create_model("fractalnet20")
    rates = [sorted({m.p for m in stage.modules() if isinstance(m, nn.Dropout)}) for stage in model.stages]
    assert rates == [[], [0.1], [0.2], [0.3], [0.4]]


@pytest.mark.parametrize("kwargs, match", [
    ({"columns": 0}, "columns must be 1 or more"),
    ({"drop_rates": (0.1,)}, "one dropout rate per block"),
    ({"local_drop_rate": 1.0}, "local_drop_rate"),
    ({"global_drop_ratio": 1.5}, "global_drop_ratio"),
])
def test_bad_options_are_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        cnnlab.create_model("fractalnet20", **kwargs)
