"""LeCun, Bottou, Bengio & Haffner 1998, Gradient-based learning applied to document recognition (LeNet-5).

``lenet5`` is the network of Section II.B: C1 6@5x5, S2 subsampling, C3 16@5x5 reading the S2 maps of
Table I, S4 subsampling, C5 120@5x5 (a convolution: on a larger input it makes a larger map), F6 84
units, an output layer of 10 units. Every layer up to F6 squashes with f(a) = 1.7159 tanh(2a/3).
A subsampling unit adds its four inputs, multiplies the sum by a trainable coefficient, adds a trainable
bias and squashes (2 parameters per map). Weights start uniform in +-2.4 / fan-in (Appendix A).

The paper's output layer is 10 Euclidean RBF units with fixed +-1 parameter vectors; ``head="rbf"``
builds it (vectors drawn at random, one of the paper's own alternatives to its hand-drawn 7x12
bitmaps) and returns the negated distances as logits, so cross-entropy on them is the paper's MAP
criterion without its constant "rubbish class" term. The default ``head="linear"`` is the ordinary
linear output layer that softmax training expects.

The network reads a 32x32 field: smaller images are centred in it on a zero background, as the 28x28
MNIST digits were placed in the paper's 32x32 input, so 28x28 Fashion-MNIST goes through unchanged.

``lenet5_relu`` is the modern variant: ReLU, 2x2 max pooling, a fully connected C3, a linear output.

Anatomy: the stem is the field padding and C1; the stages end in the subsampling layers (S2; C3 + S4),
so the features are S4's 16 maps of 5x5; the head is C5, F6 and the output layer.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import ConfigError, InputSizeError
from cnnlab.models._base import FeatureInfo, ZooModel
from cnnlab.models._registry import Variant, register_variants
from cnnlab.models.layers import LayerFactory, check_choice, init_kaiming

__all__ = [
    "C3_TABLE",
    "FieldPad",
    "LeNet",
    "LeNetConfig",
    "LeNetHead",
    "RBFOutput",
    "ScaledTanh",
    "Subsampling",
    "TableConv",
    "VARIANTS",
]

FIELD = 32  # the paper's input field
PAPER = "LeCun et al. 1998, Gradient-based learning applied to document recognition"

# Table I of the paper: the S2 maps each of the 16 C3 maps reads (1,516 parameters instead of 2,416).
C3_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)

POOLS = ("subsample", "avg", "max")
HEADS = ("linear", "rbf")
INITS = ("lecun98", "kaiming")


class ScaledTanh(nn.Module):
    """The paper's squashing function f(a) = A tanh(S a) with A = 1.7159, S = 2/3 (so f(+-1) = +-1)."""

    def __init__(self, amplitude: float = 1.7159, slope: float = 2.0 / 3.0) -> None:
        super().__init__()
        self.amplitude = amplitude
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.amplitude * torch.tanh(self.slope * x)

    def extra_repr(self) -> str:
        return f"amplitude={self.amplitude}, slope={self.slope:.4f}"


ACTIVATIONS: dict[str, LayerFactory] = {
    "scaled_tanh": ScaledTanh,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "relu": nn.ReLU,
}


def resolve_act(act_layer: str | LayerFactory) -> LayerFactory:
    """An activation factory from a name in ``ACTIVATIONS`` or a factory passed through."""
    if callable(act_layer):
        return act_layer
    if act_layer not in ACTIVATIONS:
        names = ", ".join(ACTIVATIONS)
        raise ConfigError(f"act_layer must be one of {names} or a layer factory, got {act_layer!r}")
    return ACTIVATIONS[act_layer]


class FieldPad(nn.Module):
    """Centre an image smaller than the field on a zero background; larger images pass unchanged."""

    def __init__(self, size: int = FIELD) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dh = max(self.size - x.shape[-2], 0)
        dw = max(self.size - x.shape[-1], 0)
        if dh == 0 and dw == 0:
            return x
        return F.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))  # (B, C, >=size, >=size)

    def extra_repr(self) -> str:
        return f"size={self.size}"


