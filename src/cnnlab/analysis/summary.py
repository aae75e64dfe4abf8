"""Per-layer summary of any ``nn.Module``: shapes, parameters, MACs, FLOPs, memory and receptive fields.

One forward pass runs under a dispatch mode that sees every ATen operation the network performs, in the
order it performs them, whichever module (or plain function in a ``forward``) calls it. Each operation is
counted (``op_macs``, ``op_flops``) and its output's receptive field follows from its inputs'
(``cnnlab.analysis.field_trace``), so branches, residual additions, concatenations, permutes and
reshapes are followed as the graph runs them. Module hooks attribute the operations to the module that
runs them, and rows come in the order things ran: a container's own operations (a residual addition, a
head's pooling) are a row where they ran, between its children's rows.

The pass runs on meta tensors (shapes only, no arithmetic) when it can. Example inputs (``input_data``:
tensors of any dtype, tuples for several arguments, dicts for keyword arguments) make summaries of
two-input models, token-id models and detection models possible; a model with real weights whose
forward depends on values (``if x.mean() > 0``, a detector's box selection) runs once on real tensors
instead, under no_grad, its parameters untouched and its buffers copied.

What the numbers mean (docs/counting.md has the full convention):

- ``params`` (total): the parameters the eval-mode forward pass read, the network as used at inference;
  ``all_params``: every parameter, including parts only training runs (GoogLeNet's auxiliary heads: 6.62M
  at inference, 13.00M in all). The "(not called)" row holds the parameters of modules the pass never
  called.
- ``macs``: multiply-accumulates of convolutions, linear layers and matrix products (torchvision's
  "GFLOPS"). ``flops``: every arithmetic operation, 2 per MAC plus normalization, activations, pooling,
  additions, softmax and interpolation. ``by_operator``: both, per ATen operator.
- ``activation_bytes`` of a layer: bytes of the output tensors it newly allocates, for one image (or the
  given inputs) at the model's dtype. In-place layers (``ReLU(inplace=True)``), views (``Flatten``) and
  layers that return their input (``Identity``, dropout at inference) allocate nothing and count 0; the
  inputs are not counted. The total is the sum over the forward pass: the memory needed if every output
  were kept, as a training step keeps most of them.
- ``training_bytes`` (total only): bytes of the tensors autograd saves for the backward pass per image,
  measured with ``torch.autograd.graph.saved_tensors_hooks`` on a training-mode forward on meta tensors
  (each storage once, parameters excluded), as the difference between batches of 3 and 2. The memory of
  a training step at batch size B is then about ``B * training_bytes + 4 * param_bytes`` with Adam or
  ``3 * param_bytes`` with SGD and momentum, plus workspace. Not measured for example inputs.
- ``receptive_field``: ``{size, stride, start}`` of a layer's output in input pixels (see
  ``cnnlab.analysis.receptive_field``), "global" when every unit sees the whole input, None when not
  known. The total is the field of the main (first) output's feature map: the output itself for a
  segmentation network, the map global pooling or flattening read for a classifier; ``outputs`` gives
  it for every output.
- ``depth`` (total only): weight layers (convolutions and matrix products) on the longest path from the
  input to the output: VGG-16 has 16, ResNet-50 50, GoogLeNet 22, DenseNet-121 121.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.func import functional_call
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_flatten_with_path, tree_map

from cnnlab.analysis.aten import ShapeCache, op_name, plain_attention
from cnnlab.analysis.counting import FORWARD_ERRORS, conv_params, count_params, forward_error, op_flops, op_macs
from cnnlab.analysis.field_trace import Traced, map_report, op_field, report, seed
from cnnlab.analysis.receptive_field import Field
from cnnlab.analysis.table import fraction_text, human, receptive_field_text, render
from cnnlab.errors import ConfigError, InputSizeError
from cnnlab.models.layers import conv_output_size

__all__ = [
    "LAYER_KEYS",
    "OPERATOR_KEYS",
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
TOTAL_KEYS = ("params", "all_params", "trainable_params", "param_bytes", "macs", "flops", "activation_bytes",
              "training_bytes", "receptive_field", "depth", "outputs")
# Keys of each row of ``Summary.by_operator``.
OPERATOR_KEYS = ("operator", "calls", "macs", "flops")

InputData = torch.Tensor | Sequence[Any] | Mapping[str, Any]


def parse_input_size(text: str) -> tuple[int, ...]:
    """'1x28x28' -> (1, 28, 28): channels then spatial sizes, separated by 'x' or ','."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        size = tuple(int(p) for p in parts)
    except ValueError:
        size = ()
    if len(size) < 2 or any(v <= 0 for v in size):
        raise InputSizeError(f"input size must look like CxHxW with positive integers, e.g. 1x28x28 or "
                             f"3x224x224; got {text!r}")
    return _channels_first(size)


