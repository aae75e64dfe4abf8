"""Class-model visualization: the input a network scores highest for a class, found by gradient ascent.

K. Simonyan, A. Vedaldi, A. Zisserman, "Deep Inside Convolutional Networks: Visualising Image Classification
Models and Saliency Maps", ICLR workshop 2014 (arXiv:1312.6034), section 2: maximize the unnormalized
class score S_c(I) - lambda ||I||^2 over the image I, starting from the zero (mean) image. The raw objective
gives high-frequency noise; J. Yosinski, J. Clune, A. Nguyen, T. Fuchs, H. Lipson, "Understanding Neural
Networks Through Deep Visualization", ICML deep learning workshop 2015 (arXiv:1506.06579), section 3, adds
regularizers applied after each step: L2 decay, a Gaussian blur every few steps, and clipping of pixels of
small norm; random jitter (shifting the image by a few pixels before each step) is from A. Mordvintsev,
C. Olah, M. Tyka, "Inceptionism", 2015. The steps are normalized by the mean gradient magnitude so one
learning rate serves networks whose scores differ in scale.

Instead of a class, a unit can be maximized: the mean activation of one channel of one layer. All images
(one per class or unit) are optimized together as one batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.explain._core import capture_output, explaining, find_layer, logits_of, progress_bar

__all__ = ["AscentSettings", "class_images", "gaussian_blur", "unit_images"]


@dataclass(frozen=True)
class AscentSettings:
    """Gradient-ascent steps and Yosinski et al.'s regularizers (their figure 3 ranges)."""

    steps: int = 200  # gradient-ascent iterations
    lr: float = 0.05  # step size, in units of normalized input per mean |gradient|
    l2: float = 1e-3  # L2 decay: each step multiplies the image by (1 - l2)
    jitter: int = 2  # random shift of up to this many pixels before each step (0: none)
    blur_every: int = 4  # blur the image every this many steps (0: never)
    blur_sigma: float = 0.5  # Gaussian blur width in pixels
    clip_percentile: float = 10.0  # after each step, zero the pixels whose channel norm is below this percentile
    init_std: float = 0.3  # start: the mean image plus Gaussian noise of this std (the exact mean image can leave
    # every first-layer ReLU off, and then the gradient is zero)
    seed: int = 0

    def check(self) -> None:
        if self.steps < 1:
            raise ConfigError(f"class images need at least one step, got {self.steps}")
        if self.lr <= 0 or not 0 <= self.l2 < 1 or self.jitter < 0 or self.blur_sigma < 0:
            raise ConfigError("class-image settings: lr must be > 0, l2 in [0, 1), jitter and blur_sigma >= 0")
        if not 0 <= self.clip_percentile < 100:
            raise ConfigError(f"clip_percentile must be in [0, 100), got {self.clip_percentile}")


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """(B, C, H, W) blurred per channel by a Gaussian of ``sigma`` pixels (kernel of 2 ceil(2 sigma) + 1, reflected)."""
    if sigma <= 0:
        return x
    radius = max(1, math.ceil(2 * sigma))
    radius = min(radius, x.shape[-1] - 1, x.shape[-2] - 1)
    if radius < 1:
        return x
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _objective(model: nn.Module, x: torch.Tensor, classes: torch.Tensor | None, unit: tuple[nn.Module, list[int]]
               | None) -> torch.Tensor:
    if unit is None:
        logits = logits_of(model(x))
        return logits.gather(1, classes.view(-1, 1)).sum()
    module, channels = unit
    with capture_output(module) as box:
        model(x)
    acts = box["value"]
    index = torch.as_tensor(channels, device=acts.device)
    return acts[torch.arange(len(x), device=acts.device), index].mean((-2, -1)).sum()


