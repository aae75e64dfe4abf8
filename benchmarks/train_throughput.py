"""Training throughput: cnnlab's trainer against the conventional PyTorch pipeline, side by side.

The conventional pipeline is the tutorial way: torchvision's ``FashionMNIST`` dataset, ``transforms``
(RandomCrop with padding, RandomHorizontalFlip, ToTensor, Normalize) and a ``DataLoader``, feeding the
plain loop (zero_grad, forward, cross-entropy, backward, step). cnnlab's trainer runs the same model,
batch size, augmentation and optimizer through ``cnnlab.train.train`` (the uint8 tensor path).

Both are timed for the same wall time after a warm-up; the printed ratio is images/s (ours / theirs).
Achieved GFLOP/s count a training step as 3 forward passes (backward ~ 2x forward) of 2 x MACs each,
and are compared with this machine's fp32 matmul peak measured here (torch.mm, 2048 x 2048).

    python benchmarks/train_throughput.py --models lenet5 resnet20 --seconds 30
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import cnnlab
from cnnlab.analysis.counting import count_macs
from cnnlab.data import DATASETS, data_roots
from cnnlab.data.sources import find_dataset_dir
from cnnlab.train import TrainConfig, train
from cnnlab.train.build import split_outputs
from cnnlab.train.runtime import set_threads

FASHION_MEAN, FASHION_STD = 0.2860, 0.3530


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best fp32 GFLOP/s of an n x n matrix product on this machine with the current thread count."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * n**3 / (time.perf_counter() - start) / 1e9)
    return best


def torchvision_root(data_dir: str | None) -> Path:
    """A folder laid out as torchvision's FashionMNIST expects (raw, uncompressed IDX files)."""
    folder, missing = find_dataset_dir(DATASETS["fashion-mnist"], data_roots(data_dir))
    if folder is None:
        sys.exit(f"Fashion-MNIST not found ({missing}); install dataset-fashion-mnist or pass --data-dir")
    root = Path(tempfile.mkdtemp(prefix="cnnlab-bench-"))
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for split_files in DATASETS["fashion-mnist"].files.values():
        for name in split_files:
            src = folder / name if (folder / name).exists() else folder / f"{name}.gz"
            opener = gzip.open if src.suffix == ".gz" else open
            with opener(src, "rb") as f_in, open(raw / name, "wb") as f_out:
                shutil.copyfileobj(f_in, f_out)
    return root


def conventional_images_per_second(
    model_name: str, root: Path, batch: int, workers: int, seconds: float, warmup_steps: int, lr: float
) -> float:
    """Images/s of the tutorial pipeline: torchvision dataset + transforms + DataLoader + plain loop."""
    import torchvision
    from torchvision import transforms

    transform = transforms.Compose(
        [
            transforms.RandomCrop(28, padding=2),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize((FASHION_MEAN,), (FASHION_STD,)),
        ]
    )
    dataset = torchvision.datasets.FashionMNIST(str(root), train=True, transform=transform, download=False)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        drop_last=True,
        persistent_workers=workers > 0,
    )
    model = cnnlab.create_model(model_name, num_classes=10, in_chans=1)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    model.train()
    images, steps, start = 0, 0, None
    while True:
        for x, y in loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(split_outputs(model(x))[0], y)
            loss.backward()
            optimizer.step()
            steps += 1
            if steps == warmup_steps:
                start = time.perf_counter()
            elif start is not None:
                images += len(y)
                if time.perf_counter() - start >= seconds:
                    return images / (time.perf_counter() - start)


def cnnlab_images_per_second(
    model_name: str,
    data_dir: str | None,
    batch: int,
    seconds: float,
    threads: int,
    lr: float,
    compile_model: bool,
    out: Path,
) -> float:
    """Images/s of ``cnnlab.train.train`` on the same settings, stopped by its time budget."""
    cfg = TrainConfig(
        model=model_name,
        data="fashion-mnist",
        data_dir=data_dir,
        download=False,
        epochs=100,
        batch_size=batch,
        optimizer="sgd",
        lr=lr,
        momentum=0.9,
        nesterov=True,
        weight_decay=5e-4,
        schedule="constant",
        crop_padding=2,
        hflip=True,
        val_split=0,
        threads=threads,
        quiet=True,
        time_budget=seconds,
        out=str(out),
        compile=compile_model,
        tensorboard=False,
        eval_batch_size=1024,
        log_every=10,
    )
    return train(cfg)["images_per_second"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["lenet5", "resnet20"])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=30.0, help="timed seconds per pipeline and model")
    parser.add_argument("--warmup-steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="torch threads of both pipelines (default: every core this process may use)")
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[0, 2],
        help="DataLoader workers to try for the conventional pipeline; the fastest counts",
    )
    parser.add_argument("--compile", action="store_true", help="also torch.compile cnnlab's model")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--json", type=Path, default=None, help="write the rows here as JSON")
    args = parser.parse_args()

    threads = set_threads(args.threads)
    peak = matmul_peak_gflops()
    print(f"threads {threads}; fp32 matmul peak {peak:.1f} GFLOP/s")
    root = torchvision_root(args.data_dir)
    rows = []
    try:
        for name in args.models:
            lr = 0.05
            out = Path(tempfile.mkdtemp(prefix="cnnlab-bench-run-")) / name
            ours = cnnlab_images_per_second(
                name, args.data_dir, args.batch_size, args.seconds, threads, lr, args.compile, out
            )
            set_threads(threads)
            theirs = {
                w: conventional_images_per_second(
                    name, root, args.batch_size, w, args.seconds, args.warmup_steps, lr
                )
                for w in args.workers
            }
            best_workers = max(theirs, key=theirs.get)
            model = cnnlab.create_model(name, num_classes=10, in_chans=1)
            macs = count_macs(model, (1, 28, 28))
            gflops = ours * 6 * macs / 1e9
            rows.append(
                {
                    "model": name,
                    "batch_size": args.batch_size,
                    "threads": threads,
                    "cnnlab_images_per_second": ours,
                    "conventional_images_per_second": theirs[best_workers],
                    "conventional_workers": best_workers,
                    "ratio": ours / theirs[best_workers],
                    "macs_per_image": macs,
                    "gflops": gflops,
                    "matmul_peak_gflops": peak,
                    "fraction_of_peak": gflops / peak,
                    "conventional_by_workers": {str(k): v for k, v in theirs.items()},
                }
            )
            shutil.rmtree(out.parent, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(
        f"\n{'model':<12}{'cnnlab img/s':>14}{'tutorial img/s':>16}{'ratio':>8}{'GFLOP/s':>10}{'% peak':>8}"
    )
    for r in rows:
        print(
            f"{r['model']:<12}{r['cnnlab_images_per_second']:>14,.0f}"
            f"{r['conventional_images_per_second']:>16,.0f}{r['ratio']:>7.2f}x{r['gflops']:>10.1f}"
            f"{100 * r['fraction_of_peak']:>7.1f}%"
        )
    print(
        f"(tutorial pipeline: best of DataLoader workers {args.workers}; median ratio "
        f"{statistics.median(r['ratio'] for r in rows):.2f}x)"
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
