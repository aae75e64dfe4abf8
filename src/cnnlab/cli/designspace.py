"""``cnnlab designspace``: sample a design space, train the samples briefly, compare spaces by their EDFs."""

from __future__ import annotations

import argparse
import json

from cnnlab.cli._common import examples, say

__all__ = ["register"]

EXAMPLES = """examples:
  cnnlab designspace sample --space anynetx_a --n 100 --seed 0 --out sweeps/a
  cnnlab designspace run sweeps/a --epochs 2 --subset 20000 --workers 2
  cnnlab designspace run sweeps/a --epochs 2 --subset 20000 --executor ray --address auto
  cnnlab designspace plot sweeps/a sweeps/e --out edf.png
  cnnlab designspace analyze sweeps/a --out sweeps/a/analysis
  cnnlab designspace rankcheck sweeps/a --epochs 8 --models 16 --out ranks.png
"""


def _progress(total: int):
    """An on_event callback that says each finished trial on stderr."""
    from cnnlab.experiments.jobs import BUSY

    done = [0]

    def on_event(kind: str, job, result) -> None:
        if kind == "skip":
            done[0] += 1
        elif kind == "done":
            done[0] += 1
            if result.status == "ok" and result.result.get("best_val_accuracy") is not None:
                what = f"{100 * (1 - result.result['best_val_accuracy']):.2f}% validation error"
            elif result.status == BUSY:
                what = f"left for a later restart ({result.error})"
            else:
                what = f"failed ({result.error})"
            say(f"[{done[0]}/{total}] {job.key}: {what} in {result.seconds:.0f} s")

    return on_event


def _cmd_spaces(args: argparse.Namespace) -> int:
    from cnnlab.experiments.designspace import SPACES, ImageScale

    scale = ImageScale()
    rows = [{"name": s.name, "title": s.title, "description": s.description} for s in SPACES.values()]
    if args.format == "json":
        print(json.dumps({"spaces": rows, "default_macs": list(scale.paper_regime())}, indent=2))
        return 0
    for row in rows:
        print(f"{row['name']:<10} {row['title']:<10} {row['description']}")
    lo, hi = scale.paper_regime()
    print(f"\ndefault MAC range at 28x28: {lo / 1e6:.2f}M:{hi / 1e6:.2f}M (the paper's 360-400 MF, scaled)")
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    from cnnlab.experiments.designspace import ImageScale, create_sweep, parse_macs_range

    scale = ImageScale(image_size=args.image_size, in_chans=args.in_chans, num_classes=args.num_classes,
                       width_scale=args.width_scale, stem_stride=args.stem_stride)
    macs = parse_macs_range(args.macs) if args.macs else None
    samples = create_sweep(args.out, args.space, args.n, macs, args.seed, scale)
    lo = min(s.macs for s in samples)
    hi = max(s.macs for s in samples)
    print(f"{len(samples)} {samples[0].space} networks, {lo / 1e6:.2f}M-{hi / 1e6:.2f}M MACs, in "
          f"{args.out}/samples.jsonl")
    return 0


def _plan(args: argparse.Namespace):
    from cnnlab.experiments.designspace import TrainPlan
    from cnnlab.options import parse_options

    return TrainPlan(epochs=args.epochs, data=args.data, data_dir=args.data_dir, subset=args.subset, val=args.val,
                     batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=args.device,
                     download=args.download, settings=parse_options(args.set))


