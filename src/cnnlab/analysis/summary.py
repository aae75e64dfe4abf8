"""Per-layer summary of any ``nn.Module``: shapes, parameters, MACs, FLOPs, memory and receptive fields.

One forward pass on meta tensors (shapes only, no arithmetic) runs under a dispatch mode that sees every
ATen operation the network performs, in the order it performs them, whichever module (or plain function
in a ``forward``) calls it. Each operation is counted (``op_macs``, ``op_flops``) and its output's
receptive field follows from its inputs' (``op_field``), so branches, residual additions and
concatenations are followed as the graph runs them, not as the modules are listed. Module hooks attribute
the operations to the module that runs them.

What the numbers mean (docs/counting.md has the full convention):

- ``macs``: multiply-accumulates of convolutions, linear layers and matrix products (torchvision's
  "GFLOPS"). ``flops``: every arithmetic operation, 2 per MAC plus normalization, activations, pooling,
  additions, softmax and interpolation.
- ``activation_bytes`` of a layer: bytes of the output tensors it newly allocates, for one image at the
  model's dtype. In-place layers (``ReLU(inplace=True)``), views (``Flatten``) and layers that return
  their input (``Identity``, dropout at inference) allocate nothing and count 0; the input image is not
  counted. Operations a container runs itself (a residual addition, a concatenation, a functional
  pooling in a head) count every tensor they create. The total is the sum over the forward pass: the
  memory needed if every output were kept, as a training step keeps most of them.
- ``training_bytes`` (total only): bytes of the tensors autograd saves for the backward pass per image,
  measured with ``torch.autograd.graph.saved_tensors_hooks`` on a training-mode forward (each storage
  once, parameters excluded), as the difference between batches of 3 and 2. The memory of a training
  step at batch size B is then about ``B * training_bytes + 4 * param_bytes`` with Adam or
  ``3 * param_bytes`` with SGD and momentum (weights, gradients, optimizer state), plus workspace.
- ``receptive_field``: ``{size, stride, start}`` of the layer's output in input pixels (see
  ``cnnlab.analysis.receptive_field``); the total gives the field of the last spatial feature map, the
  one global pooling or flattening reads.
- ``depth`` (total only): weight layers (convolutions and matrix products) on the longest path from the
  input to the output: VGG-16 has 16, ResNet-50 50, GoogLeNet 22, DenseNet-121 121.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.func import functional_call
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from cnnlab.analysis.counting import conv_params, count_params, op_flops, op_macs
from cnnlab.analysis.receptive_field import Field, Traced, conv_output_size, op_field
from cnnlab.analysis.table import fraction_text, human, receptive_field_text, render

__all__ = [
    "LAYER_KEYS",
    "TOTAL_KEYS",
    "Summary",
    "conv_output_size",
    "conv_params",
    "layer_fields",
    "parse_input_size",
    "summary",
]

# Keys of each row of ``Summary.layers`` (and of the JSON "layers" list), in order.
LAYER_KEYS = ("name", "type", "output_shape", "params", "trainable_params", "macs", "flops",
              "activation_bytes", "receptive_field")
# Keys of ``Summary.total``.
TOTAL_KEYS = ("params", "trainable_params", "param_bytes", "macs", "flops", "activation_bytes",
              "training_bytes", "receptive_field", "depth")


def parse_input_size(text: str) -> tuple[int, ...]:
    """'1x28x28' -> (1, 28, 28): channels then spatial sizes, separated by 'x' or ','."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        size = tuple(int(p) for p in parts)
    except ValueError:
        size = ()
    if len(size) < 2 or any(v <= 0 for v in size):
        raise ValueError(f"input size must look like CxHxW with positive integers, e.g. 1x28x28 or "
                         f"3x224x224; got {text!r}")
    return size


