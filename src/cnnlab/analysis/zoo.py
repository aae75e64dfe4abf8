"""The zoo table: every registered network with its size and cost at its family's standard input."""

from __future__ import annotations

from typing import Any

import torch

from cnnlab.analysis.counting import count_macs, count_params
from cnnlab.models import create_model, get_model_info, list_models

__all__ = ["ZOO_COLUMNS", "zoo_rows"]

ZOO_COLUMNS = ("name", "family", "params", "macs", "input", "takes_28x28", "torchvision")


def zoo_rows(pattern: str | None = None, family: str | None = None) -> list[dict[str, Any]]:
    """One row per registered model matching ``pattern``: params and MACs counted on meta tensors."""
    rows = []
    for name in list_models(pattern, family=family):
        info = get_model_info(name)
        with torch.device("meta"):
            model = create_model(name)
        rows.append({
            "name": name,
            "family": info.family,
            "params": count_params(model),
            "macs": count_macs(model, info.input_size),
            "input": "x".join(str(v) for v in info.input_size),
            "takes_28x28": info.takes_28,
            "torchvision": info.torchvision or "",
        })
    return rows