def _ascend(model: nn.Module, shape: tuple[int, ...], count: int, bounds: tuple[torch.Tensor, torch.Tensor],
            settings: AscentSettings, objective, progress: bool) -> torch.Tensor:
    settings.check()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    gen = torch.Generator().manual_seed(settings.seed)
    lo, hi = (b.to(device).view(1, -1, 1, 1) for b in bounds)
    x = (settings.init_std * torch.randn((count, *shape), generator=gen)).to(device)
    for step in progress_bar(range(settings.steps), progress, "class images", unit="step"):
        dy, dx = (int(v) for v in torch.randint(-settings.jitter, settings.jitter + 1, (2,), generator=gen))
        shifted = torch.roll(x, (dy, dx), (2, 3)).requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(objective(shifted), shifted)
        grad = torch.roll(grad, (-dy, -dx), (2, 3))
        scale = grad.abs().mean((1, 2, 3), keepdim=True) + 1e-12
        with torch.no_grad():
            x = (x + settings.lr * grad / scale) * (1 - settings.l2)
            if settings.blur_every and (step + 1) % settings.blur_every == 0:
                x = gaussian_blur(x, settings.blur_sigma)
            if settings.clip_percentile > 0:
                norm = x.norm(dim=1, keepdim=True)  # (B, 1, H, W)
                cut = torch.quantile(norm.flatten(1), settings.clip_percentile / 100, dim=1).view(-1, 1, 1, 1)
                x = x * (norm >= cut)
            x = torch.maximum(torch.minimum(x, hi), lo)
    return x.detach()


def _bounds(bounds: tuple[Sequence[float], Sequence[float]] | None, channels: int) -> tuple[torch.Tensor, ...]:
    if bounds is None:
        return torch.full((channels,), -3.0), torch.full((channels,), 3.0)
    lo, hi = (torch.as_tensor(b, dtype=torch.float32).reshape(-1).expand(channels) for b in bounds)
    return lo, hi


def class_images(model: nn.Module, classes: Sequence[int], image_shape: Sequence[int],
                 bounds: tuple[Sequence[float], Sequence[float]] | None = None,
                 settings: AscentSettings | None = None, progress: bool = False) -> torch.Tensor:
    """(len(classes), C, H, W) model inputs that maximize each class's score (Simonyan 2014, Yosinski 2015).

    ``bounds`` are the lowest and highest model input per channel (for normalized images: (0 - mean) / std
    and (1 - mean) / std), so the results stay displayable pictures; default +-3.
    """
    shape = tuple(int(v) for v in image_shape)
    with explaining(model):
        num = logits_of(model(torch.zeros((1, *shape), device=_device(model)))).shape[1]
        bad = [c for c in classes if not 0 <= int(c) < num]
        if bad:
            raise ConfigError(f"class {bad[0]} is out of range: the model has {num} classes (0-{num - 1})")
        target = torch.as_tensor([int(c) for c in classes], device=_device(model))
        return _ascend(model, shape, len(target), _bounds(bounds, shape[0]), settings or AscentSettings(),
                       lambda x: _objective(model, x, target, None), progress)


def unit_images(model: nn.Module, layer: str, channels: Sequence[int], image_shape: Sequence[int],
                bounds: tuple[Sequence[float], Sequence[float]] | None = None,
                settings: AscentSettings | None = None, progress: bool = False) -> torch.Tensor:
    """(len(channels), C, H, W) inputs that maximize the mean activation of each channel of ``layer``."""
    shape = tuple(int(v) for v in image_shape)
    with explaining(model):
        module = find_layer(model, layer)
        with capture_output(module) as box:
            model(torch.zeros((1, *shape), device=_device(model)))
        count = box["value"].shape[1]
        bad = [c for c in channels if not 0 <= int(c) < count]
        if bad:
            raise ConfigError(f"channel {bad[0]} does not exist: {layer} has {count} channels (0-{count - 1})")
        unit = (module, [int(c) for c in channels])
        return _ascend(model, shape, len(channels), _bounds(bounds, shape[0]), settings or AscentSettings(),
                       lambda x: _objective(model, x, None, unit), progress)


def _device(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))
