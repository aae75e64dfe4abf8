"""``cnnlab models``, ``summary``, ``compare`` and ``demo``: the zoo, measured and compared."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Sequence
from typing import Any

from cnnlab.cli._common import (
    UsageError,
    examples,
    positive_float,
    positive_int,
    print_json_or,
    say,
    smoke_caps,
    split_model_words,
)

__all__ = ["register"]


# What the receptive-field columns mean, for --help.
_RF_HELP = ("Receptive field: the side, in input pixels, of the region one unit of the last feature map "
            "sees, and its stride, the input pixels between neighbouring units: a fraction such as 5⅓ when an "
            "adaptive pooling maps n units onto m, e.g. 32 onto 6.")


def _cmd_models(args: argparse.Namespace) -> int:
    from cnnlab.analysis.table import human, render
    from cnnlab.analysis.zoo import ZOO_COLUMNS, zoo_rows

    rows = zoo_rows(args.pattern, family=args.family)
    if not rows:
        raise UsageError(f"no model matches {args.pattern!r}; `cnnlab models` lists them all")
    fmt = {"params": human, "macs": human, "all_params": human}
    print(render(rows, args.format, ZOO_COLUMNS, formatters=fmt), end="")
    return 0


def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the model zoo with parameters and MACs",
                       description="List registered networks: family, parameters as used at inference "
                                   "(`params`), multiply-accumulates (MACs) at the family's standard input "
                                   "(`input`), and the smallest square side each takes as built (`min_input`). "
                                   "`cnnlab train` brings smaller images up to it: zero padding when that adds "
                                   "at most a quarter (28x28 Fashion-MNIST is padded to 32x32 for VGG), bilinear "
                                   "resizing beyond. Where parts only training runs (auxiliary heads) add "
                                   "parameters, `all_params` counts them too.",
                       **examples("cnnlab models", "cnnlab models 'resnet*' --format markdown"))
    p.add_argument("pattern", nargs="?", help="substring or shell pattern, e.g. 'resnet*' or 'vgg'")
    p.add_argument("--family", help="only this family (e.g. resnet, densenet)")
    p.add_argument("--format", choices=("table", "markdown", "csv", "json"), default="table")
    p.set_defaults(func=_cmd_models)


def _cmd_info(args: argparse.Namespace) -> int:
    from cnnlab.analysis.card import model_card, render_card
    from cnnlab.options import parse_model_spec

    name, options = parse_model_spec(args.name)
    card = model_card(name, **options)
    print_json_or(args, card, render_card(card).rstrip("\n"))
    return 0


def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="one network's paper, key idea, smallest input, size and cost",
                       description="What a network is: its paper (authors, year, venue), the key idea in two "
                                   "lines, the smallest input it takes, its parameters and multiply-accumulates "
                                   "(MACs) at its standard input, and its torchvision twin if any.",
                       **examples("cnnlab info resnet50", "cnnlab info vgg11_bn:width_mult=0.25 --format json"))
    p.add_argument("name", metavar="NAME[:key=value,...]", help="a registered model (`cnnlab models` lists them)")
    p.add_argument("--format", choices=("text", "json"), default="text", help="(default: text)")
    p.set_defaults(func=_cmd_info)


def _cmd_summary(args: argparse.Namespace) -> int:
    from cnnlab.analysis.summary import parse_input_size, summary
    from cnnlab.options import parse_model_spec, parse_options

    name, options = parse_model_spec(args.name)
    kwargs = {**parse_options(args.options), **options}
    if args.num_classes is not None:
        kwargs["num_classes"] = args.num_classes
    size = parse_input_size(args.input) if args.input else None
    result = summary(name, size, depth=args.depth, model_options=kwargs)
    print(result.render(args.format, by_operator=args.by_operator), end="")
    return 0


def _add_summary(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("summary", help="per-layer shapes, parameters, MACs, FLOPs, memory, receptive fields",
                       description="Summarize a registered network layer by layer without computing anything "
                                   "(meta tensors): output shape, parameters, multiply-accumulates (MACs), "
                                   "FLOPs, activation memory per image and receptive field (size, stride, "
                                   "start in input pixels), with totals and training memory per image. "
                                   + _RF_HELP,
                       **examples("cnnlab summary resnet18 --input 1x28x28 --depth 2",
                                  "cnnlab summary vgg11:width_mult=0.25 --format markdown"))
    p.add_argument("name", metavar="NAME[:key=value,...]",
                   help="a registered model (`cnnlab models` lists them), with builder options after a colon, "
                        "e.g. vgg11:width_mult=0.25")
    p.add_argument("options", nargs="*", metavar="KEY=VALUE", help="more builder options, e.g. drop_rate=0.2")
    p.add_argument("--input", metavar="CxHxW", help="one image, channels first, e.g. 1x28x28 (default: the "
                                                   "family's standard)")
    p.add_argument("--depth", type=int, help="collapse modules deeper than this (1: stem, stages, head)")
    p.add_argument("--num-classes", type=positive_int, help="classifier outputs (default: the model's)")
    p.add_argument("--by-operator", action="store_true",
                   help="one row per ATen operator (calls, MACs, FLOPs) instead of one per layer")
    p.add_argument("--format", choices=("table", "markdown", "csv", "json"), default="table")
    p.set_defaults(func=_cmd_summary)


def _cmd_compare(args: argparse.Namespace) -> int:
    from cnnlab.analysis.compare import compare_models, reference_rows, render_rows
    from cnnlab.options import format_options

    specs, shared = split_model_words(args.names)
    if args.train:
        return _train_and_compare(args, specs, shared)
    if args.reference:
        rows = reference_rows(args.reference, [name for name, _ in specs] or None, args.weights)
        print(render_rows(rows, args.format), end="")
        if args.plot:
            from cnnlab.files import save_figure_atomic
            from cnnlab.plots import complexity_chart

            fig = complexity_chart([], reference=rows, dataset="ImageNet-1K",
                                   budget=f"torchvision's published {args.weights} weights")
            save_figure_atomic(fig, args.plot, dpi=150)
            say(f"wrote {args.plot}")
        return 0
    if args.plot:
        raise UsageError("--plot draws accuracy, which a static comparison has none of; "
                         "use it with --reference imagenet, or train with --train")
    if not specs:
        raise UsageError("name the networks to compare, e.g. `cnnlab compare lenet5 resnet18 --input 1x28x28`")
    rows = []
    for name, options in specs:
        if options:  # a network with its own options: built here, labelled with them
            module, size = _meta_model(name, args, {**shared, **options})
            rows += compare_models([(f"{name}({format_options(options)})", module)], size)
        else:
            rows += compare_models([name], args.input, args.num_classes, **shared)
    print(render_rows(rows, args.format), end="")
    return 0


def _meta_model(name: str, args: argparse.Namespace, options: dict[str, Any]):
    """``name`` built with ``options`` on meta tensors, and the one-image input size it is measured at."""
    import torch

    from cnnlab.analysis.summary import parse_input_size
    from cnnlab.models import create_model, get_model_info

    size = parse_input_size(args.input) if args.input else get_model_info(name).input_size
    extra = {"num_classes": args.num_classes} if args.num_classes is not None else {}
    with torch.device("meta"):
        return create_model(name, in_chans=size[0], **extra, **options), size


def _train_and_compare(args: argparse.Namespace, specs: Sequence[tuple[str, dict[str, Any]]],
                       shared: dict[str, Any]) -> int:
    from cnnlab.experiments.lineup import Contender, run_comparison
    from cnnlab.models import get_model_info
    from cnnlab.train.config import config_overrides

    if not specs:
        raise UsageError("name the networks to train, e.g. `cnnlab compare lenet5 resnet20 --train --epochs 1`")
    for name, _ in specs:
        get_model_info(name)  # an unknown name fails before anything trains
    contenders = [Contender(name, {**shared, **options}) for name, options in specs]
    settings = smoke_caps({"recipe": "fast", **config_overrides(args)})
    out = args.out or f"runs/compare-{time.strftime('%Y%m%d-%H%M%S')}"
    # Training logs go to stderr: stdout carries only the table, so --format json/csv can be piped.
    with contextlib.redirect_stdout(sys.stderr):
        report = run_comparison(contenders, out, settings, args.reference, on_start=_announce(len(contenders)))
    _print_report(report, args.format)
    return 0


def _announce(total: int):
    def tell(i: int, contender, action: str) -> None:
        verb = {"train": "training", "resume": "resuming", "skip": "already trained:"}[action]
        print(f"[{i + 1}/{total}] {verb} {contender.label}", file=sys.stderr, flush=True)

    return tell


def _print_report(report, fmt: str) -> None:
    from cnnlab.analysis.compare import TRAINED_COLUMNS, render_rows

    print(render_rows(report.rows, fmt, TRAINED_COLUMNS), end="")
    for kind, path in report.files.items():
        say(f"wrote {path} ({kind})")


def _add_compare(sub: argparse._SubParsersAction) -> None:
    from cnnlab.train.config import add_config_arguments

    p = sub.add_parser("compare", help="networks side by side: parameters, MACs, memory, receptive field",
                       description="Compare registered networks at one input size: parameters, "
                                   "multiply-accumulates (MACs), FLOPs, activation and training memory per "
                                   "image, receptive field of the last feature map and depth in weight "
                                   "layers. With --reference imagenet, list torchvision's published ImageNet "
                                   "figures instead (offline, from its weights metadata). " + _RF_HELP,
                       **examples("cnnlab compare lenet5 resnet20 googlenet --input 1x32x32",
                                  "cnnlab compare vgg11:width_mult=0.25 resnet20 --input 3x32x32",
                                  "cnnlab compare --reference imagenet --plot reference.png",
                                  "cnnlab compare lenet5 resnet20 --train --epochs 1 --out runs/cmp"))
    p.add_argument("names", nargs="*", metavar="NAME[:key=value,...]",
                   help="registered models, each with its own builder options after a colon "
                        "(vgg11:width_mult=0.25); bare KEY=VALUE words apply to every network")
    p.add_argument("--input", metavar="CxHxW", help="one image, e.g. 1x28x28 (default: each family's standard)")
    p.add_argument("--num-classes", type=positive_int, help="classifier outputs (default: each model's)")
    p.add_argument("--format", choices=("table", "markdown", "csv", "json"), default="table")
    p.add_argument("--reference", choices=("imagenet",), help="show torchvision's published figures")
    p.add_argument("--weights", choices=("original", "best"), default="original",
                   help="reference weights: each network's first (paper-era) or torchvision's best")
    p.add_argument("--plot", metavar="FILE", help="with --reference: save accuracy vs. MACs (PNG, SVG, PDF)")
    p.add_argument("--train", action="store_true",
                   help="train every network with the same settings (the fast recipe unless --recipe says "
                        "otherwise), then write the table and figures to --out")
    p.add_argument("--out", help="with --train: the comparison's folder; rerunning with it resumes and skips "
                                 "finished networks")
    add_config_arguments(p, positional_model=False, exclude=("model", "model_args", "out"),
                         title="training settings for --train (each network gets the same)")
    p.set_defaults(func=_cmd_compare)


def _cmd_demo(args: argparse.Namespace) -> int:
    from cnnlab.experiments.lineup import DEMO_LINEUP, DEMO_SETTINGS, budget_text, parse_contender, run_comparison

    contenders = [parse_contender(spec) for spec in (args.models or DEMO_LINEUP)]
    budget = {"epochs": args.epochs} if args.epochs else {}
    if args.time_budget:  # the planner fits each schedule to the budget, up to this many epochs
        budget = {"time_budget": args.time_budget, "epochs": _DEMO_MAX_EPOCHS}
    given = {"data_dir": args.data_dir, "quiet": args.quiet, "threads": args.threads}
    settings = smoke_caps({**DEMO_SETTINGS, **budget, **{k: v for k, v in given.items() if v is not None}})
    print(f"cnnlab demo: training {len(contenders)} networks on {settings['data']} "
          f"({budget_text(settings)}) into {args.out}", file=sys.stderr)
    report = run_comparison(contenders, args.out, settings, reference=args.reference,
                            on_start=_announce(len(contenders)))
    _print_report(report, "table")
    figures = ", ".join(str(report.files[k]) for k in ("complexity", "time", "curves") if k in report.files)
    print(f"\ncnnlab demo: table {report.files['table']}" + (f", figures {figures}" if figures else ""))
    return 0


_DEMO_MAX_EPOCHS = 100  # under --time-budget: a bound the budget, not the epochs, reaches first


def _add_demo(sub: argparse._SubParsersAction) -> None:
    from cnnlab.experiments.lineup import DEMO_LINEUP, DEMO_SETTINGS

    p = sub.add_parser("demo", help="train and compare the classic architectures on Fashion-MNIST (~10 min)",
                       description="Reproduces the notes' model-complexity comparison (accuracy against "
                                   "operations and parameters, LeNet-5 to RegNet) on Fashion-MNIST: by default "
                                   "LeNet-5, an AlexNet-style and a VGG-style network, NiN, GoogLeNet, ResNet-20, "
                                   "a DenseNet-BC and RegNetX-200MF, one epoch each with the same recipe, then "
                                   "a table and figures in --out. Rerunning resumes and skips finished networks.",
                       **examples("cnnlab demo",
                                  "cnnlab demo --models lenet5 resnet20 --epochs 1 --out runs/demo-small",
                                  "cnnlab demo --time-budget 60 --out runs/demo-60s"))
    p.add_argument("--models", nargs="+", metavar="NAME[:key=value,...]",
                   help="the lineup (default: " + " ".join(DEMO_LINEUP) + ")")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=positive_int, metavar="N",
                        help=f"epochs per network (default: {DEMO_SETTINGS['epochs']})")
    budget.add_argument("--time-budget", type=positive_float, metavar="SECONDS",
                        help="wall seconds per network, evaluations included, instead of a number of epochs")
    p.add_argument("--out", default="runs/demo", help="output directory (default: runs/demo)")
    p.add_argument("--data-dir", help="folder holding the Fashion-MNIST files (else found or downloaded)")
    p.add_argument("--threads", type=positive_int, help="CPU threads (default: the free cores)")
    p.add_argument("--reference", choices=("imagenet",), help="add torchvision's ImageNet figures beside")
    p.add_argument("--quiet", action=argparse.BooleanOptionalAction, help="no progress bars (default: off)")
    p.set_defaults(func=_cmd_demo)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``models``, ``info``, ``summary``, ``compare`` and ``demo``."""
    for add in (_add_models, _add_info, _add_summary, _add_compare, _add_demo):
        add(sub)
