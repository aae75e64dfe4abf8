"""``cnnlab landscape``: the loss around a trained checkpoint, as a resumable grid file and figures."""

from __future__ import annotations

import argparse

from cnnlab.cli._common import print_json_or, say

__all__ = ["register"]


def _cmd_landscape(args: argparse.Namespace) -> int:
    from cnnlab.experiments.landscape.run import LandscapeSettings, landscape_checkpoint

    settings = LandscapeSettings(
        dims=args.dims, grid=args.grid, range=args.range, seed=args.seed, norm=args.norm, ignore=args.ignore,
        orthogonal=args.orthogonal, to=args.to, trajectory=args.trajectory, points=args.points,
        subset_seed=args.subset_seed, test=args.test, bn=args.bn, batch_size=args.batch_size,
        fold_bn=args.fold_bn, channels_last=args.channels_last, fuse=args.fuse, compile=args.compile,
        hessian=args.hessian,
        hessian_method=args.hessian_method, hessian_iters=args.hessian_iters, hessian_points=args.hessian_points,
        curvature_grid=args.curvature_grid, levels=args.levels, device=args.device, threads=args.threads,
        data_dir=args.data_dir, progress=not args.quiet,
    )
    summary = landscape_checkpoint(args.checkpoint, args.out, settings)
    if "files" not in summary:
        return 0  # a torchrun process other than rank 0: rank 0 reports
    if not args.quiet:
        say(f"wrote {', '.join(summary['files'])} to {args.out}")
    lines = [f"{args.out}/{f}" for f in summary["files"]]
    if "centre" in summary:
        lines.append(f"centre: train loss {summary['centre']['train_loss']:.4f}")
    if "hessian" in summary and summary["hessian"]:
        h = summary["hessian"]
        lines.append(f"Hessian at the centre: lambda_max {h['lambda_max']:.4g}, lambda_min {h['lambda_min']:.4g}, "
                     f"|min/max| {h['ratio']:.3g}")
    print_json_or(args, summary, "\n".join(lines))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``landscape``."""
    from cnnlab.experiments.landscape.run import LandscapeSettings

    d = LandscapeSettings()
    p = sub.add_parser(
        "landscape", help="the loss landscape around a trained checkpoint (Li et al. 2018)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Evaluate the training loss and accuracy of a checkpoint written by cnnlab train on a 1-D or "
                    "2-D grid of weights around it: along random directions with filter normalization (Li et al. "
                    "2018), on the straight line to another checkpoint (--to, Goodfellow et al. 2015), or on the "
                    "PCA plane of the training trajectory (--trajectory, a run trained with --keep-epochs). The "
                    "grid is written to OUT/landscape.npz + landscape.json as it fills: rerun the same command to "
                    "finish a killed run. Figures: OUT/contour.png, surface.png (2-D), landscape_1d.png (1-D), "
                    "trajectory.png, curvature.png. Over several processes: torchrun --nproc_per_node=2 -m cnnlab.cli "
                    "landscape runs/resnet56 --out land/r56 --threads 1",
        epilog="examples:\n"
               "  cnnlab landscape runs/resnet56 --out land/resnet56 --grid 25 --range -1:1 --hessian\n"
               "  cnnlab landscape runs/a/last.pt --to runs/b/last.pt --dims 1 --out land/a-b",
    )
    p.add_argument("checkpoint", metavar="RUN_DIR_OR_CHECKPOINT", help="a run directory or a .pt checkpoint")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the grid, figures and summary")
    p.add_argument("--dims", type=int, choices=(1, 2), default=d.dims, help="1: a line, 2: a plane (default: 2)")
    p.add_argument("--grid", default=str(d.grid), help=f"points per axis, e.g. 51 or 51x41 (default: {d.grid})")
    p.add_argument("--range", help="coordinates, LOW:HIGH for every axis or one per axis (-1:1,-0.5:0.5); "
                                   "default -1:1, -0.5:1.5 with --to, the path's extent with --trajectory")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the random directions")
    p.add_argument("--norm", choices=("filter", "layer", "none"), default=d.norm,
                   help="direction normalization: filter (Li et al.), layer, none (default: filter)")
    p.add_argument("--ignore", choices=("biasbn", "none"), default=d.ignore,
                   help="biasbn: no movement of biases and batch-norm parameters (the paper's default); none")
    p.add_argument("--orthogonal", action="store_true", help="make the second direction exactly orthogonal")
    p.add_argument("--to", metavar="OTHER_CHECKPOINT", help="the line from this checkpoint to another (1-D)")
    p.add_argument("--trajectory", metavar="RUN_DIR",
                   help="the PCA plane of a run's saved epochs (cnnlab train --keep-epochs)")
    p.add_argument("--points", type=int, default=d.points,
                   help=f"training images the loss averages over, a fixed class-balanced subset (default: {d.points})")
    p.add_argument("--subset-seed", type=int, default=d.subset_seed, help="seed of that subset")
    p.add_argument("--test", action="store_true", help="also the test loss and accuracy")
    p.add_argument("--bn", choices=("eval", "recompute"), default=d.bn,
                   help="batch norm: the checkpoint's running statistics (eval), or recomputed at every point")
    p.add_argument("--batch-size", type=int, help="images per forward (default: 128 on a CPU, 1024 on a GPU)")
    p.add_argument("--fold-bn", action=argparse.BooleanOptionalAction, default=d.fold_bn,
                   help="fold batch norms into their convolutions (default: on)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="NHWC memory layout (default: on for CPU and CUDA)")
    p.add_argument("--fuse", action=argparse.BooleanOptionalAction, default=d.fuse,
                   help="on CPUs, run convolution -> [residual addition] -> ReLU as one oneDNN primitive "
                        "(default: on; checked against the unfused network first)")
    p.add_argument("--compile", action="store_true", help="torch.compile the network (pays on big grids)")
    p.add_argument("--hessian", action="store_true",
                   help="the largest and smallest Hessian eigenvalues at the centre")
    p.add_argument("--hessian-method", choices=("lanczos", "power"), default=d.hessian_method)
    p.add_argument("--hessian-iters", type=int, default=d.hessian_iters,
                   help=f"Hessian-vector products (Lanczos) or power iterations (default: {d.hessian_iters})")
    p.add_argument("--hessian-points", type=int, default=d.hessian_points,
                   help=f"images the Hessian's loss averages over (default: {d.hessian_points})")
    p.add_argument("--curvature-grid", type=int, default=d.curvature_grid, metavar="N",
                   help="also |lambda_min/lambda_max| on an N x N grid over the same range (0: none)")
    p.add_argument("--levels", type=int, default=d.levels, help="contour levels of the figures")
    p.add_argument("--device", default=d.device)
    p.add_argument("--threads", type=int, help="CPU threads per process (default: the free cores)")
    p.add_argument("--data-dir", help="folder holding the data set, if not where training found it")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=_cmd_landscape)
