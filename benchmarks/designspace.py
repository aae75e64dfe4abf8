"""Design spaces compared on Fashion-MNIST: AnyNetX_A against AnyNetX_E (and RegNetX), sweep throughput, Ray's cost.

Radosavovic et al. 2020 (Fig. 5 and 7) find AnyNetX_E at least as good as AnyNetX_A with a tighter error
distribution: the constraints (shared bottleneck ratio and group width, non-decreasing widths and depths)
cut the space by orders of magnitude without losing its good networks. This benchmark samples each space
at the small-image scale (docs/designspace.md: stride-1 stem, widths / 4, the paper's 360-400 MF regime
scaled to 1.41-1.56 M MACs at 28x28), trains every sample with one short recipe, and reports:

- the error EDFs (plain and complexity-normalized) of the spaces on one figure, and whether the paper's
  ordering holds here: E's normalized mean error <= A's and E's normalized spread < A's;
- per space: error against its parameters, the best networks' widths with the linear and quantized RegNet
  fits (e_fit), and the top-decile verdict on non-decreasing widths and depths;
- the rank check on AnyNetX_A: 12 networks trained 3x longer; Spearman's rho against the short training;
- throughput: the same networks trained with 1 worker (2 threads) and with 2 workers (1 thread each),
  as trials per hour;
- Ray's overhead: the round trip of an empty Ray task (median of 50), and the extra wall time per trial
  of a few trials through Ray (num_cpus=1) over the same trials in this process, both on one thread.

Sizes (the full run): 64 samples per space; Fashion-MNIST training subset of 15,000 images plus 5,000
for validation (the errors are validation errors), 2 epochs, batch 128, SGD lr 0.1 with a cosine
schedule, weight decay 5e-5. On 2 cores with 2 workers (one thread each) a trial takes 10-40 s with the
data loading and the (report-only) test evaluation: about 15 minutes a space, and the whole benchmark
about an hour (measured: 15-16 minutes a space, 62 minutes in all). ``--quick`` (4 samples, 1,000 + 500
images, 1 epoch) takes a minute and only checks that everything runs; its numbers mean nothing. A killed
run restarts where it stopped (the sweeps are resumable; the throughput and Ray parts run again).

    python benchmarks/designspace.py --out benchmarks/results/designspace
    python benchmarks/designspace.py --quick --out /tmp/ds-quick

Writes to --out: sweeps/<space>/ (resumable sweeps), edf.png, <space>/parameters.png, <space>/widths.png,
<space>/analysis.json, ranks.png, results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cnnlab.experiments.designspace import (
    ImageScale,
    TrainPlan,
    analyze_sweep,
    compare_sweeps,
    create_sweep,
    rank_check,
    run_sweep,
)
from cnnlab.experiments.designspace.analysis import ordering_verdict
from cnnlab.experiments.designspace.sweep import load_samples
from cnnlab.files import write_json_atomic

SPACES = ("anynetx_a", "anynetx_e", "regnetx")


@dataclass(frozen=True)
class Sizes:
    """How big the benchmark is: samples per space, data, epochs, and the side measurements' sizes."""

    samples: int
    subset: int
    val: int
    epochs: int
    throughput_trials: int
    ray_trials: int
    ray_noop_calls: int
    rank_models: int
    rank_epochs: int


FULL = Sizes(samples=64, subset=15_000, val=5_000, epochs=2, throughput_trials=8, ray_trials=4, ray_noop_calls=50,
             rank_models=12, rank_epochs=6)
QUICK = Sizes(samples=4, subset=1_000, val=500, epochs=1, throughput_trials=2, ray_trials=2, ray_noop_calls=10,
              rank_models=3, rank_epochs=2)


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def say(text: str) -> None:
    print(f"[designspace] {text}", flush=True)


def progress(name: str):
    def on_event(kind, job, result) -> None:
        if kind == "done":
            error = (f"{100 * (1 - result.result['best_val_accuracy']):.2f}%" if result.status == "ok"
                     else f"failed: {result.error}")
            say(f"{name} {job.key}: {error} in {result.seconds:.1f} s")

    return on_event


def plan(sizes: Sizes, data_dir: str | None, threads: int, **kw: Any) -> TrainPlan:
    return TrainPlan(**{"epochs": sizes.epochs, "subset": sizes.subset, "val": sizes.val, "data_dir": data_dir,
                        "device": "cpu", "settings": {"threads": threads}, **kw})


def timed_run(sweep: Path, train_plan: TrainPlan, label: str, **kw: Any) -> tuple[float, int]:
    """Wall seconds and finished trials of one fresh training of a sweep (an old one is removed first)."""
    shutil.rmtree(sweep / f"runs-{label}", ignore_errors=True)
    start = time.perf_counter()
    results = run_sweep(sweep, train_plan, label=label, on_event=progress(label), **kw)
    return time.perf_counter() - start, sum(r.status == "ok" for r in results)


