"""Comparing design spaces by their error distributions, and the notes' principles as measured verdicts.

- The error EDF (Radosavovic et al. 2019, "On Network Design Spaces for Visual Recognition", Eq. 1):
  F(e) = (1/n) sum_i 1[e_i < e], the fraction of a space's networks with error below e. Its
  complexity-normalized form weights network i by w_i = 1 / (B * n_b(i)), where n_b(i) networks share
  i's complexity bin and B bins are occupied: every occupied bin then carries weight 1/B, so spaces
  whose samples fall differently over the MAC range compare as if their complexities were alike.
- The paper's Fig. 8 analysis: a network's per-block widths w_j against a line u_j = w_0 + w_a j
  and against the quantized RegNet widths of the (w_0, w_a, w_m) found by grid search,
  each with its fit error e_fit = mean_j |log(w_j / w_j^fit)| (both fitted by grid search on e_fit).
- Verdicts decided by rules fixed here before any sweep ran: the notes' "d_{i+1} >= d_i and
  c_{i+1} >= c_i" holds when the best tenth of a space has non-decreasing widths (depths) more often
  than the whole space, by a one-sided hypergeometric test at 5%; "partial metrics are sufficient"
  holds when the Spearman correlation between the errors after a short and a longer training is at
  least 0.5 and a one-sided permutation test puts it above zero at 5%.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from cnnlab.errors import ConfigError
from cnnlab.experiments.designspace.spaces import get_space
from cnnlab.experiments.designspace.sweep import Trial
from cnnlab.models.regnet import regnet_block_widths

__all__ = [
    "RANK_AGREEMENT",
    "SIGNIFICANCE",
    "TOP_FRACTION",
    "complexity_bins",
    "complexity_weights",
    "edf",
    "edf_at",
    "edf_curve",
    "fit_linear_widths",
    "fit_quantized_widths",
    "monotone_verdict",
    "ordering_verdict",
    "parameter_panels",
    "rank_verdict",
    "space_summary",
    "spearman",
    "trend",
    "width_fits",
]

TOP_FRACTION = 0.1  # "the top decile"
RANK_AGREEMENT = 0.5  # smallest Spearman correlation that counts as a short training ranking like a long one
SIGNIFICANCE = 0.05
PERMUTATIONS = 10_000


def _weights(n: int, weights: Sequence[float] | None) -> np.ndarray:
    if weights is None:
        return np.full(n, 1.0 / n)
    w = np.asarray(weights, dtype=float)
    if w.shape != (n,):
        raise ConfigError(f"{n} errors need {n} weights, got {w.shape}")
    return w


def edf_at(errors: Sequence[float], e: float, weights: Sequence[float] | None = None) -> float:
    """F(e): the (weighted) fraction of errors strictly below ``e``."""
    err = np.asarray(errors, dtype=float)
    return float(np.sum(_weights(len(err), weights)[err < e]))


def edf(errors: Sequence[float], weights: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The EDF's steps: the distinct errors x_k in order and F just past each, sum of w_i over e_i <= x_k.

    F is 0 left of x_0 and jumps at every x_k (a step plot "where=post" from (x_k, y_k) draws it).
    """
    err = np.asarray(errors, dtype=float)
    if err.size == 0:
        return np.empty(0), np.empty(0)
    w = _weights(len(err), weights)
    order = np.argsort(err, kind="stable")
    x, start = np.unique(err[order], return_index=True)
    cumulative = np.cumsum(w[order])
    ends = np.append(start[1:], len(err)) - 1  # last index of each distinct value
    return x, cumulative[ends]


def complexity_bins(macs: Sequence[float], bins: int) -> np.ndarray:
    """``bins`` log-spaced MAC bins covering every value in ``macs`` (pool all spaces for a fair comparison)."""
    values = np.asarray(macs, dtype=float)
    if values.size == 0 or bins < 1:
        raise ConfigError("complexity bins need at least one MAC count and one bin")
    lo, hi = float(values.min()), float(values.max())
    if lo == hi:
        return np.array([lo * 0.999, hi * 1.001])
    return np.geomspace(lo, hi * (1 + 1e-9), bins + 1)