def _channels_first(size: tuple[int, ...]) -> tuple[int, ...]:
    # 224x224x3 would otherwise build a network for 224 channels of 224x3 images.
    if len(size) == 3 and size[2] in (1, 3, 4) and min(size[0], size[1]) >= 8:
        h, w, c = size
        raise InputSizeError(f"input size {h}x{w}x{c} looks like height x width x channels; cnnlab takes "
                             f"channels first: {c}x{h}x{w}")
    return size


@dataclass
class Summary:
    """The rows and totals of one network on one input; ``render`` prints them in any format."""

    model: str
    input_size: tuple[int, ...]  # the image (or first input) without its batch dimension
    dtype: str
    layers: list[dict[str, Any]]
    total: dict[str, Any]
    uncounted_ops: list[str] = field(default_factory=list)  # ATen ops outside the FLOP convention
    by_operator: list[dict[str, Any]] = field(default_factory=list)  # MACs and FLOPs per ATen operator
    inputs: list[dict[str, Any]] = field(default_factory=list)  # example inputs: name, shape, dtype
    ran_on: str = "meta"  # "meta", or the device of a real forward pass
    notes: list[str] = field(default_factory=list)  # what could not be measured, and why

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: model, input_size, dtype, layers, total, by_operator, and the notes."""
        return {"model": self.model, "input_size": list(self.input_size), "dtype": self.dtype,
                "layers": self.layers, "total": self.total, "by_operator": self.by_operator,
                "uncounted_ops": self.uncounted_ops, "inputs": self.inputs, "ran_on": self.ran_on,
                "notes": self.notes}

    def render(self, fmt: str = "table", by_operator: bool = False) -> str:
        """The summary as a terminal table, Markdown, CSV (rows plus a total row) or JSON.

        ``by_operator``: one row per ATen operator (calls, MACs, FLOPs) instead of one per layer.
        """
        if fmt == "json":
            return json.dumps(self.to_dict(), indent=2)
        if by_operator:
            rows = self.by_operator
            total = {"operator": "(total)", "calls": sum(r["calls"] for r in rows), "macs": self.total["macs"],
                     "flops": self.total["flops"]}
            columns, formatters = OPERATOR_KEYS, {"macs": human, "flops": human}
        else:
            rows = [_display_row(r) for r in self.layers]
            total = _display_row(self._total_row())
            columns, formatters = _DISPLAY_COLUMNS, _FORMATTERS
        if fmt == "csv":
            return render(rows + [total], fmt, columns)
        body = render(rows, fmt, columns, formatters=formatters)
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
        per = "for the given inputs" if self.inputs else "per image"
        training = (human(t["training_bytes"], "B") if t["training_bytes"] is not None
                    else "not measured (see the notes)")
        counted = f"{t['params']:,} ({human(t['params'])}; {frozen:,} frozen)"
        if t["all_params"] != t["params"]:  # parts an eval forward does not run, e.g. auxiliary heads
            counted = (f"{counted} used at inference; {t['all_params']:,} ({human(t['all_params'])}) in all, "
                       f"training-only parts included")
        lines = [
            self._input_line(),
            f"Parameters: {counted}; {human(t['param_bytes'], 'B')} as {self.dtype}",
        ]
        lines += [
            f"MACs: {human(t['macs'])} multiply-accumulates of conv/linear/matmul (torchvision's GFLOPS)",
            f"FLOPs: {human(t['flops'])} (2 per MAC + normalization, activations, pooling, additions)",
            f"Activation memory {per} (forward, every layer output): {human(t['activation_bytes'], 'B')}",
            f"Training memory per image (activations saved for backward): {training}",
            f"Receptive field of the main output's feature map: {_field_text(t['receptive_field'])}",
        ]
        if len(t["outputs"]) > 1:
            lines += [f"  output {o['name']}: {_field_text(o['receptive_field'])}" for o in t["outputs"]]
        lines.append(f"Depth: {t['depth']} weight layers on the longest path")
        if self.ran_on != "meta":
            lines.append(f"Ran on real tensors ({self.ran_on})")
        return lines + [f"Note: {note}" for note in self.notes]

    def _input_line(self) -> str:
        if not self.inputs:
            return f"Input: {'x'.join(str(v) for v in self.input_size)} ({self.dtype}), one image"
        described = ", ".join(f"{i['name']} {'x'.join(str(v) for v in i['shape'])} ({i['dtype']})"
                              for i in self.inputs)
        return f"Inputs: {described}"


_DISPLAY_COLUMNS = ("name", "type", "output_shape", "params", "macs", "flops", "activation",
                    "rf", "rf_stride", "rf_start")
_FORMATTERS = {"params": lambda v: v if isinstance(v, str) else human(v), "macs": human, "flops": human,
               "activation": lambda v: human(v, "B")}


def _axes(value: object, fmt=str) -> str:
    return "x".join(fmt(v) for v in value) if isinstance(value, list) else fmt(value)


def _field_text(rf: dict | str | None) -> str:
    if rf == "global":
        return "global (every unit sees the whole input)"
    if rf is None:
        return "unknown or none (no feature map could be followed to it)"
    return (f"{receptive_field_text(rf)}, start {_axes(rf['start'])} (size: input pixels one unit sees; "
            f"stride: input pixels between neighbouring units)")


def _display_row(row: dict[str, Any]) -> dict[str, Any]:
    rf = row["receptive_field"]
    params = row["params"]
    frozen = params - row["trainable_params"]
    local = isinstance(rf, dict)
    return {
        "name": row["name"],
        "type": row["type"],
        "output_shape": row["output_shape"],
        "params": params if not frozen else f"{human(params)} ({human(frozen)} frozen)",
        "macs": row["macs"],
        "flops": row["flops"],
        "activation": row["activation_bytes"],
        "rf": _axes(rf["size"]) if local else rf,
        "rf_stride": _axes(rf["stride"], fraction_text) if local else None,
        "rf_start": _axes(rf["start"]) if local else None,
    }


# --------------------------------------------------------------------------------------------------
# The trace
# --------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Segment:
    """A run of operations a container performs itself between two of its children's calls."""

    macs: int = 0
    flops: int = 0
    fresh_bytes: int = 0
    last_shape: list[int] | None = None  # of the last tensor it made, without the batch dimension
    traced: Traced | None = None  # that tensor's field when it was made

    def has_work(self) -> bool:
        return bool(self.macs or self.flops or self.fresh_bytes)


