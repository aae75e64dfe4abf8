"""Every matplotlib figure of cnnlab: each function takes data and returns a ``Figure``.

Figures are built with ``matplotlib.figure.Figure`` directly, never through pyplot, so nothing here
changes global state or needs a display: ``fig.savefig(path)`` renders with the Agg backend, and a
notebook shows a returned figure as it shows any other. One module per capability; this package
re-exports them all, and imports nothing from the rest of cnnlab, so every layer may draw.
"""

from cnnlab.plots.comparison import accuracy_vs_time, complexity_chart, learning_curves
from cnnlab.plots.evaluation import confusion_matrix
from cnnlab.plots.training import run_curves

__all__ = ["accuracy_vs_time", "complexity_chart", "confusion_matrix", "learning_curves", "run_curves"]
