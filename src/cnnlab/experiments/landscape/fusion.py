"""Convolution, residual addition and ReLU as one oneDNN primitive, for fast CPU inference of a fixed network.

Eager PyTorch runs a residual block's last convolution, the addition of the shortcut and the ReLU as three
passes over memory. oneDNN, the CPU convolution library PyTorch calls, can apply the addition and the ReLU
to the convolution's output as it writes it ("post-ops"; Intel, oneDNN Developer Guide, "Primitive
Attributes: Post-ops"). PyTorch exposes this as ``torch.ops.mkldnn._convolution_pointwise``, the operator
its inductor compiler emits on CPUs; compiling costs tens of seconds on 2 cores, so cnnlab rewrites the
graph itself:

``FusedForward`` traces a network once per input shape into an ATen graph (``make_fx``), with the
parameters and buffers as graph inputs so that weights written later (every landscape point) are read, and
replaces ``convolution -> relu`` and ``convolution -> add -> [relu]`` by the fused operator. Everything else
runs as traced. It applies to float32 2-D convolutions on the CPU; ``fusable`` says whether this PyTorch has
the operator. Measured in ``benchmarks/landscape_speed.py`` (docs/landscape.md).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import fx, nn

__all__ = ["FusedForward", "fusable"]

_aten = torch.ops.aten
_RELUS = (_aten.relu.default, _aten.relu_.default)


def fusable(device: torch.device) -> bool:
    """Whether fused convolutions can run on ``device`` (a CPU, with PyTorch's oneDNN operators)."""
    return (device.type == "cpu" and torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.mkldnn, "_convolution_pointwise"))


def _like_input(other: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``other`` in ``x``'s memory layout (the fused addition reads both the same way)."""
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return other.contiguous(memory_format=torch.channels_last)
    return other.contiguous()


def conv_relu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: list[int],
              stride: list[int], dilation: list[int], groups: int) -> torch.Tensor:
    """relu(conv2d(x)) in one oneDNN primitive."""
    return torch.ops.mkldnn._convolution_pointwise(x, weight, bias, padding, stride, dilation, groups, "relu", [],
                                                   None)


def conv_add(x: torch.Tensor, other: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
             padding: list[int], stride: list[int], dilation: list[int], groups: int, relu: bool) -> torch.Tensor:
    """[relu](conv2d(x) + other) in one oneDNN primitive."""
    return torch.ops.mkldnn._convolution_pointwise.binary(
        x, _like_input(other, x), weight, bias, padding, stride, dilation, groups, "add", None,
        "relu" if relu else None, [], None)


def _conv_args(node: fx.Node) -> tuple | None:
    """(x, weight, bias, padding, stride, dilation, groups) of a float32 2-D convolution node, else None."""
    x, weight, bias, stride, padding, dilation, transposed, _, groups = node.args
    val = node.meta.get("val")
    if transposed or len(stride) != 2 or val is None or val.dtype != torch.float32 or val.dim() != 4:
        return None
    return x, weight, bias, list(padding), list(stride), list(dilation), groups


def _only_user(node: fx.Node) -> fx.Node | None:
    users = list(node.users)
    return users[0] if len(users) == 1 else None


def fuse_graph(graph: fx.Graph) -> int:
    """Rewrite ``graph`` in place: conv -> relu and conv -> add -> [relu] become fused calls; how many."""
    fused = 0
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target is not _aten.convolution.default:
            continue
        args = _conv_args(node)
        user = _only_user(node)
        if args is None or user is None:
            continue
        if user.target in _RELUS:
            with graph.inserting_after(user):
                new = graph.call_function(conv_relu, args)
            new.meta = dict(user.meta)  # shapes, for the rewrites of the nodes that read it
            user.replace_all_uses_with(new)
            graph.erase_node(user)
            graph.erase_node(node)
            fused += 1
            continue
        if user.target is not _aten.add.Tensor or user.kwargs or len(user.args) != 2:
            continue
        other = user.args[1] if user.args[0] is node else user.args[0]
        other_val = other.meta.get("val") if isinstance(other, fx.Node) else None
        if other is node or other_val is None or tuple(other_val.shape) != tuple(node.meta["val"].shape):
            continue
        relu = _only_user(user)
        relu = relu if relu is not None and relu.target in _RELUS else None
        last = relu or user
        x, weight, bias, padding, stride, dilation, groups = args
        with graph.inserting_after(last):
            new = graph.call_function(conv_add, (x, other, weight, bias, padding, stride, dilation, groups,
                                                 relu is not None))
        new.meta = dict(last.meta)
        last.replace_all_uses_with(new)
        if relu is not None:
            graph.erase_node(relu)
        graph.erase_node(user)
        graph.erase_node(node)
        fused += 1
    graph.lint()
    return fused


class FusedForward:
    """``module``'s forward with fused convolutions, traced per input shape; reads the module's tensors live."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        state = {**dict(module.named_parameters()), **dict(module.named_buffers())}
        self.names = list(state)
        self.tensors = [t.detach() for t in state.values()]
        self.graphs: dict[tuple, Callable] = {}
        self.fused = 0

    def _trace(self, x: torch.Tensor) -> Callable:
        from torch.func import functional_call
        from torch.fx.experimental.proxy_tensor import make_fx

        def forward(tensors: list[torch.Tensor], inputs: torch.Tensor):
            return functional_call(self.module, dict(zip(self.names, tensors)), (inputs,))

        with torch.no_grad():
            traced = make_fx(forward)(self.tensors, x)
        self.fused = fuse_graph(traced.graph)
        traced.recompile()
        return traced

    def __call__(self, x: torch.Tensor):
        key = (tuple(x.shape), tuple(x.stride()), x.dtype)
        graph = self.graphs.get(key)
        if graph is None:
            graph = self.graphs[key] = self._trace(x)
        return graph(self.tensors, x)
