"""cnnlab.summary: per-layer counts checked by hand, against torch's FLOP counter, torchvision's published
figures, real forward passes, and the golden numbers in tests/golden/summary.json."""

from __future__ import annotations

import csv
import io
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
from cnnlab.errors import ConfigError, InputSizeError

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
    ("swin_t", 224, {}), ("vit_b_16", 224, {}),
]


@pytest.mark.parametrize("name, side, kwargs", TORCHVISION, ids=[t[0] for t in TORCHVISION])
def test_torchvision_published_params_and_macs(name, side, kwargs):
    with torch.device("meta"):
        model = getattr(torchvision.models, name)(**kwargs)
    meta = next(iter(torchvision.models.get_model_weights(name))).meta
    result = summary(model, (3, side, side))
    # num_params counts the module as torchvision's weights build it: Inception-v3 keeps its auxiliary head
    assert result.total["all_params"] == meta["num_params"]
    assert round(result.total["macs"] / 1e9, 3) == meta["_ops"]
    assert result.uncounted_ops == []  # softmax, attention's products, rolls: all in the convention


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
    for key in ("macs", "flops", "activation_bytes"):
        assert sum(r[key] for r in result.layers) == result.total[key], key
    # every parameter is on a row; those of modules never called (GoogLeNet's aux heads) on "(not called)"
    assert sum(r["params"] for r in result.layers) == result.total["all_params"]
    assert sum(r["params"] for r in result.layers if r["name"] != "(not called)") == result.total["params"]
    for key in ("macs", "flops"):  # the operator breakdown adds up too
        assert sum(r[key] for r in result.by_operator) == result.total[key], key
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


def test_rows_come_in_execution_order():
    # A container's own operations are a row where they ran: the residual addition after the block's
    # second batch norm and before its second ReLU call, the head's pooling before its linear layer.
    names = [r["name"] for r in summary(torchvision.models.resnet18(), (3, 64, 64)).layers]
    block = [n for n in names if n.startswith("layer1.0")]
    assert block == ["layer1.0.conv1", "layer1.0.bn1", "layer1.0.relu", "layer1.0.conv2", "layer1.0.bn2",
                     "layer1.0", "layer1.0.relu"]
    rows = summary("resnet18", (1, 28, 28)).layers
    head = [(r["name"], r["output_shape"]) for r in rows if r["name"].startswith("head")]
    assert head == [("head", [512]), ("head.drop", [512]), ("head.fc", [1000])]


def test_by_operator_breakdown():
    result = summary(tiny_net(), (1, 8, 8))
    ops = {r["operator"]: r for r in result.by_operator}
    # the same hand counts as the rows: conv 2304 MACs, linear 640 MACs, and the FLOPs of each operation
    assert ops["convolution"] == {"operator": "convolution", "calls": 1, "macs": 2304, "flops": 4608}
    assert ops["addmm"]["macs"] == 640 and ops["relu"]["flops"] == 256
    assert [r["flops"] for r in result.by_operator] == sorted((r["flops"] for r in result.by_operator), reverse=True)
    assert json.loads(result.render("json"))["by_operator"] == result.by_operator


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
    # the total counts the network at inference (torchvision's published 6,624,904), all_params with the heads
    assert result.total["params"] == 6_624_904 == result.total["all_params"] - unused["params"]
    assert result.total["all_params"] == sum(p.numel() for p in model.parameters())
    text = result.render("table")
    assert "frozen" in text and "6,624,904 (6.62M; 9,536 frozen) used at inference; 13,004,888" in text


def test_half_precision_halves_activation_bytes():
    single = summary(tiny_net(), (1, 8, 8)).total
    half = summary(tiny_net().half(), (1, 8, 8))
    assert half.dtype == "float16"
    assert half.total["activation_bytes"] == single["activation_bytes"] // 2
    assert half.total["param_bytes"] == single["param_bytes"] // 2


def test_registered_name_uses_its_standard_input_and_options():
    result = summary("lenet5")
    assert result.input_size == (1, 32, 32)
    assert summary("resnet18", (1, 28, 28), num_classes=7).layers[-1]["output_shape"] == [7]


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
    # the golden params are torchvision's num_params: every parameter of the module (Inception-v3's aux head too)
    assert total["all_params"] == entry["params"]
    for field in ("macs", "receptive_field", "depth"):
        assert total[field] == entry[field], field


