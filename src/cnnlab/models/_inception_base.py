"""What GoogLeNet (Szegedy et al. 2015) and the Inception networks (Szegedy et al. 2016, 2017) share.

Papers: "Going Deeper with Convolutions" (2015), "Rethinking the Inception Architecture for Computer
Vision" (2016) and "Inception-v4, Inception-ResNet and the Impact of Residual Connections on Learning"
(2017). All four networks are one frame: a stem, three stages ending at total strides 8, 16 and 32, and
a head (global average pool, dropout, linear), with Google's batch-norm epsilon, optional auxiliary
classifiers that run in training mode only, and an optional rescaling of ImageNet-normalised input to the
range Google's weights were trained on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial

import torch
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.models._base import FeatureInfo, ZooModel
from cnnlab.models.layers import ClassifierHead, ConvNormAct, LayerFactory, init_kaiming

__all__ = ["INCEPTION_NORM", "ConvFactory", "InceptionNet", "conv_factory", "to_inception_range"]

# Google's Inception weights were trained with batch-norm epsilon 1e-3 (torchvision's BasicConv2d keeps it).
INCEPTION_NORM = partial(nn.BatchNorm2d, eps=1e-3)

# A ConvNormAct with its norm and activation bound: conv(in_chs, out_chs, kernel, stride=1, padding=None).
ConvFactory = Callable[..., nn.Module]

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_STAGE_STRIDES = (8, 16, 32)


def conv_factory(norm_layer: LayerFactory | None, act_layer: LayerFactory) -> ConvFactory:
    """ConvNormAct with the network's norm and activation."""
    return partial(ConvNormAct, norm_layer=norm_layer, act_layer=act_layer)


def to_inception_range(x: torch.Tensor) -> torch.Tensor:
    """Turn ImageNet mean/std-normalised RGB into the (x - 0.5) / 0.5 scaling Google's weights expect."""
    scale = x.new_tensor([s / 0.5 for s in _IMAGENET_STD]).view(1, 3, 1, 1)
    shift = x.new_tensor([(m - 0.5) / 0.5 for m in _IMAGENET_MEAN]).view(1, 3, 1, 1)
    return x * scale + shift


class InceptionNet(ZooModel):
    """Inception frame: stem -> three stages (strides 8, 16, 32) -> pool, dropout, fc; aux heads in training.

    ``aux_taps`` maps the name of a stage's block to the auxiliary head (a child module with
    ``reset(num_classes)``) that reads its output.
    """

    aux_taps: Mapping[str, str] = {}
    transform_input: bool = False

    def _assemble(self, stem: nn.Module, stages: Sequence[nn.Module], stage_chs: Sequence[int], *,
                  drop_rate: float, transform_input: bool = False,
                  aux: Mapping[str, tuple[str, nn.Module]] | None = None) -> None:
        """Set the parts, in state_dict order: stem, stages, aux heads ({tap: (name, head)}), head; init."""
        if transform_input and self.in_chans != 3:
            raise ConfigError(f"transform_input re-normalises the three ImageNet RGB channels, "
                              f"so it needs in_chans=3, got {self.in_chans}")
        self.transform_input = transform_input
        self.stem = stem
        self.stages = nn.Sequential(*stages)
        self.feature_info = [FeatureInfo(f"stages.{i}", c, r) for i, (c, r) in enumerate(zip(stage_chs,
                                                                                           _STAGE_STRIDES))]
        self.num_features = stage_chs[-1]
        self.aux_taps = {}
        for tap, (head_name, head) in (aux or {}).items():
            self.add_module(head_name, head)
            self.aux_taps[tap] = head_name
        self.head = ClassifierHead(self.num_features, self.num_classes, drop_rate=drop_rate)
        init_kaiming(self)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return to_inception_range(x) if self.transform_input else x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(self._prepare(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """Logits; in training mode with auxiliary heads, the outputs tuple of the network (``_outputs``)."""
        if not (self.training and self.aux_taps):
            return self.forward_head(self.forward_features(x))
        x = self.stem(self._prepare(x))
        aux: dict[str, torch.Tensor] = {}
        for stage in self.stages:
            for name, block in stage.named_children():
                x = block(x)
                if name in self.aux_taps:
                    head_name = self.aux_taps[name]
                    aux[head_name] = getattr(self, head_name)(x)
        return self._outputs(self.forward_head(x), aux)

    def _outputs(self, logits: torch.Tensor, aux: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        return (logits, *aux.values())

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the main and auxiliary classifiers; ``num_classes=0`` makes them return features."""
        super().reset_classifier(num_classes)
        for head_name in self.aux_taps.values():
            getattr(self, head_name).reset(num_classes)
