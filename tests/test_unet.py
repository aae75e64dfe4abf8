"""U-Net: paper arithmetic, any size divisible by 16, norm and upsampling options, anatomy."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cnnlab
from _zoo import build_meta
from cnnlab.analysis.counting import count_inference_params, count_macs, count_params, meta_forward
from cnnlab.models import InputTooSmallError

WIDTHS = (64, 128, 256, 512, 1024)


def _paper_layers(in_chans: int, num_classes: int) -> list[tuple[str, int, int, int]]:
    """Fig. 1 as (kind, C_in, C_out, scale) with scale = input side / the layer's output side."""
    layers, c, scale = [], in_chans, 1
    for i, w in enumerate(WIDTHS):
        layers += [("conv3", c, w, scale), ("conv3", w, w, scale)]
        c = w
        if i < len(WIDTHS) - 1:
            scale *= 2  # 2x2 max pool
    for w in reversed(WIDTHS[:-1]):
        scale //= 2
        layers += [("up2", c, w, scale), ("conv3", 2 * w, w, scale), ("conv3", w, w, scale)]
        c = w
    return layers + [("conv1", c, num_classes, 1)]


def _paper_counts(in_chans: int, num_classes: int, size: int) -> tuple[int, int]:
    """(parameters, MACs) of the padded, norm-free U-Net from its layer list."""
    params = macs = 0
    for kind, c_in, c_out, scale in _paper_layers(in_chans, num_classes):
        k = {"conv3": 3, "conv1": 1, "up2": 2}[kind]
        params += k * k * c_in * c_out + c_out
        # A stride-2 2x2 transposed conv gives each output pixel one kernel tap: C_in MACs per output.
        taps = 1 if kind == "up2" else k * k
        macs += (size // scale) ** 2 * taps * c_in * c_out
    return params, macs


def test_paper_network_counts_from_layer_arithmetic():
    model = build_meta("unet", norm_layer="none", in_chans=1, num_classes=2)
    params, macs = _paper_counts(1, 2, 512)
    assert count_params(model) == params
    assert count_macs(model, (1, 512, 512)) == macs


def test_batch_norm_default_swaps_biases_for_scale_and_shift():
    with_bn = build_meta("unet")
    plain = build_meta("unet", norm_layer="none")
    convs3 = [m for m in plain.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs3) == 18 and all(m.bias is not None for m in convs3)
    bn_convs3 = [m for m in with_bn.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert all(m.bias is None for m in bn_convs3)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    # Each 3x3 conv loses its C_out biases and gains a norm with 2 * C_out parameters.
    assert count_params(with_bn) - count_params(plain) == sum(m.out_channels for m in convs3)


def test_norm_is_injectable_and_bad_names_are_one_clear_error():
    model = build_meta("unet", norm_layer=lambda c: nn.GroupNorm(8, c))
    assert sum(isinstance(m, nn.GroupNorm) for m in model.modules()) == 18
    with pytest.raises(ValueError, match="norm_layer must be"):
        cnnlab.create_model("unet", norm_layer="instancenorm")


@pytest.mark.parametrize(("h", "w"), [(16, 16), (32, 48), (80, 16)])
def test_output_keeps_any_size_divisible_by_16(h, w):
    model = build_meta("unet", num_classes=3, in_chans=3).eval()
    out = meta_forward(model, torch.empty(2, 3, h, w, device="meta"))
    assert tuple(out.shape) == (2, 3, h, w)


def test_real_forward_rectangular_gray():
    model = cnnlab.create_model("unet", num_classes=4).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 1, 16, 32))
    assert out.shape == (1, 4, 16, 32) and torch.isfinite(out).all()


def test_sizes_not_divisible_by_16_are_one_clear_error():
    model = build_meta("unet").eval()
    with pytest.raises(ValueError, match=r"divisible by 16.*got 40x48; pad or resize to 48x48"):
        meta_forward(model, torch.empty(1, 1, 40, 48, device="meta"))
    with pytest.raises(InputTooSmallError, match="at least 16x16"):
        meta_forward(model, torch.empty(1, 1, 8, 8, device="meta"))


