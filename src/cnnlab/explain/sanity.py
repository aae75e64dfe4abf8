"""Sanity check for attribution maps: does the map change when the weights it explains are destroyed?

J. Adebayo, J. Gilmer, M. Muelly, I. Goodfellow, M. Hardt, B. Kim, "Sanity Checks for Saliency Maps",
NeurIPS 2018 (arXiv:1810.03292), section 3.1, the cascading model-parameter randomization test: starting
at the top (the logits), re-initialize one more layer at a time and compare each new map with the map of
the trained model. A method whose maps stay the same once the learned weights are gone shows the image,
not what the network learned. The comparisons are the paper's: the Spearman rank correlation of the
absolute maps and the structural similarity (SSIM; Z. Wang, A. Bovik, H. Sheikh, E. Simoncelli, "Image
quality assessment: from error visibility to structural similarity", IEEE TIP 13(4), 2004; Gaussian
window of 11 pixels, sigma 1.5, on maps scaled to [0, 1]).

A layer is a module with parameters of its own (convolution, linear, normalization), in the order a
forward pass first calls them. It is re-initialized as at construction (its ``reset_parameters``; its
buffers, such as batch-norm running statistics, are kept), or else drawn from a Gaussian with its weights'
mean and standard deviation. The randomization happens on a copy: the user's model is never touched. The
explained class stays the one of the trained model.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.explain._core import Target, check_images, chunks, explaining, logits_of, progress_bar, resolve_targets
from cnnlab.explain.attribution import attribution_map

__all__ = ["SanityCheck", "cascade_layers", "rank_correlation", "sanity_check", "ssim"]


@dataclass
class SanityCheck:
    """Maps and their similarity to the trained model's map after each step of cascading randomization."""

    method: str
    layers: list[str]  # layers[i]: the layer re-initialized at step i + 1 (the top layer first)
    rank_correlation: np.ndarray  # (steps + 1,): mean over images; entry 0 compares the trained map with itself
    ssim: np.ndarray  # (steps + 1,)
    rank_correlation_per_image: np.ndarray  # (steps + 1, B)
    ssim_per_image: np.ndarray  # (steps + 1, B)
    maps: np.ndarray  # (steps + 1, B, H, W): the trained model's maps, then after each step
    targets: np.ndarray  # (B,): the class explained, the trained model's prediction unless given


def cascade_layers(model: nn.Module, images: torch.Tensor) -> list[str]:
    """Modules with parameters of their own, top (output side) first, in the order a forward pass uses them."""
    order: list[str] = []
    handles = []
    for name, module in model.named_modules():
        if any(True for _ in module.parameters(recurse=False)):
            handles.append(module.register_forward_pre_hook(
                lambda m, a, name=name: order.append(name) if name not in order else None))
    try:
        with explaining(model), torch.no_grad():
            model(images[:1])
    finally:
        for h in handles:
            h.remove()
    return order[::-1]


