"""Choose the ``fast`` recipe's settings and the time-to-accuracy network on a validation split, never on test.

Each candidate is the fast recipe with one change (or another network), trained with the same wall-time
budget on Fashion-MNIST's training images less 5,000 held out for validation (``--val-split 5000``,
a fixed seeded carve-out); the candidate with the best final validation accuracy wins. The test set is
not read by this script at all: every run is told to skip its final test (``--no-test``). The winner
is then measured once, on the test set, by ``benchmarks/time_to_accuracy.py``.

    python benchmarks/tune_fast_recipe.py --budget 300 --threads 2        # six candidates, about 30 minutes
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from cnnlab.train import resolve_config, train

SMALL_RESNET = {"depths": (1, 1, 1, 1), "widths": (16, 32, 64, 128), "stem_width": 16}
# One change at a time from the fast recipe as it stood (fp32 pinned, so precision is a choice too).
CANDIDATES: dict[str, dict] = {
    "base": {},
    "bf16": {"amp": "bf16"},
    "lr 0.2": {"lr": 0.2},
    "lr 0.05": {"lr": 0.05},
    "random crops (pad 2)": {"crop_padding": 2},
    "resnet20 instead": {"model": "resnet20", "model_args": {}},
}


def run_candidate(name: str, change: dict, budget: float, seed: int, threads: int, data_dir: str | None,
                  workdir: Path, val_split: int = 5000) -> dict:
    """One fast-recipe run fitted to ``budget`` seconds, validated on the held-out training images."""
    settings = {
        "recipe": "fast",
        "model": "resnet18_cifar",
        "model_args": SMALL_RESNET,
        "amp": "off",
        "epochs": 1000,  # an upper bound: the time budget decides
        "time_budget": budget,
        "val_split": val_split,
        "seed": seed,
        "threads": threads,
        "quiet": True,
        "tensorboard": False,
        "test": False,
        "out": str(workdir / name.replace(" ", "_").replace("(", "").replace(")", "")),
        **({"data_dir": data_dir} if data_dir else {}),
        **change,
    }
    start = time.time()
    results = train(resolve_config(settings), started=start)
    history = [json.loads(line) for line in (Path(settings["out"]) / "metrics.jsonl").read_text().splitlines()]
    return {
        "candidate": name,
        "change": change,
        "final_val_accuracy": history[-1]["val_accuracy"],
        "best_val_accuracy": results["best_val_accuracy"],
        "epochs": results["epochs_completed"],
        "wall_seconds": time.time() - start,
        "precision": results["precision"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=300.0, help="seconds per candidate (default: 300)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--data-dir")
    parser.add_argument("--only", nargs="*", help="candidate names to run (default: all)")
    parser.add_argument("--val-split", type=int, default=5000, help="held-out training images (default: 5000)")
    parser.add_argument("--json", type=Path, default=Path("runs/tune_fast_recipe.json"))
    args = parser.parse_args()
    chosen = {k: v for k, v in CANDIDATES.items() if not args.only or k in args.only}
    print(f"{len(chosen)} candidates x {args.budget:g} s, validated on {args.val_split:,} held-out training images",
          flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="cnnlab-tune-"))
    rows = []
    try:
        for name, change in chosen.items():
            row = run_candidate(name, change, args.budget, args.seed, args.threads, args.data_dir, workdir,
                                args.val_split)
            rows.append(row)
            print(f"  {name:24s} validation {100 * row['final_val_accuracy']:.2f}% after {row['epochs']} epochs "
                  f"({row['precision']}, {row['wall_seconds']:.0f} s)", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    best = max(rows, key=lambda r: r["final_val_accuracy"])
    print(f"\nchosen on validation: {best['candidate']} ({100 * best['final_val_accuracy']:.2f}%)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"budget_seconds": args.budget, "seed": args.seed, "threads": args.threads,
                                     "candidates": rows, "chosen": best["candidate"]}, indent=2) + "\n")
    print(f"results in {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
