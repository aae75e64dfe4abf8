"""LeNet-5: the paper's layer counts, Table I, subsampling, the 32x32 field, RBF output, the ReLU variant."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnlab
from cnnlab.analysis.counting import count_params
from cnnlab.models.lenet import RBFOutput, ScaledTanh, Subsampling, TableConv

# Section II.B of the paper: trainable parameters per layer.
PAPER_COUNTS = {"stem.c1": 156, "stages.0.s2": 12, "stages.1.c3": 1516, "stages.1.s4": 32, "head.c5": 48120,
                "head.f6": 10164}

# Table I as printed: for each S2 map (row), the C3 maps (columns) marked X.
TABLE_ONE_ROWS = {
    0: {0, 4, 5, 6, 9, 10, 11, 12, 14, 15},
    1: {0, 1, 5, 6, 7, 10, 11, 12, 13, 15},
    2: {0, 1, 2, 6, 7, 8, 11, 13, 14, 15},
    3: {1, 2, 3, 6, 7, 8, 9, 12, 14, 15},
    4: {2, 3, 4, 7, 8, 9, 10, 12, 13, 15},
    5: {3, 4, 5, 8, 9, 10, 11, 13, 14, 15},
}


def test_layer_counts_match_the_paper():
    model = cnnlab.create_model("lenet5", head="rbf")
    mods = dict(model.named_modules())
    got = {name: count_params(mods[name]) for name in PAPER_COUNTS}
    assert got == PAPER_COUNTS
    assert count_params(model) == sum(PAPER_COUNTS.values())  # the fixed RBF vectors are not parameters


def test_c3_reads_exactly_the_maps_of_table_one():
    conv = cnnlab.create_model("lenet5").stages[1].c3
    assert isinstance(conv, TableConv)
    x = torch.randn(1, 6, 14, 14)
    base = conv(x)
    for s2_map, c3_maps in TABLE_ONE_ROWS.items():
        bumped = x.clone()
        bumped[:, s2_map] += 1.0
        changed = (conv(bumped) - base).abs().amax(dim=(0, 2, 3)) > 0
        assert set(changed.nonzero().flatten().tolist()) == c3_maps, f"S2 map {s2_map}"


def test_c3_dense_kernel_equals_the_grouped_connections():
    """The fast dense path computes exactly what the per-fan-in grouped convs (the counted form) do."""
    conv = cnnlab.create_model("lenet5").stages[1].c3
    x = torch.randn(3, 6, 14, 14, dtype=torch.float64)
    conv = conv.double()
    parts = [c(x[:, src]) for c, src in zip(conv.convs, conv.sources)]
    grouped = torch.cat(parts, dim=1)[:, conv.inverse]
    torch.testing.assert_close(conv(x), grouped, rtol=0, atol=1e-12)
    weight, _ = conv.dense_weight()
    assert int((weight.abs().sum(dim=(2, 3)) > 0).sum()) == 60  # the table's 60 connections


def test_full_c3_option():
    model = cnnlab.create_model("lenet5", c3_table=False)
    c3 = model.stages[1].c3
    assert isinstance(c3, nn.Conv2d) and count_params(c3) == 16 * (6 * 25 + 1)


def test_subsampling_sums_blocks_times_coefficient_plus_bias():
    layer = Subsampling(2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([2.0, -1.0]))
        layer.bias.copy_(torch.tensor([0.5, 3.0]))
    x = torch.arange(2 * 4 * 4, dtype=torch.float32).view(1, 2, 4, 4)
    out = layer(x)
    assert out.shape == (1, 2, 2, 2)
    for c, (w, b) in enumerate([(2.0, 0.5), (-1.0, 3.0)]):
        for i in range(2):
            for j in range(2):
                block_sum = x[0, c, 2 * i:2 * i + 2, 2 * j:2 * j + 2].sum()
                assert out[0, c, i, j].item() == pytest.approx(w * block_sum.item() + b)


def test_scaled_tanh_maps_plus_minus_one_to_itself():
    f = ScaledTanh()
    out = f(torch.tensor([-1.0, 0.0, 1.0]))
    assert torch.allclose(out, torch.tensor([-1.0, 0.0, 1.0]), atol=1e-4)
    assert f(torch.tensor(100.0)).item() == pytest.approx(1.7159)


@pytest.mark.parametrize(("act", "layer"), [("scaled_tanh", ScaledTanh), ("tanh", nn.Tanh),
                                              ("sigmoid", nn.Sigmoid), ("relu", nn.ReLU)])
def test_activation_choice(act, layer):
    model = cnnlab.create_model("lenet5", act_layer=act)
    acts = [m for m in model.modules() if isinstance(m, ScaledTanh | nn.Tanh | nn.Sigmoid | nn.ReLU)]
    # C1, S2, C3, S4, C5 and F6 are all squashed
    assert len(acts) == 6 and all(type(m) is layer for m in acts)


def test_28x28_is_centred_in_the_32x32_field():
    model = cnnlab.create_model("lenet5").eval()
    x28 = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        out28 = model(x28)
        out32 = model(F.pad(x28, (2, 2, 2, 2)))
    assert out28.shape == (3, 10)
    assert torch.equal(out28, out32)


def test_larger_image_gives_larger_maps_but_the_head_refuses_it():
    model = cnnlab.create_model("lenet5").eval()
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        features = model.forward_features(x)
        c5 = model.head.c5(features)
    assert features.shape == (1, 16, 13, 13)  # 64 -> C1 60 -> S2 30 -> C3 26 -> S4 13
    assert c5.shape == (1, 120, 9, 9)  # C5 is a convolution, not a fully connected layer
    with pytest.raises(ValueError, match="at most 32x32"):
        model(x)


def test_rbf_output_is_negated_squared_distance_to_fixed_codes():
    model = cnnlab.create_model("lenet5", head="rbf").eval()
    rbf = model.head.fc
    assert isinstance(rbf, RBFOutput) and not list(rbf.parameters())
    assert set(rbf.centers.unique().tolist()) == {-1.0, 1.0} and rbf.centers.shape == (10, 84)
    features = torch.randn(4, 84)
    expected = torch.stack([-((f - rbf.centers) ** 2).sum(dim=1) for f in features])
    assert torch.allclose(rbf(features), expected)
    with torch.no_grad():
        exact = rbf(rbf.centers[3:4])
    assert exact.argmax().item() == 3 and exact[0, 3].item() == 0.0


def test_reset_classifier_keeps_the_output_kind():
    model = cnnlab.create_model("lenet5", head="rbf")
    model.reset_classifier(0)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, model.num_features) == (2, 84)
    model.reset_classifier(5)
    assert isinstance(model.head.fc, RBFOutput) and model(torch.randn(2, 1, 32, 32)).shape == (2, 5)


def test_relu_variant_is_modern():
    model = cnnlab.create_model("lenet5_relu")
    kinds = {type(m) for m in model.modules()}
    assert nn.ReLU in kinds and nn.MaxPool2d in kinds
    assert not kinds & {ScaledTanh, Subsampling, TableConv, RBFOutput}


def test_lecun98_init_bounds():
    model = cnnlab.create_model("lenet5")
    for module, fan_in in [(model.stem.c1, 25), (model.head.c5, 400), (model.head.f6, 120)]:
        bound = 2.4 / fan_in
        assert module.weight.abs().max().item() <= bound
        assert module.weight.abs().max().item() > bound / 2  # spread over the range, not left at zero


@pytest.mark.parametrize(("kwargs", "match"), [({"pool": "median"}, "pool must be one of"),
                                               ({"act_layer": "softplus"}, "act_layer must be one of"),
                                               ({"head": "softmax"}, "head must be one of")])
def test_bad_options_are_one_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        cnnlab.create_model("lenet5", **kwargs)