# --------------------------------------------------------------------------------------------------
# Any model: example inputs, forwards that depend on values, transformers, detectors
# --------------------------------------------------------------------------------------------------


class TwoInputs(nn.Module):
    """An image through a 3x3 conv (then its mean), a vector through a linear layer, multiplied."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(5, 4)

    def forward(self, image: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
        return self.conv(image).mean((2, 3)) * self.fc(vector)


def test_two_inputs_as_a_tuple_or_a_dict():
    image, vector = torch.randn(2, 3, 8, 8), torch.randn(2, 5)
    by_position = summary(TwoInputs(), input_data=(image, vector))
    by_name = summary(TwoInputs(), input_data={"image": image, "vector": vector})
    # a batch of 2: 4x8x8 conv outputs of 3*3*3 MACs each, 4 linear outputs of 5 MACs each
    assert by_position.total["macs"] == by_name.total["macs"] == 2 * (4 * 64 * 27 + 4 * 5)
    assert by_position.ran_on == "meta" and by_position.input_size == (3, 8, 8)
    assert [i["name"] for i in by_position.inputs] == ["input0", "input1"]
    assert by_name.inputs[1] == {"name": "vector", "shape": [2, 5], "dtype": "float32"}
    # the field of the map the mean read: one 3x3 conv padded by 1
    assert by_name.total["receptive_field"] == {"size": 3, "stride": 1, "start": -1}
    assert by_name.total["training_bytes"] is None and "Inputs: image 2x3x8x8" in by_name.render()


class BagOfWords(nn.Module):
    """Token ids -> embedding -> mean over the sequence -> linear."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(100, 16)
        self.fc = nn.Linear(16, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.fc(self.embed(ids).mean(1))


def test_integer_token_ids():
    result = summary(BagOfWords(), input_data=torch.randint(0, 100, (2, 7)))
    assert result.total["params"] == 100 * 16 + 16 * 3 + 3
    assert result.total["macs"] == 2 * 3 * 16  # the embedding is a lookup
    assert result.inputs[0]["dtype"] == "int64" and result.total["receptive_field"] is None
    assert result.uncounted_ops == []


class Branchy(nn.Module):
    """A 3x3 or a 5x5 conv, chosen by the sign of the input's mean; counts its calls in a buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.small, self.large = nn.Conv2d(1, 2, 3), nn.Conv2d(1, 2, 5)
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.small(x) if x.mean() > 0 else self.large(x)


def test_value_dependent_forward_runs_on_real_tensors_and_changes_nothing():
    net = Branchy()
    positive = summary(net, input_data=torch.ones(1, 1, 8, 8))
    negative = summary(net, input_data=-torch.ones(1, 1, 8, 8))
    assert positive.ran_on == negative.ran_on == "cpu" and "meta tensors cannot run" in positive.notes[0]
    assert positive.total["macs"] == 2 * 6 * 6 * 9 and negative.total["macs"] == 2 * 4 * 4 * 25
    assert positive.total["receptive_field"] == {"size": 3, "stride": 1, "start": 0}
    assert net.calls.item() == 0  # the buffers were copies
    assert summary(net, (1, 8, 8)).ran_on == "cpu"  # a shape alone: a fixed random image decides the branch
    with torch.device("meta"):
        weightless = Branchy()
    with pytest.raises(InputSizeError, match="cannot run on the given inputs"):
        summary(weightless, input_data=torch.ones(1, 1, 8, 8))


@pytest.mark.slow
def test_detection_model_runs_on_real_tensors():
    # Box selection (nonzero, topk, nms) depends on values: meta tensors cannot run it.
    model = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None, num_classes=3)
    anchors = model.rpn.anchor_generator.cell_anchors[0]
    result = summary(model, input_data=([torch.rand(3, 64, 48)],))
    assert result.ran_on == "cpu" and result.total["params"] == sum(p.numel() for p in model.parameters())
    assert [o["name"] for o in result.total["outputs"]] == ["0.boxes", "0.labels", "0.scores"]
    assert sum(r["macs"] for r in result.layers) == result.total["macs"] > 0
    # a module that keeps tensors it made in forward keeps its own (the meta attempt converted them)
    assert model.rpn.anchor_generator.cell_anchors[0] is anchors


# --------------------------------------------------------------------------------------------------
# Bad input and the CLI
# --------------------------------------------------------------------------------------------------


def test_parse_input_size():
    assert parse_input_size("1x28x28") == (1, 28, 28)
    assert parse_input_size("3,224,224") == (3, 224, 224)
    assert parse_input_size("2x100") == (2, 100)  # a 1-D signal: channels and length


@pytest.mark.parametrize("text", ["28x28x", "28", "axbxc", "0x28x28", "", "1x-3x3"])
def test_parse_input_size_rejects(text):
    with pytest.raises(InputSizeError, match="CxHxW"):
        parse_input_size(text)


@pytest.mark.parametrize("text, channels_first", [("224x224x3", "3x224x224"), ("28x28x1", "1x28x28"),
                                                  ("32x48x4", "4x32x48")])
def test_parse_input_size_rejects_channels_last(text, channels_first):
    # 224x224x3 would otherwise build a network for 224 channels
    with pytest.raises(InputSizeError, match=f"channels first: {channels_first}"):
        parse_input_size(text)
    assert parse_input_size(channels_first) == tuple(int(v) for v in channels_first.split("x"))


def test_summary_errors_are_one_clear_sentence():
    with pytest.raises(InputSizeError, match="input size"):
        summary(tiny_net())
    with pytest.raises(ConfigError, match="depth"):
        summary(tiny_net(), (1, 8, 8), depth=-1)
    with torch.device("meta"):  # weights on meta: no real forward to fall back on
        net = tiny_net()
    for model in (net, tiny_net()):
        with pytest.raises(InputSizeError, match="cannot run on a 3x8x8 input"):
            summary(model, (3, 8, 8))
    with pytest.raises(ConfigError, match="registered name"):
        summary(tiny_net(), (1, 8, 8), num_classes=3)
    with pytest.raises(ConfigError, match="not both"):
        summary(tiny_net(), (1, 8, 8), input_data=torch.zeros(1, 1, 8, 8))
    with pytest.raises(InputSizeError, match="channels first: 1x28x28"):
        summary(tiny_net(), (28, 28, 1))
    with pytest.raises(ValueError, match="bogus"):  # the builder says which options it takes
        summary("resnet20", bogus=1)


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


def test_cli_summary_by_operator(capsys):
    assert cli.main(["summary", "resnet20", "--input", "1x28x28", "--by-operator", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows[0]["operator"] == "convolution" and rows[-1]["operator"] == "(total)"
    macs = summary("resnet20", (1, 28, 28)).total["macs"]
    assert sum(int(r["macs"]) for r in rows[:-1]) == int(rows[-1]["macs"]) == macs


@pytest.mark.parametrize("fmt, marker", [("table", "Receptive field of the main output's feature map"),
                                         ("markdown", "|---|"), ("csv", "name,type,output_shape")])
def test_cli_summary_formats(capsys, fmt, marker):
    assert cli.main(["summary", "lenet5", "--format", fmt, "--depth", "2"]) == 0
    out = capsys.readouterr().out
    assert marker in out and "stem" in out


@pytest.mark.parametrize("argv, message", [
    (["summary", "lenet5", "--input", "1x28"], "takes one image as CxHxW (e.g. 1x32x32); 1x28 is the wrong shape"),
    (["summary", "lenet5", "--input", "1x1x28x28"], "1x1x28x28 is the wrong shape; leave out the batch size"),
    (["summary", "resnet18", "--input", "224x224x3"], "channels first: 3x224x224"),
    (["summary", "resnet18", "--depth", "-1"], "depth must be 0 or more"),
    (["summary", "lenet5", "--input", "28x28x"], "CxHxW"),
    (["summary", "lenett5"], "unknown model"),
    (["summary", "resnet20", "drop_rate"], "key=value"),
    (["summary", "resnet20", "bogus=1"], "bogus"),
    (["summary", "alexnet", "--input", "1x28x28"], "at least 63x63"),
])
def test_cli_summary_bad_input_exits_2_with_one_line(capsys, argv, message):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
