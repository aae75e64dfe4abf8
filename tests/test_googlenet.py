"""GoogLeNet: Inception module structure, auxiliary heads, the paper's 5x5 option, the input transform."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

import cnnlab
from _zoo import build_meta
from cnnlab.analysis.counting import conv_params, count_params
from cnnlab.models.googlenet import GoogLeNetOutputs, Inception

# The paper's Table 1 (Szegedy et al. 2015): in, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
TABLE_1 = {
    "inception3a": (192, 64, 96, 128, 16, 32, 32),
    "inception3b": (256, 128, 128, 192, 32, 96, 64),
    "inception4a": (480, 192, 96, 208, 16, 48, 64),
    "inception4b": (512, 160, 112, 224, 24, 64, 64),
    "inception4c": (512, 128, 128, 256, 24, 64, 64),
    "inception4d": (512, 112, 144, 288, 32, 64, 64),
    "inception4e": (528, 256, 160, 320, 32, 128, 128),
    "inception5a": (832, 256, 160, 320, 32, 128, 128),
    "inception5b": (832, 384, 192, 384, 48, 128, 128),
}


def _conv_bn(in_chs: int, out_chs: int, k: int) -> int:
    return conv_params(in_chs, out_chs, k, bias=False) + 2 * out_chs  # BN weight and bias


def _inception_params(in_chs, c1, c3r, c3, c5r, c5, pool, k5=3) -> int:
    return (_conv_bn(in_chs, c1, 1) + _conv_bn(in_chs, c3r, 1) + _conv_bn(c3r, c3, 3)
            + _conv_bn(in_chs, c5r, 1) + _conv_bn(c5r, c5, k5) + _conv_bn(in_chs, pool, 1))


def _lively_torchvision(**kwargs) -> nn.Module:
    """torchvision's GoogLeNet with He-initialised weights and non-trivial BN statistics, so outputs vary."""
    model = torchvision.models.googlenet(weights=None, init_weights=False, **kwargs)
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.kaiming_normal_(m.weight, generator=g)
        elif isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model


def test_inception_module_has_named_branches_and_analytic_size():
    row = TABLE_1["inception3a"]
    block = Inception(*row)
    assert list(dict(block.named_children())) == ["branch1", "branch2", "branch3", "branch4"]
    assert count_params(block) == _inception_params(*row)
    out = block(torch.randn(2, 192, 28, 28))
    assert out.shape == (2, 64 + 128 + 32 + 32, 28, 28)


def test_stages_follow_table_1():
    model = build_meta("googlenet")
    blocks = {name: m for name, m in model.stages.named_modules() if isinstance(m, Inception)}
    assert sorted(n.rsplit(".", 1)[-1] for n in blocks) == sorted(TABLE_1)
    for name, block in blocks.items():
        assert count_params(block) == _inception_params(*TABLE_1[name.rsplit(".", 1)[-1]])
    assert [f.num_chs for f in model.feature_info] == [480, 832, 1024] and model.num_features == 1024


def test_paper_5x5_option_grows_each_5x5_conv():
    grown = sum(c5r * c5 * (25 - 9) for _, _, _, _, c5r, c5, _ in TABLE_1.values())
    paper = build_meta("googlenet", kernel_5x5=5)
    assert count_params(paper) - count_params(build_meta("googlenet")) == grown
    with pytest.raises(ValueError, match="odd"):
        cnnlab.create_model("googlenet", kernel_5x5=4)


def test_aux_heads_add_the_two_classifiers_of_the_paper():
    def aux_params(in_chs: int) -> int:  # 1x1 conv 128 + BN, fc 2048 -> 1024, fc 1024 -> 1000
        return _conv_bn(in_chs, 128, 1) + 2048 * 1024 + 1024 + 1024 * 1000 + 1000

    with_aux, without = build_meta("googlenet"), build_meta("googlenet", aux_logits=False)
    assert count_params(with_aux) - count_params(without) == aux_params(512) + aux_params(528)
    assert not any(name.startswith("aux") for name, _ in without.named_parameters())


def test_training_returns_named_outputs_and_eval_a_tensor_at_28x28_gray():
    model = cnnlab.create_model("googlenet", num_classes=10, in_chans=1).train()
    out = model(torch.randn(3, 1, 28, 28))
    assert isinstance(out, GoogLeNetOutputs)
    assert out.logits.shape == out.aux_logits2.shape == out.aux_logits1.shape == (3, 10)
    model.eval()
    with torch.no_grad():
        assert isinstance(model(torch.randn(3, 1, 28, 28)), torch.Tensor)
    plain = cnnlab.create_model("googlenet", num_classes=10, in_chans=1, aux_logits=False).train()
    assert isinstance(plain(torch.randn(3, 1, 28, 28)), torch.Tensor)


