"""The model registry: ``@register_model``, ``create_model``, ``list_models`` and torchvision conversion.

Every zoo network is registered under a name (torchvision's where torchvision has the network) with the
metadata the rest of cnnlab needs without building it: its family, the standard input it is counted at,
the smallest square input it accepts, the paper it implements and the torchvision builder it matches.

A family registers its networks from its variant table (``register_variants``): each row (``Variant``)
becomes a ``VariantBuilder``, so every builder has one signature, ``builder(num_classes=..., in_chans=...,
**options)``, whose options are the fields of the family's config and the keywords of its model class.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from cnnlab.errors import CheckpointError, ConfigError, UnknownNameError

__all__ = [
    "ModelInfo",
    "UnknownModelError",
    "Variant",
    "VariantBuilder",
    "builder_options",
    "convert_torchvision",
    "create_model",
    "get_model_info",
    "is_model",
    "list_families",
    "list_models",
    "load_pretrained",
    "pretrained_file",
    "pretrained_options",
    "pretrained_weights",
    "register_converter",
    "register_model",
    "register_variants",
    "remap_keys",
]

StateDict = Mapping[str, torch.Tensor]
Converter = Callable[[str, StateDict], dict[str, torch.Tensor]]


class UnknownModelError(UnknownNameError, ValueError):
    """Raised by ``create_model`` for a name that is not registered; the message lists close matches."""


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


@dataclass(frozen=True)
class Variant:
    """A row of a family's variant table: its config, one line on what it is, and where it differs."""

    cfg: Any  # the family's frozen config dataclass; None where the model class takes no config
    doc: str  # what this network is: the builder's docstring
    torchvision: bool = False  # torchvision has exactly this network, under the same name
    entry: Mapping[str, Any] = field(default_factory=dict)  # registry metadata unlike the family's (paper, ...)
    defaults: Mapping[str, Any] = field(default_factory=dict)  # option defaults other than the model's


