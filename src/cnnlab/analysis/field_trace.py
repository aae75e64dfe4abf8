"""Receptive fields through the ATen operations of a forward pass, wherever the spatial axes go.

Araujo, Norris & Sim (2019), "Computing Receptive Fields of Convolutional Neural Networks", Distill.

The summary (``cnnlab.analysis.summary``) gives every tensor of a forward pass a :class:`Traced`: the
field of its units (:class:`~cnnlab.analysis.receptive_field.Field`) and where each spatial axis of the
input lives among the tensor's dimensions. An axis does not stay in the last dimensions: a channels-last
block permutes it (ConvNeXt, Swin), a linear layer on a channels-last map flattens it with the batch into
the rows of a matrix product and back, a vision transformer flattens H and W into one axis of tokens, and
Swin splits each axis into windows and positions inside a window. So each axis is recorded as the digits
of its unit index held by the dimensions (:class:`Digit`): unit ``u = sum(((i[dim] // step) % size) *
weight)``. Views and reshapes move digits between dimensions exactly when the reshaped ranges line up,
permutes and transposes rename dimensions, and an operation that reads every entry of a dimension (a
reduction, a softmax, the contracted dimension of a matrix product, the channels of a convolution)
mixes the units whose digits that dimension holds:

- every digit of an axis: each element sees the union over the whole axis (attention over all tokens,
  global pooling, a fully connected layer on a flattened map);
- the lowest digits (the positions inside Swin's windows): each unit sees the union over its block;
- any other part of an axis: the positions are lost.

Where positions are lost (an unaligned reshape, a class token prepended to a ViT's patch tokens, a
gather with computed indices) the tensor keeps only an upper bound, reported as unknown, never as a
number; it becomes exact again when an operation reads every entry of a set of dimensions that holds
every unit (the softmax of attention over all tokens): each element then sees the union of everything.

In a matrix product whose operands hold the same axis in different dimensions (the scores ``q @ k^T``
of attention), the second operand's differing digits are mixed: each score sees its query and all keys,
as it does after the softmax that always follows. Normalization statistics (batch, layer, group norm)
are treated as per-unit scales, as in Araujo et al.; ``torch.roll`` is a shift without the wrap-around
(Swin masks the wrapped part of its shifted windows, so its fields are exact).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import NamedTuple

import torch

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
    PADS,
    REDUCTIONS,
    SOFTMAXES,
    STAT_NORMS,
    arg,
    ints,
    op_name,
    tensor_args,
)
from cnnlab.analysis.receptive_field import Axis, Field, union_axis
from cnnlab.models.layers import conv_output_size

__all__ = ["Digit", "Place", "Traced", "op_field", "report", "seed"]


class Digit(NamedTuple):
    """Part of a spatial axis's unit index held by one tensor dimension: ``((i[dim] // step) % size) * weight``."""

    dim: int
    step: int
    size: int
    weight: int


class Place(NamedTuple):
    """Where one spatial axis lives in a tensor: ``length`` units indexed by ``digits``."""

    length: int  # units along the axis; 0 once every element reads all of them (mixed)
    digits: tuple[Digit, ...]


MIXED = Place(0, ())


class Traced(NamedTuple):
    """The receptive field a tensor carries and where its spatial axes are."""

    field: Field
    places: tuple[Place, ...] | None  # None: positions lost, ``field`` bounds every element (unknown)
    groups: tuple[frozenset[int], ...] = ()  # (lost) dimensions that together hold every unit of the map
    map: Field | None = None  # the last feature map this tensor comes from: what global pooling read
    lost_at: str = ""  # (lost) the operation that lost the positions

    @property
    def spatial(self) -> bool:
        """Whether the tensor is a feature map: its dimensions index the units of every axis."""
        return self.places is not None and all(_base(p) is not None for p in self.places)


Lookup = Callable[[torch.Tensor], "Traced | None"]


def seed(x: torch.Tensor, naxes: int) -> Traced:
    """The input image ``(..., C, *spatial)``: every pixel sees itself."""
    first = x.dim() - naxes
    places = tuple(Place(n, (Digit(first + a, 1, n, 1),)) for a, n in enumerate(x.shape[first:]))
    field = Field.of_input(naxes)
    return Traced(field, places, (), field)


def report(traced: Traced | None, lengths: tuple[int, ...]) -> dict | str | None:
    """A tensor's field as the summary shows it: ``{"size", "stride", "start"}``, "global" or None (unknown).

    "global": every element sees one region holding the whole input (``lengths`` pixels per axis).
    """
    if traced is None or traced.places is None:
        return None
    if traced.field.is_whole_input(lengths):
        return "global"
    return _rebased(traced).as_dict() if traced.spatial else traced.field.as_dict()


