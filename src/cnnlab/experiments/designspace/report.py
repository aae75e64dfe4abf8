"""Figures and verdicts of trained sweeps: EDFs of several spaces, one space's analysis, the rank check."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from cnnlab.errors import ConfigError
from cnnlab.experiments.designspace.analysis import (
    complexity_bins,
    edf_curve,
    monotone_verdict,
    parameter_panels,
    rank_verdict,
    space_summary,
    width_fits,
)
from cnnlab.experiments.designspace.sweep import TrainPlan, list_phases, load_sweep, run_sweep
from cnnlab.experiments.jobs import Job, JobResult
from cnnlab.files import write_json_atomic

__all__ = ["analyze_sweep", "compare_sweeps", "default_bins", "rank_check", "save_figure"]


def save_figure(fig: Figure, path: str | Path, dpi: int = 130) -> Path:
    """Render ``fig`` to ``path`` (format from its suffix) through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}{path.suffix}")
    fig.savefig(temp, dpi=dpi)
    os.replace(temp, path)
    return path


def default_bins(counts: Sequence[int]) -> int:
    """Complexity bins for normalized EDFs: about sqrt(n) of the smallest space, between 2 and 8."""
    return int(min(8, max(2, round(math.sqrt(min(counts))))))


def compare_sweeps(sweeps: Sequence[str | Path], out: str | Path | None = None, label: str | None = None,
                   bins: int | None = None) -> dict[str, Any]:
    """EDFs (plain and complexity-normalized over shared MAC bins) of several trained sweeps; writes the
    figure to ``out`` when given. Returns each space's summary and curve."""
    from cnnlab.plots import design_space_edfs

    if not sweeps:
        raise ConfigError("name at least one sweep folder")
    loaded = [load_sweep(s, label) for s in sweeps]
    ok_macs = [[t.sample.macs for t in trials if t.status == "ok"] for _, trials in loaded]
    if any(not m for m in ok_macs):
        empty = [str(s) for s, m in zip(sweeps, ok_macs) if not m]
        raise ConfigError(f"no trained network in {', '.join(empty)}; run `cnnlab designspace run` first")
    edges = complexity_bins([m for group in ok_macs for m in group], bins or default_bins([len(m) for m in ok_macs]))
    curves, summaries = [], []
    for (meta, trials), sweep in zip(loaded, sweeps):
        curves.append(edf_curve(meta["title"], trials, edges))
        summaries.append({"sweep": str(sweep), "space": meta["space"], "title": meta["title"],
                          "training": meta["label"], **space_summary(trials, edges)})
    if out is not None:
        trainings = sorted({meta["label"] for meta, _ in loaded})
        save_figure(design_space_edfs(curves, title=f"design spaces compared (training {', '.join(trainings)})"),
                    out)
    return {"bins": [float(e) for e in edges], "spaces": summaries, "curves": curves}


def analyze_sweep(sweep: str | Path, out_dir: str | Path, label: str | None = None, top: int = 3) -> dict[str, Any]:
    """One space: error against its parameters, the best networks' width fits, the top-decile verdict.

    Writes ``parameters.png``, ``widths.png`` and ``analysis.json`` into ``out_dir``; returns the JSON.
    """
    from cnnlab.plots import block_width_fits, error_vs_parameters

    meta, trials = load_sweep(sweep, label)
    out = Path(out_dir)
    title = f"{meta['title']} ({meta['label']})"
    fits = width_fits(trials, top)
    report = {"space": meta["space"], "title": meta["title"], "training": meta["label"],
              "summary": space_summary(trials), "principles": monotone_verdict(trials),
              "width_fits": [{k: v for k, v in f.items() if k != "label"} for f in fits]}
    save_figure(error_vs_parameters(parameter_panels(trials), title=f"{title}: error against parameters"),
                out / "parameters.png")
    save_figure(block_width_fits(fits, title=f"{title}: best networks' widths and RegNet fits"), out / "widths.png")
    write_json_atomic(out / "analysis.json", report)
    return report


def rank_check(
    sweep: str | Path,
    epochs: int,
    models: int = 16,
    out: str | Path | None = None,
    short_label: str | None = None,
    seed: int = 0,
    executor: str = "local",
    workers: int = 1,
    address: str | None = None,
    on_event: Callable[[str, Job, JobResult | None], None] | None = None,
) -> dict[str, Any]:
    """Train ``models`` of the sweep's networks (a seeded random choice among those trained) for ``epochs``,
    otherwise as the short training was, and compare the two rankings (Spearman); returns the verdict and
    draws the scatter to ``out`` when given. The longer training is resumable like any other."""
    import numpy as np

    from cnnlab.plots import rank_agreement

    short_meta, short = load_sweep(sweep, short_label)
    stored = next(p["plan"] for p in list_phases(sweep) if p["label"] == short_meta["label"])
    plan = TrainPlan(**{**stored, "epochs": epochs, "download": False})  # the short training fetched the data
    trained = [t.sample.key for t in short if t.status == "ok"]
    if len(trained) < 3:
        raise ConfigError(f"{sweep} needs at least 3 networks trained in {short_meta['label']} for a rank check")
    chosen = sorted(np.random.default_rng(seed).choice(trained, size=min(models, len(trained)), replace=False))
    if epochs <= stored["epochs"]:
        raise ConfigError(f"the rank check trains longer than {short_meta['label']} ({stored['epochs']} epochs); "
                          f"give more --epochs")
    long_label = f"{plan.label}-rank"
    run_sweep(sweep, plan, label=long_label, keys=[str(k) for k in chosen], executor=executor, workers=workers,
              address=address, on_event=on_event)
    _, long = load_sweep(sweep, long_label)
    check = rank_verdict(short, long, seed)
    check.update(short_training=short_meta["label"], long_training=long_label)
    if out is not None:
        save_figure(rank_agreement(check, short_label=short_meta["label"], long_label=long_label), out)
    return check

