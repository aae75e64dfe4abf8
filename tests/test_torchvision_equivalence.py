"""Every network torchvision also has: same parameters, same MACs, same outputs from its converted weights."""

from __future__ import annotations

import pytest
import torch
import torchvision

import cnnlab
from _zoo import build_meta, skip_init
from cnnlab.analysis.counting import count_macs, count_params

SHARED = [n for n in cnnlab.list_models() if cnnlab.get_model_info(n).torchvision]
# torchvision's published num_params leaves out GoogLeNet's auxiliary heads (its weights drop them).
PUBLISHED_KWARGS = {"googlenet": {"aux_logits": False}}
# torchvision warns unless these two are told their (truncated-normal) init explicitly.
INIT_KWARGS = {"googlenet": {"init_weights": True}, "inception_v3": {"init_weights": True}}


def _tv_meta(tv_name: str, **kwargs) -> torch.nn.Module:
    # A few torchvision builders compute widths with torch ops, which meta tensors cannot do.
    try:
        with torch.device("meta"):
            return torchvision.models.get_model(tv_name, weights=None, **INIT_KWARGS.get(tv_name, {}), **kwargs)
    except (NotImplementedError, RuntimeError):
        with skip_init():
            return torchvision.models.get_model(tv_name, weights=None, **INIT_KWARGS.get(tv_name, {}), **kwargs)


def test_shared_networks_are_covered():
    assert len(SHARED) >= 40, SHARED


@pytest.mark.parametrize("name", SHARED)
def test_params_and_macs_equal_torchvision(name):
    info = cnnlab.get_model_info(name)
    ours = build_meta(name)
    theirs = _tv_meta(info.torchvision)
    assert count_params(ours) == count_params(theirs)
    assert count_macs(ours, info.input_size) == count_macs(theirs, info.input_size)


@pytest.mark.parametrize("name", SHARED)
def test_counts_equal_torchvision_published_metadata(name):
    """Against the figures torchvision publishes with its weights (params exact, GFLOPS to 3 decimals)."""
    info = cnnlab.get_model_info(name)
    weights = torchvision.models.get_model_weights(info.torchvision)
    # Some networks publish several weights (e.g. RegNet-Y-128GF at 384 and 224): take the standard size.
    meta = next(w.meta for w in weights if w.transforms().crop_size[0] == info.input_size[1])
    ours = build_meta(name, **PUBLISHED_KWARGS.get(name, {}))
    assert count_params(ours) == meta["num_params"]
    assert round(count_macs(ours, info.input_size) / 1e9, 3) == pytest.approx(meta["_ops"], abs=1e-9)


def _randomize_norms(model: torch.nn.Module) -> None:
    """Give batch norms non-trivial statistics so the comparison exercises them."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
            m.weight.data.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)


@pytest.mark.parametrize("name", SHARED)
def test_converted_torchvision_weights_give_identical_outputs(name):
    info = cnnlab.get_model_info(name)
    torch.manual_seed(0)
    theirs = torchvision.models.get_model(
        info.torchvision, weights=None, **INIT_KWARGS.get(info.torchvision, {})
    ).eval()
    _randomize_norms(theirs)
    ours = cnnlab.create_model(name).eval()
    converted = cnnlab.convert_torchvision(name, theirs.state_dict())
    result = ours.load_state_dict(converted, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    size = max(info.min_size, 64)
    x = torch.randn(2, info.input_size[0], size, size)
    with torch.no_grad():
        expected = theirs(x)
        got = ours(x)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= 1e-5
