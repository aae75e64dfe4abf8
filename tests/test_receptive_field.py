"""Receptive fields traced through the graph, checked against the input-gradient support of single units
(on residual, multi-branch, dilated, pooled, upsampling and U-Net-like networks) and published values."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import cnnlab
from _zoo import build_meta
from cnnlab.analysis.counting import conv_params
from cnnlab.analysis.receptive_field import Axis, Field, gradient_receptive_field, union
from cnnlab.analysis.summary import conv_output_size, layer_fields, summary
from cnnlab.errors import ConfigError
from cnnlab.models import layers

PUBLISHED = json.loads((Path(__file__).parent / "golden" / "summary.json").read_text())["published_receptive_fields"]


# --------------------------------------------------------------------------------------------------
# Small networks with every kind of graph
# --------------------------------------------------------------------------------------------------


class Residual(nn.Module):
    """Basic block: 3x3 (stride), 3x3, + shortcut (1x1 stride-s projection when strided)."""

    def __init__(self, c: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, stride, 1)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1)
        self.down = nn.Conv2d(c, c, 1, stride) if stride > 1 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(F.relu(self.conv1(x))) + self.down(x))


class Inception(nn.Module):
    """Branches 1x1 | 3x3 | 3x3-3x3 | 3x3 max pool-1x1 | 1x7-7x1, concatenated."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.b1 = nn.Conv2d(c, c, 1)
        self.b3 = nn.Conv2d(c, c, 3, padding=1)
        self.b5 = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1))
        self.bp = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(c, c, 1))
        self.b7 = nn.Sequential(nn.Conv2d(c, c, (1, 7), padding=(0, 3)), nn.Conv2d(c, c, (7, 1), padding=(3, 0)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.bp(x), self.b7(x)], 1)


class UNetLike(nn.Module):
    """Two 3x3 + 2x2-pool levels, a bottom, two up-steps (transposed conv or interpolation) with skip concat."""

    def __init__(self, c: int = 2, mode: str = "transposed") -> None:
        super().__init__()
        self.e1, self.e2, self.e3 = (nn.Conv2d(c, c, 3, padding=1) for _ in range(3))
        self.mode = mode
        self.up2, self.up1 = nn.ConvTranspose2d(c, c, 2, 2), nn.ConvTranspose2d(c, c, 2, 2)
        self.d2, self.d1 = nn.Conv2d(2 * c, c, 3, padding=1), nn.Conv2d(2 * c, c, 3, padding=1)

    def up(self, x: torch.Tensor, layer: nn.Module) -> torch.Tensor:
        return layer(x) if self.mode == "transposed" else F.interpolate(x, scale_factor=2, mode=self.mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.e1(x))
        b = F.relu(self.e2(F.max_pool2d(a, 2)))
        c = F.relu(self.e3(F.max_pool2d(b, 2)))
        d = self.d2(torch.cat([self.up(c, self.up2), b], 1))
        return self.d1(torch.cat([self.up(d, self.up1), a], 1))


