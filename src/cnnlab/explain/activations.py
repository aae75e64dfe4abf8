"""What the units see: learned filters, activation maps, and the dataset patches a channel likes best.

- Filters: A. Krizhevsky, I. Sutskever, G. Hinton, "ImageNet Classification with Deep Convolutional Neural
  Networks", NeurIPS 2012, figure 3: the first layer's kernels shown as small images.
- Activation maps and maximally activating patches: M. Zeiler, R. Fergus, "Visualizing and Understanding
  Convolutional Networks", ECCV 2014 (arXiv:1311.2901), figure 2; R. Girshick, J. Donahue, T. Darrell,
  J. Malik, "Rich feature hierarchies for accurate object detection and semantic segmentation", CVPR 2014
  (arXiv:1311.2524), section 3.1 and figure 4: for one unit (a channel of a layer), the image regions of a
  data set that excite it most, each cut to the part of the image that unit sees.

The crop box of a unit is its exact receptive field from cnnlab's own analysis
(:func:`cnnlab.analysis.summary.layer_fields`), so padding, strides, dilation and pooling of any network are
accounted for; a box that reaches past the border is padded. Each image gives at most one patch per
channel (its strongest position), so the top k are k different images rather than k shifts of one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.explain._core import (
    batches_of,
    capture_output,
    check_images,
    chunks,
    explaining,
    find_layer,
    progress_bar,
)
from cnnlab.explain.guard import preserved

__all__ = ["TopPatches", "activations", "conv_filters", "crop_patches", "first_layer", "top_patches"]


def _first_conv(model: nn.Module) -> str:
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name
    raise ConfigError("the model has no Conv2d layer to show filters of; name a layer")


def conv_filters(model: nn.Module, layer: str | None = None) -> torch.Tensor:
    """(out, in / groups, kh, kw) kernels of ``layer`` (default: the first ``Conv2d``), a detached CPU copy."""
    module = find_layer(model, layer or _first_conv(model))
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() != 4:
        raise ConfigError(f"layer {layer!r} has no 2-D convolution kernels; name a Conv2d layer")
    return weight.detach().float().cpu().clone()


def first_layer(model: nn.Module) -> str:
    """The default layer for activation maps: the first stage of ``feature_info``, else the first conv."""
    info = getattr(model, "feature_info", None)
    return info[0].module if info else _first_conv(model)


def activations(model: nn.Module, images: torch.Tensor, layer: str | None = None,
                batch_size: int = 64) -> torch.Tensor:
    """(B, C, h, w): the output of ``layer`` (default: the first stage) for each image."""
    images = check_images(images)
    out = []
    with explaining(model), torch.no_grad():
        module = find_layer(model, layer or first_layer(model))
        for part in chunks(len(images), batch_size):
            with capture_output(module) as box:
                model(images[part])
            out.append(_spatial(box.get("value"), layer))
    return torch.cat(out)


def _spatial(value: object, layer: str | None) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.dim() != 4:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ConfigError(f"layer {layer!r} gave {shape}, not maps (B, C, H, W); name a convolutional layer")
    return value.detach()


@dataclass
class TopPatches:
    """The ``k`` strongest images of each of several channels of one layer, and where their unit looks."""

    layer: str
    channels: list[int]
    values: torch.Tensor  # (channels, k): the activation at the strongest unit (k: fewer if fewer images)
    image_index: torch.Tensor  # (channels, k): which image
    units: torch.Tensor  # (channels, k, 2): the (row, column) of that unit in the layer's map
    boxes: torch.Tensor  # (channels, k, 4): its receptive field, first and last input row, first and last column


def top_patches(model: nn.Module, images: torch.Tensor | Iterable[torch.Tensor], layer: str | None = None,
                channels: Sequence[int] | None = None, k: int = 9, batch_size: int = 256,
                progress: bool = False) -> TopPatches:
    """For each channel of ``layer`` (default: the first 8), the ``k`` images whose strongest unit is highest.

    ``images`` is a batch (N, C, H, W) of model input or an iterable of such batches (a data set streamed);
    image indices count through the batches in order.
    """
    from cnnlab.analysis.summary import layer_fields

    if k < 1:
        raise ConfigError(f"k must be at least 1, got {k}")
    name = layer or first_layer(model)
    values = index = units = None
    seen, shape, chosen = 0, None, []
    with explaining(model), torch.no_grad():
        module = find_layer(model, name)
        for batch in progress_bar(batches_of(images, batch_size), progress, "top patches"):
            with capture_output(module) as box:
                model(batch)
            acts = _spatial(box.get("value"), name)
            chosen = _channels(channels, acts.shape[1])
            best, where = acts[:, chosen].flatten(2).max(2)  # (b, c): each image's strongest unit
            w = acts.shape[-1]
            batch_units = torch.stack((where // w, where % w), -1)  # (b, c, 2)
            batch_index = torch.arange(seen, seen + len(batch), device=acts.device).view(-1, 1).expand_as(best)
            values, index, units = _merge(values, index, units, best.T, batch_index.T, batch_units.transpose(0, 1), k)
            seen, shape = seen + len(batch), tuple(batch.shape[1:])
    if values is None:
        raise ConfigError("no images to search for patches")
    with preserved(model):
        field = layer_fields(model, shape)[name]
    boxes = torch.tensor([[_box(field, u) for u in row] for row in units.tolist()], dtype=torch.long)
    return TopPatches(name, chosen, values.cpu(), index.cpu(), units.cpu(), boxes)


def _channels(channels: Sequence[int] | None, count: int) -> list[int]:
    chosen = list(range(min(8, count))) if channels is None else [int(c) for c in channels]
    bad = [c for c in chosen if not 0 <= c < count]
    if bad:
        raise ConfigError(f"channel {bad[0]} does not exist: the layer has {count} channels (0-{count - 1})")
    return chosen


def _merge(values, index, units, new_values, new_index, new_units, k):
    """Keep the ``k`` largest per channel of the old and the new candidates."""
    if values is not None:
        new_values = torch.cat((values, new_values), 1)
        new_index = torch.cat((index, new_index), 1)
        new_units = torch.cat((units, new_units), 1)
    top = new_values.topk(min(k, new_values.shape[1]), dim=1)
    pick = top.indices
    return top.values, new_index.gather(1, pick), new_units.gather(1, pick.unsqueeze(-1).expand(-1, -1, 2))


def _box(field, unit: Sequence[int]) -> list[int]:
    (top, bottom), (left, right) = field.unit_span(unit)
    return [top, bottom, left, right]


def crop_patches(images: torch.Tensor, patches: TopPatches, fill: float = 0.0) -> torch.Tensor:
    """(channels, k, C, h, w): each patch's receptive field cut from ``images``, padded with ``fill`` past the border.

    ``images`` are the pictures to cut from, aligned pixel for pixel with the model input (for instance the
    uint8 images before normalization). Boxes of one layer share one size except at the image border of
    networks with uneven padding; all are brought to the largest.
    """
    boxes = patches.boxes
    h = int((boxes[..., 1] - boxes[..., 0]).max()) + 1
    w = int((boxes[..., 3] - boxes[..., 2]).max()) + 1
    H, W = images.shape[-2:]
    rows = []
    for channel_boxes, channel_index in zip(boxes.tolist(), patches.image_index.tolist()):
        row = []
        for (top, _, left, _), i in zip(channel_boxes, channel_index):
            # Pad the one image by the part of the box that lies outside it, then cut the box.
            pad = (max(0, -left), max(0, left + w - W), max(0, -top), max(0, top + h - H))
            image = F.pad(images[i].float(), pad, value=fill)
            y, x = max(top, 0), max(left, 0)
            row.append(image[:, y : y + h, x : x + w])
        rows.append(torch.stack(row))
    return torch.stack(rows)
