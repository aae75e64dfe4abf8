"""Small probe networks for the notes' experiments: a VGG-style stack and a GoogLeNet-style Inception stack.

The design questions the experiments ask need two networks that differ in one thing only:

- ``probe_vgg``: Simonyan & Zisserman 2015 (VGG), Sec. 2.3: "a stack of three 3x3 conv layers ... has a
  7x7 effective receptive field" with 3(3^2 C^2) instead of 7^2 C^2 weights. After a 3x3 conv and 2x2 pool
  stem, each stage is ``convs_per_stage`` conv-norm-ReLU layers of ``kernel_size`` followed by a 2x2 max
  pool, so three 3x3 layers and one 7x7 layer per stage see equally far (and two 3x3 layers and one 5x5);
  with equal ``widths`` the weights per stage are exactly the paper's 27 C^2 against 49 C^2. ``norm_layer``
  (batch norm, layer norm, none) serves the batch-norm experiments (Ioffe & Szegedy 2015).
- ``probe_inception``: Szegedy et al. 2015 (GoogLeNet), Sec. 4 and Fig. 2: the zoo's
  :class:`~cnnlab.models.googlenet.Inception` modules with the paper's 5x5 kernel, with the 1x1
  reductions before the 3x3 and 5x5 convolutions and after the pooling (Fig. 2b) or, with
  ``reductions=False`` (the same option as GoogLeNet's), the naive module (Fig. 2a), whose pooling branch
  passes every input channel on, so its width grows module by module.
  The branch widths are the paper's Table 1 rows inception (3a), (3b), (4a) divided by four.

Both are ``stem -> stages -> head`` with a global-average-pool classifier, for 28x28 grayscale input.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from functools import partial

from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.models._base import FeatureInfo, ZooModel
from cnnlab.models._registry import register_model
from cnnlab.models.googlenet import Inception, InceptionSpec
from cnnlab.models.layers import ClassifierHead, ConvNormAct, LayerFactory, init_kaiming

__all__ = ["INCEPTION_PROBE_SPECS", "ProbeInception", "ProbeVGG", "probe_inception", "probe_vgg"]


class ProbeVGG(ZooModel):
    """VGG-style probe: 3x3 conv + 2x2 pool stem; stages of N conv(k x k)-norm-ReLU + 2x2 max pool; GAP, linear."""

    def __init__(self, num_classes: int = 10, in_chans: int = 1, widths: Sequence[int] = (16, 32, 64),
                 convs_per_stage: int = 2, kernel_size: int = 3, drop_rate: float = 0.0,
                 norm_layer: LayerFactory | None = nn.BatchNorm2d, act_layer: LayerFactory = nn.ReLU) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if not widths or min(widths) < 1:
            raise ConfigError(f"widths must be one or more positive channel counts, got {widths}")
        if convs_per_stage < 1:
            raise ConfigError(f"convs_per_stage must be 1 or more, got {convs_per_stage}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ConfigError(f"kernel_size must be odd (padding (k-1)/2 keeps the map size), got {kernel_size}")
        self.num_classes, self.in_chans, self.num_features = num_classes, in_chans, widths[-1]
        self.min_input_size = 2 ** (len(widths) + 1)  # the stem and every stage halve the map
        conv = partial(ConvNormAct, norm_layer=norm_layer, act_layer=act_layer)
        self.stem = nn.Sequential(OrderedDict(
            conv=conv(in_chans, widths[0], 3),
            pool=nn.MaxPool2d(2),  # (B, w0, H / 2, W / 2)
        ))
        stages, chs = [], widths[0]
        self.feature_info = []
        for s, width in enumerate(widths):
            layers = []
            for _ in range(convs_per_stage):
                layers.append(conv(chs, width, kernel_size))  # the first conv of a stage changes the width
                chs = width
            layers.append(nn.MaxPool2d(2))  # (B, width, H / 2**(s+2), W / 2**(s+2))
            stages.append(nn.Sequential(*layers))
            self.feature_info.append(FeatureInfo(f"stages.{s}", width, 2 ** (s + 2)))
        self.stages = nn.Sequential(*stages)
        self.head = ClassifierHead(chs, num_classes, drop_rate=drop_rate)
        init_kaiming(self)


# GoogLeNet Table 1, rows inception (3a), (3b), (4a), every width divided by 4:
# #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj. Stage 0 holds 3a and 3b, stage 1 holds 4a.
INCEPTION_PROBE_SPECS: tuple[tuple[InceptionSpec, ...], ...] = (
    (InceptionSpec(16, 24, 32, 4, 8, 8), InceptionSpec(32, 32, 48, 8, 24, 16)),
    (InceptionSpec(48, 24, 52, 4, 12, 16),),
)


class ProbeInception(ZooModel):
    """Inception probe: 3x3 conv (32) + 2x2 pool stem; Inception (3a, 3b); pool; Inception (4a); GAP, linear."""

    def __init__(self, num_classes: int = 10, in_chans: int = 1, reductions: bool = True, width_mult: float = 1.0,
                 stem_chs: int = 32, drop_rate: float = 0.0, norm_layer: LayerFactory | None = nn.BatchNorm2d,
                 act_layer: LayerFactory = nn.ReLU) -> None:
        super().__init__()
        if width_mult <= 0:
            raise ConfigError(f"width_mult must be positive, got {width_mult}")
        self.num_classes, self.in_chans, self.reductions = num_classes, in_chans, reductions
        self.min_input_size = 4
        scale = partial(_scaled, mult=width_mult)
        self.stem = nn.Sequential(OrderedDict(
            conv=ConvNormAct(in_chans, scale(stem_chs), 3, norm_layer=norm_layer, act_layer=act_layer),
            pool=nn.MaxPool2d(2),  # (B, stem_chs, H / 2, W / 2)
        ))
        chs, stages = scale(stem_chs), []
        self.feature_info = []
        for s, specs in enumerate(INCEPTION_PROBE_SPECS):
            layers: list[nn.Module] = [nn.MaxPool2d(2)] if s > 0 else []
            for spec in specs:
                w = [scale(v) for v in (spec.ch1x1, spec.ch3x3red, spec.ch3x3, spec.ch5x5red, spec.ch5x5,
                                        spec.pool_proj)]
                module = Inception(chs, *w, kernel_5x5=5, norm_layer=norm_layer, act_layer=act_layer,
                                   reductions=reductions)
                layers.append(module)
                chs = module.out_chs
            stages.append(nn.Sequential(*layers))
            self.feature_info.append(FeatureInfo(f"stages.{s}", chs, 2 ** (s + 1)))
        self.stages = nn.Sequential(*stages)
        self.num_features = chs
        self.head = ClassifierHead(chs, num_classes, drop_rate=drop_rate)
        init_kaiming(self)


def _scaled(width: int, mult: float) -> int:
    return max(1, round(width * mult))


_register = partial(register_model, family="probes", input_size=(1, 28, 28), num_classes=10)


@_register(min_size=16, paper="Simonyan & Zisserman 2015, Very Deep Convolutional Networks for Large-Scale Image "
                             "Recognition (a small VGG-style stack)")
def probe_vgg(num_classes: int = 10, in_chans: int = 1, *, widths: Sequence[int] = (16, 32, 64),
              convs_per_stage: int = 2, kernel_size: int = 3, drop_rate: float = 0.0,
              norm_layer: LayerFactory | None = nn.BatchNorm2d, act_layer: LayerFactory = nn.ReLU) -> ProbeVGG:
    """VGG-style probe: stages of ``convs_per_stage`` conv(``kernel_size``)-norm-ReLU and a 2x2 max pool."""
    return ProbeVGG(num_classes, in_chans, widths, convs_per_stage, kernel_size, drop_rate, norm_layer, act_layer)


@_register(min_size=4, paper="Szegedy et al. 2015, Going Deeper with Convolutions (Inception modules, Fig. 2)")
def probe_inception(num_classes: int = 10, in_chans: int = 1, *, reductions: bool = True, width_mult: float = 1.0,
                    stem_chs: int = 32, drop_rate: float = 0.0, norm_layer: LayerFactory | None = nn.BatchNorm2d,
                    act_layer: LayerFactory = nn.ReLU) -> ProbeInception:
    """Inception probe: three modules with 1x1 reductions (Fig. 2b) or without them (Fig. 2a)."""
    return ProbeInception(num_classes, in_chans, reductions, width_mult, stem_chs, drop_rate, norm_layer,
                          act_layer)