def test_directly_built_unet_checks_its_input_too():
    from cnnlab.models.unet import UNet

    with pytest.raises(InputTooSmallError, match="at least 16x16"):
        UNet()(torch.randn(1, 1, 8, 8))


def test_bilinear_upsampling_option():
    transposed = build_meta("unet")
    bilinear = build_meta("unet", bilinear=True)
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in bilinear.modules())
    # Each up-step's 2x2 transposed conv (4 C_in C_out + C_out) becomes a 1x1 conv (C_in C_out + C_out).
    saved = sum(3 * c_in * c_out for c_in, c_out in zip(WIDTHS[1:], WIDTHS[:-1]))
    assert count_params(transposed) - count_params(bilinear) == saved
    out = meta_forward(bilinear.eval(), torch.empty(1, 1, 32, 32, device="meta"))
    assert tuple(out.shape) == (1, 2, 32, 32)


def test_anatomy_skips_and_features():
    model = build_meta("unet")
    assert [(f.module, f.num_chs, f.reduction) for f in model.feature_info] == [
        ("stages.0", 128, 2), ("stages.1", 256, 4), ("stages.2", 512, 8), ("stages.3", 1024, 16)]
    # Every decoder stage reads its upsampled map concatenated with the encoder map of its resolution.
    assert [up.conv.conv1.conv.in_channels for up in model.decoder] == [1024, 512, 256, 128]
    assert model.head.fc.kernel_size == (1, 1) and model.num_features == 64
    model.reset_classifier(0)
    out = meta_forward(model.eval(), torch.empty(1, 1, 64, 64, device="meta"))
    assert tuple(out.shape) == (1, 64, 64, 64)


def test_skip_connections_carry_fine_detail():
    """Zeroing the last decoder stage's skip input changes the output: the full-resolution skip is used."""
    model = cnnlab.create_model("unet").eval()
    x = torch.randn(1, 1, 16, 16)
    last_up = model.decoder[-1]
    with torch.no_grad():
        ref = model(x)
        handle = last_up.register_forward_pre_hook(lambda m, args: (args[0], torch.zeros_like(args[1])))
        try:
            no_skip = model(x)
        finally:
            handle.remove()
    assert not torch.allclose(ref, no_skip)


def test_dropout_at_the_end_of_the_contracting_path():
    model = build_meta("unet", drop_rate=0.5)
    drops = [name for name, m in model.named_modules() if isinstance(m, nn.Dropout)]
    assert drops == ["stages.3.drop"]
    with pytest.raises(ValueError, match="drop_rate"):
        cnnlab.create_model("unet", drop_rate=1.5)


# -- size options, the paper's valid convolutions, and the two ablations -----------------------------------

# Fig. 1 of the paper: the side of each 3x3 conv's output, contracting then expanding path, for 572x572.
PAPER_VALID_SIDES = [570, 568, 282, 280, 138, 136, 66, 64, 30, 28, 54, 52, 102, 100, 198, 196, 390, 388]


def _layer_list(widths, in_chans: int, num_classes: int) -> list[tuple[str, int, int]]:
    """(kind, C_in, C_out) of every conv in Fig. 1's order, for any stage widths."""
    layers, c = [], in_chans
    for w in widths:
        layers += [("conv3", c, w), ("conv3", w, w)]
        c = w
    for w in reversed(widths[:-1]):
        layers += [("up2", c, w), ("conv3", 2 * w, w), ("conv3", w, w)]
        c = w
    return layers + [("conv1", c, num_classes)]


