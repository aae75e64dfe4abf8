"""Pretrained weights through torchvision's weights API, from a checkpoint placed in a temporary hub cache.

Nothing is downloaded: each test points TORCH_HOME at a temporary folder and writes there, under the file
name torchvision's weights expect, the state_dict of a randomly initialized torchvision network (in the
layout torchvision publishes). torchvision's own builder then loads that same file, so the reference
outputs come from torchvision's loading code, not ours.
"""

from __future__ import annotations

import re
import urllib.error

import pytest
import torch
import torchvision

import cnnlab
from _tiny import make_idx_dataset
from cnnlab.cli import main
from cnnlab.errors import CheckpointError, ConfigError
from cnnlab.models._registry import pretrained_file, pretrained_weights
from cnnlab.train import load_checkpoint, resolve_config
from cnnlab.train.optim import build_optimizer

SHARED = [n for n in cnnlab.list_models() if cnnlab.get_model_info(n).torchvision]
# How torchvision publishes these files: GoogLeNet's with its auxiliary heads, DenseNet's with the older
# layer names (norm.1 for norm1) that torchvision's loader renames.
PUBLISHED_KWARGS = {"googlenet": {"aux_logits": True, "init_weights": True}}
_DENSENET_NEW_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))([12])\.(weight|bias|running_mean|running_var)$")


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub cache under tmp_path; downloading fails as it would offline."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)

    def offline(url, dst, *args, **kwargs):
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return tmp_path / "torch" / "hub" / "checkpoints"


def _randomize_norms(model: torch.nn.Module) -> None:
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
            m.weight.data.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)


def _place_weights(name: str) -> None:
    """Write a random torchvision ``name`` where the hub cache keeps its published weights."""
    tv_name = cnnlab.get_model_info(name).torchvision
    torch.manual_seed(0)
    tv = torchvision.models.get_model(tv_name, weights=None, **PUBLISHED_KWARGS.get(tv_name, {}))
    _randomize_norms(tv)
    state = tv.state_dict()
    if tv_name.startswith("densenet"):
        state = {_DENSENET_NEW_KEY.sub(r"\1.\2.\3", k): v for k, v in state.items()}
    file = pretrained_file(pretrained_weights(name))
    file.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, file)


def _torchvision_reference(name: str) -> torch.nn.Module:
    """torchvision's network built by torchvision from the cached file, as `weights=` does it."""
    info = cnnlab.get_model_info(name)
    return torchvision.models.get_model(info.torchvision, weights=pretrained_weights(name)).eval()


def test_every_shared_network_names_torchvision_weights():
    for name in SHARED:
        weights = pretrained_weights(name)
        assert weights.meta["num_params"] > 0 and pretrained_file(weights).suffix == ".pth", name


@pytest.mark.parametrize(
    "name", ["resnet18", "googlenet", pytest.param("densenet121", marks=pytest.mark.slow), "squeezenet1_1"]
)
def test_pretrained_outputs_equal_torchvision_with_the_same_weights(hub, name):
    _place_weights(name)
    ours = cnnlab.create_model(name, pretrained=True).eval()
    theirs = _torchvision_reference(name)
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        expected, got = theirs(x), ours(x)
    assert got.shape == expected.shape == (2, 1000)
    assert (got - expected).abs().max().item() <= 1e-5


def test_another_class_count_keeps_the_backbone_and_a_new_classifier(hub):
    _place_weights("googlenet")
    full = cnnlab.create_model("googlenet", pretrained=True)
    torch.manual_seed(3)
    fresh_init = cnnlab.create_model("googlenet", num_classes=10)
    torch.manual_seed(3)
    tuned = cnnlab.create_model("googlenet", num_classes=10, pretrained=True)
    full_state, tuned_state, init_state = full.state_dict(), tuned.state_dict(), fresh_init.state_dict()
    new = [k for k in tuned_state if tuned_state[k].shape != full_state[k].shape]
    assert sorted(new) == ["aux1.fc2.bias", "aux1.fc2.weight", "aux2.fc2.bias", "aux2.fc2.weight",
                           "head.fc.bias", "head.fc.weight"]
    for key, value in tuned_state.items():
        source = init_state if key in new else full_state  # classifiers keep their (seeded) init
        assert torch.equal(value, source[key]), key