def complexity_weights(macs: Sequence[float], edges: Sequence[float]) -> np.ndarray:
    """w_i = 1 / (B * n_b(i)): every occupied bin gets 1/B, shared equally by its networks; sums to 1."""
    values = np.asarray(macs, dtype=float)
    edges = np.asarray(edges, dtype=float)
    if np.any(values < edges[0]) or np.any(values > edges[-1]):
        raise ConfigError("every MAC count must lie inside the complexity bins")
    index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    counts = np.bincount(index, minlength=len(edges) - 1)
    occupied = int(np.count_nonzero(counts))
    return 1.0 / (occupied * counts[index])


def _ok(trials: Sequence[Trial]) -> list[Trial]:
    return [t for t in trials if t.status == "ok" and t.error is not None and math.isfinite(t.error)]


def edf_curve(label: str, trials: Sequence[Trial], edges: Sequence[float] | None = None) -> dict[str, Any]:
    """What the EDF figure draws for one space: label, n, min and mean error (%), the steps, and, given
    complexity bins, the normalized steps with the weighted mean."""
    ok = _ok(trials)
    if not ok:
        raise ConfigError(f"{label}: no trained network to draw (every trial failed or is pending)")
    errors = np.array([100 * t.error for t in ok])
    x, y = edf(errors)
    curve = {"label": label, "n": len(ok), "failed": sum(t.status == "failed" for t in trials),
             "min": float(errors.min()), "mean": float(errors.mean()), "x": x.tolist(), "y": y.tolist()}
    if edges is not None:
        w = complexity_weights([t.sample.macs for t in ok], edges)
        xn, yn = edf(errors, w)
        curve.update(x_norm=xn.tolist(), y_norm=yn.tolist(), mean_norm=float(np.sum(w * errors)))
    return curve


def space_summary(trials: Sequence[Trial], edges: Sequence[float] | None = None) -> dict[str, Any]:
    """n, failures, pending, and the error's min, mean and standard deviation (%), plain and normalized."""
    ok = _ok(trials)
    errors = np.array([100 * t.error for t in ok])
    out: dict[str, Any] = {"n": len(ok), "failed": sum(t.status == "failed" for t in trials),
                           "pending": sum(t.status == "pending" for t in trials)}
    if not ok:
        return out
    out.update(min=float(errors.min()), mean=float(errors.mean()), std=float(errors.std()),
               median=float(np.median(errors)))
    if edges is not None:
        w = complexity_weights([t.sample.macs for t in ok], edges)
        mean = float(np.sum(w * errors))
        out.update(mean_norm=mean, std_norm=float(math.sqrt(np.sum(w * (errors - mean) ** 2))))
    return out


def ordering_verdict(first: Mapping[str, Any], second: Mapping[str, Any], names: tuple[str, str]) -> dict[str, Any]:
    """The paper's ordering: is ``second`` (e.g. AnyNetX_E) at least as good as ``first`` (A), at lower
    spread? Complexity-normalized means and standard deviations when present, else plain."""
    key = "_norm" if "mean_norm" in first and "mean_norm" in second else ""
    mean_a, mean_b = first[f"mean{key}"], second[f"mean{key}"]
    std_a, std_b = first[f"std{key}"], second[f"std{key}"]
    holds = mean_b <= mean_a and std_b < std_a
    a, b = names
    return {"holds": bool(holds), "normalized": bool(key), "mean": [mean_a, mean_b], "std": [std_a, std_b],
            "text": f"{b} {'is' if holds else 'is not'} at least as good as {a} at lower spread: mean error "
                    f"{mean_b:.2f}% vs {mean_a:.2f}%, std {std_b:.2f} vs {std_a:.2f}"
                    f"{' (complexity-normalized)' if key else ''}"}


def trend(x: Sequence[float], y: Sequence[float], bins: int = 6, log: bool = True) -> tuple[list[float], list[float]]:
    """A robust trend of y against x: the median y in ``bins`` bins of equal counts, at each bin's
    (geometric, for ``log``) mean x."""
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xs.size == 0:
        return [], []
    order = np.argsort(xs, kind="stable")
    centers, medians = [], []
    for part in np.array_split(order, min(bins, xs.size)):
        if part.size == 0:
            continue
        px = xs[part]
        centers.append(float(np.exp(np.mean(np.log(px)))) if log and np.all(px > 0) else float(np.mean(px)))
        medians.append(float(np.median(ys[part])))
    return centers, medians


