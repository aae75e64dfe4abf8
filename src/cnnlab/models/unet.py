"""Ronneberger et al. 2015, U-Net: Convolutional Networks for Biomedical Image Segmentation (MICCAI 2015).

The contracting path repeats (double 3x3 conv -> 2x2 max pool) with widths 64, 128, 256, 512 and a
1024-wide bottom; the expanding path repeats (2x2 up-convolution halving the width -> concatenation with
the encoder map of the same resolution -> double 3x3 conv); a 1x1 conv maps the 64 channels to one score
per class and pixel.

Departures from the paper, each an option:

* Convolutions are padded ("same"), so the output has the input's size and any input whose sides are
  multiples of 2^depth (one 2x2 pooling per encoder stage) works. ``padding="valid"`` is the paper's
  network: unpadded convolutions shrink 572x572 to 388x388 and every skip map is cropped to the centre
  of the upsampled map ("copy and crop"). The parameter count does not depend on padding.
* ``norm_layer`` defaults to batch norm after every 3x3 conv (the convs then have no bias). The paper had
  no normalization: ``norm_layer="none"`` (``None`` works with ``UNet`` directly; ``create_model`` drops
  None values). Without norm the net trains only with the paper's care (He init, batch size 1 with
  high momentum); batch norm makes it train reliably at ordinary learning rates and batch sizes, as in
  the widely used PyTorch U-Nets.
* ``bilinear=True`` replaces the learned 2x2 transposed conv by bilinear upsampling and a 1x1 conv that
  halves the channels, which avoids checkerboard artifacts and keeps the paper's widths.
* ``width`` (64) and ``depth`` (4 poolings) size the network: ``width=16,depth=3`` is a compact U-Net for
  64x64 scenes. Stage widths are ``width * 2**i``; ``widths=(8, 16, 48, 96)`` lists them instead (stem
  first, one per encoder stage: depth is one less than their number), for design spaces that grow the
  channels other than by doubling.

``aux_logits=True`` adds deep supervision (Lee et al. 2015, Deeply-Supervised Nets, AISTATS 2015; the
auxiliary segmentation loss of Zhao et al. 2017, Pyramid Scene Parsing Network, CVPR 2017): in training the
network also returns the bottom map's scores (1x1 conv, upsampled bilinearly to the input, as FCN-32s
scores), and the trainer adds their loss at weight 0.4 (PSPNet's), giving the contracting path a direct
signal on which class each pixel shows. Evaluation and prediction use the main output only.

Two ablations for measuring what the expanding path and the skips contribute (benchmarks/segmentation.py):
``skips=False`` drops the concatenations (each decoder stage reads the upsampled map alone), and
``decoder=False`` drops the expanding path: a 1x1 conv scores the bottom map and the scores are upsampled
bilinearly to the input size, as FCN-32s does (Long et al. 2015, Fully Convolutional Networks for Semantic
Segmentation, CVPR 2015).

``in_chans`` defaults to 1 as in the paper (grayscale electron-microscopy and cell images, and cnnlab's
Fashion-MNIST-style data); pass ``in_chans=3`` for RGB. ``num_classes`` defaults to the paper's 2.
The standard counting input is 1x512x512, the size of the ISBI 2012 EM images the paper segments.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import ConfigError, InputSizeError
from cnnlab.models._base import FeatureInfo, ZooModel
from cnnlab.models._registry import Variant, register_variants
from cnnlab.models.layers import ConvNormAct, LayerFactory, check_choice, check_rate, init_kaiming

__all__ = [
    "VARIANTS",
    "DoubleConv",
    "DownStage",
    "SegmentationHead",
    "UNet",
    "UpStage",
    "center_crop",
    "valid_input_size",
    "valid_output_size",
]

PAPER = "Ronneberger et al. 2015, U-Net: Convolutional Networks for Biomedical Image Segmentation"
WIDTHS = (64, 128, 256, 512, 1024)
PADDINGS = ("same", "valid")
_NORMS = {"batchnorm": nn.BatchNorm2d, "none": None}


def resolve_norm(norm_layer: LayerFactory | str | None) -> LayerFactory | None:
    """A norm layer factory from a factory, None, or one of the names 'batchnorm' and 'none'."""
    if norm_layer is None or callable(norm_layer):
        return norm_layer
    if norm_layer not in _NORMS:
        raise ConfigError(
            f"norm_layer must be a layer factory, None or one of {sorted(_NORMS)}, got {norm_layer!r}")
    return _NORMS[norm_layer]


def valid_output_size(size: int, depth: int = 4) -> int | None:
    """Output side of the valid-convolution U-Net for an input side; None when the input does not fit.

    Each double 3x3 conv takes 4 pixels off a side; a 2x2 pool needs an even side; each up-convolution
    doubles. 572 gives 388 at depth 4 (the paper's Fig. 1).
    """
    for _ in range(depth):
        size -= 4
        if size <= 0 or size % 2:
            return None
        size //= 2
    size -= 4
    for _ in range(depth):
        if size <= 0:
            return None
        size = 2 * size - 4
    return size if size > 0 else None


def valid_input_size(at_least: int, depth: int = 4) -> int:
    """The smallest input side of at least ``at_least`` that the valid-convolution U-Net takes."""
    size = max(at_least, 1)
    while valid_output_size(size, depth) is None:
        size += 1
    return size


def stage_widths(width: int, depth: int, widths: Sequence[int] | None) -> list[int]:
    """The channels of the stem and each encoder stage: ``widths`` as given, else ``width * 2**i``."""
    if widths is None:
        return [int(width) * 2**i for i in range(int(depth) + 1)]
    chosen = [int(w) for w in widths] if all(int(w) == w for w in widths) else []
    if len(chosen) < 2 or min(chosen) < 1:
        raise ConfigError(f"widths must list at least two whole numbers of at least 1 (stem, then one per "
                          f"encoder stage), got {list(widths)}")
    return chosen


def center_crop(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The central ``height`` x ``width`` window of the last two dimensions (the paper's "crop")."""
    top, left = (x.shape[-2] - height) // 2, (x.shape[-1] - width) // 2
    return x[..., top : top + height, left : left + width]



class DoubleConv(nn.Sequential):
    """Double conv: 3x3 conv-[norm]-ReLU, 3x3 conv-[norm]-ReLU (padded, or valid: 4 pixels smaller)."""

    def __init__(self, in_chs: int, out_chs: int, norm_layer: LayerFactory | None,
                 act_layer: LayerFactory, padding: int = 1) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(in_chs, out_chs, 3, padding=padding, norm_layer=norm_layer, act_layer=act_layer)
        self.conv2 = ConvNormAct(out_chs, out_chs, 3, padding=padding, norm_layer=norm_layer, act_layer=act_layer)


class DownStage(nn.Sequential):
    """Encoder stage: 2x2 max pool (stride 2), double conv."""

    def __init__(self, in_chs: int, out_chs: int, norm_layer: LayerFactory | None, act_layer: LayerFactory,
                 drop_rate: float = 0.0, padding: int = 1) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        self.conv = DoubleConv(in_chs, out_chs, norm_layer, act_layer, padding)
        if drop_rate > 0:
            self.drop = nn.Dropout(drop_rate)


class UpStage(nn.Module):
    """Decoder stage: 2x2 up-conv (or bilinear x2 + 1x1 conv) halving width, [crop and concat skip], double conv."""

    def __init__(self, in_chs: int, out_chs: int, norm_layer: LayerFactory | None, act_layer: LayerFactory,
                 bilinear: bool = False, padding: int = 1, skip: bool = True) -> None:
        super().__init__()
        if bilinear:
            self.up: nn.Module = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(in_chs, out_chs, 1),
            )
        else:
            self.up = nn.ConvTranspose2d(in_chs, out_chs, 2, stride=2)
        self.skip = skip
        self.conv = DoubleConv(2 * out_chs if skip else out_chs, out_chs, norm_layer, act_layer, padding)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)  # (B, out, 2H, 2W)
        if not self.skip:
            return self.conv(x)
        skip = center_crop(skip, x.shape[-2], x.shape[-1])  # a no-op with padded convs
        return self.conv(torch.cat([skip, x], dim=1))  # (B, out, 2H, 2W) padded, 4 less valid


