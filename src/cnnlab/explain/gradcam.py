"""Grad-CAM and guided Grad-CAM: where in the image a layer's evidence for a class lies.

R. Selvaraju, M. Cogswell, A. Das, R. Vedantam, D. Parikh, D. Batra, "Grad-CAM: Visual Explanations from
Deep Networks via Gradient-based Localization", ICCV 2017 (arXiv:1610.02391), section 3: the weight of
channel k is the spatial mean of d(score of class c) / d(A_k), the map is ReLU(sum_k weight_k A_k),
upsampled bilinearly to the input; guided Grad-CAM multiplies it pixel by pixel with guided
backpropagation. For a network whose last convolution feeds global average pooling and one linear layer
the Grad-CAM of that convolution is, up to the factor 1 / (H W), the class activation map of B. Zhou,
A. Khosla, A. Lapedriza, A. Oliva, A. Torralba, "Learning Deep Features for Discriminative Localization",
CVPR 2016 (arXiv:1512.04150) (tested).

The layer defaults to the last stage of the model's ``feature_info``, so every zoo network works without
per-model code; any other ``nn.Module`` gets the last module that produces a spatial map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.explain._core import (
    Target,
    capture_output,
    check_images,
    chunks,
    class_scores,
    default_layer,
    explaining,
    find_layer,
    logits_of,
    resolve_targets,
    target_part,
)
from cnnlab.explain.gradients import guided_backprop

__all__ = ["grad_cam", "guided_grad_cam", "layer_grad_cam"]


def layer_grad_cam(model: nn.Module, images: torch.Tensor, target: Target = None, layer: str | None = None,
                   batch_size: int = 64) -> torch.Tensor:
    """(B, h, w) Grad-CAM at the resolution of ``layer``'s output (before upsampling)."""
    images = check_images(images)
    maps = []
    with explaining(model):
        module = find_layer(model, layer or default_layer(model, images))
        for part in chunks(len(images), batch_size):
            maps.append(_chunk_cam(model, module, images[part], target_part(target, part, len(images))))
    return torch.cat(maps)


def _chunk_cam(model: nn.Module, module: nn.Module, x: torch.Tensor, target: Target) -> torch.Tensor:
    # the layer's output becomes the leaf of the graph: nothing before it needs autograd's bookkeeping
    with capture_output(module, leaf=True) as box, torch.enable_grad():
        logits = logits_of(model(x))
        acts = box.get("value")
        if not isinstance(acts, torch.Tensor) or acts.dim() != 4:
            shape = tuple(acts.shape) if isinstance(acts, torch.Tensor) else type(acts).__name__
            raise _layer_error(module, model, shape)
        scores = class_scores(logits, resolve_targets(target, logits))
        (grads,) = torch.autograd.grad(scores.sum(), acts)
    weights = grads.mean((2, 3), keepdim=True)  # (b, K, 1, 1): alpha_k^c
    return F.relu((weights * acts.detach()).sum(1))  # (b, h, w)


def _layer_error(module: nn.Module, model: nn.Module, shape: object) -> Exception:
    name = next((n for n, m in model.named_modules() if m is module), "?")
    return ConfigError(f"Grad-CAM needs a layer with a spatial output (B, C, H, W); {name!r} gave {shape}")


def grad_cam(model: nn.Module, images: torch.Tensor, target: Target = None, layer: str | None = None,
             batch_size: int = 64) -> torch.Tensor:
    """(B, H, W) Grad-CAM upsampled bilinearly to the input size (Selvaraju 2017)."""
    cam = layer_grad_cam(model, images, target, layer, batch_size)
    return upsample(cam, images.shape[-2:])


def guided_grad_cam(model: nn.Module, images: torch.Tensor, target: Target = None, layer: str | None = None,
                    batch_size: int = 64) -> torch.Tensor:
    """(B, C, H, W) guided Grad-CAM: guided backpropagation times the upsampled Grad-CAM, per pixel."""
    if target is None:  # both halves must explain the same class
        with explaining(model), torch.no_grad():
            target = torch.cat([logits_of(model(images[p])).argmax(1) for p in chunks(len(images), batch_size)])
    cam = grad_cam(model, images, target, layer, batch_size)
    return guided_backprop(model, images, target, batch_size) * cam.unsqueeze(1)


def upsample(maps: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """(B, h, w) -> (B, H, W), bilinear (``align_corners=False``, as the Grad-CAM paper's code and captum)."""
    return F.interpolate(maps.unsqueeze(1), size=tuple(size), mode="bilinear", align_corners=False).squeeze(1)
