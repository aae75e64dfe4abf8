"""The evaluator: the grid's centre is the model's own loss, BN folding and channels-last change nothing but speed,
a 1-D slice of a quadratic loss is the analytic parabola, the caller's model is never touched, and BN statistics
recomputed per point are what a cumulative pass over the data gives."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnlab
from cnnlab.errors import ConfigError
from cnnlab.experiments.landscape.directions import random_directions
from cnnlab.experiments.landscape.surface import SurfaceEvaluator, find_conv_bn_pairs


def small_resnet(shortcut: str = "A") -> nn.Module:
    """A CIFAR ResNet of 7 convs at 4-8 channels with trained-looking BN statistics (not the identity)."""
    torch.manual_seed(0)
    model = cnnlab.create_model("resnet20", in_chans=1, depths=(1, 1, 1), widths=(4, 8, 8), stem_width=4,
                                shortcut=shortcut)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
    return model.eval()


@pytest.fixture(scope="module")
def data():
    generator = torch.Generator().manual_seed(1)
    return torch.randn(40, 1, 12, 12, generator=generator), torch.randint(0, 10, (40,), generator=generator)


def test_the_centre_is_the_models_own_loss_and_accuracy(data):
    model = small_resnet()
    x, y = data
    evaluator = SurfaceEvaluator(model, random_directions(model, 2), {"train": (x, y)}, batch_size=16)
    with torch.no_grad():
        logits = model(x)
    got = evaluator((0.0, 0.0))
    assert got["train_loss"] == pytest.approx(float(F.cross_entropy(logits, y)), rel=1e-5)
    assert got["train_accuracy"] == float((logits.argmax(1) == y).double().mean())
    assert evaluator.quantities() == ["train_loss", "train_accuracy"]


def test_a_point_is_the_loss_of_the_moved_weights(data):
    model = small_resnet()
    x, y = data
    directions = random_directions(model, 2, seed=4)
    moved = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in moved.named_parameters():
            p.add_(0.4 * directions[0][name] - 0.7 * directions[1][name])
        want = float(F.cross_entropy(moved(x), y))
    evaluator = SurfaceEvaluator(model, directions, {"train": (x, y)})
    assert evaluator((0.4, -0.7))["train_loss"] == pytest.approx(want, rel=1e-5)
    with torch.no_grad():
        centre = float(F.cross_entropy(model(x), y))
    assert evaluator((0.0, 0.0))["train_loss"] == pytest.approx(centre, rel=1e-5)


@pytest.mark.parametrize("fold, channels_last", [(False, False), (True, False), (False, True)])
def test_speed_options_give_the_same_values(data, fold, channels_last):
    model = small_resnet()
    directions = random_directions(model, 2, seed=2)
    reference = SurfaceEvaluator(model, directions, {"train": data}, fold_bn=True, channels_last=True)
    assert reference.fold_note.startswith("7 batch norms folded")
    other = SurfaceEvaluator(model, directions, {"train": data}, fold_bn=fold, channels_last=channels_last,
                             batch_size=7)
    for point in ((0.0, 0.0), (0.5, -0.25), (-1.0, 1.0)):
        a, b = reference(point), other(point)
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["train_accuracy"] == b["train_accuracy"]


class _SharedConvOutput(nn.Module):
    """bn(conv(x)) + conv(x): the conv output is read twice, so folding the BN into the conv would be wrong."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.fc((self.bn(y) + y).mean((2, 3)))


def test_folding_is_checked_and_skipped_where_it_would_change_the_outputs(data):
    model = _SharedConvOutput().eval()
    with torch.no_grad():
        model.bn.running_var.fill_(4.0)
    x, y = data
    y = y % 3
    assert find_conv_bn_pairs(model, x[:2]) == [("conv", "bn")]  # the hooks see the pair ...
    evaluator = SurfaceEvaluator(model, random_directions(model, 1), {"train": (x, y)})
    assert evaluator.fold_note.startswith("skipped")  # ... the check on random statistics refuses it
    with torch.no_grad():
        want = float(F.cross_entropy(model(x), y))
    assert evaluator((0.0,))["train_loss"] == pytest.approx(want, rel=1e-6)


def test_a_slice_of_a_quadratic_loss_is_the_analytic_parabola():
    """Linear regression with squared error: L(a) = mean((X (w + a d) - t)^2) = A a^2 + B a + C exactly."""
    torch.manual_seed(3)
    model = nn.Linear(3, 1, bias=False).double()
    x, t = torch.randn(50, 3, dtype=torch.float64), torch.randn(50, 1, dtype=torch.float64)
    d = {"weight": torch.randn(1, 3, dtype=torch.float64)}
    evaluator = SurfaceEvaluator(model, [d], {"train": (x, t)}, fold_bn=False,
                                 loss_fn=lambda out, target: (out - target).square().sum(1))
    w = model.weight.detach()
    xd, r = x @ d["weight"].T, x @ w.T - t
    a, b, c = float(xd.square().mean()), float(2 * (r * xd).mean()), float(r.square().mean())
    for alpha in torch.linspace(-2, 2, 9).tolist():
        assert evaluator((alpha,))["train_loss"] == pytest.approx(a * alpha**2 + b * alpha + c, rel=1e-12)
    assert evaluator.quantities() == ["train_loss"]  # float targets: no accuracy


def test_the_callers_model_is_left_exactly_as_it_was(data):
    model = small_resnet().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    strides = [p.stride() for p in model.parameters()]  # no memory-layout change either
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    evaluator = SurfaceEvaluator(model, random_directions(model, 2), {"train": data}, bn="recompute")
    for point in ((0.3, 0.3), (-0.5, 0.1)):
        evaluator(point)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert hooks == sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    assert strides == [p.stride() for p in model.parameters()]


def test_recomputed_statistics_are_a_cumulative_pass_over_the_data(data):
    model = small_resnet()
    directions = random_directions(model, 1, seed=7)
    evaluator = SurfaceEvaluator(model, directions, {"train": data}, bn="recompute", batch_size=10)
    manual = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in manual.named_parameters():
            p.add_(0.6 * directions[0][name])
        for m in manual.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None
        manual.train()
        for xb in data[0].split(10):
            manual(xb)
        manual.eval()
        want = float(F.cross_entropy(manual(data[0]), data[1]))
    assert evaluator((0.6,))["train_loss"] == pytest.approx(want, rel=1e-5)


def test_a_direction_that_does_not_fit_and_other_misuse(data):
    model = small_resnet()
    with pytest.raises(ConfigError, match="does not fit"):
        SurfaceEvaluator(model, [{"nope.weight": torch.zeros(1)}], {"train": data})
    with pytest.raises(ConfigError, match="does not fit"):
        SurfaceEvaluator(model, [{"head.fc.weight": torch.zeros(3, 3)}], {"train": data})
    with pytest.raises(ConfigError, match="bn must be"):
        SurfaceEvaluator(model, random_directions(model, 1), {"train": data}, bn="train")
    evaluator = SurfaceEvaluator(model, random_directions(model, 1), {"train": data})
    with pytest.raises(ConfigError, match="1 coordinates"):
        evaluator((0.0, 1.0))
