"""The ATen operations the analysis recognizes, how to read their arguments, and a fast meta executor.

Counting (``cnnlab.analysis.counting``), receptive fields (``cnnlab.analysis.field_trace``) and the summary
(``cnnlab.analysis.summary``) all look at the operations of one forward pass through
``torch.utils._python_dispatch``; this module is the one catalogue they share.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = [
    "ADAPTIVE_POOLS",
    "AVG_POOLS",
    "BATCH_NORMS",
    "CONVOLUTIONS",
    "COPIES",
    "ELEMENTWISE",
    "INTERPOLATION_TAPS",
    "MATMULS",
    "MAX_POOLS",
    "PADS",
    "REDUCTIONS",
    "SOFTMAXES",
    "STAT_NORMS",
    "ShapeCache",
    "arg",
    "first_tensor",
    "ints",
    "is_data_movement",
    "numel",
    "op_name",
    "plain_attention",
    "prod",
    "tensor_args",
]

_aten = torch.ops.aten

CONVOLUTIONS = {_aten.convolution, _aten._convolution}
MATMULS = {_aten.mm, _aten.addmm, _aten.bmm, _aten.baddbmm}
BATCH_NORMS = {_aten.native_batch_norm, _aten._native_batch_norm_legit, _aten._native_batch_norm_legit_no_training,
               _aten.batch_norm, _aten.cudnn_batch_norm}
STAT_NORMS = {_aten.native_layer_norm, _aten.native_group_norm}
SOFTMAXES = {_aten._softmax, _aten._log_softmax, _aten.softmax, _aten.log_softmax, _aten._safe_softmax}
MAX_POOLS = {_aten.max_pool1d_with_indices, _aten.max_pool2d_with_indices, _aten.max_pool3d_with_indices,
             _aten.max_pool1d, _aten.max_pool2d, _aten.max_pool3d}
AVG_POOLS = {_aten.avg_pool1d, _aten.avg_pool2d, _aten.avg_pool3d}
ADAPTIVE_POOLS = {_aten._adaptive_avg_pool2d, _aten._adaptive_avg_pool3d, _aten.adaptive_avg_pool1d,
                  _aten.adaptive_max_pool1d, _aten.adaptive_max_pool2d, _aten.adaptive_max_pool3d}
REDUCTIONS = {_aten.sum, _aten.mean, _aten.amax, _aten.amin, _aten.max, _aten.min, _aten.var, _aten.std,
              _aten.logsumexp, _aten.norm, _aten.linalg_vector_norm, _aten.prod, _aten.argmax, _aten.argmin,
              _aten.var_mean, _aten.std_mean}
PADS = {_aten.constant_pad_nd, _aten.reflection_pad1d, _aten.reflection_pad2d, _aten.reflection_pad3d,
        _aten.replication_pad1d, _aten.replication_pad2d, _aten.replication_pad3d}
# Interpolation: taps read per axis and per output element.
INTERPOLATION_TAPS = {
    _aten.upsample_nearest1d: 1, _aten.upsample_nearest2d: 1, _aten.upsample_nearest3d: 1,
    _aten._upsample_nearest_exact1d: 1, _aten._upsample_nearest_exact2d: 1, _aten._upsample_nearest_exact3d: 1,
    _aten.upsample_linear1d: 2, _aten.upsample_bilinear2d: 2, _aten.upsample_trilinear3d: 2,
    _aten.upsample_bicubic2d: 4,
}
# Element-wise operations that carry no pointwise tag in ATen.
ELEMENTWISE = {_aten.hardswish, _aten.hardswish_, _aten.rsub, _aten._prelu_kernel, _aten.relu6, _aten.hardtanh,
               _aten.hardtanh_, _aten.softplus, _aten.silu, _aten.silu_}
# Pointwise-tagged or creation operations that only move or make data.
COPIES = {_aten.clone, _aten.copy, _aten.copy_, _aten._to_copy, _aten.lift_fresh_copy, _aten.fill, _aten.fill_,
          _aten.zero_, _aten.zeros_like, _aten.ones_like, _aten.full_like, _aten.empty_like, _aten.scalar_tensor}

_MOVE_NAMES = {
    "cat", "stack", "t", "view", "_unsafe_view", "reshape", "_reshape_alias", "permute", "transpose", "expand",
    "squeeze", "unsqueeze", "flatten", "unflatten", "detach", "alias", "contiguous", "roll", "flip", "narrow",
    "chunk", "pixel_shuffle", "pixel_unshuffle", "channel_shuffle", "native_channel_shuffle", "gather", "scatter",
    "repeat", "tile", "unfold", "lift_fresh", "_local_scalar_dense", "dropout", "native_dropout", "bernoulli",
    "bernoulli_", "constant_pad_nd", "pad", "arange", "scalar_tensor", "masked_fill", "masked_fill_",
    "embedding", "one_hot", "where",
}
_MOVE_PREFIXES = ("empty", "zeros", "ones", "full", "new_", "split", "unbind", "index", "slice", "select",
                  "as_strided", "reflection_pad", "replication_pad", "_assert", "sym_")


def op_name(func) -> str:
    """'convolution', 'addmm', ...: the operation's name without namespace and overload."""
    return func.overloadpacket.__name__


def is_data_movement(func, out: torch.Tensor | None) -> bool:
    """Views, concatenation, padding, slicing, creation, indexing and integer or boolean results compute nothing."""
    name = op_name(func)
    return (out is None or not out.is_floating_point() or name in _MOVE_NAMES or name.startswith(_MOVE_PREFIXES))


