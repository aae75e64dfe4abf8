"""Segmentation networks after training: metrics over a whole split, and predictions drawn as overlays.

``evaluate_segmentation`` accumulates one confusion matrix over every batch of a split (summed over the
processes of a DDP run) and derives pixel accuracy, per-class and mean IoU and Dice from it
(``segmetrics``). ``predict_segmentation`` labels image files (or the first images of the run's test
split) and writes a palette PNG per image and a figure of colour overlays.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.data import BatchAugment, BatchSource, load_image
from cnnlab.data.segmentation import load_mask
from cnnlab.errors import ConfigError
from cnnlab.files import write_bytes_atomic
from cnnlab.models.unet import center_crop
from cnnlab.plots.segmentation import class_palette, segmentation_overlays
from cnnlab.train.build import split_outputs
from cnnlab.train.distributed import DistEnv, all_reduce_sum
from cnnlab.train.runtime import autocast
from cnnlab.train.segmetrics import confusion_matrix, segmentation_scores

__all__ = ["evaluate_segmentation", "predict_segmentation", "segmentation_logits"]

MAX_FIGURE_ROWS = 16  # images per overlay figure; more go to further figures


def segmentation_logits(model: nn.Module, x: torch.Tensor, tta_flip: bool = False) -> torch.Tensor:
    """(B, K, h, w) float scores; with ``tta_flip`` the log of the mean probabilities of x and its mirror."""
    logits = split_outputs(model(x))[0].float()
    if tta_flip:
        mirrored = split_outputs(model(x.flip(3)))[0].float().flip(3)  # flipped back onto x's pixels
        return ((logits.softmax(1) + mirrored.softmax(1)) / 2).log()
    return logits


def _fit_target(target: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    # A valid-convolution U-Net labels the centre of its input only.
    return center_crop(target, *logits.shape[-2:]) if target.shape[-2:] != logits.shape[-2:] else target


@torch.inference_mode()
def evaluate_segmentation(
    model: nn.Module,
    source: BatchSource,
    augment: BatchAugment,
    classes: Sequence[str],
    ignore_index: int = 255,
    amp_dtype: torch.dtype | None = None,
    tta_flip: bool = False,
    env: DistEnv | None = None,
) -> dict:
    """Per-pixel loss, pixel accuracy (``accuracy``), mIoU, Dice and per-class IoU of ``model`` over ``source``."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    k = len(classes)
    conf = torch.zeros(k * k, dtype=torch.int64, device=device)
    totals = torch.zeros(2, dtype=torch.float64, device=device)  # loss summed over counted pixels, images
    for x_u8, y in source.batches(0):
        with autocast(device, amp_dtype):
            logits = segmentation_logits(model, augment.eval(x_u8), tta_flip)
        target = _fit_target(y.long(), logits)
        totals[0] += F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="sum").double()
        totals[1] += len(y)
        conf += confusion_matrix(logits.argmax(1), target, k, ignore_index).view(-1)
    all_reduce_sum(conf, env or DistEnv())
    all_reduce_sum(totals, env or DistEnv())
    model.train(was_training)
    scores = segmentation_scores(conf.view(k, k))
    return {
        "loss": float(totals[0]) / max(scores.pixels, 1),
        "accuracy": scores.pixel_accuracy,
        "miou": scores.miou,
        "dice": scores.dice,
        "class_iou": dict(zip(classes, scores.class_iou)),
        "count": int(totals[1]),
        "pixels": scores.pixels,
    }


def _read_image(path: Path, chans: int, size: int) -> torch.Tensor:
    from PIL import Image

    img = load_image(path, chans).resize((size, size), Image.BILINEAR)
    data = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
    return data.view(size, size, chans).permute(2, 0, 1)  # (C, S, S)


def _mask_file(path: Path) -> Path | None:
    """The ground truth of an image in the folder layout (…/images/NAME.* beside …/masks/NAME.png), if any."""
    mask = path.parent.parent / "masks" / f"{path.stem}.png"
    return mask if path.parent.name == "images" and mask.is_file() else None


