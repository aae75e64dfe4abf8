"""How fast cnnlab fills a loss-landscape grid beside the reference code's way (tomgoldstein/loss-landscape).

The task of issue 12: an 11x11 grid of ResNet-20 on 2,000 Fashion-MNIST training images, the same two
filter-normalized directions and the same data for both, the same threads. The reference's evaluation loop
is re-implemented here from its description (not copied): for each grid point, write ``w + x*d0 + y*d1``
into the parameters, then loop over a DataLoader whose dataset decodes every image with per-image
transforms (PIL image -> ToTensor -> Normalize), 128 images per batch, ``--workers`` loader processes (the
reference's ``--threads``, default 2), the network in eval mode under ``torch.no_grad``. cnnlab's is
``SurfaceEvaluator``: the subset normalized once and kept in memory, inference mode, batch norm folded
into the convolutions, convolution + residual addition + ReLU as one oneDNN primitive, channels-last.
Every point's loss must agree within 1e-4, relative to the loss where it is above 1 (far out on the grid
an untrained network's loss reaches 10^4, where float32 rounding alone, summed in another order by another
convolution algorithm, moves the fourth decimal); the goal is 2x.

``--variants`` then times each of cnnlab's options alone on a few points (seconds per point): BN folding
off, fusion off, channels-last off, bigger batches, torch.compile, and several points per forward through
``torch.func.functional_call`` under ``vmap``: what pays and what does not (docs/landscape.md).

    python benchmarks/landscape_speed.py                       # 11x11, 2,000 images, 2 threads
    python benchmarks/landscape_speed.py --variants            # and each option alone
    python benchmarks/landscape_speed.py --quick               # 3x3 grid, 256 images: a smoke test
    python benchmarks/landscape_speed.py --checkpoint runs/resnet20/last.pt   # a trained ResNet-20

With more than one thread the grid is also dealt to as many one-thread processes (``split_grid``), the way
``torchrun --nproc_per_node=N -m cnnlab.cli landscape ... --threads 1`` deals it: the same cores, used as
processes instead of threads.

Without ``--checkpoint`` the network has its initial weights with batch-norm statistics measured on the
subset (so that folding has something to fold). Run on a quiet machine: the numbers are wall-clock times.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import cnnlab
from cnnlab.data import channel_stats, load_arrays
from cnnlab.errors import DataError
from cnnlab.experiments.landscape import SurfaceEvaluator, parse_axes, random_directions
from cnnlab.experiments.landscape.run import balanced_indices

# ------------------------------------------------------------------------------------------------ the data


def subset(points: int, data_dir: str | None, quick: bool) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(uint8 images (N, 1, 28, 28), labels, where from): a class-balanced subset of Fashion-MNIST's training set."""
    try:
        train = load_arrays("fashion-mnist", data_dir, download=False)["train"]
    except DataError:
        if not quick:
            raise
        generator = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (points, 1, 28, 28), dtype=torch.uint8, generator=generator)
        return images, torch.randint(0, 10, (points,), generator=generator), "random images (no Fashion-MNIST)"
    picked = balanced_indices(train.labels, len(train.classes), points, seed=0)
    return train.images[picked], train.labels[picked], train.source


def network(checkpoint: str | None, x: torch.Tensor) -> nn.Module:
    """ResNet-20 for 1-channel 28x28 images: a trained checkpoint, or initial weights with measured BN statistics."""
    if checkpoint:
        from cnnlab.train import load_trained_model

        return load_trained_model(checkpoint)[0]
    torch.manual_seed(0)
    model = cnnlab.create_model("resnet20", in_chans=1, num_classes=10)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None  # a cumulative average over the subset
    model.train()
    with torch.no_grad():
        for xb in x.split(128):
            model(xb)
    return model.eval()


# --------------------------------------------------------------------------------- the reference's loop


