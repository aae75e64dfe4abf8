"""Every zoo classifier explains without per-model code: Grad-CAM at its default layer, model left unchanged."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import cnnlab
from _zoo import small_side
from cnnlab.explain import ModelState, grad_cam

CLASSIFIERS = [n for n in cnnlab.list_models() if cnnlab.get_model_info(n).task == "classification"]
# Filling the weights of the largest networks costs more than the rest of the file; they share their code with
# the smaller members of their family, which are tested.
MAX_PARAMS = 200_000_000


def _cheap_model(name: str) -> nn.Module:
    """The network with real CPU tensors but without its (slow) initialization: uniform(+-1/sqrt(fan_in))
    weights, zero biases, unit norm scales and batch-norm statistics, as PyTorch's defaults would be."""
    with torch.device("meta"):
        model = cnnlab.create_model(name, num_classes=3)
    if sum(p.numel() for p in model.parameters()) > MAX_PARAMS:
        pytest.skip(f"{name} has more than {MAX_PARAMS:,} parameters")
    model.to_empty(device="cpu")
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if p.dim() > 1:
                bound = 1 / math.sqrt(p[0].numel())
                p.uniform_(-bound, bound, generator=gen)
            else:
                p.fill_(1.0 if pname.endswith("weight") else 0.0)
        for bname, b in model.named_buffers():
            if b.is_floating_point():
                b.fill_(1.0 if bname.endswith("running_var") else 0.0)
            else:
                b.zero_()
    return model


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_grad_cam_runs_on_every_classifier(name):
    model = _cheap_model(name)
    model.train()  # the explanation must switch to eval and back
    side = small_side(name)
    x = torch.randn(1, model.in_chans, side, side)
    before = ModelState.capture(model)
    cam = grad_cam(model, x, target=1)
    assert cam.shape == (1, side, side)
    assert torch.isfinite(cam).all() and (cam >= 0).all()
    assert before.changes() == []
    assert model.training
