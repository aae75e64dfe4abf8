"""He et al. 2016, Deep Residual Learning for Image Recognition (section 4.2, the CIFAR-10 ResNets).

ResNets for small (32x32) images, built from the blocks and the ``ResNet`` class of ``cnnlab.models.resnet``
with a one-conv stem (3x3, stride 1, no max-pool), so the stages see 32x32, 16x16, 8x8 ... maps:

- ``resnet20/32/44/56/110`` (6n + 2 layers): a 3x3 conv of 16 channels, three stages of n basic blocks with
  16, 32, 64 channels, global average pooling, a 10-way linear. Shortcuts are the paper's option A by default
  (parameter-free: strided subsampling and zero-padded channels); ``shortcut="B"`` uses 1x1 projections.
- ``resnet18_cifar`` and ``preact_resnet18_cifar``: ResNet-18 (64 ... 512 channels) on the one-conv stem, the
  widely used CIFAR form; the second with pre-activation blocks (He et al. 2016, Identity Mappings in Deep
  Residual Networks) and a final BN-ReLU before pooling.
- ``wrn{d}_{k}``: WRN-d-k (Zagoruyko & Komodakis 2016, Wide Residual Networks), pre-activation basic blocks
  with 16k, 32k, 64k channels, n = (d - 4) / 6 blocks per stage, 1x1 projections where the width changes and
  optional dropout between the two convs of each block (``block_drop_rate``; the paper uses 0.3).

Any option of ``ResNet`` / ``ResNetConfig`` can be passed to the builders (``shortcut``, ``drop_path_rate``,
``zero_init_residual``, ``norm_layer`` ...).
"""

from __future__ import annotations

from cnnlab.models._registry import register_model
from cnnlab.models.resnet import ResNet, ResNetConfig, create_resnet

__all__ = ["CIFAR_CFGS", "cifar_resnet_config", "wide_resnet_config"]

_RESNET_PAPER = "He et al. 2016, Deep Residual Learning for Image Recognition"
_PREACT_PAPER = "He et al. 2016, Identity Mappings in Deep Residual Networks"
_WRN_PAPER = "Zagoruyko & Komodakis 2016, Wide Residual Networks"
_CIFAR = {"input_size": (3, 32, 32), "num_classes": 10, "min_size": 1}


# ----------------------------------------------------------------------------------------------- variants


def cifar_resnet_config(depth: int, shortcut: str = "A") -> ResNetConfig:
    """The ResNet paper's CIFAR network of ``depth`` = 6n + 2 layers (n basic blocks per stage)."""
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"a CIFAR ResNet has 6n + 2 layers (20, 32, 44, 56, 110, ...), got depth {depth}")
    n = (depth - 2) // 6
    return ResNetConfig("basic", (n, n, n), (16, 32, 64), stem_type="cifar", stem_width=16, shortcut=shortcut)


def wide_resnet_config(depth: int, widen_factor: int) -> ResNetConfig:
    """WRN-``depth``-``widen_factor``: depth = 6n + 4 layers, stage widths 16k, 32k, 64k."""
    if depth < 10 or (depth - 4) % 6:
        raise ValueError(f"a Wide ResNet has 6n + 4 layers (10, 16, 22, 28, 40, ...), got depth {depth}")
    if widen_factor < 1:
        raise ValueError(f"the widening factor k must be a positive integer, got {widen_factor}")
    n = (depth - 4) // 6
    return ResNetConfig("basic", (n, n, n), (16, 32, 64), stem_type="cifar", stem_width=16,
                        width_factor=widen_factor, preact=True)


_RESNET18_CIFAR = ResNetConfig("basic", (2, 2, 2, 2), stem_type="cifar")
_WRN_VARIANTS = ((16, 4), (16, 8), (28, 2), (28, 10), (40, 2), (40, 4))

CIFAR_CFGS: dict[str, ResNetConfig] = {
    **{f"resnet{d}": cifar_resnet_config(d) for d in (20, 32, 44, 56, 110)},
    "resnet18_cifar": _RESNET18_CIFAR,
    "preact_resnet18_cifar": ResNetConfig("basic", (2, 2, 2, 2), stem_type="cifar", preact=True),
    **{f"wrn{d}_{k}": wide_resnet_config(d, k) for d, k in _WRN_VARIANTS},
}


def _build(name: str, num_classes: int, in_chans: int, kwargs: dict) -> ResNet:
    return create_resnet(CIFAR_CFGS[name], num_classes=num_classes, in_chans=in_chans, **kwargs)


# -------------------------------------------------------------------------------------- registered builders