class PerImageDataset(torch.utils.data.Dataset):
    """Like torchvision's data sets: a PIL image per item, then ToTensor and Normalize."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, mean: float, std: float) -> None:
        import torchvision.transforms as T

        self.images = images[:, 0].numpy()
        self.labels = labels.tolist()
        self.transform = T.Compose([T.ToTensor(), T.Normalize((mean,), (std,))])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[index], mode="L")), self.labels[index]


def reference_grid(model: nn.Module, directions: Sequence[dict], coords: Sequence[tuple[float, float]],
                   dataset: PerImageDataset, workers: int) -> list[float]:
    """One point at a time: set the weights, then evaluate through a DataLoader (the reference's crunch loop)."""
    net = copy.deepcopy(model)
    names = [k for k, _ in net.named_parameters()]
    weights = [p.data.clone() for p in net.parameters()]
    dx, dy = ([d[k] for k in names] for d in directions)
    loader = torch.utils.data.DataLoader(dataset, batch_size=128, shuffle=False, num_workers=workers)
    criterion = nn.CrossEntropyLoss()
    losses = []
    for x, y in coords:
        for p, w, d0, d1 in zip(net.parameters(), weights, dx, dy):
            p.data = w + (d0 * x + d1 * y).type(type(w))
        net.eval()
        total_loss, correct, total = 0.0, 0, 0
        with torch.no_grad():
            for inputs, targets in loader:
                outputs = net(inputs)
                loss = criterion(outputs, targets)
                total_loss += loss.item() * inputs.size(0)
                total += inputs.size(0)
                correct += outputs.data.max(1)[1].eq(targets).sum().item()
        losses.append(total_loss / total)
    return losses


# ------------------------------------------------------------------------------------------ cnnlab's ways


def cnnlab_grid(model: nn.Module, directions: Sequence[dict], coords: Sequence[tuple[float, float]],
                images: torch.Tensor, labels: torch.Tensor, mean: float, std: float, **options) -> list[float]:
    """The evaluator as ``cnnlab landscape`` runs it (setup included in the time: normalizing, folding)."""
    evaluator = cnnlab_evaluator(model, directions, images, labels, mean, std, **options)
    return [evaluator(point)["train_loss"] for point in coords]


def cnnlab_evaluator(model: nn.Module, directions: Sequence[dict], images: torch.Tensor, labels: torch.Tensor,
                     mean: float, std: float, **options) -> SurfaceEvaluator:
    """``SurfaceEvaluator`` on the subset as ``cnnlab landscape`` prepares it (normalized once, in memory)."""
    x = (images.float() - 255 * mean) * (1 / (255 * std))  # what the run's BatchAugment.eval gives
    return SurfaceEvaluator(model, directions, {"train": (x, labels)}, **options)


def alternating(model: nn.Module, directions: Sequence[dict], coords: Sequence[tuple[float, float]],
                dataset: PerImageDataset, images: torch.Tensor, labels: torch.Tensor, mean: float, std: float,
                workers: int, row: int) -> tuple[float, list[float], float, list[float]]:
    """Both ways over the grid, timed in alternating rows of ``row`` points (the reference's row, then cnnlab's),
    so that a shared machine's drift falls on both alike; cnnlab's set-up (normalizing, folding, tracing) is
    in its time. Returns (reference seconds, losses, cnnlab seconds, losses)."""
    ours_s, evaluator = timed(lambda: cnnlab_evaluator(model, directions, images, labels, mean, std))
    ref_s, ours, ref = 0.0, [], []
    for first in range(0, len(coords), row):
        chunk = coords[first:first + row]
        seconds, values = timed(lambda c=chunk: reference_grid(model, directions, c, dataset, workers))
        ref_s, ref = ref_s + seconds, ref + values
        seconds, values = timed(lambda c=chunk: [evaluator(point)["train_loss"] for point in c])
        ours_s, ours = ours_s + seconds, ours + values
    return ref_s, ref, ours_s, ours


def _grid_share(task: tuple) -> list[float]:
    """One process's share of the grid on one thread (runs in a spawned worker)."""
    torch.set_num_threads(1)
    model, directions, coords, images, labels, mean, std = task
    return cnnlab_grid(model, directions, coords, images, labels, mean, std)


def split_grid(model: nn.Module, directions: Sequence[dict], coords: Sequence[tuple[float, float]],
               images: torch.Tensor, labels: torch.Tensor, mean: float, std: float, processes: int) -> list[float]:
    """The grid dealt round-robin to ``processes`` one-thread processes, as ``torchrun --nproc_per_node=N
    -m cnnlab.cli landscape ... --threads 1`` deals it (the processes' start is in the time)."""
    import multiprocessing

    shares = [list(coords[k::processes]) for k in range(processes)]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        parts = pool.map(_grid_share, [(model, directions, share, images, labels, mean, std) for share in shares])
    losses = [0.0] * len(coords)
    for k, part in enumerate(parts):
        losses[k::processes] = part
    return losses


def vmap_grid(model: nn.Module, directions: Sequence[dict], coords: Sequence[tuple[float, float]],
              images: torch.Tensor, labels: torch.Tensor, mean: float, std: float, points: int = 4) -> list[float]:
    """``points`` grid points per forward: stacked weights through functional_call under vmap (grouped convs)."""
    from torch.func import functional_call, vmap

    x = (images.float() - 255 * mean) * (1 / (255 * std))
    params = {k: p.detach() for k, p in model.named_parameters()}
    buffers = dict(model.named_buffers())

    def forward(p, xb):
        return functional_call(model, {**p, **buffers}, (xb,))

    losses = []
    with torch.inference_mode():
        for start in range(0, len(coords), points):
            c = torch.tensor(coords[start:start + points])  # (k, 2)
            stacked = {k: v + torch.einsum("k,...->k...", c[:, 0], directions[0][k])
                       + torch.einsum("k,...->k...", c[:, 1], directions[1][k]) for k, v in params.items()}
            total = torch.zeros(len(c), dtype=torch.float64)
            for xb, yb in zip(x.split(128), labels.split(128)):
                out = vmap(forward, in_dims=(0, None))(stacked, xb)  # (k, B, classes)
                total += F.cross_entropy(out.transpose(1, 2), yb.expand(len(c), -1), reduction="none").sum(1).double()
            losses += (total / len(x)).tolist()
    return losses


def max_difference(a: Sequence[float], b: Sequence[float]) -> float:
    """The largest |a - b| / max(1, |a|) over the points."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(a))))


T = TypeVar("T")


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    """(seconds, result) of ``fn()``."""
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


# -------------------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3x3 grid on 256 images, variants on 2 points")
    parser.add_argument("--grid", type=int, default=11, help="points per axis (default 11)")
    parser.add_argument("--points", type=int, default=2000, help="training images (default 2000)")
    parser.add_argument("--threads", type=int, default=2, help="PyTorch threads of both (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="the reference's DataLoader processes (default 2)")
    parser.add_argument("--variants", action="store_true", help="also time each cnnlab option alone")
    parser.add_argument("--variant-points", type=int, default=6, help="grid points per variant (default 6)")
    parser.add_argument("--checkpoint", help="a trained ResNet-20 checkpoint of cnnlab train")
    parser.add_argument("--data-dir", help="folder holding Fashion-MNIST")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()
    if args.quick:
        args.grid, args.points, args.variant_points = 3, 256, 2
    torch.set_num_threads(args.threads)

    images, labels, source = subset(args.points, args.data_dir, args.quick)
    (mean,), (std,) = channel_stats(images)
    x = (images.float() - 255 * mean) * (1 / (255 * std))
    model = network(args.checkpoint, x)
    directions = random_directions(model, 2, seed=0)
    grid = parse_axes(2, args.grid, "-1:1")
    coords = [grid.coords(i) for i in range(grid.size)]
    print(f"ResNet-20, {grid.shape[1]}x{grid.shape[0]} grid, {len(labels)} images ({source}), "
          f"{args.threads} threads, reference DataLoader workers: {args.workers}")

    dataset = PerImageDataset(images, labels, mean, std)
    ref_s, ref, ours_s, ours = alternating(model, directions, coords, dataset, images, labels, mean, std,
                                           args.workers, grid.shape[1])
    diff = max_difference(ref, ours)
    rows = [{"what": "reference loop", "seconds": ref_s, "per_point": ref_s / len(coords)},
            {"what": "cnnlab", "seconds": ours_s, "per_point": ours_s / len(coords)}]
    if args.threads > 1:  # the same cores as processes of one thread each: how torchrun splits a grid
        split_s, split = timed(lambda: split_grid(model, directions, coords, images, labels, mean, std,
                                                  args.threads))
        diff = max(diff, max_difference(ref, split))
        rows.append({"what": f"cnnlab, {args.threads} processes x 1 thread", "seconds": split_s,
                     "per_point": split_s / len(coords)})
    print(f"{'':34s} {'seconds':>9s} {'s/point':>9s} {'speed-up':>9s}")
    for row in rows:
        print(f"{row['what']:34s} {row['seconds']:9.2f} {row['per_point']:9.3f} {ref_s / row['seconds']:8.2f}x")
    print(f"largest loss difference over the {len(coords)} points: {diff:.2e} (relative where the loss is above 1; "
          f"must be below 1e-4: {'yes' if diff < 1e-4 else 'NO'}); losses from {min(ref):.4g} to {max(ref):.4g}")

    if args.variants:
        few = coords[: args.variant_points]
        ref_point = ref_s / len(coords)
        variants = {
            "cnnlab (fold, fuse, channels-last, b128)": {},
            "  fusion off": {"fuse": False},
            "  BN folding off": {"fold_bn": False},
            "  channels-last off": {"channels_last": False},
            "  fold and channels-last off": {"fold_bn": False, "channels_last": False},
            "  batch 256": {"batch_size": 256},
            "  batch 512": {"batch_size": 512},
            "  torch.compile": {"compile": True},
        }
        first_variant = len(rows)
        print(f"\neach option on {len(few)} points (setup included; compile's start is in its time)")
        for name, options in variants.items():
            seconds, values = timed(lambda o=options: cnnlab_grid(model, directions, few, images, labels, mean, std,
                                                                  **o))
            rows.append({"what": name.strip(), "seconds": seconds, "per_point": seconds / len(few),
                         "max_diff": max_difference(ours[: len(few)], values)})
        seconds, values = timed(lambda: vmap_grid(model, directions, few, images, labels, mean, std))
        rows.append({"what": "vmap, 4 points per forward", "seconds": seconds, "per_point": seconds / len(few),
                     "max_diff": max_difference(ours[: len(few)], values)})
        for row in rows[first_variant:]:
            print(f"{row['what']:34s} {row['seconds']:9.2f} {row['per_point']:9.3f} "
                  f"{ref_point / row['per_point']:8.2f}x  max|diff| {row['max_diff']:.1e}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"grid": list(grid.shape), "images": len(labels), "threads": args.threads,
                       "workers": args.workers, "max_diff": diff, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
