"""Fashion-MNIST test accuracy reached within a wall-time budget by the ``fast`` recipe (median of seeds).

Each goal is a budget and a target test accuracy; the issue's goals on 2 CPU cores are 93.0% within
5 minutes and 94.0% within 15 minutes. A run is ``cnnlab train MODEL --recipe fast --time-budget B``:
the trainer times the first tenth of an epoch and fits the one-cycle schedule, with the test evaluation,
into the budget. The reported accuracy is that of the final model of the schedule, tested once with the
recipe's mirror TTA (the ``fast`` recipe's setting) and once more without it, both reported; nothing is
selected on the test set: the recipe and this network were chosen on a validation split by
``benchmarks/tune_fast_recipe.py``. The budget clock counts the whole ``train()`` call (loading the data,
building the model, training, testing; not Python's import of PyTorch). Precision is pinned (``--amp``)
and recorded; the runs of the goals alternate (seed 0 of every goal, then seed 1, ...), so a machine that
slows down over the hour slows every goal alike, and each goal reports the median of its runs.

The default network is a ResNet-10 at a quarter of ResNet-18's width for 28x28 inputs (``resnet18_cifar``
with one basic block per stage, widths 16/32/64/128: 0.31M parameters, 13.0M MACs). On a CPU the budget
buys epochs: this one trains an epoch in about 46-52 s on 2 cores (83 s on one), so 5 minutes hold 5-6
epochs and 15 minutes 15-18. ResNet-20 (31M MACs, 181 s an epoch on one core) would get 2-3 epochs.

    python benchmarks/time_to_accuracy.py --goals 300:0.93:3 900:0.94:3 --threads 2     # about an hour
    python benchmarks/time_to_accuracy.py --goals 60:0.85:1 --threads 2                    # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from cnnlab.options import parse_options
from cnnlab.train import evaluate_checkpoint, resolve_config, train

DEFAULT_MODEL = "resnet18_cifar"
DEFAULT_MODEL_ARGS = "depths=(1,1,1,1),widths=(16,32,64,128),stem_width=16"
DEFAULT_GOALS = ("300:0.93:3", "900:0.94:1")  # seconds:test accuracy:seeds (the issue's, on 2 CPU cores)


def parse_goal(text: str) -> tuple[float, float, int | None]:
    """``SECONDS:ACCURACY[:SEEDS]`` -> (seconds, accuracy as a fraction, seed count or None)."""
    parts = text.split(":")
    try:
        seconds, accuracy = float(parts[0]), float(parts[1])
        seeds = int(parts[2]) if len(parts) == 3 else None
    except (ValueError, IndexError):
        seconds = accuracy = seeds = None
    if len(parts) > 3 or seconds is None:
        raise argparse.ArgumentTypeError(f"a goal is SECONDS:ACCURACY[:SEEDS], e.g. 300:0.93:3; got {text!r}")
    if accuracy > 1:
        accuracy /= 100  # 93 means 93%
    if seconds <= 0 or not 0 < accuracy < 1 or (seeds is not None and seeds < 1):
        raise argparse.ArgumentTypeError(f"goal {text!r}: needs positive seconds, an accuracy below 1 and seeds >= 1")
    return seconds, accuracy, seeds


def run_once(model: str, model_args: dict, budget: float, seed: int, overrides: dict, workdir: Path) -> dict:
    """One fast-recipe run fitted to ``budget`` seconds of wall time; its test accuracy and timings."""
    out = workdir / f"{model}-{budget:g}s-seed{seed}"
    cfg = resolve_config(
        {
            "recipe": "fast",
            "model": model,
            "model_args": model_args,
            "epochs": 1000,  # an upper bound: the time budget decides
            "time_budget": budget,
            "seed": seed,
            "quiet": True,
            "tensorboard": False,
            "out": str(out),
            **overrides,
        }
    )
    start = time.time()
    results = train(cfg, started=start)
    wall = time.time() - start
    # The same final network once more, without mirror TTA (a report, not a choice: both are printed).
    plain = evaluate_checkpoint(out, tta_flip=False, device="cpu")
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    curve = [json.loads(line) for line in (out / "curve.jsonl").read_text().splitlines()]
    return {
        "seed": seed,
        "test_accuracy": results["test_accuracy"],
        "test_accuracy_without_tta": plain["accuracy"],
        "tta_flip": cfg.tta_flip,
        "precision": results["precision"],
        "wall_seconds": wall,
        "epochs": round(curve[-1]["epoch"], 2) if curve else 0.0,  # a budget's plan may end mid-epoch
        # False when the plan overran the budget and the last epoch was cut short
        "schedule_finished": bool(history) and history[-1]["step"] == results["steps"],
        "epoch_seconds": [round(row["epoch_seconds"], 2) for row in history],
        "images_per_second": results["images_per_second"],
        "params": results["params"],
        "macs": results["macs"],
        "hardware": results["hardware"],
    }


def run_goals(goals: list[tuple[float, float, int]], args: argparse.Namespace, model_args: dict,
              workdir: Path) -> list[dict]:
    """Every goal's runs, alternating: seed 0 of each goal, then seed 1 of each goal, ...; a row per goal."""
    overrides = {k: v for k, v in (("threads", args.threads), ("data_dir", args.data_dir)) if v is not None}
    overrides["amp"] = args.amp
    overrides.update(parse_options(",".join(args.set)) if args.set else {})
    runs: dict[float, list[dict]] = {seconds: [] for seconds, _, _ in goals}
    for seed in args.seeds:
        for seconds, _, n_seeds in goals:
            if len(runs[seconds]) >= n_seeds:
                continue
            run = run_once(args.model, model_args, seconds, seed, overrides, workdir)
            runs[seconds].append(run)
            print(
                f"  {seconds:g} s budget, seed {seed}: {100 * run['test_accuracy']:.2f}% (mirror TTA; "
                f"{100 * run['test_accuracy_without_tta']:.2f}% without) after {run['epochs']:g} epochs in "
                f"{run['wall_seconds']:.0f} s ({run['images_per_second']:,.0f} img/s, {run['precision']})",
                flush=True,
            )
    rows = []
    for seconds, target, _ in goals:
        done = runs[seconds]
        accuracy = statistics.median(r["test_accuracy"] for r in done)
        wall = statistics.median(r["wall_seconds"] for r in done)
        rows.append({
            "budget_seconds": seconds,
            "target_accuracy": target,
            "median_accuracy": accuracy,
            "median_accuracy_without_tta": statistics.median(r["test_accuracy_without_tta"] for r in done),
            "median_wall_seconds": wall,
            "reached": accuracy >= target and wall <= seconds,
            "runs": done,
        })
    return rows


