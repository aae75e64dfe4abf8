"""Parameter, multiply-accumulate and FLOP counting without real compute (meta tensors).

MACs are the multiply-accumulates of convolutions (transposed too) and linear layers: the number
torchvision's weights metadata calls GFLOPS. FLOPs of those layers are 2 x MACs.

``op_macs`` and ``op_flops`` count one ATen operation from its arguments' shapes; the summary
(``cnnlab.analysis.summary``) calls them for every operation of a forward pass. The FLOP convention,
also written out in docs/counting.md:

- convolution, linear, matmul: 2 per MAC (a multiply and an add; with a bias, the n products of a dot
  product take n - 1 additions plus one for the bias, so exactly 2n);
- batch norm at inference: 2 per element (its statistics fold into one scale and one shift);
  normalization that computes statistics (layer, group, instance norm, batch norm in training): 6 per
  element (mean 1, subtract 1, square and accumulate 2, scale and shift 2);
- element-wise operations (activations, additions, multiplications, ...): 1 per output element,
  whatever the function (a sigmoid counts as much as a ReLU);
- pooling: 1 per element of each window (kernel area per output element); adaptive pooling: the exact
  number of window elements; reductions (mean, sum, max): 1 per input element;
- softmax and log-softmax: 3 per element (exp, sum, divide; the max subtracted for stability is free);
- interpolation: 2 per tap per output element (nearest: 0; bilinear: 4 taps; bicubic: 16 taps);
- data movement (views, copies, concatenation, padding, slicing, dropout at inference): 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.func import functional_call

__all__ = ["conv_params", "count_macs", "count_params", "meta_forward", "op_flops", "op_macs"]


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements (shared parameters counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def conv_params(in_chs: int, out_chs: int, kernel: int | tuple[int, int], groups: int = 1,
                bias: bool = True) -> int:
    """Parameters of a conv layer: C_out * (k_h * k_w * C_in / groups + 1)."""
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    return out_chs * (kh * kw * in_chs // groups + (1 if bias else 0))


def layer_macs(module: nn.Module, output: torch.Tensor) -> int:
    """MACs of one conv/linear call from its output shape; 0 for every other layer."""
    if isinstance(module, nn.modules.conv._ConvNd):
        per_out = module.weight.shape[1] * _prod(module.kernel_size)  # (C_in/groups) * k...
        if isinstance(module, nn.modules.conv._ConvTransposeNd):
            # every input element is scattered through C_out/groups * k... weights
            return 0  # counted by a forward hook on the input instead (see _transposed_macs)
        return output.numel() * per_out
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    if isinstance(module, nn.Bilinear):
        return output.numel() * module.in1_features * module.in2_features
    return 0


def _transposed_macs(module: nn.modules.conv._ConvTransposeNd, inp: torch.Tensor) -> int:
    out_per_group = module.out_channels // module.groups
    return inp.numel() * out_per_group * _prod(module.kernel_size)


def _prod(values) -> int:
    out = 1
    for v in values:
        out *= int(v)
    return out


@contextmanager
def _hooks(model: nn.Module, fn: Callable[[nn.Module, tuple, object], None]) -> Iterator[None]:
    handles = [m.register_forward_hook(fn) for m in model.modules()]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def meta_forward(model: nn.Module, x: torch.Tensor) -> object:
    """Run ``model`` on a meta input with meta copies of its parameters and buffers: shapes, no compute."""
    tensors = {name: torch.empty_like(t, device="meta") for name, t in model.named_parameters()}
    tensors.update({name: torch.empty_like(t, device="meta") for name, t in model.named_buffers()})
    with torch.no_grad():
        return functional_call(model, tensors, (x.to("meta"),), strict=False)


def count_macs(model: nn.Module, input_size: tuple[int, ...], batch_size: int = 1) -> int:
    """Conv + linear multiply-accumulates of one forward pass (eval mode) for ``batch_size`` inputs."""
    total = 0

    def hook(module: nn.Module, inputs: tuple, output: object) -> None:
        nonlocal total
        if isinstance(module, nn.modules.conv._ConvTransposeNd):
            total += _transposed_macs(module, inputs[0])
        elif isinstance(output, torch.Tensor):
            total += layer_macs(module, output)

    was_training = model.training
    model.eval()
    try:
        with _hooks(model, hook):
            meta_forward(model, torch.empty((batch_size, *input_size), device="meta"))
    finally:
        model.train(was_training)
    return total


# --------------------------------------------------------------------------------------------------
# Per-operation counts for a trace over ATen operations (torch.utils._python_dispatch).
# --------------------------------------------------------------------------------------------------

_aten = torch.ops.aten

_MATMUL_OPS = {_aten.mm, _aten.addmm, _aten.bmm, _aten.baddbmm}
_CONV_OPS = {_aten.convolution, _aten._convolution}
_BATCH_NORM_OPS = {_aten.native_batch_norm, _aten._native_batch_norm_legit,
                   _aten._native_batch_norm_legit_no_training, _aten.batch_norm, _aten.cudnn_batch_norm}
_STAT_NORM_OPS = {_aten.native_layer_norm, _aten.native_group_norm}
_SOFTMAX_OPS = {_aten._softmax, _aten._log_softmax, _aten.softmax, _aten.log_softmax}
_POOL_OPS = {_aten.max_pool1d_with_indices, _aten.max_pool2d_with_indices, _aten.max_pool3d_with_indices,
             _aten.max_pool1d, _aten.max_pool2d, _aten.max_pool3d, _aten.avg_pool1d, _aten.avg_pool2d,
             _aten.avg_pool3d}
_ADAPTIVE_POOL_OPS = {_aten._adaptive_avg_pool2d, _aten._adaptive_avg_pool3d, _aten.adaptive_max_pool1d,
                      _aten.adaptive_max_pool2d, _aten.adaptive_max_pool3d, _aten.adaptive_avg_pool1d}
_REDUCTION_OPS = {_aten.sum, _aten.mean, _aten.amax, _aten.amin, _aten.max, _aten.min, _aten.var,
                  _aten.std, _aten.logsumexp, _aten.norm, _aten.linalg_vector_norm, _aten.prod}
# Interpolation: taps read per axis and per output element.
_INTERPOLATION_TAPS = {
    _aten.upsample_nearest1d: 1, _aten.upsample_nearest2d: 1, _aten.upsample_nearest3d: 1,
    _aten._upsample_nearest_exact1d: 1, _aten._upsample_nearest_exact2d: 1,
    _aten._upsample_nearest_exact3d: 1,
    _aten.upsample_linear1d: 2, _aten.upsample_bilinear2d: 2, _aten.upsample_trilinear3d: 2,
    _aten.upsample_bicubic2d: 4,
}
# Element-wise operations that carry no pointwise tag in ATen.
_ELEMENTWISE_OPS = {_aten.hardswish, _aten.hardswish_, _aten.rsub, _aten._prelu_kernel, _aten.relu6,
                    _aten.hardtanh, _aten.hardtanh_, _aten.softplus, _aten.silu, _aten.silu_}
# Pointwise-tagged operations that only move data.
_COPY_OPS = {_aten.clone, _aten.copy, _aten.copy_, _aten._to_copy, _aten.lift_fresh_copy, _aten.fill,
             _aten.fill_, _aten.zero_, _aten.zeros_like, _aten.ones_like, _aten.full_like, _aten.empty_like}


def _numel(x) -> int:
    return x.numel() if isinstance(x, torch.Tensor) else 0


def _first_tensor(out) -> torch.Tensor | None:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, tuple | list):
        return next((o for o in out if isinstance(o, torch.Tensor)), None)
    return None


def _arg(func, args: tuple, kwargs: dict, name: str, default=None):
    """An argument of an ATen call by schema name, wherever it was passed."""
    if name in kwargs:
        return kwargs[name]
    for i, arg in enumerate(func._schema.arguments):
        if arg.name == name:
            return args[i] if i < len(args) else default
    return default


def op_macs(func, args: tuple, kwargs: dict, out) -> int:
    """Multiply-accumulates of one ATen operation: convolutions and matrix products; 0 for the rest."""
    packet = func.overloadpacket
    if packet in _CONV_OPS:
        x, weight = args[0], args[1]
        kernel = _prod(weight.shape[2:])
        if _arg(func, args, kwargs, "transposed", False):
            # every input element is scattered through C_out/groups * k... weights: (C_in, C_out/g, k...)
            return x.numel() * weight.shape[1] * kernel
        return _numel(_first_tensor(out)) * weight.shape[1] * kernel  # weight: (C_out, C_in/g, k...)
    if packet in _MATMUL_OPS:
        a, b = (args[1], args[2]) if packet in (_aten.addmm, _aten.baddbmm) else (args[0], args[1])
        return a.numel() * b.shape[-1]
    return 0


def op_flops(func, args: tuple, kwargs: dict, out) -> int | None:
    """FLOPs of one ATen operation under the convention above; ``None`` for an operation it does not cover."""
    packet = func.overloadpacket
    y = _first_tensor(out)
    if packet in _CONV_OPS or packet in _MATMUL_OPS:
        return 2 * op_macs(func, args, kwargs, out)
    if packet in _BATCH_NORM_OPS:
        return (6 if _arg(func, args, kwargs, "training", False) else 2) * _numel(y)
    if packet in _STAT_NORM_OPS:
        return 6 * _numel(y)
    if packet in _SOFTMAX_OPS:
        return 3 * _numel(y)
    if packet in _POOL_OPS:
        return _numel(y) * _prod(_as_list(args[1]))
    if packet in _ADAPTIVE_POOL_OPS:
        return _adaptive_window_elements(func, args[0], y)
    if packet in _INTERPOLATION_TAPS:
        taps = _INTERPOLATION_TAPS[packet]
        axes = y.dim() - 2
        return 0 if taps == 1 else 2 * taps**axes * _numel(y)
    if packet in _REDUCTION_OPS and func not in (_aten.max.other, _aten.min.other):
        return _numel(args[0])
    if packet in _COPY_OPS:
        return 0
    if torch.Tag.pointwise in func.tags or packet in _ELEMENTWISE_OPS:
        return _numel(y)
    if _is_data_movement(func, y):
        return 0
    return None


_MOVE_NAMES = {
    "cat", "stack", "t", "view", "_unsafe_view", "reshape", "_reshape_alias", "permute", "transpose",
    "expand", "squeeze", "unsqueeze", "flatten", "detach", "alias", "contiguous", "roll", "flip", "narrow",
    "chunk", "pixel_shuffle", "pixel_unshuffle", "channel_shuffle", "native_channel_shuffle", "gather",
    "scatter", "repeat", "tile", "unfold", "lift_fresh", "_local_scalar_dense", "dropout", "native_dropout",
    "bernoulli", "bernoulli_", "constant_pad_nd", "pad", "arange",
}
_MOVE_PREFIXES = ("empty", "zeros", "ones", "full", "new_", "split", "unbind", "index", "slice", "select",
                  "as_strided", "reflection_pad", "replication_pad")


def _is_data_movement(func, y: torch.Tensor | None) -> bool:
    # Views, concatenation, padding, slicing, creation and integer outputs compute nothing.
    name = func.overloadpacket.__name__
    return (y is None or not y.is_floating_point() or name in _MOVE_NAMES or name.startswith(_MOVE_PREFIXES))


def _as_list(value) -> list[int]:
    return [int(v) for v in value] if isinstance(value, list | tuple) else [int(value)]


def _adaptive_window_elements(func, x: torch.Tensor, y: torch.Tensor) -> int:
    # Adaptive pooling window i along an axis of n inputs and m outputs: [floor(i n/m), ceil((i+1) n/m)).
    axes = int(func.overloadpacket.__name__.rstrip("d")[-1])  # adaptive_max_pool2d -> 2
    total = _prod(y.shape[: y.dim() - axes])
    for n, m in zip(x.shape[x.dim() - axes:], y.shape[y.dim() - axes:]):
        total *= sum(-(-(i + 1) * n // m) - (i * n // m) for i in range(m))
    return total