@dataclass(eq=False)
class _Call:
    """One call of one module during the traced forward pass."""

    name: str
    module: nn.Module
    level: int  # dots in the module path + 1; the root is 0
    first_storage: int  # storages numbered from here on were allocated during this call
    events: list[_Call | _Segment] = field(default_factory=list)  # children's calls and own work, in order
    macs: int = 0  # of the operations this module runs itself (not its children)
    flops: int = 0
    own_bytes: int = 0  # tensors created by those operations
    output_bytes: int = 0  # fresh output tensors (what a leaf module's row reports)
    output_shape: object = None
    traced: Traced | None = None  # the field of its (first) output when it returned

    @property
    def is_leaf(self) -> bool:
        return next(self.module.children(), None) is None

    @property
    def children(self) -> list[_Call]:
        return [e for e in self.events if isinstance(e, _Call)]


class _FastMeta(TorchDispatchMode):
    """A meta forward with the shape cache and nothing else: the training-memory pass runs under it."""

    def __init__(self) -> None:
        super().__init__()
        self.cache = ShapeCache()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return self.cache.run(func, args, kwargs or {})


class _Tracer(TorchDispatchMode):
    """Counts, sizes and receptive fields of every ATen operation, attributed to the running module."""

    def __init__(self) -> None:
        super().__init__()
        self.cache = ShapeCache()
        self.traced: dict[int, Traced] = {}
        self.depth: dict[int, int] = {}
        self.storages: dict[int, int] = {}  # storage address -> serial number of its first sighting
        self.keep: list[torch.Tensor] = []  # keeps every traced tensor alive so ids and addresses stay unique
        self.stack: list[_Call] = []
        self.root: _Call | None = None
        self.uncounted: set[str] = set()
        self.operators: dict[str, list[int]] = {}  # operator -> [calls, macs, flops]
        self.watched: dict[int, str] = {}  # id of a tensor standing for a parameter -> the parameter's name
        self.read: set[str] = set()  # names of the parameters some operation took as an argument

    def lookup(self, t: torch.Tensor) -> Traced | None:
        return self.traced.get(id(t))

    def seed(self, t: torch.Tensor, traced: Traced | None) -> None:
        """Register an input: depth 0, not an activation, and (for the image) its field."""
        self.register(t, traced, 0)
        self._storage_serial(t)

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
        self.read.update(self.watched[id(a)] for a in inputs if id(a) in self.watched)
        macs = op_macs(func, args, kwargs, out)
        flops = op_flops(func, args, kwargs, out)
        if flops is None:
            self.uncounted.add(str(func.overloadpacket))
            flops = 0
        if macs or flops:
            counts = self.operators.setdefault(op_name(func).rstrip("_") or op_name(func), [0, 0, 0])
            counts[0] += 1
            counts[1] += macs
            counts[2] += flops
        depths = [self.depth[id(a)] for a in inputs if id(a) in self.depth]
        depth = max(depths) + (1 if macs else 0) if depths else None
        fresh = 0
        first_traced = None
        for i, o in enumerate(outputs):
            _, new = self._storage_serial(o)
            fresh += _storage_bytes(o) if new else 0
            if i == 0 or func.overloadpacket in _PER_OUTPUT:
                traced = op_field(func, args, kwargs, o, self.lookup)
                first_traced = traced if i == 0 else first_traced
            else:  # side outputs (indices, saved statistics) share the main output's field when shaped alike
                traced = first_traced if o.shape == outputs[0].shape else None
            self.register(o, traced, depth)
        if call is not None:
            call.macs += macs
            call.flops += flops
            call.own_bytes += fresh
            segment = call.events[-1] if call.events and isinstance(call.events[-1], _Segment) else None
            if segment is None:
                segment = _Segment()
                call.events.append(segment)
            segment.macs += macs
            segment.flops += flops
            segment.fresh_bytes += fresh
            if outputs:
                segment.last_shape, segment.traced = list(outputs[0].shape[1:]), first_traced
        return out

    def pre_hook(self, name: str, module: nn.Module) -> None:
        level = 0 if not name else name.count(".") + 1
        call = _Call(name, module, level, first_storage=len(self.storages))
        if self.stack:
            self.stack[-1].events.append(call)
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


