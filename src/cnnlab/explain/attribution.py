"""The attribution methods under one signature, by name: what the sanity check and ``cnnlab explain`` loop over.

Each entry maps ``(model, images, target, layer)`` to one (B, H, W) map per image: methods that give a
value per colour channel are reduced by the largest magnitude over the channels (Simonyan 2014).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from cnnlab.errors import UnknownNameError
from cnnlab.explain._core import Target, to_map
from cnnlab.explain.gradcam import grad_cam, guided_grad_cam
from cnnlab.explain.gradients import deconvnet, guided_backprop, saliency
from cnnlab.explain.occlusion import occlusion

__all__ = ["ATTRIBUTION_METHODS", "AttributionMethod", "attribution_map"]

AttributionMethod = Callable[[nn.Module, torch.Tensor, Target, "str | None"], torch.Tensor]


def _occlusion(model: nn.Module, images: torch.Tensor, target: Target, layer: str | None) -> torch.Tensor:
    side = min(images.shape[-2:])
    window = max(1, side // 7)
    return occlusion(model, images, target, window=window, stride=max(1, window // 2)).attribution


ATTRIBUTION_METHODS: dict[str, AttributionMethod] = {
    "saliency": lambda m, x, t, layer: saliency(m, x, t),
    "smoothgrad": lambda m, x, t, layer: saliency(m, x, t, samples=25),
    "deconvnet": lambda m, x, t, layer: to_map(deconvnet(m, x, t)),
    "guided-backprop": lambda m, x, t, layer: to_map(guided_backprop(m, x, t)),
    "gradcam": lambda m, x, t, layer: grad_cam(m, x, t, layer),
    "guided-gradcam": lambda m, x, t, layer: to_map(guided_grad_cam(m, x, t, layer)),
    "occlusion": _occlusion,
}


def attribution_map(name: str, model: nn.Module, images: torch.Tensor, target: Target = None,
                    layer: str | None = None) -> torch.Tensor:
    """(B, H, W): the map of the attribution method called ``name`` (see ``ATTRIBUTION_METHODS``)."""
    if name not in ATTRIBUTION_METHODS:
        raise UnknownNameError(f"unknown attribution method {name!r}; choose from {', '.join(ATTRIBUTION_METHODS)}")
    return ATTRIBUTION_METHODS[name](model, images, target, layer)