def map_report(traced: Traced | None, lengths: tuple[int, ...]) -> dict | str | None:
    """The field of an output's feature map: its own when it is a map, else the map global pooling read."""
    if traced is None or traced.places is None:
        return None
    if traced.field.is_whole_input(lengths):
        return "global"
    if traced.spatial and not traced.field.is_global:
        return _rebased(traced).as_dict()
    if traced.map is None:
        return None
    return "global" if traced.map.is_whole_input(lengths) else traced.map.as_dict()


def op_field(func, args: tuple, kwargs: dict, out: torch.Tensor, lookup: Lookup) -> Traced | None:
    """The field of ``out``, an output of the ATen call ``func(*args, **kwargs)``; None if no input has one."""
    inputs = [(t, tr) for t in tensor_args(args, kwargs) if (tr := lookup(t)) is not None]
    if not inputs:
        return None
    x = args[0] if args and isinstance(args[0], torch.Tensor) else None
    tx = lookup(x) if x is not None else None
    op = _Op(func, args, kwargs, x, tx, out, inputs, op_name(func))
    packet = func.overloadpacket
    if packet in _CREATIONS or op.name.startswith("new_"):
        return None  # a new tensor of the same shape or dtype: its values do not come from the input
    if packet in MATMULS:
        result = _matmul(op)
    elif packet is _aten.cat:
        result = _concatenation(op)
    elif tx is not None and (rule := _rule(func)) is not None:
        result = rule(op)
    else:
        result = _elementwise(op)
    return _with_map(result, inputs)


# --------------------------------------------------------------------------------------------------
# Places: normalizing, moving and mixing digits
# --------------------------------------------------------------------------------------------------


class _Op(NamedTuple):
    func: object
    args: tuple
    kwargs: dict
    x: torch.Tensor | None
    tx: Traced | None
    out: torch.Tensor
    inputs: list[tuple[torch.Tensor, Traced]]
    name: str


_aten = torch.ops.aten


def _base(place: Place) -> int | None:
    """b when the digits index units 0, b, 2b, ... of the axis (1: every unit); None when they do not."""
    if place.length == 0:
        return None
    digits = sorted((d for d in place.digits if d.size > 1), key=lambda d: d.weight)
    if not digits:
        return 1 if place.length == 1 else None
    base = weight = digits[0].weight
    for d in digits:
        if d.weight != weight:
            return None
        weight *= d.size
    return base if weight == place.length else None


def _rebased(traced: Traced) -> Field:
    """The field per unit of the map the digits index (a unit of a map indexed every b units is b wide)."""
    axes = list(traced.field.axes)
    for a, place in enumerate(traced.places):
        b = _base(place)
        if b and b > 1:
            axes[a] = axes[a].gather(Fraction(b), lambda o, b=b: range(o * b, o * b + b))
    return Field(tuple(axes), traced.field.is_global)


def _normal(place: Place) -> Place:
    """Size-1 digits dropped beside others; digits that continue each other in one dimension merged."""
    digits = [d for d in place.digits if d.size > 1] or list(place.digits[:1])
    digits.sort(key=lambda d: (d.dim, d.step))
    merged: list[Digit] = []
    for d in digits:
        last = merged[-1] if merged else None
        if (last is not None and last.dim == d.dim and d.step == last.step * last.size
                and d.weight == last.weight * last.size):
            merged[-1] = Digit(last.dim, last.step, last.size * d.size, last.weight)
        else:
            merged.append(d)
    return Place(place.length, tuple(merged))


def _bound(traced: Traced) -> Field:
    """One region per axis holding what any element sees: the upper bound a lost tensor keeps."""
    if traced.places is None:
        return traced.field
    axes = tuple(axis.mixed(p.length) if p.length else Axis(1, 0, (axis.span(0),))
                 for axis, p in zip(traced.field.axes, traced.places))
    return Field(axes, traced.field.is_global)


def _lose(traced: Traced, name: str, groups: tuple[frozenset[int], ...] = ()) -> Traced:
    return Traced(_bound(traced), None, groups, traced.map, traced.lost_at or name)


def _recovered(traced: Traced) -> Traced:
    """Every element read every unit: the bound is now exact, the same region for all."""
    field = _bound(traced)
    return Traced(field, tuple(MIXED for _ in field.axes), (), traced.map)


DigitMove = Callable[[Digit], "tuple[Digit, ...] | None"]


def _move(traced: Traced, shape: tuple[int, ...], move: DigitMove, name: str) -> Traced:
    """Every digit (and every dimension of a lost tensor's groups) moved by ``move``; lost where it cannot."""
    if traced.places is None:
        groups = []
        for group in traced.groups:
            moved = [move(Digit(d, 1, shape[d], 1)) for d in group]
            if all(m is not None for m in moved):
                groups.append(frozenset(d.dim for m in moved for d in m))
        return traced._replace(groups=tuple(groups))
    places = []
    for place in traced.places:
        digits: list[Digit] = []
        for d in place.digits:
            moved = move(d)
            if moved is None:
                return _lose(traced, name)
            digits.extend(moved)
        places.append(_normal(Place(place.length, tuple(digits))))
    return traced._replace(places=tuple(places))


