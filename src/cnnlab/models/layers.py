"""Building blocks shared by the model families: conv-norm-act, squeeze-excitation, drop-path, heads.

Also the checks every family applies to its options (rates, choices, widths), raising ``ConfigError``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import ConfigError

__all__ = [
    "ACT_LAYERS",
    "Branches",
    "ClassifierHead",
    "ConvNormAct",
    "DropPath",
    "LayerFactory",
    "MlpHead",
    "SqueezeExcite",
    "check_choice",
    "check_rate",
    "check_width",
    "classifier_layer",
    "conv_output_size",
    "drop_path",
    "init_kaiming",
    "make_act",
    "make_divisible",
    "make_drop_path",
    "norm_layers",
    "resolve_layer_names",
    "scale_width",
    "stochastic_depth_rates",
    "zero_norm_weight",
]

# A norm or activation layer factory: called with the channel count (norm) or nothing (activation).
LayerFactory = Callable[..., nn.Module]


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None,
                   round_limit: float = 0.9) -> int:
    """Round ``value`` to a multiple of ``divisor`` without going below ``round_limit`` of it."""
    min_value = min_value or divisor
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < round_limit * value:
        new += divisor
    return new


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1,
                     ceil_mode: bool = False) -> int:
    """Output length of a convolution or pooling: floor((n + 2p - d(k-1) - 1) / s) + 1."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (math.ceil(span / stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1  # PyTorch: the last window must start inside the input or its left padding
    return out


def check_rate(name: str, value: float) -> None:
    """Reject a dropout or drop-path probability outside [0, 1)."""
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"{name} must be in [0, 1), got {value}")


def check_choice(name: str, value: object, choices: Sequence) -> None:
    """Reject an option value that is not one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(repr(c) for c in choices)}; got {value!r}")


def scale_width(channels: int, width_mult: float) -> int:
    """``channels * width_mult`` rounded to the nearest integer, at least 1."""
    return max(1, round(channels * width_mult))


def check_width(width_mult: float, hidden: int | None = None) -> None:
    """Reject a non-positive width multiplier or classifier width."""
    if not width_mult > 0:
        raise ConfigError(f"width_mult must be positive (1.0 builds the standard widths), got {width_mult}")
    if hidden is not None and hidden < 1:
        raise ConfigError(f"hidden (the classifier's hidden width) must be at least 1, got {hidden}")


class ConvNormAct(nn.Sequential):
    """Conv2d -> norm -> activation (each of the last two optional); conv has a bias only without norm."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int | tuple[int, int] = 3,
        stride: int = 1,
        padding: int | tuple[int, int] | None = None,
        dilation: int = 1,
        groups: int = 1,
        bias: bool | None = None,
        norm_layer: LayerFactory | None = nn.BatchNorm2d,
        act_layer: LayerFactory | None = nn.ReLU,
    ) -> None:
        super().__init__()
        if padding is None:
            ks = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
            padding = tuple(dilation * (k - 1) // 2 for k in ks)
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding, dilation, groups,
                              bias=norm_layer is None if bias is None else bias)
        if norm_layer is not None:
            self.bn = norm_layer(out_chs)
        if act_layer is not None:
            self.act = make_act(act_layer)


# Layer names accepted wherever a builder takes norm_layer / act_layer (the CLI and config files pass text).
ACT_LAYERS: dict[str, LayerFactory] = {
    "relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "elu": nn.ELU, "gelu": nn.GELU, "silu": nn.SiLU,
    "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
}


def norm_layers() -> dict[str, LayerFactory | None]:
    """Norm names: PyTorch's batch norm, cnnlab.nn's from-scratch batch norm and (C, H, W) layer norm, none."""
    from cnnlab import nn as cnn

    return {"batchnorm": nn.BatchNorm2d, "scratch_batchnorm": cnn.BatchNorm2d, "layernorm": cnn.LayerNorm,
            "none": None}


def resolve_layer_names(kwargs: dict) -> dict:
    """Builder kwargs with known ``norm_layer`` / ``act_layer`` names replaced by layer factories.

    Unknown names pass through unchanged, so a family with names of its own (LeNet's "scaled_tanh")
    still sees them and reports anything it does not know.
    """
    out = dict(kwargs)
    norm, act = out.get("norm_layer"), out.get("act_layer")
    if isinstance(norm, str) and norm.lower() in norm_layers():
        out["norm_layer"] = norm_layers()[norm.lower()]
    if isinstance(act, str) and act.lower() in ACT_LAYERS:
        out["act_layer"] = ACT_LAYERS[act.lower()]
    return out


