"""Design-space figures (Radosavovic et al. 2020): error EDFs, error against parameters, width fits, rank agreement.

The data come from ``cnnlab.experiments.designspace.analysis``: EDF curves (``label``, ``n``, ``min``,
``mean`` in percent, steps ``x``/``y`` and optionally complexity-normalized ``x_norm``/``y_norm`` with
``mean_norm``), parameter panels (``name``, ``x``, ``y``, ``trend_x``, ``trend_y``, ``log``), width fits
(``label``, ``block_widths``, ``linear`` and ``quantized`` fits with ``e_fit``) and a rank check
(``short``, ``long``, ``rho``, ``p_value``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from cnnlab.errors import DataError

__all__ = ["block_width_fits", "design_space_edfs", "error_vs_parameters", "rank_agreement"]

Curve = Mapping[str, Any]


def _edf_panel(ax, curves: Sequence[Curve], x_key: str, y_key: str, mean_key: str, title: str) -> None:
    for curve in curves:
        xs, ys = list(curve[x_key]), list(curve[y_key])
        # Start at F = 0 left of the smallest error so each curve begins on the axis.
        label = f"{curve['label']}  [{curve['n']} | {curve['min']:.1f} | {curve[mean_key]:.1f}]"
        ax.step([xs[0], *xs], [0.0, *ys], where="post", linewidth=1.8, label=label)
    ax.set_xlabel("error (%)")
    ax.set_ylabel("cumulative probability")
    ax.set_ylim(0, 1.02)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8, title="space  [n | min | mean]", title_fontsize=8)
    ax.set_title(title)


def design_space_edfs(curves: Sequence[Curve], *, title: str = "") -> Figure:
    """Error EDFs of several design spaces on shared axes: plain, and complexity-normalized beside it when
    the curves carry normalized steps. Legends read "n | min | mean" as in the paper."""
    if not curves:
        raise DataError("no design space to plot")
    normalized = all("x_norm" in c for c in curves)
    fig = Figure(figsize=(13 if normalized else 6.5, 5), layout="constrained")
    axes = fig.subplots(1, 2 if normalized else 1, squeeze=False)[0]
    _edf_panel(axes[0], curves, "x", "y", "mean", "error EDF")
    if normalized:
        _edf_panel(axes[1], curves, "x_norm", "y_norm", "mean_norm", "complexity-normalized error EDF")
    if title:
        fig.suptitle(title)
    return fig


def error_vs_parameters(panels: Sequence[Mapping[str, Any]], *, title: str = "") -> Figure:
    """Error against each parameter of a space: one scatter panel each, with the binned-median trend."""
    if not panels:
        raise DataError("no parameter to plot")
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(4.2 * cols, 3.4 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, panel in zip(axes, panels):
        ax.scatter(panel["x"], panel["y"], s=14, alpha=0.55, color="tab:blue", edgecolors="none")
        if panel["trend_x"]:
            ax.plot(panel["trend_x"], panel["trend_y"], color="tab:red", linewidth=2, marker="o", markersize=4,
                    label="median trend")
        if panel.get("log"):
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(panel["name"])
        ax.set_ylabel("error (%)")
        ax.grid(True, alpha=0.3)
    if panels[0]["trend_x"]:
        axes[0].legend(fontsize=8)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return fig


def block_width_fits(models: Sequence[Mapping[str, Any]], *, title: str = "") -> Figure:
    """Per-block widths of the best networks against block index, with the fitted line w_0 + w_a j and
    its quantized RegNet version; each panel's legend reports both fit errors (e_fit)."""
    if not models:
        raise DataError("no network to plot")
    fig = Figure(figsize=(4.6 * len(models), 4), layout="constrained")
    axes = fig.subplots(1, len(models), squeeze=False)[0]
    for ax, model in zip(axes, models):
        widths = model["block_widths"]
        j = list(range(len(widths)))
        lin, quant = model["linear"], model["quantized"]
        ax.plot(j, widths, color="black", linewidth=2.2, drawstyle="steps-mid", label="network's widths")
        ax.plot(j, lin["widths"], color="tab:blue", linestyle="--",
                label=f"w_0 + w_a j = {lin['w_0']:.1f} + {lin['w_a']:.1f} j  (e_fit {lin['e_fit']:.3f})")
        ax.plot(j, quant["widths"], color="tab:orange", drawstyle="steps-mid",
                label=f"quantized: w_0={quant['w_0']}, w_a={quant['w_a']:.1f}, w_m={quant['w_m']:.2f}  "
                      f"(e_fit {quant['e_fit']:.3f})")
        ax.set_xlabel("block index j")
        ax.set_ylabel("width (channels)")
        ax.set_title(model["label"], fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    if title:
        fig.suptitle(title)
    return fig


def rank_agreement(check: Mapping[str, Any], *, short_label: str = "short training",
                   long_label: str = "longer training") -> Figure:
    """Errors after a short against a longer training, one point per network, with Spearman's rho."""
    short, long = check["short"], check["long"]
    if not short:
        raise DataError("no network trained both ways")
    fig = Figure(figsize=(5.5, 5), layout="constrained")
    ax = fig.add_subplot()
    ax.scatter(short, long, color="tab:blue", edgecolors="black", linewidths=0.5, zorder=3)
    ax.set_xlabel(f"validation error (%), {short_label}")
    ax.set_ylabel(f"validation error (%), {long_label}")
    ax.grid(True, alpha=0.3)
    ax.set_title(f"Spearman rho = {check['rho']:.2f} over {len(short)} networks (p = {check['p_value']:.3g})")
    return fig
