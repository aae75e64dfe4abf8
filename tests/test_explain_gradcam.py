"""Grad-CAM equals the class activation map computed by hand, and captum; the default layer needs no model code."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import ConfigError, UnknownNameError
from cnnlab.explain import grad_cam, guided_backprop, guided_grad_cam, layer_grad_cam
from cnnlab.explain._core import default_layer


class CamNet(nn.Module):
    """conv - ReLU - conv (the CAM layer) - global average pool - linear: Zhou et al. 2016's architecture."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 3, padding=1))
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean((2, 3)))


def test_grad_cam_is_the_class_activation_map_by_hand():
    torch.manual_seed(0)
    model = CamNet().eval()
    x = torch.randn(4, 3, 7, 9)
    targets = torch.tensor([0, 4, 2, 2])
    with torch.no_grad():
        acts = model.features(x)  # (4, 8, 7, 9)
    w = model.fc.weight.detach()[targets]  # (4, 8)
    # Zhou 2016: CAM_c = sum_k w_ck A_k. Grad-CAM's alpha_k = mean over pixels of d y_c / d A_k = w_ck / (H W).
    cam = torch.einsum("bk,bkhw->bhw", w, acts)
    expected = F.relu(cam) / (7 * 9)
    got = layer_grad_cam(model, x, targets, layer="features")
    assert torch.allclose(got, expected, atol=1e-6)
    up = grad_cam(model, x, targets, layer="features")
    assert up.shape == (4, 7, 9) and torch.allclose(up, expected, atol=1e-6)  # same size: upsampling is identity


def test_upsampled_to_the_input_bilinearly():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, padding=1),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()
    x = torch.randn(2, 1, 10, 10)
    small = layer_grad_cam(model, x, layer="4")
    assert small.shape == (2, 5, 5)
    expected = F.interpolate(small.unsqueeze(1), size=(10, 10), mode="bilinear", align_corners=False).squeeze(1)
    assert torch.allclose(grad_cam(model, x, layer="4"), expected, atol=1e-7)


def test_default_layer_is_the_last_stage_or_the_last_spatial_module():
    from _tiny import TinyNet

    tiny = TinyNet(num_classes=3)
    assert default_layer(tiny, torch.randn(1, 1, 8, 8)) == "stages"
    plain = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    assert default_layer(plain, torch.randn(1, 1, 8, 8)) == "1"  # the pooled map is 1x1: not spatial
    assert grad_cam(plain, torch.randn(2, 1, 8, 8)).shape == (2, 8, 8)


def test_guided_grad_cam_is_the_product_of_its_halves():
    torch.manual_seed(0)
    model = CamNet()
    x = torch.randn(3, 3, 7, 7)
    expected = guided_backprop(model, x) * grad_cam(model, x, layer="features.1").unsqueeze(1)
    assert torch.allclose(guided_grad_cam(model, x, layer="features.1"), expected, atol=1e-7)


def test_bad_layers_are_one_line_errors():
    model = CamNet()
    x = torch.randn(1, 3, 7, 7)
    with pytest.raises(UnknownNameError, match="no layer 'feature'.*did you mean features"):
        grad_cam(model, x, layer="feature")
    with pytest.raises(ConfigError, match="spatial output"):
        grad_cam(model, x, layer="fc")


captum = pytest.importorskip("captum.attr", reason="captum is an optional dependency (cnnlab[explain])")


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_equal_to_captum_grad_cam_and_guided_grad_cam():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5)).eval()
    x = torch.randn(4, 3, 16, 16)
    t = model(x).argmax(1)
    theirs = captum.LayerGradCam(model, model[4]).attribute(x, target=t, relu_attributions=True)
    theirs = captum.LayerAttribution.interpolate(theirs, (16, 16), "bilinear")[:, 0]
    assert torch.allclose(grad_cam(model, x, t, layer="4"), theirs, atol=1e-5)
    guided = captum.GuidedGradCam(model, model[4]).attribute(x.clone(), target=t, interpolate_mode="bilinear")
    assert torch.allclose(guided_grad_cam(model, x, t, layer="4"), guided, atol=1e-5)


def test_autograd_records_nothing_before_the_explained_layer():
    # the layer's output is the graph's leaf: the convolution before it runs without autograd's bookkeeping
    torch.manual_seed(0)
    model = CamNet().eval()
    seen: list[bool] = []
    handle = model.features[0].register_forward_hook(lambda m, a, out: seen.append(out.requires_grad))
    x = torch.randn(2, 3, 7, 9)
    try:
        cam = layer_grad_cam(model, x, 1, layer="features.2")
    finally:
        handle.remove()
    assert seen == [False]
    assert cam.shape == (2, 7, 9) and cam.abs().sum() > 0
    assert not x.requires_grad and x.grad is None
