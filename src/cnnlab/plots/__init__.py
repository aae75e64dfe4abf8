"""Every matplotlib figure of cnnlab: each function takes data and returns a ``Figure``.

Figures are built with ``matplotlib.figure.Figure`` directly, never through pyplot, so nothing here
changes global state or needs a display: ``fig.savefig(path)`` renders with the Agg backend, and a
notebook shows a returned figure as it shows any other. One module per capability; this package
re-exports them all, and imports nothing from the rest of cnnlab, so every layer may draw.
"""

from cnnlab.plots._labels import (
    Point,
    fit_limits,
    place_labels,
    settle_layout,
)
from cnnlab.plots.comparison import (
    accuracy_vs_time,
    complexity_chart,
    family_of,
    learning_curves,
)
from cnnlab.plots.designspace import (
    block_width_fits,
    design_space_edfs,
    error_vs_parameters,
    rank_agreement,
)
from cnnlab.plots.evaluation import (
    confusion_matrix,
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
from cnnlab.plots.segmentation import (
    class_palette,
    overlay_labels,
    segmentation_overlays,
)
from cnnlab.plots.training import (
    run_curves,
)

__all__ = [
    "Point",
    "accuracy_vs_time",
    "activation_grid",
    "attribution_grid",
    "augmentation_figure",
    "batch_size_figure",
    "block_width_fits",
    "class_palette",
    "complexity_chart",
    "confusion_matrix",
    "curvature_map",
    "default_levels",
    "design_space_edfs",
    "embedding_scatter",
    "ensemble_figure",
    "error_vs_parameters",
    "family_of",
    "filter_grid",
    "fine_tuning_figure",
    "fit_limits",
    "image_grid",
    "landscape_contours",
    "landscape_curves",
    "landscape_surface",
    "landscape_trajectory",
    "learning_curves",
    "learning_rate_figure",
    "neighbour_grid",
    "occlusion_grid",
    "overlay_labels",
    "patch_grid",
    "place_labels",
    "rank_agreement",
    "run_curves",
    "sanity_curves",
    "sanity_maps",
    "segmentation_overlays",
    "settle_layout",
    "skip_connection_figure",
    "training_error_curves",
    "variants_figure",
]