class CroppingUNet(nn.Module):
    """The paper's U-Net pattern: valid convs, a stride-2 3x3 transposed conv, centre-cropped skip, concat."""

    def __init__(self, c: int = 2) -> None:
        super().__init__()
        self.e1 = nn.Sequential(nn.Conv2d(c, c, 3), nn.Conv2d(c, c, 3))
        self.e2 = nn.Sequential(nn.Conv2d(c, c, 3), nn.Conv2d(c, c, 3))
        self.up = nn.ConvTranspose2d(c, c, 3, stride=2, padding=1, output_padding=1)
        self.d = nn.Conv2d(2 * c, c, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.e1(x)
        u = self.up(self.e2(F.max_pool2d(a, 2)))
        off = (a.shape[-1] - u.shape[-1]) // 2
        return self.d(torch.cat([u, a[:, :, off:off + u.shape[-2], off:off + u.shape[-1]]], 1))


class SqueezeExcite(nn.Module):
    """3x3 conv, x * sigmoid(1x1(mean over H, W)), 3x3 conv: every unit gets the context of the whole map."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv, self.fc, self.post = nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, c, 1), nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.post(y * torch.sigmoid(self.fc(y.mean((2, 3), keepdim=True))))


class ChannelsLast(nn.Module):
    """3x3 conv, a linear layer and ReLU on the channels-last map (ConvNeXt's pattern), 3x3 stride-2 conv."""

    def __init__(self, c: int = 2) -> None:
        super().__init__()
        self.conv, self.fc, self.down = nn.Conv2d(1, c, 3, padding=1), nn.Linear(c, c), nn.Conv2d(c, c, 3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x).permute(0, 2, 3, 1)  # (B, H, W, C)
        return self.down(F.relu(self.fc(y)).permute(0, 3, 1, 2))


class Tokens(nn.Module):
    """2x2 stride-2 patches flattened to tokens, a linear layer per token, back to a map, a 3x3 conv."""

    def __init__(self, c: int = 2) -> None:
        super().__init__()
        self.patch, self.fc, self.conv = nn.Conv2d(1, c, 2, 2), nn.Linear(c, c), nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.patch(x)
        b, c, h, w = y.shape
        tokens = self.fc(y.flatten(2).transpose(1, 2))  # (B, h*w, C)
        return self.conv(tokens.transpose(1, 2).reshape(b, c, h, w))


class Windows(nn.Module):
    """3x3 conv, each 4x4 window's mean added to every unit in it (a windowed mixing), a 3x3 conv."""

    def __init__(self, c: int = 2) -> None:
        super().__init__()
        self.conv, self.post = nn.Conv2d(1, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        b, c, h, w = y.shape
        window = y.view(b, c, h // 4, 4, w // 4, 4).mean((3, 5), keepdim=True)
        return self.post(y + window.expand(b, c, h // 4, 4, w // 4, 4).reshape(b, c, h, w))


NETWORKS = {
    "plain": (lambda: nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                    nn.Conv2d(2, 2, 5, stride=2, padding=1), nn.Conv2d(2, 2, 3)), (1, 40, 40)),
    "residual": (lambda: nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), Residual(2, 1), Residual(2, 2),
                                       Residual(2, 1)), (1, 40, 40)),
    "multi_branch": (lambda: nn.Sequential(nn.Conv2d(1, 2, 3, 2, padding=1), Inception(2), nn.Conv2d(10, 2, 1),
                                           Inception(2)), (1, 48, 48)),
    "dilated": (lambda: nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Conv2d(2, 2, 3, padding=2, dilation=2),
                                      nn.Conv2d(2, 2, 3, padding=4, dilation=4),
                                      nn.Conv2d(2, 2, 3, stride=2, dilation=3)), (1, 48, 48)),
    "pooled": (lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(3, 2, ceil_mode=True),
                                     nn.Conv2d(2, 2, 3, padding=1), nn.AvgPool2d(3, 2, 1)), (1, 45, 45)),
    "adaptive_pool": (lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(5),
                                            nn.Conv2d(2, 2, 3, padding=1)), (1, 23, 23)),
    "grouped": (lambda: nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 5, padding=2, groups=4),
                                      nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 3, stride=2, groups=2)), (1, 30, 30)),
    "unet_transposed": (lambda: UNetLike(), (2, 32, 32)),
    "unet_bilinear": (lambda: UNetLike(mode="bilinear"), (2, 32, 32)),
    "unet_nearest": (lambda: UNetLike(mode="nearest"), (2, 32, 32)),
    "unet_cropping": (lambda: CroppingUNet(), (2, 40, 40)),
    "squeeze_excite": (lambda: nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), SqueezeExcite(2)), (1, 20, 20)),
    "upsample_to_size": (lambda: nn.Sequential(nn.Conv2d(1, 2, 3, stride=2), nn.Upsample(size=(21, 21),
                                               mode="bilinear"), nn.Conv2d(2, 2, 3)), (1, 31, 31)),
    "bicubic_aligned": (lambda: nn.Sequential(nn.Conv2d(1, 2, 3, stride=2, padding=1),
                                              nn.Upsample(scale_factor=3, mode="bicubic", align_corners=True),
                                              nn.Conv2d(2, 2, 3)), (1, 20, 20)),
    "channels_last": (lambda: ChannelsLast(), (1, 21, 21)),
    "tokens": (lambda: Tokens(), (1, 20, 20)),
    "windows": (lambda: Windows(), (1, 16, 16)),
    "signal_1d": (lambda: nn.Sequential(nn.Conv1d(1, 2, 5, stride=2), nn.MaxPool1d(3, 2), nn.Conv1d(2, 2, 3,
                                        dilation=2)), (1, 64)),
}