class VariantBuilder:
    """A registered builder made from a variant-table row: ``builder(num_classes=..., in_chans=..., **options)``.

    It calls ``model(cfg, num_classes=..., in_chans=..., **rest)`` (``model(num_classes=..., ...)`` when the
    row has no config), where options naming a field of the frozen config replace that field
    (``dataclasses.replace``; lists become tuples) and the rest go to ``model``. The defaults of
    ``num_classes`` and ``in_chans`` are the registry entry's (``register_model`` binds it).
    """

    def __init__(self, model: Callable[..., nn.Module], row: Variant) -> None:
        self.model = model
        self.row = row
        self.entry: ModelInfo | None = None
        self.__name__ = self.__qualname__ = f"{getattr(model, '__name__', 'model')} variant"
        self.__doc__ = row.doc
        self.__module__ = model.__module__

    def __repr__(self) -> str:
        return f"<VariantBuilder {self.__name__}>"

    def bind(self, entry: ModelInfo) -> None:
        """Take the name and the num_classes / in_chans defaults of the registry entry."""
        if self.entry is not None:
            raise ValueError(f"this builder is already registered as {self.entry.name!r}")
        self.entry = entry
        self.__name__ = self.__qualname__ = entry.name

    def _cfg_fields(self) -> dict[str, Any]:
        cfg = self.row.cfg
        return {} if cfg is None else {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}

    def _model_keywords(self) -> dict[str, Any]:
        params = list(inspect.signature(self.model).parameters.values())
        if self.row.cfg is not None:
            params = params[1:]  # the config itself
        return {p.name: p.default for p in params if p.name not in ("num_classes", "in_chans")
                and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}

    def option_defaults(self) -> dict[str, Any]:
        """Every option with its default: the config's fields, then the model's keywords."""
        defaults = self._cfg_fields()
        for key, value in self._model_keywords().items():
            defaults.setdefault(key, value)
        defaults.update(self.row.defaults)
        return defaults

    @property
    def __signature__(self) -> inspect.Signature:
        entry = self.entry
        head = [
            inspect.Parameter("num_classes", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                              default=entry.num_classes if entry else inspect.Parameter.empty),
            inspect.Parameter("in_chans", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                              default=entry.input_size[0] if entry else inspect.Parameter.empty),
        ]
        options = [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v)
                   for k, v in self.option_defaults().items()]
        return inspect.Signature(head + options)

    def __call__(self, num_classes: int | None = None, in_chans: int | None = None, **options) -> nn.Module:
        if self.entry is None:
            raise RuntimeError("register a VariantBuilder (register_model) before calling it")
        known = self.option_defaults()
        for key in options:
            if key not in known:  # the error a plain function gives; create_model words it for a user
                raise TypeError(f"{self.__name__}() got an unexpected keyword argument {key!r}")
        options = {**self.row.defaults, **options}
        fields = self._cfg_fields()
        overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items() if k in fields}
        rest = {k: v for k, v in options.items() if k not in fields}
        num_classes = self.entry.num_classes if num_classes is None else num_classes
        in_chans = self.entry.input_size[0] if in_chans is None else in_chans
        if self.row.cfg is None:
            return self.model(num_classes=num_classes, in_chans=in_chans, **rest)
        cfg = dataclasses.replace(self.row.cfg, **overrides)
        return self.model(cfg, num_classes=num_classes, in_chans=in_chans, **rest)


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
    """Register a builder under ``name`` (default: its function name); raises ``ValueError`` on a duplicate."""

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        model_name = name or builder.__name__
        if model_name in _MODELS:
            raise ValueError(f"model {model_name!r} is already registered")
        fam = family or builder.__module__.rsplit(".", 1)[-1]
        info = ModelInfo(
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
        _MODELS[model_name] = info
        if isinstance(builder, VariantBuilder):
            builder.bind(info)
        return builder

    return decorator(fn) if fn is not None else decorator


def register_variants(model: Callable[..., nn.Module], table: Mapping[str, Variant], **entry: Any) -> None:
    """Register every row of a family's variant table: ``register_model(VariantBuilder(model, row), name=...)``.

    ``entry`` is the family's registry metadata (``register_model``'s keywords); a callable value is called
    with the row's config, and the row's own ``entry`` overrides the family's.
    """
    for name, row in table.items():
        meta = {key: value(row.cfg) if callable(value) else value for key, value in entry.items()}
        meta.update(row.entry)
        if row.torchvision:
            meta["torchvision"] = name
        register_model(VariantBuilder(model, row), name=name, **meta)


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


def create_model(name: str, pretrained: bool = False, **kwargs) -> nn.Module:
    """Build a registered network; ``None`` keyword values are dropped so the model's defaults apply.

    ``norm_layer`` and ``act_layer`` may be given by name ("batchnorm", "layernorm", "none", "relu", ...).
    ``pretrained=True`` loads torchvision's published ImageNet weights (``load_pretrained``): with another
    ``num_classes`` the backbone is loaded and the classifier keeps its fresh initialization.
    """
    from cnnlab.models.layers import resolve_layer_names

    info = get_model_info(name)
    kwargs = resolve_layer_names({k: v for k, v in kwargs.items() if v is not None})
    if pretrained:
        kwargs = pretrained_options(name, kwargs)
    try:
        model = info.builder(**kwargs)
    except TypeError as err:
        match = _UNEXPECTED_KEYWORD.search(str(err))
        if match is None or match.group(1) not in kwargs:
            raise  # not a misspelt option of the user's: a defect, keep the traceback
        raise ConfigError(_no_such_option(name, match.group(1), builder_options(info.builder))) from err
    model.model_name = name
    if getattr(model, "min_input_size", None) is None:
        model.min_input_size = info.min_size
    if pretrained:
        load_pretrained(model, name)
    return model


def pretrained_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with the builder settings torchvision's weights need where the caller left them out.

    torchvision's GoogLeNet and Inception-v3 builders turn ``transform_input`` on whenever they load
    weights (the weights expect inputs re-normalized to [-1, 1]); RGB models here do the same.
    """
    options = dict(options)
    info = get_model_info(name)
    rgb = options.get("in_chans", info.input_size[0]) == 3
    if rgb and "transform_input" in builder_options(info.builder):
        options.setdefault("transform_input", True)
    return options


def pretrained_weights(name: str):
    """torchvision's default ImageNet weights (a ``WeightsEnum`` member) of registered network ``name``."""
    import torchvision.models as tvm

    info = get_model_info(name)
    if info.torchvision is None or info.family not in _CONVERTERS:
        raise ConfigError(
            f"{name} has no published ImageNet weights in torchvision; pretrained weights exist for the networks "
            f"torchvision has (`cnnlab compare --reference imagenet` lists them)"
        )
    return tvm.get_model_weights(info.torchvision).DEFAULT


def pretrained_file(weights) -> Path:
    """Where torch's hub cache keeps (or will keep) the file of torchvision ``weights``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name


# DenseNet's published files predate torchvision's module names ("norm.1" for "norm1"); torchvision's own
# DenseNet loader renames them the same way.
_LEGACY_DENSENET_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


def _read_pretrained(weights, progress: bool) -> dict[str, torch.Tensor]:
    """The state_dict of torchvision ``weights``: from the hub cache, downloaded there first if missing."""
    file = pretrained_file(weights)
    cached = file.is_file()
    try:
        state = weights.get_state_dict(progress=progress, check_hash=True, weights_only=True)
    except Exception as err:  # noqa: BLE001  (urllib, http, hash and unpickling errors differ)
        reason = " ".join(str(err).split()) or type(err).__name__
        if cached:
            raise CheckpointError(f"{file} is damaged ({reason}); delete it to download it again") from err
        raise CheckpointError(
            f"cannot download torchvision's {weights} ({reason}); offline, put {file.name} "
            f"(from {weights.url}) into {file.parent}"
        ) from err
    return {(_LEGACY_DENSENET_KEY.sub(r"\1\2", k)): v for k, v in state.items()}


def load_pretrained(model: nn.Module, name: str, progress: bool = True) -> list[str]:
    """Load torchvision's ImageNet weights of ``name`` into ``model``; returns the keys left at their init.

    The weights come through torchvision's weights API (``DEFAULT`` weights, downloaded once to
    ``torch.hub.get_dir()/checkpoints``) and ``convert_torchvision``. Classifier layers of another class count
    (first dimension = the model's ``num_classes``) keep their fresh initialization and are returned; a
    1-channel model gets the sum of the RGB filters of its first convolution (its output on a gray image
    equals the RGB network's on that image repeated in three channels). Modules the model was built without
    (GoogLeNet's auxiliary heads when ``aux_logits=False``) are skipped.
    """
    weights = pretrained_weights(name)
    converted = convert_torchvision(name, _read_pretrained(weights, progress))
    own = model.state_dict()
    modules = dict(model.named_modules())
    num_classes = getattr(model, "num_classes", None)
    fresh: list[str] = []
    for key in list(converted):
        owner = modules.get(key.rpartition(".")[0])
        if key not in own and (owner is None or not any(True for _ in owner.parameters())):
            del converted[key]  # a part this model was built without
            continue
        if key not in own:
            raise CheckpointError(f"torchvision's {weights} do not fit {name}: no place for {key!r}")
        value, target = converted[key], own[key]
        if value.shape == target.shape:
            continue
        if target.dim() >= 1 and target.shape[0] == num_classes and value.shape[1:] == target.shape[1:]:
            fresh.append(key)  # a classifier for another class count
            del converted[key]
        elif value.dim() == 4 and value.shape[1] == 3 and target.shape == (value.shape[0], 1, *value.shape[2:]):
            converted[key] = value.sum(dim=1, keepdim=True)  # RGB filters for gray input: R + G + B
        else:
            raise CheckpointError(
                f"torchvision's {weights} give {key} the shape {tuple(value.shape)} but this {name} has "
                f"{tuple(target.shape)}: pretrained weights need the network as torchvision builds it "
                f"(in_chans 3 or 1, no options that change its layers)"
            )
    missing = sorted(set(own) - set(converted) - set(fresh))
    if missing:
        raise CheckpointError(f"torchvision's {weights} lack weights this {name} has, e.g. {missing[0]!r}")
    model.load_state_dict(converted, strict=False)
    return fresh


_UNEXPECTED_KEYWORD = re.compile(r"got an unexpected keyword argument '(\w+)'")


def builder_options(builder: Callable[..., nn.Module]) -> list[str]:
    """The keyword options a builder takes besides ``num_classes`` and ``in_chans``."""
    params = inspect.signature(builder).parameters.values()
    return [p.name for p in params if p.name not in ("num_classes", "in_chans")
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _no_such_option(name: str, option: str, options: list[str]) -> str:
    close = difflib.get_close_matches(option, options, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else "."
    listed = ", ".join(options) if options else "none"
    return f"{name} takes no option {option!r}{hint} Its options: {listed}"


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
        raise ConfigError(f"{name!r} has no torchvision counterpart to convert from")
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