def _cmd_run(args: argparse.Namespace) -> int:
    from cnnlab.experiments.designspace import run_sweep
    from cnnlab.experiments.designspace.sweep import load_samples
    from cnnlab.experiments.jobs import BUSY

    total = len(load_samples(args.sweep)[1])
    results = run_sweep(args.sweep, _plan(args), label=args.label, executor=args.executor, workers=args.workers,
                        address=args.address, on_event=_progress(total))
    ok = sum(r.status == "ok" for r in results)
    busy = sum(r.status == BUSY for r in results)
    left = f", {busy} held by another process (rerun this command once it has stopped)" if busy else ""
    print(f"{ok} of {len(results)} networks trained, {len(results) - ok - busy} failed{left}; record in "
          f"{args.sweep}/runs-{args.label or _plan(args).label}/results.jsonl")
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from cnnlab.experiments.designspace import compare_sweeps

    report = compare_sweeps(args.sweeps, args.out, args.label, args.bins)
    if args.format == "json":
        print(json.dumps({k: v for k, v in report.items() if k != "curves"}, indent=2))
    else:
        for s in report["spaces"]:
            print(f"{s['title']:<10} n={s['n']:<4} failed={s['failed']:<3} min {s['min']:.2f}%  mean "
                  f"{s['mean']:.2f}%  std {s['std']:.2f}  normalized mean {s['mean_norm']:.2f}%  "
                  f"({s['training']})")
        print(f"figure: {args.out}")
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    from cnnlab.experiments.designspace import analyze_sweep

    report = analyze_sweep(args.sweep, args.out, args.label, args.top)
    for what in ("widths", "depths"):
        v = report["principles"][what]
        print(f"non-decreasing {what}: {100 * v['share_top']:.0f}% of the top {report['principles']['n_top']} vs "
              f"{100 * v['share_all']:.0f}% of all {report['principles']['n']} (p = {v['p_value']:.3f}): "
              f"{v['verdict']}")
    for fit in report["width_fits"]:
        print(f"{fit['key']}: linear e_fit {fit['linear']['e_fit']:.3f}, quantized e_fit "
              f"{fit['quantized']['e_fit']:.3f} (w_0={fit['quantized']['w_0']}, w_a={fit['quantized']['w_a']:.1f}, "
              f"w_m={fit['quantized']['w_m']:.2f})")
    print(f"figures and analysis.json in {args.out}")
    return 0


def _cmd_rankcheck(args: argparse.Namespace) -> int:
    from cnnlab.experiments.designspace import rank_check

    check = rank_check(args.sweep, args.epochs, args.models, args.out, args.label, args.seed, args.executor,
                       args.workers, args.address, on_event=_progress(args.models))
    print(check["text"])
    return 0