def test_training_outputs_equal_torchvision_including_aux_heads():
    torch.manual_seed(0)
    theirs = _lively_torchvision().train()
    ours = cnnlab.create_model("googlenet").train()
    ours.load_state_dict(cnnlab.convert_torchvision("googlenet", theirs.state_dict()), strict=True)
    x = torch.randn(2, 3, 64, 64)
    torch.manual_seed(1)
    expected = theirs(x)
    torch.manual_seed(1)  # the same dropout masks, drawn in the same order
    got = ours(x)
    for a, b in zip(got, expected):
        assert (a - b).abs().max().item() <= 1e-5


def test_transform_input_matches_torchvision():
    torch.manual_seed(0)
    theirs = _lively_torchvision(transform_input=True).eval()
    ours = cnnlab.create_model("googlenet", transform_input=True).eval()
    ours.load_state_dict(cnnlab.convert_torchvision("googlenet", theirs.state_dict()), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert (ours(x) - theirs(x)).abs().max().item() <= 1e-5
        plain = cnnlab.create_model("googlenet").eval()
        plain.load_state_dict(ours.state_dict())
        assert (plain(x) - ours(x)).abs().max().item() > 1e-2  # the transform does change the input


def test_transform_input_needs_rgb():
    with pytest.raises(ValueError, match="in_chans=3"):
        cnnlab.create_model("googlenet", in_chans=1, transform_input=True)


def test_reset_classifier_resets_aux_heads_too():
    model = cnnlab.create_model("googlenet", num_classes=5).train()
    model.reset_classifier(3)
    assert all(o.shape == (2, 3) for o in model(torch.randn(2, 3, 32, 32)))
    model.reset_classifier(0)
    assert all(o.shape == (2, 1024) for o in model(torch.randn(2, 3, 32, 32)))


def test_norm_and_activation_are_injectable():
    model = build_meta("googlenet", norm_layer=lambda c: nn.GroupNorm(8, c), act_layer=nn.SiLU)
    assert any(isinstance(m, nn.GroupNorm) for m in model.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert any(isinstance(m, nn.SiLU) for m in model.modules())


def _naive_params(in_chs, c1, c3, c5, k5=3) -> int:
    return _conv_bn(in_chs, c1, 1) + _conv_bn(in_chs, c3, 3) + _conv_bn(in_chs, c5, k5)


def test_naive_module_is_figure_2a():
    in_chs, c1, c3r, c3, c5r, c5, pool = TABLE_1["inception3a"]
    naive = Inception(*TABLE_1["inception3a"], kernel_5x5=5, reductions=False)
    assert [type(naive[b]).__name__ for b in ("branch1", "branch2", "branch3", "branch4")] == [
        "ConvNormAct", "ConvNormAct", "ConvNormAct", "MaxPool2d"]
    assert count_params(naive) == _naive_params(in_chs, c1, c3, c5, 5)
    out = naive(torch.randn(1, in_chs, 28, 28))
    # the pool passes all 192 input channels on: "the problem here is the depth of the output"
    assert out.shape == (1, 64 + 128 + 32 + 192, 28, 28) and naive.out_chs == 416


def test_naive_googlenet_grows_module_by_module():
    naive = build_meta("googlenet", reductions=False, aux_logits=False)
    blocks = [m for m in naive.stages.modules() if isinstance(m, Inception)]
    chs = 192
    for block, (c1, _, c3, _, c5, _) in zip(blocks, [r[1:] for r in TABLE_1.values()]):
        assert not block.reductions and block.out_chs == c1 + c3 + c5 + chs
        chs = block.out_chs
    assert naive.num_features == chs == 192 + sum(r[1] + r[3] + r[5] for r in TABLE_1.values())
    assert count_params(naive) > 10 * count_params(build_meta("googlenet", aux_logits=False))


def test_probe_inception_shares_the_zoo_option():
    reduced, naive = build_meta("probe_inception"), build_meta("probe_inception", reductions=False)
    flags = [[m.reductions for m in net.stages.modules() if isinstance(m, Inception)] for net in (reduced, naive)]
    assert flags == [[True] * 3, [False] * 3]