@register_model(paper=_RESNET_PAPER, **_CIFAR)
def resnet20(num_classes: int = 10, in_chans: int = 3, **kwargs) -> ResNet:
    """CIFAR ResNet-20: 3 x 3 basic blocks at 16/32/64 channels, option-A shortcuts (0.27M parameters)."""
    return _build("resnet20", num_classes, in_chans, kwargs)


@register_model(paper=_RESNET_PAPER, **_CIFAR)
def resnet32(num_classes: int = 10, in_chans: int = 3, **kwargs) -> ResNet:
    """CIFAR ResNet-32: 3 x 5 basic blocks (0.46M parameters)."""
    return _build("resnet32", num_classes, in_chans, kwargs)


@register_model(paper=_RESNET_PAPER, **_CIFAR)
def resnet44(num_classes: int = 10, in_chans: int = 3, **kwargs) -> ResNet:
    """CIFAR ResNet-44: 3 x 7 basic blocks (0.66M parameters)."""
    return _build("resnet44", num_classes, in_chans, kwargs)


@register_model(paper=_RESNET_PAPER, **_CIFAR)
def resnet56(num_classes: int = 10, in_chans: int = 3, **kwargs) -> ResNet:
    """CIFAR ResNet-56: 3 x 9 basic blocks (853,018 parameters; 855,770 with shortcut='B')."""
    return _build("resnet56", num_classes, in_chans, kwargs)


@register_model(paper=_RESNET_PAPER, **_CIFAR)
def resnet110(num_classes: int = 10, in_chans: int = 3, **kwargs) -> ResNet:
    """CIFAR ResNet-110: 3 x 18 basic blocks (1.7M parameters)."""
    return _build("resnet110", num_classes, in_chans, kwargs)


@register_model(paper=_RESNET_PAPER, **_CIFAR)
def resnet18_cifar(num_classes: int = 10, in_chans: int = 3, **kwargs) -> ResNet:
    """ResNet-18 for 32x32 images: 3x3 stride-1 stem without max-pool, projection shortcuts."""
    return _build("resnet18_cifar", num_classes, in_chans, kwargs)


@register_model(paper=_PREACT_PAPER, **_CIFAR)
def preact_resnet18_cifar(num_classes: int = 10, in_chans: int = 3, **kwargs) -> ResNet:
    """Pre-activation ResNet-18 for 32x32 images: 3x3 stem, no max-pool, final BN-ReLU."""
    return _build("preact_resnet18_cifar", num_classes, in_chans, kwargs)


@register_model(paper=_WRN_PAPER, **_CIFAR)
def wrn16_4(num_classes: int = 10, in_chans: int = 3, **kwargs) -> ResNet:
    """WRN-16-4: 3 x 2 pre-activation blocks at 64/128/256 channels."""
    return _build("wrn16_4", num_classes, in_chans, kwargs)


@register_model(paper=_WRN_PAPER, **_CIFAR)
def wrn16_8(num_classes: int = 10, in_chans: int = 3, **kwargs) -> ResNet:
    """WRN-16-8: 3 x 2 pre-activation blocks at 128/256/512 channels."""
    return _build("wrn16_8", num_classes, in_chans, kwargs)


@register_model(paper=_WRN_PAPER, **_CIFAR)
def wrn28_2(num_classes: int = 10, in_chans: int = 3, **kwargs) -> ResNet:
    """WRN-28-2: 3 x 4 pre-activation blocks at 32/64/128 channels (the semi-supervised learning baseline)."""
    return _build("wrn28_2", num_classes, in_chans, kwargs)


@register_model(paper=_WRN_PAPER, **_CIFAR)
def wrn28_10(num_classes: int = 10, in_chans: int = 3, **kwargs) -> ResNet:
    """WRN-28-10: 3 x 4 pre-activation blocks at 160/320/640 channels."""
    return _build("wrn28_10", num_classes, in_chans, kwargs)


@register_model(paper=_WRN_PAPER, **_CIFAR)
def wrn40_2(num_classes: int = 10, in_chans: int = 3, **kwargs) -> ResNet:
    """WRN-40-2: 3 x 6 pre-activation blocks at 32/64/128 channels."""
    return _build("wrn40_2", num_classes, in_chans, kwargs)


@register_model(paper=_WRN_PAPER, **_CIFAR)
def wrn40_4(num_classes: int = 10, in_chans: int = 3, **kwargs) -> ResNet:
    """WRN-40-4: 3 x 6 pre-activation blocks at 64/128/256 channels."""
    return _build("wrn40_4", num_classes, in_chans, kwargs)
