"""Saliency, SmoothGrad, deconvnet and guided backprop: exact on linear models, every ReLU spelling, captum."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.explain import deconvnet, guided_backprop, input_gradient, relu_rule, saliency, smooth_gradient


def _linear(chans: int = 3, side: int = 6, classes: int = 4) -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Flatten(), nn.Linear(chans * side * side, classes))


def test_saliency_of_a_linear_model_is_the_weight_magnitude():
    model = _linear()
    x = torch.randn(5, 3, 6, 6)
    targets = torch.tensor([0, 1, 2, 3, 1])
    w = model[1].weight.detach().view(4, 3, 6, 6)  # the gradient of w_c . x + b_c is w_c, whatever x
    expected = w[targets].abs().amax(1)  # Simonyan 2014: max over channels of |dS_c/dI|
    assert torch.allclose(saliency(model, x, targets), expected, atol=1e-6)
    assert torch.allclose(input_gradient(model, x, targets), w[targets], atol=1e-6)


def test_smoothgrad_of_a_linear_model_is_also_the_weight_magnitude():
    model = _linear()
    x = torch.randn(3, 3, 6, 6)
    expected = model[1].weight.detach().view(4, 3, 6, 6)[2].abs().amax(0)
    got = saliency(model, x, 2, samples=7, noise=0.3)
    assert torch.allclose(got, expected.expand(3, -1, -1), atol=1e-6)


def test_smoothgrad_without_noise_equals_saliency_and_is_reproducible():
    model = _relu_net("module")
    x = torch.randn(4, 1, 12, 12)
    plain = input_gradient(model, x).abs()
    assert torch.allclose(smooth_gradient(model, x, samples=3, noise=0.0), plain, atol=1e-6)
    a = smooth_gradient(model, x, samples=4, noise=0.2, seed=3)
    b = smooth_gradient(model, x, samples=4, noise=0.2, seed=3, batch_size=5)  # other chunking, same draws
    assert torch.equal(a, b)
    assert not torch.allclose(a, plain)


class ReLUNet(nn.Module):
    """conv - relu - conv - relu - max pool - linear, with the ReLU spelled in one of several ways."""

    def __init__(self, spelling: str) -> None:
        super().__init__()
        self.spelling = spelling
        self.c1 = nn.Conv2d(1, 5, 3, padding=1)
        self.c2 = nn.Conv2d(5, 7, 3, padding=1)
        self.fc = nn.Linear(7 * 6 * 6, 4)
        self.act = nn.ReLU(inplace=spelling == "inplace")

    def relu(self, x: torch.Tensor) -> torch.Tensor:
        if self.spelling == "functional":
            return F.relu(x)
        if self.spelling == "functional-inplace":
            return F.relu(x, inplace=True)
        if self.spelling == "torch":
            return torch.relu(x)
        if self.spelling == "method-inplace":
            return x.relu_()
        return self.act(x)  # "module" and "inplace"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.c2(self.relu(self.c1(x))))
        return self.fc(F.max_pool2d(x, 2).flatten(1))


SPELLINGS = ["module", "inplace", "functional", "functional-inplace", "torch", "method-inplace"]


def _relu_net(spelling: str) -> ReLUNet:
    torch.manual_seed(2)
    net = ReLUNet("module")
    other = ReLUNet(spelling)
    other.load_state_dict(net.state_dict())
    return other


@pytest.mark.parametrize("method", [guided_backprop, deconvnet])
def test_every_relu_spelling_gives_the_same_map(method):
    x = torch.randn(3, 1, 12, 12)
    maps = {s: method(_relu_net(s), x) for s in SPELLINGS}
    for spelling, m in maps.items():
        assert torch.equal(m, maps["module"]), spelling
    with relu_rule("guided") as rule:
        _relu_net("functional")(x)
    assert rule.calls == 2  # both ReLUs of one forward pass were seen


def test_guided_backprop_and_deconvnet_differ_from_the_gradient_on_a_relu_net():
    model = _relu_net("module")
    x = torch.randn(3, 1, 12, 12)
    plain = input_gradient(model, x)
    guided, deconv = guided_backprop(model, x), deconvnet(model, x)
    assert not torch.allclose(guided, plain, atol=1e-4)
    assert not torch.allclose(deconv, plain, atol=1e-4)
    assert not torch.allclose(guided, deconv, atol=1e-4)


def test_guided_backprop_by_hand_on_one_hidden_layer():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    x = torch.randn(4, 6)
    h = model[0](x)
    w1, w2 = model[0].weight.detach(), model[2].weight.detach()
    target = model(x).argmax(1)
    signal = w2[target]  # (4, 5): d score / d hidden
    guided = (signal * (h > 0) * (signal > 0)) @ w1  # Springenberg: active units, positive signal
    deconv = signal.clamp_min(0) @ w1  # Zeiler & Fergus: positive signal only
    wrapped = nn.Sequential(nn.Flatten(), *model)  # methods take image batches
    images = x.view(4, 1, 2, 3)
    assert torch.allclose(guided_backprop(wrapped, images).view(4, 6), guided, atol=1e-6)
    assert torch.allclose(deconvnet(wrapped, images).view(4, 6), deconv, atol=1e-6)


def test_batched_equals_one_image_at_a_time():
    model = _relu_net("inplace")
    x = torch.randn(5, 1, 12, 12)
    together = guided_backprop(model, x, batch_size=5)
    alone = torch.cat([guided_backprop(model, x[i : i + 1]) for i in range(5)])
    assert torch.allclose(together, alone, atol=1e-6)
    assert torch.allclose(saliency(model, x, batch_size=2), saliency(model, x, batch_size=5), atol=1e-6)


def test_the_relu_rule_ends_with_its_block_also_on_an_error():
    x = torch.randn(4, requires_grad=True)
    with pytest.raises(RuntimeError, match="inside"), relu_rule("guided"):
        raise RuntimeError("inside")
    y = torch.relu(x)
    (g,) = torch.autograd.grad(y.sum() * -1, x)
    assert torch.equal(g, -(x > 0).float())  # plain ReLU backward again: negative signals pass


def test_bad_settings_are_one_line_errors():
    model = _linear()
    x = torch.randn(2, 3, 6, 6)
    with pytest.raises(ConfigError, match="out of range"):
        saliency(model, x, target=9)
    with pytest.raises(ConfigError, match="3 targets for 2 images"):
        saliency(model, x, target=[0, 1, 2])
    with pytest.raises(ConfigError, match="unknown ReLU rule"):
        relu_rule("nope")


captum = pytest.importorskip("captum.attr", reason="captum is an optional dependency (cnnlab[explain])")


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("ours, theirs", [
    (lambda m, x, t: input_gradient(m, x, t).abs(), lambda m, x, t: captum.Saliency(m).attribute(x, t, abs=True)),
    (guided_backprop, lambda m, x, t: captum.GuidedBackprop(m).attribute(x, t)),
    (deconvnet, lambda m, x, t: captum.Deconvolution(m).attribute(x, t)),
], ids=["saliency", "guided-backprop", "deconvnet"])
def test_equal_to_captum_where_captum_has_the_method(ours, theirs):
    model = _relu_net("module").eval()
    x = torch.randn(4, 1, 12, 12)
    t = model(x).argmax(1)
    assert torch.allclose(ours(model, x, t), theirs(model, x.clone(), t), atol=1e-5)