def parameter_panels(trials: Sequence[Trial]) -> list[dict[str, Any]]:
    """Error (%) against each of the space's parameters and MACs, with a trend, one panel per parameter."""
    ok = _ok(trials)
    if not ok:
        raise ConfigError("no trained network to plot")
    space = get_space(ok[0].sample.space)
    table = [space.parameters(t.sample.point, t.sample.config) for t in ok]
    errors = [100 * t.error for t in ok]
    panels = []
    bins = min(8, max(1, len(ok) // 8))  # about eight networks per trend point
    macs = "MACs (millions)"
    for name in [*table[0], macs]:
        x = [row[name] for row in table] if name != macs else [t.sample.macs / 1e6 for t in ok]
        log = min(x) > 0 and max(x) / min(x) >= 10
        tx, ty = trend(x, errors, bins, log=log)
        panels.append({"name": name, "x": x, "y": errors, "trend_x": tx, "trend_y": ty, "log": log})
    return panels


def _e_fit(observed: Sequence[float], fitted: Sequence[float]) -> float:
    o, f = np.asarray(observed, dtype=float), np.asarray(fitted, dtype=float)
    return float(np.mean(np.abs(np.log(o / f))))


def fit_linear_widths(block_widths: Sequence[int], steps: int = 200) -> dict[str, Any]:
    """The line u_j = w_0 + w_a j (w_0 > 0, w_a >= 0) of least e_fit through the per-block widths, by grid
    search: the objective the paper scores fits with, and a line that stays positive where least squares
    on small early widths would cross zero."""
    w = np.asarray(block_widths, dtype=float)
    depth = len(w)
    j = np.arange(depth, dtype=float)
    w_0s = np.linspace(w.max() / steps, w.max(), steps)
    w_as = np.linspace(0.0, 2 * w.max() / max(depth - 1, 1), steps)
    lines = w_0s[:, None, None] + w_as[None, :, None] * j  # (W0, A, D)
    errors = np.mean(np.abs(np.log(w) - np.log(lines)), axis=-1)
    a, b = np.unravel_index(int(np.argmin(errors)), errors.shape)
    w_0, w_a = float(w_0s[a]), float(w_as[b])
    line = w_0 + w_a * j
    return {"w_0": w_0, "w_a": w_a, "widths": line.tolist(), "e_fit": _e_fit(w, line)}


def fit_quantized_widths(block_widths: Sequence[int], quantum: int = 8, w_a_steps: int = 96,
                         w_m_grid: Sequence[float] | None = None) -> dict[str, Any]:
    """The RegNet (w_0, w_a, w_m) whose quantized widths best match the per-block widths (least e_fit),
    by grid search as in the paper's Fig. 8: w_0 over multiples of ``quantum``, w_a over [0, 2 max(w)/d],
    w_m over [1.5, 3] in steps of 0.01. The winner is recomputed with ``regnet_block_widths`` itself."""
    w = np.asarray(block_widths, dtype=float)
    depth = len(w)
    j = np.arange(depth, dtype=float)
    w_ms = np.asarray(w_m_grid if w_m_grid is not None else np.round(np.arange(1.5, 3.0001, 0.01), 2))
    w_as = np.linspace(0.0, 2 * w.max() / max(depth - 1, 1), w_a_steps)
    log_w = np.log(w)
    best = (math.inf, 0.0, 0.0, 0.0)
    for w_0 in range(quantum, int(math.ceil(w.max() / quantum)) * quantum + 1, quantum):
        u = w_0 + w_as[:, None] * j[None, :]  # (A, D)
        k = np.round(np.log(u / w_0)[:, None, :] / np.log(w_ms)[None, :, None])  # (A, M, D)
        fitted = np.maximum(np.round(w_0 * w_ms[None, :, None] ** k / quantum) * quantum, quantum)
        errors = np.mean(np.abs(np.log(fitted) - log_w), axis=-1)  # (A, M)
        a, m = np.unravel_index(int(np.argmin(errors)), errors.shape)
        if errors[a, m] < best[0] - 1e-12:
            best = (float(errors[a, m]), float(w_0), float(w_as[a]), float(w_ms[m]))
    _, w_0, w_a, w_m = best
    widths = regnet_block_widths(int(w_0), w_a, w_m, depth, quantum)
    return {"w_0": int(w_0), "w_a": w_a, "w_m": w_m, "widths": widths, "e_fit": _e_fit(w, widths)}


def width_fits(trials: Sequence[Trial], top: int = 3) -> list[dict[str, Any]]:
    """The ``top`` best networks' per-block widths with their linear and quantized fits."""
    best = sorted(_ok(trials), key=lambda t: t.error)[:top]
    return [{"label": f"{t.sample.key}: {100 * t.error:.2f}% error", "key": t.sample.key,
             "block_widths": t.sample.block_widths, "linear": fit_linear_widths(t.sample.block_widths),
             "quantized": fit_quantized_widths(t.sample.block_widths)} for t in best]


def _nondecreasing(values: Sequence[float]) -> bool:
    return all(b >= a for a, b in zip(values, values[1:]))


def _hypergeometric_tail(population: int, successes: int, draws: int, observed: int) -> float:
    """P(X >= observed) for X the successes among ``draws`` taken without replacement."""
    total = math.comb(population, draws)
    top = min(draws, successes)
    return sum(math.comb(successes, i) * math.comb(population - successes, draws - i)
               for i in range(observed, top + 1)) / total


def monotone_verdict(trials: Sequence[Trial], fraction: float = TOP_FRACTION) -> dict[str, Any]:
    """Do the best tenth have non-decreasing widths (depths) more often than the whole space?"""
    ok = sorted(_ok(trials), key=lambda t: t.error)
    if len(ok) < 2:
        raise ConfigError("the top-decile verdict needs at least two trained networks")
    n_top = max(1, math.ceil(fraction * len(ok)))
    out: dict[str, Any] = {"n": len(ok), "n_top": n_top}
    for what in ("widths", "depths"):
        flags = [_nondecreasing(getattr(t.sample.config, what)) for t in ok]
        k_all, k_top = sum(flags), sum(flags[:n_top])
        share_all, share_top = k_all / len(ok), k_top / n_top
        if k_all == len(ok):
            verdict, p = "by construction: every network of the space has them", 1.0
        else:
            p = _hypergeometric_tail(len(ok), k_all, n_top, k_top)
            if share_top > share_all and p < SIGNIFICANCE:
                verdict = "supported"
            elif share_top > share_all:
                verdict = "leaning, not significant"
            else:
                verdict = "not supported"
        out[what] = {"share_top": share_top, "share_all": share_all, "k_top": k_top, "k_all": k_all,
                     "p_value": p, "verdict": verdict}
    return out


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=float)
    ranks[order] = np.arange(1, len(values) + 1)
    for v in np.unique(values):
        tied = values == v
        ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation (Pearson's on average ranks)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(x) != len(y) or len(x) < 2:
        raise ConfigError("Spearman's correlation needs two equally long lists of at least two values")
    rx, ry = _ranks(x), _ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = math.sqrt(float(np.sum(rx**2) * np.sum(ry**2)))
    return float(np.sum(rx * ry) / denom) if denom > 0 else 0.0


def rank_verdict(short: Sequence[Trial], long: Sequence[Trial], seed: int = 0) -> dict[str, Any]:
    """Does a short training rank the networks as a longer one does? Spearman over those trained both ways."""
    short_err = {t.sample.key: t.error for t in _ok(short)}
    long_err = {t.sample.key: t.error for t in _ok(long)}
    keys = sorted(set(short_err) & set(long_err))
    if len(keys) < 3:
        raise ConfigError(f"the rank check needs at least 3 networks trained both ways, found {len(keys)}")
    a = np.array([short_err[k] for k in keys])
    b = np.array([long_err[k] for k in keys])
    rho = spearman(a, b)
    # Permutation test: Pearson's correlation of the ranks with the long-training ranks shuffled.
    ra, rb = _ranks(a) - (len(a) + 1) / 2, _ranks(b) - (len(b) + 1) / 2
    shuffled = np.random.default_rng(seed).permuted(np.tile(rb, (PERMUTATIONS, 1)), axis=1)
    denom = math.sqrt(float(np.sum(ra**2) * np.sum(rb**2))) or 1.0
    at_least = int(np.sum(shuffled @ ra / denom >= rho - 1e-12))
    p = (at_least + 1) / (PERMUTATIONS + 1)
    holds = rho >= RANK_AGREEMENT and p < SIGNIFICANCE
    return {"keys": keys, "short": (100 * a).tolist(), "long": (100 * b).tolist(), "rho": rho, "p_value": p,
            "n": len(keys), "holds": bool(holds),
            "text": f"Spearman rho {rho:.2f} over {len(keys)} networks (permutation p = {p:.4f}): partial "
                    f"metrics {'are' if holds else 'are not shown to be'} sufficient by the rule "
                    f"rho >= {RANK_AGREEMENT} and p < {SIGNIFICANCE}"}
