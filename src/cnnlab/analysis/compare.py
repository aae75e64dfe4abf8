"""Networks side by side (size, operations, memory, receptive field, depth) and torchvision's reference figures.

Rows use the trainer's key names (``model``, ``params``, ``macs``, ``test_accuracy`` as a fraction,
``train_seconds``, ``images_per_second``), so the results of ``cnnlab.train`` join the static comparison
with :func:`join_results` and both feed the figures in ``cnnlab.plots`` unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from typing import Any

from torch import nn

from cnnlab.analysis.summary import Summary, check_image_rank, parse_input_size, summary
from cnnlab.analysis.table import human, receptive_field_text, render
from cnnlab.errors import ConfigError, InputSizeError
from cnnlab.models import get_model_info

__all__ = [
    "COMPARE_COLUMNS",
    "REFERENCE_COLUMNS",
    "REFERENCE_DATASETS",
    "TRAINED_COLUMNS",
    "compare_models",
    "compare_row",
    "join_results",
    "reference_rows",
    "render_rows",
]

# Columns of the static comparison, in the order tables show them.
COMPARE_COLUMNS = ("model", "input", "params", "macs", "flops", "activation_bytes", "training_bytes",
                   "receptive_field", "depth", "note")
# Columns once training results are joined in (the comparison's table of the notes).
TRAINED_COLUMNS = ("model", "test_accuracy", "top5_accuracy", "params", "macs", "train_seconds",
                   "images_per_second", "receptive_field", "depth")
# Columns of torchvision's published figures.
REFERENCE_COLUMNS = ("model", "weights", "input", "params", "macs", "test_accuracy", "top5_accuracy")
REFERENCE_DATASETS = ("imagenet",)

ModelSpec = str | nn.Module | tuple[str, nn.Module]


def compare_row(name: str, result: Summary) -> dict[str, Any]:
    """One comparison row from a summary."""
    t = result.total
    return {
        "model": name,
        "input": "x".join(str(v) for v in result.input_size),
        "params": t["params"],
        "macs": t["macs"],
        "flops": t["flops"],
        "activation_bytes": t["activation_bytes"],
        "training_bytes": t["training_bytes"],
        "receptive_field": t["receptive_field"],
        "depth": t["depth"],
    }


def compare_models(models: Sequence[ModelSpec], input_size: Sequence[int] | str | None = None,
                   num_classes: int | None = None, **model_kwargs: Any) -> list[dict[str, Any]]:
    """One row per network: parameters, MACs, FLOPs, memory per image, receptive field, depth.

    ``models`` are registered names (built on meta tensors with ``in_chans`` from the input,
    ``num_classes`` and ``model_kwargs``), modules, or ``(label, module)`` pairs. ``input_size`` is one
    image, ``(C, H, W)`` or ``"1x28x28"``; left out, each registered network uses its family's standard
    input (an ``input`` column says which). A network that cannot take the input gets a row with only its
    ``note`` (why: "needs at most 32x32"), and the others are still compared.
    """
    if not models:
        raise ConfigError("name at least one network to compare")
    if isinstance(input_size, str):
        input_size = parse_input_size(input_size)  # a malformed input is the command's error, not a row's
    rows = []
    for spec in models:
        if isinstance(spec, str) and input_size is not None:
            check_image_rank(spec, tuple(input_size), get_model_info(spec).input_size)
        if isinstance(spec, str):
            label = spec
            kwargs = dict(model_kwargs, num_classes=num_classes) if num_classes is not None else model_kwargs
            measure = partial(summary, spec, input_size, **kwargs)
        else:
            label, module = spec if isinstance(spec, tuple) else (type(spec).__name__, spec)
            measure = partial(summary, module, input_size)
        try:
            rows.append(compare_row(label, measure()))
        except InputSizeError as err:
            rows.append({"model": label, "input": _input_text(input_size), "note": str(err)})
    return rows


def _input_text(input_size: Sequence[int] | str | None) -> str:
    if input_size is None:
        return "-"
    return input_size if isinstance(input_size, str) else "x".join(str(v) for v in input_size)


def join_results(rows: Iterable[Mapping[str, Any]], results: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The comparison rows with each network's training results (matched on ``model``) merged in.

    A result's own keys win (its ``macs`` and ``params`` were measured on the trained network); rows
    without a result keep no accuracy, and results for networks not in ``rows`` become rows of their own.
    """
    by_model = {r["model"]: dict(r) for r in results}
    joined = []
    for row in rows:
        joined.append({**row, **by_model.pop(row["model"], {})})
    joined.extend(by_model.values())
    return joined


