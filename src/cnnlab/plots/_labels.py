"""Placing point labels that do not overlap, and axis limits that keep bubbles whole.

Scatter charts of networks name every point. Matplotlib writes a label where it is told, so two close
networks get their names on top of each other and a big bubble at the edge is cut by the axes. Here each
label tries positions around its point, nearest first (then farther out, with a leader line), and takes
the first that stays inside the axes, clear of the labels already placed and of other points' markers.
The geometry is done in display pixels once the figure's layout is final.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties

__all__ = ["Point", "fit_limits", "place_labels", "settle_layout"]

# Directions to try, in degrees counterclockwise from "right": beside and above first (where readers look).
_ANGLES = (30, -30, 90, -90, 150, -150, 0, 180, 60, 120, -60, -120, 15, -15, 165, -165)
# Gaps between a marker's edge and its label, in points: the first ones touch, the others get a leader line.
_GAPS = (2, 7, 14, 24, 36, 52, 72, 96)
_LEADER_FROM = 14
# Costs per pixel of overlap: a label on another label is unreadable, on a point it hides where the point
# is, on a (translucent) bubble it is only harder to read.
_LABEL_COST, _MARKER_COST, _BUBBLE_COST = 100.0, 100.0, 0.05


@dataclass
class Point:
    """A marker to label: its data coordinates, its radius in points and its text."""

    x: float
    y: float
    radius: float  # points
    text: str


Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels


def settle_layout(fig: Figure):
    """Lay the figure out as it will be saved (Agg canvas, layout engine run); returns the renderer."""
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    fig.draw_without_rendering()
    return fig.canvas.get_renderer()


def fit_limits(fig: Figure, ax, points: Sequence[Point], pad: float = 4.0, rounds: int = 4) -> None:
    """Widen the axes' limits until every marker, whole, and ``pad`` points around it, is inside the axes."""
    to_px = fig.dpi / 72
    for _ in range(rounds):
        settle_layout(fig)
        box = ax.get_window_extent()
        grow = {"left": 0.0, "right": 0.0, "bottom": 0.0, "top": 0.0}
        for p in points:
            px, py = ax.transData.transform((p.x, p.y))
            reach = (p.radius + pad) * to_px
            grow["left"] = max(grow["left"], box.x0 + reach - px)
            grow["right"] = max(grow["right"], px + reach - box.x1)
            grow["bottom"] = max(grow["bottom"], box.y0 + reach - py)
            grow["top"] = max(grow["top"], py + reach - box.y1)
        if max(grow.values()) <= 0.5:
            return
        _widen(ax, "x", grow["left"], grow["right"], box.width)
        _widen(ax, "y", grow["bottom"], grow["top"], box.height)


def _widen(ax, axis: str, low_px: float, high_px: float, span_px: float) -> None:
    """Move an axis' limits out by pixel amounts, in its own scale (linear or log)."""
    get, set_ = (ax.get_xlim, ax.set_xlim) if axis == "x" else (ax.get_ylim, ax.set_ylim)
    log = (ax.get_xscale() if axis == "x" else ax.get_yscale()) == "log"
    lo, hi = get()
    a, b = (math.log10(lo), math.log10(hi)) if log else (lo, hi)
    per_px = (b - a) / max(span_px, 1.0)
    a -= max(low_px, 0.0) * per_px * 1.05
    b += max(high_px, 0.0) * per_px * 1.05
    set_((10**a, 10**b) if log else (a, b))


def _overlap(box: Box, boxes: np.ndarray) -> float:
    """Total area (pixels^2) by which ``box`` overlaps the rows (x0, y0, x1, y1) of ``boxes``."""
    if not len(boxes):
        return 0.0
    dx = np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0])
    dy = np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1])
    return float((np.clip(dx, 0, None) * np.clip(dy, 0, None)).sum())


def _text_size(renderer, text: str, fontsize: float) -> tuple[float, float]:
    width, height, _ = renderer.get_text_width_height_descent(text, FontProperties(size=fontsize), ismath=False)
    return width, height * 1.15


def _candidate(px: float, py: float, reach: float, angle: float, width: float, height: float) -> Box:
    """The box of a label whose nearest edge is ``reach`` pixels from the point, in direction ``angle``."""
    cx, cy = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    ax_, ay = px + reach * cx, py + reach * cy  # the anchor on the circle around the point
    x0 = ax_ if cx > 0.3 else ax_ - width if cx < -0.3 else ax_ - width / 2
    y0 = ay if cy > 0.3 else ay - height if cy < -0.3 else ay - height / 2
    return x0, y0, x0 + width, y0 + height


def place_labels(fig: Figure, ax, points: Sequence[Point], style: dict, taken: list[Box] | None = None) -> list:
    """Write each point's text near it without overlaps; returns the annotations (in priority order given).

    ``taken`` are pixel boxes to keep clear as well (labels of another call, legends).
    """
    renderer = settle_layout(fig)
    to_px = fig.dpi / 72
    frame = ax.get_window_extent()
    fontsize = style.get("fontsize", 8)
    centers = ax.transData.transform([(p.x, p.y) for p in points]) if points else np.zeros((0, 2))
    markers = np.hstack([centers - 3, centers + 3])  # every point's centre stays visible
    # A bubble as the square inside its circle: what a label would surely cover.
    inner = np.array([[p.radius * to_px / math.sqrt(2)] for p in points]).reshape(-1, 1)
    bubbles = np.hstack([centers - inner, centers + inner])
    placed = np.array(list(taken or []), dtype=float).reshape(-1, 4)
    made = []
    for i, (p, (px, py)) in enumerate(zip(points, centers)):
        width, height = _text_size(renderer, p.text, fontsize)
        best, best_cost, best_gap = None, math.inf, 0
        for gap in _GAPS:
            for angle in _ANGLES:
                box = _candidate(px, py, (p.radius + gap) * to_px, angle, width, height)
                inside = (frame.x0 + 2 <= box[0] and box[2] <= frame.x1 - 2
                          and frame.y0 + 2 <= box[1] and box[3] <= frame.y1 - 2)
                others = np.arange(len(points)) != i
                cost = (_LABEL_COST * _overlap(box, placed)
                        + _MARKER_COST * _overlap(box, markers[others])
                        + _BUBBLE_COST * _overlap(box, bubbles[others])
                        + (0 if inside else 1e9) + gap)
                if cost < best_cost:
                    best, best_cost, best_gap = box, cost, gap
            if best_cost < gap + 50:  # clear of labels and points at this distance: no need to go farther
                break
        placed = np.vstack([placed, best])
        # The annotation is anchored at the box's lower-left corner, in pixels from the point, as points.
        offset = ((best[0] - px) / to_px, (best[1] - py) / to_px)
        far = best_gap >= _LEADER_FROM
        made.append(ax.annotate(
            p.text, (p.x, p.y), xytext=offset, textcoords="offset points", ha="left", va="bottom",
            annotation_clip=False, in_layout=False,
            arrowprops={"arrowstyle": "-", "color": "0.5", "linewidth": 0.6, "shrinkA": 0, "shrinkB": p.radius}
            if far else None,
            **style,
        ))
    return made
