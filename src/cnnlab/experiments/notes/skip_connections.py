"""Skip connections smooth the loss landscape (note 001; Li et al. 2018, Visualizing the Loss Landscape of Neural
Nets, figure 5: ResNet-56 is a smooth bowl, the same network without shortcuts is chaotic).

Trains plain-20/56 and ResNet-20/56 with one recipe and budget (the degradation experiment's jobs), then for
each seed draws the 2-D landscape of ResNet-56 and of plain-56 around their trained weights: random
directions with filter normalization from the same seed, biases and BN parameters left out, BN in eval mode,
a fixed class-balanced subset of the training images. The smoothness number the verdict uses is the fraction
of the grid where the loss is locally non-convex (the finite-difference Hessian of the surface has a clearly
negative eigenvalue); the extreme Hessian eigenvalues at the centre (Lanczos on Hessian-vector products) and
|lambda_min / lambda_max| are reported beside it, as Li et al. section 6 does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.experiments.catalogue import (
    Context,
    Experiment,
    Outcome,
    Verdict,
    register_experiment,
    verdict_from_difference,
)
from cnnlab.experiments.landscape.run import LandscapeSettings, landscape_checkpoint, load_landscape
from cnnlab.experiments.notes.degradation import (
    NETWORKS,
    degradation_verdict,
    error_curves,
    final_training_errors,
    training_jobs,
)

__all__ = ["SkipConnections", "landscape_settings"]

# The landscapes per budget: grid points per axis over [-1, 1]^2, training images, Hessian iterations and images.
_LANDSCAPES: dict[str, dict[str, Any]] = {
    "tiny": {"grid": 5, "points": 32, "hessian_iters": 4, "hessian_points": 16},
    "quick": {"grid": 11, "points": 256, "hessian_iters": 10, "hessian_points": 256},
    "full": {"grid": 15, "points": 500, "hessian_iters": 20, "hessian_points": 500},
}
_PAIR = ("resnet56", "plain56")


def landscape_settings(budget: str, data_dir: str | None) -> LandscapeSettings:
    """The landscape of each trained 56-layer network at ``budget``: the same directions' seed for both."""
    return LandscapeSettings(dims=2, range="-1:1", seed=0, hessian=True, progress=False, data_dir=data_dir,
                             **_LANDSCAPES[budget])


@register_experiment
class SkipConnections(Experiment):
    """ResNet-56's loss landscape is smooth where plain-56's is chaotic (Li et al. 2018)."""

    name = "skip-connections"
    claim = ("skip connections smooth the loss function: around its trained weights ResNet-56's loss is a smooth "
             "bowl while the same network without shortcuts (plain-56) is chaotic")
    source = "001: Loss Function (Li et al. 2018, figure 5); 002-004 for the training-error curves"
    minutes = {"quick": 15, "full": 55}

    def run(self, ctx: Context) -> Outcome:
        from cnnlab import plots

        results = ctx.train(training_jobs(ctx))
        seeds = ctx.seed_list()
        settings = landscape_settings(ctx.budget, ctx.data.get("data_dir"))
        summaries: dict[str, list[dict[str, Any]]] = {m: [] for m in _PAIR}
        for seed in seeds:
            for model in _PAIR:
                result = results[f"{model}-s{seed}"]
                if result.status != "ok":
                    continue
                out = ctx.out / "landscapes" / f"{model}-s{seed}"
                summaries[model].append(landscape_checkpoint(f"{result.result['run_dir']}/last.pt", out, settings))
        fractions = {m: [s["nonconvex_fraction"] for s in summaries[m]] for m in _PAIR}
        ratios = {m: [s["hessian"]["ratio"] for s in summaries[m]] for m in _PAIR}
        if all(fractions.values()):
            verdict = verdict_from_difference(
                fractions["resnet56"], fractions["plain56"], claim_a_better=True, higher_is_better=False,
                what="fraction of the 2-D loss grid that is locally non-convex", labels=("ResNet-56", "plain-56"))
        else:
            verdict = Verdict("inconclusive at this budget", "both 56-layer networks need a finished run",
                              "a 56-layer run failed; see runs/results.jsonl")
        errors = {m: final_training_errors(results, m, seeds) for m in NETWORKS}
        degradation = degradation_verdict(errors)[0] if all(errors.values()) else None
        figure = self._figure(plots, ctx, results, fractions, ratios)
        numbers = {
            "nonconvex_fraction": fractions, "hessian_ratio_at_centre": ratios,
            "hessian_at_centre": {m: [s["hessian"] for s in summaries[m]] for m in _PAIR},
            "centre_train_loss": {m: [s["centre"]["train_loss"] for s in summaries[m]] for m in _PAIR},
            "final_training_error": errors,
            "degradation": degradation.__dict__ if degradation else None,
            "landscape": {k: v for k, v in vars(settings).items() if k not in ("data_dir", "progress")},
        }
        notes = [
            f"landscapes: {settings.grid} x {settings.grid} grid on [-1, 1]^2, {settings.points} training images, "
            "filter-normalized random directions (seed 0 for both networks), BN in eval mode",
            "non-convex: the smaller principal curvature of the finite-difference Hessian of the loss grid is "
            "below -1% of the larger one's magnitude, counted over the grid's interior points",
            "Hessian at the centre: Lanczos with "
            f"{settings.hessian_iters} Hessian-vector products on {settings.hessian_points} training images",
        ]
        if degradation is not None:
            notes.append(f"degradation (figure panel a): {degradation.status}: {degradation.measured}")
        return Outcome(numbers, figure, verdict, notes)

    def _figure(self, plots, ctx: Context, results, fractions, ratios):
        seed = ctx.seed_list()[0]
        surfaces, axes = {}, None
        for model in _PAIR:
            folder = ctx.out / "landscapes" / f"{model}-s{seed}"
            if (folder / "landscape.json").exists():
                land = load_landscape(folder)
                surfaces[f"{NETWORKS[model]} (seed {seed})"] = land.values["train_loss"]
                axes = (land.x, land.y)
        bars = {"non-convex fraction": {NETWORKS[m]: float(np.mean(v)) for m, v in fractions.items() if v},
                "|λmin/λmax| at centre": {NETWORKS[m]: float(np.mean(v)) for m, v in ratios.items() if v}}
        if axes is None:
            return plots.training_error_curves(error_curves(results, seed), title="no landscape finished")
        return plots.skip_connection_figure(
            error_curves(results, seed), surfaces, axes[0], axes[1], bars,
            title=f"{ctx.data.get('data', 'fashion-mnist')}: skip connections, budget {ctx.budget}")
