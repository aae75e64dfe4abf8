"""Every matplotlib figure of cnnlab: each function takes data and returns a ``Figure``.

Figures are built with ``matplotlib.figure.Figure`` directly, never through pyplot, so nothing here
changes global state or needs a display: ``fig.savefig(path)`` renders with the Agg backend, and a
notebook shows a returned figure as it shows any other. One module per capability; this package
re-exports them all, and imports nothing from the rest of cnnlab, so every layer may draw.
"""

from cnnlab.plots.comparison import (
    accuracy_vs_time,
    complexity_chart,
    learning_curves,
)
from cnnlab.plots.designspace import (
    block_width_fits,
    design_space_edfs,
    error_vs_parameters,
    rank_agreement,
)
from cnnlab.plots.experiments import (
    augmentation_figure,
    batch_size_figure,
    ensemble_figure,
    fine_tuning_figure,
    learning_rate_figure,
    variants_figure,
)
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

__all__ = [
    "accuracy_vs_time",
    "activation_grid",
    "attribution_grid",
    "augmentation_figure",
    "batch_size_figure",
    "block_width_fits",
    "complexity_chart",
    "design_space_edfs",
    "embedding_scatter",
    "ensemble_figure",
    "error_vs_parameters",
    "filter_grid",
    "fine_tuning_figure",
    "image_grid",
    "learning_curves",
    "learning_rate_figure",
    "neighbour_grid",
    "occlusion_grid",
    "patch_grid",
    "rank_agreement",
    "sanity_curves",
    "sanity_maps",
    "variants_figure",
]
