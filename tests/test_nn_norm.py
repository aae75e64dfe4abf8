"""cnnlab.nn BatchNorm2d and LayerNorm against PyTorch's: outputs, running stats, gradients, weights."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.models.layers import ConvNormAct, init_kaiming
from cnnlab.nn import BatchNorm2d, LayerNorm

TOL = dict(rtol=1e-5, atol=1e-5)


def randomize_affine(*layers: nn.Module) -> None:
    """Give every layer the same non-trivial weight and bias so affine bugs cannot hide behind 1 and 0."""
    gen = torch.Generator().manual_seed(1)
    for name in ("weight", "bias"):
        first = getattr(layers[0], name)
        if first is None:
            continue
        values = torch.randn(first.shape, generator=gen)
        for layer in layers:
            with torch.no_grad():
                getattr(layer, name).copy_(values)


def step(layer: nn.Module, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Forward then backward with upstream gradient g: (output, grad input, *grads of the parameters)."""
    x = x.detach().clone().requires_grad_()
    out = layer(x)
    out.backward(g)
    return (out.detach(), x.grad, *(p.grad for p in layer.parameters()))


# --- BatchNorm2d ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("track_running_stats", [True, False])
def test_batchnorm_matches_torch_over_training_steps(momentum, affine, track_running_stats):
    kw = dict(momentum=momentum, affine=affine, track_running_stats=track_running_stats)
    ours, ref = BatchNorm2d(5, **kw), nn.BatchNorm2d(5, **kw)
    randomize_affine(ours, ref)
    for i in range(4):
        # Shifted, scaled batches so the running estimates move far from their initial 0 and 1.
        x = torch.randn(4 + i, 5, 6, 7) * (1 + i) + i
        g = torch.randn_like(x)
        for a, e in zip(step(ours, x, g), step(ref, x, g)):
            torch.testing.assert_close(a, e, **TOL)
        ours.zero_grad(), ref.zero_grad()
        if track_running_stats:
            torch.testing.assert_close(ours.running_mean, ref.running_mean, **TOL)
            torch.testing.assert_close(ours.running_var, ref.running_var, **TOL)
            assert ours.num_batches_tracked.item() == ref.num_batches_tracked.item() == i + 1
    ours.eval(), ref.eval()
    x = torch.randn(3, 5, 4, 4) * 3 + 1
    g = torch.randn_like(x)
    for a, e in zip(step(ours, x, g), step(ref, x, g)):
        torch.testing.assert_close(a, e, **TOL)


def test_batchnorm_running_var_is_unbiased_and_normalization_biased():
    bn = BatchNorm2d(1, momentum=1.0, affine=False)  # momentum 1: running stats become this batch's
    x = torch.tensor([1.0, 2.0, 4.0, 9.0]).view(4, 1, 1, 1)
    y = bn(x)
    assert torch.allclose(bn.running_mean, torch.tensor([4.0]))
    assert torch.allclose(bn.running_var, torch.tensor([(9 + 4 + 0 + 25) / 3]))  # sum of squares / (n - 1)
    assert torch.allclose(y.flatten(), (x.flatten() - 4) / (38 / 4 + 1e-5) ** 0.5)


def test_batchnorm_cumulative_average_when_momentum_is_none():
    bn = BatchNorm2d(2, momentum=None)
    batches = [torch.randn(3, 2, 4, 4) + k for k in range(3)]
    for x in batches:
        bn(x)
    expected = torch.stack([x.mean(dim=(0, 2, 3)) for x in batches]).mean(0)
    torch.testing.assert_close(bn.running_mean, expected, **TOL)


