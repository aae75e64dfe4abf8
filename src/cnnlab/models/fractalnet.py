"""Larsson, Maire & Shakhnarovich 2017, FractalNet: Ultra-Deep Neural Networks without Residuals (ICLR).

A fractal block is the truncated fractal of the expansion rule f_1(z) = conv(z),
f_{C+1}(z) = join(f_C(f_C(z)), conv(z)): C columns side by side, column k holding 2^k conv-BN-ReLU
layers (1, 2, 4, ...), so the deepest path of a block is 2^(C-1) layers deep. Wherever several columns
end at the same depth a join layer averages them (element-wise mean; joins at one depth are merged into
one, as in the paper's Figure 1 and the authors' Caffe generator), and the join's output feeds the next
layer of each of those columns. No shortcut passes a signal through untransformed.

The CIFAR network (Section 4): B = 5 blocks of 64, 128, 256, 512, 512 channels, each followed by 2x2
max pooling (32 -> 1), then the classifier. ``fractalnet20`` has C = 3 columns, 5 x 2^2 = 20 conv layers
on its deepest path (the authors' generator, gustavla/fractalnet generation/fractalnet.py: COLUMNS = 3,
FILTERS = [64, 128, 256, 512, 512]); ``columns=4`` builds the 40-layer version.

Drop-path (Section 3.1) regularizes the paths in training: *local* drop-path makes every join drop each
of its inputs with probability ``local_drop_rate`` (0.15), keeping at least one; *global* drop-path
keeps a single column, drawn at random, in every join of the whole network. Each image of a training
batch is global with probability ``global_drop_ratio`` (0.5, the paper's 50/50 mix), otherwise local.
The paper's dropout per block (0, 10, 20, 30, 40 %) follows each conv-BN-ReLU (``drop_rates``). At
evaluation every join averages all its inputs.

The paper's Table 1 lists 38.6M parameters for the 20-layer network; the layout above (Section 4's
widths, the authors' generator) has 33,724,618 at 10 classes, the count pytorchcv's port of it publishes
(osmr/imgclsmob fractalnet_cifar.py). docs/zoo.md derives it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.models._base import FeatureInfo, ZooModel
from cnnlab.models._registry import Variant, register_variants
from cnnlab.models.layers import ClassifierHead, ConvNormAct, LayerFactory, check_rate, init_kaiming

__all__ = ["VARIANTS", "FractalBlock", "FractalNet", "FractalNetConfig", "FractalStage", "join_masks"]

PAPER = "Larsson et al. 2017, FractalNet: Ultra-Deep Neural Networks without Residuals"


def join_masks(num_inputs: int, first_column: int, global_columns: torch.Tensor | None,
               local_drop_rate: float, batch: int, device: torch.device) -> torch.Tensor:
    """Which inputs of a join each image keeps: (num_inputs, batch) of 0/1, at least one 1 per image.

    The join's inputs are columns ``first_column``, ``first_column + 1``, ...; ``global_columns`` holds each
    image's global column (-1 for a local image). A global image keeps only its column where that column is
    an input (elsewhere the join's output is not on its path, and it keeps all inputs).
    """
    keep = (torch.rand(num_inputs, batch, device=device) >= local_drop_rate).float()
    # an image that dropped every input keeps one at random
    dead = keep.sum(0) == 0  # (batch,)
    rescue = F.one_hot(torch.randint(num_inputs, (batch,), device=device), num_inputs).T.float()
    keep = keep + rescue * dead.float()
    if global_columns is None:
        return keep
    here = global_columns >= first_column  # global images whose column takes part in this join
    chosen = F.one_hot((global_columns - first_column).clamp(min=0, max=num_inputs - 1), num_inputs).T.float()
    local = global_columns < 0
    return torch.where(local, keep, torch.where(here, chosen, torch.ones_like(keep)))


class FractalBlock(nn.Module):
    """Fractal block f_C: columns of 1, 2, 4, ... conv-BN-ReLU, joined by element-wise means at equal depth."""

    def __init__(self, in_chs: int, out_chs: int, columns: int, drop_rate: float = 0.0,
                 local_drop_rate: float = 0.15, norm_layer: LayerFactory | None = nn.BatchNorm2d,
                 act_layer: LayerFactory = nn.ReLU) -> None:
        super().__init__()
        self.num_columns = columns
        self.depth = 2 ** (columns - 1)
        self.local_drop_rate = local_drop_rate
        conv = partial(ConvNormAct, kernel_size=3, norm_layer=norm_layer, act_layer=act_layer)

        def layer(chs: int) -> nn.Module:
            return nn.Sequential(conv(chs, out_chs), nn.Dropout(drop_rate)) if drop_rate > 0 else conv(chs, out_chs)

        # column k: 2^k layers, the first reading the block's input
        self.columns = nn.ModuleList(
            nn.ModuleList(layer(in_chs if j == 0 else out_chs) for j in range(2**k)) for k in range(columns)
        )

    def ending_columns(self, level: int) -> range:
        """The columns whose current layer ends at ``level`` (1-based): the deepest ``C - k0`` ones."""
        first = next(k for k in range(self.num_columns) if level % 2 ** (self.num_columns - 1 - k) == 0)
        return range(first, self.num_columns)

    def forward(self, x: torch.Tensor, global_columns: torch.Tensor | None = None) -> torch.Tensor:
        inputs = [x] * self.num_columns  # what each column's next layer reads
        used = [0] * self.num_columns
        joined = x
        for level in range(1, self.depth + 1):
            ending = self.ending_columns(level)
            outs = []
            for k in ending:
                outs.append(self.columns[k][used[k]](inputs[k]))
                used[k] += 1
            joined = outs[0] if len(outs) == 1 else self.join(outs, ending.start, global_columns)
            for k in ending:
                inputs[k] = joined
        return joined

    def join(self, outs: list[torch.Tensor], first_column: int, global_columns: torch.Tensor | None) -> torch.Tensor:
        """Element-wise mean of the inputs, over the ones drop-path keeps in training."""
        stacked = torch.stack(outs)  # (n, B, C, H, W)
        if not self.training or (self.local_drop_rate == 0 and global_columns is None):
            return stacked.mean(0)
        keep = join_masks(len(outs), first_column, global_columns, self.local_drop_rate, stacked.shape[1],
                          stacked.device).to(stacked.dtype)[..., None, None, None]  # (n, B, 1, 1, 1)
        return (stacked * keep).sum(0) / keep.sum(0)


class FractalStage(nn.Module):
    """One stage: a fractal block, then 2x2 max pooling."""

    def __init__(self, block: FractalBlock) -> None:
        super().__init__()
        self.block = block
        self.pool = nn.MaxPool2d(2, stride=2)

    def forward(self, x: torch.Tensor, global_columns: torch.Tensor | None = None) -> torch.Tensor:
        return self.pool(self.block(x, global_columns))  # (B, width, H / 2, W / 2)


@dataclass(frozen=True)
class FractalNetConfig:
    """A FractalNet: block widths (one 2x2 max pool after each), columns, dropout and drop-path."""

    widths: tuple[int, ...] = (64, 128, 256, 512, 512)  # channels of each block (the paper's B = 5)
    columns: int = 3  # C: the deepest path of a block has 2^(C-1) conv layers
    drop_rates: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4)  # dropout after every conv of each block
    local_drop_rate: float = 0.15  # probability that a join drops each input (local drop-path)
    global_drop_ratio: float = 0.5  # share of training images on one random column (global drop-path)


def _check(cfg: FractalNetConfig) -> None:
    if cfg.columns < 1 or not cfg.widths or min(cfg.widths) < 1:
        raise ConfigError(f"columns must be 1 or more and widths positive, got columns={cfg.columns}, "
                          f"widths={cfg.widths}")
    if len(cfg.drop_rates) != len(cfg.widths):
        raise ConfigError(f"give one dropout rate per block: {len(cfg.widths)} widths, {len(cfg.drop_rates)} "
                          f"drop_rates")
    for rate in cfg.drop_rates:
        check_rate("drop_rates", rate)
    check_rate("local_drop_rate", cfg.local_drop_rate)
    if not 0.0 <= cfg.global_drop_ratio <= 1.0:
        raise ConfigError(f"global_drop_ratio must be in [0, 1], got {cfg.global_drop_ratio}")


class FractalNet(ZooModel):
    """FractalNet: no stem; B fractal blocks, each + 2x2 max pool (stages); global pool + linear (head)."""

    def __init__(self, cfg: FractalNetConfig, num_classes: int = 10, in_chans: int = 3,
                 norm_layer: LayerFactory | None = nn.BatchNorm2d, act_layer: LayerFactory = nn.ReLU) -> None:
        super().__init__(num_classes, in_chans)
        _check(cfg)
        self.cfg = cfg
        self.min_input_size = 2 ** len(cfg.widths)  # every block halves the map
        self.stem = nn.Identity()
        stages, chs = [], in_chans
        self.feature_info = []
        for b, (width, rate) in enumerate(zip(cfg.widths, cfg.drop_rates)):
            block = FractalBlock(chs, width, cfg.columns, rate, cfg.local_drop_rate, norm_layer, act_layer)
            stages.append(FractalStage(block))
            self.feature_info.append(FeatureInfo(f"stages.{b}", width, 2 ** (b + 1)))
            chs = width
        self.stages = nn.ModuleList(stages)  # a list: each stage also takes the images' global columns
        self.num_features = chs
        self.head = ClassifierHead(chs, num_classes)
        init_kaiming(self)

    def sample_global_columns(self, batch: int, device: torch.device) -> torch.Tensor | None:
        """Each training image's global column (-1: local drop-path); None outside training."""
        if not self.training or self.cfg.global_drop_ratio == 0:
            return None
        is_global = torch.rand(batch, device=device) < self.cfg.global_drop_ratio
        columns = torch.randint(self.cfg.columns, (batch,), device=device)
        return torch.where(is_global, columns, torch.full_like(columns, -1))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        x = self.stem(x)
        global_columns = self.sample_global_columns(x.shape[0], x.device)  # one column for the whole net
        for stage in self.stages:
            x = stage(x, global_columns)
        return x


VARIANTS: dict[str, Variant] = {
    "fractalnet20": Variant(FractalNetConfig(), "FractalNet for CIFAR: 5 blocks of 3 columns (20 layers deep), "
                                                "64-128-256-512-512, drop-path and dropout."),
}

# 32 is the smallest side the five 2x2 pools leave a map of (32 -> 1).
register_variants(FractalNet, VARIANTS, paper=PAPER, input_size=(3, 32, 32), num_classes=10, min_size=32)
