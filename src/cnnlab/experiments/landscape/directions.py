"""Directions in weight space: random with filter normalization, the line between two checkpoints, trajectory PCA.

- Li et al. 2018, Visualizing the Loss Landscape of Neural Nets (NeurIPS), section 4: a random Gaussian
  direction whose every filter is rescaled to the norm of the same filter of the weights, so that plots of
  networks (or layers) of different weight scales are comparable; biases and batch-norm parameters are left
  out (zero) by default. Section 7: the top two PCA directions of the optimization trajectory.
- Goodfellow, Vinyals & Saxe 2015, Qualitatively Characterizing Neural Network Optimization Problems (ICLR):
  the straight line between two sets of weights.

A direction is a plain ``dict`` from parameter (or buffer) names to tensors of the same shapes: the point at
coordinates ``c`` is ``theta + sum_i c_i * d_i`` on every name a direction holds. Directions are made on the
CPU in float32 from a seeded generator, so a seed gives the same direction on every machine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from cnnlab.errors import CheckpointError, ConfigError

__all__ = [
    "IGNORE_CHOICES",
    "NORM_CHOICES",
    "Direction",
    "TrajectoryPlane",
    "direction_digest",
    "direction_norm",
    "interpolation_direction",
    "normalize_direction",
    "orthogonalize",
    "project",
    "random_directions",
    "trajectory_plane",
]

Direction = dict[str, torch.Tensor]
NORM_CHOICES = ("filter", "layer", "none")  # Li et al.'s filter normalization, per-tensor ("layer"), raw
IGNORE_CHOICES = ("biasbn", "none")  # zero the 1-D parameters (biases, norm scales and shifts), or keep them


def _check(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def _weights(model_or_state: nn.Module | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The trainable parameters of a model by name (or a state_dict's floating entries), detached on the CPU."""
    if isinstance(model_or_state, nn.Module):
        items = ((k, p) for k, p in model_or_state.named_parameters() if p.requires_grad)
    else:
        items = ((k, v) for k, v in model_or_state.items() if v.is_floating_point())
    return {k: v.detach().to("cpu", torch.float32) for k, v in items}


def normalize_direction(direction: Direction, weights: Mapping[str, torch.Tensor], norm: str = "filter",
                        ignore: str = "biasbn") -> Direction:
    """Rescale ``direction`` to the scale of ``weights`` (a new dict; the inputs are untouched).

    ``filter``: each filter (slice along the first dimension: a conv's output channel, a linear layer's
    output neuron) gets the norm of the same filter of the weights. ``layer``: each tensor gets the norm of
    its weight tensor. ``none``: unchanged. 1-D parameters are zeroed with ``ignore="biasbn"``; otherwise
    they are rescaled as one tensor (``filter`` and ``layer`` alike).
    """
    _check("norm", norm, NORM_CHOICES)
    _check("ignore", ignore, IGNORE_CHOICES)
    out: Direction = {}
    for name, d in direction.items():
        w = weights[name].to(d.dtype)
        if d.dim() <= 1 and ignore == "biasbn":
            out[name] = torch.zeros_like(d)
        elif norm == "none":
            out[name] = d.clone()
        elif norm == "filter" and d.dim() > 1:
            d_rows, w_rows = d.reshape(d.shape[0], -1), w.reshape(w.shape[0], -1)
            # The reference's 1e-10 guards an all-zero filter of the direction.
            scale = w_rows.norm(dim=1, keepdim=True) / (d_rows.norm(dim=1, keepdim=True) + 1e-10)
            out[name] = (d_rows * scale).reshape(d.shape)
        else:
            out[name] = d * (w.norm() / (d.norm() + 1e-10))
    return out


def random_directions(model: nn.Module, count: int, seed: int = 0, norm: str = "filter",
                      ignore: str = "biasbn") -> list[Direction]:
    """``count`` Gaussian directions over the model's trainable parameters, normalized (``normalize_direction``).

    One CPU generator seeded with ``seed`` draws the directions one after another, parameter by parameter
    in ``named_parameters`` order.
    """
    weights = _weights(model)
    generator = torch.Generator().manual_seed(seed)
    directions = []
    for _ in range(count):
        raw = {k: torch.randn(w.shape, generator=generator) for k, w in weights.items()}
        directions.append(normalize_direction(raw, weights, norm, ignore))
    return directions


def _dot(a: Direction, b: Direction) -> float:
    return sum(float((a[k].double() * b[k].double()).sum()) for k in a)


def direction_norm(direction: Direction) -> float:
    """The Euclidean norm of a direction over all its entries."""
    return _dot(direction, direction) ** 0.5


def orthogonalize(first: Direction, second: Direction) -> Direction:
    """``second`` with its component along ``first`` removed (Gram-Schmidt), rescaled to its former norm.

    Exactly orthogonal to ``first``; its filters then keep their normalized norms only approximately (two
    random directions of many dimensions are nearly orthogonal already, which is why Li et al. do not need this).
    """
    if first.keys() != second.keys():
        raise ConfigError("the two directions cover different parameters")
    before = direction_norm(second)
    coef = _dot(first, second) / max(_dot(first, first), 1e-300)
    out = {k: second[k] - coef * first[k] for k in second}
    after = direction_norm(out)
    return {k: v * (before / after) for k, v in out.items()} if after > 0 else out


