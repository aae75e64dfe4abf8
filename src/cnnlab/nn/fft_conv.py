"""2-D convolution by FFT: pad, transform, multiply per frequency summing over channels, invert, crop.

``F.conv2d`` computes a cross-correlation, ``y[o] = sum_c x[c] * w[o, c]`` slid over the image. By the
convolution theorem a circular cross-correlation on an ``N x M`` grid is a product per frequency,
``irfft2(rfft2(x) * conj(rfft2(w)))``, and the channel sum is a small matrix product at each frequency.
When the grid is at least as large as the padded input, every output position whose window lies inside
the input never wraps around, so cropping those positions gives exactly the direct convolution. Stride
subsamples that full output; dilation spreads the kernel taps apart with zeros before the transform.
The route was proposed for CNNs by Mathieu, Henaff & LeCun, "Fast Training of Convolutional Networks
through FFTs" (ICLR 2014).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import ConfigError, InputSizeError

__all__ = ["FFTConv2d", "convert_convs", "fft_conv2d", "fft_size"]

IntPair = int | tuple[int, int] | Sequence[int]
Padding = IntPair | str


def fft_size(n: int) -> int:
    """Smallest integer >= n whose only prime factors are 2, 3 and 5: the lengths FFTs handle fastest."""
    if n < 1:
        raise ConfigError(f"an FFT length must be at least 1, got {n}")
    size = n
    while not _is_5_smooth(size):
        size += 1
    return size


def _is_5_smooth(n: int) -> bool:
    for p in (2, 3, 5):
        while n % p == 0:
            n //= p
    return n == 1


def _pair(value: IntPair, name: str, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints as ``(height, width)``, each at least ``minimum``."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) for v in pair) or min(pair) < minimum:
        raise ConfigError(f"{name} must be an int or a pair of ints, each at least {minimum}, got {value!r}")
    return pair  # type: ignore[return-value]


def _resolve_padding(padding: Padding, kernel: tuple[int, int], stride: tuple[int, int]) -> tuple[int, ...]:
    """Zero padding as ``F.pad`` takes it: (left, right, top, bottom)."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding != "same":
            raise ConfigError(f"padding must be an int, a pair of ints, 'same' or 'valid', got {padding!r}")
        if stride != (1, 1):
            raise ConfigError(f"padding='same' needs stride 1 (as in F.conv2d), got stride {stride}")
        (top, bottom), (left, right) = (_split_same(k) for k in kernel)
        return (left, right, top, bottom)
    ph, pw = _pair(padding, "padding", minimum=0)
    return (pw, pw, ph, ph)


def _split_same(kernel: int) -> tuple[int, int]:
    """Padding before and after that keeps the length: k - 1 in all, the odd pixel after (as PyTorch)."""
    total = kernel - 1
    return total // 2, total - total // 2


def _check_operands(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, groups: int) -> None:
    """One-sentence errors for the shape and dtype mismatches F.conv2d rejects."""
    if x.dim() != 4:
        raise InputSizeError(f"fft_conv2d expects input (B, C, H, W) or (C, H, W), got shape {tuple(x.shape)}")
    if weight.dim() != 4:
        raise InputSizeError(f"fft_conv2d expects weight (C_out, C_in / groups, kH, kW), got "
                         f"{tuple(weight.shape)}")
    if not x.is_floating_point() or x.dtype != weight.dtype:
        raise InputSizeError(f"input and weight must share one floating dtype, got {x.dtype} and {weight.dtype}")
    if not isinstance(groups, int) or groups < 1:
        raise ConfigError(f"groups must be a positive int, got {groups!r}")
    out_chs, in_per_group = weight.shape[:2]
    if x.shape[1] % groups or out_chs % groups:
        raise ConfigError(f"groups={groups} must divide both the input channels ({x.shape[1]}) and the output "
                         f"channels ({out_chs})")
    if x.shape[1] != in_per_group * groups:
        raise ConfigError(f"weight of shape {tuple(weight.shape)} with groups={groups} expects "
                         f"{in_per_group * groups} input channels, but the input has {x.shape[1]}")
    if bias is not None and tuple(bias.shape) != (out_chs,):
        raise ConfigError(f"bias must have shape ({out_chs},) to match the weight, got {tuple(bias.shape)}")


