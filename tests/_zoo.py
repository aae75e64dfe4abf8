"""Helpers the zoo tests share: building on meta, walking model outputs."""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

import cnnlab


def build_meta(name: str, **kwargs) -> nn.Module:
    """Build a registered model with meta tensors: no memory, no init cost."""
    with torch.device("meta"):
        return cnnlab.create_model(name, **kwargs)


def as_tuple(out) -> tuple[torch.Tensor, ...]:
    """A model output as a tuple of tensors (aux-classifier networks return several in training)."""
    return tuple(out) if isinstance(out, tuple | list) else (out,)


def small_side(name: str) -> int:
    """A small square input the network takes (28 where it can, as Fashion-MNIST)."""
    info = cnnlab.get_model_info(name)
    if info.task == "segmentation":
        return max(info.min_size, 32)
    return max(info.min_size, 28)


@contextmanager
def skip_init():
    """Build modules without running their (slow, CPU) weight initialisation: for counting only."""
    names = [n for n in dir(torch.nn.init) if n.endswith("_") and not n.startswith("_")]
    saved = {n: getattr(torch.nn.init, n) for n in names}
    try:
        for n in names:
            setattr(torch.nn.init, n, lambda tensor, *a, **k: tensor)
        yield
    finally:
        for n, fn in saved.items():
            setattr(torch.nn.init, n, fn)
