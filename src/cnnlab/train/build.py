"""Models for training: build from the registry with dropout, load starting weights, freeze a backbone."""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable

import torch
from torch import nn

from cnnlab.errors import CheckpointError, ConfigError
from cnnlab.models import convert_torchvision, create_model, get_model_info
from cnnlab.models._registry import load_pretrained, pretrained_options, pretrained_weights
from cnnlab.train.checkpoint import is_cnnlab_checkpoint, load_checkpoint
from cnnlab.train.config import TrainConfig, recipe_settings

__all__ = [
    "AUX_LOSS_WEIGHTS",
    "aux_loss_weight",
    "build_model",
    "freeze_backbone",
    "frozen_norm_layers",
    "load_initial_weights",
    "prepare_model",
    "reset_classifier",
    "split_outputs",
    "train_mode",
    "wrap_for_training",
]

# Weight of each auxiliary classifier's loss: GoogLeNet (Szegedy et al. 2015, Sec. 5) adds its two aux
# losses with weight 0.3; Inception-v3's single aux head is weighted 0.4 in torchvision's reference recipe.
AUX_LOSS_WEIGHTS = {"googlenet": 0.3, "inception": 0.4, "unet": 0.4}  # PSPNet's 0.4 for U-Net's deep supervision


def _takes(builder: Callable, name: str) -> bool:
    params = inspect.signature(builder).parameters
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def build_model(cfg: TrainConfig, num_classes: int, in_chans: int) -> nn.Module:
    """The config's registered network for ``num_classes`` and ``in_chans``, with its dropout rate."""
    info = get_model_info(cfg.model)
    if info.task not in ("classification", "segmentation"):
        raise ConfigError(f"{cfg.model} is a {info.task} network; `cnnlab train` trains classifiers and "
                          f"segmentation networks")
    kwargs: dict = {**cfg.model_args, "num_classes": num_classes, "in_chans": in_chans}
    if cfg.pretrained:  # the same network whether or not the weights are loaded now (resume, evaluation)
        kwargs = pretrained_options(cfg.model, kwargs)
    if cfg.drop_rate is not None:
        if not _takes(info.builder, "drop_rate"):
            from_recipe = cfg.recipe is not None and "drop_rate" in recipe_settings(cfg.recipe)
            origin = f" (the {cfg.recipe} recipe sets one: add --drop-rate none)" if from_recipe else ""
            raise ConfigError(f"{cfg.model} has no dropout rate to set; leave out --drop-rate{origin}")
        kwargs["drop_rate"] = cfg.drop_rate
    _check_option_types(info.builder, cfg.model, cfg.model_args)
    try:
        return create_model(cfg.model, **kwargs)
    except TypeError as err:
        raise ConfigError(f"cannot build {cfg.model} with {kwargs}: {err}") from err


_NUMBER_NAMES = {bool: "true or false", int: "a whole number", float: "a number"}


