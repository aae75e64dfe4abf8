"""cnnlab: faithful, verified classic CNN architectures to build, train, measure and explain."""

from cnnlab import nn
from cnnlab.analysis.summary import summary
from cnnlab.models import (
    convert_torchvision,
    create_model,
    get_model_info,
    list_families,
    list_models,
    register_model,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "convert_torchvision",
    "create_model",
    "get_model_info",
    "list_families",
    "list_models",
    "nn",
    "register_model",
    "summary",
]