def test_valid_convolutions_give_the_papers_572_to_388_with_its_macs():
    model = build_meta("unet", norm_layer="none", padding="valid").eval()
    out = meta_forward(model, torch.empty(1, 1, 572, 572, device="meta"))
    assert tuple(out.shape) == (1, 2, 388, 388)
    # MACs from Fig. 1's map sides: each 3x3 conv output pixel costs 9 C_in MACs per output channel,
    # each 2x2 stride-2 up-conv output pixel 1 C_in (one tap), the 1x1 head C_in at 388x388.
    sides = iter(PAPER_VALID_SIDES)
    macs = 0
    for kind, c_in, c_out in _layer_list(WIDTHS, 1, 2):
        if kind == "conv3":
            macs += next(sides) ** 2 * 9 * c_in * c_out
        elif kind == "conv1":
            macs += 388**2 * c_in * c_out
    up_sides = [56, 104, 200, 392]  # each up-conv doubles the side before it: 2 x (28, 52, 100, 196)
    macs += sum(s**2 * c_in for s, c_in in zip(up_sides, (1024 * 512, 512 * 256, 256 * 128, 128 * 64)))
    assert count_macs(model, (1, 572, 572)) == macs
    assert count_params(model) == count_params(build_meta("unet", norm_layer="none"))  # padding adds none


def test_valid_convolutions_copy_and_crop_the_skip_maps():
    model = build_meta("unet", padding="valid").eval()
    seen = []
    handles = [up.conv.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape)))
               for up in model.decoder]
    try:
        meta_forward(model, torch.empty(1, 1, 572, 572, device="meta"))
    finally:
        for h in handles:
            h.remove()
    # The 64x64 encoder map is cropped to the 56x56 up-convolved map and concatenated (512 + 512 channels).
    assert seen == [(1, 1024, 56, 56), (1, 512, 104, 104), (1, 256, 200, 200), (1, 128, 392, 392)]


def test_valid_sizes_are_the_arithmetic_of_fig1():
    from cnnlab.models.unet import valid_input_size, valid_output_size

    assert valid_output_size(572) == 388
    assert valid_output_size(571) is None  # 567 cannot be pooled 2x2
    # input = 16 b + 124 with bottom side b; b >= 4 keeps every expanding-path map positive (4 -> 4 output).
    assert valid_input_size(1) == 188 and valid_output_size(188) == 4
    assert valid_output_size(64, depth=2) == 24  # 64-4=60 ->30 -> 26 ->13 -> 9 -> 18-4=14 -> 28-4=24
    model = build_meta("unet", padding="valid").eval()
    with pytest.raises(ValueError, match=r"cannot take 200x200.*next sizes it takes are 204x204"):
        meta_forward(model, torch.empty(1, 1, 200, 200, device="meta"))
    with pytest.raises(InputTooSmallError, match="at least 188x188"):
        meta_forward(model, torch.empty(1, 1, 64, 64, device="meta"))


def test_width_and_depth_size_the_network():
    model = build_meta("unet", width=16, depth=3, norm_layer="none", num_classes=11)
    params = sum(k * k * ci * co + co for kind, ci, co in _layer_list((16, 32, 64, 128), 1, 11)
                 for k in [{"conv3": 3, "conv1": 1, "up2": 2}[kind]])
    assert count_params(model) == params
    assert [f.num_chs for f in model.feature_info] == [32, 64, 128]
    out = meta_forward(model.eval(), torch.empty(2, 1, 24, 40, device="meta"))  # multiples of 2^3
    assert tuple(out.shape) == (2, 11, 24, 40)
    with pytest.raises(ValueError, match="divisible by 8"):
        meta_forward(model, torch.empty(1, 1, 20, 20, device="meta"))
    with pytest.raises(ValueError, match="whole numbers"):
        cnnlab.create_model("unet", width=0)


