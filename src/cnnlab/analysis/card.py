"""One network's card for students: its paper, key idea, smallest input, size and cost, torchvision twin."""

from __future__ import annotations

from typing import Any

import torch

from cnnlab.analysis.counting import count_macs, count_params
from cnnlab.models import create_model, get_model_info
from cnnlab.models._papers import paper_for

__all__ = ["model_card", "render_card"]


def model_card(name: str, **options: Any) -> dict[str, Any]:
    """What a student asks first about a registered network, counted on meta tensors at its standard input.

    ``options`` are builder options (``width_mult=0.25``); the counts are of the network they build.
    """
    info = get_model_info(name)
    paper = paper_for(info.paper)
    with torch.device("meta"):
        model = create_model(name, **options)
    return {
        "name": name,
        "options": dict(options),
        "family": info.family,
        "task": info.task,
        "citation": info.paper,
        "title": paper.title if paper else None,
        "authors": paper.authors if paper else None,
        "year": paper.year if paper else None,
        "venue": paper.venue if paper else None,
        "idea": list(paper.idea) if paper else [],
        "input_size": list(info.input_size),
        "min_size": info.min_size,
        "params": count_params(model),
        "macs": count_macs(model, info.input_size),
        "num_classes": info.num_classes,
        "torchvision": info.torchvision,
    }


def render_card(card: dict[str, Any]) -> str:
    """The card as a few lines of text."""
    from cnnlab.analysis.table import human

    size = "x".join(str(v) for v in card["input_size"])
    side = card["min_size"]
    if card["title"]:
        paper = f"{card['authors']} ({card['year']}). {card['title']}. {card['venue']}."
    else:
        paper = card["citation"] or "-"
    same = "the same network without these options" if card["options"] else "the same parameters and MACs"
    twin = (f"torchvision.models.{card['torchvision']} ({same}; its weights load with cnnlab.convert_torchvision)"
            if card["torchvision"] else "none in torchvision")
    options = ", ".join(f"{k}={v!r}" for k, v in card["options"].items())
    lines = [
        f"{card['name']}{f' ({options})' if options else ''}: {card['family']} family, {card['task']}",
        f"paper:          {paper}",
        *(f"{'key idea:' if i == 0 else '':16s}{line}" for i, line in enumerate(card["idea"])),
        f"smallest input: {side}x{side} pixels (counted at its standard input, {size})",
        f"parameters:     {card['params']:,} ({human(card['params'])})",
        f"MACs:           {card['macs']:,} ({human(card['macs'])}) multiply-accumulates per {size} image",
        f"torchvision:    {twin}",
    ]
    return "\n".join(lines) + "\n"