def throughput(out: Path, sizes: Sizes, data_dir: str | None, total_threads: int) -> dict[str, Any]:
    """Trials per hour of the same networks with 1 worker (all threads) and 2 workers (half each)."""
    sweep = out / "sweeps" / "throughput"
    create_sweep(sweep, "anynetx_a", sizes.throughput_trials, seed=1)
    rows = {}
    for workers in (1, 2):
        threads = max(1, total_threads // workers)
        wall, ok = timed_run(sweep, plan(sizes, data_dir, threads), f"w{workers}", workers=workers)
        rows[f"workers_{workers}"] = {"workers": workers, "threads_each": threads, "trials": ok,
                                      "wall_seconds": wall, "trials_per_hour": 3600 * ok / wall}
    rows["speedup_2_over_1"] = rows["workers_2"]["trials_per_hour"] / rows["workers_1"]["trials_per_hour"]
    return rows


def _noop() -> None:
    """An empty Ray task: its round trip is Ray's own cost per task."""


def ray_overhead(out: Path, sizes: Sizes, data_dir: str | None) -> dict[str, Any]:
    """An empty task's round trip, and the extra wall time per real trial through Ray, one thread each."""
    try:
        import ray
    except ImportError:
        return {"skipped": "ray is not installed (pip install 'cnnlab[ray]')"}
    sweep = out / "sweeps" / "ray"
    create_sweep(sweep, "anynetx_a", sizes.ray_trials, seed=2)
    one_thread = plan(sizes, data_dir, 1)
    local_wall, local_ok = timed_run(sweep, one_thread, "local")
    start = time.perf_counter()
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    init_seconds = time.perf_counter() - start
    try:
        noop = ray.remote(_noop)
        ray.get(noop.remote())  # the first call starts a worker process
        trips = []
        for _ in range(sizes.ray_noop_calls):
            t = time.perf_counter()
            ray.get(noop.remote())
            trips.append(time.perf_counter() - t)
        ray_wall, ray_ok = timed_run(sweep, one_thread, "ray", executor="ray")
    finally:
        ray.shutdown()
    return {"ray_init_seconds": init_seconds, "noop_task_round_trip_ms": 1000 * statistics.median(trips),
            "trials": ray_ok, "local_wall_seconds": local_wall, "ray_wall_seconds": ray_wall,
            "extra_seconds_per_trial": (ray_wall - local_wall) / max(ray_ok, 1),
            "note": "extra seconds per trial include the Ray worker's one-time import of torch and cnnlab, "
                    "amortized over these trials"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="benchmarks/results/designspace")
    parser.add_argument("--quick", action="store_true", help="a few samples and images: checks that it runs")
    parser.add_argument("--data-dir", help="folder holding Fashion-MNIST (else found as cnnlab train finds it)")
    parser.add_argument("--workers", type=int, default=2, help="workers of the main sweeps (default: 2)")
    parser.add_argument("--threads", type=int, default=cores(), help="cores to use in all (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the samples")
    parser.add_argument("--spaces", nargs="+", default=list(SPACES), choices=SPACES,
                        help="spaces to sweep (default: all three; AnyNetX_A and _E are always among them)")
    args = parser.parse_args()
    spaces = tuple(dict.fromkeys(("anynetx_a", "anynetx_e", *args.spaces)))
    sizes = QUICK if args.quick else FULL
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    threads_each = max(1, args.threads // args.workers)
    results: dict[str, Any] = {
        "sizes": sizes.__dict__, "quick": args.quick, "spaces": spaces, "seed": args.seed,
        "macs_range": list(ImageScale().paper_regime()), "workers": args.workers, "threads_each": threads_each,
        "environment": {"python": platform.python_version(), "torch": torch.__version__, "cores": cores(),
                        "processor": platform.processor() or platform.machine()},
    }
    sweeps = []
    space_walls = {}
    for space in spaces:
        sweep = out / "sweeps" / space
        create_sweep(sweep, space, sizes.samples, seed=args.seed)
        start = time.perf_counter()
        run_sweep(sweep, plan(sizes, args.data_dir, threads_each), workers=args.workers,
                  on_event=progress(space))
        space_walls[space] = time.perf_counter() - start
        sweeps.append(sweep)
        say(f"{space}: {len(load_samples(sweep)[1])} networks in {space_walls[space]:.0f} s")
    results["space_wall_seconds"] = space_walls
    compared = compare_sweeps(sweeps, out / "edf.png")
    results["edf"] = {"bins": compared["bins"], "spaces": compared["spaces"]}
    by_space = {s["space"]: s for s in compared["spaces"]}
    results["ordering"] = ordering_verdict(by_space["anynetx_a"], by_space["anynetx_e"], ("AnyNetX_A", "AnyNetX_E"))
    say(results["ordering"]["text"])
    results["analysis"] = {}
    for space, sweep in zip(spaces, sweeps):
        report = analyze_sweep(sweep, out / space)
        results["analysis"][space] = {"principles": report["principles"],
                                      "width_fits": [{"key": f["key"], "linear_e_fit": f["linear"]["e_fit"],
                                                      "quantized_e_fit": f["quantized"]["e_fit"],
                                                      "quantized": {k: f["quantized"][k] for k in
                                                                    ("w_0", "w_a", "w_m")}}
                                                     for f in report["width_fits"]]}
    check = rank_check(sweeps[0], sizes.rank_epochs, sizes.rank_models, out / "ranks.png",
                       workers=args.workers, on_event=progress("rank"))
    results["rank_check"] = {k: v for k, v in check.items() if k not in ("short", "long")}
    say(check["text"])
    results["throughput"] = throughput(out, sizes, args.data_dir, args.threads)
    say(f"trials/hour: 1 worker {results['throughput']['workers_1']['trials_per_hour']:.0f}, "
        f"2 workers {results['throughput']['workers_2']['trials_per_hour']:.0f}")
    results["ray"] = ray_overhead(out, sizes, args.data_dir)
    say(f"ray: {json.dumps(results['ray'])}")
    write_json_atomic(out / "results.json", results)
    say(f"wrote {out / 'results.json'}")


if __name__ == "__main__":
    main()
