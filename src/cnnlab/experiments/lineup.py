"""Train a lineup of networks with one recipe and budget, then compare them (the notes' complexity comparison).

Each network trains in its own run directory under the comparison's directory, so an interrupted
comparison resumes: finished networks (``results.json`` present) are skipped, a network stopped mid-run
continues from its checkpoint, the others start. The report joins the training results with the static
comparison (parameters, MACs, memory, receptive field, depth) and draws the figures.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cnnlab.analysis.compare import TRAINED_COLUMNS, compare_models, join_results, reference_rows, render_rows
from cnnlab.errors import ConfigError
from cnnlab.experiments.jobs import Job, JobResult, refuse_busy, run_jobs
from cnnlab.files import save_figure_atomic, write_text_atomic
from cnnlab.models import create_model, get_model_info
from cnnlab.options import format_options, parse_model_spec

__all__ = [
    "DEMO_LINEUP",
    "DEMO_SETTINGS",
    "Contender",
    "LineupReport",
    "budget_text",
    "parse_contender",
    "run_comparison",
    "run_lineup",
    "write_report",
]

# The notes' lineup at Fashion-MNIST size, narrowed where the ImageNet widths would take hours on a CPU
# (AlexNet, VGG, NiN) and shortened for DenseNet: one family each, about 10 minutes on 2 CPU cores.
# AlexNet and NiN get batch norm: without it they diverge at the one-cycle peak rate of the fast recipe.
DEMO_LINEUP: tuple[str, ...] = (
    "lenet5",
    "alexnet:width_mult=0.25,hidden=256,norm_layer=batchnorm",
    "vgg11_bn:width_mult=0.25,hidden=256",
    "nin_cifar:width_mult=0.25,norm_layer=batchnorm",
    "googlenet",
    "resnet20",
    "densenet_bc_100_12:block_config=(4,4,4),growth_rate=8",
    "regnetx_200mf",
)
# One pass over the 60,000 training images each, the `fast` recipe: the same data budget for every network.
# The recipe's peak rate (0.2) suits residual networks; the plain deep stacks (VGG) die at it, so the
# lineup shares a gentler 0.05.
DEMO_SETTINGS: dict[str, Any] = {"data": "fashion-mnist", "recipe": "fast", "epochs": 1, "lr": 0.05}


@dataclass(frozen=True)
class Contender:
    """One network of a lineup: a registered model and its builder options."""

    model: str
    model_args: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The model name with its options, e.g. ``vgg11(width_mult=0.25)``."""
        return f"{self.model}({format_options(self.model_args)})" if self.model_args else self.model

    @property
    def slug(self) -> str:
        """A directory name for the label."""
        return re.sub(r"[^A-Za-z0-9_.=-]+", "_", self.label.replace("(", "-").replace(")", "")).strip("_")


def parse_contender(text: str) -> Contender:
    """``NAME`` or ``NAME:key=value,key=value`` (values are Python literals; commas inside brackets stay)."""
    name, options = parse_model_spec(text)
    get_model_info(name)  # unknown names fail here, with close matches
    return Contender(name, options)


def run_lineup(contenders: Sequence[Contender], out_dir: str | Path, settings: Mapping[str, Any],
               on_start: Callable[[int, Contender, str], None] | None = None) -> list[dict[str, Any]]:
    """Train every contender (skipping finished ones, resuming interrupted ones); their results, in order.

    ``settings`` are TrainConfig fields shared by all (data, recipe, epochs or time_budget, ...);
    ``on_start(index, contender, action)`` is told before each network ("train", "resume" or "skip").
    """
    if not contenders:
        raise ConfigError("name at least one network to train")
    labels = [c.label for c in contenders]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"a network is listed twice: {sorted({x for x in labels if labels.count(x) > 1})}")
    jobs = [Job(c.slug, {**settings, "model": c.model, "model_args": c.model_args}) for c in contenders]
    index = {job.key: i for i, job in enumerate(jobs)}

    def tell(kind: str, job: Job, result: JobResult | None) -> None:
        if on_start is None or kind == "done":
            return
        resuming = (Path(out_dir) / job.key / "last.pt").exists()
        action = "skip" if kind == "skip" else "resume" if resuming else "train"
        on_start(index[job.key], contenders[index[job.key]], action)

    done = run_jobs(jobs, out_dir, on_event=tell)
    refuse_busy(done)
    # A network that diverged is reported with its error and no accuracy; it must not cost the others.
    return [{**(r.result if r.status == "ok" else {"test_accuracy": None, "error": r.error}), "model": c.label}
            for c, r in zip(contenders, done)]


@dataclass
class LineupReport:
    """What a comparison wrote: the table's rows and the files."""

    rows: list[dict[str, Any]]
    files: dict[str, Path]


