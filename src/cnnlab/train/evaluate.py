"""Evaluation, prediction and ensembles: from a model and batches, or from checkpoint files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.data import BatchAugment, BatchSource, load_image
from cnnlab.errors import ConfigError
from cnnlab.train.build import build_model, split_outputs
from cnnlab.train.checkpoint import RunCheckpoint, load_run_checkpoint
from cnnlab.train.distributed import DistEnv, all_reduce_sum
from cnnlab.train.inputs import augment_from_meta, load_eval_source
from cnnlab.train.runtime import autocast, select_device

__all__ = [
    "ensemble_checkpoints",
    "evaluate",
    "evaluate_checkpoint",
    "load_trained_model",
    "predict_files",
    "predict_logits",
]


def _logits(model: nn.Module, x: torch.Tensor, tta_flip: bool) -> torch.Tensor:
    logits = split_outputs(model(x))[0].float()
    if tta_flip:
        # Average the probabilities of the image and its mirror image.
        probs = logits.softmax(1) + split_outputs(model(x.flip(3)))[0].float().softmax(1)
        return (probs / 2).log()
    return logits


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    source: BatchSource,
    augment: BatchAugment,
    amp_dtype: torch.dtype | None = None,
    tta_flip: bool = False,
    env: DistEnv | None = None,
) -> dict[str, float]:
    """Mean cross-entropy loss and accuracy (a fraction) of ``model`` over every batch of ``source``."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    totals = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, count
    for x_u8, y in source.batches(0):
        with autocast(device, amp_dtype):
            logits = _logits(model, augment.eval(x_u8), tta_flip)
        totals[0] += F.cross_entropy(logits, y, reduction="sum").double()
        totals[1] += (logits.argmax(1) == y).sum()
        totals[2] += y.numel()
    all_reduce_sum(totals, env or DistEnv())
    model.train(was_training)
    loss, correct, count = totals.tolist()
    return {"loss": loss / max(count, 1), "accuracy": correct / max(count, 1), "count": int(count)}


@torch.inference_mode()
def predict_logits(
    model: nn.Module,
    source: BatchSource,
    augment: BatchAugment,
    amp_dtype: torch.dtype | None = None,
    tta_flip: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits (N, K), labels (N,)) of every sample of ``source`` in order, on the CPU."""
    model.eval()
    device = next(model.parameters()).device
    outs, labels = [], []
    for x_u8, y in source.batches(0):
        with autocast(device, amp_dtype):
            outs.append(_logits(model, augment.eval(x_u8), tta_flip).cpu())
        labels.append(y.cpu())
    return torch.cat(outs), torch.cat(labels)


def load_trained_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[nn.Module, RunCheckpoint]:
    """(model in eval mode, checkpoint) rebuilt from our last.pt or best.pt, with EMA weights if it has them."""
    ckpt = load_run_checkpoint(path)
    model = build_model(ckpt.config, ckpt.data.num_classes, ckpt.data.in_chans)
    model.load_state_dict(ckpt.weights)
    return model.to(device).eval(), ckpt


def evaluate_checkpoint(
    path: str | Path,
    split: str = "test",
    data_dir: str | None = None,
    batch_size: int = 1024,
    tta_flip: bool | None = None,
    device: str = "auto",
) -> dict:
    """Loss and accuracy (segmentation: pixel accuracy, mIoU, Dice, per-class IoU) of a checkpoint on its data
    set's test (or validation) split."""
    from cnnlab.train.tasks import task_for

    if split not in ("test", "val"):
        raise ConfigError(f"split must be 'test' or 'val', got {split!r}")
    dev = select_device(device)
    model, ckpt = load_trained_model(path, dev)
    cfg = ckpt.config
    source = load_eval_source(ckpt.data, split, batch_size, dev, cfg, data_dir)
    flip = cfg.tta_flip if tta_flip is None else tta_flip
    result = task_for(cfg, ckpt.data).evaluate(model, source, augment_from_meta(ckpt.data), tta_flip=flip)
    return {
        "checkpoint": str(path),
        "model": cfg.model,
        "data": ckpt.data.dataset,
        "split": split,
        "tta_flip": flip,
        **result,
    }


def predict_files(
    path: str | Path, images: Sequence[str | Path], topk: int = 5, device: str = "auto"
) -> list[dict]:
    """The ``topk`` classes and probabilities of each image file under a checkpoint's model."""
    dev = select_device(device)
    model, ckpt = load_trained_model(path, dev)
    meta = ckpt.data
    if meta.task != "classification":
        raise ConfigError(f"{path} holds a {meta.task} network ({ckpt.config.model}); label images with "
                          f"cnnlab.train.predict_segmentation (`cnnlab predict` does so by itself)")
    topk = min(topk, meta.num_classes)
    if topk < 1:
        raise ConfigError("topk must be at least 1")
    chans, height, width = meta.image_shape
    batch = torch.stack([_image_tensor(p, chans, height, width) for p in images]).to(dev)
    augment = augment_from_meta(meta)
    with torch.inference_mode():
        probs = _logits(model, augment.eval(batch), ckpt.config.tta_flip).softmax(1)
    top = probs.topk(topk, dim=1)
    return [
        {
            "image": str(p),
            "top": [
                {"class": meta.classes[i], "probability": float(v)}
                for v, i in zip(vals.tolist(), idx.tolist())
            ],
        }
        for p, vals, idx in zip(images, top.values, top.indices)
    ]


def _image_tensor(path: str | Path, chans: int, height: int, width: int) -> torch.Tensor:
    from PIL import Image

    img = load_image(path, chans)
    if img.size != (width, height):
        img = img.resize((width, height), Image.BILINEAR)
    data = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
    return data.view(height, width, chans).permute(2, 0, 1)  # (C, H, W)


def ensemble_checkpoints(
    paths: Sequence[str | Path],
    split: str = "test",
    data_dir: str | None = None,
    batch_size: int = 1024,
    device: str = "auto",
) -> dict:
    """Each checkpoint's accuracy and that of their averaged softmax outputs (AlexNet's 7-CNN ensemble)."""
    if len(paths) < 2:
        raise ConfigError("an ensemble needs at least two checkpoints")
    dev = select_device(device)
    members, probs_sum, labels, first_meta = [], None, None, None
    for path in paths:
        model, ckpt = load_trained_model(path, dev)
        meta, cfg = ckpt.data, ckpt.config
        if meta.task != "classification":
            raise ConfigError(f"{path} holds a {meta.task} network; ensembles average classifiers' outputs")
        if first_meta is None:
            first_meta = meta
            source = load_eval_source(meta, split, batch_size, dev, cfg, data_dir)
        elif meta.classes != first_meta.classes or meta.dataset != first_meta.dataset:
            raise ConfigError(
                f"{path} was trained on other data than {paths[0]}; an ensemble needs the same classes"
            )
        logits, y = predict_logits(model, source, augment_from_meta(meta), tta_flip=cfg.tta_flip)
        labels = y if labels is None else labels
        probs = logits.softmax(1)
        probs_sum = probs if probs_sum is None else probs_sum + probs
        members.append(
            {
                "checkpoint": str(path),
                "model": cfg.model,
                "accuracy": float((probs.argmax(1) == labels).double().mean()),
            }
        )
    accuracy = float((probs_sum.argmax(1) == labels).double().mean())
    return {
        "split": split,
        "data": first_meta.dataset,
        "images": int(labels.numel()),
        "members": members,
        "ensemble_accuracy": accuracy,
    }
