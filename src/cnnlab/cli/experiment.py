"""``cnnlab experiment``: the notes' claims as experiments, each ending in a figure and a measured verdict."""

from __future__ import annotations

import argparse
import sys

from cnnlab.cli._common import UsageError, examples, positive_int, say

__all__ = ["register"]


def _cmd_experiment(args: argparse.Namespace) -> int:
    from cnnlab.experiments.catalogue import get_experiment, list_experiments, run_experiment

    if args.list or not args.name:
        if not args.list:
            say("name an experiment, or --list to see them")
        for cls in list_experiments():
            minutes = ", ".join(f"{b} ~{m:g} min" for b, m in cls.minutes.items())
            print(f"{cls.name:26s} {cls.claim} [{cls.source}; {minutes} on 2 cores]")
        return 0 if args.list else 2
    get_experiment(args.name)  # an unknown name is the first thing to hear about
    if not args.out:
        raise UsageError("give --out DIR: the experiment writes figure.png, results.json and verdict.md there")
    data = {"data": args.data, **({"data_dir": args.data_dir} if args.data_dir else {})}
    outcome = run_experiment(args.name, args.out, budget=args.budget, seeds=args.seeds, data=data,
                             executor=args.executor, workers=args.workers, address=args.address,
                             on_event=_progress)
    print(f"{args.name}: {outcome.verdict.status}\n  {outcome.verdict.measured}")
    say(f"wrote {args.out}/figure.png, results.json, verdict.md")
    return 0


def _progress(kind: str, job, result) -> None:
    if kind == "start":
        print(f"  training {job.key}", file=sys.stderr, flush=True)
    elif kind == "done" and result is not None and result.status != "ok":
        print(f"  {job.key} failed: {result.error}", file=sys.stderr, flush=True)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``experiment``."""
    p = sub.add_parser("experiment", help="rerun a claim of the notes and get a measured verdict",
                       description="The notes' claims as experiments on Fashion-MNIST: each trains what it "
                                   "needs (resumable; finished runs are reused), then writes DIR/figure.png, "
                                   "DIR/results.json (every number) and DIR/verdict.md (holds, does not hold, "
                                   "or inconclusive at this budget, by a rule fixed in its code). "
                                   "Example: cnnlab experiment small-kernels --out runs/small-kernels",
                       **examples("cnnlab experiment --list",
                                  "cnnlab experiment NAME --out runs/NAME --budget quick"))
    p.add_argument("name", nargs="?", help="the experiment (--list shows the catalogue)")
    p.add_argument("--list", action="store_true", help="show the catalogue: claim, source, expected time")
    p.add_argument("--out", metavar="DIR", help="where the runs, figure, numbers and verdict go")
    p.add_argument("--budget", choices=("quick", "full"), default="quick",
                   help="quick: about 10 minutes on 2 cores (subsets, few epochs); full: about an hour")
    p.add_argument("--seeds", type=positive_int, default=3, help="independent runs per setting (default: 3)")
    p.add_argument("--data", default="fashion-mnist", help="data set (default: fashion-mnist)")
    p.add_argument("--data-dir", help="folder holding the data files")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="run the trainings here (local) or as Ray tasks on a cluster (ray)")
    p.add_argument("--workers", type=positive_int, default=1, help="local: parallel training processes (default: 1)")
    p.add_argument("--address", help="ray: cluster address (auto or HOST:PORT; default: a private local Ray)")
    p.set_defaults(func=_cmd_experiment)
