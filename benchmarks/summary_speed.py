"""How long ``cnnlab.summary`` takes on big networks, against one real forward pass of the same network.

The summary runs on meta tensors (shapes only): two passes, one counting operations and tracing
receptive fields, one in training mode measuring what autograd saves. A torchinfo-style summary runs a
real forward pass instead; its cost is at least the forward time printed beside. Each time is the
median of ``--repeat`` runs.

    python benchmarks/summary_speed.py --models vgg16 resnet152 --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import cnnlab


def median_seconds(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def real_forward_seconds(name: str, repeat: int) -> float:
    info = cnnlab.get_model_info(name)
    model = cnnlab.create_model(name).eval()
    x = torch.randn(1, *info.input_size)
    with torch.no_grad():
        model(x)  # warm-up
        return median_seconds(lambda: model(x), repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["vgg16", "resnet152"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{'model':12s} {'input':>10s} {'summary (meta)':>15s} {'1 real forward':>15s}   threads={args.threads}")
    for name in args.models:
        size = cnnlab.get_model_info(name).input_size
        cnnlab.summary(name)  # imports and first-call costs out of the timing
        meta = median_seconds(lambda n=name: cnnlab.summary(n), args.repeat)
        real = real_forward_seconds(name, args.repeat)
        shape = "x".join(map(str, size))
        print(f"{name:12s} {shape:>10s} {meta:14.2f}s {real:14.2f}s")


if __name__ == "__main__":
    main()
