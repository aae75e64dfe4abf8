"""Data parallelism on CPU processes: DistributedDataParallel against one flat all-reduce after backward.

``cnnlab train`` under torchrun on CPUs averages gradients with ``GradientAllReduce`` (one flat gloo
all-reduce after the backward pass, cnnlab/train/distributed.py) instead of wrapping the model in
DistributedDataParallel, whose bucketed all-reduces overlap the backward pass on a helper thread. This
script times the three ways side by side on the same processes: training steps without any synchronisation
(the ceiling), with DDP, and with the flat all-reduce. The rounds alternate (none, DDP, flat, none, ...) so
that a machine's drift falls on all three alike; the table shows the median step rate and each way's ratio
to no synchronisation.

    python benchmarks/cpu_ddp.py                          # 2 processes x 1 thread, U-Net and ResNet-20
    python benchmarks/cpu_ddp.py --processes 2 --rounds 5 --steps 40

Run on a quiet machine: the numbers are wall-clock times.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from cnnlab.models import create_model
from cnnlab.train.distributed import DistEnv, GradientAllReduce

MODES = ("none", "ddp", "flat")
# (label, model, builder options, input side, classes, images per process and step)
CASES = (("U-Net w8 d3, 64x64 scenes", "unet", {"width": 8, "depth": 3}, 64, 11, 16),
         ("ResNet-20, 28x28", "resnet20", {}, 28, 10, 64))


def _steps_per_second(model: nn.Module, mode: str, env: DistEnv, side: int, classes: int, batch: int,
                      steps: int) -> float:
    """Training steps per second of ``model`` under ``mode`` (each rank its own random batch)."""
    sync = GradientAllReduce(model, env) if mode == "flat" else None
    net = nn.parallel.DistributedDataParallel(model) if mode == "ddp" else model
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    gen = torch.Generator().manual_seed(env.rank)
    x = torch.randn(batch, 1, side, side, generator=gen).contiguous(memory_format=torch.channels_last)
    shape = (batch, side, side) if classes == 11 else (batch,)
    y = torch.randint(0, classes, shape, generator=gen)
    for step in range(steps + 3):  # 3 warm-up steps
        if step == 3:
            dist.barrier()
            start = time.perf_counter()
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if sync is not None:
            sync()
        opt.step()
    dist.barrier()
    return steps / (time.perf_counter() - start)


def _worker(rank: int, world: int, port: int, args: argparse.Namespace, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(args.threads)
    env = DistEnv(rank, world, rank, world)
    rates: dict[str, dict[str, list[float]]] = {}
    try:
        for label, name, options, side, classes, batch in CASES:
            rates[label] = {m: [] for m in MODES}
            for _ in range(args.rounds):
                for mode in MODES:
                    torch.manual_seed(0)
                    model = create_model(name, num_classes=classes, in_chans=1, **options)
                    model.to(memory_format=torch.channels_last)
                    rates[label][mode].append(_steps_per_second(model, mode, env, side, classes, batch, args.steps))
        if rank == 0:
            Path(out).write_text(json.dumps(rates))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=2, help="training processes (default: 2)")
    parser.add_argument("--threads", type=int, default=1, help="threads per process (default: 1)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per way (default: 5)")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per round (default: 40)")
    parser.add_argument("--out", type=Path, default=Path("runs/cpu_ddp.json"))
    args = parser.parse_args()
    if min(args.processes, args.threads, args.rounds, args.steps) < 1 or args.processes < 2:
        parser.error("--processes needs at least 2; --threads, --rounds and --steps at least 1")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    scratch = args.out.with_suffix(".rates.json")
    mp.spawn(_worker, args=(args.processes, _free_port(), args, str(scratch)), nprocs=args.processes, join=True)
    rates = json.loads(scratch.read_text())
    scratch.unlink()
    print(f"{args.processes} processes x {args.threads} thread(s), median of {args.rounds} rounds of "
          f"{args.steps} steps (images per process and step in brackets)")
    print(f"{'network':<32}{'no sync':>12}{'DDP':>16}{'flat all-reduce':>20}")
    rows = []
    for (label, *_, batch) in CASES:
        med = {m: statistics.median(rates[label][m]) for m in MODES}
        rows.append({"network": label, "batch_per_process": batch, "steps_per_second": med, "rounds": rates[label]})
        print(f"{label + f' [{batch}]':<32}{med['none']:>9.2f}/s{med['ddp']:>9.2f}/s "
              f"{med['ddp'] / med['none']:.2f}x{med['flat']:>13.2f}/s {med['flat'] / med['none']:.2f}x")
    args.out.write_text(json.dumps({"processes": args.processes, "threads": args.threads, "rounds": args.rounds,
                                    "steps": args.steps, "rows": rows}, indent=2) + "\n")
    print(f"results in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