def _add_executor(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("where the trials run")
    g.add_argument("--workers", type=int, default=1,
                   help="local worker processes, the cores shared equally (default: 1, in this process)")
    g.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local process pool, or Ray (pip install 'cnnlab[ray]'): one Ray task per trial")
    g.add_argument("--address", help="Ray cluster to join: auto or HOST:PORT (default: start a private one)")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``designspace`` and its subcommands."""
    parser = sub.add_parser(
        "designspace", help="sample, train and compare design spaces (AnyNetX_A..E, RegNet)",
        description="Design-space exploration after Radosavovic et al. 2020: sample networks of a space under "
                    "a MAC range, train each briefly with one recipe (resumable, local pool or Ray), compare "
                    "spaces by their error EDFs and test the notes' principles. See docs/designspace.md.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    ds = parser.add_subparsers(dest="designspace_command", metavar="STEP", required=True)

    p = ds.add_parser("spaces", help="list the design spaces", **examples("cnnlab designspace spaces"))
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=_cmd_spaces)

    p = ds.add_parser("sample", help="sample networks of a space under a MAC range into a sweep folder",
                      **examples("cnnlab designspace sample --space anynetx_a --n 100 --macs 1.4M:1.6M --out sweeps/a"))
    p.add_argument("--space", required=True, help="anynetx_a ... anynetx_e, regnet, regnetx, regnety")
    p.add_argument("--n", type=int, required=True, help="networks to sample")
    p.add_argument("--macs", metavar="LOW:HIGH", help="MAC range, e.g. 5M:10M (default: the paper's 360-400 MF "
                                                      "regime scaled to the image size)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="sweep folder")
    g = p.add_argument_group("scale to small images")
    g.add_argument("--image-size", type=int, default=28, help="input side (default: 28)")
    g.add_argument("--in-chans", type=int, default=1, help="input channels (default: 1)")
    g.add_argument("--num-classes", type=int, default=10, help="classes (default: 10)")
    g.add_argument("--width-scale", type=float, default=0.25, help="multiplies the paper's widths (default: 1/4)")
    g.add_argument("--stem-stride", type=int, default=1, choices=(1, 2), help="stem stride (default: 1)")
    p.set_defaults(func=_cmd_sample)

    p = ds.add_parser("run", help="train every sample of a sweep with one short recipe (resumable)",
                      **examples("cnnlab designspace run sweeps/a --epochs 2 --subset 15000 --workers 2",
                                 "cnnlab designspace run sweeps/a --epochs 2 --executor ray --address auto"))
    p.add_argument("sweep", help="sweep folder")
    _add_training(p)
    p.add_argument("--label", help="name of this training (default: e<EPOCHS>[-n<SUBSET>])")
    _add_executor(p)
    p.set_defaults(func=_cmd_run)

    p = ds.add_parser("plot", help="error EDFs of several sweeps, plain and complexity-normalized",
                      **examples("cnnlab designspace plot sweeps/a sweeps/e --out edf.png"))
    p.add_argument("sweeps", nargs="+", help="sweep folders")
    p.add_argument("--out", required=True, help="figure file (PNG, SVG, PDF)")
    p.add_argument("--label", help="which training of each sweep (default: the shortest)")
    p.add_argument("--bins", type=int, help="complexity bins of the normalized EDF (default: ~sqrt(n), 2-8)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=_cmd_plot)

    p = ds.add_parser("analyze", help="one sweep: error against parameters, width fits, top-decile verdicts",
                      **examples("cnnlab designspace analyze sweeps/e --out sweeps/e/analysis"))
    p.add_argument("sweep", help="sweep folder")
    p.add_argument("--out", required=True, help="folder for parameters.png, widths.png, analysis.json")
    p.add_argument("--label", help="which training (default: the shortest)")
    p.add_argument("--top", type=int, default=3, help="best networks whose widths are fitted (default: 3)")
    p.set_defaults(func=_cmd_analyze)

    p = ds.add_parser("rankcheck", help="train some samples longer: does the short training rank them alike?",
                      **examples("cnnlab designspace rankcheck sweeps/e --epochs 6 --models 16 --out ranks.png"))
    p.add_argument("sweep", help="sweep folder")
    p.add_argument("--epochs", type=int, required=True, help="epochs of the longer training")
    p.add_argument("--models", type=int, default=16, help="networks trained both ways (default: 16)")
    p.add_argument("--out", help="scatter figure of the two errors")
    p.add_argument("--label", help="the short training to compare with (default: the shortest)")
    p.add_argument("--seed", type=int, default=0, help="seed of the choice of networks")
    _add_executor(p)
    p.set_defaults(func=_cmd_rankcheck)


def _add_training(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("the short recipe every network trains with")
    g.add_argument("--epochs", type=int, default=2, help="epochs per network (default: 2)")
    g.add_argument("--data", default="fashion-mnist", help="data set (default: fashion-mnist)")
    g.add_argument("--data-dir", help="folder holding the data files")
    g.add_argument("--no-download", dest="download", action="store_false", help="never download the data")
    g.add_argument("--subset", type=int, help="train on this many images (a seeded draw; default: all)")
    g.add_argument("--val", type=int, default=5000,
                   help="validation images carved from the training images; errors are measured on them "
                        "(default: 5000)")
    g.add_argument("--batch-size", type=int, default=128)
    g.add_argument("--lr", type=float, default=0.1, help="peak learning rate, cosine schedule (default: 0.1)")
    g.add_argument("--seed", type=int, default=0, help="seed of weights, data order and the subset")
    g.add_argument("--device", default="auto")
    g.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="other training settings (cnnlab train's flags, underscored), e.g. amp=off")