class Subsampling(nn.Module):
    """S-layer: each 2x2 block summed, times a trainable coefficient, plus a trainable bias, per map."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.avg_pool2d(x, 2) * 4  # (B, C, H/2, W/2): the sum of each block
        return s * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"channels={self.weight.shape[0]}"


class TableConv(nn.Module):
    """Partially connected conv: output map i reads only the input maps listed in ``table[i]``."""

    def __init__(self, table: tuple[tuple[int, ...], ...], kernel_size: int = 5) -> None:
        super().__init__()
        self.table = table
        # One grouped conv per fan-in: the maps reading k inputs share a conv of groups=#maps over the
        # gathered input maps, so the parameter count is exactly the table's.
        fan_ins = sorted({len(row) for row in table})
        self.groups = [[i for i, row in enumerate(table) if len(row) == k] for k in fan_ins]
        self.sources = [[c for i in maps for c in table[i]] for maps in self.groups]
        self.convs = nn.ModuleList(
            nn.Conv2d(len(src), len(maps), kernel_size, groups=len(maps))
            for maps, src in zip(self.groups, self.sources)
        )
        order = [i for maps in self.groups for i in maps]
        self.inverse = [order.index(i) for i in range(len(table))]
        # Flat (out_map * in_maps + in_map) positions of the grouped convs' kernels in a dense kernel.
        in_maps = 1 + max(max(row) for row in table)
        self.in_maps = in_maps
        self.register_buffer("dense_index", torch.tensor(
            [i * in_maps + c for maps in self.groups for i in maps for c in table[i]]), persistent=False)

    def dense_weight(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The table as one dense kernel (absent connections are zero) and the bias in table order."""
        k = self.convs[0].kernel_size
        taps = torch.cat([conv.weight.reshape(-1, *k) for conv in self.convs])  # (#connections, kh, kw)
        dense = taps.new_zeros(len(self.table) * self.in_maps, *k).index_copy(0, self.dense_index, taps)
        bias = torch.cat([conv.bias for conv in self.convs])[self.inverse]
        return dense.view(len(self.table), self.in_maps, *k), bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "meta":
            # Counting (meta tensors) sees the sparse connections, i.e. the paper's multiply-adds.
            parts = [conv(x[:, src]) for conv, src in zip(self.convs, self.sources)]
            return torch.cat(parts, dim=1)[:, self.inverse]  # (B, len(table), H', W') in table order
        # Computing: one dense conv with zeros for absent connections gives the same numbers several
        # times faster than the small grouped convs on CPU.
        weight, bias = self.dense_weight()
        return F.conv2d(x, weight, bias)

    def extra_repr(self) -> str:
        return f"in_maps={1 + max(max(row) for row in self.table)}, out_maps={len(self.table)}"


class RBFOutput(nn.Module):
    """Euclidean RBF units y_i = sum_j (x_j - w_ij)^2 with fixed +-1 vectors w_i; returns -y as logits."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        # The paper keeps these vectors fixed, so they are a buffer: saved, never trained.
        self.register_buffer("centers", torch.randint(0, 2, (num_classes, in_features)).float() * 2 - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -(x.unsqueeze(1) - self.centers).pow(2).sum(-1)  # (B, num_classes)


class LeNetHead(nn.Module):
    """Head: C5 (5x5 conv, act) -> its 1x1 map flattened -> F6 (linear, act) -> output (linear or RBF)."""

    def __init__(self, in_chs: int, c5_chs: int, hidden: int, num_classes: int, act_layer: LayerFactory,
                 output: str = "linear") -> None:
        super().__init__()
        self.hidden = hidden
        self.output = output
        self.c5 = nn.Conv2d(in_chs, c5_chs, 5)
        self.act5 = act_layer()
        self.f6 = nn.Linear(c5_chs, hidden)
        self.act6 = act_layer()
        self.fc = self._output_layer(num_classes)

    def _output_layer(self, num_classes: int) -> nn.Module:
        if num_classes <= 0:
            return nn.Identity()
        if self.output == "rbf":
            return RBFOutput(self.hidden, num_classes)
        return nn.Linear(self.hidden, num_classes)

    def reset(self, num_classes: int) -> None:
        self.fc = self._output_layer(num_classes)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.act5(self.c5(x))  # (B, 120, 1, 1) from a 32x32 field
        if x.shape[-2:] != (1, 1):
            h, w = x.shape[-2:]
            raise InputSizeError(
                f"LeNet-5's F6 layer reads the 1x1 C5 map of a {FIELD}x{FIELD} field, got a {h}x{w} map; "
                f"resize the images to at most {FIELD}x{FIELD} (smaller ones are centred in the field)"
            )
        x = self.act6(self.f6(torch.flatten(x, 1)))  # (B, 84)
        return x if pre_logits else self.fc(x)


def _pool_layers(name: str, channels: int, pool: str, act: LayerFactory) -> list[tuple[str, nn.Module]]:
    if pool == "subsample":
        # the paper squashes the subsampled maps too
        return [(name, Subsampling(channels)), (f"act_{name}", act())]
    return [(name, nn.AvgPool2d(2) if pool == "avg" else nn.MaxPool2d(2))]


def init_lecun98(model: nn.Module) -> None:
    """Weights and biases uniform in +-2.4 / F, F the unit's fan-in (the paper's Appendix A)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_in = m.weight[0].numel()
        elif isinstance(m, nn.Linear):
            fan_in = m.in_features
        elif isinstance(m, Subsampling):
            fan_in = 4
        else:
            continue
        bound = 2.4 / fan_in
        nn.init.uniform_(m.weight, -bound, bound)
        nn.init.uniform_(m.bias, -bound, bound)


