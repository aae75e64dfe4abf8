"""The model zoo: every family registers its networks on import."""

from cnnlab.models import (  # noqa: F401  (imported for registration)
    alexnet,
    bn_inception,
    densenet,
    fractalnet,
    googlenet,
    inception,
    lenet,
    nin,
    pattern,
    probes,
    regnet,
    resnet,
    resnet_cifar,
    squeezenet,
    unet,
    vgg,
    zfnet,
)
from cnnlab.models._base import FeatureInfo, InputTooSmallError, ZooModel
from cnnlab.models._registry import (
    ModelInfo,
    UnknownModelError,
    convert_torchvision,
    create_model,
    get_model_info,
    is_model,
    list_families,
    list_models,
    register_converter,
    register_model,
    remap_keys,
)

__all__ = [
    "FeatureInfo",
    "InputTooSmallError",
    "ModelInfo",
    "UnknownModelError",
    "ZooModel",
    "convert_torchvision",
    "create_model",
    "get_model_info",
    "is_model",
    "list_families",
    "list_models",
    "register_converter",
    "register_model",
    "remap_keys",
]
