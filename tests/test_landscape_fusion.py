"""Fused convolutions (conv -> [add] -> ReLU as one oneDNN primitive): same outputs, live weights, safe rewrites."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.experiments.landscape.fusion import FusedForward, fusable
from cnnlab.experiments.landscape.surface import FoldedNetwork, SurfaceEvaluator, find_conv_bn_pairs
from cnnlab.models import create_model

pytestmark = pytest.mark.skipif(not fusable(torch.device("cpu")), reason="this PyTorch has no oneDNN fusion")


def _folded(name: str, side: int, **options) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_chans=1, **options).eval().to(memory_format=torch.channels_last)
    x = torch.randn(6, 1, side, side).contiguous(memory_format=torch.channels_last)
    folded = FoldedNetwork(model, find_conv_bn_pairs(model, x[:2]))
    folded.refresh()
    return folded.module.eval(), x


@pytest.mark.parametrize(("name", "side", "fused"), [("resnet20", 28, 19), ("plain20", 28, 19), ("resnet18", 32, 17)])
def test_fused_network_gives_the_same_outputs(name, side, fused):
    net, x = _folded(name, side)
    forward = FusedForward(net)
    with torch.inference_mode():
        want, got = net(x), forward(x)
    # every conv of these networks is followed by a ReLU or by the residual addition (resnet18: not the
    # three projection shortcuts' 1x1 convs, whose outputs the addition reads as its other operand)
    assert forward.fused == fused
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5)


def test_weights_written_after_tracing_are_read():
    net, x = _folded("resnet20", 28)
    forward = FusedForward(net)
    with torch.inference_mode():
        forward(x)  # traced here
        with torch.no_grad():
            for p in net.parameters():
                p.mul_(1.1)
        want, got = net(x), forward(x)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5)


class _TwoReaders(nn.Module):
    """A conv whose output a ReLU and the return value both read: fusing it would lose the raw output."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.second = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return torch.relu(self.second(torch.relu(y))) + y.mean()


def test_a_convolution_read_twice_is_left_alone():
    net = _TwoReaders().eval()
    x = torch.randn(2, 1, 8, 8)
    forward = FusedForward(net)
    with torch.inference_mode():
        want, got = net(x), forward(x)
    assert forward.fused == 1  # only the second conv
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-6)


def test_evaluator_fuses_by_default_and_agrees_with_unfused():
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10, in_chans=1).eval()
    x, y = torch.randn(40, 1, 28, 28), torch.randint(0, 10, (40,))
    direction = [{k: torch.randn_like(v) * 0.05 for k, v in model.named_parameters()}]
    on = SurfaceEvaluator(model, direction, {"train": (x, y)}, batch_size=16)
    off = SurfaceEvaluator(model, direction, {"train": (x, y)}, batch_size=16, fuse=False)
    assert on.fuse_note.startswith("19 convolutions fused") and off.fuse_note == "off"
    for c in (0.0, 0.5, -1.0):
        a, b = on((c,)), off((c,))
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["train_accuracy"] == b["train_accuracy"]
    assert not fusable(torch.device("meta"))
