"""The cost GoogLeNet's 1x1 reductions save in each Inception module: the table of docs/zoo.md."""

from __future__ import annotations

import torch

from cnnlab.analysis.counting import count_forward
from cnnlab.models.googlenet import VARIANTS, Inception

# (module, C_in, map side) of GoogLeNet at 224x224 (Table 1 of Szegedy et al. 2015: 28, 14, 7).
SIDES = {"3": 28, "4": 14, "5": 7}


def module_costs(reductions: bool, in_chs: int, side: int, spec) -> tuple[int, int, int]:
    """(parameters, MACs, output channels) of one module on a C_in x side x side input, paper 5x5 kernels."""
    with torch.device("meta"):
        module = Inception(in_chs, spec.ch1x1, spec.ch3x3red, spec.ch3x3, spec.ch5x5red, spec.ch5x5,
                           spec.pool_proj, kernel_5x5=5, reductions=reductions)
    counted = count_forward(module.eval(), (in_chs, side, side))
    return counted.params, counted.macs, module.out_chs


def reduction_rows() -> list[str]:
    """Markdown rows: each module of GoogLeNet with and without its 1x1 reductions, on the same input."""
    rows = []
    in_chs = VARIANTS["googlenet"].cfg.stem_chs
    for stage in VARIANTS["googlenet"].cfg.stages:
        for name, spec in stage:
            side = SIDES[name[len("inception")]]
            p, m, out = module_costs(True, in_chs, side, spec)
            pn, mn, outn = module_costs(False, in_chs, side, spec)
            rows.append(f"| {name[len('inception'):]} | {in_chs}x{side}x{side} | {p:,} | {m / 1e6:,.1f}M | {out} "
                        f"| {pn:,} | {mn / 1e6:,.1f}M | {outn} | {mn / m:.1f}x |")
            in_chs = out
    return rows
