"""Every matplotlib figure of cnnlab: each function takes data and returns a ``Figure``.

Figures are built with ``matplotlib.figure.Figure`` directly, never through pyplot, so nothing here
changes global state or needs a display: ``fig.savefig(path)`` renders with the Agg backend, and a
notebook shows a returned figure as it shows any other. One module per capability; this package
re-exports them all, and imports nothing from the rest of cnnlab, so every layer may draw.
"""

from cnnlab.plots.comparison import accuracy_vs_time, complexity_chart, learning_curves
from cnnlab.plots.experiments import (
    augmentation_figure,
    batch_size_figure,
    ensemble_figure,
    fine_tuning_figure,
    learning_rate_figure,
    variants_figure,
)

__all__ = [
    "accuracy_vs_time",
    "augmentation_figure",
    "batch_size_figure",
    "complexity_chart",
    "ensemble_figure",
    "fine_tuning_figure",
    "learning_curves",
    "learning_rate_figure",
    "variants_figure",
]