def print_table(rows: list[dict]) -> None:
    print(f"\n{'budget':>8}{'target':>9}{'seeds':>7}{'epochs':>18}{'median acc (TTA)':>18}{'without TTA':>13}"
          f"{'median wall':>13}  goal")
    for r in rows:
        epochs = "/".join(f"{run['epochs']:g}" for run in r["runs"])
        verdict = "reached" if r["reached"] else "missed"
        print(
            f"{r['budget_seconds']:>6.0f} s{100 * r['target_accuracy']:>8.1f}%{len(r['runs']):>7}{epochs:>18}"
            f"{100 * r['median_accuracy']:>17.2f}%{100 * r['median_accuracy_without_tta']:>12.2f}%"
            f"{r['median_wall_seconds']:>11.0f} s  {verdict}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument(
        "--model-args", default=DEFAULT_MODEL_ARGS, help="builder options KEY=VALUE,... ('' for none)"
    )
    parser.add_argument(
        "--goals",
        nargs="+",
        type=parse_goal,
        default=[parse_goal(g) for g in DEFAULT_GOALS],
        help="SECONDS:ACCURACY[:SEEDS] each; default: 300:0.93:3 900:0.94:1",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds, first ones first")
    parser.add_argument(
        "--threads", type=int, default=len(os.sched_getaffinity(0)), help="CPU threads (default: every core)"
    )
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--amp", default="off", choices=("off", "bf16", "auto"),
                        help="precision, pinned (default: off = fp32, as chosen on validation)")
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="further TrainConfig settings, e.g. lr=0.2"
    )
    parser.add_argument("--json", type=Path, default=Path("runs/time_to_accuracy.json"))
    args = parser.parse_args()
    goals = [(s, a, n or len(args.seeds)) for s, a, n in args.goals]
    model_args = parse_options(args.model_args)
    total = sum(s * min(n, len(args.seeds)) for s, _, n in goals)
    print(f"{args.model} {model_args}, fast recipe: about {total / 60:.0f} minutes of runs", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="cnnlab-tta-"))
    try:
        rows = run_goals(goals, args, model_args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print_table(rows)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "model": args.model,
        "model_args": model_args,
        "recipe": "fast",
        "amp": args.amp,
        "cpu_cores": len(os.sched_getaffinity(0)),
        "threads": args.threads,
        "goals": rows,
    }
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results in {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
