"""What every explanation method shares: a model made ready (and put back), targets, layers, chunks, hooks."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from cnnlab.errors import ConfigError, InputSizeError, UnknownNameError
from cnnlab.explain.guard import preserved

__all__ = [
    "Target",
    "batches_of",
    "capture_output",
    "check_images",
    "chunks",
    "class_scores",
    "default_layer",
    "explaining",
    "find_layer",
    "logits_of",
    "progress_bar",
    "resolve_targets",
    "target_part",
    "to_map",
]

Target = int | Sequence[int] | torch.Tensor | None


@contextmanager
def explaining(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode with frozen parameters for the ``with`` body, then exactly as it was before.

    Eval mode makes every image of a batch independent of the others (batch norm reads its running
    statistics, dropout is off), so a batched explanation equals one image at a time. Frozen parameters
    spare the weight gradients nobody reads.
    """
    with preserved(model) as state:
        model.eval()
        for record in state.tensors:
            if record.is_parameter:
                record.tensor.requires_grad_(False)
        yield model


def logits_of(output: object) -> torch.Tensor:
    """The class scores of a model's output: the tensor itself, or the first one of a tuple (aux heads)."""
    if isinstance(output, torch.Tensor):
        out = output
    elif isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        out = output[0]
    else:
        raise ConfigError(f"the model returned a {type(output).__name__}; an explanation needs class scores "
                          f"(a tensor of shape (batch, classes))")
    if out.dim() != 2:
        raise InputSizeError(f"the model returned scores of shape {tuple(out.shape)}; explanations need a "
                             f"classifier returning (batch, classes)")
    return out


def check_images(images: torch.Tensor) -> torch.Tensor:
    """A float batch (B, C, H, W), or a clear error."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise InputSizeError(f"expected a batch of images (B, C, H, W), got {shape}")
    if not images.is_floating_point():
        raise InputSizeError(f"expected float model input (normalized images), got {images.dtype}")
    return images


def batches_of(images: torch.Tensor | Iterable[torch.Tensor], batch_size: int) -> Iterator[torch.Tensor]:
    """Batches of model input: ``images`` cut into chunks, or the batches of an iterable passed through.

    An iterable lets a data set larger than memory stream through (a generator of normalized batches).
    """
    if isinstance(images, torch.Tensor):
        images = check_images(images)
        for part in chunks(len(images), batch_size):
            yield images[part]
    else:
        for batch in images:
            yield check_images(batch)


def resolve_targets(target: Target, logits: torch.Tensor) -> torch.Tensor:
    """One class index per image: the predicted class where ``target`` is None, else ``target`` checked."""
    batch, classes = logits.shape
    if target is None:
        return logits.detach().argmax(1)
    t = torch.as_tensor(target, dtype=torch.long, device=logits.device).reshape(-1)
    if t.numel() == 1:
        t = t.expand(batch)
    if t.numel() != batch:
        raise ConfigError(f"got {t.numel()} targets for {batch} images; give one class or one per image")
    bad = t[(t < 0) | (t >= classes)]
    if bad.numel():
        raise ConfigError(f"target class {int(bad[0])} is out of range: the model has {classes} classes "
                          f"(0-{classes - 1})")
    return t


def target_part(target: Target, part: slice, total: int) -> Target:
    """The targets of the images in ``part`` of a batch of ``total`` (one class for all stays one class)."""
    if target is None or isinstance(target, int):
        return target
    t = torch.as_tensor(target).reshape(-1)
    if t.numel() not in (1, total):
        raise ConfigError(f"got {t.numel()} targets for {total} images; give one class or one per image")
    return t if t.numel() == 1 else t[part]


def class_scores(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The score of each image's target class, (B,)."""
    return logits.gather(1, targets.view(-1, 1)).squeeze(1)


def chunks(n: int, size: int) -> Iterator[slice]:
    """Slices of ``range(n)`` of at most ``size`` items."""
    if size < 1:
        raise ConfigError(f"batch size must be at least 1, got {size}")
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def progress_bar(items: Iterable, show: bool, what: str, unit: str = "batch") -> Iterable:
    """``items`` with a tqdm progress bar on stderr when ``show``, else as they are."""
    if not show:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=what, unit=unit, leave=False)


def find_layer(model: nn.Module, name: str) -> nn.Module:
    """The module called ``name`` (a ``feature_info`` stage or any module path), or an error naming choices."""
    modules = dict(model.named_modules())
    if name and name in modules:
        return modules[name]
    stages = [f.module for f in getattr(model, "feature_info", None) or []]
    close = difflib.get_close_matches(name, list(modules), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    shown = f" (stages: {', '.join(stages)})" if stages else ""
    raise UnknownNameError(f"the model has no layer {name!r}{hint} Give a module name{shown}")


@contextmanager
def capture_output(module: nn.Module, keep_input: bool = False, leaf: bool = False) -> Iterator[dict]:
    """Record ``module``'s output (or input) of each forward in ``box["value"]``; the hook goes when done.

    The output is handed on as a copy, so an in-place operation after the layer (``ReLU(inplace=True)``)
    cannot change the recorded tensor, and gradients with respect to it still flow. With ``leaf`` the
    recorded output starts a new graph (a leaf that requires grad): gradients reach it without autograd
    having recorded anything before the layer, which spares that part of the network its bookkeeping.
    """
    box: dict = {}

    def hook(mod: nn.Module, args: tuple, output: object) -> object:
        if keep_input:
            box["value"] = args[0]
            return None
        if isinstance(output, torch.Tensor):
            if leaf:
                output = output.detach().requires_grad_(True)
            box["value"] = output
            return output.clone()
        box["value"] = output
        return None

    handle = module.register_forward_hook(hook)
    try:
        yield box
    finally:
        handle.remove()


def default_layer(model: nn.Module, images: torch.Tensor) -> str:
    """The last stage in ``feature_info``; for other models, the last module to produce a spatial map.

    "Last" is in the order modules finish during a forward pass of one image, so for a container whose
    last child is a pooling layer, the container's (pooled) output is the one chosen.
    """
    info = getattr(model, "feature_info", None)
    if info:
        return info[-1].module
    finished: list[str] = []
    handles = []
    for name, module in model.named_modules():
        if name:
            handles.append(module.register_forward_hook(
                lambda m, a, o, name=name: finished.append(name) if _is_spatial(o) else None))
    try:
        with torch.no_grad():
            model(images[:1])
    finally:
        for h in handles:
            h.remove()
    if not finished:
        raise ConfigError("the model has no layer with a spatial output (B, C, H, W); name one with layer=")
    return finished[-1]


def _is_spatial(output: object) -> bool:
    return isinstance(output, torch.Tensor) and output.dim() == 4 and output.shape[-1] * output.shape[-2] > 1


def to_map(attribution: torch.Tensor) -> torch.Tensor:
    """A (B, H, W) map from (B, C, H, W) attributions: the largest magnitude over channels (Simonyan 2014)."""
    return attribution.abs().amax(1) if attribution.dim() == 4 else attribution
