"""Directions in weight space: filter normalization exact per filter, ignored parameters zero, orthogonalization,
interpolation end points, and the trajectory's PCA plane recovered from a trajectory built on a known plane."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.errors import CheckpointError, ConfigError
from cnnlab.experiments.landscape.directions import (
    direction_digest,
    direction_norm,
    interpolation_direction,
    normalize_direction,
    orthogonalize,
    project,
    random_directions,
    trajectory_plane,
)


def _net() -> nn.Module:
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(2, 5, 3), nn.BatchNorm2d(5), nn.ReLU(), nn.Conv2d(5, 4, 3, bias=True),
                        nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    with torch.no_grad():
        net[0].weight[2].zero_()  # an all-zero filter: its direction filter must be zero too
    return net


def _params(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: p.detach() for k, p in net.named_parameters()}


def test_every_filter_has_the_norm_of_the_weights_filter_and_ignored_parameters_are_zero():
    net = _net()
    weights = _params(net)
    for d in random_directions(net, 2, seed=3):
        assert d.keys() == weights.keys()
        for name, w in weights.items():
            if w.dim() <= 1:  # conv and linear biases, BN scale and shift
                assert torch.count_nonzero(d[name]) == 0, name
                continue
            want = w.reshape(w.shape[0], -1).norm(dim=1)
            got = d[name].reshape(w.shape[0], -1).norm(dim=1)
            torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-12)
    assert torch.count_nonzero(random_directions(net, 1)[0]["0.weight"][2]) == 0


def test_layer_normalization_and_kept_one_dimensional_parameters():
    net = _net()
    weights = _params(net)
    d = random_directions(net, 1, seed=0, norm="layer", ignore="none")[0]
    for name, w in weights.items():
        torch.testing.assert_close(d[name].norm(), w.norm(), rtol=1e-6, atol=1e-12)
    raw = random_directions(net, 1, seed=0, norm="none", ignore="none")[0]
    generator = torch.Generator().manual_seed(0)
    for name, w in weights.items():  # norm="none": the generator's draws, in parameter order
        assert torch.equal(raw[name], torch.randn(w.shape, generator=generator))


def test_directions_follow_their_seed():
    net = _net()
    a, b, c = random_directions(net, 2, seed=5), random_directions(net, 2, seed=5), random_directions(net, 2, seed=6)
    assert direction_digest(a) == direction_digest(b) != direction_digest(c)
    assert not torch.equal(a[0]["0.weight"], a[1]["0.weight"])  # two directions, two draws


def test_bad_choices_are_refused():
    with pytest.raises(ConfigError, match="norm"):
        random_directions(_net(), 1, norm="unit")
    with pytest.raises(ConfigError, match="ignore"):
        normalize_direction({}, {}, ignore="bn")


def test_orthogonalize_removes_the_common_part_and_keeps_the_norm():
    first = {"a": torch.tensor([1.0, 0.0, 0.0]), "b": torch.tensor([[1.0, 1.0]])}
    second = {"a": torch.tensor([1.0, 2.0, 0.0]), "b": torch.tensor([[0.0, 3.0]])}
    out = orthogonalize(first, second)
    dot = sum(float((first[k] * out[k]).sum()) for k in first)
    assert abs(dot) < 1e-6
    assert direction_norm(out) == pytest.approx(direction_norm(second))


def test_interpolation_reaches_the_other_state_dict_running_statistics_included():
    a, b = _net(), _net()
    with torch.no_grad():
        for p in b.parameters():
            p.add_(torch.randn_like(p))
        b[1].running_mean.normal_()
        b[1].running_var.uniform_(0.5, 2.0)
    sa, sb = a.state_dict(), b.state_dict()
    d = interpolation_direction(sa, sb)
    assert "1.running_var" in d and "1.num_batches_tracked" not in d  # integer counters do not move
    for k, v in d.items():
        torch.testing.assert_close(sa[k] + v, sb[k])
    with pytest.raises(CheckpointError, match="different networks"):
        interpolation_direction(sa, {**sb, "extra.weight": torch.zeros(1)})


def test_trajectory_plane_recovers_a_known_plane():
    """A trajectory lying on centre + span(u, w) (u, w orthonormal): the PCA plane is that span and the projected
    path puts every saved point back where it was."""
    names = ["x", "y", "bias"]
    centre = {"x": torch.randn(6, 3), "y": torch.randn(4, 2), "bias": torch.randn(4)}
    u = {"x": torch.randn(6, 3), "y": torch.randn(4, 2)}
    w = {"x": torch.randn(6, 3), "y": torch.randn(4, 2)}
    flat_u = torch.cat([u[k].reshape(-1) for k in ("x", "y")])
    flat_w = torch.cat([w[k].reshape(-1) for k in ("x", "y")])
    flat_w -= flat_u * (flat_u @ flat_w) / (flat_u @ flat_u)
    flat_u, flat_w = flat_u / flat_u.norm(), flat_w / flat_w.norm()
    coords = torch.tensor([[-3.0, 1.0], [-2.0, 1.5], [-1.2, 0.4], [-0.5, -0.3], [0.0, 0.0]])
    states = []
    for a, b in coords.tolist():
        offset = a * flat_u + b * flat_w
        states.append({"x": centre["x"] + offset[:18].reshape(6, 3), "y": centre["y"] + offset[18:].reshape(4, 2),
                       "bias": centre["bias"] + torch.randn(4)})  # 1-D: left out of the PCA by default
    plane = trajectory_plane(states, centre, names)
    assert sum(plane.explained) == pytest.approx(1.0, abs=1e-5)
    assert all(torch.count_nonzero(d["bias"]) == 0 for d in plane.directions)
    for d in plane.directions:
        assert direction_norm(d) == pytest.approx(1.0, abs=1e-5)
    for state, (a, b) in zip(states, plane.path.tolist()):
        rebuilt = {k: centre[k] + a * plane.directions[0][k] + b * plane.directions[1][k] for k in ("x", "y")}
        for k in ("x", "y"):
            torch.testing.assert_close(rebuilt[k], state[k], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(project(states[1], centre, plane.directions)[:2], plane.path[1], atol=1e-4, rtol=0)
    with pytest.raises(ConfigError, match="at least 3"):
        trajectory_plane(states[:2], centre, names)
