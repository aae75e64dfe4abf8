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
from cnnlab.train.checkpoint import BestCheckpoint, RunCheckpoint, load_run_checkpoint
from cnnlab.train.config import RECIPES, TrainConfig
from cnnlab.train.console import eval_bar
from cnnlab.train.distributed import DistEnv, all_reduce_sum
from cnnlab.train.inputs import augment_from_meta, check_ten_crop, load_eval_source
from cnnlab.train.runtime import autocast, channels_last_for, precision_name, resolve_amp, select_device

__all__ = [
    "ensemble_checkpoints",
    "evaluate",
    "evaluate_checkpoint",
    "load_trained_model",
    "predict_files",
    "predict_logits",
    "run_weights",
    "topk_accuracy",
]


def _logits(model: nn.Module, x: torch.Tensor, tta_flip: bool) -> torch.Tensor:
    logits = split_outputs(model(x))[0].float()
    if tta_flip:
        # Average the probabilities of the image and its mirror image.
        probs = logits.softmax(1) + split_outputs(model(x.flip(3)))[0].float().softmax(1)
        return (probs / 2).log()
    return logits


def _batch_logits(
    model: nn.Module, augment: BatchAugment, x_u8: torch.Tensor, tta_flip: bool, ten_crop: bool
) -> torch.Tensor:
    """Logits of a uint8 batch; over ten crops, the log of the mean softmax (AlexNet's test, Sec. 4.1)."""
    if not ten_crop:
        return _logits(model, augment.eval(x_u8), tta_flip)
    probs = sum(split_outputs(model(view))[0].float().softmax(1) for view in augment.ten_crop(x_u8))
    return (probs / 10).log()


