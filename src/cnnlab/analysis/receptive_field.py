"""Receptive fields that follow the real computation graph, and an independent gradient-based measurement.

Araujo, Norris & Sim (2019), "Computing Receptive Fields of Convolutional Neural Networks", Distill.

A feature map's receptive field is reported per spatial axis by three numbers, in input pixels:

- ``size``: how many input pixels one unit sees (its extent; with dilation the field may have holes),
- ``stride``: how far apart the fields of two neighbouring units are (the effective stride, or "jump"),
- ``start``: the first input pixel seen by unit 0 (negative when the field reaches into the padding).

For maps made by convolution and pooling, unit ``i`` sees input pixels ``start + i * stride`` to
``start + i * stride + size - 1``. Upsampling breaks that regularity (two output units read the same
input unit), so each axis is tracked exactly as a pattern that repeats every few units (:class:`Axis`);
``size`` is then the widest field, ``stride`` the average spacing and ``start`` unit 0's first pixel,
and :meth:`Field.unit_span` gives any unit's exact field.

The summary (``cnnlab.analysis.summary``) propagates a :class:`Field` through every tensor operation of a
forward pass (``cnnlab.analysis.field_trace``), so residual additions, Inception branches, DenseNet's
concatenations and U-Net skips take the union of their inputs' fields, as the graph runs them, and
channels-last blocks, token sequences and attention windows are followed through their permutes and
reshapes.
:func:`gradient_receptive_field` measures the same thing independently, from the support of the input
gradient of one output unit.

Conventions worth knowing:

- Fields are computed on the infinite grid: zero padding counts as units whose fields continue the grid
  (this is Araujo et al.'s "effective padding", ``-start``). Near the image border, replicate and reflect
  padding copy real pixels instead, so only interior units match a measurement there.
- Pooling follows the same arithmetic as convolution; ``ceil_mode`` adds output units, not field size.
- Global pooling, adaptive pooling to 1, a mean over H and W and flattening a map are a window over
  every unit of the axis: size grows by ``(n - 1) * stride``. Adaptive pooling to m > 1 follows PyTorch's
  windows ``[floor(i n/m), ceil((i+1) n/m))`` exactly.
- Interpolation follows PyTorch's source positions (scale factor or size, ``align_corners``); linear and
  cubic taps with weight 0 (a source position exactly on an input unit) are not counted.
- Multiplying a map by a broadcast context vector (squeeze-excitation) gives every unit the context's
  field; when that contains every unit's own field, the result has stride 0: all units see one region.
  When that region holds the whole input, the field is reported as "global" (so is attention over all
  tokens).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from cnnlab.errors import ConfigError, InputSizeError

__all__ = ["Axis", "Field", "gradient_receptive_field", "union", "union_axis"]


def _plain(value: Fraction) -> int | float:
    """A Fraction as an int when whole, else a float: what JSON and tables show."""
    return int(value) if value.denominator == 1 else float(value)


@dataclass(frozen=True)
class Axis:
    """The fields of the units along one axis of a map: a pattern of ``period`` units that repeats.

    Unit ``q * period + r`` sees input pixels ``spans[r]`` moved by ``q * shift``. Maps computed by
    convolutions and pooling have period 1 (every unit's field is the previous one moved by the stride);
    upsampling makes neighbouring units read the same input unit, and the pattern then repeats only
    every few units.
    """

    period: int
    shift: int  # input pixels between the fields of unit u and unit u + period
    spans: tuple[tuple[int, int], ...]  # (first, last) input pixel seen by units 0 .. period-1

    @classmethod
    def of_input(cls) -> Axis:
        return cls(1, 1, ((0, 0),))

    def span(self, unit: int) -> tuple[int, int]:
        """(first, last) input pixel seen by ``unit`` (any integer: units outside the map are padding)."""
        q, r = divmod(unit, self.period)
        lo, hi = self.spans[r]
        return lo + q * self.shift, hi + q * self.shift

    @property
    def size(self) -> int:
        """The widest field along this axis (every unit's, when the period is 1)."""
        return max(hi - lo + 1 for lo, hi in self.spans)

    @property
    def stride(self) -> Fraction:
        """Average distance between neighbouring fields (the effective stride)."""
        return Fraction(self.shift, self.period)

    @property
    def start(self) -> int:
        return self.spans[0][0]

    def gather(self, ratio: Fraction, taps: Callable[[int], Sequence[int]]) -> Axis:
        """The axis of a map whose unit ``o`` reads input units ``taps(o)``, ``ratio`` units apart on average.

        ``taps`` must repeat: ``taps(o + q) = taps(o) + q * ratio`` whenever ``q * ratio`` is a whole
        number of this axis's periods (true of convolution, pooling, resampling and cropping).
        """
        a, b = ratio.numerator, ratio.denominator
        step = self.period // math.gcd(a, self.period) if a else 1
        return self.regroup(b * step, a * step, taps)  # output units per repeat, input units they advance

    def regroup(self, period: int, advance: int, taps: Callable[[int], Sequence[int]]) -> Axis:
        """The axis whose unit ``o < period`` reads input units ``taps(o)``, and unit ``o + period`` those
        moved by ``advance`` (a whole number of this axis's periods)."""
        spans = []
        for o in range(period):
            firsts, lasts = zip(*(self.span(u) for u in taps(o)))
            spans.append((min(firsts), max(lasts)))
        return _shortest(Axis(period, self.shift * advance // self.period, tuple(spans)))

    def blocks(self, block: int) -> Axis:
        """Every unit sees the union over its block of ``block`` units: [block * (u // block), + block)."""
        length = math.lcm(block, self.period)
        return self.regroup(length, length, lambda o: range(o - o % block, o - o % block + block))

    def extent(self, n: int) -> tuple[int, int]:
        """(first, last) input pixel seen by any of units 0 .. n-1."""
        first = min(self.span(u)[0] for u in range(min(n, self.period)))
        last = max(self.span(u)[1] for u in range(max(0, n - self.period), max(n, 1)))
        return first, last

    def mixed(self, n: int) -> Axis:
        """Every unit sees what units 0 .. n-1 see together: stride 0."""
        return Axis(1, 0, (self.extent(n),))

    def window(self, kernel: int, stride: int, padding: int, dilation: int) -> Axis:
        """After a convolution or pooling window: unit o reads units o*s - p + t*d, t = 0..k-1."""
        return self.gather(Fraction(stride),
                           lambda o: [o * stride - padding + t * dilation for t in range(kernel)])

    def transposed(self, kernel: int, stride: int, padding: int, dilation: int) -> Axis:
        """After a transposed convolution: unit o receives the units i with o = i*s - p + t*d."""

        def taps(o: int) -> list[int]:
            hits = [(o + padding - t * dilation) // stride for t in range(kernel)
                    if (o + padding - t * dilation) % stride == 0]
            return hits or [(o + padding) // stride]  # a unit between taps sees only the bias

        return self.gather(Fraction(1, stride), taps)


def _shortest(axis: Axis) -> Axis:
    # The same pattern may repeat within the period (e.g. a stride-2 window after a 2x upsampling).
    for q in range(1, axis.period):
        if axis.period % q or (axis.shift * q) % axis.period:
            continue
        moved = axis.shift * q // axis.period
        if all(axis.spans[o + q] == (axis.spans[o][0] + moved, axis.spans[o][1] + moved)
               for o in range(axis.period - q)):
            return Axis(q, moved, axis.spans[:q])
    return axis


@dataclass(frozen=True)
class Field:
    """Receptive field of the units of one feature map: one :class:`Axis` per spatial axis."""

    axes: tuple[Axis, ...]
    is_global: bool = False  # produced by reducing whole axes (global pooling), not by a local window

    @classmethod
    def of_input(cls, ndim: int) -> Field:
        """The input itself: every pixel sees itself."""
        return cls(tuple(Axis.of_input() for _ in range(ndim)))

    def with_axis(self, index: int, axis: Axis) -> Field:
        """This field with axis ``index`` replaced."""
        return Field(self.axes[:index] + (axis,) + self.axes[index + 1:], self.is_global)

    def is_whole_input(self, lengths: Sequence[int]) -> bool:
        """Whether every unit sees one region (stride 0 on every axis) holding the whole input of ``lengths``."""
        return all(a.shift == 0 and a.spans[0][0] <= 0 and a.spans[0][1] >= n - 1
                   for a, n in zip(self.axes, lengths))

    @property
    def ndim(self) -> int:
        return len(self.axes)

    @property
    def size(self) -> tuple[int, ...]:
        return tuple(a.size for a in self.axes)

    @property
    def stride(self) -> tuple[Fraction, ...]:
        return tuple(a.stride for a in self.axes)

    @property
    def start(self) -> tuple[int, ...]:
        return tuple(a.start for a in self.axes)

    def unit_span(self, index: Sequence[int]) -> list[tuple[int, int]]:
        """(first, last) input pixel per axis seen by the unit at ``index`` (exact, also after upsampling)."""
        return [axis.span(i) for axis, i in zip(self.axes, index)]

    def window(self, kernel: Sequence[int], stride: Sequence[int], padding: Sequence[int],
               dilation: Sequence[int]) -> Field:
        """After a convolution or pooling window applied to the last ``len(kernel)`` axes."""
        return self._map(len(kernel), lambda ax, i: ax.window(kernel[i], stride[i], padding[i], dilation[i]))

    def transposed(self, kernel: Sequence[int], stride: Sequence[int], padding: Sequence[int],
                   dilation: Sequence[int]) -> Field:
        """After a transposed convolution: the stride shrinks by ``stride``."""
        return self._map(len(kernel),
                         lambda ax, i: ax.transposed(kernel[i], stride[i], padding[i], dilation[i]))

    def gathered(self, rules: Sequence[tuple[Fraction, Callable[[int], Sequence[int]]]]) -> Field:
        """After resampling: one (ratio, taps) per trailing axis, as in :meth:`Axis.gather`."""
        return self._map(len(rules), lambda ax, i: ax.gather(*rules[i]))

    def reduced(self, axes: Sequence[int], lengths: Sequence[int]) -> Field:
        """After a window over every unit of ``axes`` (global pooling, flattening): one unit sees them all."""
        new = list(self.axes)
        for a, n in zip(axes, lengths):
            new[a] = new[a].window(n, 1, 0, 1)
        return Field(tuple(new), True)

    def as_dict(self) -> dict[str, object]:
        """``{"size", "stride", "start"}``: plain numbers when every axis agrees, else one per axis."""
        return {"size": _collapse_axes(self.size), "stride": _collapse_axes(self.stride),
                "start": _collapse_axes(self.start)}

    def _map(self, count: int, fn: Callable[[Axis, int], Axis]) -> Field:
        new = list(self.axes)
        first = self.ndim - count
        for i in range(count):
            if first + i >= 0:  # a window over a channel-like axis (local response norm) leaves the map alone
                new[first + i] = fn(new[first + i], i)
        return Field(tuple(new), self.is_global)


def _collapse_axes(values: tuple) -> object:
    plain = [_plain(Fraction(v)) for v in values]
    return plain[0] if len(set(plain)) == 1 else plain


def union(fields: Sequence[Field], context: Sequence[Field] = (), lengths: Sequence[int] = ()) -> Field:
    """Field of an element-wise combination (addition, concatenation) of maps with ``fields``.

    ``context`` are fields of inputs with one unit per axis, read by every output unit (a squeeze-excitation
    gate); ``lengths`` are the output's units per axis. Along an axis where a part does not move from
    unit to unit (a context, or a map that already has stride 0), the result has stride 0 when that
    region contains every unit's own field; otherwise each unit gets the union at its phase.
    """
    axes = []
    for a in range(fields[0].ndim):
        n = lengths[a] if a < len(lengths) else 1
        parts = [f.axes[a] for f in fields]
        moving = [p for p in parts if p.shift != 0]
        still = [p for p in parts if p.shift == 0] + [c.axes[a] for c in context]
        axes.append(union_axis(moving, still, n))
    return Field(tuple(axes), all(f.is_global for f in (*fields, *context)))


def union_axis(moving: list[Axis], still: list[Axis], n: int) -> Axis:
    """Union at each unit of ``n`` along one axis: ``moving`` parts on one grid, ``still`` ones the same for all."""
    region = None
    if still:
        region = (min(lo for p in still for lo, _ in p.spans), max(hi for p in still for _, hi in p.spans))
    if not moving:
        return Axis(1, 0, (region,))
    period = math.lcm(*(p.period for p in moving))
    # maps combined element-wise share one grid: their shifts per period agree
    shift = max(p.shift * (period // p.period) for p in moving)
    spans = [(min(p.span(o)[0] for p in moving), max(p.span(o)[1] for p in moving)) for o in range(period)]
    grid = _shortest(Axis(period, shift, tuple(spans)))
    if region is None:
        return grid
    first = min(grid.span(u)[0] for u in range(min(n, grid.period)))
    last = max(grid.span(u)[1] for u in range(max(0, n - grid.period), n))
    if region[0] <= first and region[1] >= last:
        return Axis(1, 0, (region,))  # every unit sees the whole region: stride 0
    return Axis(grid.period, grid.shift,
                tuple((min(lo, region[0]), max(hi, region[1])) for lo, hi in grid.spans))


# --------------------------------------------------------------------------------------------------
# Empirical measurement: the support of the input gradient of one output unit.
# --------------------------------------------------------------------------------------------------


class _AveragePools(TorchFunctionMode):
    """Runs max pooling as average pooling: a max routes the gradient to one input, an average to all."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _max_pool_functions():
            return _as_average_pool(func, *args, **kwargs)
        return func(*args, **kwargs)


def _max_pool_functions() -> set:
    import torch.nn.functional as F

    return {F.max_pool1d, F.max_pool2d, F.max_pool3d, F.adaptive_max_pool1d, F.adaptive_max_pool2d,
            F.adaptive_max_pool3d, torch.max_pool1d, torch.max_pool2d, torch.max_pool3d,
            F.max_pool1d_with_indices, F.max_pool2d_with_indices, F.max_pool3d_with_indices,
            F.adaptive_max_pool1d_with_indices, F.adaptive_max_pool2d_with_indices,
            F.adaptive_max_pool3d_with_indices}


def _as_average_pool(func: Callable, x: torch.Tensor, *args, **kwargs) -> torch.Tensor | tuple:
    import torch.nn.functional as F

    name = getattr(func, "__name__", "")
    dims = x.dim() - 2
    if "adaptive" in name:
        params = dict(zip(("output_size", "return_indices"), args)) | kwargs
        pool = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}[dims]
        out = pool(x, params["output_size"])
    else:
        names = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
        params = dict(zip(names, args)) | kwargs
        dilation = params.get("dilation", 1)
        if any(int(d) != 1 for d in ((dilation,) if isinstance(dilation, int) else dilation)):
            raise ConfigError("gradient_receptive_field cannot measure a dilated max pooling")
        stride = params.get("stride")
        pool = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[dims]
        kernel = params["kernel_size"]
        out = pool(x, kernel, stride if stride not in (None, [], ()) else kernel, params.get("padding", 0),
                   bool(params.get("ceil_mode", False)))
    if params.get("return_indices") or "with_indices" in name:
        return out, torch.zeros_like(out, dtype=torch.long)
    return out


@torch.no_grad()
def _make_positive(model: nn.Module) -> None:
    """Weights 1/fan-in and zero biases: every path from input to output carries a positive gradient."""
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if name == "weight" and p.dim() > 1:
                transposed = isinstance(module, nn.modules.conv._ConvTransposeNd)
                fan_in = p.shape[0] if transposed else p[0].numel()
                p.fill_(1.0 / fan_in)
            elif name == "weight":
                p.fill_(1.0)
            else:
                p.fill_(0.0)
        if isinstance(module, nn.modules.batchnorm._NormBase) and module.track_running_stats:
            module.running_mean.zero_()
            module.running_var.fill_(1.0)


def gradient_receptive_field(model: nn.Module, input_size: Sequence[int], unit: Sequence[int] | None = None,
                             layer: str | None = None) -> list[tuple[int, int]]:
    """Measure (first, last) input pixel per axis that one unit of ``layer``'s output depends on.

    An independent check of the traced fields: a copy of ``model`` gets positive weights (1/fan-in, zero
    biases, identity batch norm) and its max pools run as average pools, so no gradient cancels or is
    routed to a single input; the nonzero support of d(sum over channels of one unit)/d(input) is then
    the unit's receptive field, clipped to the image. ``unit`` indexes the spatial axes (default: the
    centre unit); ``layer`` names a module whose output is measured (default: the model's output).
    """
    probe = copy.deepcopy(model).to(torch.float64).eval()
    _make_positive(probe)
    captured: list[torch.Tensor] = []
    handle = None
    if layer is not None:
        modules = dict(probe.named_modules())
        if layer not in modules:
            raise ConfigError(f"no module named {layer!r} in {type(model).__name__}; named_modules() lists them")
        handle = modules[layer].register_forward_hook(lambda m, i, o: captured.append(o))
    x = torch.ones((1, *input_size), dtype=torch.float64, requires_grad=True)
    try:
        with _AveragePools():
            out = probe(x)
    finally:
        if handle is not None:
            handle.remove()
    fmap = captured[0] if layer is not None else out
    if not isinstance(fmap, torch.Tensor):
        fmap = fmap[0]
    spatial = fmap.shape[2:]
    index = tuple(unit) if unit is not None else tuple(n // 2 for n in spatial)
    if len(index) != len(spatial):
        raise InputSizeError(f"unit {index} has {len(index)} indices; the map has {len(spatial)} spatial axes")
    fmap[(0, slice(None), *index)].sum().backward()
    support = x.grad[0].abs().sum(0) > 0  # (H, W): pixels that reach the unit
    spans = []
    for axis in range(support.dim()):
        others = tuple(a for a in range(support.dim()) if a != axis)
        hit = support.any(dim=others) if others else support
        idx = hit.nonzero().flatten()
        spans.append((int(idx.min()), int(idx.max())) if idx.numel() else (0, -1))
    return spans