def interpolation_direction(start: Mapping[str, torch.Tensor], end: Mapping[str, torch.Tensor]) -> Direction:
    """``end - start`` over every floating entry of two state_dicts of one architecture (parameters and running
    statistics alike), so that coordinate 0 is ``start`` and 1 is ``end`` exactly (Goodfellow et al. 2015)."""
    a, b = _weights(start), _weights(end)
    if a.keys() != b.keys():
        missing = sorted(a.keys() ^ b.keys())
        raise CheckpointError(f"the two checkpoints hold different networks (e.g. {missing[0]!r} is in only one)")
    for k in a:
        if a[k].shape != b[k].shape:
            raise CheckpointError(f"the two checkpoints hold different networks: {k} has shapes "
                                  f"{tuple(a[k].shape)} and {tuple(b[k].shape)}")
    return {k: b[k] - a[k] for k in a}


@dataclass
class TrajectoryPlane:
    """The plane of a trajectory's top two principal components and the path's coordinates in it."""

    directions: list[Direction]  # two orthonormal directions (unit norm over the parameters kept)
    explained: list[float]  # the fraction of the trajectory's variance each direction explains
    path: torch.Tensor  # (n, 2) coordinates of every saved point of the trajectory, in order


def _flatten(state: Mapping[str, torch.Tensor], names: Sequence[str]) -> torch.Tensor:
    return torch.cat([state[k].reshape(-1).double() for k in names])


def trajectory_plane(states: Sequence[Mapping[str, torch.Tensor]], centre: Mapping[str, torch.Tensor],
                     names: Sequence[str], ignore: str = "biasbn") -> TrajectoryPlane:
    """PCA of the trajectory ``states`` (state_dicts, in order) around ``centre``, over the parameters ``names``.

    Li et al. 2018, section 7: the rows ``theta_i - theta_centre`` are centred and their top two principal
    axes become the directions (1-D parameters left out with ``ignore="biasbn"``); each state's
    coordinates are its offset from the centre projected on them.
    """
    _check("ignore", ignore, IGNORE_CHOICES)
    if len(states) < 3:
        raise ConfigError(f"a trajectory plane needs at least 3 saved weights, got {len(states)}; "
                          "train with --keep-epochs for 2 epochs or more")
    centre_w = _weights(centre)
    kept = [k for k in names if not (centre_w[k].dim() <= 1 and ignore == "biasbn")]
    for state in states:
        missing = [k for k in kept if k not in state]
        if missing or any(state[k].shape != centre_w[k].shape for k in kept):
            raise CheckpointError("a saved trajectory point is not of this network "
                                  f"({'lacks ' + missing[0] if missing else 'other shapes'})")
    origin = _flatten(centre_w, kept)
    rows = torch.stack([_flatten(s, kept) - origin for s in states])  # (n, P)
    centred = rows - rows.mean(0)
    # The n x n Gram matrix has the same nonzero spectrum as the P x P covariance and is cheap for few points.
    gram = centred @ centred.T
    values, vectors = torch.linalg.eigh(gram)
    values, vectors = values.flip(0), vectors.flip(1)
    if values[1] <= 1e-12 * max(float(values[0]), 1e-300):
        raise ConfigError("the trajectory has fewer than two independent directions (did the weights move?)")
    axes = [centred.T @ vectors[:, i] / values[i].sqrt() for i in range(2)]  # unit vectors (P,)
    explained = [float(values[i] / values.clamp_min(0).sum()) for i in range(2)]
    path = torch.stack([rows @ axis for axis in axes], dim=1).float()  # (n, 2)
    directions = []
    for axis in axes:
        d: Direction = {k: torch.zeros_like(centre_w[k]) for k in names}
        offset = 0
        for k in kept:
            size = centre_w[k].numel()
            d[k] = axis[offset:offset + size].reshape(centre_w[k].shape).float()
            offset += size
        directions.append(d)
    return TrajectoryPlane(directions, explained, path)


def project(state: Mapping[str, torch.Tensor], centre: Mapping[str, torch.Tensor],
            directions: Sequence[Direction]) -> torch.Tensor:
    """Least-squares coordinates of ``state - centre`` in the span of ``directions`` (exact for orthonormal ones)."""
    names = list(directions[0])
    offset = _flatten(_weights(state), names) - _flatten(_weights(centre), names)
    basis = torch.stack([_flatten(d, names) for d in directions], dim=1)  # (P, k)
    return torch.linalg.lstsq(basis, offset.unsqueeze(1)).solution.squeeze(1).float()


def direction_digest(directions: Sequence[Direction]) -> str:
    """A SHA-256 of the directions' names, shapes and values: a resumed grid must use the very same ones."""
    h = hashlib.sha256()
    for d in directions:
        for k in sorted(d):
            h.update(k.encode())
            h.update(str(tuple(d[k].shape)).encode())
            h.update(d[k].detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()