def test_gray_input_sums_the_rgb_filters(hub):
    _place_weights("resnet18")
    gray = cnnlab.create_model("resnet18", in_chans=1, pretrained=True).eval()
    theirs = _torchvision_reference("resnet18")
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        assert torch.allclose(gray(x), theirs(x.expand(-1, 3, -1, -1)), atol=1e-4)


def test_offline_damaged_and_unavailable_are_one_line_errors(hub):
    file = pretrained_file(pretrained_weights("resnet18"))
    with pytest.raises(CheckpointError) as err:
        cnnlab.create_model("resnet18", pretrained=True)
    message = str(err.value)
    assert "\n" not in message and f"put {file.name}" in message and f"into {hub}" in message
    assert "ResNet18_Weights.IMAGENET1K_V1" in message
    file.parent.mkdir(parents=True, exist_ok=True)  # torch made it before trying to download
    file.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="is damaged .*delete it"):
        cnnlab.create_model("resnet18", pretrained=True)
    with pytest.raises(ConfigError, match="lenet5 has no published ImageNet weights"):
        cnnlab.create_model("lenet5", pretrained=True)


def test_options_that_change_the_layers_are_refused(hub):
    _place_weights("squeezenet1_1")
    with pytest.raises(CheckpointError, match="need the network as torchvision builds it"):
        cnnlab.create_model("squeezenet1_1", in_chans=2, pretrained=True)


def test_backbone_learning_rate_multiplier_groups():
    net = cnnlab.create_model("resnet18", num_classes=4)
    opt = build_optimizer(net, "sgd", 0.1, 1e-4, backbone_lr_mult=0.1, norm_bias_decay=False)
    head = {id(p) for p in net.get_classifier().parameters()}
    for group in opt.param_groups:
        is_head = {id(p) in head for p in group["params"]}
        assert len(is_head) == 1  # a group is all head or all backbone
        assert group["lr"] == pytest.approx(0.1 if is_head.pop() else 0.01)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(net.parameters()))
    assert len(build_optimizer(net, "sgd", 0.1, 0.0).param_groups) == 1


def test_pretrained_settings_are_checked():
    with pytest.raises(ConfigError, match="--init or --pretrained, not both"):
        resolve_config({"model": "resnet18", "pretrained": True, "init": "x.pt"}).validate()
    resolve_config({"model": "resnet18", "pretrained": True, "freeze_backbone": True}).validate()
    with pytest.raises(ConfigError, match="frozen backbone does not learn"):
        resolve_config({"model": "resnet18", "pretrained": True, "freeze_backbone": True,
                        "backbone_lr_mult": 0.1}).validate()


@pytest.mark.slow
def test_cli_fine_tunes_pretrained_weights_with_a_slower_backbone(hub, tmp_path, capsys):
    _place_weights("squeezenet1_1")
    data = make_idx_dataset(tmp_path / "data", n_train=96, n_test=32)
    argv = ["train", "squeezenet1_1", "--data-dir", str(data), "--epochs", "1", "--batch-size", "16",
            "--val-split", "16", "--threads", "1", "--quiet", "--device", "cpu", "--amp", "off",
            "--image-size", "64", "--pretrained", "--backbone-lr-mult", "0.1", "--lr", "0.01",
            "--schedule", "constant", "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "started from torchvision's SqueezeNet1_1_Weights.IMAGENET1K_V1; new classifier:" in err
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    lrs = sorted({g["lr"] for g in ckpt["optimizer"]["param_groups"]})
    assert lrs == pytest.approx([0.001, 0.01])
    # The backbone moved from the ImageNet weights but stayed near them; its first conv saw gray input.
    start = cnnlab.create_model("squeezenet1_1", in_chans=1, num_classes=10, pretrained=True).state_dict()
    key = next(k for k in start if k.endswith("weight") and start[k].dim() == 4)
    assert ckpt["model"][key].shape[1] == 1
    assert not torch.equal(ckpt["model"][key], start[key])