def _contiguous_strides(shape: tuple[int, ...]) -> list[int]:
    strides, acc = [], 1
    for n in reversed(shape):
        strides.append(acc)
        acc *= n
    return strides[::-1]


def _view_move(old: tuple[int, ...], new: tuple[int, ...]) -> DigitMove:
    """Digits through a reshape: each lands in the new dimensions its range of flat positions falls in."""
    old_c, new_c = _contiguous_strides(old), _contiguous_strides(new)

    def move(d: Digit) -> tuple[Digit, ...] | None:
        lo = d.step * old_c[d.dim]  # flat positions per value of the digit
        hi = lo * d.size
        if d.size == 1:  # carries no position: keep it in the innermost dimension it fits in
            for nd in reversed(range(len(new))):
                if lo % new_c[nd] == 0 and lo <= new_c[nd] * new[nd]:
                    return (Digit(nd, lo // new_c[nd], 1, d.weight),)
            return ()
        parts = []
        for nd in reversed(range(len(new))):
            c = new_c[nd]
            a, b = max(lo, c), min(hi, c * new[nd])
            if a >= b:
                continue
            if a % lo or a % c or b % a:
                return None
            parts.append(Digit(nd, a // c, b // a, d.weight * (a // lo)))
        return tuple(parts)

    return move


def _renumber(removed: set[int]) -> DigitMove:
    """Digits after dimensions ``removed`` disappear (they hold none)."""
    return lambda d: (d._replace(dim=d.dim - sum(r < d.dim for r in removed)),)


def _mix_axis(axis: Axis, place: Place, mixed: list[Digit], collapse: bool) -> tuple[Axis, Place, bool] | None:
    """One axis after every element read all values of the ``mixed`` digits; None if that cannot be tracked.

    ``collapse``: the mixing dimension goes away (a reduction, a contraction); the field is then the
    window over all units (nominal stride, as global pooling), else every unit sees one region.
    Returns the axis, its place and whether the axis became global.
    """
    rest = tuple(d for d in place.digits if d not in mixed)
    if not any(d.size > 1 for d in rest):
        n = max(place.length, 1)
        return (axis.window(n, 1, 0, 1), MIXED, True) if collapse else (axis.mixed(n), MIXED, False)
    low = sorted((d for d in mixed if d.size > 1), key=lambda d: d.weight)
    if not low:
        return axis, _normal(Place(place.length, rest)), False
    # the mixed digits must be the lowest part of the unit index: then they mix whole blocks of units
    weight = min(d.weight for d in place.digits if d.size > 1)
    for d in low:
        if d.weight != weight:
            return None
        weight *= d.size
    if any(d.weight < weight for d in rest if d.size > 1):
        return None
    return axis.blocks(weight), _normal(Place(place.length, rest)), False


def _mix(traced: Traced, dims: set[int], collapse: bool, name: str) -> Traced:
    """Every element read all entries of ``dims``: the units whose digits they hold are mixed."""
    if traced.places is None:
        if any(group <= dims for group in traced.groups):
            return _recovered(traced)
        return traced._replace(groups=tuple(g for g in traced.groups if not g & dims))
    axes, places = list(traced.field.axes), list(traced.places)
    is_global = traced.field.is_global
    for a, place in enumerate(places):
        mixed = [d for d in place.digits if d.dim in dims]
        if not mixed:
            continue
        done = _mix_axis(axes[a], place, mixed, collapse)
        if done is None:
            return _lose(traced, name)
        axes[a], places[a], became_global = done
        is_global = is_global or became_global
    return Traced(Field(tuple(axes), is_global), tuple(places), (), traced.map)


def _broadcast(t: torch.Tensor, traced: Traced, out: torch.Tensor) -> Traced | None:
    """An input's digits in the output's dimensions (right-aligned); None if it does not broadcast."""
    offset = out.dim() - t.dim()
    if offset < 0 or any(n != out.shape[i + offset] and n != 1 for i, n in enumerate(t.shape)):
        return None
    if traced.places is None:
        return traced._replace(groups=tuple(frozenset(d + offset for d in g) for g in traced.groups))
    places = []
    for place in traced.places:
        # a digit on a broadcast dimension of size 1 holds one unit read by every element: a context
        digits = tuple(d._replace(dim=d.dim + offset) for d in place.digits
                       if t.shape[d.dim] == out.shape[d.dim + offset])
        places.append(Place(place.length, digits))
    return traced._replace(places=tuple(places))


def _combine(parts: list[Traced], name: str, mix_conflicts: bool = False) -> Traced:
    """Each element reads the elements of ``parts`` at its position (already in the output's dimensions)."""
    if len(parts) == 1:
        return parts[0]
    lost = [p for p in parts if p.places is None]
    exact = [p for p in parts if p.places is not None]
    if lost and exact and _covers(exact, lost):
        parts, lost = exact, []  # what a lost part could add is inside what every element already sees
        if len(parts) == 1:
            return parts[0]
    if lost:
        field = _union_bound([_bound(p) for p in parts])
        groups = tuple(dict.fromkeys(g for p in lost for g in p.groups))
        return Traced(field, None, groups, None, lost[0].lost_at)
    axes, places = [], []
    for a in range(parts[0].field.ndim):
        combined = _combine_axis([(p.field.axes[a], p.places[a]) for p in parts], mix_conflicts)
        if combined is None:
            return _lose(parts[0], name)
        axes.append(combined[0])
        places.append(combined[1])
    is_global = all(p.field.is_global for p in parts)
    return Traced(Field(tuple(axes), is_global), tuple(places))


def _covers(exact: list[Traced], lost: list[Traced]) -> bool:
    """Whether the exact parts give every element, on every axis, one region holding all the lost parts see."""
    for a in range(exact[0].field.ndim):
        regions = [p.field.axes[a].spans[0] for p in exact if p.field.axes[a].shift == 0]
        if not regions:
            return False
        lo, hi = min(r[0] for r in regions), max(r[1] for r in regions)
        if any(p.field.axes[a].spans[0][0] < lo or p.field.axes[a].spans[0][1] > hi for p in lost):
            return False
    return True


def _combine_axis(parts: list[tuple[Axis, Place]], mix_conflicts: bool) -> tuple[Axis, Place] | None:
    movers = [(axis, place) for axis, place in parts if place.digits and axis.shift != 0]
    stills = [Axis(1, 0, (axis.span(0) if not place.digits else axis.extent(max(place.length, 1)),))
              for axis, place in parts if not (place.digits and axis.shift != 0)]
    if not movers:  # no part moves from unit to unit; positions, if any part has them, are kept
        held = [p for _, p in parts if p.digits]
        place = max(held, key=lambda p: len(p.digits)) if held else (
            Place(1, ()) if all(p.length == 1 for _, p in parts) else MIXED)
        return union_axis([], stills, 1), place
    ref = max(movers, key=lambda m: (_base(m[1]) == 1, len(m[1].digits)))[1]
    moving = []
    for axis, place in movers:
        extra = [d for d in place.digits if not _within(d, ref.digits)]
        if extra:
            mixed = _mix_axis(axis, place, extra, collapse=False) if mix_conflicts else None
            if mixed is None:
                return None
            axis, place, _ = mixed
            if any(not _within(d, ref.digits) for d in place.digits):
                return None
            if axis.shift == 0:  # mixed over the whole axis: the same region for every unit
                stills.append(axis)
                continue
        moving.append(axis)
    return union_axis(moving, stills, max(ref.length, 1)), ref


def _within(d: Digit, digits: tuple[Digit, ...]) -> bool:
    """Whether ``d`` is one of ``digits`` or the high part of one (its units in blocks of k, after mixing)."""
    for r in digits:
        if r.dim == d.dim and d.step % r.step == 0:
            k = d.step // r.step
            if d.weight == r.weight * k and d.step * d.size == r.step * r.size:
                return True
    return False


def _union_bound(fields: list[Field]) -> Field:
    axes = tuple(Axis(1, 0, ((min(f.axes[a].spans[0][0] for f in fields), max(f.axes[a].spans[0][1] for f in fields)),))
                 for a in range(fields[0].ndim))
    return Field(axes, all(f.is_global for f in fields))


def _with_map(result: Traced | None, inputs: list[tuple[torch.Tensor, Traced]]) -> Traced | None:
    if result is None:
        return None
    if result.places is not None and result.spatial and not result.field.is_global:
        return result._replace(map=_rebased(result))
    maps = [tr.map for _, tr in inputs if tr.map is not None]
    widest = max(maps, key=lambda f: sum(f.size), default=None)
    return result._replace(map=widest)


# --------------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------------

_CREATIONS = {_aten.empty_like, _aten.zeros_like, _aten.ones_like, _aten.full_like, _aten.rand_like,
              _aten.randn_like, _aten.randint_like, _aten.scalar_tensor, _aten.fill, _aten.zero, _aten.new_zeros,
              _aten.new_ones, _aten.new_empty, _aten.new_full, _aten.new_empty_strided}
_POINTWISE_EXTRA = {_aten.dropout, _aten.native_dropout, _aten.alias, _aten.detach, _aten.lift_fresh,
                    _aten.contiguous, _aten.clone, _aten._to_copy, _aten.to, _aten.bernoulli}


def _is_elementwise(func) -> bool:
    packet = func.overloadpacket
    return (torch.Tag.pointwise in func.tags or packet in ELEMENTWISE or packet in COPIES or packet in BATCH_NORMS
            or packet in STAT_NORMS or packet in _POINTWISE_EXTRA)


def _elementwise(op: _Op) -> Traced:
    """Each element reads its own position in every input (with broadcasting): the union of their fields."""
    if all(tr.places is not None and not any(p.digits for p in tr.places) for _, tr in op.inputs):
        # no input holds positions (vectors after pooling): any operation keeps the union of the fields
        return _combine([tr._replace(places=tuple(Place(1, ()) if p.length == 1 else MIXED for p in tr.places))
                         for _, tr in op.inputs], op.name)
    if not _is_elementwise(op.func):  # an operation that rearranges, gathers or scans entries
        return _union_of(op.inputs, op.name)
    parts = []
    for t, tr in op.inputs:
        moved = _broadcast(t, tr, op.out)
        if moved is None:
            return _union_of(op.inputs, op.name)
        parts.append(moved)
    return _combine(parts, op.name)


def _copy(op: _Op) -> Traced | None:
    """``dst.copy_(src)``: the destination now holds the source."""
    src = _lookup(op, op.args[1])
    return None if src is None else (_broadcast(op.args[1], src, op.out) or _union_of([(op.args[1], src)], op.name))


def _union_of(inputs: list[tuple[torch.Tensor, Traced]], name: str) -> Traced:
    """Positions lost: every element bounded by what any element of any input sees."""
    field = _union_bound([_bound(tr) for _, tr in inputs])
    return Traced(field, None, (), None, next((tr.lost_at for _, tr in inputs if tr.lost_at), name))


def _matmul(op: _Op) -> Traced:
    """(..., n, k) @ (..., k, m): k is read whole; n comes from the first operand, m from the second."""
    add = op.func.overloadpacket in (_aten.addmm, _aten.baddbmm)
    a, b = (op.args[1], op.args[2]) if add else (op.args[0], op.args[1])
    parts = []
    for t, contracted, last in ((a, a.dim() - 1, False), (b, b.dim() - 2, True)):
        tr = _lookup(op, t)
        if tr is None:
            continue
        tr = _mix(tr, {contracted}, collapse=True, name=op.name)
        if last:  # the second operand's columns become the output's last dimension
            tr = _move(tr, tuple(t.shape), _rename(t.dim() - 1, op.out.dim() - 1), op.name)
        parts.append(tr)
    bias = _lookup(op, op.args[0]) if add else None
    if bias is not None:
        moved = _broadcast(op.args[0], bias, op.out)
        parts.append(moved if moved is not None else _lose(bias, op.name))
    if not parts:
        return None
    return _combine(parts, op.name, mix_conflicts=True)


def _rename(src: int, dst: int) -> DigitMove:
    return lambda d: (d._replace(dim=dst) if d.dim == src else d,)


def _lookup(op: _Op, t: torch.Tensor) -> Traced | None:
    return next((tr for u, tr in op.inputs if u is t), None)


def _concatenation(op: _Op) -> Traced | None:
    tensors = list(op.args[0])
    dim = arg(op.func, op.args, op.kwargs, "dim", 0) % op.out.dim()
    parts = [(t, tr) for t in tensors if (tr := _lookup(op, t)) is not None]
    along = [tr for _, tr in parts if (tr.places is None and any(dim in g for g in tr.groups))
             or (tr.places is not None and any(d.dim == dim for p in tr.places for d in p.digits))]
    if along:  # joined along a dimension that holds units (a class token before the patch tokens)
        groups = []
        for _, tr in parts:
            if tr.places is None:
                groups.extend(tr.groups)
            elif tr.spatial:
                groups.append(frozenset(d.dim for p in tr.places for d in p.digits))
        return _union_of(parts, op.name)._replace(groups=tuple(dict.fromkeys(groups)))
    return _combine([tr for _, tr in parts], op.name)


def _permute(op: _Op) -> Traced:
    order = [int(d) % op.x.dim() for d in op.args[1]]
    where = {old: new for new, old in enumerate(order)}
    return _move(op.tx, tuple(op.x.shape), lambda d: (d._replace(dim=where[d.dim]),), op.name)


def _transpose(op: _Op) -> Traced:
    if op.func.overloadpacket is _aten.t:
        i, j = 0, op.x.dim() - 1
    else:
        i, j = int(op.args[1]) % op.x.dim(), int(op.args[2]) % op.x.dim()
    swap = {i: j, j: i}
    return _move(op.tx, tuple(op.x.shape), lambda d: (d._replace(dim=swap.get(d.dim, d.dim)),), op.name)


def _view(op: _Op) -> Traced:
    old, new = tuple(op.x.shape), tuple(op.out.shape)
    if math.prod(old) != math.prod(new):
        return _lose(op.tx, op.name)
    return _move(op.tx, old, _view_move(old, new), op.name)


def _expand(op: _Op) -> Traced:
    offset = op.out.dim() - op.x.dim()
    return _move(op.tx, tuple(op.x.shape), lambda d: (d._replace(dim=d.dim + offset),), op.name)


def _select(op: _Op) -> Traced:
    dim = int(op.args[1]) % op.x.dim()
    index = int(op.args[2]) % op.x.shape[dim]
    return _fix_entry(op, dim, index)


def _unbind(op: _Op) -> Traced:
    dim = int(arg(op.func, op.args, op.kwargs, "dim", 0)) % op.x.dim()
    return _fix_entry(op, dim, _offset_along(op, dim))


def _fix_entry(op: _Op, dim: int, index: int) -> Traced:
    """Entry ``index`` of dimension ``dim``, which goes away: units held there are fixed at that position."""
    tx = op.tx
    if tx.places is None:
        return _move(tx._replace(groups=tuple(g for g in tx.groups if dim not in g)), tuple(op.x.shape),
                     _renumber({dim}), op.name)
    axes, places = list(tx.field.axes), list(tx.places)
    for a, place in enumerate(places):
        held = [d for d in place.digits if d.dim == dim]
        if not held:
            continue
        if len(held) != len(place.digits):  # the axis continues in other dimensions: a strided subset
            return _lose(tx, op.name)
        unit = sum((index // d.step) % d.size * d.weight for d in held)
        axes[a], places[a] = axes[a].window(1, 1, -unit, 1), Place(1, ())
    moved = Traced(Field(tuple(axes), tx.field.is_global), tuple(places), (), tx.map)
    return _move(moved, tuple(op.x.shape), _renumber({dim}), op.name)


def _offset_along(op: _Op, dim: int) -> int:
    # A view's first entry along ``dim``, from its storage offset (split and unbind return views).
    stride = op.x.stride(dim)
    return (op.out.storage_offset() - op.x.storage_offset()) // stride if stride else 0


def _whole(traced: Traced, dim: int, length: int) -> tuple[int | None, Axis | None]:
    """(axis index, its field per unit) of the one axis that dimension ``dim`` holds entirely.

    (None, None) when the dimension holds no axis; (index, None) when it holds one only in part.
    """
    holders = [a for a, p in enumerate(traced.places) if any(d.dim == dim for d in p.digits)]
    if not holders:
        return None, None
    a = holders[0]
    place = traced.places[a]
    digits = [d for d in place.digits if d.dim == dim]
    b = _base(place)
    if len(holders) > 1 or len(digits) != len(place.digits) or b is None:
        return a, None
    d = digits[0]
    if len(digits) > 1 or d.size != length or (length > 1 and d.step != 1):
        return a, None
    axis = traced.field.axes[a]
    return a, axis.gather(Fraction(b), lambda o: range(o * b, o * b + b)) if b > 1 else axis


AxisRule = Callable[[int, Axis, int, int], "Axis | None"]


def _on_dims(op: _Op, dims: list[int], rule: AxisRule) -> Traced:
    """Apply ``rule(i, axis, size_in, size_out)`` to the axis held whole by each of ``dims``."""
    tx = op.tx
    if tx.places is None:
        groups = tuple(g for g in tx.groups if not g & set(dims))
        return tx._replace(groups=groups)
    axes, places = list(tx.field.axes), list(tx.places)
    for i, dim in enumerate(dims):
        a, axis = _whole(tx, dim, op.x.shape[dim])
        if a is None:
            continue  # a dimension without a spatial axis (channels under a local response norm)
        new = rule(i, axis, op.x.shape[dim], op.out.shape[dim]) if axis is not None else None
        if new is None:
            return _lose(tx, op.name)
        n = op.out.shape[dim]
        axes[a], places[a] = new, Place(n, (Digit(dim, 1, n, 1),))
    return Traced(Field(tuple(axes), tx.field.is_global), tuple(places), (), tx.map)


def _trailing(op: _Op, count: int) -> list[int]:
    return list(range(op.x.dim() - count, op.x.dim()))


def _window_rule(kernel, stride, padding, dilation, ceil_mode: bool) -> AxisRule:
    # The notes' output-size formula must reproduce the traced shape; otherwise the reading of the
    # arguments is wrong, and an unknown field is better than a wrong one.
    def rule(i: int, axis: Axis, n_in: int, n_out: int) -> Axis | None:
        if conv_output_size(n_in, kernel[i], stride[i], padding[i], dilation[i], ceil_mode) != n_out:
            return None
        return axis.window(kernel[i], stride[i], padding[i], dilation[i])

    return rule


def _convolution(op: _Op) -> Traced:
    weight = op.args[1]
    kernel = list(weight.shape[2:])
    n = len(kernel)
    stride = ints(arg(op.func, op.args, op.kwargs, "stride"), n, 1)
    padding = ints(arg(op.func, op.args, op.kwargs, "padding"), n, 0)
    dilation = ints(arg(op.func, op.args, op.kwargs, "dilation"), n, 1)
    if arg(op.func, op.args, op.kwargs, "transposed", False):
        def rule(i: int, axis: Axis, n_in: int, n_out: int) -> Axis:
            return axis.transposed(kernel[i], stride[i], padding[i], dilation[i])
    else:
        rule = _window_rule(kernel, stride, padding, dilation, ceil_mode=False)
    traced = _on_dims(op, _trailing(op, n), rule)
    channels = op.x.dim() - n - 1
    groups = int(arg(op.func, op.args, op.kwargs, "groups", 1))
    if traced.places is not None and any(d.dim == channels for p in traced.places for d in p.digits):
        # every output channel reads all input channels (of its group)
        return _mix(traced, {channels}, False, op.name) if groups == 1 else _lose(traced, op.name)
    return traced


def _pooling(op: _Op) -> Traced:
    n = int(op.name.split("pool")[1][0])  # max_pool2d_with_indices -> 2
    kernel = ints(arg(op.func, op.args, op.kwargs, "kernel_size"), n, 1)
    stride = ints(arg(op.func, op.args, op.kwargs, "stride"), n, 0)
    stride = kernel if not any(stride) else stride
    padding = ints(arg(op.func, op.args, op.kwargs, "padding"), n, 0)
    dilation = ints(arg(op.func, op.args, op.kwargs, "dilation"), n, 1)
    ceil_mode = bool(arg(op.func, op.args, op.kwargs, "ceil_mode", False))
    return _on_dims(op, _trailing(op, n), _window_rule(kernel, stride, padding, dilation, ceil_mode))


def _adaptive_pooling(op: _Op) -> Traced:
    n = int(op.name.rstrip("d")[-1])
    dims = _trailing(op, n)

    def rule(i: int, axis: Axis, n_in: int, m: int) -> Axis:
        # window o spans input units [floor(o n/m), ceil((o+1) n/m))
        return axis.gather(Fraction(n_in, m), lambda o: range(o * n_in // m, -(-(o + 1) * n_in // m)))

    traced = _on_dims(op, dims, rule)
    if traced.places is not None and all(op.out.shape[d] == 1 for d in dims):
        return traced._replace(field=Field(traced.field.axes, True))  # global pooling
    return traced


def _upsampling(op: _Op) -> Traced:
    n = int(op.name.rstrip("d")[-1])
    mode = op.name.split("_")[-1].rstrip("123d")  # nearest, exact, linear, bilinear, trilinear, bicubic
    aligned = bool(arg(op.func, op.args, op.kwargs, "align_corners", False))
    scales = [arg(op.func, op.args, op.kwargs, key) for key in ("scales_d", "scales_h", "scales_w", "scales")]
    scales = [v for v in scales if v is not None]
    scales = scales[0] if scales and isinstance(scales[0], list | tuple) else scales

    def rule(i: int, axis: Axis, n_in: int, n_out: int) -> Axis:
        scale = scales[i] if len(scales) == n else None
        return axis.gather(*_resampling_rule(mode, n_in, n_out, scale, aligned))

    return _on_dims(op, _trailing(op, n), rule)


def _resampling_rule(mode: str, size_in: int, size_out: int, scale: float | None,
                     aligned: bool) -> tuple[Fraction, Callable[[int], list[int]]]:
    """(input units per output unit, taps) of PyTorch's interpolation along one axis."""
    if aligned and mode != "nearest" and mode != "exact":
        ratio = Fraction(size_in - 1, size_out - 1) if size_out > 1 else Fraction(0)
    elif scale:  # PyTorch uses 1/scale_factor, not in/out, when the caller gave a scale factor
        ratio = Fraction(1 / scale).limit_denominator(10_000)
    else:
        ratio = Fraction(size_in, size_out)
    ratio = ratio if ratio else Fraction(1)
    if mode == "nearest":
        return ratio, lambda o: [math.floor(o * ratio)]
    if mode == "exact":
        return ratio, lambda o: [math.floor((o + Fraction(1, 2)) * ratio)]
    reach = 2 if mode == "bicubic" else 1  # taps on each side of the source position

    def taps(o: int) -> list[int]:
        src = o * ratio if aligned else (o + Fraction(1, 2)) * ratio - Fraction(1, 2)
        base = math.floor(src)
        if src == base:  # the source falls on a unit: the other taps have weight 0
            return [base]
        return list(range(base - reach + 1, base + reach + 1))

    return ratio, taps


def _padding(op: _Op) -> Traced:
    pad = [int(p) for p in op.args[1]]
    pairs = len(pad) // 2  # pairs run from the last dimension backwards
    dims = [op.x.dim() - 1 - i for i in range(pairs) if pad[2 * i] or pad[2 * i + 1]]
    lefts = {op.x.dim() - 1 - i: pad[2 * i] for i in range(pairs)}
    return _on_dims(op, dims, lambda i, axis, n_in, n_out: axis.window(1, 1, lefts[dims[i]], 1))


def _slicing(op: _Op) -> Traced:
    dim = int(arg(op.func, op.args, op.kwargs, "dim", 0)) % op.x.dim()
    length = op.x.shape[dim]
    if op.out.shape[dim] == length:
        return op.tx
    first = arg(op.func, op.args, op.kwargs, "start", 0)
    first = min(max(first + length if first < 0 else first, 0), length)
    step = int(arg(op.func, op.args, op.kwargs, "step", 1))
    return _crop(op, dim, first, step)


def _split(op: _Op) -> Traced:
    dim = int(arg(op.func, op.args, op.kwargs, "dim", 0)) % op.x.dim()
    return op.tx if op.out.shape[dim] == op.x.shape[dim] else _crop(op, dim, _offset_along(op, dim), 1)


def _crop(op: _Op, dim: int, first: int, step: int) -> Traced:
    return _on_dims(op, [dim], lambda i, axis, n_in, n_out: axis.window(1, step, -first, 1))


def _roll(op: _Op) -> Traced:
    shifts = [int(v) for v in op.args[1]]
    dims = [int(v) for v in (arg(op.func, op.args, op.kwargs, "dims") or ())]
    if not dims:
        return _lose(op.tx, op.name)  # a roll of the flattened tensor
    shift_of = {int(d) % op.x.dim(): s for d, s in zip(dims, shifts)}
    rolled = list(shift_of)
    # out[i] = x[i - s]: a shift on the infinite grid (see the module notes on Swin's wrap-around)
    return _on_dims(op, rolled, lambda i, axis, n_in, n_out: axis.window(1, 1, shift_of[rolled[i]], 1))


def _reduction(op: _Op) -> Traced:
    if op.func in (_aten.max.other, _aten.min.other):
        return _elementwise(op)
    dims = arg(op.func, op.args, op.kwargs, "dim")
    if dims is None:
        dims = list(range(op.x.dim()))
    dims = {int(d) % max(op.x.dim(), 1) for d in (dims if isinstance(dims, list | tuple) else [dims])}
    traced = _mix(op.tx, dims, collapse=True, name=op.name)
    if op.out.dim() < op.x.dim():  # keepdim=False
        traced = _move(traced, tuple(op.x.shape), _renumber(dims), op.name)
    return traced


def _softmax(op: _Op) -> Traced:
    dim = int(arg(op.func, op.args, op.kwargs, "dim")) % op.x.dim()
    return _mix(op.tx, {dim}, collapse=False, name=op.name)


def _indexing(op: _Op) -> Traced:
    """``x[:, idx]``, ``index_select``: entries picked along dimensions that hold no units keep the map."""
    if op.func.overloadpacket is _aten.index_select:
        picked = {int(op.args[1]) % op.x.dim()}
        flat = op.args[2].dim() <= 1
    else:
        indices = list(op.args[1])
        picked = {d for d, i in enumerate(indices) if i is not None}
        flat = all(i is None or i.dim() <= 1 for i in indices) and len(picked) == 1
    holds = op.tx.places is None and any(g & picked for g in op.tx.groups) or (
        op.tx.places is not None and any(d.dim in picked and d.size > 1 for p in op.tx.places for d in p.digits))
    if flat and op.out.dim() == op.x.dim() and not holds:
        return op.tx
    return _union_of([(op.x, op.tx)], op.name)


def _flip(op: _Op) -> Traced:
    dims = {int(d) % op.x.dim() for d in op.args[1]}
    if op.tx.places is not None and any(d.dim in dims and d.size > 1 for p in op.tx.places for d in p.digits):
        return _lose(op.tx, op.name)  # the order of the units reverses
    return op.tx


_RULES: dict[object, Callable[[_Op], Traced | None]] = {
    **{p: _convolution for p in CONVOLUTIONS},
    **{p: _pooling for p in MAX_POOLS | AVG_POOLS},
    **{p: _adaptive_pooling for p in ADAPTIVE_POOLS},
    **{p: _softmax for p in SOFTMAXES},
    **{p: _padding for p in PADS},
    **{p: _upsampling for p in INTERPOLATION_TAPS},
    **{p: _reduction for p in REDUCTIONS},
    **{p: _view for p in (_aten.view, _aten._unsafe_view, _aten._reshape_alias, _aten.reshape, _aten.squeeze,
                          _aten.unsqueeze, _aten.flatten, _aten.unflatten, _aten.view_as)},
    _aten.permute: _permute,
    _aten.transpose: _transpose,
    _aten.t: _transpose,
    _aten.expand: _expand,
    _aten.slice: _slicing,
    _aten.select: _select,
    _aten.unbind: _unbind,
    _aten.split: _split,
    _aten.split_with_sizes: _split,
    _aten.roll: _roll,
    _aten.flip: _flip,
    _aten.copy_: _copy,
    _aten.index: _indexing,
    _aten.index_select: _indexing,
}


def _rule(func) -> Callable[[_Op], Traced | None] | None:
    return _RULES.get(func.overloadpacket)
