"""The model registry: ``@register_model``, ``create_model``, ``list_models`` and torchvision conversion.

Every zoo network is registered under a name (torchvision's where torchvision has the network) with the
metadata the rest of cnnlab needs without building it: its family, the standard input it is counted at,
the smallest square input it accepts, the paper it implements and the torchvision builder it matches.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

__all__ = [
    "ModelInfo",
    "UnknownModelError",
    "convert_torchvision",
    "create_model",
    "get_model_info",
    "is_model",
    "list_families",
    "list_models",
    "register_converter",
    "register_model",
    "remap_keys",
]

StateDict = Mapping[str, torch.Tensor]
Converter = Callable[[str, StateDict], dict[str, torch.Tensor]]


class UnknownModelError(KeyError, ValueError):
    """Raised by ``create_model`` for a name that is not registered; the message lists close matches."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about a network without building it."""

    name: str
    family: str
    builder: Callable[..., nn.Module]
    input_size: tuple[int, int, int]  # (C, H, W) the family is counted at (224 for ImageNet nets)
    min_size: int  # smallest square H = W the network accepts
    num_classes: int  # default number of classes
    paper: str  # the paper the network implements
    torchvision: str | None  # torchvision builder with exactly this network, if any
    task: str  # "classification" or "segmentation"

    @property
    def takes_28(self) -> bool:
        """Whether a 28x28 image (Fashion-MNIST) goes through the network unchanged."""
        return self.min_size <= 28


_MODELS: dict[str, ModelInfo] = {}
_CONVERTERS: dict[str, Converter] = {}


def register_model(
    fn: Callable[..., nn.Module] | None = None,
    *,
    family: str | None = None,
    input_size: tuple[int, int, int] = (3, 224, 224),
    min_size: int = 32,
    num_classes: int = 1000,
    paper: str = "",
    torchvision: str | None = None,
    task: str = "classification",
    name: str | None = None,
):
    """Register a builder under its function name; raises ``ValueError`` on a duplicate name."""

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        model_name = name or builder.__name__
        if model_name in _MODELS:
            raise ValueError(f"model {model_name!r} is already registered")
        fam = family or builder.__module__.rsplit(".", 1)[-1]
        _MODELS[model_name] = ModelInfo(
            name=model_name,
            family=fam,
            builder=builder,
            input_size=tuple(input_size),
            min_size=min_size,
            num_classes=num_classes,
            paper=paper or _first_line(builder.__doc__),
            torchvision=torchvision,
            task=task,
        )
        return builder

    return decorator(fn) if fn is not None else decorator


def _first_line(doc: str | None) -> str:
    lines = (doc or "").strip().splitlines()
    return lines[0].strip() if lines else ""


def _ensure_loaded() -> None:
    # Importing the package registers every family.
    import cnnlab.models  # noqa: F401


def _unknown(name: str) -> UnknownModelError:
    close = difflib.get_close_matches(name, list(_MODELS), n=5, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; `cnnlab models` lists them all"
    return UnknownModelError(f"unknown model {name!r}{hint}")


def get_model_info(name: str) -> ModelInfo:
    """The registry entry of ``name``; raises ``UnknownModelError`` with close matches."""
    _ensure_loaded()
    if name not in _MODELS:
        raise _unknown(name)
    return _MODELS[name]


def is_model(name: str) -> bool:
    """Whether ``name`` is registered."""
    _ensure_loaded()
    return name in _MODELS


def list_models(pattern: str | None = None, family: str | None = None) -> list[str]:
    """Sorted registered names, optionally filtered by a shell-style ``pattern`` and a family."""
    _ensure_loaded()
    names = sorted(_MODELS, key=_natural_key)
    if pattern:
        pat = pattern if any(c in pattern for c in "*?[") else f"*{pattern}*"
        names = [n for n in names if fnmatch.fnmatchcase(n, pat)]
    if family:
        names = [n for n in names if _MODELS[n].family == family]
    return names


def list_families() -> list[str]:
    """Sorted family names."""
    _ensure_loaded()
    return sorted({info.family for info in _MODELS.values()})


def _natural_key(name: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered network; ``None`` keyword values are dropped so the model's defaults apply.

    ``norm_layer`` and ``act_layer`` may be given by name ("batchnorm", "layernorm", "none", "relu", ...).
    """
    from cnnlab.models.layers import resolve_layer_names

    info = get_model_info(name)
    kwargs = resolve_layer_names({k: v for k, v in kwargs.items() if v is not None})
    model = info.builder(**kwargs)
    model.model_name = name
    if getattr(model, "min_input_size", None) is None:
        model.min_input_size = info.min_size
    return model


def register_converter(family: str) -> Callable[[Converter], Converter]:
    """Register the torchvision state_dict key map of a family."""

    def decorator(fn: Converter) -> Converter:
        if family in _CONVERTERS:
            raise ValueError(f"a torchvision converter for {family!r} is already registered")
        _CONVERTERS[family] = fn
        return fn

    return decorator


def convert_torchvision(name: str, state_dict: StateDict) -> dict[str, torch.Tensor]:
    """Convert a torchvision state_dict of the same network into our model's key names."""
    info = get_model_info(name)
    if info.torchvision is None or info.family not in _CONVERTERS:
        raise ValueError(f"{name!r} has no torchvision counterpart to convert from")
    return _CONVERTERS[info.family](name, state_dict)


def remap_keys(state_dict: StateDict, rules: list[tuple[str, str]]) -> dict[str, torch.Tensor]:
    """Rename keys by the first regex rule (pattern, replacement) that matches; others are kept."""
    compiled = [(re.compile(p), r) for p, r in rules]
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        new_key = key
        for pattern, repl in compiled:
            if pattern.search(key):
                new_key = pattern.sub(repl, key)
                break
        if new_key in out:
            raise ValueError(f"two torchvision keys map onto {new_key!r}")
        out[new_key] = value
    return out