def _static_rows(contenders: Sequence[Contender], results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Parameters, MACs, memory, receptive field and depth of each trained network at its training input."""
    rows = []
    for contender, result in zip(contenders, results):
        if "input_size" not in result:  # a run that failed: no trained network to describe
            continue
        c, h, w = result["input_size"]
        with torch.device("meta"):
            module = create_model(contender.model, num_classes=result["num_classes"], in_chans=c,
                                  **contender.model_args)
        rows += compare_models([(contender.label, module)], (c, h, w))
    return rows


def _short_labels(contenders: Sequence[Contender]) -> dict[str, str]:
    """Label -> model name (a '*' marks changed options), or the full label where names repeat."""
    models = [c.model for c in contenders]
    return {c.label: (c.model + ("*" if c.model_args else "")) if models.count(c.model) == 1 else c.label
            for c in contenders}


def _history(run_dir: Path, name: str) -> list[dict[str, Any]]:
    path = run_dir / name
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_report(contenders: Sequence[Contender], results: Sequence[Mapping[str, Any]], out_dir: str | Path,
                 dataset: str, budget: str, reference: str | None = None) -> LineupReport:
    """The comparison table (Markdown, CSV, JSON) and figures for trained contenders, in ``out_dir``."""
    from cnnlab.plots import accuracy_vs_time, complexity_chart, learning_curves

    out = Path(out_dir)
    rows = join_results(_static_rows(contenders, results), results)
    files = {
        "table": out / "comparison.md",
        "csv": out / "comparison.csv",
        "json": out / "comparison.json",
        "complexity": out / "complexity.png",
        "time": out / "accuracy_vs_time.png",
        "curves": out / "learning_curves.png",
    }
    write_text_atomic(files["table"], render_rows(rows, "markdown", TRAINED_COLUMNS))
    write_text_atomic(files["csv"], render_rows(rows, "csv", TRAINED_COLUMNS))
    write_text_atomic(files["json"], json.dumps({"dataset": dataset, "budget": budget, "rows": rows}, indent=2,
                                                default=str) + "\n")
    if not any(r.get("test_accuracy") is not None for r in rows):
        # Nothing trained to completion: the table says why; there is no accuracy to draw.
        return LineupReport(rows=rows, files={k: v for k, v in files.items() if k in ("table", "csv", "json")})
    # Figures name each network by its model name alone where that is unambiguous; the table has the options.
    short = _short_labels(contenders)
    chart_rows = [{**r, "model": short.get(r["model"], r["model"])} for r in rows]
    ref_rows = reference_rows(reference, None) if reference else ()
    complexity = complexity_chart(chart_rows, dataset=dataset, budget=budget, reference=ref_rows)
    save_figure_atomic(complexity, files["complexity"])
    save_figure_atomic(accuracy_vs_time(chart_rows, dataset=dataset, budget=budget), files["time"])
    curves = {short[c.label]: _history(out / c.slug, "curve.jsonl") for c in contenders}
    curve_figure = learning_curves({k: v for k, v in curves.items() if v}, dataset=dataset, budget=budget,
                                   metrics=("loss", "accuracy"), x="images")
    save_figure_atomic(curve_figure, files["curves"])
    return LineupReport(rows=rows, files=files)


def budget_text(settings: Mapping[str, Any]) -> str:
    """The shared budget in words for figure titles, e.g. "1 epoch each, recipe fast, 2 CPU threads"."""
    parts = []
    if settings.get("time_budget"):
        parts.append(f"{float(settings['time_budget']):g} s each")
    if settings.get("epochs"):
        n = settings["epochs"]
        parts.append(f"{n} epoch{'s' if n != 1 else ''} each" if not settings.get("time_budget") else f"<= {n} epochs")
    if settings.get("recipe"):
        parts.append(f"{settings['recipe']} recipe" + (f", lr {settings['lr']:g}" if settings.get("lr") else ""))
    return ", ".join(parts)


def run_comparison(contenders: Sequence[Contender], out_dir: str | Path, settings: Mapping[str, Any],
                   reference: str | None = None,
                   on_start: Callable[[int, Contender, str], None] | None = None) -> LineupReport:
    """Train (or resume, or skip) every contender, then write the table and figures to ``out_dir``."""
    results = run_lineup(contenders, out_dir, settings, on_start)
    dataset = next((r["data"] for r in results if r.get("data")), str(settings.get("data", "")))
    budget = budget_text(settings)
    hardware = next((r["hardware"] for r in results if r.get("hardware")), {})
    if hardware.get("device") == "cpu":
        n = hardware["threads"]
        budget += f", {n} CPU thread{'s' if n != 1 else ''}"
    return write_report(contenders, results, out_dir, _dataset_title(dataset), budget, reference)


def _dataset_title(name: str) -> str:
    titles = {"fashion-mnist": "Fashion-MNIST", "mnist": "MNIST", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}
    return titles.get(name, name)
