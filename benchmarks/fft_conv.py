"""Direct (F.conv2d) against FFT convolution (cnnlab.nn.fft_conv2d) on CPU: times, ratios, crossover kernel.

    python benchmarks/fft_conv.py [--out benchmarks/results] [--threads N] [--quick]

Every (image size, kernel size) pair is timed for both methods back to back in one run, forward only
(under no_grad, as in inference) and forward + backward (gradients of input and weight, as in training).
The convolution is 'same'-padded with stride 1, so both methods produce the same H x W output.

Channels are fixed at 8 in, 8 out, batch 4 by default. The direct cost is B * C_in * C_out * H * W * k^2
multiply-adds; the FFT cost is transforms, O((B * C_in + C_in * C_out + B * C_out) * N^2 log N) on the
padded N x N grid, plus a per-frequency product, O(B * C_in * C_out * N^2). Channels scale both sides
alike, so the k^2 against log N comparison that decides the crossover shows through; small channels keep
the full sweep (a direct 31 x 31 convolution of a 256 x 256 image is the slowest case) within a few
minutes on 2 cores. Use --channels and --batch to see how the constants move.

Writes to --out: results.json (configuration, environment, every timing, crossovers), results.csv,
table.md (the ratio tables to paste into docs/benchmarks.md) and fft_conv.png (ratio against kernel size).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from cnnlab.nn import fft_conv2d

KERNELS = (3, 5, 7, 11, 15, 21, 31)
SIZES = (28, 64, 128, 256)
QUICK_KERNELS = (3, 9)
QUICK_SIZES = (16, 28)
MODES = ("forward", "forward+backward")
METHODS: tuple[Callable[..., torch.Tensor], ...] = (F.conv2d, fft_conv2d)


@dataclass(frozen=True)
class Timing:
    """One (mode, image size, kernel size) cell: median (and min) milliseconds per call of each method."""

    mode: str
    size: int
    kernel: int
    direct_ms: float
    fft_ms: float
    direct_min_ms: float
    fft_min_ms: float

    @property
    def ratio(self) -> float:
        """FFT time / direct time: below 1 the FFT is faster."""
        return self.fft_ms / self.direct_ms


def free_cores() -> int:
    """Cores this process may run on, less those the 1-minute load average says are busy; at least 1."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    busy = round(os.getloadavg()[0]) if hasattr(os, "getloadavg") else 0
    return max(1, usable - busy)


def time_call(call: Callable[[], None], budget_s: float) -> tuple[float, float]:
    """(median, min) wall seconds of ``call``: one warm-up, then repeats until ``budget_s`` has passed.

    At least one timed call follows the warm-up, since the first call of a shape pays one-time costs
    (allocation, oneDNN primitive and FFT plan set-up) that can rival a small convolution.
    """
    call()
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while not times or time.perf_counter() < deadline:
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def warm_up_engines(channels: int, batch: int) -> None:
    """One small forward + backward of each method: the first ever backward starts autograd's machinery."""
    x = torch.randn(batch, channels, 8, 8)
    w = torch.randn(channels, channels, 3, 3)
    for conv in METHODS:
        for mode in MODES:
            make_call(conv, x, w, mode)()


def make_call(conv: Callable[..., torch.Tensor], x: torch.Tensor, w: torch.Tensor,
              mode: str) -> Callable[[], None]:
    """A no-argument closure running one forward (no_grad) or one forward + backward of ``conv``."""
    if mode == "forward":
        def forward() -> None:
            with torch.no_grad():
                conv(x, w, padding="same")
        return forward
    x, w = x.clone().requires_grad_(), w.clone().requires_grad_()
    grad_out = torch.randn_like(x[:, :1]).expand(-1, w.shape[0], -1, -1).contiguous()  # (B, C_out, H, W)

    def forward_backward() -> None:
        x.grad = w.grad = None
        conv(x, w, padding="same").backward(grad_out)
    return forward_backward


