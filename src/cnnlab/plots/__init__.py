"""Every matplotlib figure of cnnlab: each function takes data and returns a ``Figure``.

Figures are built with ``matplotlib.figure.Figure`` directly, never through pyplot, so nothing here
changes global state or needs a display: ``fig.savefig(path)`` renders with the Agg backend, and a
notebook shows a returned figure as it shows any other. One module per capability; this package
re-exports them all, and imports nothing from the rest of cnnlab, so every layer may draw.
"""

from cnnlab.plots.comparison import accuracy_vs_time, complexity_chart, learning_curves
from cnnlab.plots.explain import (
    activation_grid,
    attribution_grid,
    embedding_scatter,
    filter_grid,
    image_grid,
    neighbour_grid,
    occlusion_grid,
    patch_grid,
    sanity_curves,
    sanity_maps,
)
from cnnlab.plots.landscape import (
    curvature_map,
    default_levels,
    landscape_contours,
    landscape_curves,
    landscape_surface,
    landscape_trajectory,
    skip_connection_figure,
    training_error_curves,
)

__all__ = [
    "accuracy_vs_time",
    "activation_grid",
    "attribution_grid",
    "complexity_chart",
    "curvature_map",
    "default_levels",
    "embedding_scatter",
    "filter_grid",
    "image_grid",
    "landscape_contours",
    "landscape_curves",
    "landscape_surface",
    "landscape_trajectory",
    "learning_curves",
    "neighbour_grid",
    "occlusion_grid",
    "patch_grid",
    "sanity_curves",
    "sanity_maps",
    "skip_connection_figure",
    "training_error_curves",
]
