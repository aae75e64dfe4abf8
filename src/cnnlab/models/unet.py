"""Ronneberger et al. 2015, U-Net: Convolutional Networks for Biomedical Image Segmentation (MICCAI 2015).

The contracting path repeats (double 3x3 conv -> 2x2 max pool) with widths 64, 128, 256, 512 and a
1024-wide bottom; the expanding path repeats (2x2 up-convolution halving the width -> concatenation with
the encoder map of the same resolution -> double 3x3 conv); a 1x1 conv maps the 64 channels to one score
per class and pixel.

Departures from the paper, each an option:

* Convolutions are padded ("same"), so the output has the input's size and any input whose sides are
  multiples of 16 (four 2x2 poolings) works; the paper's valid convolutions shrink 572x572 to 388x388
  and need the skip maps cropped. The parameter count does not depend on padding.
* ``norm_layer`` defaults to batch norm after every 3x3 conv (the convs then have no bias). The paper had
  no normalization: ``norm_layer="none"`` (``None`` works with ``UNet`` directly; ``create_model`` drops
  None values). Without norm the net trains only with the paper's care (He init, batch size 1 with
  high momentum); batch norm makes it train reliably at ordinary learning rates and batch sizes, as in
  the widely used PyTorch U-Nets.
* ``bilinear=True`` replaces the learned 2x2 transposed conv by bilinear upsampling and a 1x1 conv that
  halves the channels, which avoids checkerboard artifacts and keeps the paper's widths.

``in_chans`` defaults to 1 as in the paper (grayscale electron-microscopy and cell images, and cnnlab's
Fashion-MNIST-style data); pass ``in_chans=3`` for RGB. ``num_classes`` defaults to the paper's 2.
The standard counting input is 1x512x512, the size of the ISBI 2012 EM images the paper segments.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.errors import ConfigError, InputSizeError
from cnnlab.models._base import FeatureInfo, ZooModel
from cnnlab.models._registry import Variant, register_variants
from cnnlab.models.layers import ConvNormAct, LayerFactory, check_rate, init_kaiming

__all__ = ["VARIANTS", "DoubleConv", "DownStage", "SegmentationHead", "UNet", "UpStage"]

PAPER = "Ronneberger et al. 2015, U-Net: Convolutional Networks for Biomedical Image Segmentation"
WIDTHS = (64, 128, 256, 512, 1024)
_NORMS = {"batchnorm": nn.BatchNorm2d, "none": None}


def resolve_norm(norm_layer: LayerFactory | str | None) -> LayerFactory | None:
    """A norm layer factory from a factory, None, or one of the names 'batchnorm' and 'none'."""
    if norm_layer is None or callable(norm_layer):
        return norm_layer
    if norm_layer not in _NORMS:
        raise ConfigError(
            f"norm_layer must be a layer factory, None or one of {sorted(_NORMS)}, got {norm_layer!r}")
    return _NORMS[norm_layer]


class DoubleConv(nn.Sequential):
    """Double conv: 3x3 conv-[norm]-ReLU, 3x3 conv-[norm]-ReLU (padded, size-preserving)."""

    def __init__(self, in_chs: int, out_chs: int, norm_layer: LayerFactory | None,
                 act_layer: LayerFactory) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(in_chs, out_chs, 3, norm_layer=norm_layer, act_layer=act_layer)
        self.conv2 = ConvNormAct(out_chs, out_chs, 3, norm_layer=norm_layer, act_layer=act_layer)


class DownStage(nn.Sequential):
    """Encoder stage: 2x2 max pool (stride 2), double conv."""

    def __init__(self, in_chs: int, out_chs: int, norm_layer: LayerFactory | None, act_layer: LayerFactory,
                 drop_rate: float = 0.0) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        self.conv = DoubleConv(in_chs, out_chs, norm_layer, act_layer)
        if drop_rate > 0:
            self.drop = nn.Dropout(drop_rate)


class UpStage(nn.Module):
    """Decoder stage: 2x2 up-conv (or bilinear x2 + 1x1 conv) halving width, concat skip, double conv."""

    def __init__(self, in_chs: int, out_chs: int, norm_layer: LayerFactory | None, act_layer: LayerFactory,
                 bilinear: bool = False) -> None:
        super().__init__()
        if bilinear:
            self.up: nn.Module = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(in_chs, out_chs, 1),
            )
        else:
            self.up = nn.ConvTranspose2d(in_chs, out_chs, 2, stride=2)
        self.conv = DoubleConv(2 * out_chs, out_chs, norm_layer, act_layer)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)  # (B, out, 2H, 2W)
        return self.conv(torch.cat([skip, x], dim=1))  # (B, out, 2H, 2W)


class SegmentationHead(nn.Module):
    """Head: 1x1 conv from the feature map to one score per class and pixel."""

    def __init__(self, in_chs: int, num_classes: int) -> None:
        super().__init__()
        self.in_chs = in_chs
        self.fc = _conv1x1_or_identity(in_chs, num_classes)

    def reset(self, num_classes: int) -> None:
        self.fc = _conv1x1_or_identity(self.in_chs, num_classes)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return x if pre_logits else self.fc(x)


def _conv1x1_or_identity(in_chs: int, num_classes: int) -> nn.Module:
    return nn.Conv2d(in_chs, num_classes, 1) if num_classes > 0 else nn.Identity()


class UNet(ZooModel):
    """U-Net: double conv stem -> 4 encoder stages (pool, double conv) -> 4 decoder stages -> 1x1 conv."""

    divisor = 2 ** (len(WIDTHS) - 1)  # sides must be multiples of this: one 2x2 pool per encoder stage

    def __init__(
        self,
        num_classes: int = 2,
        in_chans: int = 1,
        norm_layer: LayerFactory | str | None = "batchnorm",
        act_layer: LayerFactory = nn.ReLU,
        bilinear: bool = False,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__(num_classes, in_chans)
        check_rate("drop_rate", drop_rate)
        norm = resolve_norm(norm_layer)
        self.stem = DoubleConv(in_chans, WIDTHS[0], norm, act_layer)
        # Dropout at the end of the contracting path, where the paper puts it.
        self.stages = nn.Sequential(*(
            DownStage(c_in, c_out, norm, act_layer, drop_rate if i == len(WIDTHS) - 2 else 0.0)
            for i, (c_in, c_out) in enumerate(zip(WIDTHS[:-1], WIDTHS[1:]))
        ))
        self.decoder = nn.ModuleList(
            UpStage(c_in, c_out, norm, act_layer, bilinear)
            for c_in, c_out in zip(WIDTHS[:0:-1], WIDTHS[-2::-1])  # (1024, 512) ... (128, 64)
        )
        self.num_features = WIDTHS[0]
        self.head = SegmentationHead(self.num_features, num_classes)
        self.feature_info = [FeatureInfo(f"stages.{i}", w, 2 ** (i + 1)) for i, w in enumerate(WIDTHS[1:])]
        self.min_input_size = self.divisor
        # The paper's init: Gaussian with std sqrt(2 / N), N = incoming connections of a unit (fan-in).
        init_kaiming(self, mode="fan_in")

    def check_input(self, x: torch.Tensor) -> None:
        super().check_input(x)
        h, w = x.shape[-2:]
        if h % self.divisor or w % self.divisor:
            d = self.divisor
            raise InputSizeError(
                f"{self._label()} needs height and width divisible by {d} (one 2x2 pool per encoder stage), "
                f"got {h}x{w}; pad or resize to {-(-h // d) * d}x{-(-w // d) * d}"
            )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The full-resolution 64-channel map the 1x1 head reads: (B, 64, H, W)."""
        self.check_input(x)
        skips = [self.stem(x)]  # (B, 64, H, W)
        for stage in self.stages:
            skips.append(stage(skips[-1]))  # (B, 2C, H/2, W/2) per stage
        x = skips.pop()  # (B, 1024, H/16, W/16)
        for up in self.decoder:
            x = up(x, skips.pop())
        return x


VARIANTS: dict[str, Variant] = {
    "unet": Variant(None, "U-Net (31M parameters), padded convs; ``norm_layer=\"none\"`` gives the paper's "
                          "network without norm."),
}

register_variants(UNet, VARIANTS, input_size=(1, 512, 512), min_size=16, num_classes=2, paper=PAPER,
                  task="segmentation")
