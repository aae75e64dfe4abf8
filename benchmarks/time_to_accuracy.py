"""Wall time to a Fashion-MNIST test accuracy with the ``fast`` recipe (median of seeds).

For each epoch budget in ``--epochs`` the recipe's full schedule is run for every seed; the report
gives the median test accuracy and wall time per budget, and the first budget whose median reaches
each target accuracy. Goals on 2 CPU cores: 93.0% within 5 minutes, 94.0% within 15 minutes.

    python benchmarks/time_to_accuracy.py --model resnet20 --epochs 2 4 8 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from cnnlab.train import resolve_config, train

GOALS = ((0.93, 300.0), (0.94, 900.0))  # (test accuracy, seconds) on 2 CPU cores


def run_budget(model: str, epochs: int, seeds: list[int], overrides: dict, workdir: Path) -> dict:
    """The fast recipe for ``epochs`` epochs once per seed: median accuracy and wall time."""
    runs = []
    for seed in seeds:
        cfg = resolve_config(
            {
                "recipe": "fast",
                "model": model,
                "epochs": epochs,
                "seed": seed,
                "quiet": True,
                "tensorboard": False,
                "out": str(workdir / f"{model}-e{epochs}-s{seed}"),
                **overrides,
            }
        )
        results = train(cfg)
        runs.append(
            {
                "seed": seed,
                "test_accuracy": results["test_accuracy"],
                "wall_seconds": results["wall_seconds"],
                "images_per_second": results["images_per_second"],
            }
        )
        print(
            f"  {model} {epochs} epochs seed {seed}: {100 * results['test_accuracy']:.2f}% in "
            f"{results['wall_seconds']:.0f} s",
            flush=True,
        )
    return {
        "model": model,
        "epochs": epochs,
        "runs": runs,
        "median_accuracy": statistics.median(r["test_accuracy"] for r in runs),
        "median_seconds": statistics.median(r["wall_seconds"] for r in runs),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--epochs", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="further TrainConfig overrides, e.g. batch_size=512 lr=0.4",
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in args.set)
    overrides.update(
        {k: v for k, v in (("threads", args.threads), ("data_dir", args.data_dir)) if v is not None}
    )
    workdir = Path(tempfile.mkdtemp(prefix="cnnlab-tta-"))
    try:
        rows = [run_budget(args.model, e, args.seeds, overrides, workdir) for e in sorted(args.epochs)]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n{'epochs':>6}{'median test acc':>17}{'median wall s':>15}")
    for r in rows:
        print(f"{r['epochs']:>6}{100 * r['median_accuracy']:>16.2f}%{r['median_seconds']:>15.0f}")
    for target, limit in GOALS:
        hit = next((r for r in rows if r["median_accuracy"] >= target), None)
        if hit is None:
            print(
                f"{100 * target:.1f}%: not reached (best {100 * max(r['median_accuracy'] for r in rows):.2f}%)"
            )
        else:
            verdict = "within" if hit["median_seconds"] <= limit else "over"
            print(
                f"{100 * target:.1f}%: {hit['median_seconds']:.0f} s at {hit['epochs']} epochs "
                f"({verdict} the {limit / 60:.0f}-minute goal)"
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