def _read_mask(path: Path | None, size: int) -> np.ndarray | None:
    from PIL import Image

    return None if path is None else np.asarray(Image.fromarray(load_mask(path)).resize((size, size), Image.NEAREST))


def _png(labels: np.ndarray, num_classes: int) -> bytes:
    """A palette PNG of a label map: its pixel values are the class indices, its colours VOC's."""
    from PIL import Image

    img = Image.fromarray(labels.astype(np.uint8))
    palette = np.zeros((256, 3), np.uint8)
    palette[:num_classes] = class_palette(num_classes)
    palette[255] = 255
    img.putpalette(palette.reshape(-1).tolist())
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _figure_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def predict_segmentation(
    path: str | Path,
    images: Sequence[str | Path] = (),
    out: str | Path = "predictions",
    split: str = "test",
    count: int = 8,
    data_dir: str | None = None,
    device: str = "auto",
) -> dict:
    """Label ``images`` (else the first ``count`` images of the run's ``split``) with a segmentation checkpoint.

    Writes ``out/masks/NAME.png`` (palette PNGs of class indices) and ``out/overlays.png`` (image, ground
    truth when known, prediction; ``overlays-2.png``... past 16 images); returns what it wrote and each
    image's share of pixels per class.
    """
    from cnnlab.train.evaluate import load_trained_model
    from cnnlab.train.inputs import augment_from_meta, load_eval_source
    from cnnlab.train.runtime import select_device

    dev = select_device(device)
    model, ckpt = load_trained_model(path, dev)
    meta, cfg = ckpt.data, ckpt.config
    if meta.task != "segmentation":
        raise ConfigError(f"{path} holds a classifier ({cfg.model}); overlays are for segmentation networks")
    chans, size = meta.image_shape[0], meta.input_size
    if images:
        files = [Path(p) for p in images]
        batch = torch.stack([_read_image(p, chans, size) for p in files]).to(dev)
        known = [_mask_file(p) for p in files]
        truths = [_read_mask(m, size) for m in known]
        names = [p.stem for p in files]
    else:
        if count < 1:
            raise ConfigError(f"count must be at least 1, got {count}")
        source = load_eval_source(meta, split, count, dev, cfg, data_dir)
        batch, labels = next(iter(source.batches(0)))
        truths = list(labels.cpu().numpy())
        names = [f"{split}-{i}" for i in range(len(batch))]
        known = [f"{split} split" for _ in names]
    with torch.inference_mode():
        logits = segmentation_logits(model, augment_from_meta(meta).eval(batch), cfg.tta_flip)
    predicted = logits.argmax(1).cpu()  # (B, h, w)
    h, w = predicted.shape[-2:]
    pictures = [center_crop(x, h, w).permute(1, 2, 0).numpy() for x in batch.cpu()]
    truths = [None if t is None else center_crop(torch.from_numpy(np.array(t)), h, w).numpy() for t in truths]
    out = Path(out)
    rows = []
    for name, labels, truth in zip(names, predicted.numpy(), known):
        mask_file = write_bytes_atomic(out / "masks" / f"{name}.png", _png(labels, meta.num_classes))
        shares = np.bincount(labels.reshape(-1), minlength=meta.num_classes) / labels.size
        rows.append({"image": name, "mask": str(mask_file), "ground_truth": None if truth is None else str(truth),
                     "classes": {c: float(s) for c, s in zip(meta.classes, shares) if s > 0}})
    figures = []
    for start in range(0, len(rows), MAX_FIGURE_ROWS):
        part = slice(start, start + MAX_FIGURE_ROWS)
        fig = segmentation_overlays(pictures[part], list(predicted.numpy()[part]), meta.classes, truths[part],
                                    names[part], cfg.ignore_index)
        suffix = "" if start == 0 else f"-{start // MAX_FIGURE_ROWS + 1}"
        figures.append(str(write_bytes_atomic(out / f"overlays{suffix}.png", _figure_bytes(fig))))
    return {"checkpoint": str(path), "model": cfg.model, "overlays": figures, "images": rows}