def _dilate(weight: torch.Tensor, dilation: tuple[int, int]) -> torch.Tensor:
    """The kernel with ``dilation - 1`` zeros between taps: (O, C, kH, kW) -> (O, C, d(kH-1)+1, d(kW-1)+1)."""
    if dilation == (1, 1):
        return weight
    dh, dw = dilation
    kh, kw = weight.shape[-2:]
    spread = weight.new_zeros(*weight.shape[:2], dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    spread[..., ::dh, ::dw] = weight
    return spread


def _correlate_circular(x: torch.Tensor, kernel: torch.Tensor, groups: int) -> torch.Tensor:
    """Circular cross-correlation on x's grid by rfft2: (B, C, N, M), (O, C / G, kH, kW) -> (B, O, N, M)."""
    b, _, n, m = x.shape
    out_chs, in_per_group = kernel.shape[:2]
    x_f = torch.fft.rfft2(x)  # (B, C, N, M // 2 + 1)
    k_f = torch.fft.rfft2(kernel, s=(n, m))  # (O, C / G, N, M // 2 + 1)
    x_f = x_f.reshape(b, groups, in_per_group, *x_f.shape[-2:])
    k_f = k_f.reshape(groups, out_chs // groups, in_per_group, *k_f.shape[-2:])
    # conj turns the transform's convolution into cross-correlation; the channel sum is per frequency.
    y_f = torch.einsum("bgchw,gochw->bgohw", x_f, k_f.conj()).reshape(b, out_chs, *x_f.shape[-2:])
    return torch.fft.irfft2(y_f, s=(n, m))


def fft_conv2d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    groups: int = 1,
) -> torch.Tensor:
    """``F.conv2d`` computed through the FFT, with the same arguments, output shape and gradients.

    Half-precision inputs are transformed in float32 (FFT round-off grows with the image size) and the
    result is cast back.
    """
    unbatched = input.dim() == 3
    x = input.unsqueeze(0) if unbatched else input
    _check_operands(x, weight, bias, groups)
    stride_hw = _pair(stride, "stride", minimum=1)
    kernel = _dilate(weight, _pair(dilation, "dilation", minimum=1))  # (O, C / G, kH', kW')
    kh, kw = kernel.shape[-2:]
    left, right, top, bottom = _resolve_padding(padding, (kh, kw), stride_hw)
    hp, wp = x.shape[-2] + top + bottom, x.shape[-1] + left + right
    if kh > hp or kw > wp:
        raise InputSizeError(f"the (dilated) kernel {(kh, kw)} is larger than the padded input {(hp, wp)}; "
                         "pad the input more or use a smaller kernel")
    # A grid as large as the padded input suffices: output (i, j) reads rows i .. i + kH - 1 < Hp, which
    # never wrap around; the grid grows to the next 5-smooth size, where FFTs are fastest.
    grid_h, grid_w = fft_size(hp), fft_size(wp)
    x = F.pad(x, (left, right + grid_w - wp, top, bottom + grid_h - hp))  # (B, C, N, M)
    compute_dtype = torch.promote_types(x.dtype, torch.float32)
    out = _correlate_circular(x.to(compute_dtype), kernel.to(compute_dtype), groups)  # (B, O, N, M)
    out = out[..., : hp - kh + 1 : stride_hw[0], : wp - kw + 1 : stride_hw[1]]  # (B, O, H_out, W_out)
    out = out.to(input.dtype)
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out.squeeze(0) if unbatched else out


class FFTConv2d(nn.Conv2d):
    """Conv2d computed by FFT: pad -> rfft2 -> per-frequency channel product -> irfft2 -> crop (-> stride)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        padding: Padding = 0,
        dilation: IntPair = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        if padding_mode != "zeros":
            raise ConfigError(f"FFTConv2d supports padding_mode='zeros' only, got {padding_mode!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device=device, dtype=dtype)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return fft_conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation,
                          self.groups)

    @classmethod
    def from_conv(cls, conv: nn.Conv2d) -> FFTConv2d:
        """An FFTConv2d with ``conv``'s configuration and train/eval mode, sharing its parameters (no copy).

        Sharing means an optimizer built on the original model keeps updating the converted one.
        """
        if not isinstance(conv, nn.Conv2d):
            raise TypeError(f"from_conv takes an nn.Conv2d, got {type(conv).__name__}")
        # Built on meta so no memory is allocated or initialized for weights that are replaced at once.
        new = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                  conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode, device="meta")
        new.weight = conv.weight
        new.bias = conv.bias
        return new.train(conv.training)


def convert_convs(model: nn.Module, min_kernel: int = 1) -> int:
    """Swap, in place, every plain ``nn.Conv2d`` whose kernel is at least ``min_kernel`` in both dimensions
    for an ``FFTConv2d`` sharing its parameters; returns how many convolutions were converted.

    Subclasses of ``nn.Conv2d`` (which may change the forward) are left alone; a convolution used at two
    places in the model stays one module after conversion.
    """
    if not isinstance(min_kernel, int) or min_kernel < 1:
        raise ConfigError(f"min_kernel must be a positive int, got {min_kernel!r}")
    if type(model) is nn.Conv2d:
        raise ConfigError("convert_convs swaps convolutions inside a model; use FFTConv2d.from_conv(conv) "
                         "on a single nn.Conv2d")
    targets = [(name, m) for name, m in model.named_modules(remove_duplicate=False)
               if type(m) is nn.Conv2d and min(m.kernel_size) >= min_kernel]
    for name, conv in targets:  # checked before any swap so a failure leaves the model untouched
        if conv.padding_mode != "zeros":
            raise ConfigError(f"{name} uses padding_mode={conv.padding_mode!r}; FFTConv2d supports zero "
                             "padding only (raise min_kernel past its kernel to skip it)")
    converted: dict[int, FFTConv2d] = {}
    for name, conv in targets:
        if id(conv) not in converted:
            converted[id(conv)] = FFTConv2d.from_conv(conv)
        parent_name, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent_name), attr, converted[id(conv)])
    return len(converted)