_PER_OUTPUT = {torch.ops.aten.split, torch.ops.aten.split_with_sizes, torch.ops.aten.unbind}


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


@contextmanager
def _unchanged(model: nn.Module) -> Iterator[None]:
    """Puts every module attribute back after a traced forward: a module that caches tensors it made in
    ``forward`` (torchvision's anchor generator converts its anchors to the input's device) keeps its own."""
    saved = [(m, dict(m.__dict__)) for m in model.modules()]
    try:
        yield
    finally:
        for m, attributes in saved:
            m.__dict__.clear()
            m.__dict__.update(attributes)


def _meta_state(model: nn.Module, requires_grad: bool) -> dict[str, torch.Tensor]:
    state = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        state[name] = torch.empty_like(p, device="meta").requires_grad_(requires_grad and p.requires_grad)
    for name, b in model.named_buffers(remove_duplicate=False):
        state[name] = torch.empty_like(b, device="meta")
    return state


def _real_state(model: nn.Module) -> dict[str, torch.Tensor]:
    # The parameters as they are (no_grad leaves them alone); buffers copied, so no forward changes them.
    state = dict(model.named_parameters(remove_duplicate=False))
    state.update({name: b.clone() for name, b in model.named_buffers(remove_duplicate=False)})
    return state


def _model_dtype(model: nn.Module) -> torch.dtype:
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)