def test_batchnorm_eval_uses_running_stats_and_leaves_them_alone():
    bn = BatchNorm2d(3)
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([1.0, -2.0, 0.5]))
        bn.running_var.copy_(torch.tensor([4.0, 0.25, 1.0]))
    bn.eval()
    x = torch.randn(2, 3, 5, 5)
    before = copy.deepcopy(bn.state_dict())
    y = bn(x)
    expected = (x - bn.running_mean.view(1, 3, 1, 1)) / (bn.running_var.view(1, 3, 1, 1) + bn.eps).sqrt()
    torch.testing.assert_close(y, expected, **TOL)
    for key, value in bn.state_dict().items():
        assert torch.equal(value, before[key]), key


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("track_running_stats", [True, False])
def test_batchnorm_state_dict_loads_both_ways(affine, track_running_stats):
    kw = dict(affine=affine, track_running_stats=track_running_stats)
    ours, ref = BatchNorm2d(4, **kw), nn.BatchNorm2d(4, **kw)
    assert list(ours.state_dict()) == list(ref.state_dict())
    ref.train()(torch.randn(8, 4, 3, 3))  # move the running stats off their defaults
    randomize_affine(ref)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 4, 3, 3)
    torch.testing.assert_close(ours.eval()(x), ref.eval()(x), **TOL)
    ours.train()(torch.randn(8, 4, 3, 3))
    ref.load_state_dict(ours.state_dict())
    for key, value in ours.state_dict().items():
        assert torch.equal(ref.state_dict()[key], value), key


def test_batchnorm_follows_module_dtype_and_repr():
    bn = BatchNorm2d(3, eps=1e-3).double()
    assert bn.running_mean.dtype == torch.float64 and bn.num_batches_tracked.dtype == torch.long
    assert bn(torch.randn(2, 3, 4, 4, dtype=torch.float64)).dtype == torch.float64
    assert repr(bn).startswith("BatchNorm2d(3, eps=0.001, momentum=0.1, affine=True")


def test_batchnorm_reset_running_stats():
    bn = BatchNorm2d(2)
    bn(torch.randn(4, 2, 3, 3) + 5)
    bn.reset_running_stats()
    assert torch.equal(bn.running_mean, torch.zeros(2)) and torch.equal(bn.running_var, torch.ones(2))
    assert bn.num_batches_tracked.item() == 0


@pytest.mark.parametrize("shape, message", [
    ((2, 3, 4), "4-D input"),
    ((2, 4, 3, 3), "built for 3 channels"),
    ((1, 3, 1, 1), "more than one value per channel"),
])
def test_batchnorm_bad_input_raises(shape, message):
    with pytest.raises(ValueError, match=message):
        BatchNorm2d(3)(torch.randn(shape))


def test_batchnorm_single_value_per_channel_is_fine_in_eval():
    assert BatchNorm2d(3).eval()(torch.randn(1, 3, 1, 1)).shape == (1, 3, 1, 1)


@pytest.mark.parametrize("bad", [0, -1, 2.0])
def test_norms_reject_bad_channel_counts(bad):
    with pytest.raises(ValueError, match="positive int"):
        BatchNorm2d(bad)
    with pytest.raises(ValueError, match="positive int"):
        LayerNorm(bad)


# --- LayerNorm -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("affine", [True, False])
def test_layernorm_matches_groupnorm_one_group_in_train_and_eval(affine):
    ours, ref = LayerNorm(6, affine=affine), nn.GroupNorm(1, 6, affine=affine)
    randomize_affine(ours, ref)
    x = torch.randn(3, 6, 5, 4) * 4 + 2
    g = torch.randn_like(x)
    for mode in ("train", "eval"):
        getattr(ours, mode)(), getattr(ref, mode)()
        for a, e in zip(step(ours, x, g), step(ref, x, g)):
            torch.testing.assert_close(a, e, **TOL)
        ours.zero_grad(), ref.zero_grad()


def test_layernorm_statistics_are_per_example():
    ln = LayerNorm(2, affine=False)
    x = torch.randn(3, 2, 4, 4) * torch.tensor([1.0, 10.0, 100.0]).view(3, 1, 1, 1)
    y = ln(x)
    torch.testing.assert_close(y.mean(dim=(1, 2, 3)), torch.zeros(3), **TOL)
    torch.testing.assert_close(y.var(dim=(1, 2, 3), correction=0), torch.ones(3), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ln(x[1:2]), y[1:2], **TOL)  # the rest of the batch does not matter


