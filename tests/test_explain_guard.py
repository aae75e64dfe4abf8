"""An explanation never changes the model: modules, flags, mode, requires_grad, grads, hooks, buffers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.explain import (
    ModelState,
    activations,
    class_images,
    deconvnet,
    grad_cam,
    guided_backprop,
    guided_grad_cam,
    occlusion,
    penultimate_features,
    preserved,
    saliency,
    sanity_check,
    top_patches,
)
from cnnlab.explain.class_model import AscentSettings


class Net(nn.Module):
    """conv - BN - ReLU(inplace) - conv - F.relu - dropout - GAP - linear; hooks and a frozen layer added."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.act = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(6, 8, 3, padding=1)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv2(self.act(self.bn(self.conv1(x)))))
        return self.fc(self.drop(x).mean((2, 3)))


def _decorated() -> tuple[Net, list]:
    torch.manual_seed(0)
    model = Net()
    model.train()
    model.conv1.weight.requires_grad_(False)
    model.fc.weight.grad = torch.ones_like(model.fc.weight)
    calls: list = []
    model.conv2.register_forward_hook(lambda m, a, o: calls.append("conv2"))
    model.fc.bias.register_hook(lambda g: g)
    return model, calls


METHODS = {
    "saliency": lambda m, x: saliency(m, x),
    "smoothgrad": lambda m, x: saliency(m, x, samples=3),
    "deconvnet": lambda m, x: deconvnet(m, x),
    "guided-backprop": lambda m, x: guided_backprop(m, x),
    "gradcam": lambda m, x: grad_cam(m, x),
    "guided-gradcam": lambda m, x: guided_grad_cam(m, x, layer="conv2"),
    "occlusion": lambda m, x: occlusion(m, x, window=4, stride=2),
    "activations": lambda m, x: activations(m, x, "conv1"),
    "top-patches": lambda m, x: top_patches(m, x, "conv2", k=2),
    "class-images": lambda m, x: class_images(m, [0, 1], (3, 8, 8), settings=AscentSettings(steps=3)),
    "features": lambda m, x: penultimate_features(m, x),
    "sanity": lambda m, x: sanity_check(m, x, "saliency", steps=2),
}


@pytest.mark.parametrize("method", METHODS)
def test_method_leaves_the_model_as_it_was(method):
    model, calls = _decorated()
    before = ModelState.capture(model)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    METHODS[method](model, torch.randn(3, 3, 8, 8))
    assert before.changes() == []
    assert model.training and model.act.inplace and not model.conv1.weight.requires_grad
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    assert torch.equal(model.fc.weight.grad, torch.ones_like(model.fc.weight))
    assert len(model.conv2._forward_hooks) == 1 and len(model.fc.bias._backward_hooks) == 1
    assert calls, "the user's own hook must keep firing during the explanation"


def test_a_method_that_raises_half_way_leaves_the_model_as_it_was():
    model, _ = _decorated()
    before = ModelState.capture(model)
    # The target check fails after the layer hook is in place and the model is in eval mode.
    with pytest.raises(ConfigError, match="out of range"):
        grad_cam(model, torch.randn(2, 3, 8, 8), target=7, layer="conv2")
    assert before.changes() == []
    assert model.training and len(model.conv2._forward_hooks) == 1


def test_preserved_restores_everything_a_body_changes_even_when_it_raises():
    model, _ = _decorated()
    before = ModelState.capture(model)
    grad_mode = torch.is_grad_enabled()
    with pytest.raises(RuntimeError, match="boom"), preserved(model):
        model.eval()
        model.act.inplace = False
        model.fc.weight.requires_grad_(False)
        model.fc.weight.grad = None
        model.conv1.register_forward_pre_hook(lambda m, a: None)
        model.fc.bias.register_hook(lambda g: 2 * g)
        model.new_attribute = 3
        model.extra = nn.Linear(2, 2)
        model.bn.running_mean.add_(5)
        torch.nn.modules.module.register_module_forward_hook(lambda m, a, o: None)
        torch.set_grad_enabled(not grad_mode)
        raise RuntimeError("boom")
    assert before.changes() == []
    assert not hasattr(model, "new_attribute") and not hasattr(model, "extra")
    assert torch.equal(model.bn.running_mean, torch.zeros(6))
    assert not torch.nn.modules.module._global_forward_hooks
    assert torch.is_grad_enabled() == grad_mode


def test_changes_names_what_differs():
    model, _ = _decorated()
    state = ModelState.capture(model)
    model.eval()
    model.act.inplace = False
    handle = model.fc.register_forward_hook(lambda m, a, o: None)
    found = " | ".join(state.changes())
    assert "training" in found and "inplace" in found and "fc: _forward_hooks changed" in found
    handle.remove()
    state.restore()
    assert state.changes() == []


def test_weights_written_in_place_are_reported_not_hidden():
    model, _ = _decorated()
    with pytest.raises(RuntimeError, match="wrote the weights"), preserved(model), torch.no_grad():
        model.fc.weight.mul_(2)
