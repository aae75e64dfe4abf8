"""AlexNet: the paper's response normalization, narrow trainable widths, the shared MLP head, input size."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.analysis.counting import conv_params, count_params
from cnnlab.models import InputTooSmallError
from cnnlab.models.alexnet import TowerLRN, paper_lrn
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


# --------------------------------------------------------------------------------------------------
# alexnet_paper: the 2012 paper's two-tower network
# --------------------------------------------------------------------------------------------------


def test_paper_alexnet_count_layer_by_layer():
    """Figure 2 / Section 3.5: kernels 11x11x3, 5x5x48, 3x3x256, 3x3x192, 3x3x192; FC 9216-4096-4096-1000."""
    model = cnnlab.create_model("alexnet_paper")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.in_channels // c.groups, c.kernel_size[0]) for c in convs] == [
        (96, 3, 11), (256, 48, 5), (384, 256, 3), (384, 192, 3), (256, 192, 3)]
    convs_by_hand = (conv_params(3, 96, 11) + conv_params(96, 256, 5, groups=2) + conv_params(256, 384, 3)
                     + conv_params(384, 384, 3, groups=2) + conv_params(384, 256, 3, groups=2))
    fcs = (256 * 6 * 6 + 1) * 4096 + (4096 + 1) * 4096 + (4096 + 1) * 1000
    assert convs_by_hand == 2_334_080 and fcs == 58_631_144
    assert count_params(model) == convs_by_hand + fcs == 60_965_224


def test_paper_alexnet_maps_match_figure_2():
    model = cnnlab.create_model("alexnet_paper").eval()
    sizes = {}
    for name in ("stem.conv1", "stem.pool", "stages.0.pool", "stages.1.conv5", "stages.1.pool"):
        module = dict(model.named_modules())[name]
        module.register_forward_hook(lambda m, i, o, key=name: sizes.__setitem__(key, tuple(o.shape[1:])))
    with torch.no_grad():
        model(torch.randn(1, 3, 227, 227))
    assert sizes == {"stem.conv1": (96, 55, 55), "stem.pool": (96, 27, 27), "stages.0.pool": (256, 13, 13),
                     "stages.1.conv5": (256, 13, 13), "stages.1.pool": (256, 6, 6)}


def test_paper_alexnet_towers_do_not_talk_in_conv2_conv4_conv5():
    """Changing the second tower's maps leaves the first tower's outputs of conv2 (and their LRN) alone."""
    torch.manual_seed(0)
    model = cnnlab.create_model("alexnet_paper", width_mult=0.125).eval()  # 12, 32, 48, 48, 32 maps
    stage = model.stages[0]  # conv2 (grouped) -> per-tower LRN -> pool
    x = torch.rand(1, 12, 13, 13) * 50
    other = x.clone()
    other[:, 6:] = torch.rand(1, 6, 13, 13) * 50  # the second tower's input maps
    with torch.no_grad():
        a, b = stage(x), stage(other)
    assert torch.equal(a[:, :16], b[:, :16])  # the first tower: its conv and its normalization untouched
    assert not torch.allclose(a[:, 16:], b[:, 16:])
    conv3, conv4 = model.stages[1].conv3.conv, model.stages[1].conv4.conv
    assert (conv3.groups, conv4.groups) == (1, 2)  # conv3 reads both towers, conv4 its own


def test_tower_lrn_normalizes_each_half_on_its_own():
    a = torch.rand(2, 8, 3, 3) * 60
    got = TowerLRN(2)(a)
    assert torch.allclose(got, torch.cat([_paper_lrn_reference(a[:, :4]), _paper_lrn_reference(a[:, 4:])], 1),
                          rtol=1e-5)
    assert not torch.allclose(got[:, 3], paper_lrn()(a)[:, 3])  # one LRN over all 8 maps crosses the edge
    assert torch.allclose(TowerLRN(1)(a), paper_lrn()(a))


def test_paper_alexnet_drops_the_hidden_outputs_and_needs_67_pixels():
    model = cnnlab.create_model("alexnet_paper")
    assert model.head.drop_first is False and model.head.drop1.p == 0.5
    assert model.stem.conv1.conv.padding == (0, 0)
    with pytest.raises(InputTooSmallError, match="at least 67x67"):
        model(torch.randn(1, 3, 66, 66))


@pytest.mark.parametrize("towers", [0, 5])
def test_towers_must_divide_the_widths(towers):
    with pytest.raises(ValueError, match="towers must be a positive divisor"):
        cnnlab.create_model("alexnet_paper", towers=towers)