class LeNet(ZooModel):
    """LeNet-5: field pad + C1 (stem); S2, C3 + S4 (stages); C5 + F6 + output (head)."""

    def __init__(self, cfg: LeNetConfig, num_classes: int = 10, in_chans: int = 1) -> None:
        super().__init__(num_classes, in_chans)
        check_choice("pool", cfg.pool, POOLS)
        check_choice("head", cfg.head, HEADS)
        check_choice("init", cfg.init, INITS)
        act = resolve_act(cfg.act_layer)
        c1, c3, c5 = cfg.widths
        c3_conv = TableConv(C3_TABLE, 5) if cfg.c3_table else nn.Conv2d(c1, c3, 5)
        self.stem = nn.Sequential(OrderedDict([
            ("field", FieldPad(FIELD)),
            ("c1", nn.Conv2d(in_chans, c1, 5)),  # (B, 6, 28, 28)
            ("act1", act()),
        ]))
        # Like VGG's, each stage ends in its downsampling layer; C5 joins the classifier, so the features
        # are S4's 5x5 maps (a larger input makes them larger; the head then refuses it).
        self.stages = nn.Sequential(
            nn.Sequential(OrderedDict(_pool_layers("s2", c1, cfg.pool, act))),  # (B, 6, 14, 14)
            nn.Sequential(OrderedDict([
                ("c3", c3_conv),  # (B, 16, 10, 10)
                ("act3", act()),
                *_pool_layers("s4", c3, cfg.pool, act),  # (B, 16, 5, 5)
            ])),
        )
        self.feature_info = [FeatureInfo("stages.0", c1, 2), FeatureInfo("stages.1", c3, 4)]
        self.num_features = cfg.hidden
        self.head = LeNetHead(c3, c5, cfg.hidden, num_classes, act, cfg.head)
        if cfg.init == "lecun98":
            init_lecun98(self)
        else:
            init_kaiming(self, linear_std=None)


@dataclass(frozen=True)
class LeNetConfig:
    """A LeNet-5 variant."""

    act_layer: str | LayerFactory = "scaled_tanh"  # every activation up to F6 (ACTIVATIONS name or factory)
    pool: str = "subsample"  # "subsample" (the paper's trainable S-layers), "avg" or "max" (2x2, stride 2)
    c3_table: bool = True  # C3 reads the S2 maps of Table I (False: every C3 map reads all six)
    head: str = "linear"  # output layer: "linear" or the paper's Euclidean "rbf" units
    init: str = "lecun98"  # "lecun98" (uniform +-2.4/fan-in) or "kaiming" (He, for ReLU)
    widths: tuple[int, int, int] = (6, 16, 120)  # C1, C3, C5 maps
    hidden: int = 84  # F6 units


VARIANTS: dict[str, Variant] = {
    "lenet5": Variant(LeNetConfig(), "LeNet-5 as in 1998: scaled tanh, trainable subsampling, Table I C3 "
                                     "(act_layer \"tanh\"/\"sigmoid\" too)."),
    "lenet5_relu": Variant(LeNetConfig(act_layer="relu", pool="max", c3_table=False, head="linear", init="kaiming"),
                           "Modern LeNet-5: ReLU, 2x2 max pooling, fully connected C3, linear output."),
}

# Any image up to the 32x32 field is centred in it, so the smallest input is a single pixel.
register_variants(LeNet, VARIANTS, input_size=(1, 32, 32), min_size=1, num_classes=10, paper=PAPER)