def test_layernorm_state_dict_is_groupnorms():
    ours, ref = LayerNorm(5), nn.GroupNorm(1, 5)
    randomize_affine(ref)
    ours.load_state_dict(ref.state_dict())
    ref.load_state_dict(LayerNorm(5).state_dict())
    assert list(ours.state_dict()) == ["weight", "bias"]


def test_layernorm_equals_torch_layernorm_with_per_channel_broadcast_affine():
    c, h, w = 4, 5, 6
    ours, ref = LayerNorm(c), nn.LayerNorm([c, h, w])
    x = torch.randn(2, c, h, w) * 3 - 1
    torch.testing.assert_close(ours(x), ref(x), **TOL)  # default affine: ones and zeros
    randomize_affine(ours)
    with torch.no_grad():
        ref.weight.copy_(ours.weight.view(c, 1, 1).expand(c, h, w))
        ref.bias.copy_(ours.bias.view(c, 1, 1).expand(c, h, w))
    torch.testing.assert_close(ours(x), ref(x), **TOL)
    with torch.no_grad():  # weights that vary over (H, W) are beyond a per-channel affine
        ref.weight.add_(torch.randn(c, h, w))
    assert not torch.allclose(ours(x), ref(x), **TOL)


def test_layernorm_bad_input_raises():
    with pytest.raises(ValueError, match=r"\(B, 3, \.\.\.\)"):
        LayerNorm(3)(torch.randn(2, 4, 5, 5))


# --- in models -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("norm", [BatchNorm2d, LayerNorm])
def test_init_kaiming_treats_our_norms_as_norm_layers(norm):
    layer = norm(4)
    randomize_affine(layer)
    init_kaiming(nn.Sequential(layer))
    assert norm.is_norm_layer
    assert torch.equal(layer.weight, torch.ones(4)) and torch.equal(layer.bias, torch.zeros(4))


def small_net(norm_layer) -> nn.Sequential:
    return nn.Sequential(
        ConvNormAct(1, 8, 3, stride=2, norm_layer=norm_layer),
        ConvNormAct(8, 16, 3, stride=2, norm_layer=norm_layer),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    )


def zoo_resnet18(norm_layer) -> nn.Module:
    return cnnlab.create_model("resnet18", num_classes=10, in_chans=1, norm_layer=norm_layer)


def train_steps(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> list[float]:
    """Plain SGD on one fixed batch; returns the loss before each step."""
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(steps):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("build", [small_net, zoo_resnet18], ids=["conv-bn-relu", "resnet18"])
def test_model_with_our_batchnorm_trains_like_torch(build):
    ref = build(nn.BatchNorm2d)
    ours = build(BatchNorm2d)
    assert sum(isinstance(m, BatchNorm2d) for m in ours.modules()) > 0
    assert not any(type(m) is nn.BatchNorm2d for m in ours.modules())
    ours.load_state_dict(ref.state_dict())  # same keys: weights move between the two as they are
    # float64: a few large SGD steps on 8 images amplify float32 round-off (a 1e-7 difference in the
    # batch statistics of resnet18's 1x1 last stage) to percent-level differences in the loss.
    ours.double(), ref.double()
    x, y = torch.randn(8, 1, 28, 28, dtype=torch.float64), torch.randint(0, 10, (8,))
    ours_losses = train_steps(ours, x, y, steps=5)
    ref_losses = train_steps(ref, x, y, steps=5)
    assert ours_losses[-1] < ours_losses[0]
    assert ours_losses == pytest.approx(ref_losses, rel=1e-5)
    theirs = ref.state_dict()
    for key, value in ours.state_dict().items():
        torch.testing.assert_close(value, theirs[key], **TOL, msg=key)
    ours.eval(), ref.eval()
    torch.testing.assert_close(ours(x), ref(x), **TOL)
