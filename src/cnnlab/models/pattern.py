"""The notes' ConvNet layer pattern as a network you write down and build.

Source: the CS231n notes (Karpathy, "Convolutional Neural Networks for Visual Recognition", ConvNet
Architectures: Layer Patterns), as adapted in the course notes: "the most common ConvNet architecture
follows the pattern

    INPUT -> [[CONV -> RELU]*N -> POOL?]*M -> [FC -> RELU]*K -> FC

where the * indicates repetition, and the POOL? indicates an optional pooling layer", with the sizing
rules of the same notes: 3x3 (or 5x5) convolutions of stride 1 padded to keep the map size, and 2x2 max
pooling of stride 2 doing all the downsampling.

``pattern`` builds that network from a spec string that reads like the formula with numbers in it::

    [[conv3-32]*2 -> pool]*2 -> [fc-256]*1

- ``convK-C``: a KxK convolution with C output channels, stride 1, padding (K-1)/2, then ReLU (VGG's
  "conv3-64" notation, K odd);
- ``pool``: 2x2 max pooling, stride 2;
- ``fc-D``: a fully connected layer of D units, then ReLU;
- ``[ ... ]*N``: the part in brackets N times (N may be 0); ``*N`` also repeats a single layer;
- ``->`` separates layers. Optional, to copy the formula literally: a leading ``input``, ``relu``
  right after a conv or fc layer (the ReLU is there anyway), and a trailing bare ``fc`` (the classifier,
  always added: ``num_classes`` outputs).

FC layers come after every conv and pool. ``pattern_spec(n, m, k, ...)`` writes the spec of the formula's
N, M and K. Anatomy: no stem (an identity: the formula feeds the input straight to the first block),
one stage per pool (convolutions after the last pool form a last stage), and a head that flattens the
final map and runs the FC layers. The FC layers are sized for ``image_size`` (28 by default); other input
sizes are average-pooled to that final map first, as torchvision's VGG does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.models._base import FeatureInfo, ZooModel
from cnnlab.models._registry import register_model
from cnnlab.models.layers import ConvNormAct, LayerFactory, check_rate, classifier_layer, init_kaiming, make_act

__all__ = ["DEFAULT_SPEC", "LayerSpec", "PatternHead", "PatternNet", "parse_pattern", "pattern", "pattern_spec"]

SOURCE = ("CS231n notes (Karpathy) 2016, ConvNet layer patterns: INPUT -> [[CONV -> RELU]*N -> POOL?]*M -> "
          "[FC -> RELU]*K -> FC")
DEFAULT_SPEC = "[[conv3-32]*2 -> pool]*2 -> [fc-256]*1"
_GRAMMAR = ("write layers as convK-C (KxK conv, C channels), pool (2x2 max), fc-D (D units), joined by '->', "
            "with [ ... ]*N to repeat, e.g. '[[conv3-32]*2 -> pool]*2 -> [fc-256]*1'")
_TOKEN = re.compile(r"\s*(->|\[|\]|\*|\d+|[A-Za-z]+\d*(?:-\d+)?)")


@dataclass(frozen=True)
class LayerSpec:
    """One layer of a pattern: ``conv`` (kernel, width), ``pool`` or ``fc`` (width)."""

    kind: str  # "conv", "pool" or "fc"
    width: int = 0  # output channels (conv) or units (fc)
    kernel: int = 0  # conv kernel side


# --------------------------------------------------------------------------------------------------
# The spec string


def _tokens(spec: str) -> list[str]:
    tokens, pos = [], 0
    text = spec.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ConfigError(f"cannot read pattern {spec!r} at {text[pos:]!r}: {_GRAMMAR}")
        tokens.append(match.group(1))
        pos = match.end()
    return tokens


class _Parser:
    """Recursive descent over ``seq := item ('->' item)*``, ``item := ('[' seq ']' | WORD) ('*' INT)?``."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.tokens = _tokens(spec)
        self.pos = 0

    def fail(self, what: str) -> ConfigError:
        return ConfigError(f"pattern {self.spec!r}: {what}; {_GRAMMAR}")

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise self.fail("it ends too early")
        self.pos += 1
        return token

    def sequence(self) -> list[str]:
        words = self.item()
        while self.peek() == "->":
            self.take()
            words += self.item()
        return words

    def item(self) -> list[str]:
        token = self.take()
        if token == "[":
            words = self.sequence()
            if self.take() != "]":
                raise self.fail("a '[' is not closed")
        elif token in ("]", "*", "->") or token.isdigit():
            raise self.fail(f"{token!r} where a layer or '[' belongs")
        else:
            words = [token.lower()]
        if self.peek() == "*":
            self.take()
            count = self.take()
            if not count.isdigit():
                raise self.fail(f"'*' must be followed by a whole number, not {count!r}")
            words = words * int(count)
        return words

    def parse(self) -> list[str]:
        words = self.sequence()
        if self.peek() is not None:
            raise self.fail(f"unexpected {self.peek()!r}")
        return words


