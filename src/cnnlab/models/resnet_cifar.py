"""He et al. 2016, Deep Residual Learning for Image Recognition (section 4.2, the CIFAR-10 ResNets).

ResNets for small (32x32) images, built from the blocks and the ``ResNet`` class of ``cnnlab.models.resnet``
with a one-conv stem (3x3, stride 1, no max-pool), so the stages see 32x32, 16x16, 8x8 ... maps:

- ``resnet20/32/44/56/110`` (6n + 2 layers): a 3x3 conv of 16 channels, three stages of n basic blocks with
  16, 32, 64 channels, global average pooling, a 10-way linear. Shortcuts are the paper's option A by default
  (parameter-free: strided subsampling and zero-padded channels); ``shortcut="B"`` uses 1x1 projections.
- ``plain20/32/44/56/110``: the same networks without shortcuts (``shortcut="none"``), the paper's "plain"
  baselines of section 4.2 and Li et al. 2018's "noshort" nets (Visualizing the Loss Landscape of Neural Nets).
  Option-A shortcuts have no parameters, so a plain net has exactly its ResNet's parameters and layers ("our
  residual models have exactly the same depth, width, and number of parameters as the plain counterparts").
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

from cnnlab.errors import ConfigError
from cnnlab.models._registry import Variant, register_variants
from cnnlab.models.resnet import ResNet, ResNetConfig

__all__ = ["VARIANTS", "cifar_resnet_config", "wide_resnet_config"]

PAPER = "He et al. 2016, Deep Residual Learning for Image Recognition"
_PREACT_PAPER = "He et al. 2016, Identity Mappings in Deep Residual Networks"
_WRN_PAPER = "Zagoruyko & Komodakis 2016, Wide Residual Networks"


# ----------------------------------------------------------------------------------------------- variants


def cifar_resnet_config(depth: int, shortcut: str = "A") -> ResNetConfig:
    """The ResNet paper's CIFAR network of ``depth`` = 6n + 2 layers (n basic blocks per stage); ``shortcut="none"``
    makes it the plain network of the same depth."""
    if depth < 8 or (depth - 2) % 6:
        raise ConfigError(f"a CIFAR ResNet has 6n + 2 layers (20, 32, 44, 56, 110, ...), got depth {depth}")
    n = (depth - 2) // 6
    return ResNetConfig("basic", (n, n, n), (16, 32, 64), stem_type="cifar", stem_width=16, shortcut=shortcut)


def wide_resnet_config(depth: int, widen_factor: int) -> ResNetConfig:
    """WRN-``depth``-``widen_factor``: depth = 6n + 4 layers, stage widths 16k, 32k, 64k."""
    if depth < 10 or (depth - 4) % 6:
        raise ConfigError(f"a Wide ResNet has 6n + 4 layers (10, 16, 22, 28, 40, ...), got depth {depth}")
    if widen_factor < 1:
        raise ConfigError(f"the widening factor k must be a positive integer, got {widen_factor}")
    n = (depth - 4) // 6
    return ResNetConfig("basic", (n, n, n), (16, 32, 64), stem_type="cifar", stem_width=16,
                        width_factor=widen_factor, preact=True)


def _wrn(depth: int, k: int, doc: str) -> Variant:
    return Variant(wide_resnet_config(depth, k), doc, entry={"paper": _WRN_PAPER})


def _plain(depth: int, params: str) -> Variant:
    n = (depth - 2) // 6
    return Variant(cifar_resnet_config(depth, shortcut="none"),
                   f"Plain-{depth}: ResNet-{depth}'s {depth - 1} convs (3 x {n} two-conv blocks at 16/32/64 channels) "
                   f"and linear without shortcuts ({params} parameters).")


VARIANTS: dict[str, Variant] = {
    "resnet20": Variant(cifar_resnet_config(20), "CIFAR ResNet-20: 3 x 3 basic blocks at 16/32/64 channels, "
                                                 "option-A shortcuts (0.27M parameters)."),
    "resnet32": Variant(cifar_resnet_config(32), "CIFAR ResNet-32: 3 x 5 basic blocks (0.46M parameters)."),
    "resnet44": Variant(cifar_resnet_config(44), "CIFAR ResNet-44: 3 x 7 basic blocks (0.66M parameters)."),
    "resnet56": Variant(cifar_resnet_config(56), "CIFAR ResNet-56: 3 x 9 basic blocks (853,018 parameters; "
                                                 "855,770 with shortcut='B')."),
    "resnet110": Variant(cifar_resnet_config(110), "CIFAR ResNet-110: 3 x 18 basic blocks (1.7M parameters)."),
    "plain20": _plain(20, "0.27M"),
    "plain32": _plain(32, "0.46M"),
    "plain44": _plain(44, "0.66M"),
    "plain56": _plain(56, "853,018"),
    "plain110": _plain(110, "1.7M"),
    "resnet18_cifar": Variant(ResNetConfig("basic", (2, 2, 2, 2), stem_type="cifar"), "ResNet-18 for 32x32 "
                              "images: 3x3 stride-1 stem without max-pool, projection shortcuts."),
    "preact_resnet18_cifar": Variant(ResNetConfig("basic", (2, 2, 2, 2), stem_type="cifar", preact=True),
                                     "Pre-activation ResNet-18 for 32x32 images: 3x3 stem, no max-pool, final "
                                     "BN-ReLU.", entry={"paper": _PREACT_PAPER}),
    "wrn16_4": _wrn(16, 4, "WRN-16-4: 3 x 2 pre-activation blocks at 64/128/256 channels."),
    "wrn16_8": _wrn(16, 8, "WRN-16-8: 3 x 2 pre-activation blocks at 128/256/512 channels."),
    "wrn28_2": _wrn(28, 2, "WRN-28-2: 3 x 4 pre-activation blocks at 32/64/128 channels (the semi-supervised "
                           "learning baseline)."),
    "wrn28_10": _wrn(28, 10, "WRN-28-10: 3 x 4 pre-activation blocks at 160/320/640 channels."),
    "wrn40_2": _wrn(40, 2, "WRN-40-2: 3 x 6 pre-activation blocks at 32/64/128 channels."),
    "wrn40_4": _wrn(40, 4, "WRN-40-4: 3 x 6 pre-activation blocks at 64/128/256 channels."),
}

register_variants(ResNet, VARIANTS, family="resnet_cifar", paper=PAPER, input_size=(3, 32, 32), num_classes=10,
                  min_size=1)
