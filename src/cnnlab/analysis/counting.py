"""Parameter, multiply-accumulate and FLOP counting without real compute (meta tensors).

One counter: ``count_macs`` and the summary (``cnnlab.analysis.summary``) both add ``op_macs`` over the
ATen operations of a forward pass, so ``cnnlab models``, ``cnnlab summary`` and a run's ``results.json``
cannot disagree, and plain functions in a ``forward`` (``F.linear``, ``x @ w``) count as much as modules.

MACs are the multiply-accumulates of convolutions (transposed too) and linear layers: the number
torchvision's weights metadata calls GFLOPS. FLOPs of those layers are 2 x MACs.

Parameters are counted two ways. ``count_params`` counts every parameter of the module;
``count_inference_params`` counts those an eval-mode forward pass reads, the network as used at
inference: GoogLeNet's and Inception-v3's auxiliary classifiers run only in training, so GoogLeNet has
6,624,904 parameters at inference (torchvision's published ``num_params``) and 13,004,888 in all.

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

from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from cnnlab.analysis.aten import (
    ADAPTIVE_POOLS,
    AVG_POOLS,
    BATCH_NORMS,
    CONVOLUTIONS,
    COPIES,
    ELEMENTWISE,
    INTERPOLATION_TAPS,
    MATMULS,
    MAX_POOLS,
    REDUCTIONS,
    SOFTMAXES,
    STAT_NORMS,
    ShapeCache,
    arg,
    first_tensor,
    ints,
    is_data_movement,
    numel,
    plain_attention,
    prod,
)
from cnnlab.errors import InputSizeError

__all__ = ["FORWARD_ERRORS", "ForwardCount", "conv_params", "count_forward", "count_inference_params",
           "count_macs", "count_params", "forward_error", "meta_forward", "op_flops", "op_macs"]

_aten = torch.ops.aten

# What a forward pass raises on an input it cannot take (or that meta tensors cannot run).
FORWARD_ERRORS = (RuntimeError, NotImplementedError, TypeError, IndexError, AssertionError)


def forward_error(model: nn.Module, describe: str, err: Exception) -> InputSizeError:
    """The one-line user error for a forward pass that failed on ``describe`` ("a 3x8x8 input")."""
    text = str(err).strip()
    first = text.splitlines()[0] if text else type(err).__name__
    label = getattr(model, "model_name", "") or type(model).__name__
    return InputSizeError(f"{label} cannot run on {describe}: {first}")


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements (shared parameters counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def conv_params(in_chs: int, out_chs: int, kernel: int | tuple[int, int], groups: int = 1,
                bias: bool = True) -> int:
    """Parameters of a conv layer: C_out * (k_h * k_w * C_in / groups + 1)."""
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    return out_chs * (kh * kw * in_chs // groups + (1 if bias else 0))


def meta_forward(model: nn.Module, x: torch.Tensor) -> object:
    """Run ``model`` on a meta input with meta copies of its parameters and buffers: shapes, no compute."""
    with torch.no_grad():
        return functional_call(model, _meta_state(model), (x.to("meta"),), strict=False)


def _meta_state(model: nn.Module) -> dict[str, torch.Tensor]:
    tensors = {name: torch.empty_like(t, device="meta") for name, t in model.named_parameters()}
    tensors.update({name: torch.empty_like(t, device="meta") for name, t in model.named_buffers()})
    return tensors


@dataclass(frozen=True)
class ForwardCount:
    """What one eval-mode forward pass costs and which parameters it uses."""

    macs: int  # multiply-accumulates for the whole batch
    params: int  # elements of the parameters the pass reads (a shared parameter once)
    used: frozenset[str]  # names of those parameters


class _MacCounter(TorchDispatchMode):
    """Adds ``op_macs`` over every ATen operation of a meta forward; notes which watched tensors they read."""

    def __init__(self, watched: dict[int, str]) -> None:
        super().__init__()
        self.cache = ShapeCache()
        self.macs = 0
        self.watched = watched  # id of a parameter's meta copy -> its name
        self.read: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        for a in tree_flatten((args, kwargs))[0]:
            name = self.watched.get(id(a)) if isinstance(a, torch.Tensor) else None
            if name is not None:
                self.read.add(name)
        out = self.cache.run(func, args, kwargs)
        self.macs += op_macs(func, args, kwargs, out)
        return out


def count_forward(model: nn.Module, input_size: tuple[int, ...], batch_size: int = 1) -> ForwardCount:
    """MACs of one eval-mode forward pass of ``batch_size`` inputs of shape ``input_size``, and the parameters it reads.

    A parameter is used when an ATen operation of the pass takes it (or a view of it) as an argument, so
    parts that run only in training (auxiliary classifiers) and modules the forward never calls are left out.
    """
    params = dict(model.named_parameters())
    state = _meta_state(model)
    watched = {id(state[name]): name for name in params}
    was_training = model.training
    model.eval()
    try:
        with plain_attention(), _MacCounter(watched) as counter, torch.no_grad():
            functional_call(model, state, (torch.empty((batch_size, *input_size), device="meta"),), strict=False)
    except FORWARD_ERRORS as err:
        raise forward_error(model, f"a {'x'.join(str(v) for v in input_size)} input", err) from err
    finally:
        model.train(was_training)
    used = frozenset(counter.read)
    return ForwardCount(counter.macs, sum(params[name].numel() for name in used), used)


def count_macs(model: nn.Module, input_size: tuple[int, ...], batch_size: int = 1) -> int:
    """Multiply-accumulates of one forward pass (eval mode) for ``batch_size`` inputs of shape ``input_size``.

    The same count as ``cnnlab.summary(model, input_size).total["macs"]`` (for ``batch_size`` 1).
    """
    return count_forward(model, input_size, batch_size).macs


def count_inference_params(model: nn.Module, input_size: tuple[int, ...]) -> int:
    """Parameters an eval-mode forward pass on one input of shape ``input_size`` reads: the network at inference.

    Equal to ``count_params`` except where parts run only in training (GoogLeNet's auxiliary heads) or a
    module is never called; ``cnnlab models``, ``summary``, ``compare`` and ``results.json`` report it.
    """
    return count_forward(model, input_size).params


# --------------------------------------------------------------------------------------------------
# Per-operation counts
# --------------------------------------------------------------------------------------------------


def op_macs(func, args: tuple, kwargs: dict, out) -> int:
    """Multiply-accumulates of one ATen operation: convolutions and matrix products; 0 for the rest."""
    packet = func.overloadpacket
    if packet in CONVOLUTIONS:
        x, weight = args[0], args[1]
        kernel = prod(weight.shape[2:])
        if arg(func, args, kwargs, "transposed", False):
            # every input element is scattered through C_out/groups * k... weights: (C_in, C_out/g, k...)
            return x.numel() * weight.shape[1] * kernel
        return numel(first_tensor(out)) * weight.shape[1] * kernel  # weight: (C_out, C_in/g, k...)
    if packet in MATMULS:
        a, b = (args[1], args[2]) if packet in (_aten.addmm, _aten.baddbmm) else (args[0], args[1])
        return a.numel() * b.shape[-1]
    return 0


def op_flops(func, args: tuple, kwargs: dict, out) -> int | None:
    """FLOPs of one ATen operation under the convention above; ``None`` for an operation it does not cover."""
    packet = func.overloadpacket
    y = first_tensor(out)
    if packet in CONVOLUTIONS or packet in MATMULS:
        return 2 * op_macs(func, args, kwargs, out)
    if packet in BATCH_NORMS:
        return (6 if arg(func, args, kwargs, "training", False) else 2) * numel(y)
    if packet in STAT_NORMS:
        return 6 * numel(y)
    if packet in SOFTMAXES:
        return 3 * numel(y)
    if packet in MAX_POOLS or packet in AVG_POOLS:
        return numel(y) * prod(ints(args[1], 1, 1))
    if packet in ADAPTIVE_POOLS:
        return _adaptive_window_elements(func, args[0], y)
    if packet in INTERPOLATION_TAPS:
        taps = INTERPOLATION_TAPS[packet]
        axes = y.dim() - 2
        return 0 if taps == 1 else 2 * taps**axes * numel(y)
    if packet in REDUCTIONS and func not in (_aten.max.other, _aten.min.other):
        return numel(args[0])
    if packet in COPIES:
        return 0
    if torch.Tag.pointwise in func.tags or packet in ELEMENTWISE:
        return numel(y)
    if is_data_movement(func, y):
        return 0
    return None


def _adaptive_window_elements(func, x: torch.Tensor, y: torch.Tensor) -> int:
    # Adaptive pooling window i along an axis of n inputs and m outputs: [floor(i n/m), ceil((i+1) n/m)).
    axes = int(func.overloadpacket.__name__.rstrip("d")[-1])  # adaptive_max_pool2d -> 2
    total = prod(y.shape[: y.dim() - axes])
    for n, m in zip(x.shape[x.dim() - axes:], y.shape[y.dim() - axes:]):
        total *= sum(-(-(i + 1) * n // m) - (i * n // m) for i in range(m))
    return total
