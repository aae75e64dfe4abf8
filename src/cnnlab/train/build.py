"""Models for training: build from the registry with dropout, load starting weights, freeze a backbone."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
from torch import nn

from cnnlab.errors import CheckpointError, ConfigError
from cnnlab.models import convert_torchvision, create_model, get_model_info
from cnnlab.train.checkpoint import is_cnnlab_checkpoint, load_checkpoint
from cnnlab.train.config import TrainConfig

__all__ = [
    "AUX_LOSS_WEIGHTS",
    "aux_loss_weight",
    "build_model",
    "freeze_backbone",
    "load_initial_weights",
    "prepare_model",
    "split_outputs",
    "wrap_for_training",
]

# Weight of each auxiliary classifier's loss: GoogLeNet (Szegedy et al. 2015, Sec. 5) adds its two aux
# losses with weight 0.3; Inception-v3's single aux head is weighted 0.4 in torchvision's reference recipe.
AUX_LOSS_WEIGHTS = {"googlenet": 0.3, "inception": 0.4}


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
    if cfg.drop_rate is not None:
        if not _takes(info.builder, "drop_rate"):
            raise ConfigError(f"{cfg.model} has no dropout rate to set; leave out --drop-rate")
        kwargs["drop_rate"] = cfg.drop_rate
    try:
        return create_model(cfg.model, **kwargs)
    except TypeError as err:
        raise ConfigError(f"cannot build {cfg.model} with {kwargs}: {err}") from err


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


def freeze_backbone(model: nn.Module) -> int:
    """Train only the classifier (``get_classifier()``); returns the number of trainable parameters left."""
    if not hasattr(model, "get_classifier"):
        raise ConfigError(f"{type(model).__name__} does not say which layer is its classifier; cannot freeze")
    model.requires_grad_(False)
    model.get_classifier().requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


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
        say(f"started from {cfg.init}" + (f"; new classifier: {', '.join(new_head)}" if new_head else ""))
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
