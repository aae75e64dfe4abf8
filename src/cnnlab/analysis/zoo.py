"""The zoo table: every registered network with its size and cost at its family's standard input.

Building a hundred networks to count them takes half a minute, so the counts of cnnlab's own networks
ship as package data (``zoo_counts.json``), written by ``tests/golden/regen_counts.py`` from
:func:`live_counts`; ``tests/test_golden_counts.py`` checks every entry against a live count, so the
table cannot go stale unnoticed. Networks missing from it (registered by a user) are counted live.

``params`` is the network as used at inference (the parameters an eval-mode forward reads, as
torchvision's published ``num_params`` counts GoogLeNet); ``all_params`` adds the parts only training
runs (auxiliary classifiers) and is shown where it differs.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import torch

from cnnlab.analysis.counting import count_forward, count_params
from cnnlab.models import create_model, get_model_info, list_models

__all__ = ["COUNTS_FILE", "ZOO_COLUMNS", "live_counts", "packaged_counts", "zoo_rows"]

ZOO_COLUMNS = ("name", "family", "params", "macs", "input", "min_input", "torchvision", "all_params")
COUNTS_FILE = "zoo_counts.json"  # in this package


def live_counts(name: str) -> dict[str, Any]:
    """``{"input_size", "params", "all_params", "macs"}`` of a registered network, counted on meta tensors now.

    ``params`` are the parameters an eval-mode forward reads, ``all_params`` every parameter.
    """
    info = get_model_info(name)
    with torch.device("meta"):
        model = create_model(name)
    counted = count_forward(model, info.input_size)
    return {"input_size": list(info.input_size), "params": counted.params, "all_params": count_params(model),
            "macs": counted.macs}


@cache
def packaged_counts() -> dict[str, dict[str, Any]]:
    """The counts shipped with cnnlab, keyed by model name (``live_counts`` of each, when the table was made)."""
    text = resources.files("cnnlab.analysis").joinpath(COUNTS_FILE).read_text()
    return json.loads(text)["models"]


def _counts(name: str, input_size: tuple[int, ...]) -> dict[str, Any]:
    entry = packaged_counts().get(name)
    if entry is not None and tuple(entry["input_size"]) == tuple(input_size):
        return entry
    return live_counts(name)


def zoo_rows(pattern: str | None = None, family: str | None = None) -> list[dict[str, Any]]:
    """One row per registered model matching ``pattern``: params and MACs at its standard input.

    ``min_input`` is the smallest square side the network takes as it is built (``cnnlab train`` brings
    smaller images up to it by padding or resizing). ``params`` counts the network at inference;
    ``all_params`` every parameter, training-only parts (auxiliary heads) included, and is None where
    the two are equal.
    """
    rows = []
    for name in list_models(pattern, family=family):
        info = get_model_info(name)
        counts = _counts(name, info.input_size)
        rows.append({
            "name": name,
            "family": info.family,
            "params": counts["params"],
            "macs": counts["macs"],
            "input": "x".join(str(v) for v in info.input_size),
            "min_input": info.min_size,
            "torchvision": info.torchvision or "",
            "all_params": counts["all_params"] if counts["all_params"] != counts["params"] else None,
        })
    return rows