def _model_device(model: nn.Module) -> torch.device:
    return next((t.device for t in (*model.parameters(), *model.buffers())), torch.device("cpu"))


def _label(model: nn.Module) -> str:
    return getattr(model, "model_name", "") or type(model).__name__


@dataclass
class _Inputs:
    """What the forward pass is called with, and which tensor is the image whose pixels fields count."""

    args: tuple
    kwargs: dict[str, Any]
    shape_only: bool  # made from an input size (any values will do), not given by the user

    def tensors(self) -> list[torch.Tensor]:
        return [t for t in tree_flatten((self.args, self.kwargs))[0] if isinstance(t, torch.Tensor)]

    def image(self) -> torch.Tensor | None:
        """The first floating tensor with channels and at least one spatial axis: (B, C, *spatial)."""
        return next((t for t in self.tensors() if t.is_floating_point() and t.dim() >= 3), None)

    def to(self, device: torch.device | str) -> _Inputs:
        def move(v):
            if not isinstance(v, torch.Tensor):
                return v
            return torch.empty_like(v, device="meta") if str(device) == "meta" else v.to(device)

        return _Inputs(tree_map(move, self.args), tree_map(move, self.kwargs), self.shape_only)


def _trace(model: nn.Module, inputs: _Inputs, real: bool) -> tuple[_Tracer, object]:
    tracer = _Tracer()
    state = _real_state(model) if real else _meta_state(model, requires_grad=False)
    for t in state.values():
        tracer.known_storage(t)
    params = {name for name, _ in model.named_parameters(remove_duplicate=False)}
    tracer.watched = {id(t): name for name, t in state.items() if name in params}
    image = inputs.image()
    for t in inputs.tensors():
        tracer.seed(t, seed(t, t.dim() - 2) if t is image else None)
    with _unchanged(model), _module_hooks(model, tracer), torch.no_grad(), plain_attention():
        model.eval()
        with tracer:
            out = functional_call(model, state, inputs.args, inputs.kwargs, strict=False)
    return tracer, out


def _run(model: nn.Module, inputs: _Inputs, describe: str) -> tuple[_Tracer, object, str, list[str]]:
    """Trace on meta tensors; when those cannot run the forward, on real ones. (tracer, output, device, notes)."""
    try:
        tracer, out = _trace(model, inputs.to("meta"), real=False)
        return tracer, out, "meta", []
    except FORWARD_ERRORS as err:
        device = _model_device(model)
        if device.type == "meta":
            raise forward_error(model, describe, err) from err
        meta_error = _first_line(err).split(". ")[0]
    if inputs.shape_only:  # values decide the path taken: a fixed random image stands for the input
        generator = torch.Generator(device=device).manual_seed(0)
        image = inputs.image()
        real = _Inputs((torch.randn(image.shape, generator=generator, device=device, dtype=image.dtype),), {}, True)
    else:
        real = inputs.to(device)
    try:
        tracer, out = _trace(model, real, real=True)
    except FORWARD_ERRORS as err:
        raise forward_error(model, describe, err) from err
    return tracer, out, device.type, [f"ran on real tensors: meta tensors cannot run this forward ({meta_error})"]


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


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
    with _unchanged(model), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), plain_attention():
        model.train()
        with _FastMeta():
            out = functional_call(model, state, (x,), strict=False)
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