def run_sweep(sizes: Sequence[int], kernels: Sequence[int], channels: int, batch: int,
              budget_s: float, log: Callable[[str], None]) -> list[Timing]:
    """Time both methods on every (mode, size, kernel), the two methods back to back for each cell."""
    gen = torch.Generator().manual_seed(0)
    warm_up_engines(channels, batch)
    timings = []
    for size in sizes:
        x = torch.randn(batch, channels, size, size, generator=gen)
        for kernel in kernels:
            w = torch.randn(channels, channels, kernel, kernel, generator=gen) / kernel
            for mode in MODES:
                direct = time_call(make_call(F.conv2d, x, w, mode), budget_s)
                fft = time_call(make_call(fft_conv2d, x, w, mode), budget_s)
                ms = [1e3 * t for t in (direct[0], fft[0], direct[1], fft[1])]
                timing = Timing(mode, size, kernel, *ms)
                log(f"  {mode:<17} {size:>4}px k={kernel:<3} direct {timing.direct_ms:9.3f} ms   "
                    f"fft {timing.fft_ms:9.3f} ms   ratio {timing.ratio:7.3f}")
                timings.append(timing)
    return timings


def crossover(points: Sequence[tuple[int, float]]) -> dict[str, float | None]:
    """Where the FFT starts winning along (kernel, ratio) points sorted by kernel.

    ``kernel``: the smallest measured kernel from which the FFT is faster at every larger measured kernel
    (None if it is slower at the largest). ``interpolated``: the kernel where log(ratio) crosses 0 on the
    line between that kernel and the one before it (None when the FFT wins already at the smallest).
    """
    if not points or points[-1][1] >= 1:
        return {"kernel": None, "interpolated": None}
    index = len(points)  # walk back to the first point of the final run of FFT wins
    while index > 0 and points[index - 1][1] < 1:
        index -= 1
    kernel = points[index][0]
    if index == 0:
        return {"kernel": kernel, "interpolated": None}
    (k0, r0), (k1, r1) = points[index - 1], points[index]
    t = math.log(r0) / (math.log(r0) - math.log(r1))
    return {"kernel": kernel, "interpolated": round(k0 + t * (k1 - k0), 1)}


def crossovers(timings: Sequence[Timing]) -> dict[str, dict[int, dict[str, float | None]]]:
    """The crossover of every (mode, image size) curve."""
    out: dict[str, dict[int, dict[str, float | None]]] = {}
    for mode in MODES:
        for size in sorted({t.size for t in timings}):
            points = sorted((t.kernel, t.ratio) for t in timings if t.mode == mode and t.size == size)
            out.setdefault(mode, {})[size] = crossover(points)
    return out


def markdown_tables(timings: Sequence[Timing], cross: dict, header: str) -> str:
    """One markdown table per mode: rows image sizes, columns kernels, cells FFT time / direct time."""
    kernels = sorted({t.kernel for t in timings})
    sizes = sorted({t.size for t in timings})
    ratio = {(t.mode, t.size, t.kernel): t.ratio for t in timings}
    lines = [header, ""]
    for mode in MODES:
        lines += [f"**{mode}**: FFT time / direct time (below 1: FFT faster)", "",
                  "| image | " + " | ".join(f"k={k}" for k in kernels) + " | crossover k |",
                  "|---:|" + "---:|" * len(kernels) + "---:|"]
        for size in sizes:
            where = describe_crossover(cross[mode][size])
            cells = " | ".join(f"{ratio[mode, size, k]:.2f}" for k in kernels)
            lines.append(f"| {size}x{size} | {cells} | {where} |")
        lines.append("")
    return "\n".join(lines)


def describe_crossover(c: dict[str, float | None]) -> str:
    """'11 (~9.4)' for a crossover between measured kernels, '<= 3' when the FFT wins throughout."""
    if c["kernel"] is None:
        return "none"
    if c["interpolated"] is None:
        return f"<= {c['kernel']}"
    return f"{c['kernel']} (~{c['interpolated']})"


