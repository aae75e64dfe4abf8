"""DenseNet: dense connectivity, channel schedule, BC options, memory-efficient mode, torchvision keys."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision
from torch import nn

import cnnlab
from _zoo import build_meta
from cnnlab.analysis.counting import count_params
from cnnlab.models import InputTooSmallError
from cnnlab.models import densenet as dn


def _expected_small_params(k: int, blocks: tuple[int, ...], stem_chs: int, bottleneck: bool, bn_size: int,
                           theta: float, in_chans: int, num_classes: int) -> int:
    """Parameters of a small-image DenseNet, layer by layer (BN: 2 per channel; convs are bias-free)."""
    total = 9 * in_chans * stem_chs
    c = stem_chs
    for i, n in enumerate(blocks):
        if i > 0:
            out = math.floor(theta * c)
            total += 2 * c + c * out
            c = out
        for _ in range(n):
            if bottleneck:
                total += 2 * c + c * bn_size * k + 2 * bn_size * k + 9 * bn_size * k * k
            else:
                total += 2 * c + 9 * c * k
            c += k
    return total + 2 * c + c * num_classes + num_classes


def _small(**kwargs) -> dn.DenseNet:
    """A tiny DenseNet-BC for fast CPU checks."""
    opts = dict(growth_rate=6, block_config=(2, 3, 2), num_classes=5)
    opts.update(kwargs)
    return cnnlab.create_model("densenet_bc_100_12", **opts)


def _dense_layers(model: nn.Module) -> list[dn.DenseLayer]:
    return [m for m in model.modules() if isinstance(m, dn.DenseLayer)]


def test_dense_block_concatenates_input_and_every_new_map():
    block = dn.DenseBlock(3, in_chs=8, growth_rate=4).eval()
    assert [layer.bottleneck[-1].in_channels for layer in block.values()] == [8, 12, 16]
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        out = block(x)
    assert out.shape == (2, 8 + 3 * 4, 6, 6)
    assert torch.equal(out[:, :8], x)  # the block input is passed on unchanged
    with torch.no_grad():
        first = block["denselayer1"]([x])
    assert torch.equal(out[:, 8:12], first)


def test_layer_widths_with_and_without_bottleneck():
    bc = dn.DenseLayer(40, growth_rate=12, bn_size=4, bottleneck=True)
    assert (bc.bottleneck.conv.kernel_size, bc.bottleneck.conv.out_channels) == ((1, 1), 48)
    assert (bc.conv3x3.conv.kernel_size, bc.conv3x3.conv.in_channels, bc.conv3x3.conv.out_channels) == (
        (3, 3), 48, 12)
    plain = dn.DenseLayer(40, growth_rate=12, bottleneck=False)
    assert plain.bottleneck is None
    assert (plain.conv3x3.conv.in_channels, plain.conv3x3.conv.out_channels) == (40, 12)
    # pre-activation order: BN -> ReLU -> conv
    assert [type(m) for m in bc.conv3x3] == [nn.BatchNorm2d, nn.ReLU, nn.Conv2d]


@pytest.mark.parametrize("bottleneck,theta", [(True, 0.5), (False, 1.0), (True, 0.3)])
def test_param_count_matches_layer_by_layer_formula(bottleneck, theta):
    model = build_meta("densenet_bc_100_12", growth_rate=6, block_config=(2, 3, 2), bottleneck=bottleneck,
                       compression=theta, num_classes=7, in_chans=1)
    assert count_params(model) == _expected_small_params(6, (2, 3, 2), 12, bottleneck, 4, theta, 1, 7)


def test_small_image_channel_schedule():
    # DenseNet-BC-100-12: 2k = 24 -> +16*12 = 216 -> 108 -> 300 -> 150 -> 342 (theta = 0.5).
    bc = build_meta("densenet_bc_100_12")
    assert [(f.num_chs, f.reduction) for f in bc.feature_info] == [(216, 1), (300, 2), (342, 4)]
    assert bc.num_features == 342
    # DenseNet-40 (k=12): 16 -> +12*12 = 160 -> 160 -> 304 -> 304 -> 448 (no compression).
    plain = build_meta("densenet40_12")
    assert [f.num_chs for f in plain.feature_info] == [160, 304, 448]
    assert all(layer.bottleneck is None for layer in _dense_layers(plain))


@pytest.mark.parametrize("name", ["densenet121", "densenet161", "densenet169", "densenet201"])
def test_imagenet_widths_match_torchvision(name):
    ours = build_meta(name)
    with torch.device("meta"):
        theirs = torchvision.models.get_model(name, weights=None)
    assert ours.num_features == theirs.classifier.in_features
    assert [f.reduction for f in ours.feature_info] == [4, 8, 16, 32]
    assert ours.stem.conv.out_channels == theirs.features.conv0.out_channels


def test_transition_compression_floors():
    model = build_meta("densenet_bc_100_12", growth_rate=4, stem_chs=8, block_config=(1, 1), compression=0.3)
    # block 1: 8 + 4 = 12 maps; transition floor(0.3 * 12) = 3; block 2: 3 + 4 = 7
    assert model.stages[1].transition.conv.out_channels == 3
    assert model.feature_info[1].num_chs == 7


def _run_train_step(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.train()
    out = model(x)
    out.square().mean().backward()
    return out.detach(), {n: p.grad for n, p in model.named_parameters()}


def test_memory_efficient_gives_identical_outputs_gradients_and_running_stats():
    torch.manual_seed(0)
    plain = _small()
    efficient = _small(memory_efficient=True)
    efficient.load_state_dict(plain.state_dict())
    x = torch.randn(4, 3, 16, 16)
    out_p, grads_p = _run_train_step(plain, x)
    out_e, grads_e = _run_train_step(efficient, x)
    torch.testing.assert_close(out_e, out_p, rtol=0, atol=0)
    for name, grad in grads_p.items():
        torch.testing.assert_close(grads_e[name], grad, rtol=0, atol=0, msg=f"gradient of {name}")
    # the recomputation in backward must not update batch-norm statistics a second time
    for (name, buf_p), buf_e in zip(plain.named_buffers(), efficient.buffers()):
        torch.testing.assert_close(buf_e, buf_p, rtol=0, atol=0, msg=f"buffer {name}")


def _saved_activation_bytes(layer: nn.Module, features: list[torch.Tensor]) -> int:
    """Bytes of tensors autograd keeps for backward during one layer call, beyond its inputs and weights."""
    kept: dict[int, int] = {}
    skip = {t.untyped_storage().data_ptr() for t in [*layer.parameters(), *features]}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in skip:
            kept[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        layer(features)
    return sum(kept.values())


@pytest.mark.parametrize("bottleneck", [True, False])
def test_memory_efficient_layer_keeps_neither_concatenation_nor_its_normalized_copy(bottleneck):
    torch.manual_seed(0)
    features = [torch.randn(4, 24, 16, 16, requires_grad=True) for _ in range(2)]
    concat_bytes = 4 * 48 * 16 * 16 * 4  # float32 (B, 48, H, W)
    plain = dn.DenseLayer(48, 12, bottleneck=bottleneck).train()
    efficient = dn.DenseLayer(48, 12, bottleneck=bottleneck, memory_efficient=True).train()
    saved_plain = _saved_activation_bytes(plain, features)
    saved_efficient = _saved_activation_bytes(efficient, features)
    assert saved_plain - saved_efficient >= 2 * concat_bytes


def test_memory_efficient_checkpoints_each_layer_only_when_gradients_flow(monkeypatch):
    calls = []
    real = dn.checkpoint

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(dn, "checkpoint", counting)
    model = _small(memory_efficient=True).train()
    x = torch.randn(2, 3, 8, 8)
    model(x).sum().backward()
    assert len(calls) == len(_dense_layers(model)) == 7
    calls.clear()
    with torch.no_grad():
        model.eval()(x)
    assert not calls


def test_drop_rate_drops_new_maps_in_training_only():
    torch.manual_seed(0)
    ref = dn.DenseLayer(16, 8, drop_rate=0.0)
    dropping = dn.DenseLayer(16, 8, drop_rate=0.5)
    dropping.load_state_dict(ref.state_dict())
    x = [torch.randn(8, 16, 6, 6)]
    with torch.no_grad():
        expected = ref.train()(x)
        got = dropping.train()(x)
    zero = got == 0
    assert 0.35 < zero.float().mean().item() < 0.65
    torch.testing.assert_close(got[~zero], 2 * expected[~zero])  # survivors scaled by 1 / (1 - p)
    with torch.no_grad():
        torch.testing.assert_close(dropping.eval()(x), ref.eval()(x), rtol=0, atol=0)
    model = build_meta("densenet_bc_100_12", drop_rate=0.2)
    assert {layer.drop.p for layer in _dense_layers(model)} == {0.2}


def _old_style(key: str) -> str:
    """torchvision's pre-0.3 checkpoint spelling: denselayerN.norm.1 instead of denselayerN.norm1."""
    for part in ("norm1", "conv1", "norm2", "conv2"):
        key = key.replace(f".{part}.", f".{part[:-1]}.{part[-1]}.")
    return key