def _called_params(call: _Call) -> Iterator[nn.Parameter]:
    """The parameters of the modules that ran during ``call``: a collapsed row leaves uncalled parts out."""
    yield from call.module.parameters(recurse=False)
    for child in call.children:
        yield from _called_params(child)


class _Rows:
    """Builds the rows of a trace, in the order things ran."""

    def __init__(self, lengths: tuple[int, ...], max_depth: int | None) -> None:
        self.lengths = lengths
        self.max_depth = max_depth
        self.memo: dict[int, _Totals] = {}
        self.seen: set[int] = set()

    def row(self, call: _Call, params: tuple[int, int], totals: _Totals, traced: Traced | None,
            shape: object) -> dict[str, Any]:
        return {
            "name": call.name or "(model)",
            "type": type(call.module).__name__,
            "output_shape": shape,
            "params": params[0],
            "trainable_params": params[1],
            "macs": totals.macs,
            "flops": totals.flops,
            "activation_bytes": totals.activation_bytes,
            "receptive_field": report(traced, self.lengths),
        }

    def of(self, call: _Call) -> Iterator[dict[str, Any]]:
        collapsed = self.max_depth is not None and call.level >= self.max_depth
        if call.is_leaf or collapsed:
            totals = _aggregate(call, self.memo)
            yield self.row(call, _take_params(_called_params(call), self.seen), totals, call.traced,
                           call.output_shape)
            return
        own_params = list(call.module.parameters(recurse=False))
        for event in call.events:
            if isinstance(event, _Call):
                yield from self.of(event)
            elif event.has_work():
                # the container's own operations, where they ran; its own parameters on the first such row
                params = _take_params(iter(own_params), self.seen)
                totals = _Totals(event.macs, event.flops, event.fresh_bytes)
                yield self.row(call, params, totals, event.traced, event.last_shape)
        if own_params and not self._taken(own_params):
            yield self.row(call, _take_params(iter(own_params), self.seen), _Totals(0, 0, 0), None, None)

    def _taken(self, params: list[nn.Parameter]) -> bool:
        return all(id(p) in self.seen for p in params)

    def unused(self, model: nn.Module) -> dict[str, Any] | None:
        params = _take_params(model.parameters(), self.seen)
        if not params[0]:
            return None
        return {"name": "(not called)", "type": "-", "output_shape": None, "params": params[0],
                "trainable_params": params[1], "macs": 0, "flops": 0, "activation_bytes": 0,
                "receptive_field": None}


# --------------------------------------------------------------------------------------------------
# The entry points
# --------------------------------------------------------------------------------------------------


def _resolve(model: nn.Module | str, input_size: Sequence[int] | str | None, input_data: InputData | None,
             model_kwargs: dict[str, Any]) -> tuple[nn.Module, tuple[int, ...] | None]:
    if isinstance(input_size, str):
        input_size = parse_input_size(input_size)
    size = None
    if input_size is not None:
        size = tuple(int(v) for v in input_size)
        if not size or any(v <= 0 for v in size):
            raise InputSizeError(f"input size must be positive integers (C, H, W), got {tuple(input_size)}")
        size = _channels_first(size)
    if input_size is not None and input_data is not None:
        raise ConfigError("give either input_size or input_data, not both")
    if isinstance(model, str):
        from cnnlab.models import create_model, get_model_info

        info = get_model_info(model)
        if input_data is None:
            size = size if size is not None else info.input_size
            check_image_rank(model, size, info.input_size)
        chans = size[0] if size is not None else None
        try:
            with torch.device("meta"):
                built = create_model(model, in_chans=chans, **model_kwargs)
        except TypeError as err:  # an option the builder does not take
            raise ConfigError(f"{model}: {err}") from err
        return built, size
    if model_kwargs:
        raise ConfigError("model keyword arguments apply only when the model is given by its registered name")
    if size is None and input_data is None:
        raise InputSizeError("give the input size (C, H, W) of one image, e.g. (1, 28, 28), or input_data")
    return model, size


