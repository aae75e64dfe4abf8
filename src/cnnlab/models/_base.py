"""The common anatomy of every zoo network: ``stem -> stages -> head``."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from cnnlab.errors import ConfigError, InputSizeError

__all__ = ["FeatureInfo", "InputTooSmallError", "ZooModel"]


class InputTooSmallError(InputSizeError):
    """An input smaller than the smallest image the network can take."""


@dataclass(frozen=True)
class FeatureInfo:
    """Channels and total stride of one stage's output, and the module that produces it."""

    module: str  # dotted module path, e.g. "stages.2"
    num_chs: int  # channels of the stage's output
    reduction: int  # input size / output size (total stride)

    def as_dict(self) -> dict:
        return asdict(self)


class ZooModel(nn.Module):
    """Base class: ``forward(x) = forward_head(forward_features(x))`` with stem -> stages -> head."""

    stem: nn.Module
    stages: nn.Module
    head: nn.Module
    num_classes: int
    in_chans: int
    num_features: int  # width of the vector (or map) the final classifier layer reads
    feature_info: list[FeatureInfo]
    min_input_size: int | None = None  # set by create_model from the registry; None skips the check
    model_name: str = ""

    def __init__(self, num_classes: int = 1000, in_chans: int = 3) -> None:
        super().__init__()
        if num_classes < 0 or in_chans < 1:
            raise ConfigError(f"num_classes must be >= 0 and in_chans >= 1, got {num_classes} and {in_chans}")
        self.num_classes = num_classes
        self.in_chans = in_chans

    def check_input(self, x: torch.Tensor) -> None:
        """Raise one clear error for an input of the wrong rank, channel count or too small a size."""
        if x.dim() != 4:
            raise InputSizeError(f"expected a batch of images (B, C, H, W), got shape {tuple(x.shape)}")
        if x.shape[1] != self.in_chans:
            raise InputSizeError(
                f"{self._label()} was built for {self.in_chans}-channel input but got {x.shape[1]} channels; "
                f"build it with in_chans={x.shape[1]}"
            )
        size = self.min_input_size
        if size is not None and min(x.shape[-2:]) < size:
            h, w = x.shape[-2:]
            raise InputTooSmallError(
                f"{self._label()} takes inputs of at least {size}x{size} pixels, got {h}x{w}; "
                f"resize or pad the images to {size}x{size} or more"
            )

    def _label(self) -> str:
        return self.model_name or type(self).__name__

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.stages(self.stem(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the final classifier layer; ``num_classes=0`` makes the model return features."""
        self.head.reset(num_classes)
        self.num_classes = num_classes