def _layer(word: str, spec: str) -> LayerSpec:
    if word == "pool":
        return LayerSpec("pool")
    if match := re.fullmatch(r"conv(\d+)-(\d+)", word):
        kernel, width = int(match.group(1)), int(match.group(2))
        if kernel % 2 == 0 or width < 1:
            raise ConfigError(f"pattern {spec!r}: {word} needs an odd kernel (padding (K-1)/2 keeps the map "
                              f"size) and at least one channel")
        return LayerSpec("conv", width, kernel)
    if match := re.fullmatch(r"fc-(\d+)", word):
        if int(match.group(1)) < 1:
            raise ConfigError(f"pattern {spec!r}: {word} needs at least one unit")
        return LayerSpec("fc", int(match.group(1)))
    raise ConfigError(f"pattern {spec!r}: unknown layer {word!r}; {_GRAMMAR}")


def parse_pattern(spec: str) -> tuple[LayerSpec, ...]:
    """The layers a pattern spec names, repetitions unrolled; raises ``ConfigError`` saying what to write."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"a pattern spec is a non-empty string; {_GRAMMAR}")
    words = _Parser(spec).parse()
    if words and words[0] == "input":
        words = words[1:]
    if words and words[-1] == "fc":  # the formula's final FC: the classifier, always there
        words = words[:-1]
    layers: list[LayerSpec] = []
    for i, word in enumerate(words):
        if word == "relu":
            if i == 0 or words[i - 1] == "relu" or not layers or layers[-1].kind == "pool":
                raise ConfigError(f"pattern {spec!r}: 'relu' may only follow a conv or fc layer (each has "
                                  f"its ReLU already)")
            continue
        layer = _layer(word, spec)
        if layer.kind != "fc" and any(earlier.kind == "fc" for earlier in layers):
            raise ConfigError(f"pattern {spec!r}: {word} comes after an fc layer; the pattern puts every "
                              f"conv and pool before the FC layers")
        layers.append(layer)
    return tuple(layers)


def pattern_spec(n: int, m: int, k: int, widths: Sequence[int], hidden: int = 256, kernel: int = 3,
                 pool: bool = True) -> str:
    """The spec of the formula with N convs per block, M blocks (widths[i] channels in block i), K FC layers."""
    if len(widths) != m:
        raise ConfigError(f"give one width per block: M = {m} blocks, got {len(widths)} widths")
    blocks = [f"[conv{kernel}-{w}]*{n}" + (" -> pool" if pool else "") for w in widths]
    parts = [f"[{block}]" for block in blocks] + ([f"[fc-{hidden}]*{k}"] if k else [])
    return " -> ".join(parts)


# --------------------------------------------------------------------------------------------------
# The network


class PatternHead(nn.Module):
    """Head: average pool to the final map of ``image_size`` -> flatten -> K x (fc, ReLU, dropout) -> fc."""

    def __init__(self, in_chs: int, grid: int, hidden: Sequence[int], num_classes: int, drop_rate: float = 0.0,
                 act_layer: LayerFactory = nn.ReLU) -> None:
        super().__init__()
        check_rate("drop_rate", drop_rate)
        self.pool = nn.AdaptiveAvgPool2d(grid)
        layers: list[nn.Module] = []
        features = in_chs * grid * grid
        for units in hidden:
            layers += [nn.Linear(features, units), make_act(act_layer)]
            if drop_rate > 0:
                layers.append(nn.Dropout(drop_rate))
            features = units
        self.hidden = nn.Sequential(*layers)
        self.in_features = features
        self.fc = classifier_layer(features, num_classes)

    def reset(self, num_classes: int) -> None:
        self.fc = classifier_layer(self.in_features, num_classes)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.hidden(torch.flatten(self.pool(x), 1))  # (B, last hidden width)
        return x if pre_logits else self.fc(x)


class PatternNet(ZooModel):
    """INPUT -> [[CONV -> RELU]*N -> POOL?]*M -> [FC -> RELU]*K -> FC, from a spec (see the module doc)."""

    def __init__(self, spec: str = DEFAULT_SPEC, num_classes: int = 10, in_chans: int = 1, image_size: int = 28,
                 drop_rate: float = 0.0, norm_layer: LayerFactory | None = None,
                 act_layer: LayerFactory = nn.ReLU) -> None:
        super().__init__(num_classes, in_chans)
        self.spec = spec
        layers = parse_pattern(spec)
        pools = sum(layer.kind == "pool" for layer in layers)
        grid = image_size // 2**pools
        if grid < 1:
            raise ConfigError(f"pattern {spec!r} pools {pools} times, so image_size must be at least "
                              f"{2 ** pools}, got {image_size}")
        self.min_input_size = 2**pools  # every 2x2 pool needs a map of 2 or more
        conv = partial(ConvNormAct, norm_layer=norm_layer, act_layer=act_layer)
        self.stem = nn.Identity()
        stages: list[nn.Module] = []
        current: list[nn.Module] = []
        self.feature_info = []
        chs, reduction = in_chans, 1
        for layer in layers:
            if layer.kind == "conv":
                current.append(conv(chs, layer.width, layer.kernel))  # stride 1, same padding
                chs = layer.width
            elif layer.kind == "pool":
                current.append(nn.MaxPool2d(2, stride=2))
                reduction *= 2
                stages.append(nn.Sequential(*current))
                self.feature_info.append(FeatureInfo(f"stages.{len(stages) - 1}", chs, reduction))
                current = []
        if current:  # convolutions after the last pool
            stages.append(nn.Sequential(*current))
            self.feature_info.append(FeatureInfo(f"stages.{len(stages) - 1}", chs, reduction))
        self.stages = nn.Sequential(*stages)
        hidden = [layer.width for layer in layers if layer.kind == "fc"]
        self.head = PatternHead(chs, grid, hidden, num_classes, drop_rate, act_layer)
        self.num_features = self.head.in_features
        init_kaiming(self, linear_std=None)


@register_model(family="pattern", input_size=(1, 28, 28), num_classes=10, min_size=4, paper=SOURCE)
def pattern(num_classes: int = 10, in_chans: int = 1, *, spec: str = DEFAULT_SPEC, image_size: int = 28,
            drop_rate: float = 0.0, norm_layer: LayerFactory | None = None,
            act_layer: LayerFactory = nn.ReLU) -> PatternNet:
    """The notes' layer pattern built from a spec string, e.g. '[[conv3-32]*2 -> pool]*2 -> [fc-256]*1'."""
    return PatternNet(spec, num_classes, in_chans, image_size, drop_rate, norm_layer, act_layer)
