"""Loss landscapes: see why skip connections make deep networks trainable.

Li et al. 2018, Visualizing the Loss Landscape of Neural Nets (NeurIPS): the loss around trained weights
along random directions with filter normalization (``directions``), on 1-D and 2-D grids filled resumably
and in parallel (``grid``), evaluated fast (``surface``); the PCA plane of an optimization trajectory; the
extreme Hessian eigenvalues by Hessian-vector products (``curvature``). Goodfellow et al. 2015: the line
between two checkpoints. ``landscape_checkpoint`` (``run``) does it all for a checkpoint of ``cnnlab
train``; the figures are in ``cnnlab.plots.landscape``. See docs/landscape.md.
"""

from cnnlab.experiments.landscape.curvature import (
    HessianSpectrum,
    extreme_eigenvalues,
    hessian_vector_product,
    lanczos,
    nonconvex_fraction,
    power_iteration,
    principal_curvatures,
)
from cnnlab.experiments.landscape.directions import (
    Direction,
    TrajectoryPlane,
    interpolation_direction,
    normalize_direction,
    orthogonalize,
    project,
    random_directions,
    trajectory_plane,
)
from cnnlab.experiments.landscape.grid import Axis, Grid, GridStore, fill_grid, parse_axes
from cnnlab.experiments.landscape.run import (
    LandscapeResult,
    LandscapeSettings,
    landscape_checkpoint,
    load_landscape,
    training_subset,
)
from cnnlab.experiments.landscape.surface import SurfaceEvaluator, find_conv_bn_pairs

__all__ = [
    "Axis",
    "Direction",
    "Grid",
    "GridStore",
    "HessianSpectrum",
    "LandscapeResult",
    "LandscapeSettings",
    "SurfaceEvaluator",
    "TrajectoryPlane",
    "extreme_eigenvalues",
    "fill_grid",
    "find_conv_bn_pairs",
    "hessian_vector_product",
    "interpolation_direction",
    "lanczos",
    "landscape_checkpoint",
    "load_landscape",
    "nonconvex_fraction",
    "normalize_direction",
    "orthogonalize",
    "parse_axes",
    "power_iteration",
    "principal_curvatures",
    "project",
    "random_directions",
    "trajectory_plane",
    "training_subset",
]