def reference_rows(dataset: str = "imagenet", models: Sequence[str] | None = None,
                   weights: str = "original") -> list[dict[str, Any]]:
    """torchvision's published ImageNet-1K figures, read offline from its weights metadata.

    ``macs`` is torchvision's "GFLOPS" (multiply-accumulates) times 1e9, ``test_accuracy`` its acc@1 as a
    fraction. ``models`` are torchvision builders or cnnlab names with a torchvision twin (default: every
    torchvision classification network). ``weights="original"`` takes each network's first weights (the
    paper-era recipe, IMAGENET1K_V1 where it exists), ``"best"`` torchvision's DEFAULT weights.
    """
    import torchvision.models as tvm

    if dataset.lower() not in REFERENCE_DATASETS:
        raise ConfigError(f"no reference figures for {dataset!r}; available: {', '.join(REFERENCE_DATASETS)}")
    if weights not in ("original", "best"):
        raise ConfigError(f"weights must be 'original' or 'best', got {weights!r}")
    available = tvm.list_models(module=tvm)
    names = available if models is None else [_torchvision_name(m, available) for m in models]
    rows = []
    for name in names:
        enum = tvm.get_model_weights(name)
        w = enum.DEFAULT if weights == "best" else next(iter(enum))
        meta = w.meta
        metrics = meta.get("_metrics", {}).get("ImageNet-1K")
        if metrics is None:
            continue
        crop = getattr(w.transforms, "keywords", {}).get("crop_size")
        rows.append({
            "model": name,
            "weights": w.name,
            "input": f"3x{crop}x{crop}" if crop else None,
            "params": meta["num_params"],
            "macs": round(meta["_ops"] * 1e9),
            "test_accuracy": round(metrics["acc@1"] / 100, 6),
            "top5_accuracy": round(metrics["acc@5"] / 100, 6),
        })
    return rows


def _torchvision_name(name: str, available: Sequence[str]) -> str:
    if name in available:
        return name
    from cnnlab.models import get_model_info, is_model

    if is_model(name) and get_model_info(name).torchvision in available:
        return get_model_info(name).torchvision
    raise ConfigError(f"{name!r} has no torchvision counterpart with ImageNet weights; "
                     f"`cnnlab compare --reference imagenet` lists those that have")


def _percent(value: float) -> str:
    return f"{100 * value:.2f}%"


_FORMATTERS = {
    "params": human, "macs": human, "flops": human, "activation_bytes": lambda v: human(v, "B"),
    "training_bytes": lambda v: human(v, "B"), "test_accuracy": _percent, "top5_accuracy": _percent,
    "receptive_field": receptive_field_text, "train_seconds": lambda v: f"{v:.1f}",
    "images_per_second": lambda v: f"{v:,.0f}",
}


def render_rows(rows: Sequence[Mapping[str, Any]], fmt: str = "table",
                columns: Sequence[str] | None = None) -> str:
    """Comparison or reference rows as a table, Markdown, CSV or JSON (raw numbers in CSV and JSON).

    Tables show the receptive field as ``195 px, stride 5⅓`` and accuracies in percent.
    """
    if columns is None:
        columns = REFERENCE_COLUMNS if rows and "weights" in rows[0] else COMPARE_COLUMNS
        if not any(r.get("note") for r in rows):
            columns = tuple(c for c in columns if c != "note")  # a note says why a network has no numbers
    return render([dict(r) for r in rows], fmt, columns, formatters=_FORMATTERS)