def _scalar_type(hint: object, default: object) -> type | None:
    """bool, int or float when a builder argument is declared (or defaults to) one of them, else None."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) != 1:  # e.g. int | Sequence[int]: a list is as welcome as a number
            return None
        hint = args[0]
    if hint in _NUMBER_NAMES:
        return hint
    return type(default) if hint is None and type(default) in _NUMBER_NAMES else None


def _fits(value: object, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_option_types(builder: Callable, model: str, options: dict) -> None:
    """A ``ConfigError`` naming the option, the type it needs and the value given, for a number option given text.

    Only bool, int and float arguments of the builder's signature are checked; anything else (layer
    factories, tuples, options a builder takes through ``**kwargs``) is left to the builder.
    """
    params = inspect.signature(builder).parameters
    try:
        hints = typing.get_type_hints(builder)
    except Exception:  # noqa: BLE001  (an annotation that does not resolve: fall back on the defaults)
        hints = {}
    for key, value in options.items():
        if key not in params or value is None:  # create_model drops None: the builder's default
            continue
        default = params[key].default
        kind = _scalar_type(hints.get(key), None if default is inspect.Parameter.empty else default)
        if kind is not None and not _fits(value, kind):
            raise ConfigError(
                f"{model}: model option {key} must be {_NUMBER_NAMES[kind]} ({kind.__name__}), got {value!r} "
                f"({type(value).__name__})"
            )


def _state_dict_of(obj: dict, path: str) -> tuple[dict[str, torch.Tensor], bool]:
    """(weights, ours?) of a loaded file: our checkpoint, a {'state_dict': ...} dict or a bare state_dict."""
    if is_cnnlab_checkpoint(obj):
        return (obj.get("ema") or {}).get("module") or obj["model"], True
    for key in ("state_dict", "model"):
        if isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} is neither a cnnlab checkpoint nor a state_dict of tensors")
    return dict(obj), False


def load_initial_weights(model: nn.Module, path: str, model_name: str) -> list[str]:
    """Load ``path`` into ``model`` for fine-tuning; returns the classifier keys left at their new init.

    A torchvision state_dict is converted with ``cnnlab.convert_torchvision``. Classifier weights whose
    class count differs (first dimension = this model's classes) stay freshly initialized: a new head.
    """
    weights, ours = _state_dict_of(load_checkpoint(path), path)
    own = model.state_dict()
    if not ours and not set(weights) <= set(own):
        weights = convert_torchvision(model_name, weights)
    unexpected = sorted(set(weights) - set(own))
    if unexpected:
        raise CheckpointError(f"{path} does not fit {model_name}: unexpected weights such as {unexpected[0]!r}")
    num_classes = getattr(model, "num_classes", None)
    fresh = []
    for key, value in list(weights.items()):
        if value.shape == own[key].shape:
            continue
        if own[key].dim() >= 1 and own[key].shape[0] == num_classes:
            fresh.append(key)
            del weights[key]
            continue
        hint = " (pass --in-chans 3 for RGB weights on grayscale data)" if value.dim() == 4 else ""
        raise CheckpointError(
            f"{path}: {key} has shape {tuple(value.shape)} but {model_name} needs "
            f"{tuple(own[key].shape)}{hint}"
        )
    missing = sorted(set(own) - set(weights) - set(fresh))
    if missing:
        raise CheckpointError(f"{path} lacks weights of {model_name}, e.g. {missing[0]!r}")
    model.load_state_dict(weights, strict=False)
    return fresh


def reset_classifier(model: nn.Module, num_classes: int) -> list[str]:
    """A freshly initialized classifier for ``num_classes`` (``--new-head``); returns its weight names."""
    if not hasattr(model, "reset_classifier"):
        raise ConfigError(f"{type(model).__name__} cannot replace its classifier; leave out --new-head")
    before = dict(model.named_parameters())
    model.reset_classifier(num_classes)
    return sorted(name for name, p in model.named_parameters() if before.get(name) is not p)


def freeze_backbone(model: nn.Module) -> int:
    """Train only the classifier (``get_classifier()``); returns the number of trainable parameters left.

    The backbone's normalization layers must also stay in eval mode while training (``train_mode``), or
    their running statistics would keep moving: ``frozen_norm_layers`` lists them.
    """
    if not hasattr(model, "get_classifier"):
        raise ConfigError(f"{type(model).__name__} does not say which layer is its classifier; cannot freeze")
    model.requires_grad_(False)
    model.get_classifier().requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def frozen_norm_layers(model: nn.Module) -> list[nn.Module]:
    """The layers with running statistics (batch norm, ours or PyTorch's) outside the classifier."""
    head = set(model.get_classifier().modules())
    return [
        m for m in model.modules()
        if m not in head and any(name == "running_mean" for name, _ in m.named_buffers(recurse=False))
    ]


def train_mode(model: nn.Module, frozen_norms: list[nn.Module]) -> None:
    """``model.train()``, except ``frozen_norms``: they normalize with their running statistics, unchanged."""
    model.train()
    for layer in frozen_norms:
        layer.eval()


def prepare_model(
    cfg: TrainConfig,
    num_classes: int,
    in_chans: int,
    device: torch.device,
    channels_last: bool,
    sync_bn: bool,
    say: Callable[[str], None],
    fresh: bool = True,
) -> nn.Module:
    """The model a run trains, on ``device``: built, started from --init (when ``fresh``), frozen as asked."""
    model = build_model(cfg, num_classes, in_chans)
    if cfg.init and fresh:
        new_head = load_initial_weights(model, cfg.init, cfg.model)
        if cfg.new_head:
            new_head = reset_classifier(model, num_classes)
        say(f"started from {cfg.init}" + (f"; new classifier: {', '.join(new_head)}" if new_head else ""))
    if cfg.pretrained and fresh:
        new_head = load_pretrained(model, cfg.model, progress=not cfg.quiet)
        say(f"started from torchvision's {pretrained_weights(cfg.model)}"
            + (f"; new classifier: {', '.join(new_head)}" if new_head else ""))
    if cfg.freeze_backbone:
        say(f"backbone frozen: {freeze_backbone(model):,} trainable parameters")
    if sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def wrap_for_training(model: nn.Module, device: torch.device, distributed: bool, compiled: bool) -> nn.Module:
    """``model`` as the training steps call it: under DistributedDataParallel and/or torch.compile."""
    if distributed:
        ids = [device.index] if device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    return torch.compile(model) if compiled else model


def split_outputs(out) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """(main logits, auxiliary logits) of a model output: GoogLeNet/Inception return tuples in training."""
    if isinstance(out, tuple | list):
        return out[0], tuple(o for o in out[1:] if o is not None)
    return out, ()


def aux_loss_weight(model_name: str) -> float:
    """How much each auxiliary classifier's loss counts (the family's paper; 0.3 otherwise)."""
    return AUX_LOSS_WEIGHTS.get(get_model_info(model_name).family, 0.3)