def test_converter_accepts_current_and_old_torchvision_keys():
    with torch.device("meta"):
        tv_state = torchvision.models.densenet121(weights=None).state_dict()
    old_state = {_old_style(k): v for k, v in tv_state.items()}
    assert any(".norm.1." in k for k in old_state) and not any(".norm.1." in k for k in tv_state)
    ours = set(build_meta("densenet121").state_dict())
    converted = cnnlab.convert_torchvision("densenet121", tv_state)
    converted_old = cnnlab.convert_torchvision("densenet121", old_state)
    assert set(converted) == ours
    assert converted_old.keys() == converted.keys()
    assert all(converted_old[k] is converted[k] for k in converted)


def test_imagenet_densenet_says_28x28_is_too_small():
    model = cnnlab.create_model("densenet121", in_chans=1, num_classes=10)
    with pytest.raises(InputTooSmallError, match="at least 29x29"):
        model(torch.randn(1, 1, 28, 28))
    # built without the registry, the model still knows its smallest input
    direct = dn.DenseNet(dn.VARIANTS["densenet121"].cfg, in_chans=1)
    with pytest.raises(InputTooSmallError, match="at least 29x29"):
        direct(torch.randn(1, 1, 28, 28))


def test_small_image_densenet_takes_gray_28x28():
    model = _small(in_chans=1).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 1, 28, 28))
    assert out.shape == (2, 5) and torch.isfinite(out).all()


def test_injected_norm_and_activation_are_used_everywhere():
    model = build_meta("densenet_bc_100_12", block_config=(2, 2, 2), norm_layer=lambda c: nn.GroupNorm(1, c),
                       act_layer=nn.SiLU)
    kinds = {type(m) for m in model.modules()}
    assert nn.BatchNorm2d not in kinds and nn.ReLU not in kinds
    assert nn.GroupNorm in kinds and nn.SiLU in kinds


@pytest.mark.parametrize("kwargs,match", [
    ({"compression": 0.0}, "compression"),
    ({"compression": 1.5}, "compression"),
    ({"growth_rate": 0}, "growth_rate"),
    ({"block_config": ()}, "block_config"),
    ({"stem": "deep"}, "stem must be one of"),
    ({"drop_rate": 1.0}, "drop_rate"),
    ({"groth_rate": 12}, "takes no option 'groth_rate'; did you mean growth_rate?"),
])
def test_bad_options_raise_one_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        cnnlab.create_model("densenet_bc_100_12", **kwargs)
