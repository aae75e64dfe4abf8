"""The ``cnnlab`` command: maps arguments onto the library and holds no logic of its own."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

__all__ = ["main"]


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


def _cmd_models(args: argparse.Namespace) -> int:
    from cnnlab.analysis.table import human, render
    from cnnlab.analysis.zoo import ZOO_COLUMNS, zoo_rows

    rows = zoo_rows(args.pattern, family=args.family)
    if not rows:
        raise CliError(f"no model matches {args.pattern!r}; `cnnlab models` lists them all")
    fmt = {"params": human, "macs": human}
    print(render(rows, args.format, ZOO_COLUMNS, formatters=fmt), end="")
    return 0


def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the model zoo with parameters and MACs",
                       description="List registered networks: family, parameters, multiply-accumulates "
                                   "(MACs) at the family's standard input (`input`), and the smallest square "
                                   "side each takes as built (`min_input`). `cnnlab train` brings smaller "
                                   "images up to it: zero padding when that adds at most a quarter (28x28 "
                                   "Fashion-MNIST is padded to 32x32 for VGG), bilinear resizing beyond.")
    p.add_argument("pattern", nargs="?", help="substring or shell pattern, e.g. 'resnet*' or 'vgg'")
    p.add_argument("--family", help="only this family (e.g. resnet, densenet)")
    p.add_argument("--format", choices=("table", "markdown", "csv", "json"), default="table")
    p.set_defaults(func=_cmd_models)


# Each subcommand registers itself here: (adder, ...) in the order --help shows them.
SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_models]


# -- training, evaluation, prediction, ensembles (cnnlab.train) --------------------------------------


def _cmd_train(args: argparse.Namespace) -> int:
    from cnnlab.train import TrainingDivergedError, config_from_args, resume_training, train
    from cnnlab.train.config import TrainConfig

    try:
        if args.resume:
            if args.config:
                raise CliError("--resume continues a run with its saved config; leave out --config")
            names = set(TrainConfig.__dataclass_fields__)
            resume_training(args.resume, {k: v for k, v in vars(args).items() if k in names})
        else:
            train(config_from_args(args, args.config))
    except TrainingDivergedError as err:
        raise CliError(str(err)) from err
    return 0


def _add_train(sub: argparse._SubParsersAction) -> None:
    from cnnlab.train.config import add_config_arguments

    p = sub.add_parser(
        "train", help="train a zoo model (Fashion-MNIST, MNIST, CIFAR, image folders)",
        description="Train a registered model. Settings come from the defaults, then --recipe, then "
                    "--config FILE (YAML or JSON), then the flags below. Under torchrun the same command "
                    "trains with DistributedDataParallel.",
    )
    p.add_argument("--config", metavar="FILE", help="YAML or JSON file of settings (the flag names)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    add_config_arguments(p)
    p.set_defaults(func=_cmd_train)


def _print_json_or(args: argparse.Namespace, data: object, text: str) -> None:
    import json

    print(json.dumps(data, indent=2) if args.format == "json" else text)


def _cmd_eval(args: argparse.Namespace) -> int:
    from cnnlab.train import evaluate_checkpoint

    r = evaluate_checkpoint(args.checkpoint, args.split, args.data_dir, args.batch_size, args.tta_flip,
                            args.device)
    _print_json_or(args, r, f"{r['model']} on {r['data']} {r['split']}: accuracy {100 * r['accuracy']:.2f}% "
                            f"(loss {r['loss']:.4f}, {r['count']} images)")
    return 0


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="accuracy of a checkpoint on its data set's test split",
                       description="Evaluate a training checkpoint on the test (or validation) split of "
                                   "the data set it was trained on.")
    p.add_argument("checkpoint", help="a checkpoint file (best.pt, last.pt) or a run directory")
    p.add_argument("--split", choices=("test", "val"), default="test")
    p.add_argument("--data-dir", help="folder holding the data files, if not where training found them")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--tta-flip", action=argparse.BooleanOptionalAction, default=None,
                   help="average with mirror images (default: as in training)")
    p.add_argument("--device", default="auto")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=_cmd_eval)


def _cmd_predict(args: argparse.Namespace) -> int:
    from cnnlab.train import predict_files

    rows = predict_files(args.checkpoint, args.images, args.topk, args.device)
    lines = []
    for row in rows:
        top = ", ".join(f"{t['class']} {100 * t['probability']:.1f}%" for t in row["top"])
        lines.append(f"{row['image']}: {top}")
    _print_json_or(args, rows, "\n".join(lines))
    return 0


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="top-k classes of image files under a checkpoint",
                       description="Classify image files with a trained checkpoint; images are converted "
                                   "to the training data's channels and size.")
    p.add_argument("checkpoint", help="a checkpoint file (best.pt, last.pt) or a run directory")
    p.add_argument("images", nargs="+", help="image files (PNG, JPEG, ...)")
    p.add_argument("--topk", type=int, default=5, help="classes to show per image (default: 5)")
    p.add_argument("--device", default="auto")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=_cmd_predict)


def _cmd_ensemble(args: argparse.Namespace) -> int:
    from cnnlab.train import ensemble_checkpoints

    r = ensemble_checkpoints(args.checkpoints, args.split, args.data_dir, args.batch_size, args.device)
    lines = [f"{m['checkpoint']} ({m['model']}): {100 * m['accuracy']:.2f}%" for m in r["members"]]
    lines.append(f"ensemble of {len(r['members'])} (mean softmax) on {r['data']} {r['split']}: "
                 f"{100 * r['ensemble_accuracy']:.2f}% of {r['images']} images")
    _print_json_or(args, r, "\n".join(lines))
    return 0


def _add_ensemble(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ensemble", help="accuracy of the averaged softmax of several checkpoints",
                       description="Average the softmax outputs of checkpoints trained on the same data "
                                   "(the ensemble of AlexNet's paper) and report each one's accuracy and "
                                   "the ensemble's.")
    p.add_argument("checkpoints", nargs="+", help="two or more checkpoint files or run directories")
    p.add_argument("--split", choices=("test", "val"), default="test")
    p.add_argument("--data-dir", help="folder holding the data files, if not where training found them")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--device", default="auto")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=_cmd_ensemble)


SUBCOMMANDS += [_add_train, _add_eval, _add_predict, _add_ensemble]


# -- summaries and comparisons (cnnlab.analysis.summary, cnnlab.analysis.compare) ----------------------


def _model_kwargs(items: Sequence[str]) -> dict[str, object]:
    """KEY=VALUE words as builder keyword arguments; values are Python literals or plain strings."""
    import ast

    kwargs: dict[str, object] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.isidentifier():
            raise CliError(f"model options look like KEY=VALUE (e.g. drop_rate=0.2), got {item!r}")
        try:
            kwargs[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            kwargs[key] = text
    return kwargs


def _cmd_summary(args: argparse.Namespace) -> int:
    from cnnlab.analysis.summary import parse_input_size, summary

    kwargs = _model_kwargs(args.options)
    if args.num_classes is not None:
        kwargs["num_classes"] = args.num_classes
    size = parse_input_size(args.input) if args.input else None
    result = summary(args.name, size, depth=args.depth, **kwargs)
    print(result.render(args.format, by_operator=args.by_operator), end="")
    return 0


def _add_summary(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("summary", help="per-layer shapes, parameters, MACs, FLOPs, memory, receptive fields",
                       description="Summarize a registered network layer by layer without computing anything "
                                   "(meta tensors): output shape, parameters, multiply-accumulates (MACs), "
                                   "FLOPs, activation memory per image and receptive field (size, stride, "
                                   "start in input pixels), with totals and training memory per image.")
    p.add_argument("name", help="a registered model (`cnnlab models` lists them)")
    p.add_argument("options", nargs="*", metavar="KEY=VALUE", help="builder options, e.g. drop_rate=0.2")
    p.add_argument("--input", metavar="CxHxW", help="one image, channels first, e.g. 1x28x28 (default: the "
                                                   "family's standard)")
    p.add_argument("--depth", type=int, help="collapse modules deeper than this (1: stem, stages, head)")
    p.add_argument("--num-classes", type=int, help="classifier outputs (default: the model's)")
    p.add_argument("--by-operator", action="store_true",
                   help="one row per ATen operator (calls, MACs, FLOPs) instead of one per layer")
    p.add_argument("--format", choices=("table", "markdown", "csv", "json"), default="table")
    p.set_defaults(func=_cmd_summary)


def _cmd_compare(args: argparse.Namespace) -> int:
    from cnnlab.analysis.compare import compare_models, reference_rows, render_rows

    # NAME or NAME:key=value,... words name networks; bare KEY=VALUE words are options shared by all.
    names = [w for w in args.names if "=" not in w or ":" in w]
    kwargs = _model_kwargs([w for w in args.names if "=" in w and ":" not in w])
    if args.train:
        return _train_and_compare(args, names, kwargs)
    if any(":" in w for w in names):
        raise CliError("NAME:key=value options are for --train; give shared KEY=VALUE words instead")
    if args.reference:
        rows = reference_rows(args.reference, names or None, args.weights)
        print(render_rows(rows, args.format), end="")
        if args.plot:
            from cnnlab.plots import complexity_chart

            fig = complexity_chart([], reference=rows, dataset="ImageNet-1K",
                                   budget=f"torchvision's published {args.weights} weights")
            fig.savefig(args.plot, dpi=150)
            print(f"cnnlab: wrote {args.plot}", file=sys.stderr)
        return 0
    if args.plot:
        raise CliError("--plot draws accuracy, which a static comparison has none of; "
                       "use it with --reference imagenet, or train with --train")
    if not names:
        raise CliError("name the networks to compare, e.g. `cnnlab compare lenet5 resnet18 --input 1x28x28`")
    print(render_rows(compare_models(names, args.input, args.num_classes, **kwargs), args.format), end="")
    return 0


def _train_and_compare(args: argparse.Namespace, specs: Sequence[str], shared: dict[str, object]) -> int:
    import contextlib
    import time

    from cnnlab.experiments.lineup import parse_contender, run_comparison

    if not specs:
        raise CliError("name the networks to train, e.g. `cnnlab compare lenet5 resnet20 --train --epochs 1`")
    contenders = []
    for spec in specs:
        c = parse_contender(spec)
        contenders.append(type(c)(c.model, {**shared, **c.model_args}))
    settings = {k: v for k, v in {
        "data": args.data, "data_dir": args.data_dir, "recipe": args.recipe, "epochs": args.epochs,
        "time_budget": args.time_budget, "batch_size": args.batch_size, "threads": args.threads,
        "seed": args.seed, "quiet": args.quiet,
    }.items() if v is not None}
    out = args.out or f"runs/compare-{time.strftime('%Y%m%d-%H%M%S')}"
    # Training logs go to stderr: stdout carries only the table, so --format json/csv can be piped.
    with contextlib.redirect_stdout(sys.stderr):
        report = run_comparison(contenders, out, settings, args.reference, on_start=_announce(len(contenders)))
    _print_report(report, args.format)
    return 0


def _announce(total: int):
    def say(i: int, contender, action: str) -> None:
        verb = {"train": "training", "resume": "resuming", "skip": "already trained:"}[action]
        print(f"[{i + 1}/{total}] {verb} {contender.label}", file=sys.stderr, flush=True)

    return say


def _print_report(report, fmt: str) -> None:
    from cnnlab.analysis.compare import TRAINED_COLUMNS, render_rows

    print(render_rows(report.rows, fmt, TRAINED_COLUMNS), end="")
    for kind, path in report.files.items():
        print(f"cnnlab: wrote {path} ({kind})", file=sys.stderr)


def _add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="networks side by side: parameters, MACs, memory, receptive field",
                       description="Compare registered networks at one input size: parameters, "
                                   "multiply-accumulates (MACs), FLOPs, activation and training memory per "
                                   "image, receptive field of the last feature map and depth in weight "
                                   "layers. With --reference imagenet, list torchvision's published ImageNet "
                                   "figures instead (offline, from its weights metadata).")
    p.add_argument("names", nargs="*", metavar="NAME", help="registered models, then any KEY=VALUE options")
    p.add_argument("--input", metavar="CxHxW", help="one image, e.g. 1x28x28 (default: each family's standard)")
    p.add_argument("--num-classes", type=int, help="classifier outputs (default: each model's)")
    p.add_argument("--format", choices=("table", "markdown", "csv", "json"), default="table")
    p.add_argument("--reference", choices=("imagenet",), help="show torchvision's published figures")
    p.add_argument("--weights", choices=("original", "best"), default="original",
                   help="reference weights: each network's first (paper-era) or torchvision's best")
    p.add_argument("--plot", metavar="FILE", help="with --reference: save accuracy vs. MACs (PNG, SVG, PDF)")
    t = p.add_argument_group("training (--train): each network with the same recipe and budget")
    t.add_argument("--train", action="store_true",
                   help="train every network, then write the table and figures to --out; names may carry "
                        "builder options as NAME:key=value,... (e.g. vgg11:width_mult=0.25)")
    t.add_argument("--data", default="fashion-mnist", help="data set (default: fashion-mnist)")
    t.add_argument("--data-dir", help="folder holding the data files")
    t.add_argument("--recipe", default="fast", help="training recipe (default: fast)")
    t.add_argument("--epochs", type=int, help="epochs per network (default: the recipe's)")
    t.add_argument("--time-budget", type=float, metavar="SECONDS", help="wall-time budget per network")
    t.add_argument("--batch-size", type=int, help="images per step (default: the recipe's)")
    t.add_argument("--threads", type=int, help="CPU threads (default: the free cores)")
    t.add_argument("--seed", type=int, help="seed of every run")
    t.add_argument("--out", help="comparison directory; rerunning with it resumes and skips finished networks")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_compare)


def _cmd_demo(args: argparse.Namespace) -> int:
    from cnnlab.experiments.lineup import DEMO_LINEUP, DEMO_SETTINGS, budget_text, parse_contender, run_comparison

    contenders = [parse_contender(spec) for spec in DEMO_LINEUP]
    settings = dict(DEMO_SETTINGS, **{k: v for k, v in {"data_dir": args.data_dir, "quiet": args.quiet or None,
                                                          "threads": args.threads}.items() if v is not None})
    print(f"cnnlab demo: training {len(contenders)} networks on {settings['data']} "
          f"({budget_text(settings)}) into {args.out}", file=sys.stderr)
    report = run_comparison(contenders, args.out, settings, reference=args.reference,
                            on_start=_announce(len(contenders)))
    _print_report(report, "table")
    print(f"\ncnnlab demo: table {report.files['table']}, figures {report.files['complexity']}, "
          f"{report.files['time']}, {report.files['curves']}")
    return 0


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="train and compare the classic architectures on Fashion-MNIST (~10 min)",
                       description="The model-complexity comparison of the notes: LeNet-5, an AlexNet-style and "
                                   "a VGG-style network, NiN, GoogLeNet, ResNet-20, a DenseNet-BC and RegNetX-200MF "
                                   "trained one epoch each on Fashion-MNIST, then a table and figures. Rerunning "
                                   "resumes and skips finished networks.")
    p.add_argument("--out", default="runs/demo", help="output directory (default: runs/demo)")
    p.add_argument("--data-dir", help="folder holding the Fashion-MNIST files (else found or downloaded)")
    p.add_argument("--threads", type=int, help="CPU threads (default: the free cores)")
    p.add_argument("--reference", choices=("imagenet",), help="add torchvision's ImageNet figures beside")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_demo)


SUBCOMMANDS += [_add_summary, _add_compare, _add_demo]


def build_parser() -> argparse.ArgumentParser:
    from cnnlab import __version__

    parser = argparse.ArgumentParser(prog="cnnlab", description="Build, train, measure and explain classic CNNs.")
    parser.add_argument("--version", action="version", version=f"cnnlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("cnnlab: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001  (user errors become one line; anything else is a bug: re-raised)
        if not _is_user_error(err):
            raise
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"cnnlab: error: {msg}", file=sys.stderr)
        return 2


def _is_user_error(err: Exception) -> bool:
    """Errors that describe bad input or a run the user must change, not a defect of cnnlab."""
    from cnnlab.errors import CnnlabError

    user_errors: tuple[type[Exception], ...] = (CnnlabError, CliError, ValueError, KeyError, FileNotFoundError,
                                                 NotADirectoryError, PermissionError)
    train = sys.modules.get("cnnlab.train.loop")
    if train is not None:
        user_errors += (train.TrainingDivergedError,)
    return isinstance(err, user_errors)


if __name__ == "__main__":
    sys.exit(main())