def plot_ratios(timings: Sequence[Timing], title: str):
    """Ratio against kernel size, one line per image size, one panel per mode; returns the Figure."""
    from matplotlib.figure import Figure  # the object API: no pyplot state, renders with Agg

    fig = Figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, len(MODES), sharey=True)
    for ax, mode in zip(axes, MODES):
        for size in sorted({t.size for t in timings}):
            points = sorted((t.kernel, t.ratio) for t in timings if t.mode == mode and t.size == size)
            ax.plot(*zip(*points), marker="o", label=f"{size}x{size}")
        ax.axhline(1.0, color="black", linestyle="--", linewidth=1)
        ax.set(yscale="log", xlabel="kernel size k", title=mode, xticks=sorted({t.kernel for t in timings}))
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("FFT time / direct time")
    axes[0].legend(title="image")
    fig.suptitle(title)
    return fig


def environment(threads: int) -> dict[str, str | int]:
    return {"torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
            "processor": platform.processor() or platform.machine(), "threads": threads,
            "cpu_count": os.cpu_count() or 0}


def write_results(out: Path, config: dict, env: dict, timings: Sequence[Timing], cross: dict,
                  table: str, figure) -> list[Path]:
    """results.json, results.csv, table.md and fft_conv.png under ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / name for name in ("results.json", "results.csv", "table.md", "fft_conv.png")]
    rows = [{**asdict(t), "ratio": t.ratio} for t in timings]
    paths[0].write_text(json.dumps({"config": config, "environment": env, "results": rows,
                                    "crossover": cross}, indent=2) + "\n")
    with paths[1].open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    paths[2].write_text(table + "\n")
    figure.savefig(paths[3], dpi=120)
    return paths


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="directory for the results")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="intra-op threads (default: the cores not busy by the load average)")
    p.add_argument("--quick", action="store_true", help="a seconds-long smoke run on two tiny sizes")
    p.add_argument("--sizes", type=positive_int, nargs="+", default=None,
                   help=f"image sizes (default {SIZES})")
    p.add_argument("--kernels", type=positive_int, nargs="+", default=None,
                   help=f"kernel sizes (default {KERNELS})")
    p.add_argument("--channels", type=positive_int, default=8, help="input and output channels (default 8)")
    p.add_argument("--batch", type=positive_int, default=4, help="batch size (default 4)")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds of repeats per measurement (default 0.25, --quick 0.005)")
    args = p.parse_args(argv)
    if args.budget is not None and args.budget <= 0:
        p.error(f"--budget must be positive, got {args.budget}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = sorted(set(args.sizes or (QUICK_SIZES if args.quick else SIZES)))
    kernels = sorted(set(args.kernels or (QUICK_KERNELS if args.quick else KERNELS)))
    budget = args.budget or (0.005 if args.quick else 0.25)
    threads = args.threads or free_cores()
    config = {"sizes": sizes, "kernels": kernels, "channels": args.channels, "batch": args.batch,
              "padding": "same", "stride": 1, "dtype": "float32", "budget_s": budget, "quick": args.quick}
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        print(f"fft_conv benchmark: {threads} thread(s), batch {args.batch}, {args.channels} -> "
              f"{args.channels} channels, sizes {sizes}, kernels {kernels}", flush=True)
        start = time.perf_counter()
        timings = run_sweep(sizes, kernels, args.channels, args.batch, budget, lambda s: print(s, flush=True))
        elapsed = time.perf_counter() - start
    finally:
        torch.set_num_threads(previous_threads)
    env = {**environment(threads), "elapsed_s": round(elapsed, 1)}
    cross = crossovers(timings)
    header = (f"CPU, {threads} thread(s), torch {torch.__version__}; batch {args.batch}, {args.channels} -> "
              f"{args.channels} channels, 'same' padding, stride 1, float32; median of repeats")
    table = markdown_tables(timings, cross, header)
    title = f"FFT / direct convolution time, {threads} CPU thread(s), B={args.batch}, C={args.channels}"
    paths = write_results(args.out, config, env, timings, cross, table, plot_ratios(timings, title))
    print()
    print(table)
    print(f"swept in {elapsed:.1f} s; wrote " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