def topk_hits(logits: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """How many labels are among their row's ``k`` highest scores (every one when ``k`` >= the classes)."""
    k = min(k, logits.shape[1])
    return (logits.topk(k, dim=1).indices == labels[:, None]).any(dim=1).sum()


def topk_accuracy(scores: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    """The fraction of labels among their row's ``k`` highest scores (logits or probabilities)."""
    return float(topk_hits(scores, labels, k)) / max(labels.numel(), 1)


def _check_topk(topk: int) -> None:
    if topk < 1:
        raise ConfigError(f"topk must be at least 1, got {topk}")


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    source: BatchSource,
    augment: BatchAugment,
    amp_dtype: torch.dtype | None = None,
    tta_flip: bool = False,
    env: DistEnv | None = None,
    topk: int = 5,
    ten_crop: bool = False,
    progress: str | None = None,
    confusion: bool = False,
) -> dict:
    """Mean cross-entropy loss, accuracy and top-``topk`` accuracy (fractions) of ``model`` over ``source``.

    The top-k key is named by k (``top5_accuracy``); with k at least the number of classes it is 1.
    ``ten_crop`` averages the softmax over ``augment.ten_crop``'s ten views (mirror images included).
    ``progress`` names the pass on a progress bar (main process only); None shows none. With
    ``confusion``, the result also holds ``confusion``: counts of (true class, predicted class), a list of rows.
    """
    _check_topk(topk)
    env = env or DistEnv()
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    totals = torch.zeros(4, dtype=torch.float64, device=device)  # loss sum, correct, top-k correct, count
    pairs = None  # (true, predicted) counts, flattened
    with eval_bar(len(source), progress or "", progress is not None and env.is_main) as bar:
        for x_u8, y in source.batches(0):
            with autocast(device, amp_dtype):
                logits = _batch_logits(model, augment, x_u8, tta_flip, ten_crop)
            totals[0] += F.cross_entropy(logits, y, reduction="sum").double()
            totals[1] += (logits.argmax(1) == y).sum()
            totals[2] += topk_hits(logits, y, topk)
            totals[3] += y.numel()
            if confusion:
                k = logits.shape[1]
                counts = torch.bincount(y * k + logits.argmax(1), minlength=k * k)
                pairs = counts if pairs is None else pairs + counts
            bar.update()
    all_reduce_sum(totals, env)
    model.train(was_training)
    loss, correct, topk_correct, count = totals.tolist()
    result = {
        "loss": loss / max(count, 1),
        "accuracy": correct / max(count, 1),
        f"top{topk}_accuracy": topk_correct / max(count, 1),
        "count": int(count),
    }
    if confusion and pairs is not None:
        all_reduce_sum(pairs, env)
        k = int(round(pairs.numel() ** 0.5))
        result["confusion"] = pairs.view(k, k).tolist()
    return result


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


def run_weights(path: str | Path) -> Path:
    """The checkpoint file to use for ``path``: a file as given; in a run directory, best.pt when the run
    kept one (the weights its results.json reports), else last.pt."""
    path = Path(path)
    if path.is_dir():
        return path / "best.pt" if (path / "best.pt").is_file() else path / "last.pt"
    return path


def _weights_text(ckpt: RunCheckpoint) -> str:
    """Which weights a checkpoint holds, in words."""
    if isinstance(ckpt, BestCheckpoint):
        return f"best validation accuracy, after epoch {ckpt.epoch}"
    state = ckpt.state
    where = (f"epoch {state.epoch}" if state.step_in_epoch == 0
             else f"step {state.step_in_epoch} of epoch {state.epoch + 1}")
    return f"last weights, after {where}"


def _tta_source(cfg: TrainConfig, given: bool | None) -> str:
    """Where the mirror-TTA setting of an evaluation came from."""
    if given is not None:
        return "--tta-flip" if given else "--no-tta-flip"
    recipe = RECIPES.get(cfg.recipe or "", {})
    if recipe.get("tta_flip") == cfg.tta_flip:
        return f"as the run was trained: its {cfg.recipe} recipe"
    return "as the run was trained"


def evaluate_checkpoint(
    path: str | Path,
    split: str = "test",
    data_dir: str | None = None,
    batch_size: int = 1024,
    tta_flip: bool | None = None,
    device: str = "auto",
    topk: int = 5,
    ten_crop: bool = False,
    progress: bool = False,
) -> dict:
    """Loss, accuracy, top-``topk`` accuracy, confusion matrix and per-class accuracy of a checkpoint on its
    data set's test (or validation) split (segmentation: pixel accuracy, mIoU, Dice, per-class IoU); ``path``
    may be a run directory (see :func:`run_weights`).

    ``ten_crop`` tests on ten crops per image (four corners, centre, mirror images): image folders crop the
    model's input size out of the evaluation resize, tensor data the image zero-padded by the run's
    ``crop_padding``.
    """
    from cnnlab.train.tasks import task_for

    if split not in ("test", "val"):
        raise ConfigError(f"split must be 'test' or 'val', got {split!r}")
    _check_topk(topk)
    dev = select_device(device)
    path = run_weights(path)
    model, ckpt = load_trained_model(path, dev)
    cfg = ckpt.config
    augment = augment_from_meta(ckpt.data, crop_padding=cfg.crop_padding)
    if ten_crop and ckpt.data.kind == "tensor":
        check_ten_crop(ckpt.data.dataset, cfg.crop_padding)
    source = load_eval_source(ckpt.data, split, batch_size, dev, cfg, data_dir, ten_crop)
    flip = cfg.tta_flip if tta_flip is None else tta_flip
    # The run's precision and memory layout on this device, so that its results.json is reproduced exactly.
    try:
        amp_dtype, _ = resolve_amp(cfg.amp, dev)
    except ConfigError:  # a run trained in fp16 on CUDA, evaluated on a CPU (no fp16 autocast there)
        amp_dtype = None
    channels_last = channels_last_for(cfg.channels_last, dev)
    if channels_last:
        model.to(memory_format=torch.channels_last)
        augment = augment_from_meta(ckpt.data, channels_last, crop_padding=cfg.crop_padding)
    task = task_for(cfg, ckpt.data)
    result = task.evaluate(model, source, augment, amp_dtype, flip, topk=topk, ten_crop=ten_crop,
                           progress=split if progress else None, confusion=True)
    matrix = result.get("confusion", [])
    return {
        "checkpoint": str(path),
        "weights": _weights_text(ckpt),
        "model": cfg.model,
        "data": ckpt.data.dataset,
        "split": split,
        "tta_flip": flip and not ten_crop,
        "tta_source": _tta_source(cfg, tta_flip),
        "ten_crop": ten_crop,
        "topk": topk,
        "precision": precision_name(amp_dtype),
        **result,
        "classes": list(ckpt.data.classes),
        "per_class_accuracy": [row[i] / max(sum(row), 1) for i, row in enumerate(matrix)],
    }


def predict_files(
    path: str | Path, images: Sequence[str | Path], topk: int = 5, device: str = "auto", invert: bool = False
) -> list[dict]:
    """The ``topk`` classes and probabilities of each image file under a checkpoint's model.

    ``invert`` turns each image into its negative first (255 - pixel): a dark item photographed on white
    paper then looks like Fashion-MNIST's light items on black. Each result says whether the image had a
    ``light_background`` while the training images were dark on average, the case ``invert`` is for.
    """
    dev = select_device(device)
    model, ckpt = load_trained_model(run_weights(path), dev)
    meta = ckpt.data
    if meta.task != "classification":
        raise ConfigError(f"{path} holds a {meta.task} network ({ckpt.config.model}); label images with "
                          f"cnnlab.train.predict_segmentation (`cnnlab predict` does so by itself)")
    topk = min(topk, meta.num_classes)
    if topk < 1:
        raise ConfigError("topk must be at least 1")
    chans, height, width = meta.image_shape
    batch = torch.stack([_image_tensor(p, chans, height, width) for p in images])
    light = [_light_background(x) for x in batch]
    if invert:
        batch = 255 - batch
    augment = augment_from_meta(meta)
    with torch.inference_mode():
        probs = _logits(model, augment.eval(batch.to(dev)), ckpt.config.tta_flip).softmax(1)
    top = probs.topk(topk, dim=1)
    dark_data = max(meta.mean) < 0.5
    return [
        {
            "image": str(p),
            "top": [
                {"class": meta.classes[i], "probability": float(v)}
                for v, i in zip(vals.tolist(), idx.tolist())
            ],
            "inverted": invert,
            "light_background": is_light and dark_data,
        }
        for p, vals, idx, is_light in zip(images, top.values, top.indices, light)
    ]


def _light_background(image: torch.Tensor) -> bool:
    """Whether a uint8 (C, H, W) image's border, two pixels wide, is light on average (above mid-grey)."""
    h, w = image.shape[-2:]
    ring = torch.ones(h, w, dtype=torch.bool)
    ring[2 : h - 2, 2 : w - 2] = False
    return bool(image[:, ring].float().mean() > 127.5)


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
    topk: int = 5,
) -> dict:
    """Each checkpoint's accuracy (top-1 and top-``topk``) and that of their averaged softmax outputs.

    AlexNet's paper reports its ensembles this way (seven CNNs: top-5 error 18.2% -> 15.4%).
    """
    if len(paths) < 2:
        raise ConfigError("an ensemble needs at least two checkpoints")
    _check_topk(topk)
    dev = select_device(device)
    members, probs_sum, labels, first_meta = [], None, None, None
    for path in paths:
        model, ckpt = load_trained_model(run_weights(path), dev)
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
                f"top{topk}_accuracy": topk_accuracy(probs, labels, topk),
            }
        )
    accuracy = float((probs_sum.argmax(1) == labels).double().mean())
    return {
        "split": split,
        "data": first_meta.dataset,
        "images": int(labels.numel()),
        "topk": topk,
        "members": members,
        "ensemble_accuracy": accuracy,
        f"ensemble_top{topk}_accuracy": topk_accuracy(probs_sum, labels, topk),
    }