def check_image_rank(name: str, size: tuple[int, ...], standard: tuple[int, ...]) -> None:
    """Refuse an input of another rank than the network's standard one image (``CxHxW``)."""
    if len(size) == len(standard):
        return
    shape = "x".join(str(v) for v in size)
    example = "x".join(str(v) for v in standard)
    extra = "; leave out the batch size" if len(size) == len(standard) + 1 else ""
    raise InputSizeError(f"{name} takes one image as CxHxW (e.g. {example}); {shape} is the wrong shape{extra}")


def _as_inputs(input_data: InputData) -> _Inputs:
    if isinstance(input_data, torch.Tensor):
        args, kwargs = (input_data,), {}
    elif isinstance(input_data, Mapping):
        args, kwargs = (), dict(input_data)
    elif isinstance(input_data, Sequence) and not isinstance(input_data, str):
        args, kwargs = tuple(input_data), {}
    else:
        raise ConfigError(f"input_data must be a tensor, a tuple or list of arguments, or a dict of keyword "
                          f"arguments; got {type(input_data).__name__}")
    inputs = _Inputs(args, kwargs, shape_only=False)
    if not inputs.tensors():
        raise ConfigError("input_data holds no tensor")
    return inputs


def _describe_inputs(inputs: _Inputs) -> list[dict[str, Any]]:
    leaves, _ = tree_flatten_with_path((inputs.args, inputs.kwargs))
    described = []
    for path, value in leaves:
        if isinstance(value, torch.Tensor):
            keyword, (first, *rest) = path[0].idx == 1, path[1:]
            if keyword:
                name = _path_name(path[1:])
            else:
                name = "input" if len(inputs.args) == 1 else f"input{first.idx}"
                name = ".".join([name, _path_name(rest)]) if rest else name
            dtype = str(value.dtype).replace("torch.", "")
            described.append({"name": name, "shape": list(value.shape), "dtype": dtype})
    return described


def _path_name(path: Sequence[Any]) -> str:
    parts = []
    for key in path:
        for attr in ("key", "idx", "name"):
            if hasattr(key, attr):
                parts.append(str(getattr(key, attr)))
                break
    return ".".join(parts)


def _outputs(tracer: _Tracer, out: object, lengths: tuple[int, ...]) -> list[dict[str, Any]]:
    leaves, _ = tree_flatten_with_path(out)
    found = []
    for path, value in leaves:
        if isinstance(value, torch.Tensor):
            found.append({"name": _path_name(path) or "output", "shape": list(value.shape),
                          "receptive_field": map_report(tracer.lookup(value), lengths)})
    return found


