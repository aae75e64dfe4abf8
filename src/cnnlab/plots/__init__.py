"""Every matplotlib figure of cnnlab: each function takes data and returns a ``Figure``.

Figures are built with ``matplotlib.figure.Figure`` directly, never through pyplot, so nothing here
changes global state or needs a display: ``fig.savefig(path)`` renders with the Agg backend, and a
notebook shows a returned figure as it shows any other. One module per capability; this package
re-exports them all, and imports nothing from the rest of cnnlab, so every layer may draw.
"""

from cnnlab.plots.comparison import accuracy_vs_time, complexity_chart, learning_curves
from cnnlab.plots.segmentation import class_palette, overlay_labels, segmentation_overlays

__all__ = [
    "accuracy_vs_time",
    "class_palette",
    "complexity_chart",
    "learning_curves",
    "overlay_labels",
    "segmentation_overlays",
]