def make_act(act_layer: LayerFactory) -> nn.Module:
    """An activation module, in-place where the layer accepts it."""
    # ReLU-like layers are built in-place where they accept it: it halves activation memory.
    try:
        return act_layer(inplace=True)
    except TypeError:
        return act_layer()


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: global pool -> 1x1 conv (reduce) -> act -> 1x1 conv -> sigmoid gate."""

    def __init__(self, channels: int, rd_channels: int, act_layer: LayerFactory = nn.ReLU,
                 gate_layer: LayerFactory = nn.Sigmoid) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, rd_channels, 1)
        self.act = make_act(act_layer)
        self.fc2 = nn.Conv2d(rd_channels, channels, 1)
        self.gate = gate_layer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)  # (B, C, 1, 1)
        return x * self.gate(self.fc2(self.act(self.fc1(s))))


class Branches(nn.ModuleDict):
    """Parallel branches on one input, outputs concatenated along channels (an Inception module's frame)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.values()], dim=1)


def drop_path(x: torch.Tensor, drop_prob: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zero a whole residual branch per sample with probability ``drop_prob``."""
    if drop_prob == 0.0 or not training:
        return x
    keep = 1.0 - drop_prob
    mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
    return x * mask / keep


def stochastic_depth_rates(depths: Sequence[int], drop_path_rate: float) -> list[list[float]]:
    """Per-stage drop rates by Huang et al. 2016's linear decay rule: block l of L drops with l / L * rate.

    The paper decays the survival probability p_l = 1 - l / L * (1 - p_L) over the blocks l = 1 ... L of
    the whole network; ``drop_path_rate`` is the last block's 1 - p_L (the paper's p_L = 0.5 is 0.5), so
    the first block drops drop_path_rate / L.
    """
    check_rate("drop_path_rate", drop_path_rate)
    total = sum(depths)
    rates = [drop_path_rate * (i + 1) / total for i in range(total)]
    out, start = [], 0
    for depth in depths:
        out.append(rates[start:start + depth])
        start += depth
    return out


def make_drop_path(drop_prob: float) -> nn.Module:
    """A ``DropPath`` for a positive probability, else an identity (nothing to skip at evaluation)."""
    return DropPath(drop_prob) if drop_prob > 0 else nn.Identity()


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016) applied to a residual branch."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.drop_prob, self.training)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


class ClassifierHead(nn.Module):
    """Head: global average (or max) pool -> flatten -> dropout -> linear."""

    def __init__(self, in_features: int, num_classes: int, pool: str = "avg", drop_rate: float = 0.0) -> None:
        super().__init__()
        check_choice("pool", pool, ("avg", "max"))
        check_rate("drop_rate", drop_rate)
        self.pool_type = pool
        self.in_features = in_features
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.fc = classifier_layer(in_features, num_classes)

    def reset(self, num_classes: int) -> None:
        self.fc = classifier_layer(self.in_features, num_classes)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if x.dim() == 4:
            x = F.adaptive_avg_pool2d(x, 1) if self.pool_type == "avg" else F.adaptive_max_pool2d(x, 1)
            x = torch.flatten(x, 1)  # (B, C)
        x = self.drop(x)
        return x if pre_logits else self.fc(x)


class MlpHead(nn.Module):
    """Head (AlexNet, VGG): adaptive avg pool to a grid -> flatten -> 2 x (linear, act, dropout) -> linear."""

    def __init__(self, in_chs: int, num_classes: int, pool_size: int = 7, hidden: int = 4096,
                 drop_rate: float = 0.5, drop_first: bool = False, act_layer: LayerFactory = nn.ReLU) -> None:
        super().__init__()
        check_rate("drop_rate", drop_rate)
        self.hidden = hidden
        self.drop_first = drop_first
        self.pool = nn.AdaptiveAvgPool2d(pool_size)
        self.fc1 = nn.Linear(in_chs * pool_size * pool_size, hidden)
        self.act1 = make_act(act_layer)
        self.drop1 = nn.Dropout(drop_rate)
        self.fc2 = nn.Linear(hidden, hidden)
        self.act2 = make_act(act_layer)
        self.drop2 = nn.Dropout(drop_rate)
        self.fc = classifier_layer(hidden, num_classes)

    def reset(self, num_classes: int) -> None:
        self.fc = classifier_layer(self.hidden, num_classes)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.pool(x), 1)  # (B, C * pool_size**2)
        for fc, act, drop in ((self.fc1, self.act1, self.drop1), (self.fc2, self.act2, self.drop2)):
            # torchvision's AlexNet drops each hidden layer's input, its VGG each hidden layer's output
            x = act(fc(drop(x))) if self.drop_first else drop(act(fc(x)))
        return x if pre_logits else self.fc(x)


def classifier_layer(in_features: int, num_classes: int) -> nn.Module:
    """The final linear layer of a classifier; an identity for ``num_classes=0`` (the head returns features)."""
    return nn.Linear(in_features, num_classes) if num_classes > 0 else nn.Identity()


def init_kaiming(model: nn.Module, zero_bias: bool = True, linear_std: float | None = 0.01,
                 mode: str = "fan_out") -> None:
    """He (ReLU; fan-out unless ``mode="fan_in"``) init for convs, unit/zero for norms, N(0, linear_std) linears."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.kaiming_normal_(m.weight, mode=mode, nonlinearity="relu")
            if m.bias is not None and zero_bias:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm | nn.LayerNorm) or _is_norm(m):
            if getattr(m, "weight", None) is not None:
                nn.init.ones_(m.weight)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear_std is not None:
            nn.init.normal_(m.weight, 0.0, linear_std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def zero_norm_weight(norm: nn.Module | None) -> None:
    """Zero a norm layer's scale (if it has one), so the residual branch it closes starts at zero."""
    if getattr(norm, "weight", None) is not None:
        nn.init.zeros_(norm.weight)


def _is_norm(m: nn.Module) -> bool:
    # Injected norm layers (cnnlab.nn.BatchNorm2d and friends) mark themselves so init treats them alike.
    return getattr(m, "is_norm_layer", False)