@dataclass
class Summary:
    """The rows and totals of one network at one input size; ``render`` prints them in any format."""

    model: str
    input_size: tuple[int, ...]
    dtype: str
    layers: list[dict[str, Any]]
    total: dict[str, Any]
    uncounted_ops: list[str] = field(default_factory=list)  # ATen ops outside the FLOP convention

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: ``{"model", "input_size", "dtype", "layers": [...], "total": {...}}``."""
        return {"model": self.model, "input_size": list(self.input_size), "dtype": self.dtype,
                "layers": self.layers, "total": self.total, "uncounted_ops": self.uncounted_ops}

    def render(self, fmt: str = "table") -> str:
        """The summary as a terminal table, Markdown, CSV (rows plus a total row) or JSON."""
        if fmt == "json":
            return json.dumps(self.to_dict(), indent=2)
        rows = [_display_row(r) for r in self.layers]
        if fmt == "csv":
            return render(rows + [_display_row(self._total_row())], fmt, _DISPLAY_COLUMNS)
        body = render(rows, fmt, _DISPLAY_COLUMNS, formatters=_FORMATTERS)
        lines = self._total_lines()
        if fmt == "markdown":
            return body + "\n" + "".join(f"- {line}\n" for line in lines)
        return body + "\n" + "".join(f"{line}\n" for line in lines)

    def __str__(self) -> str:
        return self.render("table")

    def _total_row(self) -> dict[str, Any]:
        t = self.total
        return {"name": "(total)", "type": self.model, "output_shape": None, "params": t["params"],
                "trainable_params": t["trainable_params"], "macs": t["macs"], "flops": t["flops"],
                "activation_bytes": t["activation_bytes"], "receptive_field": t["receptive_field"]}

    def _total_lines(self) -> list[str]:
        t = self.total
        frozen = t["params"] - t["trainable_params"]
        shape = "x".join(str(v) for v in self.input_size)
        rf = t["receptive_field"]
        rf_text = (f"{receptive_field_text(rf)}, start {_axes(rf['start'])}"
                   " (size: input pixels one unit sees; stride: input pixels between neighbouring units)"
                   if rf else "none (no spatial feature map)")
        return [
            f"Input: {shape} ({self.dtype}), one image",
            f"Parameters: {t['params']:,} ({human(t['params'])}; {frozen:,} frozen), "
            f"{human(t['param_bytes'], 'B')} as {self.dtype}",
            f"MACs: {human(t['macs'])} multiply-accumulates of conv/linear/matmul (torchvision's GFLOPS)",
            f"FLOPs: {human(t['flops'])} (2 per MAC + normalization, activations, pooling, additions)",
            f"Activation memory per image (forward, every layer output): {human(t['activation_bytes'], 'B')}",
            f"Training memory per image (activations saved for backward): {human(t['training_bytes'], 'B')}",
            f"Receptive field of the last feature map: {rf_text}",
            f"Depth: {t['depth']} weight layers on the longest path",
        ]


_DISPLAY_COLUMNS = ("name", "type", "output_shape", "params", "macs", "flops", "activation",
                    "rf", "rf_stride", "rf_start")
_FORMATTERS = {"params": lambda v: v if isinstance(v, str) else human(v), "macs": human, "flops": human,
               "activation": lambda v: human(v, "B")}


def _axes(value: object, fmt=str) -> str:
    return "x".join(fmt(v) for v in value) if isinstance(value, list) else fmt(value)


def _display_row(row: dict[str, Any]) -> dict[str, Any]:
    rf = row["receptive_field"] or {}
    params = row["params"]
    frozen = params - row["trainable_params"]
    return {
        "name": row["name"],
        "type": row["type"],
        "output_shape": row["output_shape"],
        "params": params if not frozen else f"{human(params)} ({human(frozen)} frozen)",
        "macs": row["macs"],
        "flops": row["flops"],
        "activation": row["activation_bytes"],
        "rf": _axes(rf["size"]) if rf else None,
        "rf_stride": _axes(rf["stride"], fraction_text) if rf else None,
        "rf_start": _axes(rf["start"]) if rf else None,
    }


# --------------------------------------------------------------------------------------------------
# The trace
# --------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Call:
    """One call of one module during the traced forward pass."""

    name: str
    module: nn.Module
    level: int  # dots in the module path + 1; the root is 0
    first_storage: int  # storages numbered from here on were allocated during this call
    children: list[_Call] = field(default_factory=list)
    macs: int = 0  # of the operations this module runs itself (not its children)
    flops: int = 0
    own_bytes: int = 0  # tensors created by those operations
    output_bytes: int = 0  # fresh output tensors (what a leaf module's row reports)
    output_shape: object = None
    traced: Traced | None = None

    @property
    def is_leaf(self) -> bool:
        return next(self.module.children(), None) is None

    def has_own_work(self) -> bool:
        own_params = next(self.module.parameters(recurse=False), None) is not None
        return bool(self.macs or self.flops or self.own_bytes or own_params)


class _ShapeCache:
    """Replays the output shapes of functional ATen calls seen before with the same argument shapes.

    Some meta kernels (batch norm's) are Python decompositions costing milliseconds per call; deep
    networks repeat the same call with the same shapes hundreds of times, and an empty tensor of the
    remembered shape is all a meta forward needs.
    """

    def __init__(self) -> None:
        self.outputs: dict[tuple, list[tuple]] = {}

    def run(self, func, args: tuple, kwargs: dict):
        if func.overloadpacket in _BATCH_NORMS and args[0].device.type == "meta":
            return _batch_norm_outputs(args[0])
        key = _call_key(func, args, kwargs)
        if key is None:
            return func(*args, **kwargs)
        if key in self.outputs:
            made = [torch.empty_strided(shape, stride, dtype=dtype, device="meta")
                    for shape, stride, dtype in self.outputs[key]]
            return made[0] if len(made) == 1 and not _returns_tuple(func) else tuple(made)
        out = func(*args, **kwargs)
        flat = out if isinstance(out, tuple) else (out,)
        if all(isinstance(o, torch.Tensor) and o.device.type == "meta" for o in flat):
            self.outputs[key] = [(tuple(o.shape), o.stride(), o.dtype) for o in flat]
        return out


_BATCH_NORMS = {torch.ops.aten.native_batch_norm, torch.ops.aten._native_batch_norm_legit,
                torch.ops.aten._native_batch_norm_legit_no_training}


def _batch_norm_outputs(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # (output, saved mean, saved inverse std) as the meta kernel makes them, without its decomposition.
    stats_dtype = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    out = torch.empty_strided(x.shape, x.stride(), dtype=x.dtype, device="meta")
    channels = x.shape[1] if x.dim() > 1 else 1
    return out, x.new_empty((channels,), dtype=stats_dtype), x.new_empty((channels,), dtype=stats_dtype)


def _returns_tuple(func) -> bool:
    return len(func._schema.returns) != 1


def _call_key(func, args: tuple, kwargs: dict) -> tuple | None:
    # Only calls that return fresh tensors: no views, no in-place writes, no aliasing of any argument.
    schema = func._schema
    if any(r.alias_info is not None for r in schema.returns) or any(
            a.alias_info is not None and a.alias_info.is_write for a in schema.arguments):
        return None
    if torch.Tag.nondeterministic_seeded in func.tags:
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


class _FastMeta(TorchDispatchMode):
    """A meta forward with the shape cache and nothing else: the training-memory pass runs under it."""

    def __init__(self) -> None:
        super().__init__()
        self.cache = _ShapeCache()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return self.cache.run(func, args, kwargs or {})


class _Tracer(TorchDispatchMode):
    """Counts, sizes and receptive fields of every ATen operation, attributed to the running module."""

    def __init__(self, naxes: int) -> None:
        super().__init__()
        self.cache = _ShapeCache()
        self.naxes = naxes
        self.traced: dict[int, Traced] = {}
        self.depth: dict[int, int] = {}
        self.storages: dict[int, int] = {}  # storage address -> serial number of its first sighting
        self.keep: list[torch.Tensor] = []  # keeps every traced tensor alive so ids and addresses stay unique
        self.stack: list[_Call] = []
        self.root: _Call | None = None
        self.last_map: Field | None = None
        self.uncounted: set[str] = set()

    def lookup(self, t: torch.Tensor) -> Traced | None:
        return self.traced.get(id(t))

    def seed(self, x: torch.Tensor) -> None:
        """Register the input image: its field is itself, depth 0."""
        self.register(x, Traced(Field.of_input(self.naxes), True), 0)
        self._storage_serial(x)

    def register(self, t: torch.Tensor, traced: Traced | None, depth: int | None) -> None:
        self.keep.append(t)
        if traced is not None:
            self.traced[id(t)] = traced
        if depth is not None:
            self.depth[id(t)] = depth

    def known_storage(self, t: torch.Tensor) -> None:
        self._storage_serial(t)

    def _storage_serial(self, t: torch.Tensor) -> tuple[int, bool]:
        key = _storage_key(t)
        if key in self.storages:
            return self.storages[key], False
        self.storages[key] = len(self.storages)
        return self.storages[key], True

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = self.cache.run(func, args, kwargs)
        call = self.stack[-1] if self.stack else self.root
        outputs = [o for o in tree_flatten(out)[0] if isinstance(o, torch.Tensor)]
        inputs = [a for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)]
        macs = op_macs(func, args, kwargs, out)
        flops = op_flops(func, args, kwargs, out)
        if flops is None:
            self.uncounted.add(str(func.overloadpacket))
            flops = 0
        depths = [self.depth[id(a)] for a in inputs if id(a) in self.depth]
        depth = max(depths) + (1 if macs else 0) if depths else None
        fresh = 0
        for o in outputs:
            _, new = self._storage_serial(o)
            fresh += _storage_bytes(o) if new else 0
            traced = op_field(func, args, kwargs, o, self.lookup, self.naxes)
            self.register(o, traced, depth)
            if traced is not None and traced.spatial and not traced.field.is_global and o.dim() > self.naxes:
                self.last_map = traced.field
        if call is not None:
            call.macs += macs
            call.flops += flops
            call.own_bytes += fresh
        return out

    def pre_hook(self, name: str, module: nn.Module) -> None:
        level = 0 if not name else name.count(".") + 1
        call = _Call(name, module, level, first_storage=len(self.storages))
        if self.stack:
            self.stack[-1].children.append(call)
        else:
            self.root = call
        self.stack.append(call)

    def post_hook(self, output: object) -> None:
        call = self.stack.pop()
        tensors = [o for o in tree_flatten(output)[0] if isinstance(o, torch.Tensor)]
        counted: set[int] = set()
        for t in tensors:
            serial, _ = self._storage_serial(t)
            key = _storage_key(t)
            if serial >= call.first_storage and key not in counted:
                counted.add(key)
                call.output_bytes += _storage_bytes(t)
        shapes = [list(t.shape[1:]) for t in tensors]
        call.output_shape = shapes[0] if len(shapes) == 1 else shapes
        call.traced = self.lookup(tensors[0]) if tensors else None


def _storage_key(t: torch.Tensor) -> int:
    try:
        return t.untyped_storage()._cdata
    except (RuntimeError, NotImplementedError):  # tensors without a plain storage (sparse, nested)
        return id(t)


def _storage_bytes(t: torch.Tensor) -> int:
    try:
        return t.untyped_storage().nbytes()
    except (RuntimeError, NotImplementedError):
        return t.numel() * t.element_size()


@contextmanager
def _module_hooks(model: nn.Module, tracer: _Tracer) -> Iterator[None]:
    handles = []
    seen: set[int] = set()
    for name, module in model.named_modules(remove_duplicate=False):
        if id(module) in seen:
            continue
        seen.add(id(module))
        handles.append(module.register_forward_pre_hook(lambda m, a, n=name: tracer.pre_hook(n, m)))
        handles.append(module.register_forward_hook(lambda m, a, o: tracer.post_hook(o)))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _meta_state(model: nn.Module, requires_grad: bool) -> dict[str, torch.Tensor]:
    state = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        state[name] = torch.empty_like(p, device="meta").requires_grad_(requires_grad and p.requires_grad)
    for name, b in model.named_buffers(remove_duplicate=False):
        state[name] = torch.empty_like(b, device="meta")
    return state


def _model_dtype(model: nn.Module) -> torch.dtype:
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)


def _label(model: nn.Module) -> str:
    return getattr(model, "model_name", "") or type(model).__name__


def _trace(model: nn.Module, input_size: tuple[int, ...], dtype: torch.dtype) -> tuple[_Tracer, object]:
    tracer = _Tracer(naxes=len(input_size) - 1)
    state = _meta_state(model, requires_grad=False)
    for t in state.values():
        tracer.known_storage(t)
    x = torch.empty((1, *input_size), device="meta", dtype=dtype)
    tracer.seed(x)
    was_training = model.training
    model.eval()
    try:
        with _module_hooks(model, tracer), torch.no_grad(), tracer:
            out = functional_call(model, state, (x,), strict=False)
    except (RuntimeError, NotImplementedError, TypeError, IndexError) as err:
        raise _forward_error(model, input_size, err) from err
    finally:
        model.train(was_training)
    return tracer, out


def _forward_error(model: nn.Module, input_size: tuple[int, ...], err: Exception) -> ValueError:
    shape = "x".join(str(v) for v in input_size)
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return ValueError(f"{_label(model)} cannot run on a {shape} input: {first}")


def _saved_bytes(model: nn.Module, input_size: tuple[int, ...], batch: int, dtype: torch.dtype) -> int:
    """Bytes of the tensors autograd saves for backward in one training-mode forward of ``batch`` images."""
    state = _meta_state(model, requires_grad=True)
    weights = {_storage_key(t) for t in state.values()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = _storage_key(t)
        if key not in weights:
            saved[key] = _storage_bytes(t)
        return t

    x = torch.empty((batch, *input_size), device="meta", dtype=dtype)
    was_training = model.training
    model.train()
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), _FastMeta():
            out = functional_call(model, state, (x,), strict=False)
    except (RuntimeError, NotImplementedError, TypeError, IndexError) as err:
        raise _forward_error(model, input_size, err) from err
    finally:
        model.train(was_training)
    del out
    return sum(saved.values())


def _training_bytes_per_image(model: nn.Module, input_size: tuple[int, ...], dtype: torch.dtype) -> int:
    # The slope between two batch sizes drops what does not grow with the batch (batch-norm statistics);
    # batches of 2 and 3 because training-mode batch norm refuses a single value per channel.
    return _saved_bytes(model, input_size, 3, dtype) - _saved_bytes(model, input_size, 2, dtype)


# --------------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------------


@dataclass
class _Totals:
    macs: int
    flops: int
    activation_bytes: int


def _aggregate(call: _Call, memo: dict[int, _Totals]) -> _Totals:
    if id(call) in memo:
        return memo[id(call)]
    kids = [_aggregate(c, memo) for c in call.children]
    own_bytes = call.output_bytes if call.is_leaf else call.own_bytes
    totals = _Totals(call.macs + sum(k.macs for k in kids), call.flops + sum(k.flops for k in kids),
                     own_bytes + sum(k.activation_bytes for k in kids))
    memo[id(call)] = totals
    return totals


def _take_params(params: Iterator[nn.Parameter], seen: set[int]) -> tuple[int, int]:
    total = trainable = 0
    for p in params:
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return total, trainable


def _row(call: _Call, params: tuple[int, int], macs: int, flops: int, activation: int) -> dict[str, Any]:
    return {
        "name": call.name or "(model)",
        "type": type(call.module).__name__,
        "output_shape": call.output_shape,
        "params": params[0],
        "trainable_params": params[1],
        "macs": macs,
        "flops": flops,
        "activation_bytes": activation,
        "receptive_field": call.traced.field.as_dict() if call.traced is not None else None,
    }


def _rows(call: _Call, max_depth: int | None, memo: dict[int, _Totals], seen: set[int]) -> Iterator[dict]:
    collapsed = max_depth is not None and call.level >= max_depth
    if call.is_leaf or collapsed:
        t = _aggregate(call, memo)
        yield _row(call, _take_params(call.module.parameters(), seen), t.macs, t.flops, t.activation_bytes)
        return
    for child in call.children:
        yield from _rows(child, max_depth, memo, seen)
    if call.has_own_work():
        params = _take_params(call.module.parameters(recurse=False), seen)
        yield _row(call, params, call.macs, call.flops, call.own_bytes)


def _unused_row(model: nn.Module, seen: set[int]) -> dict[str, Any] | None:
    params = _take_params(model.parameters(), seen)
    if not params[0]:
        return None
    return {"name": "(not called)", "type": "-", "output_shape": None, "params": params[0],
            "trainable_params": params[1], "macs": 0, "flops": 0, "activation_bytes": 0,
            "receptive_field": None}


def _resolve(model: nn.Module | str, input_size: Sequence[int] | str | None,
             model_kwargs: dict[str, Any]) -> tuple[nn.Module, tuple[int, ...]]:
    if isinstance(input_size, str):
        input_size = parse_input_size(input_size)
    if isinstance(model, str):
        from cnnlab.models import create_model, get_model_info

        size = tuple(input_size) if input_size is not None else get_model_info(model).input_size
        try:
            with torch.device("meta"):
                built = create_model(model, in_chans=size[0], **model_kwargs)
        except TypeError as err:  # an option the builder does not take
            raise ValueError(f"{model}: {err}") from err
        return built, size
    if model_kwargs:
        raise ValueError("model keyword arguments apply only when the model is given by its registered name")
    if input_size is None:
        raise ValueError("give the input size (C, H, W) of one image, e.g. (1, 28, 28)")
    size = tuple(int(v) for v in input_size)
    if len(size) < 1 or any(v <= 0 for v in size):
        raise ValueError(f"input size must be positive integers (C, H, W), got {tuple(input_size)}")
    return model, size


def summary(model: nn.Module | str, input_size: Sequence[int] | str | None = None, depth: int | None = None,
            **model_kwargs: Any) -> Summary:
    """Per-layer shapes, parameters, MACs, FLOPs, activation memory and receptive fields of ``model``.

    ``model`` is any ``nn.Module`` or a registered name (built on meta with ``in_chans`` from the input
    and ``model_kwargs``); ``input_size`` is one image, ``(C, H, W)`` or ``"1x28x28"`` (a registered
    name defaults to its family's standard input). ``depth`` collapses every module deeper than that
    many levels into its ancestor's row (1: stem, stages and head). Nothing is computed: the forward
    pass runs on meta tensors, so VGG-16 or ResNet-152 at 224x224 take about a second.
    """
    if depth is not None and depth < 0:
        raise ValueError(f"depth must be 0 or more, got {depth}")
    module, size = _resolve(model, input_size, model_kwargs)
    dtype = _model_dtype(module)
    tracer, out = _trace(module, size, dtype)
    root = tracer.root
    memo: dict[int, _Totals] = {}
    seen: set[int] = set()
    layers = list(_rows(root, depth, memo, seen))
    unused = _unused_row(module, seen)
    if unused is not None:
        layers.append(unused)
    totals = _aggregate(root, memo)
    outputs = [o for o in tree_flatten(out)[0] if isinstance(o, torch.Tensor)]
    total = {
        "params": count_params(module),
        "trainable_params": count_params(module, trainable_only=True),
        "param_bytes": sum(p.numel() * p.element_size() for p in module.parameters()),
        "macs": totals.macs,
        "flops": totals.flops,
        "activation_bytes": totals.activation_bytes,
        "training_bytes": _training_bytes_per_image(module, size, dtype),
        "receptive_field": tracer.last_map.as_dict() if tracer.last_map is not None else None,
        "depth": max((tracer.depth.get(id(o), 0) for o in outputs), default=0),
    }
    return Summary(_label(module), size, str(dtype).replace("torch.", ""), layers, total,
                   sorted(tracer.uncounted))


def layer_fields(model: nn.Module, input_size: Sequence[int]) -> dict[str, Field]:
    """The receptive field of every module's output (the last call's), keyed by module name; ``""`` is the model.

    ``field.unit_span(index)`` gives the exact input pixels one unit sees, also after upsampling, where the
    ``size, stride, start`` of the summary describe the widest unit and unit 0.
    """
    module, size = _resolve(model, input_size, {})
    tracer, _ = _trace(module, size, _model_dtype(module))
    fields: dict[str, Field] = {}
    stack = [tracer.root]
    while stack:
        call = stack.pop()
        if call.traced is not None:
            fields[call.name] = call.traced.field
        stack.extend(reversed(call.children))
    return fields
