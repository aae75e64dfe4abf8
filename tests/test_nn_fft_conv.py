"""cnnlab.nn FFT convolution against F.conv2d: values, gradients, padding strings, errors, module swap."""

from __future__ import annotations

import csv
import functools
import importlib.util
import json
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import cnnlab
from cnnlab.models.layers import ConvNormAct
from cnnlab.nn import FFTConv2d, convert_convs, fft_conv2d
from cnnlab.nn.fft_conv import fft_size

RTOL = 1e-4  # the bound, relative to the largest magnitude of the reference tensor


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max |a - e| / max(max |e|, 1): FFT round-off scales with the whole signal, not with each element.

    The floor of 1 keeps an exactly-zero reference (a kernel whose taps all fall on padding gets zero
    gradient) from turning round-off of order 1e-7 into a huge ratio; the operands here are O(1).
    """
    return ((actual - expected).abs().max() / expected.abs().max().clamp_min(1.0)).item()


def direct_conv(*args, **kwargs) -> torch.Tensor:
    with warnings.catch_warnings():  # 'same' with an even kernel warns about an internal copy
        warnings.simplefilter("ignore", UserWarning)
        return F.conv2d(*args, **kwargs)


def forward_and_grads(conv, x, w, b, grad_out_seed: int, **kw) -> tuple[torch.Tensor, ...]:
    """The output and the gradients of input, weight and bias for a fixed random upstream gradient."""
    x, w, b = (t.detach().clone().requires_grad_() for t in (x, w, b))
    out = conv(x, w, b, **kw)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(grad_out_seed), dtype=out.dtype)
    out.backward(g)
    return out.detach(), x.grad, w.grad, b.grad


GRADCHECK_CASES = [
    dict(),
    dict(padding=1),
    dict(stride=2, padding=(1, 2)),
    dict(dilation=2, padding=2),
    dict(groups=2, padding=1),
    dict(padding="same", dilation=(1, 2)),
    dict(padding="valid", stride=(1, 3)),
]


def case_id(kwargs: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in kwargs.items()) or "plain"


@pytest.mark.parametrize("kwargs", GRADCHECK_CASES, ids=case_id)
def test_gradcheck_float64(kwargs):
    groups = kwargs.get("groups", 1)
    x = torch.randn(2, 4, 7, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 4 // groups, 3, 2, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: fft_conv2d(x, w, b, **kwargs), (x, w, b))
    torch.testing.assert_close(fft_conv2d(x, w, b, **kwargs), direct_conv(x, w, b, **kwargs))


@st.composite
def conv_problems(draw):
    """A random valid F.conv2d call: shapes, stride, padding (ints or strings), dilation and groups."""
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    in_chs = groups * draw(st.integers(1, 3))
    out_chs = groups * draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 7)), draw(st.integers(1, 7)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    int_padding = st.tuples(st.integers(0, 4), st.integers(0, 4))
    padding = draw(st.one_of(st.sampled_from(["same", "valid"]), int_padding))
    stride = (1, 1) if padding == "same" else (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    span = [d * (k - 1) + 1 for d, k in zip(dilation, kernel)]
    pad = (0, 0) if isinstance(padding, str) else padding
    # Smallest size whose padded extent holds the dilated kernel, plus some room.
    size = [max(1, s - 2 * p) + draw(st.integers(0, 12)) for s, p in zip(span, pad)]
    batch = draw(st.integers(1, 3))
    return dict(x_shape=(batch, in_chs, *size), w_shape=(out_chs, in_chs // groups, *kernel),
                kwargs=dict(stride=stride, padding=padding, dilation=dilation, groups=groups),
                seed=draw(st.integers(0, 2**16)))


@settings(max_examples=60, deadline=None)
@given(conv_problems())
def test_random_shapes_match_conv2d_forward_and_backward(problem):
    gen = torch.Generator().manual_seed(problem["seed"])
    x = torch.randn(problem["x_shape"], generator=gen)
    w = torch.randn(problem["w_shape"], generator=gen)
    b = torch.randn(problem["w_shape"][0], generator=gen)
    kw = problem["kwargs"]
    expected = forward_and_grads(direct_conv, x, w, b, problem["seed"], **kw)
    actual = forward_and_grads(fft_conv2d, x, w, b, problem["seed"], **kw)
    assert actual[0].shape == expected[0].shape
    for name, a, e in zip(("output", "grad input", "grad weight", "grad bias"), actual, expected):
        assert relative_error(a, e) < RTOL, name


def test_unbatched_input_matches_conv2d():
    x, w = torch.randn(3, 10, 9), torch.randn(5, 3, 3, 3)
    out = fft_conv2d(x, w, padding=1)
    assert out.shape == (5, 10, 9)
    assert relative_error(out, F.conv2d(x, w, padding=1)) < RTOL


def test_half_precision_is_transformed_in_float32_and_cast_back():
    x, w = torch.randn(1, 2, 16, 16), torch.randn(3, 2, 5, 5)
    out = fft_conv2d(x.bfloat16(), w.bfloat16(), padding=2)
    assert out.dtype == torch.bfloat16
    ref = F.conv2d(x.bfloat16().float(), w.bfloat16().float(), padding=2)
    assert relative_error(out.float(), ref) < 1e-2  # bfloat16 keeps 8 bits of mantissa


def test_large_kernel_large_image_float32():
    x, w = torch.randn(2, 4, 96, 80), torch.randn(4, 4, 31, 31)
    assert relative_error(fft_conv2d(x, w, padding="same"), F.conv2d(x, w, padding="same")) < RTOL


@pytest.mark.parametrize("n, expected", [(1, 1), (7, 8), (11, 12), (29, 30), (31, 32), (97, 100), (128, 128)])
def test_fft_size_is_the_next_5_smooth_length(n, expected):
    assert fft_size(n) == expected


BAD_CALLS = [
    (dict(x=(1, 3, 8, 8), w=(4, 2, 3, 3)), "input channels"),
    (dict(x=(1, 4, 8, 8), w=(3, 2, 3, 3), groups=2), "groups=2 must divide"),
    (dict(x=(1, 3, 8, 8), w=(4, 3, 3, 3), groups=0), "groups"),
    (dict(x=(1, 3, 4, 4), w=(4, 3, 5, 5)), "larger than the padded input"),
    (dict(x=(1, 3, 4, 4), w=(4, 3, 3, 3), dilation=2), "larger than the padded input"),
    (dict(x=(1, 3, 8, 8), w=(4, 3, 3, 3), padding="full"), "'same' or 'valid'"),
    (dict(x=(1, 3, 8, 8), w=(4, 3, 3, 3), padding="same", stride=2), "needs stride 1"),
    (dict(x=(1, 3, 8, 8), w=(4, 3, 3, 3), padding=-1), "padding"),
    (dict(x=(1, 3, 8, 8), w=(4, 3, 3, 3), stride=0), "stride"),
    (dict(x=(1, 3, 8, 8), w=(4, 3, 3, 3), stride=(1, 2, 3)), "stride"),
    (dict(x=(3, 8), w=(4, 3, 3, 3)), "expects input"),
    (dict(x=(1, 3, 8, 8), w=(4, 3, 3)), "expects weight"),
    (dict(x=(1, 3, 8, 8), w=(4, 3, 3, 3), b=(3,)), "bias must have shape"),
]


@pytest.mark.parametrize("call, message", BAD_CALLS, ids=[m for _, m in BAD_CALLS])
def test_incompatible_arguments_raise_one_clear_value_error(call, message):
    call = dict(call)
    x, w = torch.randn(call.pop("x")), torch.randn(call.pop("w"))
    b = torch.randn(call.pop("b")) if "b" in call else None
    with pytest.raises(ValueError, match=message) as info:
        fft_conv2d(x, w, b, **call)
    assert "\n" not in str(info.value)


def test_mixed_dtypes_are_rejected():
    with pytest.raises(ValueError, match="dtype"):
        fft_conv2d(torch.randn(1, 1, 5, 5), torch.randn(1, 1, 3, 3, dtype=torch.float64))


# --- FFTConv2d and convert_convs ---------------------------------------------------------------------


def test_fftconv2d_is_a_drop_in_conv2d():
    conv = nn.Conv2d(4, 6, (5, 3), stride=2, padding=(2, 1), dilation=(1, 2), groups=2)
    fft = FFTConv2d(4, 6, (5, 3), stride=2, padding=(2, 1), dilation=(1, 2), groups=2)
    assert isinstance(fft, nn.Conv2d)
    shapes = {k: v.shape for k, v in conv.state_dict().items()}
    assert {k: v.shape for k, v in fft.state_dict().items()} == shapes
    fft.load_state_dict(conv.state_dict())
    x = torch.randn(2, 4, 15, 12)
    assert relative_error(fft(x), conv(x)) < RTOL
    conv.load_state_dict(FFTConv2d(4, 6, (5, 3), groups=2).state_dict())  # and back


def test_fftconv2d_same_padding_string():
    conv = nn.Conv2d(3, 4, 4, padding="same", bias=False)
    fft = FFTConv2d.from_conv(conv)
    x = torch.randn(1, 3, 9, 9)
    assert relative_error(fft(x), direct_conv(x, conv.weight, padding="same")) < RTOL


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_fftconv2d_rejects_other_padding_modes(mode):
    with pytest.raises(ValueError, match="padding_mode='zeros' only"):
        FFTConv2d(3, 4, 3, padding=1, padding_mode=mode)
    with pytest.raises(ValueError, match="padding_mode='zeros' only"):
        FFTConv2d.from_conv(nn.Conv2d(3, 4, 3, padding=1, padding_mode=mode))


def test_from_conv_shares_parameters_and_mode():
    conv = nn.Conv2d(2, 3, 3, padding=1).eval()
    fft = FFTConv2d.from_conv(conv)
    assert fft.weight is conv.weight and fft.bias is conv.bias
    assert not fft.training
    assert fft.weight.device == conv.weight.device
    assert FFTConv2d.from_conv(nn.Conv2d(2, 3, 3, bias=False)).bias is None
    with pytest.raises(TypeError, match="nn.Conv2d"):
        FFTConv2d.from_conv(nn.Linear(2, 3))


def small_net() -> nn.Sequential:
    return nn.Sequential(
        ConvNormAct(1, 4, 7, stride=2),
        nn.Sequential(ConvNormAct(4, 8, 3), ConvNormAct(8, 8, 5, groups=2)),
        nn.Conv2d(8, 8, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 3),
    )


@pytest.mark.parametrize("min_kernel, count", [(1, 4), (3, 3), (5, 2), (7, 1), (9, 0)])
def test_convert_convs_swaps_by_kernel_size_and_keeps_outputs(min_kernel, count):
    model = small_net().eval()
    x = torch.randn(2, 1, 28, 28)
    expected = model(x)
    assert convert_convs(model, min_kernel=min_kernel) == count
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert sum(isinstance(m, FFTConv2d) for m in convs) == count
    assert all(isinstance(m, FFTConv2d) == (min(m.kernel_size) >= min_kernel) for m in convs)
    assert relative_error(model(x), expected) < RTOL


def test_convert_convs_keeps_a_shared_conv_shared_and_optimizer_working():
    shared = nn.Conv2d(2, 2, 3, padding=1)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    assert convert_convs(model) == 1
    assert model[0] is model[2] and isinstance(model[0], FFTConv2d)
    before = model[0].weight.detach().clone()
    model(torch.randn(1, 2, 6, 6)).square().sum().backward()
    opt.step()
    assert not torch.equal(model[0].weight, before)


def test_convert_convs_rejects_non_zero_padding_without_touching_the_model():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect"))
    with pytest.raises(ValueError, match=r"^1 uses padding_mode='reflect'"):
        convert_convs(model)
    assert not any(isinstance(m, FFTConv2d) for m in model.modules())
    assert convert_convs(model, min_kernel=5) == 0


@pytest.mark.parametrize("bad", [0, -3, 2.5, "7"])
def test_convert_convs_rejects_bad_min_kernel(bad):
    with pytest.raises(ValueError, match="min_kernel"):
        convert_convs(small_net(), min_kernel=bad)


def test_convert_convs_rejects_a_bare_conv():
    with pytest.raises(ValueError, match="from_conv"):
        convert_convs(nn.Conv2d(1, 1, 3))


@pytest.mark.parametrize("name", ["resnet18", "lenet5"])
def test_converted_zoo_model_gives_the_same_outputs(name):
    model = cnnlab.create_model(name, num_classes=10, in_chans=1).eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        expected = model(x)
        converted = convert_convs(model, min_kernel=1)
        actual = model(x)
    assert converted > 0
    assert relative_error(actual, expected) < RTOL


# --- benchmarks/fft_conv.py --------------------------------------------------------------------------


@functools.cache
def load_benchmark():
    """The benchmark script as a module (benchmarks/ is not a package)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "fft_conv.py"
    spec = importlib.util.spec_from_file_location("fft_conv_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("points, kernel, interpolated", [
    ([(3, 4.0), (7, 0.25)], 7, 5.0),  # log-ratio halfway between 4 and 1/4
    ([(3, 2.0), (5, 1.0), (7, 0.5)], 7, 5.0),  # a tie is not a win
    ([(3, 0.5), (5, 2.0), (7, 0.5), (9, 0.1)], 7, 6.0),  # the last run of wins counts
    ([(3, 0.9), (5, 0.5)], 3, None),  # wins throughout
    ([(3, 2.0), (5, 0.5), (7, 1.5)], None, None),  # loses at the largest kernel
])
def test_benchmark_crossover(points, kernel, interpolated):
    assert load_benchmark().crossover(points) == {"kernel": kernel, "interpolated": interpolated}


def test_benchmark_quick_run_writes_its_results(tmp_path, capsys):
    bench = load_benchmark()
    threads = torch.get_num_threads()
    assert bench.main(["--quick", "--threads", "1", "--out", str(tmp_path), "--budget", "0.001"]) == 0
    assert torch.get_num_threads() == threads  # the process's setting is restored
    result = json.loads((tmp_path / "results.json").read_text())
    cells = {(r["mode"], r["size"], r["kernel"]) for r in result["results"]}
    assert cells == {(m, s, k) for m in bench.MODES for s in bench.QUICK_SIZES for k in bench.QUICK_KERNELS}
    for row in result["results"]:
        assert row["direct_ms"] > 0 and row["fft_ms"] > 0
        assert row["ratio"] == pytest.approx(row["fft_ms"] / row["direct_ms"])
    assert set(result["crossover"]) == set(bench.MODES)
    with (tmp_path / "results.csv").open() as f:
        assert len(list(csv.DictReader(f))) == len(cells)
    table = (tmp_path / "table.md").read_text()
    assert table.count("crossover k") == len(bench.MODES) and table in capsys.readouterr().out
    assert (tmp_path / "fft_conv.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