def summary(model: nn.Module | str, input_size: Sequence[int] | str | None = None, depth: int | None = None,
            *, input_data: InputData | None = None, model_options: dict[str, Any] | None = None,
            **model_kwargs: Any) -> Summary:
    """Per-layer shapes, parameters, MACs, FLOPs, activation memory and receptive fields of ``model``.

    ``model`` is any ``nn.Module`` or a registered name (built on meta with ``in_chans`` from the input
    and ``model_kwargs``; ``model_options`` holds options whose names ``summary`` itself takes, such as
    U-Net's ``depth``). Give one image's size, ``(C, H, W)`` or ``"1x28x28"`` (a registered name
    defaults to its family's standard input), or example inputs ``input_data``: a tensor with its batch
    dimension, a tuple or list of positional arguments, or a dict of keyword arguments, of any dtype
    (token ids, masks, lists of images). Fields are measured on the first floating input with channels
    and a spatial axis. ``depth`` collapses every module deeper than that many levels into its
    ancestor's row (1: stem, stages and head). The forward pass runs on meta tensors when it can (VGG-16
    or ResNet-152 at 224x224 in well under a second), else once on real ones.
    """
    if depth is not None and depth < 0:
        raise ConfigError(f"depth must be 0 or more, got {depth}")
    module, size = _resolve(model, input_size, input_data, {**(model_options or {}), **model_kwargs})
    dtype = _model_dtype(module)
    if input_data is not None:
        inputs = _as_inputs(input_data)
        describe = "the given inputs"
    else:
        inputs = _Inputs((torch.empty((1, *size), device="meta", dtype=dtype),), {}, shape_only=True)
        describe = f"a {'x'.join(str(v) for v in size)} input"
    tracer, out, ran_on, notes = _run(module, inputs, describe)
    image = inputs.image()
    lengths = tuple(image.shape[2:]) if image is not None else ()
    rows = _Rows(lengths, depth)
    layers = list(rows.of(tracer.root))
    unused = rows.unused(module)
    if unused is not None:
        layers.append(unused)
    totals = _aggregate(tracer.root, rows.memo)
    outputs = _outputs(tracer, out, lengths)
    training_bytes = None
    if input_data is None and ran_on == "meta":
        try:
            training_bytes = _training_bytes_per_image(module, size, dtype)
        except FORWARD_ERRORS + (ValueError,) as err:
            notes.append(f"training memory not measured: the training-mode forward failed ({_first_line(err)})")
    elif input_data is not None:
        notes.append("training memory not measured for example inputs (it needs batches of 2 and 3 images)")
    else:
        notes.append("training memory not measured: it needs a forward on meta tensors")
    used = _used_parameters(module, tracer.read)
    total = {
        "params": sum(p.numel() for p in used),
        "all_params": count_params(module),
        "trainable_params": sum(p.numel() for p in used if p.requires_grad),
        "param_bytes": sum(p.numel() * p.element_size() for p in module.parameters()),
        "macs": totals.macs,
        "flops": totals.flops,
        "activation_bytes": totals.activation_bytes,
        "training_bytes": training_bytes,
        "receptive_field": outputs[0]["receptive_field"] if outputs else None,
        "depth": max((tracer.depth.get(id(t), 0) for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)),
                     default=0),
        "outputs": outputs,
    }
    main = next((t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)), None)
    lost = tracer.lookup(main) if main is not None else None
    if lost is not None and lost.places is None:
        notes.append(f"receptive field unknown: the positions of the feature map were lost at aten.{lost.lost_at}")
    by_operator = [{"operator": name, "calls": c[0], "macs": c[1], "flops": c[2]}
                   for name, c in sorted(tracer.operators.items(), key=lambda kv: (-kv[1][2], kv[0]))]
    first = image if image is not None else (inputs.tensors()[0] if inputs.tensors() else None)
    shown_size = tuple(first.shape[1:]) if input_data is not None and first is not None else size
    return Summary(_label(module), shown_size, str(dtype).replace("torch.", ""), layers, total,
                   sorted(tracer.uncounted), by_operator, _describe_inputs(inputs) if input_data is not None else [],
                   ran_on, notes)


def _used_parameters(model: nn.Module, names: set[str]) -> list[nn.Parameter]:
    """The parameters (each once) whose names the traced forward read."""
    unique: dict[int, nn.Parameter] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        if name in names:
            unique.setdefault(id(p), p)
    return list(unique.values())


def layer_fields(model: nn.Module, input_size: Sequence[int]) -> dict[str, Field]:
    """The receptive field of every module's output (the last call's), keyed by module name; ``""`` is the model.

    ``field.unit_span(index)`` gives the exact input pixels one unit sees, also after upsampling, where the
    ``size, stride, start`` of the summary describe the widest unit and unit 0. Modules whose output
    positions could not be followed are left out.
    """
    module, size = _resolve(model, input_size, None, {})
    inputs = _Inputs((torch.empty((1, *size), device="meta", dtype=_model_dtype(module)),), {}, shape_only=True)
    tracer, _, _, _ = _run(module, inputs, f"a {'x'.join(str(v) for v in size)} input")
    fields: dict[str, Field] = {}
    stack = [tracer.root]
    while stack:
        call = stack.pop()
        if call.traced is not None and call.traced.places is not None:
            fields[call.name] = call.traced.field
        stack.extend(reversed(call.children))
    return fields