class SegmentationHead(nn.Module):
    """Head: 1x1 conv from the feature map to one score per class and pixel [, bilinear upsampling]."""

    def __init__(self, in_chs: int, num_classes: int, upsample: int = 1) -> None:
        super().__init__()
        self.in_chs = in_chs
        self.upsample = upsample
        self.fc = _conv1x1_or_identity(in_chs, num_classes)

    def reset(self, num_classes: int) -> None:
        self.fc = _conv1x1_or_identity(self.in_chs, num_classes)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if pre_logits:
            return x
        x = self.fc(x)
        if self.upsample > 1:
            x = F.interpolate(x, scale_factor=self.upsample, mode="bilinear", align_corners=False)
        return x


def _conv1x1_or_identity(in_chs: int, num_classes: int) -> nn.Module:
    return nn.Conv2d(in_chs, num_classes, 1) if num_classes > 0 else nn.Identity()


class UNet(ZooModel):
    """U-Net: double conv stem -> ``depth`` encoder stages (pool, double conv) -> as many decoder stages -> 1x1 conv."""

    def __init__(
        self,
        num_classes: int = 2,
        in_chans: int = 1,
        norm_layer: LayerFactory | str | None = "batchnorm",
        act_layer: LayerFactory = nn.ReLU,
        bilinear: bool = False,
        drop_rate: float = 0.0,
        width: int = WIDTHS[0],
        depth: int = len(WIDTHS) - 1,
        padding: str = "same",
        skips: bool = True,
        decoder: bool = True,
        widths: Sequence[int] | None = None,
        aux_logits: bool = False,
    ) -> None:
        super().__init__(num_classes, in_chans)
        check_rate("drop_rate", drop_rate)
        if int(width) != width or width < 1 or int(depth) != depth or depth < 1:
            raise ConfigError(f"width and depth must be whole numbers of at least 1, got width={width}, depth={depth}")
        check_choice("padding", padding, PADDINGS)
        if padding == "valid" and not decoder:
            raise ConfigError("decoder=False upsamples the bottom scores to the input size: it needs padding='same'")
        norm = resolve_norm(norm_layer)
        widths = stage_widths(width, depth, widths)
        depth = len(widths) - 1
        pad = 1 if padding == "same" else 0
        self.depth = int(depth)
        self.padding = padding
        self.divisor = 2**self.depth  # padded: sides must be multiples of this, one 2x2 pool per encoder stage
        self.stem = DoubleConv(in_chans, widths[0], norm, act_layer, pad)
        # Dropout at the end of the contracting path, where the paper puts it.
        self.stages = nn.Sequential(*(
            DownStage(c_in, c_out, norm, act_layer, drop_rate if i == self.depth - 1 else 0.0, pad)
            for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:]))
        ))
        self.decoder = nn.ModuleList(
            UpStage(c_in, c_out, norm, act_layer, bilinear, pad, skips)
            for c_in, c_out in zip(widths[:0:-1], widths[-2::-1])  # (1024, 512) ... (128, 64)
        ) if decoder else nn.ModuleList()
        self.num_features = widths[0] if decoder else widths[-1]
        self.head = SegmentationHead(self.num_features, num_classes, 1 if decoder else self.divisor)
        # Deep supervision: the bottom map scored and upsampled as FCN-32s does, a second loss in training only.
        if aux_logits and (not decoder or padding != "same"):
            raise ConfigError("aux_logits needs the decoder and padding='same' (its scores are upsampled to the "
                              "input size, as the main output)")
        self.aux_logits = bool(aux_logits)
        self.aux = self._aux_head(widths[-1], num_classes)
        self.feature_info = [FeatureInfo(f"stages.{i}", w, 2 ** (i + 1)) for i, w in enumerate(widths[1:])]
        self.min_input_size = self.divisor if padding == "same" else valid_input_size(1, self.depth)
        # The paper's init: Gaussian with std sqrt(2 / N), N = incoming connections of a unit (fan-in).
        init_kaiming(self, mode="fan_in")

    def output_size(self, size: int) -> int | None:
        """The output side for an input side (None when the network does not take it)."""
        if self.padding == "valid":
            return valid_output_size(size, self.depth)
        return size if size % self.divisor == 0 and size >= self.divisor else None

    def check_input(self, x: torch.Tensor) -> None:
        super().check_input(x)
        h, w = x.shape[-2:]
        if self.padding == "valid":
            if valid_output_size(h, self.depth) is None or valid_output_size(w, self.depth) is None:
                nh, nw = valid_input_size(h, self.depth), valid_input_size(w, self.depth)
                raise InputSizeError(
                    f"{self._label()} (valid convolutions, depth {self.depth}) cannot take {h}x{w}: every map "
                    f"before a 2x2 pool needs an even side; the next sizes it takes are {nh}x{nw}"
                )
            return
        if h % self.divisor or w % self.divisor:
            d = self.divisor
            raise InputSizeError(
                f"{self._label()} needs height and width divisible by {d} (one 2x2 pool per encoder stage), "
                f"got {h}x{w}; pad or resize to {-(-h // d) * d}x{-(-w // d) * d}"
            )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The map the 1x1 head reads: (B, width, H, W) with the decoder, else the bottom (B, C, H/2^d, W/2^d)."""
        return self._features(x)[0]

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the map the head reads, the bottom map of the contracting path)."""
        self.check_input(x)
        skips = [self.stem(x)]  # (B, 64, H, W)
        for stage in self.stages:
            skips.append(stage(skips[-1]))  # (B, 2C, H/2, W/2) per stage
        x = bottom = skips.pop()  # (B, 1024, H/16, W/16)
        for up in self.decoder:
            x = up(x, skips.pop())
        return x, bottom

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Scores per class and pixel; in training with ``aux_logits``, (scores, the bottom map's upsampled scores)."""
        if not (self.training and self.aux is not None):
            return self.forward_head(self.forward_features(x))
        features, bottom = self._features(x)
        return self.forward_head(features), self.aux(bottom)

    def reset_classifier(self, num_classes: int) -> None:
        super().reset_classifier(num_classes)
        self.aux = self._aux_head(self.feature_info[-1].num_chs, num_classes)

    def _aux_head(self, in_chs: int, num_classes: int) -> SegmentationHead | None:
        """The deep-supervision head, where asked for and the network returns scores (not features)."""
        return SegmentationHead(in_chs, num_classes, self.divisor) if self.aux_logits and num_classes > 0 else None


VARIANTS: dict[str, Variant] = {
    "unet": Variant(None, "U-Net (31M parameters), padded convs; ``norm_layer=\"none\"`` gives the paper's "
                          "network without norm."),
}

register_variants(UNet, VARIANTS, input_size=(1, 512, 512), min_size=16, num_classes=2, paper=PAPER,
                  task="segmentation")
