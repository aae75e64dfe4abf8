"""Registry-wide contract: every zoo network builds, runs forward and backward, and follows the anatomy."""

from __future__ import annotations

import inspect

import pytest
import torch

import cnnlab
from _zoo import as_tuple, build_meta, small_side
from cnnlab.analysis.counting import meta_forward
from cnnlab.errors import ConfigError, InputSizeError, UnknownNameError
from cnnlab.models import InputTooSmallError, UnknownModelError, _registry, register_model

ALL = cnnlab.list_models()


def test_registry_is_populated():
    families = set(cnnlab.list_families())
    for fam in ("lenet", "alexnet", "vgg", "nin", "googlenet", "inception", "resnet", "resnet_cifar",
                "densenet", "squeezenet", "regnet", "unet", "zfnet", "fractalnet", "bn_inception", "pattern"):
        assert fam in families, f"family {fam} registered no model"


@pytest.mark.parametrize("name", ALL)
def test_forward_backward_gray_seven_classes(name):
    """in_chans=1, num_classes=7: output shape, finite values, every parameter receives a gradient."""
    info = cnnlab.get_model_info(name)
    size = small_side(name)
    model = cnnlab.create_model(name, num_classes=7, in_chans=1)
    x = torch.randn(2, 1, size, size)
    model.train()
    outs = as_tuple(model(x))
    logits = outs[0]
    expected = (2, 7, size, size) if info.task == "segmentation" else (2, 7)
    assert tuple(logits.shape) == expected
    for out in outs:
        assert torch.isfinite(out).all()
    sum(o.float().pow(2).mean() for o in outs).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"parameters without a gradient: {missing[:5]}"
    model.eval()
    with torch.no_grad():
        eval_out = model(x)
    assert isinstance(eval_out, torch.Tensor), "eval mode must return a plain tensor"
    assert tuple(eval_out.shape) == expected


@pytest.mark.parametrize("name", ALL)
def test_anatomy_and_reset_classifier(name):
    """stem/stages/head exist, feature_info matches stage outputs, reset_classifier(0) gives features."""
    info = cnnlab.get_model_info(name)
    model = build_meta(name, num_classes=5).eval()
    for part in ("stem", "stages", "head"):
        assert isinstance(getattr(model, part, None), torch.nn.Module), f"{name} has no {part}"
    assert model.num_classes == 5 and model.in_chans == info.input_size[0]
    c, h, w = info.input_size
    mods = dict(model.named_modules())
    seen: dict[str, torch.Size] = {}
    handles = []
    for f in model.feature_info:
        assert f.module in mods, f"feature_info names {f.module!r}, which is not a module"
        handles.append(mods[f.module].register_forward_hook(
            lambda m, i, o, key=f.module: seen.__setitem__(key, o.shape)))
    meta_forward(model, torch.empty(1, c, h, w, device="meta"))
    for hd in handles:
        hd.remove()
    for f in model.feature_info:
        shape = seen[f.module]
        assert shape[1] == f.num_chs, f"{f.module}: feature_info says {f.num_chs} channels, got {shape[1]}"
        # Unpadded convs and ceil-mode pools leave maps a little off h / reduction (Inception: 35 at 299 for
        # stride 8, SqueezeNet: 13 at 224 for 16), but never as small as h / (2 * reduction).
        assert h < 2 * f.reduction * shape[-2] and shape[-2] <= -(-h // f.reduction), (
            f"{f.module}: reduction {f.reduction} but map is {tuple(shape[-2:])} for input {h}")
    reductions = [f.reduction for f in model.feature_info]
    assert reductions == sorted(reductions) or info.task == "segmentation"
    model.reset_classifier(0)
    out = meta_forward(model, torch.empty(2, c, h, w, device="meta"))
    if info.task == "segmentation":
        assert tuple(out.shape) == (2, model.num_features, h, w)
    else:
        assert tuple(out.shape) == (2, model.num_features)
    model.reset_classifier(3)
    assert model.num_classes == 3
    out = meta_forward(model, torch.empty(2, c, h, w, device="meta"))
    assert out.shape[1] == 3


@pytest.mark.parametrize("name", ALL)
def test_min_size_is_declared_and_tight(name):
    """The declared smallest input runs; one pixel less fails inside the network, not only in the check."""
    info = cnnlab.get_model_info(name)
    model = build_meta(name).eval()
    s = info.min_size
    meta_forward(model, torch.empty(1, info.input_size[0], s, s, device="meta"))
    with pytest.raises(InputTooSmallError, match=f"at least {s}x{s}"):
        meta_forward(model, torch.empty(1, info.input_size[0], s - 1, s - 1, device="meta"))
    model.min_input_size = None
    if s > 1:
        with pytest.raises(Exception):  # noqa: B017  (any failure of the network itself)
            meta_forward(model, torch.empty(1, info.input_size[0], s - 1, s - 1, device="meta"))