def _randomize(module: nn.Module, seed: int) -> None:
    """Re-initialize ``module``'s own parameters reproducibly, keeping its buffers and the global RNG state."""
    devices = sorted({p.device.index or 0 for p in module.parameters(recurse=False) if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(seed)
        buffers = {n: b.clone() for n, b in module.named_buffers(recurse=False)}
        if callable(getattr(module, "reset_parameters", None)):
            module.reset_parameters()
        else:
            for p in module.parameters(recurse=False):
                std = float(p.std()) if p.numel() > 1 else 0.0
                p.normal_(float(p.mean()), std)
        for n, b in buffers.items():
            getattr(module, n).copy_(b)


def _cut_points(count: int, steps: int | None) -> list[int]:
    """After how many randomized layers to compute a map: every layer, or ``steps`` spread out (last included)."""
    if steps is None or steps >= count:
        return list(range(1, count + 1))
    if steps < 1:
        raise ConfigError(f"steps must be at least 1, got {steps}")
    return sorted({round(count * (i + 1) / steps) for i in range(steps)})


def sanity_check(model: nn.Module, images: torch.Tensor, method: str | Callable = "saliency", target: Target = None,
                 layer: str | None = None, steps: int | None = None, seed: int = 0, batch_size: int = 64,
                 progress: bool = False) -> SanityCheck:
    """Cascading randomization (Adebayo 2018) of a copy of ``model``, top layer first, for one attribution method.

    ``method`` is a name of :data:`cnnlab.explain.attribution.ATTRIBUTION_METHODS` or a function
    ``(model, images, target, layer) -> (B, H, W)``. ``steps`` limits how many randomization depths are
    computed (spread evenly, the whole network last); None computes one per layer.
    """
    images = check_images(images)
    compute = method if callable(method) else (lambda m, x, t, lay: attribution_map(method, m, x, t, lay))
    name = method if isinstance(method, str) else getattr(method, "__name__", "custom")
    with explaining(model), torch.no_grad():
        logits = torch.cat([logits_of(model(images[p])) for p in chunks(len(images), batch_size)])
    targets = resolve_targets(target, logits)
    original = compute(model, images, targets, layer).detach().float().cpu()
    work = copy.deepcopy(model)
    layers = cascade_layers(work, images)
    if not layers:
        raise ConfigError("the model has no layers with parameters to randomize")
    modules = dict(work.named_modules())
    cuts = _cut_points(len(layers), steps)
    maps, done = [original], 0
    for cut in progress_bar(cuts, progress, f"sanity check ({name})", unit="step"):
        for i in range(done, cut):
            _randomize(modules[layers[i]], seed + i)
        done = cut
        maps.append(compute(work, images, targets, layer).detach().float().cpu())
    stacked = torch.stack(maps)  # (steps + 1, B, H, W)
    rho = np.stack([rank_correlation(original, m) for m in maps])
    sim = np.stack([ssim(original, m) for m in maps])
    return SanityCheck(name, [layers[c - 1] for c in cuts], rho.mean(1), sim.mean(1), rho, sim,
                       stacked.numpy(), targets.cpu().numpy())


def _average_ranks(a: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 of a 1-D array, ties sharing the mean of their ranks (as Spearman's coefficient needs)."""
    values, inverse, counts = np.unique(a, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - counts + ends - 1) / 2.0)[inverse.reshape(-1)]


def rank_correlation(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> np.ndarray:
    """(B,) Spearman rank correlation of the absolute values of two batches of maps, image by image.

    A constant map has no ranking: two constant maps count as equal (1), a constant map and a varying one as
    unrelated (0). Grad-CAM gives constant maps where the ReLU clears the whole weighted sum.
    """
    a2, b2 = (np.abs(np.asarray(t, dtype=np.float64)).reshape(len(t), -1) for t in (a, b))
    out = np.zeros(len(a2))
    for i, (x, y) in enumerate(zip(a2, b2)):
        rx, ry = _average_ranks(x), _average_ranks(y)
        rx, ry = rx - rx.mean(), ry - ry.mean()
        sx, sy = (rx**2).sum(), (ry**2).sum()
        if sx == 0 or sy == 0:
            out[i] = 1.0 if sx == sy else 0.0
        else:
            out[i] = (rx * ry).sum() / np.sqrt(sx * sy)
    return out


def _unit_scale(x: torch.Tensor) -> torch.Tensor:
    lo = x.flatten(1).amin(1).view(-1, 1, 1, 1)
    hi = x.flatten(1).amax(1).view(-1, 1, 1, 1)
    return (x - lo) / (hi - lo).clamp_min(1e-12)


def ssim(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray, window: int = 11,
         sigma: float = 1.5) -> np.ndarray:
    """(B,) structural similarity (Wang et al. 2004) of two batches of maps, each scaled to [0, 1] first.

    A map smaller than the window uses the largest odd window that fits.
    """
    x = _unit_scale(torch.as_tensor(np.abs(np.asarray(a)), dtype=torch.float64).unsqueeze(1))
    y = _unit_scale(torch.as_tensor(np.abs(np.asarray(b)), dtype=torch.float64).unsqueeze(1))
    size = min(window, x.shape[-1], x.shape[-2])
    size -= 1 - size % 2
    t = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(t**2) / (2 * sigma**2))
    g = (g / g.sum()).view(1, 1, -1)
    kernel = (g.transpose(1, 2) @ g).view(1, 1, size, size)

    def blur(z: torch.Tensor) -> torch.Tensor:
        return F.conv2d(z, kernel)

    c1, c2 = 0.01**2, 0.03**2
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1).numpy()

