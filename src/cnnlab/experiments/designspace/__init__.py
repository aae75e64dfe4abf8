"""Design-space exploration (Radosavovic et al. 2020): sample AnyNetX_A..E and RegNet spaces scaled to small
images, train every sample briefly through the job runner (local pool or Ray), compare spaces by their
error EDFs and test the notes' principles. See docs/designspace.md."""

from cnnlab.experiments.designspace.analysis import (
    complexity_bins,
    complexity_weights,
    edf,
    edf_at,
    fit_linear_widths,
    fit_quantized_widths,
    monotone_verdict,
    rank_verdict,
    spearman,
)
from cnnlab.experiments.designspace.report import analyze_sweep, compare_sweeps, rank_check
from cnnlab.experiments.designspace.sampling import Sample, parse_macs_range, sample_space
from cnnlab.experiments.designspace.spaces import SPACES, ImageScale, anynet_macs, get_space
from cnnlab.experiments.designspace.sweep import (
    SWEEP_RECIPE,
    TrainPlan,
    Trial,
    create_sweep,
    list_phases,
    load_sweep,
    run_sweep,
)

__all__ = [
    "SPACES",
    "SWEEP_RECIPE",
    "ImageScale",
    "Sample",
    "TrainPlan",
    "Trial",
    "analyze_sweep",
    "anynet_macs",
    "compare_sweeps",
    "complexity_bins",
    "complexity_weights",
    "create_sweep",
    "edf",
    "edf_at",
    "fit_linear_widths",
    "fit_quantized_widths",
    "get_space",
    "list_phases",
    "load_sweep",
    "monotone_verdict",
    "parse_macs_range",
    "rank_check",
    "rank_verdict",
    "run_sweep",
    "sample_space",
    "spearman",
]