def arg(func, args: tuple, kwargs: dict, name: str, default=None):
    """An argument of an ATen call by schema name, wherever it was passed (``default`` when absent or None)."""
    if name in kwargs:
        return default if kwargs[name] is None else kwargs[name]
    for i, a in enumerate(func._schema.arguments):
        if a.name == name:
            return args[i] if i < len(args) and args[i] is not None else default
    return default


def ints(value, count: int, default: int) -> list[int]:
    """An int-or-list argument as ``count`` ints (one value repeated; empty or None: ``default``)."""
    if value is None or (isinstance(value, list | tuple) and len(value) == 0):
        return [default] * count
    values = [int(v) for v in value] if isinstance(value, list | tuple) else [int(value)]
    return values * count if len(values) == 1 else values


def prod(values) -> int:
    """Product of integers (1 for none)."""
    out = 1
    for v in values:
        out *= int(v)
    return out


def numel(x) -> int:
    """Elements of a tensor; 0 for anything else."""
    return x.numel() if isinstance(x, torch.Tensor) else 0


def first_tensor(out) -> torch.Tensor | None:
    """The tensor an operation returns, or the first of those it returns."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, tuple | list):
        return next((o for o in out if isinstance(o, torch.Tensor)), None)
    return None


def tensor_args(args: tuple, kwargs: dict) -> list[torch.Tensor]:
    """Every tensor among the arguments, also inside lists (``cat``'s inputs)."""
    found: list[torch.Tensor] = []
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            found.append(value)
        elif isinstance(value, list | tuple):
            found.extend(v for v in value if isinstance(v, torch.Tensor))
    return found


@contextmanager
def plain_attention() -> Iterator[None]:
    """Attention as matrix products and a softmax, on every device: fused kernels would hide their work.

    Without this, a real forward on a CPU or GPU runs ``nn.MultiheadAttention``'s fast path and fused
    scaled-dot-product kernels, while the same forward on meta tensors runs the plain operations, and the
    two would count differently.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with sdpa_kernel(SDPBackend.MATH):
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


class ShapeCache:
    """Replays the output shapes of functional ATen calls seen before with the same argument shapes.

    Some meta kernels (batch norm's) are Python decompositions costing milliseconds per call; deep
    networks repeat the same call with the same shapes hundreds of times, and an empty tensor of the
    remembered shape is all a meta forward needs. Calls on real tensors run as they are.
    """

    def __init__(self) -> None:
        self.outputs: dict[tuple, list[tuple]] = {}

    def run(self, func, args: tuple, kwargs: dict):
        """``func(*args, **kwargs)``, or an empty meta tensor of the shape it gave before."""
        if func.overloadpacket in _FAST_BATCH_NORMS and args[0].device.type == "meta":
            return _batch_norm_outputs(args[0])
        key = _call_key(func, args, kwargs)
        if key is None:
            return func(*args, **kwargs)
        if key in self.outputs:
            made = [torch.empty_strided(shape, stride, dtype=dtype, device="meta")
                    for shape, stride, dtype in self.outputs[key]]
            return made[0] if len(made) == 1 and len(func._schema.returns) == 1 else tuple(made)
        out = func(*args, **kwargs)
        flat = out if isinstance(out, tuple) else (out,)
        if all(isinstance(o, torch.Tensor) and o.device.type == "meta" for o in flat):
            self.outputs[key] = [(tuple(o.shape), o.stride(), o.dtype) for o in flat]
        return out


_FAST_BATCH_NORMS = {_aten.native_batch_norm, _aten._native_batch_norm_legit,
                     _aten._native_batch_norm_legit_no_training}


def _batch_norm_outputs(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # (output, saved mean, saved inverse std) as the meta kernel makes them, without its decomposition.
    stats_dtype = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    out = torch.empty_strided(x.shape, x.stride(), dtype=x.dtype, device="meta")
    channels = x.shape[1] if x.dim() > 1 else 1
    return out, x.new_empty((channels,), dtype=stats_dtype), x.new_empty((channels,), dtype=stats_dtype)


def _call_key(func, args: tuple, kwargs: dict) -> tuple | None:
    # Only calls that return fresh tensors: no views, no in-place writes, no aliasing of any argument.
    schema = func._schema
    if any(r.alias_info is not None for r in schema.returns) or any(
            a.alias_info is not None and a.alias_info.is_write for a in schema.arguments):
        return None
    if torch.Tag.nondeterministic_seeded in func.tags or torch.Tag.data_dependent_output in func.tags:
        return None
    parts: list[object] = [func]
    for value in (*args, *kwargs.items()):
        part = _key_part(value)
        if part is _UNHASHABLE:
            return None
        parts.append(part)
    return tuple(parts)


_UNHASHABLE = object()


def _key_part(value: object) -> object:
    if isinstance(value, torch.Tensor):
        if value.device.type != "meta":
            return _UNHASHABLE
        return ("T", tuple(value.shape), value.stride(), value.dtype, value.storage_offset())
    if isinstance(value, list | tuple):
        parts = tuple(_key_part(v) for v in value)
        return _UNHASHABLE if any(p is _UNHASHABLE for p in parts) else parts
    try:
        hash(value)
    except TypeError:
        return _UNHASHABLE
    return value