def test_explicit_stage_widths_replace_width_and_depth():
    model = build_meta("unet", widths=(8, 24, 40, 96), norm_layer="none", num_classes=11)
    params = sum(k * k * ci * co + co for kind, ci, co in _layer_list((8, 24, 40, 96), 1, 11)
                 for k in [{"conv3": 3, "conv1": 1, "up2": 2}[kind]])
    assert count_params(model) == params and model.depth == 3
    assert [f.num_chs for f in model.feature_info] == [24, 40, 96]
    out = meta_forward(model.eval(), torch.empty(2, 1, 16, 32, device="meta"))
    assert tuple(out.shape) == (2, 11, 16, 32)
    assert count_params(build_meta("unet", widths=[16, 32, 64, 128])) == count_params(
        build_meta("unet", width=16, depth=3))
    for bad in ((8,), (8, 0), (8, 2.5)):
        with pytest.raises(ValueError, match="widths must list at least two whole numbers"):
            cnnlab.create_model("unet", widths=bad)


def test_without_skips_each_decoder_stage_reads_the_upsampled_map_alone():
    full = build_meta("unet", width=8, depth=2, norm_layer="none")
    plain = build_meta("unet", width=8, depth=2, norm_layer="none", skips=False)
    assert [up.conv.conv1.conv.in_channels for up in plain.decoder] == [16, 8]
    # Each decoder stage's first 3x3 conv loses the C_out skip channels of input: 9 C_out^2 weights.
    assert count_params(full) - count_params(plain) == 9 * (16 * 16 + 8 * 8)
    model = cnnlab.create_model("unet", width=8, depth=2, skips=False).eval()
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        ref = model(x)
        handle = model.decoder[-1].register_forward_pre_hook(lambda m, args: (args[0], torch.zeros_like(args[1])))
        try:
            assert torch.equal(model(x), ref)  # the skip input is not read
        finally:
            handle.remove()


def test_without_decoder_the_bottom_scores_are_upsampled_fcn_style():
    model = cnnlab.create_model("unet", width=8, depth=3, decoder=False, num_classes=5).eval()
    assert len(model.decoder) == 0 and model.num_features == 64 and model.head.upsample == 8
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        out = model(x)
        bottom = model.head.fc(model.forward_features(x))  # (2, 5, 4, 4)
    assert out.shape == (2, 5, 32, 32) and bottom.shape == (2, 5, 4, 4)
    expected = torch.nn.functional.interpolate(bottom, size=(32, 32), mode="bilinear", align_corners=False)
    assert torch.allclose(out, expected, atol=1e-6)
    with pytest.raises(ValueError, match="needs padding='same'"):
        cnnlab.create_model("unet", decoder=False, padding="valid")


def test_aux_logits_score_the_bottom_map_in_training_only():
    model = cnnlab.create_model("unet", width=8, depth=3, num_classes=5, aux_logits=True)
    plain = cnnlab.create_model("unet", width=8, depth=3, num_classes=5)
    # The head runs in training only: inference counts leave it out, as they leave out GoogLeNet's.
    assert count_params(model) - count_params(plain) == 64 * 5 + 5
    assert count_inference_params(model, (1, 32, 32)) == count_params(plain)
    assert count_macs(model, (1, 32, 32)) == count_macs(plain, (1, 32, 32))
    x = torch.randn(2, 1, 32, 32)
    out, aux = model.train()(x)
    assert out.shape == aux.shape == (2, 5, 32, 32)
    model.eval()
    with torch.no_grad():
        bottom = model._features(x)[1]
        expected = torch.nn.functional.interpolate(model.aux.fc(bottom), size=(32, 32), mode="bilinear",
                                                   align_corners=False)
        assert torch.allclose(model.aux(bottom), expected, atol=1e-6)
        assert torch.equal(model(x), model.forward_head(model.forward_features(x)))  # eval: main output only
    model.reset_classifier(3)
    assert model.train()(x)[1].shape == (2, 3, 32, 32)
    model.reset_classifier(0)
    assert model(x).shape == (2, 8, 32, 32)  # features: no auxiliary scores
    with pytest.raises(ValueError, match="aux_logits needs the decoder"):
        cnnlab.create_model("unet", decoder=False, aux_logits=True)
    with pytest.raises(ValueError, match="aux_logits needs the decoder"):
        cnnlab.create_model("unet", padding="valid", aux_logits=True)
