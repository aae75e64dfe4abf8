"""Checks that a figure reads at a glance: every text inside the canvas, labels apart, legends off the data."""

from __future__ import annotations

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.transforms import Bbox


def drawn(fig: Figure):
    """Render ``fig`` (Agg) and return its renderer, so extents are final."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def _parts(fig: Figure, renderer) -> list[tuple[str, Bbox]]:
    """(name, extent in pixels) of what ``fig`` draws: each axes with its ticks, labels and title, the figure's
    legends, texts and title."""
    parts = [(f"axes {i} ({ax.get_title()!r})", ax.get_tightbbox(renderer)) for i, ax in enumerate(fig.axes)]
    parts += [(f"legend {i}", legend.get_window_extent(renderer)) for i, legend in enumerate(fig.legends)]
    texts = [*fig.texts, *([fig._suptitle] if fig._suptitle is not None else [])]
    parts += [(t.get_text(), t.get_window_extent(renderer)) for t in texts if t.get_visible() and t.get_text()]
    return [(name, box) for name, box in parts if box is not None]


def outside_canvas(fig: Figure, renderer=None, slack: float = 1.0) -> list[str]:
    """What reaches past the figure's edges (cut off in the saved image): axes with their labels, legends, titles."""
    renderer = renderer or drawn(fig)
    width, height = fig.canvas.get_width_height()
    return [name for name, box in _parts(fig, renderer)
            if box.x0 < -slack or box.y0 < -slack or box.x1 > width + slack or box.y1 > height + slack]


def label_boxes(ax, renderer) -> list[tuple[str, Bbox]]:
    """(text, extent) of the labels written on an axes' data (annotations), not its ticks or title."""
    # Text's own extent: an annotation's would include its leader line
    return [(t.get_text(), Text.get_window_extent(t, renderer)) for t in ax.texts if t.get_visible() and t.get_text()]


def overlaps(boxes: list[tuple[str, Bbox]], slack: float = 1.0) -> list[tuple[str, str]]:
    """Pairs of texts whose extents overlap by more than ``slack`` pixels each way."""
    found = []
    for i, (a, box_a) in enumerate(boxes):
        for b, box_b in boxes[i + 1:]:
            dx = min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0)
            dy = min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0)
            if dx > slack and dy > slack:
                found.append((a, b))
    return found
