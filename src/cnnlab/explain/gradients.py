"""Gradients of a class score with respect to the input pixels: saliency, SmoothGrad, deconvnet, guided backprop.

- Saliency: K. Simonyan, A. Vedaldi, A. Zisserman, "Deep Inside Convolutional Networks: Visualising Image
  Classification Models and Saliency Maps", ICLR workshop 2014 (arXiv:1312.6034), section 3: the
  magnitude of the derivative of the (unnormalized) class score, the largest over the colour channels.
- SmoothGrad: D. Smilkov, N. Thorat, B. Kim, F. Viegas, M. Wattenberg, "SmoothGrad: removing noise by
  adding noise", 2017 (arXiv:1706.03825): the same map averaged over copies of the image with Gaussian
  noise of standard deviation ``noise x (max - min)`` of the image.
- Deconvnet: M. Zeiler, R. Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014
  (arXiv:1311.2901), section 2.1: the backward pass through each ReLU is a ReLU of the signal coming
  back, ignoring which units were active on the way up. Unpooling with the max-pool switches and
  transposed filters are what autograd's backward of max pooling and convolution already do.
- Guided backpropagation: J. Springenberg, A. Dosovitskiy, T. Brox, M. Riedmiller, "Striving for
  Simplicity: The All Convolutional Net", ICLR workshop 2015 (arXiv:1412.6806), section 3.4: a signal
  goes back through a ReLU only where the unit was active on the way up *and* the signal is positive.

How the ReLU rule is replaced. Captum and pytorch-grad-cam hook ``nn.ReLU`` modules. That misses every
``F.relu`` / ``torch.relu`` / ``x.relu()`` called in a ``forward`` (torchvision's own ResNet blocks reuse one
module, many models call the function), and a backward hook on an ``inplace=True`` ReLU fails. Here a
:class:`torch.overrides.TorchFunctionMode` is active only inside a ``with`` block: it sees every relu
call at the level of torch functions, whichever way it was spelled, and answers it with a custom autograd
function whose forward is the ReLU (in place when the call asked for it) and whose backward is the
method's rule. Nothing of the model is touched, and leaving the block (also by an exception) ends it.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from cnnlab.errors import ConfigError
from cnnlab.explain._core import (
    Target,
    check_images,
    chunks,
    class_scores,
    explaining,
    logits_of,
    resolve_targets,
    target_part,
    to_map,
)

__all__ = [
    "ReLURule",
    "deconvnet",
    "guided_backprop",
    "input_gradient",
    "relu_rule",
    "saliency",
    "smooth_gradient",
]


def _score_gradient(model: nn.Module, x: torch.Tensor, target: Target) -> torch.Tensor:
    """d(score of each image's target class) / d(input) for one chunk; images are independent in eval mode."""
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits = logits_of(model(x))
        scores = class_scores(logits, resolve_targets(target, logits))
        (grad,) = torch.autograd.grad(scores.sum(), x)
    return grad


def _batched_gradient(model: nn.Module, images: torch.Tensor, target: Target, batch_size: int,
                      rule: str | None) -> torch.Tensor:
    images = check_images(images)
    out = torch.empty_like(images)
    with explaining(model), relu_rule(rule):
        for part in chunks(len(images), batch_size):
            out[part] = _score_gradient(model, images[part], target_part(target, part, len(images)))
    return out


def input_gradient(model: nn.Module, images: torch.Tensor, target: Target = None,
                   batch_size: int = 64) -> torch.Tensor:
    """(B, C, H, W): the gradient of each image's target-class score (default: the predicted class)."""
    return _batched_gradient(model, images, target, batch_size, None)


def saliency(model: nn.Module, images: torch.Tensor, target: Target = None, samples: int = 0,
             noise: float = 0.15, batch_size: int = 64, seed: int = 0) -> torch.Tensor:
    """(B, H, W) saliency maps (Simonyan 2014): max over channels of |gradient|; SmoothGrad if ``samples``.

    With ``samples > 0`` the |gradient| is averaged over that many noisy copies of each image before the
    maximum over channels (Smilkov 2017); the copies of several images go through the network together.
    """
    if samples <= 0:
        return to_map(input_gradient(model, images, target, batch_size))
    return to_map(smooth_gradient(model, images, target, samples, noise, batch_size, seed))


def smooth_gradient(model: nn.Module, images: torch.Tensor, target: Target = None, samples: int = 25,
                    noise: float = 0.15, batch_size: int = 64, seed: int = 0) -> torch.Tensor:
    """(B, C, H, W): |gradient| averaged over ``samples`` noisy copies of each image (SmoothGrad)."""
    images = check_images(images)
    if noise < 0 or samples < 1:
        raise ConfigError(f"SmoothGrad needs samples >= 1 and noise >= 0, got {samples} and {noise}")
    per_chunk = max(1, batch_size // samples)  # images per forward pass, each with all its copies
    out = torch.empty_like(images)
    with explaining(model):
        for part in chunks(len(images), per_chunk):
            x = images[part]
            copies = x.repeat(samples, 1, 1, 1)  # (samples * b, C, H, W), copy k of image i at k * b + i
            copies = copies + _noise(x, samples, noise, seed, part.start)
            t = target_part(target, part, len(images))
            if t is None:  # the class predicted for the clean image, not for each noisy copy
                with torch.no_grad():
                    t = logits_of(model(x)).argmax(1)
            t = torch.as_tensor(t, device=x.device).reshape(-1).expand(len(x)).repeat(samples)
            grads = _score_gradient(model, copies, t).abs()
            out[part] = grads.view(samples, len(x), *x.shape[1:]).mean(0)
    return out


def _noise(x: torch.Tensor, samples: int, level: float, seed: int, first: int) -> torch.Tensor:
    """(samples * b, C, H, W) Gaussian noise for the copies of images ``first`` ... ``first + b - 1``.

    Each image draws from its own generator (seeded by ``seed`` and its index in the batch), so the result
    does not depend on how the batch is cut into chunks.
    """
    sigma = level * (x.flatten(1).amax(1) - x.flatten(1).amin(1))  # (b,): a fraction of each image's range
    gens = [torch.Generator().manual_seed(seed * 1_000_003 + first + i) for i in range(len(x))]
    draws = [torch.randn((samples, *x.shape[1:]), generator=g) for g in gens]
    noise = torch.stack(draws, 1).to(x.device, x.dtype) * sigma.view(1, -1, 1, 1, 1)  # (samples, b, C, H, W)
    return noise.flatten(0, 1)


def guided_backprop(model: nn.Module, images: torch.Tensor, target: Target = None,
                    batch_size: int = 64) -> torch.Tensor:
    """(B, C, H, W) guided backpropagation (Springenberg 2015): ReLUs pass back positive signal of active units."""
    return _batched_gradient(model, images, target, batch_size, "guided")


def deconvnet(model: nn.Module, images: torch.Tensor, target: Target = None,
              batch_size: int = 64) -> torch.Tensor:
    """(B, C, H, W) deconvnet reconstruction (Zeiler & Fergus 2014): ReLUs pass back the positive signal."""
    return _batched_gradient(model, images, target, batch_size, "deconvnet")


class _GuidedReLU(torch.autograd.Function):
    """ReLU forward; backward passes the signal where the unit was active and the signal is positive."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, inplace: bool) -> torch.Tensor:
        out = _relu_forward(ctx, x, inplace)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (out,) = ctx.saved_tensors
        return grad.clamp_min(0) * (out > 0).to(grad.dtype), None


class _DeconvReLU(torch.autograd.Function):
    """ReLU forward; backward is a ReLU of the signal alone (the deconvnet's rectification)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, inplace: bool) -> torch.Tensor:
        return _relu_forward(ctx, x, inplace)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad.clamp_min(0), None


def _relu_forward(ctx, x: torch.Tensor, inplace: bool) -> torch.Tensor:
    if inplace:
        ctx.mark_dirty(x)
        return x.clamp_min_(0)
    return x.clamp_min(0)


_RULES: dict[str, type[torch.autograd.Function]] = {"guided": _GuidedReLU, "deconvnet": _DeconvReLU}

# Every spelling of a ReLU that reaches torch: nn.ReLU calls F.relu; F.relu(inplace=True) is answered here
# before it reaches torch.relu_.
_OUT_OF_PLACE = {F.relu, torch.relu, torch.Tensor.relu}
_IN_PLACE = {F.relu_, torch.relu_, torch.Tensor.relu_}


class ReLURule(TorchFunctionMode):
    """While active, every ReLU call of any spelling runs with the backward rule of ``rule``."""

    def __init__(self, rule: str) -> None:
        super().__init__()
        if rule not in _RULES:
            raise ConfigError(f"unknown ReLU rule {rule!r}; use one of {', '.join(_RULES)}")
        self.function = _RULES[rule]
        self.calls = 0  # how many ReLUs were rewritten (a model with none gets plain gradients)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _OUT_OF_PLACE:
            inplace = bool(kwargs.get("inplace", args[1] if len(args) > 1 else False)) if func is F.relu else False
            self.calls += 1
            return self.function.apply(args[0], inplace)
        if func in _IN_PLACE:
            self.calls += 1
            return self.function.apply(args[0], True)
        return func(*args, **kwargs)


def relu_rule(rule: str | None) -> AbstractContextManager:
    """A ``with`` context in which ReLUs back-propagate by ``rule`` ('guided', 'deconvnet'; None: unchanged)."""
    return nullcontext() if rule is None else ReLURule(rule)