def _units(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Corners, centre and a few units in between, along the diagonal."""
    picks = sorted({0, 1, shape[0] // 3, shape[0] // 2, shape[0] // 2 + 1, shape[0] - 2, shape[0] - 1})
    return [tuple(min(p, n - 1) for n in shape) for p in picks if p >= 0]


def _clipped(spans: list[tuple[int, int]], size: tuple[int, ...]) -> list[tuple[int, int]]:
    return [(max(lo, 0), min(hi, n - 1)) for (lo, hi), n in zip(spans, size[1:])]


@pytest.mark.parametrize("key", sorted(NETWORKS))
def test_traced_field_equals_gradient_support(key):
    build, size = NETWORKS[key]
    torch.manual_seed(0)
    net = build()
    field = layer_fields(net, size)[""]
    with torch.no_grad():
        out_shape = tuple(net(torch.zeros(1, *size)).shape[2:])
    for unit in _units(out_shape):
        assert gradient_receptive_field(net, size, unit=unit) == _clipped(field.unit_span(unit), size), unit


@pytest.mark.parametrize("key", ["plain", "residual", "multi_branch", "dilated", "pooled", "grouped"])
def test_summary_numbers_predict_every_unit_of_strided_maps(key):
    # Without upsampling, unit i sees start + i*stride .. + size - 1: the three numbers are the whole story.
    build, size = NETWORKS[key]
    net = build()
    last = summary(net, size).layers[-1]
    rf = last["receptive_field"]
    for unit in _units(tuple(last["output_shape"][1:])):
        predicted = [(rf["start"] + i * rf["stride"], rf["start"] + i * rf["stride"] + rf["size"] - 1) for i in unit]
        assert gradient_receptive_field(net, size, unit=unit) == _clipped(predicted, size)


def test_non_square_fields_are_reported_per_axis():
    rows = {r["name"]: r for r in summary(NETWORKS["multi_branch"][0](), (1, 48, 48)).layers}
    # after a 3x3 stride-2 stem (3, stride 2), the 1x7 conv widens only the second axis by 6 * 2
    assert rows["1.b7.0"]["receptive_field"] == {"size": [3, 15], "stride": 2, "start": [-1, -7]}
    assert rows["1.b7.1"]["receptive_field"] == {"size": 15, "stride": 2, "start": -7}


def test_squeeze_excite_gives_every_unit_the_whole_map():
    rows = {r["name"]: r["receptive_field"] for r in summary(NETWORKS["squeeze_excite"][0](), (1, 20, 20)).layers}
    assert rows["1.conv"] == {"size": 5, "stride": 1, "start": -2}  # two 3x3 convs, before the gate
    # the gate reads the mean over the whole map: every unit then depends on every pixel
    assert rows["1.post"] == "global"
    field = layer_fields(NETWORKS["squeeze_excite"][0](), (1, 20, 20))["1"]
    assert field.stride == (0, 0) and all(lo <= 0 and hi >= 19 for lo, hi in field.unit_span((7, 7)))


def test_replicate_padding_matches_away_from_the_border():
    # Replicate padding copies edge pixels rather than adding units, so only interior units are exact.
    class Replicate(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1, self.c2 = nn.Conv2d(1, 2, 3, stride=2), nn.Conv2d(2, 2, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.c2(F.pad(self.c1(x), (2, 1, 2, 1), mode="replicate"))

    net, size = Replicate(), (1, 30, 30)
    field = layer_fields(net, size)[""]
    for unit in [(3, 3), (7, 7), (10, 10)]:
        assert gradient_receptive_field(net, size, unit=unit) == _clipped(field.unit_span(unit), size)


def test_a_roll_is_a_shift_away_from_the_wrap_around():
    class Rolled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1, self.c2 = nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.c2(torch.roll(self.c1(x), shifts=(2, -3), dims=(2, 3)))

    net, size = Rolled(), (1, 24, 24)
    field = layer_fields(net, size)[""]
    for unit in [(4, 2), (9, 9), (14, 12)]:
        assert gradient_receptive_field(net, size, unit=unit) == _clipped(field.unit_span(unit), size)


def test_positions_that_cannot_be_followed_give_no_number():
    class Shuffled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1, self.c2 = nn.Conv2d(1, 2, 3, padding=1), nn.Conv2d(2, 2, 3)
            self.register_buffer("order", torch.randperm(64))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.c1(x)
            return self.c2(y.flatten(2)[:, :, self.order].view(y.shape))  # units in a shuffled order

    result = summary(Shuffled(), (1, 8, 8))
    rows = {r["name"]: r["receptive_field"] for r in result.layers}
    assert rows["c1"] == {"size": 3, "stride": 1, "start": -1} and rows["c2"] is None
    assert result.total["receptive_field"] is None and "aten.index" in result.notes[0]


@pytest.mark.slow
@pytest.mark.parametrize("name, layer, size", [
    ("resnet18", "stages.1", (1, 112, 112)),      # residual, RF 99
    ("googlenet", "stages.0", (1, 112, 112)),     # Inception branches, RF 59
    ("densenet121", "stages.0", (1, 96, 96)),     # dense concatenation, RF 59
    ("regnety_200mf", "stages.0", (3, 64, 64)),   # squeeze-excitation and group convs
])
def test_zoo_networks_against_gradient_support(name, layer, size):
    net = cnnlab.create_model(name, in_chans=size[0])
    field = layer_fields(net, size)[layer]
    for unit in [(3, 3), (6, 6)]:
        assert gradient_receptive_field(net, size, unit=unit, layer=layer) == _clipped(field.unit_span(unit), size)


# --------------------------------------------------------------------------------------------------
# Published values: the TF-slim receptive-field table of Araujo et al. (2019)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key, builder, kwargs, depth", [
    ("torchvision_vgg16", "vgg16", {}, None),
    ("torchvision_alexnet", "alexnet", {}, None),
    ("torchvision_inception_v3", "inception_v3", {"init_weights": False}, 1),
])
def test_published_endpoints(key, builder, kwargs, depth):
    entry = PUBLISHED[key]
    with torch.device("meta"):
        model = getattr(torchvision.models, builder)(**kwargs)
    rows = {r["name"]: r["receptive_field"] for r in summary(model, tuple(entry["input_size"]), depth=depth).layers}
    for module, (size, stride, padding, endpoint) in entry["endpoints"].items():
        expected = {"size": size, "stride": stride, "start": -(padding + entry["padding_offset"])}
        assert rows[module] == expected, endpoint


# --------------------------------------------------------------------------------------------------
# torchvision's channels-last, transformer and multi-output networks, derived by hand
# --------------------------------------------------------------------------------------------------


def _torchvision(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return getattr(torchvision.models, name)(**kwargs)


def test_convnext_tiny_through_its_channels_last_blocks():
    # Stem 4x4 stride 4: size 4, jump 4. Each block's 7x7 depthwise conv (padding 3) adds 6 jumps and
    # moves the start by 3 jumps; its LayerNorm and linear layers run channels-last (permuted) and add
    # nothing. Stages of 3, 3, 9, 3 blocks at jumps 4, 8, 16, 32; the 2x2 stride-2 downsamplings between
    # them add 1 jump each (at 4, 8, 16):
    #   size  = 4 + 6*(3*4 + 3*8 + 9*16 + 3*32) + (4 + 8 + 16) = 4 + 1656 + 28 = 1688
    #   start = -3*(3*4 + 3*8 + 9*16 + 3*32) = -828
    total = summary(_torchvision("convnext_tiny"), (3, 224, 224)).total
    assert total["receptive_field"] == {"size": 1688, "stride": 32, "start": -828}


def test_swin_t_window_attention_by_hand():
    # Patches 4x4 stride 4 (size 4, jump 4). Block 1 attends inside 7x7 windows of tokens: each token sees
    # the 7 tokens of its window per axis, 7*4 = 28 pixels, windows aligned at 0. Block 2 shifts the windows
    # by 3 tokens: token u sees the tokens of window [7k+3, 7k+9], k = floor((u-3)/7), each of which saw its
    # block-1 window: tokens 7k .. 7k+13, 14 tokens = 56 pixels; token 0 (k = -1) starts at token -7, -28 px.
    result = summary(_torchvision("swin_t"), (3, 224, 224), depth=3)
    rows = {r["name"]: r["receptive_field"] for r in result.layers}
    assert rows["features.0.0"] == {"size": 4, "stride": 4, "start": 0}
    assert rows["features.1.0"] == {"size": 28, "stride": 4, "start": 0}
    assert rows["features.1.1"] == {"size": 56, "stride": 4, "start": -28}
    # the last stage is 7x7 tokens with 7x7 windows: attention over all of them
    assert rows["features.7.1"] == "global"


def test_vit_attention_over_all_tokens_is_global():
    result = summary(_torchvision("vit_b_16"), (3, 224, 224), depth=3)
    rows = {r["name"]: r["receptive_field"] for r in result.layers}
    assert rows["conv_proj"] == {"size": 16, "stride": 16, "start": 0}  # the patches
    # the class token is prepended, then each token attends to all 197: every one sees the whole image
    assert rows["encoder.layers.encoder_layer_0"] == "global"
    assert result.total["receptive_field"] == "global"


def test_fcn_reports_the_field_of_each_output():
    # ResNet-50 with dilation in layers 3 and 4 (jump stays 8). conv1 7/2/-3, max pool: 11, jump 4, -5;
    # layer1: 3 x (+2*4) = 35, -17; layer2: its first 3x3 strides (+2*4, jump 8), then 3 x (+2*8): 91, -45;
    # layer3: first block dilation 1 (+2*8), five with dilation 2 (+4*8 each): 267, start -133;
    # layer4: first block dilation 2 (+4*8), two with dilation 4 (+8*8 each): 427, start -213.
    # Each head: a 3x3 conv (+2*8, start -8), then bilinear upsampling x8, whose two taps add one jump (8)
    # and start one unit (8 px) earlier: aux (on layer3) 267+16+8 = 291, start -149; main 427+16+8 = 451, -229.
    from torchvision.models.segmentation import fcn_resnet50

    with torch.device("meta"):
        model = fcn_resnet50(weights=None, weights_backbone=None, aux_loss=True)
    total = summary(model, (3, 224, 224)).total
    fields = {o["name"]: o["receptive_field"] for o in total["outputs"]}
    assert fields == {"out": {"size": 451, "stride": 1, "start": -229},
                      "aux": {"size": 291, "stride": 1, "start": -149}}
    assert total["receptive_field"] == fields["out"]  # the main output's


# --------------------------------------------------------------------------------------------------
# The notes' arithmetic and the field algebra
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n, k, s, p, d, ceil", [
    (28, 5, 1, 0, 1, False), (224, 7, 2, 3, 1, False), (112, 3, 2, 1, 1, True), (27, 3, 2, 0, 1, True),
    (14, 2, 2, 0, 1, True), (13, 3, 2, 0, 1, True), (32, 3, 1, 2, 2, False), (10, 3, 3, 1, 1, True),
])
def test_conv_output_size_matches_pytorch(n, k, s, p, d, ceil):
    x = torch.empty(1, 1, n, n, device="meta")
    conv = F.conv2d(x, torch.empty(1, 1, k, k, device="meta"), stride=s, padding=p, dilation=d)
    pool = F.max_pool2d(x, k, s, p, d, ceil_mode=ceil) if p <= k // 2 else None
    assert conv_output_size(n, k, s, p, d) == conv.shape[-1]
    if pool is not None:
        assert conv_output_size(n, k, s, p, d, ceil) == pool.shape[-1]
    assert conv_output_size is layers.conv_output_size  # one formula, defined once, for the models and the notes


@pytest.mark.parametrize("c_in, c_out, k, groups, bias", [(3, 64, 7, 1, False), (32, 32, 3, 32, True),
                                                         (64, 128, (1, 7), 4, True), (1, 6, 5, 1, True)])
def test_conv_params_matches_pytorch(c_in, c_out, k, groups, bias):
    layer = nn.Conv2d(c_in, c_out, k, groups=groups, bias=bias)
    assert conv_params(c_in, c_out, k, groups, bias) == sum(p.numel() for p in layer.parameters())


def test_field_window_arithmetic():
    # r_out = r + (k - 1) d j, j_out = j s, start_out = start - p j
    field = Field.of_input(1).window([7], [2], [3], [1]).window([3], [2], [1], [1]).window([3], [1], [2], [2])
    assert field.size == (7 + 2 * 2 + 2 * 2 * 4,) and field.stride == (4,) and field.start == (-3 - 2 - 8,)
    assert field.as_dict() == {"size": 27, "stride": 4, "start": -13}


def test_field_after_upsampling_has_a_period():
    # 2x nearest upsampling of a stride-2 map: units 2i and 2i+1 read the same coarse unit
    axis = Axis.of_input().window(3, 2, 1, 1).gather(Fraction(1, 2), lambda o: [o // 2])
    assert axis.period == 2 and axis.stride == 1 and axis.spans == ((-1, 1), (-1, 1))
    assert axis.span(5) == (3, 5)


def test_union_takes_smallest_start_and_largest_end():
    a = Field.of_input(2).window([3, 3], [1, 1], [1, 1], [1, 1])
    b = Field.of_input(2).window([5, 1], [1, 1], [0, 0], [1, 1])
    merged = union([a, b])
    assert merged.as_dict() == {"size": [6, 3], "stride": 1, "start": -1}


def test_gradient_receptive_field_rejects_unknown_layer():
    with pytest.raises(ConfigError, match="no module named"):
        gradient_receptive_field(nn.Conv2d(1, 1, 3), (1, 8, 8), layer="nope")


def test_zoo_final_maps_match_published_tables():
    for name, entry in PUBLISHED["zoo_final_maps"].items():
        if name.startswith("_"):
            continue
        rf = summary(build_meta(name), tuple(entry["input_size"])).total["receptive_field"]
        assert rf == entry["receptive_field"], name
