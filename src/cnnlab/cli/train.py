"""``cnnlab train``, ``eval``, ``predict`` and ``ensemble``: training runs and what they produce."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from cnnlab.cli._common import UsageError, examples, positive_int, print_json_or, say, smoke_caps

__all__ = ["register"]


def _cmd_train(args: argparse.Namespace) -> int:
    from cnnlab.options import parse_model_spec
    from cnnlab.train import config_from_args, resume_training, train
    from cnnlab.train.config import config_overrides
    from cnnlab.train.runtime import process_start_time

    if getattr(args, "model", None) and ":" in args.model:  # NAME:key=value,... as in every command
        args.model, options = parse_model_spec(args.model)
        args.model_args = {**options, **_given_model_args(args)}
    if args.resume:
        if args.config:
            raise UsageError("--resume continues a run with its saved config; leave out --config")
        resume_training(args.resume, config_overrides(args), process_start_time())
    else:
        cfg = config_from_args(args, args.config)
        train(replace(cfg, **smoke_caps(cfg.to_dict())), process_start_time())
    return 0


def _given_model_args(args: argparse.Namespace) -> dict:
    from cnnlab.options import parse_options

    return parse_options(getattr(args, "model_args", None))


def _add_train(sub: argparse._SubParsersAction) -> None:
    from cnnlab.train.config import add_config_arguments

    p = sub.add_parser(
        "train", help="train a zoo model (Fashion-MNIST, MNIST, CIFAR, image folders)",
        description="Train a registered model. Settings come from the defaults, then --recipe, then "
                    "--config FILE (YAML or JSON), then the flags below. Builder options follow the name "
                    "after a colon (vgg11_bn:width_mult=0.25) or go in --model-args. Under torchrun the same "
                    "command trains with DistributedDataParallel.",
        **examples("cnnlab train lenet5 --epochs 1 --out runs/lenet5",
                   "cnnlab train resnet20 --recipe fast --time-budget 300 --out runs/r20",
                   "cnnlab train vgg11_bn:width_mult=0.25,hidden=256 --epochs 2",
                   "cnnlab train --resume runs/r20 --epochs 8"),
    )
    p.add_argument("--config", metavar="FILE", help="YAML or JSON file of settings (the flag names)")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue the run in RUN_DIR (or of RUN_DIR/last.pt) from its last checkpoint")
    add_config_arguments(p)
    p.set_defaults(func=_cmd_train)


def _cmd_eval(args: argparse.Namespace) -> int:
    from cnnlab.train import evaluate_checkpoint
    from cnnlab.train.console import confusion_text

    r = evaluate_checkpoint(args.checkpoint, args.split, args.data_dir, args.batch_size, args.tta_flip,
                            args.device, args.topk, args.ten_crop, progress=args.format == "text")
    say(f"evaluated {r['checkpoint']} ({r['weights']}); mirror TTA {'on' if r['tta_flip'] else 'off'} "
        f"({r['tta_source']})")
    if "miou" in r:  # a segmentation run: pixel metrics, no class confusion to draw
        print_json_or(args, r, f"{r['model']} on {r['data']} {r['split']}: mIoU {100 * r['miou']:.2f}%, Dice "
                               f"{100 * r['dice']:.2f}%, pixel accuracy {100 * r['accuracy']:.2f}% (loss "
                               f"{r['loss']:.4f}, {r['count']} images)")
        return 0
    plot = _confusion_figure(r, args.plot)
    top = r[f"top{args.topk}_accuracy"]
    print_json_or(args, r, f"{r['model']} on {r['data']} {r['split']}: accuracy {100 * r['accuracy']:.2f}%, "
                           f"top-{args.topk} {100 * top:.2f}% (loss {r['loss']:.4f}, {r['count']} images)\n\n"
                           + confusion_text(r["classes"], r["confusion"]))
    say(f"wrote {plot} (confusion matrix and per-class accuracy)")
    return 0


def _confusion_figure(r: dict, plot: str | None) -> Path:
    """Draw the confusion matrix to ``plot``, or beside the checkpoint (confusion-<split>.png)."""
    from cnnlab.plots import confusion_matrix

    path = Path(plot) if plot else Path(r["checkpoint"]).parent / f"confusion-{r['split']}.png"
    title = f"{r['model']} on {r['data']} ({r['split']} split, {Path(r['checkpoint']).name})"
    confusion_matrix(r["confusion"], r["classes"], title=title).savefig(path, dpi=120)
    return path


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="accuracy, confusion matrix and per-class accuracy of a checkpoint",
                       description="Evaluate a training checkpoint on the test (or validation) split of "
                                   "the data set it was trained on: accuracy, loss, the confusion matrix and "
                                   "each class's accuracy, as text and as a figure.",
                       **examples("cnnlab eval runs/lenet5", "cnnlab eval runs/r20/last.pt --tta-flip --split val"))
    p.add_argument("checkpoint", help="a checkpoint file, or a run directory: its best.pt if it has one (the "
                                      "weights its results report), else its last.pt")
    p.add_argument("--split", choices=("test", "val"), default="test", help="(default: test)")
    p.add_argument("--data-dir", help="folder holding the data files, if not where training found them")
    p.add_argument("--batch-size", type=positive_int, default=1024, help="(default: 1024)")
    p.add_argument("--tta-flip", action=argparse.BooleanOptionalAction, default=None,
                   help="average with mirror images (default: as the run was trained)")
    p.add_argument("--topk", type=positive_int, default=5, help="also report top-k accuracy (default: 5)")
    p.add_argument("--ten-crop", action="store_true",
                   help="average the softmax over ten crops per image: four corners, centre, and their mirror "
                        "images (AlexNet's test); tensor data crop the image padded by the run's --crop-padding")
    p.add_argument("--plot", metavar="FILE",
                   help="where to draw the confusion matrix (default: confusion-SPLIT.png beside the checkpoint)")
    p.add_argument("--device", default="auto", help="(default: auto)")
    p.add_argument("--format", choices=("text", "json"), default="text", help="(default: text)")
    p.set_defaults(func=_cmd_eval)


def _cmd_predict(args: argparse.Namespace) -> int:
    from cnnlab.train import load_run_checkpoint, predict_files, predict_segmentation
    from cnnlab.train.evaluate import run_weights

    if load_run_checkpoint(run_weights(args.checkpoint)).data.task == "segmentation":
        r = predict_segmentation(args.checkpoint, args.images, args.out, args.split, args.count, args.data_dir,
                                 args.device)
        lines = [f"{row['image']}: {row['mask']}" for row in r["images"]]
        print_json_or(args, r, "\n".join([*lines, f"overlays: {', '.join(r['overlays'])}"]))
        return 0
    if not args.images:
        raise UsageError("name the image files to classify")
    rows = predict_files(args.checkpoint, args.images, args.topk, args.device, invert=args.invert)
    lines = []
    for row in rows:
        if row["light_background"] and not row["inverted"]:
            say(f"{row['image']} has a light background, but the training images are light on dark; if it is "
                f"a dark item on a light background, try --invert")
        top = ", ".join(f"{t['class']} {100 * t['probability']:.1f}%" for t in row["top"])
        lines.append(f"{row['image']}: {top}")
    print_json_or(args, rows, "\n".join(lines))
    return 0


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="top-k classes of image files, or label maps and overlays (segmentation)",
                       description="Classify image files with a trained checkpoint; images are converted "
                                   "to the training data's channels and size. A segmentation checkpoint labels "
                                   "every pixel instead: it writes OUT/masks/NAME.png and OUT/overlays.png (image, "
                                   "ground truth when known, prediction), for the images given or else the first "
                                   "--count images of the run's --split.",
                       **examples("cnnlab predict runs/lenet5 ankle-boot.png --topk 3",
                                  "cnnlab predict runs/lenet5 photo-of-a-shoe.jpg --invert",
                                  "cnnlab predict runs/seg --out runs/seg/pred --count 8"))
    p.add_argument("checkpoint", help="a checkpoint file (best.pt, last.pt) or a run directory")
    p.add_argument("images", nargs="*", help="image files (PNG, JPEG, ...)")
    p.add_argument("--topk", type=positive_int, default=5, help="classes to show per image (default: 5)")
    p.add_argument("--invert", action=argparse.BooleanOptionalAction, default=False,
                   help="use each image's negative (255 - pixel): a dark item on white paper becomes light on "
                        "black, as Fashion-MNIST's are (default: off)")
    p.add_argument("--out", default="predictions", help="segmentation: folder for masks and overlays "
                                                          "(default: predictions)")
    p.add_argument("--count", type=positive_int, default=8, help="segmentation without image files: images of --split "
                                                        "to label (default: 8)")
    p.add_argument("--split", choices=("test", "val"), default="test")
    p.add_argument("--data-dir", help="folder holding the data files, if not where training found them")
    p.add_argument("--device", default="auto")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=_cmd_predict)


def _cmd_ensemble(args: argparse.Namespace) -> int:
    from cnnlab.train import ensemble_checkpoints

    r = ensemble_checkpoints(args.checkpoints, args.split, args.data_dir, args.batch_size, args.device,
                             args.topk)
    k = args.topk
    lines = [f"{m['checkpoint']} ({m['model']}): {100 * m['accuracy']:.2f}%, top-{k} "
             f"{100 * m[f'top{k}_accuracy']:.2f}%" for m in r["members"]]
    lines.append(f"ensemble of {len(r['members'])} (mean softmax) on {r['data']} {r['split']}: "
                 f"{100 * r['ensemble_accuracy']:.2f}%, top-{k} {100 * r[f'ensemble_top{k}_accuracy']:.2f}% "
                 f"of {r['images']} images")
    print_json_or(args, r, "\n".join(lines))
    return 0


def _add_ensemble(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ensemble", help="accuracy of the averaged softmax of several checkpoints",
                       description="Average the softmax outputs of checkpoints trained on the same data "
                                   "(the ensemble of AlexNet's paper) and report each one's accuracy and "
                                   "the ensemble's.",
                       **examples("cnnlab ensemble runs/a runs/b runs/c"))
    p.add_argument("checkpoints", nargs="+", help="two or more checkpoint files or run directories")
    p.add_argument("--split", choices=("test", "val"), default="test")
    p.add_argument("--data-dir", help="folder holding the data files, if not where training found them")
    p.add_argument("--batch-size", type=positive_int, default=1024)
    p.add_argument("--topk", type=positive_int, default=5, help="also report top-k accuracy (default: 5)")
    p.add_argument("--device", default="auto")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=_cmd_ensemble)


def _cmd_plot(args: argparse.Namespace) -> int:
    from cnnlab.plots import run_curves
    from cnnlab.train.runlog import read_run

    run = read_run(args.run_dir)
    cfg, epochs = run.config, len(run.history)
    title = f"{cfg['model']} on {cfg['data']}: {epochs} epoch{'s' if epochs != 1 else ''} ({run.dir})"
    if run.results:
        title += f"; test accuracy {100 * run.results['test_accuracy']:.2f}%"
    path = Path(args.out) if args.out else run.dir / "curves.png"
    run_curves(run.history, run.curve, title=title,
               label_smoothing=cfg.get("label_smoothing") or 0.0).savefig(path, dpi=120)
    say(f"wrote {path}")
    return 0


def _add_plot(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="one run's training and validation curves: loss, accuracy, learning rate",
                       description="Draw a run's curves from its directory (curve.jsonl, metrics.jsonl): training "
                                   "loss and accuracy every logging window and per epoch, validation loss and "
                                   "accuracy per epoch, and the learning rate. Works on a run still training.",
                       **examples("cnnlab plot runs/lenet5", "cnnlab plot runs/r20 --out r20-curves.png"))
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory of `cnnlab train`")
    p.add_argument("--out", metavar="FILE", help="the figure (PNG, SVG, PDF; default: RUN_DIR/curves.png)")
    p.set_defaults(func=_cmd_plot)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``train``, ``eval``, ``predict``, ``ensemble`` and ``plot``."""
    for add in (_add_train, _add_eval, _add_predict, _add_ensemble, _add_plot):
        add(sub)
