"""cnnlab.summary: per-layer counts checked by hand, against torch's FLOP counter, torchvision's published
figures, real forward passes, and the golden numbers in tests/golden/summary.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import cnnlab
from _zoo import build_meta
from cnnlab import cli
from cnnlab.analysis.counting import count_macs, meta_forward
from cnnlab.analysis.summary import LAYER_KEYS, TOTAL_KEYS, parse_input_size, summary

GOLDEN = json.loads((Path(__file__).parent / "golden" / "summary.json").read_text())


def tiny_net() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(inplace=True),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 10))


# --------------------------------------------------------------------------------------------------
# One small network, every number derived by hand (1x8x8 input, float32 = 4 bytes)
# --------------------------------------------------------------------------------------------------


def test_tiny_net_rows_by_hand():
    rows = {r["name"]: r for r in summary(tiny_net(), (1, 8, 8)).layers}
    conv, bn, relu, pool, flat, fc = (rows[str(i)] for i in range(6))
    # conv: 4x8x8 = 256 outputs, each 1*3*3 MACs; 36 weights; output 256 * 4 bytes
    assert (conv["macs"], conv["flops"], conv["params"], conv["activation_bytes"]) == (2304, 4608, 36, 1024)
    # batch norm at inference: a scale and a shift per element; weight and bias per channel
    assert (bn["macs"], bn["flops"], bn["params"], bn["activation_bytes"]) == (0, 512, 8, 1024)
    # in-place ReLU: one op per element, allocates nothing
    assert (relu["flops"], relu["activation_bytes"]) == (256, 0)
    # 2x2 max pool: 4x4x4 = 64 outputs reading 4 inputs each
    assert (pool["flops"], pool["activation_bytes"], pool["output_shape"]) == (256, 256, [4, 4, 4])
    assert (flat["flops"], flat["activation_bytes"], flat["output_shape"]) == (0, 0, [64])
    # linear 64 -> 10: 640 MACs, 64*10 + 10 parameters, 10 outputs
    assert (fc["macs"], fc["flops"], fc["params"], fc["activation_bytes"]) == (640, 1280, 650, 40)
    # fields: 3x3 conv padded by 1 sees pixels -1..1; the 2x2 pool doubles the stride and adds one unit;
    # flattening the 4x4 map makes one unit see all four: 4 + 3 * 2 = 10
    assert conv["receptive_field"] == {"size": 3, "stride": 1, "start": -1}
    assert pool["receptive_field"] == {"size": 4, "stride": 2, "start": -1}
    assert fc["receptive_field"] == {"size": 10, "stride": 2, "start": -1}


def test_tiny_net_totals_by_hand():
    total = summary(tiny_net(), (1, 8, 8)).total
    assert total["params"] == 36 + 8 + 650
    assert total["param_bytes"] == 4 * 694
    assert total["macs"] == 2304 + 640
    assert total["flops"] == 4608 + 512 + 256 + 256 + 1280
    assert total["activation_bytes"] == 1024 + 1024 + 256 + 40
    # saved for backward per image: the conv's input (256 B), batch norm's input (1024 B), ReLU's output
    # (1024 B), the pool's indices (64 int64 = 512 B; its input is ReLU's output, already counted) and the
    # linear layer's input (the pooled map, 256 B)
    assert total["training_bytes"] == 256 + 1024 + 1024 + 512 + 256
    assert total["receptive_field"] == {"size": 4, "stride": 2, "start": -1}  # the pooled map, before Flatten
    assert total["depth"] == 2


def test_keys_match_the_issue():
    result = summary(tiny_net(), (1, 8, 8))
    payload = json.loads(result.render("json"))
    assert set(payload) >= {"layers", "total"}
    required = {"name", "type", "output_shape", "params", "macs", "flops", "activation_bytes", "receptive_field"}
    for row in payload["layers"]:
        assert required <= set(row) and list(row) == list(LAYER_KEYS)
        assert set(row["receptive_field"]) == {"size", "stride", "start"}
    assert list(payload["total"]) == list(TOTAL_KEYS)
    assert {"params", "macs", "flops", "activation_bytes", "training_bytes", "receptive_field"} <= set(payload["total"])
    assert payload["layers"] == result.layers  # the Python object gives the same rows


# --------------------------------------------------------------------------------------------------
# Independent counts: torch's FLOP counter, torchvision's metadata, real forward passes
# --------------------------------------------------------------------------------------------------


def _flop_counter_macs(model: nn.Module, size: tuple[int, ...]) -> int:
    with FlopCounterMode(display=False) as counter:
        meta_forward(model.eval(), torch.empty(1, *size))
    counts = counter.get_flop_counts()["Global"]
    assert set(map(str, counts)) <= {"aten.convolution", "aten.addmm", "aten.mm", "aten.bmm"}
    return sum(counts.values()) // 2


class _Depthwise(nn.Module):
    """Depthwise 5x5, grouped 3x3, pointwise 1x1, transposed 4x4 stride 2, then a matmul of two maps."""

    def __init__(self) -> None:
        super().__init__()
        self.dw = nn.Conv2d(8, 8, 5, padding=2, groups=8)
        self.gc = nn.Conv2d(8, 16, 3, padding=1, groups=4)
        self.pw = nn.Conv2d(16, 8, 1)
        self.up = nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1, groups=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.up(self.pw(self.gc(self.dw(x))))  # (B, 4, 2H, 2W)
        return y.flatten(2) @ y.flatten(2).transpose(1, 2)  # (B, 4, 4)


@pytest.mark.parametrize("name, size", [
    ("resnext50_32x4d", (3, 64, 64)), ("googlenet", (1, 64, 64)), ("densenet121", (3, 64, 64)),
    ("regnety_200mf", (3, 96, 96)), ("unet", (1, 64, 64)), ("squeezenet1_1", (3, 96, 96)),
    ("lenet5", (1, 32, 32)), ("inception_v3", (3, 139, 139)),
])
def test_macs_equal_flop_counter_half_on_zoo(name, size):
    model = build_meta(name, in_chans=size[0])
    assert summary(model, size).total["macs"] == _flop_counter_macs(model, size)


def test_grouped_depthwise_transposed_and_matmul_macs():
    model = _Depthwise()
    size = (8, 12, 12)
    macs = summary(model, size).total["macs"]
    by_hand = (8 * 12 * 12 * 25            # depthwise: one 5x5 filter per output element
               + 16 * 12 * 12 * (8 // 4) * 9  # groups of 2 input channels
               + 8 * 12 * 12 * 16         # pointwise
               + 8 * 12 * 12 * (4 // 2) * 16  # transposed: each input scattered to C_out/groups * 4x4
               + 4 * 4 * 24 * 24)         # (4, 576) @ (576, 4)
    assert macs == by_hand == _flop_counter_macs(model, size)


# (builder, input side, builder kwargs): torchvision's num_params and _ops ("GFLOPS", i.e. GMACs)
TORCHVISION = [
    ("alexnet", 224, {}), ("vgg16", 224, {}), ("resnet50", 224, {}), ("resnext50_32x4d", 224, {}),
    ("wide_resnet50_2", 224, {}), ("densenet121", 224, {}), ("squeezenet1_1", 224, {}),
    ("googlenet", 224, {"init_weights": False, "aux_logits": False}),
    ("inception_v3", 299, {"init_weights": False}), ("mobilenet_v2", 224, {}), ("mobilenet_v3_small", 224, {}),
    ("efficientnet_b0", 224, {}), ("shufflenet_v2_x1_0", 224, {}), ("convnext_tiny", 224, {}),
    ("swin_t", 224, {}),
]


@pytest.mark.parametrize("name, side, kwargs", TORCHVISION, ids=[t[0] for t in TORCHVISION])
def test_torchvision_published_params_and_macs(name, side, kwargs):
    with torch.device("meta"):
        model = getattr(torchvision.models, name)(**kwargs)
    meta = next(iter(torchvision.models.get_model_weights(name))).meta
    total = summary(model, (3, side, side)).total
    assert total["params"] == meta["num_params"]
    assert round(total["macs"] / 1e9, 3) == meta["_ops"]


@pytest.mark.parametrize("name", ["regnet_x_400mf", "resnet18", "inception_v3", "googlenet", "vgg11_bn"])
def test_count_macs_equals_the_summary(name):
    # One counter behind `cnnlab models`, results.json and the summary; a batch multiplies it.
    info = cnnlab.get_model_info(name)
    model = build_meta(name)
    macs = summary(model, info.input_size).total["macs"]
    assert count_macs(model, info.input_size) == macs
    assert count_macs(model, info.input_size, batch_size=3) == 3 * macs


def test_count_macs_sees_functional_calls():
    # A module-hook counter sees only nn.Linear / nn.Conv modules; F.linear and @ count here too.
    class Functional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.zeros(5, 12))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.nn.functional.linear(x.flatten(1), self.w)  # (B, 5): 12 * 5 MACs
            return h @ h.T  # (B, B): 5 MACs per entry

    assert count_macs(Functional(), (3, 2, 2)) == 12 * 5 + 5


def test_activation_bytes_equal_real_forward():
    # A real forward pass: a leaf's output counts when it does not share memory with the leaf's input.
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(inplace=True), nn.Dropout(0.5),
                          nn.Conv2d(8, 8, 3, groups=2), nn.SiLU(), nn.AdaptiveAvgPool2d(3), nn.Flatten(),
                          nn.Linear(72, 5), nn.Softmax(dim=1)).eval()
    measured = {}

    def hook(module, inputs, output):
        fresh = output.data_ptr() != inputs[0].data_ptr()
        measured[module] = output.numel() * output.element_size() if fresh else 0

    handles = [m.register_forward_hook(hook) for m in model]
    with torch.no_grad():
        model(torch.randn(1, 3, 16, 16))
    for h in handles:
        h.remove()
    rows = summary(model, (3, 16, 16)).layers
    assert [r["activation_bytes"] for r in rows] == [measured[m] for m in model]


def test_training_bytes_equal_saved_tensors_of_a_real_forward():
    model = cnnlab.create_model("resnet20", in_chans=1)

    def saved(batch: int) -> int:
        storages, params = {}, {p.untyped_storage().data_ptr() for p in model.parameters()}

        def pack(t):
            key = t.untyped_storage().data_ptr()
            if key not in params:
                storages[key] = t.untyped_storage().nbytes()
            return t

        model.train()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = model(torch.randn(batch, 1, 28, 28))
        del out
        return sum(storages.values())

    assert summary(model, (1, 28, 28)).total["training_bytes"] == saved(3) - saved(2)


# --------------------------------------------------------------------------------------------------
# Rows, depth collapsing, frozen and unused parameters, dtype
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, size", [("googlenet", (1, 64, 64)), ("densenet121", (1, 64, 64)),
                                        ("regnety_200mf", (3, 64, 64)), ("unet", (1, 32, 32))])
@pytest.mark.parametrize("depth", [None, 0, 1, 2])
def test_rows_add_up_to_the_totals(name, size, depth):
    result = summary(build_meta(name, in_chans=size[0]), size, depth=depth)
    for key in ("params", "macs", "flops", "activation_bytes"):
        assert sum(r[key] for r in result.layers) == result.total[key], key
    if depth is not None:  # a row collapsed at the depth limit hides every module inside it
        names = [r["name"] for r in result.layers]
        collapsed = [a for a in names if depth == 0 or a.count(".") + 1 == depth]
        assert collapsed and not any(b.startswith(a + ".") for a in collapsed for b in names)
        assert len(result.layers) < len(summary(build_meta(name, in_chans=size[0]), size).layers)


def test_depth_one_gives_stem_stages_head():
    names = [r["name"] for r in summary("resnet18", (1, 28, 28), depth=1).layers]
    assert names == ["stem", "stages", "final_norm", "head"]
    assert [r["name"] for r in summary("resnet18", (1, 28, 28), depth=0).layers] == ["(model)"]


def test_residual_block_addition_is_its_own_row():
    # torchvision's BasicBlock adds the shortcut in its own forward (out += identity): a row of its own
    rows = {r["name"]: r for r in summary(torchvision.models.resnet18(), (3, 64, 64)).layers}
    block = rows["layer1.0"]
    assert block["type"] == "BasicBlock"
    assert block["flops"] == 64 * 16 * 16 and block["params"] == 0  # one addition per element


def test_frozen_and_unused_parameters():
    model = torchvision.models.googlenet(init_weights=False, aux_logits=True)
    for p in model.conv1.parameters():
        p.requires_grad_(False)
    result = summary(model, (3, 96, 96))
    frozen = sum(p.numel() for p in model.conv1.parameters())
    assert result.total["trainable_params"] == result.total["params"] - frozen
    assert sum(r["params"] - r["trainable_params"] for r in result.layers) == frozen
    unused = {r["name"]: r for r in result.layers}["(not called)"]  # aux heads run only in training
    assert unused["params"] == sum(p.numel() for m in (model.aux1, model.aux2) for p in m.parameters())
    assert "frozen" in result.render("table")


def test_half_precision_halves_activation_bytes():
    single = summary(tiny_net(), (1, 8, 8)).total
    half = summary(tiny_net().half(), (1, 8, 8))
    assert half.dtype == "float16"
    assert half.total["activation_bytes"] == single["activation_bytes"] // 2
    assert half.total["param_bytes"] == single["param_bytes"] // 2


def test_registered_name_uses_its_standard_input_and_options():
    result = summary("lenet5")
    assert result.input_size == (1, 32, 32)
    assert summary("resnet18", (1, 28, 28), num_classes=7).layers[-2]["output_shape"] == [7]


@pytest.mark.parametrize("key", sorted(k for k in GOLDEN["models"] if not k.startswith("_")))
def test_golden_summary(key):
    entry = GOLDEN["models"][key]
    source, name = key.split(":")
    if source == "torchvision":
        with torch.device("meta"):
            model = getattr(torchvision.models, name)(**entry.get("kwargs", {}))
    else:
        model = build_meta(name, **entry.get("kwargs", {}))
    total = summary(model, tuple(entry["input_size"])).total
    for field in ("params", "macs", "receptive_field", "depth"):
        assert total[field] == entry[field], field


# --------------------------------------------------------------------------------------------------
# Bad input and the CLI
# --------------------------------------------------------------------------------------------------


def test_parse_input_size():
    assert parse_input_size("1x28x28") == (1, 28, 28)
    assert parse_input_size("3,224,224") == (3, 224, 224)
    assert parse_input_size("2x100") == (2, 100)  # a 1-D signal: channels and length


@pytest.mark.parametrize("text", ["28x28x", "28", "axbxc", "0x28x28", "", "1x-3x3"])
def test_parse_input_size_rejects(text):
    with pytest.raises(ValueError, match="CxHxW"):
        parse_input_size(text)


def test_summary_errors_are_one_clear_sentence():
    with pytest.raises(ValueError, match="input size"):
        summary(tiny_net())
    with pytest.raises(ValueError, match="depth"):
        summary(tiny_net(), (1, 8, 8), depth=-1)
    with pytest.raises(ValueError, match="cannot run on a 3x8x8 input"):
        summary(tiny_net(), (3, 8, 8))
    with pytest.raises(ValueError, match="registered name"):
        summary(tiny_net(), (1, 8, 8), num_classes=3)


@pytest.mark.parametrize("name", ["vgg16", "resnet152"])
def test_big_zoo_networks_at_224_match_torchvision(name):
    # Built and summarized on meta tensors, no real compute (timing: benchmarks/summary_speed.py).
    meta = next(iter(torchvision.models.get_model_weights(name))).meta
    total = summary(name).total
    assert total["params"] == meta["num_params"]
    assert round(total["macs"] / 1e9, 3) == meta["_ops"]


def test_cli_summary_json(capsys):
    assert cli.main(["summary", "resnet20", "--input", "1x28x28", "--format", "json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["total"]["depth"] == 20 and payload["input_size"] == [1, 28, 28]
    assert payload["layers"][0]["receptive_field"] == {"size": 3, "stride": 1, "start": -1}


@pytest.mark.parametrize("fmt, marker", [("table", "Receptive field of the last feature map"),
                                         ("markdown", "|---|"), ("csv", "name,type,output_shape")])
def test_cli_summary_formats(capsys, fmt, marker):
    assert cli.main(["summary", "lenet5", "--format", fmt, "--depth", "2"]) == 0
    out = capsys.readouterr().out
    assert marker in out and "stem" in out


@pytest.mark.parametrize("argv, message", [
    (["summary", "lenet5", "--input", "1x28"], "(B, C, H, W)"),
    (["summary", "lenet5", "--input", "28x28x"], "CxHxW"),
    (["summary", "lenett5"], "unknown model"),
    (["summary", "resnet20", "drop_rate"], "KEY=VALUE"),
    (["summary", "resnet20", "bogus=1"], "bogus"),
    (["summary", "alexnet", "--input", "1x28x28"], "at least 63x63"),
])
def test_cli_summary_bad_input_exits_2_with_one_line(capsys, argv, message):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
