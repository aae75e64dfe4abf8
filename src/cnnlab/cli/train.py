"""``cnnlab train``, ``eval``, ``predict`` and ``ensemble``: training runs and what they produce."""

from __future__ import annotations

import argparse

from cnnlab.cli._common import UsageError, print_json_or

__all__ = ["register"]


def _cmd_train(args: argparse.Namespace) -> int:
    from cnnlab.options import parse_model_spec
    from cnnlab.train import config_from_args, resume_training, train
    from cnnlab.train.config import TrainConfig

    if getattr(args, "model", None) and ":" in args.model:  # NAME:key=value,... as in every command
        args.model, options = parse_model_spec(args.model)
        args.model_args = {**options, **_given_model_args(args)}
    if args.resume:
        if args.config:
            raise UsageError("--resume continues a run with its saved config; leave out --config")
        names = set(TrainConfig.__dataclass_fields__)
        resume_training(args.resume, {k: v for k, v in vars(args).items() if k in names})
    else:
        train(config_from_args(args, args.config))
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
    )
    p.add_argument("--config", metavar="FILE", help="YAML or JSON file of settings (the flag names)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    add_config_arguments(p)
    p.set_defaults(func=_cmd_train)


def _cmd_eval(args: argparse.Namespace) -> int:
    from cnnlab.train import evaluate_checkpoint

    r = evaluate_checkpoint(args.checkpoint, args.split, args.data_dir, args.batch_size, args.tta_flip,
                            args.device)
    miou = f"mIoU {100 * r['miou']:.2f}%, Dice {100 * r['dice']:.2f}%, pixel " if "miou" in r else ""
    print_json_or(args, r, f"{r['model']} on {r['data']} {r['split']}: {miou}accuracy {100 * r['accuracy']:.2f}% "
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
    from cnnlab.train import load_run_checkpoint, predict_files, predict_segmentation

    if load_run_checkpoint(args.checkpoint).data.task == "segmentation":
        r = predict_segmentation(args.checkpoint, args.images, args.out, args.split, args.count, args.data_dir,
                                 args.device)
        lines = [f"{row['image']}: {row['mask']}" for row in r["images"]]
        print_json_or(args, r, "\n".join([*lines, f"overlays: {', '.join(r['overlays'])}"]))
        return 0
    if not args.images:
        raise UsageError("name the image files to classify")
    rows = predict_files(args.checkpoint, args.images, args.topk, args.device)
    lines = []
    for row in rows:
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
                                   "--count images of the run's --split.")
    p.add_argument("checkpoint", help="a checkpoint file (best.pt, last.pt) or a run directory")
    p.add_argument("images", nargs="*", help="image files (PNG, JPEG, ...)")
    p.add_argument("--topk", type=int, default=5, help="classes to show per image (default: 5)")
    p.add_argument("--out", default="predictions", help="segmentation: folder for masks and overlays "
                                                          "(default: predictions)")
    p.add_argument("--count", type=int, default=8, help="segmentation without image files: images of --split "
                                                        "to label (default: 8)")
    p.add_argument("--split", choices=("test", "val"), default="test")
    p.add_argument("--data-dir", help="folder holding the data files, if not where training found them")
    p.add_argument("--device", default="auto")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=_cmd_predict)


def _cmd_ensemble(args: argparse.Namespace) -> int:
    from cnnlab.train import ensemble_checkpoints

    r = ensemble_checkpoints(args.checkpoints, args.split, args.data_dir, args.batch_size, args.device)
    lines = [f"{m['checkpoint']} ({m['model']}): {100 * m['accuracy']:.2f}%" for m in r["members"]]
    lines.append(f"ensemble of {len(r['members'])} (mean softmax) on {r['data']} {r['split']}: "
                 f"{100 * r['ensemble_accuracy']:.2f}% of {r['images']} images")
    print_json_or(args, r, "\n".join(lines))
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


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``train``, ``eval``, ``predict`` and ``ensemble``."""
    for add in (_add_train, _add_eval, _add_predict, _add_ensemble):
        add(sub)
