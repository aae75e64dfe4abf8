"""AlexNet: the paper's response normalization, narrow trainable widths, the shared MLP head, input size."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.analysis.counting import conv_params, count_params
from cnnlab.models import InputTooSmallError
from cnnlab.models.alexnet import paper_lrn
from cnnlab.models.layers import MlpHead


def _paper_lrn_reference(a: torch.Tensor, n: int = 5, alpha: float = 1e-4, beta: float = 0.75,
                         k: float = 2.0) -> torch.Tensor:
    """Section 3.3: b_i = a_i / (k + alpha * sum of a_j^2 over j = i - n/2 .. i + n/2 in 0..N-1) ** beta."""
    channels = a.shape[1]
    out = torch.empty_like(a)
    for i in range(channels):
        lo, hi = max(0, i - n // 2), min(channels - 1, i + n // 2)
        out[:, i] = a[:, i] / (k + alpha * (a[:, lo:hi + 1] ** 2).sum(dim=1)) ** beta
    return out


def test_lrn_is_the_papers_formula():
    a = torch.rand(2, 9, 4, 4) * 60  # ReLU outputs large enough for the normalization to matter
    got = paper_lrn()(a)
    assert torch.allclose(got, _paper_lrn_reference(a), rtol=1e-5)
    assert not torch.allclose(got, a / 2.0 ** 0.75, rtol=1e-3)  # the neighbour sum really contributes


def test_lrn_option_follows_the_first_two_conv_relu():
    plain = cnnlab.create_model("alexnet")
    lrn = cnnlab.create_model("alexnet", lrn=True)
    assert [n for n, _ in lrn.stem.named_children()] == ["conv1", "lrn", "pool"]
    assert [n for n, _ in lrn.stages[0].named_children()] == ["conv2", "lrn", "pool"]
    assert not any(isinstance(m, nn.LocalResponseNorm) for m in lrn.stages[1].modules())
    assert not any(isinstance(m, nn.LocalResponseNorm) for m in plain.modules())
    assert count_params(lrn) == count_params(plain)
    lrn.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 63, 63)
    plain.eval()
    lrn.eval()
    with torch.no_grad():
        assert not torch.allclose(plain(x), lrn(x))


def test_narrow_alexnet_widths_and_count():
    model = cnnlab.create_model("alexnet", width_mult=0.25, hidden=128, num_classes=10, in_chans=1)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 48, 96, 64, 64]
    expected = (conv_params(1, 16, 11) + conv_params(16, 48, 5) + conv_params(48, 96, 3)
                + conv_params(96, 64, 3) + conv_params(64, 64, 3)
                + (64 * 6 * 6 + 1) * 128 + (128 + 1) * 128 + (128 + 1) * 10)
    assert count_params(model) == expected
    assert model.num_features == 128
    model.reset_classifier(0)
    assert model(torch.randn(2, 1, 63, 63)).shape == (2, 128)


def separable_batch(size: int, n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise images whose class sets the top half bright (1) or dark (0)."""
    y = torch.arange(n) % 2
    x = torch.randn(n, 1, size, size) * 0.5
    x[:, :, : size // 2] += (y.float() * 2 - 1).view(-1, 1, 1, 1)
    return x, y


def fit_losses(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 20) -> list[float]:
    """Cross-entropy after each of ``steps`` Adam steps on one batch."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_narrow_alexnet_trains_on_cpu():
    model = cnnlab.create_model("alexnet", width_mult=0.125, hidden=64, num_classes=2, in_chans=1,
                                drop_rate=0.0)
    losses = fit_losses(model, *separable_batch(63))
    assert losses[-1] < 0.25 * losses[0]


@pytest.mark.parametrize(("kwargs", "match"), [({"width_mult": 0.0}, "width_mult must be positive"),
                                               ({"hidden": 0}, "hidden")])
def test_bad_width_is_one_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        cnnlab.create_model("alexnet", **kwargs)


def test_28x28_is_refused_with_the_smallest_size():
    model = cnnlab.create_model("alexnet", in_chans=1, num_classes=10)
    with pytest.raises(InputTooSmallError, match="at least 63x63"):
        model(torch.randn(1, 1, 28, 28))


@pytest.mark.parametrize("drop_first", [True, False])
def test_mlp_head_dropout_position(drop_first):
    head = MlpHead(2, 3, pool_size=2, hidden=16, drop_rate=0.5, drop_first=drop_first).train()
    seen = {}
    head.fc1.register_forward_pre_hook(lambda m, args: seen.__setitem__("fc1_in", args[0].clone()))
    head(torch.ones(4, 2, 2, 2))
    # AlexNet drops the first hidden layer's input; VGG feeds it the pooled features untouched
    has_zeros = bool((seen["fc1_in"] == 0).any())
    assert has_zeros is drop_first
