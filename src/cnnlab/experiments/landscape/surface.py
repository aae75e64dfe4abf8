"""The loss (and accuracy) of one network at points of weight space, evaluated fast on fixed in-memory data.

``SurfaceEvaluator`` works on its own copy of the network, so the caller's model is never touched. For each
point it writes ``theta + sum_i c_i d_i`` into the copy's tensors (``torch._foreach`` ops, no new tensors)
and runs the data through it. What makes it faster than the reference loop (one point at a time through a
DataLoader with per-image transforms), measured in ``benchmarks/landscape_speed.py`` and docs/landscape.md:

- the data subset is decoded, normalized and laid out once, and stays in memory as model input;
- inference mode, no autograd bookkeeping;
- batch-norm folding: in eval mode a BN that reads a convolution's output is an affine map per channel, so it
  is folded into that convolution's weights and bias for every point (a second copy of the network holds
  the folded tensors); the fold is checked against the unfolded network on random statistics first and
  skipped where a model's layout does not allow it;
- channels-last memory layout, which oneDNN's CPU convolutions run faster;
- on CPUs, convolution -> [residual addition] -> ReLU run as one oneDNN primitive (``fusion.py``: the graph is
  traced once per batch shape and rewritten), checked against the unfused network first;
- optionally ``torch.compile`` (pays on big grids only: its start costs tens of seconds on a CPU).

Evaluating several points in one forward (``torch.func.functional_call`` under ``vmap``, which turns the
convolutions into grouped ones) was measured slower on the CPU than one point after another; it is not used.

Batch norm: ``bn="eval"`` (default, Li et al.'s setting) uses the checkpoint's running statistics at every
point; ``bn="recompute"`` first recomputes them on the subset at each point (train-mode forward passes with
a cumulative average), then evaluates in eval mode.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from cnnlab.errors import ConfigError
from cnnlab.experiments.landscape.directions import Direction
from cnnlab.experiments.landscape.fusion import FusedForward, fusable
from cnnlab.train.build import split_outputs

__all__ = ["BN_MODES", "FoldedNetwork", "SurfaceEvaluator", "default_batch_size", "find_conv_bn_pairs"]

BN_MODES = ("eval", "recompute")
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (outputs, targets) -> per-sample losses


def default_batch_size(device: torch.device) -> int:
    """Images per forward: 128 on a CPU (measured fastest for CIFAR-size nets: the activations stay in cache)."""
    return 128 if device.type == "cpu" else 1024


def _cross_entropy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    # Half-precision logits are summed in float32; float64 models keep their precision.
    return F.cross_entropy(outputs if outputs.dtype == torch.float64 else outputs.float(), targets, reduction="none")


# --------------------------------------------------------------------------------------- batch-norm folding


def find_conv_bn_pairs(model: nn.Module, example: torch.Tensor) -> list[tuple[str, str]]:
    """(conv, bn) module names where a ``BatchNorm2d`` reads exactly the output of a ``Conv2d``, found by one
    forward pass with hooks; modules called more than once are left out."""
    convs = {m: n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    norms = {m: n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d) and m.track_running_stats}
    outputs: dict[int, tuple[torch.Tensor, str]] = {}  # holds the tensors, so their ids stay unique
    calls: dict[str, int] = {}
    readers: list[tuple[str, int]] = []

    def conv_hook(module, args, output):
        calls[convs[module]] = calls.get(convs[module], 0) + 1
        outputs[id(output)] = (output, convs[module])

    def norm_hook(module, args):
        calls[norms[module]] = calls.get(norms[module], 0) + 1
        readers.append((norms[module], id(args[0])))

    handles = [m.register_forward_hook(conv_hook) for m in convs]
    handles += [m.register_forward_pre_hook(norm_hook) for m in norms]
    was_training = model.training
    try:
        model.eval()
        with torch.inference_mode():
            model(example)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    pairs = [(outputs[i][1], bn) for bn, i in readers if i in outputs]
    conv_uses = [c for c, _ in pairs]
    return [(c, b) for c, b in pairs if calls[c] == 1 and calls[b] == 1 and conv_uses.count(c) == 1]


class FoldedNetwork:
    """A copy of a network with every foldable eval-mode BN folded into its convolution, refreshed per point."""

    def __init__(self, source: nn.Module, pairs: Sequence[tuple[str, str]]) -> None:
        self.source = source
        self.module = copy.deepcopy(source)
        named = dict(self.module.named_modules())
        src = dict(source.named_modules())
        self.folds = []  # (folded weight, folded bias, source conv, source bn)
        folded_names = set()
        for conv_name, bn_name in pairs:
            conv = named[conv_name]
            if conv.bias is None:
                conv.bias = nn.Parameter(torch.zeros(conv.out_channels, device=conv.weight.device,
                                                     dtype=conv.weight.dtype))
            _replace(self.module, bn_name, nn.Identity())
            self.folds.append((conv.weight, conv.bias, src[conv_name], src[bn_name]))
            folded_names |= {f"{conv_name}.weight", f"{conv_name}.bias"}
        own = dict(self.module.named_parameters())
        own.update(self.module.named_buffers())
        theirs = dict(source.named_parameters())
        theirs.update(source.named_buffers())
        names = [k for k in own if k not in folded_names and k in theirs]
        self.copies = ([own[k] for k in names], [theirs[k] for k in names])

    @torch.no_grad()
    def refresh(self) -> None:
        """Make the folded copy compute what the source computes now (its weights and statistics)."""
        if self.copies[0]:
            torch._foreach_copy_(*self.copies)
        for weight, bias, conv, bn in self.folds:
            scale = torch.rsqrt(bn.running_var + bn.eps)
            if bn.weight is not None:
                scale = scale * bn.weight
            shift = -bn.running_mean * scale
            if bn.bias is not None:
                shift = shift + bn.bias
            weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
            bias.copy_(shift if conv.bias is None else conv.bias * scale + shift)


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def _fold_agrees(model: nn.Module, pairs: Sequence[tuple[str, str]], example: torch.Tensor) -> bool:
    """Whether folding ``pairs`` leaves the outputs unchanged, on a scratch copy with random BN statistics
    (a fresh BN is the identity, which would hide a conv output that something else reads too)."""
    scratch = copy.deepcopy(model).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in scratch.modules():
            if isinstance(m, nn.BatchNorm2d) and m.track_running_stats:
                size, device = m.num_features, m.running_mean.device

                def draw(lo: float, hi: float, size: int = size, device: torch.device = device) -> torch.Tensor:
                    return (lo + (hi - lo) * torch.rand(size, generator=generator)).to(device)

                m.running_mean.copy_(draw(-0.5, 0.5))
                m.running_var.copy_(draw(0.5, 2.0))
                if m.affine:
                    m.weight.copy_(draw(0.5, 1.5))
                    m.bias.copy_(draw(-0.5, 0.5))
    folded = FoldedNetwork(scratch, pairs)
    folded.refresh()
    folded.module.eval()
    with torch.inference_mode():
        want = split_outputs(scratch(example))[0].float()
        got = split_outputs(folded.module(example))[0].float()
    return bool(torch.allclose(got, want, rtol=1e-3, atol=1e-4 * float(want.abs().max().clamp_min(1.0))))


# -------------------------------------------------------------------------------------------------- points


@dataclass
class EvalData:
    """One split of the evaluation data, as model input: ``batches`` of (inputs, targets)."""

    name: str  # "train" or "test": the prefix of the quantities
    batches: list[tuple[torch.Tensor, torch.Tensor]]
    count: int


class SurfaceEvaluator:
    """Loss (and accuracy, for class targets) of a network at ``theta + sum_i c_i d_i`` on fixed data.

    ``data`` maps a split name ("train", "test") to (inputs, targets) already transformed into model input;
    ``loss_fn(outputs, targets)`` returns per-sample losses (default: cross-entropy). The caller's model is
    copied, never modified.
    """

    def __init__(self, model: nn.Module, directions: Sequence[Direction],
                 data: Mapping[str, tuple[torch.Tensor, torch.Tensor]], *, batch_size: int | None = None,
                 bn: str = "eval", fold_bn: bool = True, channels_last: bool | None = None,
                 compile: bool = False, fuse: bool = True, loss_fn: LossFn | None = None) -> None:
        if bn not in BN_MODES:
            raise ConfigError(f"bn must be one of {', '.join(BN_MODES)}, got {bn!r}")
        if not data:
            raise ConfigError("no data to evaluate the landscape on")
        first = next(iter(model.parameters()), None)
        self.device = first.device if first is not None else torch.device("cpu")
        self.batch_size = batch_size or default_batch_size(self.device)
        self.channels_last = self.device.type in ("cpu", "cuda") if channels_last is None else channels_last
        self.loss_fn = loss_fn or _cross_entropy
        self.bn = bn
        self.work = copy.deepcopy(model).eval()
        if self.channels_last:
            self.work.to(memory_format=torch.channels_last)
        self.data = [self._split(name, x, y) for name, x, y in ((n, *xy) for n, xy in data.items())]
        self.targets, self.base, self.steps, names = self._bind(directions)
        # An interpolation moves the running variances too; beyond its end points one could turn negative.
        self.variances = [t for k, t in zip(names, self.targets) if k.endswith("running_var")]
        self.norms = [m for m in self.work.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
        example = self.data[0].batches[0][0][:2]
        self.folded = None
        self.fold_note = "off"
        if fold_bn:
            pairs = find_conv_bn_pairs(self.work, example)
            if pairs and _fold_agrees(self.work, pairs, example):
                self.folded = FoldedNetwork(self.work, pairs)
                self.fold_note = f"{len(pairs)} batch norms folded into their convolutions"
            else:
                self.fold_note = "no foldable batch norm" if not pairs else "skipped: folding changed the outputs"
        self.runner: nn.Module = self.folded.module if self.folded is not None else self.work
        with torch.inference_mode():
            probe = split_outputs(self.work(example))[0]
        # Accuracy is measured for class-index targets and (B, classes) outputs.
        self.classify = probe.dim() == 2 and not self.data[0].batches[0][1].is_floating_point()
        self.fuse_note = "off"
        if fuse and not compile:
            self._fuse(self.data[0].batches[0][0])  # a full batch: its traced graph serves every later one
        if compile:
            self.runner = torch.compile(self.runner)

    def _fuse(self, example: torch.Tensor) -> None:
        """Run the network with fused convolutions where that is possible and gives the same outputs."""
        if not fusable(self.device) or example.dtype != torch.float32:
            self.fuse_note = "not on this device"
            return
        fused = FusedForward(self.runner)
        with torch.inference_mode():
            want = split_outputs(self.runner(example))[0]
        try:
            with torch.inference_mode():
                got = split_outputs(fused(example))[0]
        except (RuntimeError, TypeError, ValueError, NotImplementedError) as err:  # a graph make_fx cannot trace
            self.fuse_note = f"skipped: {type(err).__name__} while tracing"
            return
        scale = float(want.abs().max().clamp_min(1.0))
        if fused.fused == 0 or not torch.allclose(got, want, rtol=1e-4, atol=1e-5 * scale):
            self.fuse_note = "no fusable convolution" if fused.fused == 0 else "skipped: fusing changed the outputs"
            return
        self.runner = fused
        self.fuse_note = f"{fused.fused} convolutions fused with their addition/ReLU"

    def _split(self, name: str, x: torch.Tensor, y: torch.Tensor) -> EvalData:
        if len(x) != len(y) or len(x) == 0:
            raise ConfigError(f"the {name} data needs as many targets as inputs (got {len(x)} and {len(y)})")
        x = x.to(self.device)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        y = y.to(self.device)
        return EvalData(name, list(zip(x.split(self.batch_size), y.split(self.batch_size))), len(x))

    def _bind(self, directions: Sequence[Direction]
              ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[list[torch.Tensor]], list[str]]:
        """The copy's tensors each direction moves, their values at the centre, the directions laid out alike,
        and the tensors' names."""
        if not directions:
            raise ConfigError("a landscape needs at least one direction")
        tensors = dict(self.work.named_parameters())
        tensors.update(self.work.named_buffers())
        names = list(directions[0])
        for d in directions:
            wrong = [k for k in d if k not in tensors or d[k].shape != tensors[k].shape]
            if wrong or list(d) != names:
                raise ConfigError(f"a direction does not fit the network (e.g. {(wrong or list(d))[0]!r})")
        targets = [tensors[k] for k in names]
        base = [t.detach().clone() for t in targets]
        steps = [[torch.empty_like(t).copy_(d[k].to(t.dtype)) for k, t in zip(names, targets)]
                 for d in directions]
        return targets, base, steps, names

    @property
    def dims(self) -> int:
        return len(self.steps)

    @torch.no_grad()
    def move_to(self, coords: Sequence[float]) -> None:
        """Write the point ``coords`` into the working copy (and its folded twin)."""
        if len(coords) != self.dims:
            raise ConfigError(f"a point of this landscape has {self.dims} coordinates, got {len(coords)}")
        torch._foreach_copy_(self.targets, self.base)
        for c, step in zip(coords, self.steps):
            if c != 0:
                torch._foreach_add_(self.targets, step, alpha=float(c))
        for variance in self.variances:
            variance.clamp_(min=0.0)
        if self.bn == "recompute":
            self._recompute_statistics()
        if self.folded is not None:
            self.folded.refresh()

    def _recompute_statistics(self) -> None:
        """Running statistics of every BN recomputed on the training data at this point (cumulative average)."""
        momenta = [m.momentum for m in self.norms]
        try:
            for m in self.norms:
                m.reset_running_stats()
                m.momentum = None
                m.train()
            with torch.inference_mode():
                for x, _ in self.data[0].batches:
                    self.work(x)
        finally:
            for m, momentum in zip(self.norms, momenta):
                m.momentum = momentum
                m.eval()

    @torch.inference_mode()
    def measure(self) -> dict[str, float]:
        """Loss (and accuracy) of the working copy as it is now, per split."""
        out: dict[str, float] = {}
        for split in self.data:
            loss = torch.zeros((), dtype=torch.float64, device=self.device)
            correct = torch.zeros((), dtype=torch.int64, device=self.device)
            for x, y in split.batches:
                logits = split_outputs(self.runner(x))[0]
                loss += self.loss_fn(logits, y).double().sum()
                if self.classify:
                    correct += (logits.argmax(1) == y).sum()
            out[f"{split.name}_loss"] = float(loss) / split.count
            if self.classify:
                out[f"{split.name}_accuracy"] = float(correct) / split.count
        return out

    def __call__(self, coords: Sequence[float]) -> dict[str, float]:
        """Loss and accuracy at ``coords``."""
        self.move_to(coords)
        return self.measure()

    def quantities(self) -> list[str]:
        """The names ``__call__`` returns, in order."""
        kinds = ("loss", "accuracy") if self.classify else ("loss",)
        return [f"{split.name}_{kind}" for split in self.data for kind in kinds]