def test_wrong_channel_count_is_one_clear_error():
    model = cnnlab.create_model(cnnlab.list_models("resnet18")[0], in_chans=3)
    with pytest.raises(InputSizeError, match="in_chans=1"):
        model(torch.randn(1, 1, 64, 64))
    with pytest.raises(InputSizeError, match=r"\(B, C, H, W\)"):
        model(torch.randn(3, 64, 64))


@pytest.mark.parametrize("name", ALL)
def test_every_builder_has_one_signature_with_the_registry_defaults(name):
    """builder(num_classes=..., in_chans=..., *, options): the first two default to the registry entry."""
    info = cnnlab.get_model_info(name)
    params = list(inspect.signature(info.builder).parameters.values())
    assert [p.name for p in params[:2]] == ["num_classes", "in_chans"]
    assert params[0].default == info.num_classes and params[1].default == info.input_size[0]
    assert all(p.kind is p.KEYWORD_ONLY for p in params[2:]), "options are keyword-only"
    assert info.builder.__name__ == name and info.builder.__doc__.strip(), "a builder says what it builds"


def test_misspelt_option_is_one_config_error_naming_the_options():
    with pytest.raises(ConfigError) as err:
        cnnlab.create_model("resnet20", widht_factor=2)
    message = str(err.value)
    assert message.startswith("resnet20 takes no option 'widht_factor'; did you mean width_factor? Its options: ")
    assert "\n" not in message and "drop_path_rate" in message and "shortcut" in message
    with pytest.raises(ConfigError, match="alexnet takes no option 'zzz'. Its options: .*width_mult"):
        cnnlab.create_model("alexnet", zzz=1)
    with pytest.raises(TypeError, match="unexpected keyword argument 'widht_factor'"):
        cnnlab.get_model_info("resnet20").builder(widht_factor=2)  # called directly: Python's own error


def test_a_builders_own_type_error_keeps_its_traceback():
    def broken_builder(num_classes: int = 10, in_chans: int = 3, width: int = 1):
        return torch.nn.Conv2d(in_chans, num_classes, 3, unknown_argument=width)  # a defect, not a user error

    register_model(broken_builder, name="broken_test_builder")
    try:
        with pytest.raises(TypeError, match="unknown_argument"):
            cnnlab.create_model("broken_test_builder", width=2)
    finally:
        del _registry._MODELS["broken_test_builder"]


@pytest.mark.parametrize("name, kwargs, match", [
    ("resnet18", {"drop_path_rate": 1.0}, "drop_path_rate"),
    ("regnetx_200mf", {"width_rounding": "timm"}, "width_rounding must be one of"),
    ("densenet121", {"stem": "deep"}, "stem must be one of"),
    ("alexnet", {"width_mult": -1.0}, "width_mult must be positive"),
    ("inception_v4", {"depths": (4, 7)}, "depths must be three integers"),
    ("googlenet", {"transform_input": True, "in_chans": 1}, "in_chans=3"),
    ("lenet5", {"head": "softmax"}, "head must be one of"),
    ("vgg11", {"num_classes": -1}, "num_classes must be >= 0"),
])
def test_bad_option_values_are_config_errors(name, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        build_meta(name, **kwargs)


def test_user_error_types():
    assert issubclass(UnknownModelError, UnknownNameError) and issubclass(UnknownModelError, KeyError)
    assert issubclass(InputTooSmallError, InputSizeError)
    with pytest.raises(UnknownNameError):
        cnnlab.create_model("resnet05")
    with pytest.raises(InputSizeError, match="divisible by 16"):
        cnnlab.create_model("unet", norm_layer="none")(torch.randn(1, 1, 24, 24))
    with pytest.raises(ConfigError, match="no torchvision counterpart"):
        cnnlab.convert_torchvision("lenet5", {})


def test_duplicate_registration_raises():
    name = ALL[0]

    def builder(**kw):
        raise AssertionError("never called")

    builder.__name__ = name
    with pytest.raises(ValueError, match="already registered"):
        register_model(builder)


def test_unknown_name_suggests_close_matches():
    with pytest.raises(UnknownModelError, match="did you mean.*resnet50"):
        cnnlab.create_model("resnet05")


def test_create_model_drops_none_kwargs():
    model = cnnlab.create_model("resnet18", num_classes=None, in_chans=None)
    assert model.num_classes == 1000 and model.in_chans == 3


def test_list_models_pattern():
    assert "resnet50" in cnnlab.list_models("resnet5*")
    assert all("vgg" in n for n in cnnlab.list_models("vgg"))
