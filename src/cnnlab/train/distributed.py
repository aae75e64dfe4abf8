"""Data-parallel set-up from torchrun's environment: NCCL on GPUs, gloo on the CPU.

The same ``cnnlab train`` command runs one process or N: torchrun sets RANK/WORLD_SIZE/LOCAL_RANK,
each rank trains on its slice of every global batch, and only rank 0 writes files.

On GPUs the model is wrapped in DistributedDataParallel, whose all-reduces overlap the backward pass. On
CPUs ``GradientAllReduce`` averages the gradients in one flat all-reduce after the backward pass instead:
gloo's overlapping all-reduces run on a helper thread, and when every core already runs a training process
that thread competes with the backward pass (measured: steps 15-20% slower than without synchronisation,
against 1-2% for one flat all-reduce; docs/benchmarks.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "DistEnv",
    "GradientAllReduce",
    "all_reduce_sum",
    "cleanup_distributed",
    "env_from_torchrun",
    "gather_objects",
    "init_distributed",
    "main_value",
]


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def shard(self) -> tuple[int, int]:
        return self.rank, self.world_size


def env_from_torchrun() -> DistEnv:
    """Rank and sizes from torchrun's environment variables (one process when they are absent)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return DistEnv(
        int(os.environ.get("RANK", "0")),
        world,
        int(os.environ.get("LOCAL_RANK", "0")),
        int(os.environ.get("LOCAL_WORLD_SIZE", str(world))),
    )


def init_distributed(device: torch.device) -> DistEnv:
    """Join the process group when launched by torchrun; the backend follows the device."""
    env = env_from_torchrun()
    if not env.enabled or dist.is_initialized():
        return env
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(
        backend, rank=env.rank, world_size=env.world_size, device_id=device if device.type == "cuda" else None
    )
    return env


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """Sum a tensor over all ranks (in place); a no-op in one process."""
    if env.enabled:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def main_value(value: float, env: DistEnv, device: torch.device) -> float:
    """Rank 0's ``value`` on every rank (a clock read there, so that plans made from it agree)."""
    if not env.enabled:
        return value
    values = torch.tensor([value * float(env.is_main)], dtype=torch.float64, device=device)
    return all_reduce_sum(values, env).item()


def gather_objects(obj: object, env: DistEnv) -> list:
    """Every rank's ``obj`` in rank order (a one-item list in one process)."""
    if not env.enabled:
        return [obj]
    out: list = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


class GradientAllReduce:
    """Synchronous data parallelism: rank 0's state to all at the start, then one flat all-reduce per step.

    Each step's all-reduce carries every trainable parameter's gradient (summed, then divided by the world
    size, as DistributedDataParallel averages), a count of the ranks that produced it (a parameter no rank
    used keeps ``grad=None``, so the optimizer skips it as in one process) and rank 0's floating-point
    buffers (batch-norm statistics; DistributedDataParallel broadcasts them from rank 0 each step too).
    """

    def __init__(self, model: nn.Module, env: DistEnv) -> None:
        self.env = env
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.buffers = [b for b in model.buffers() if b.is_floating_point()]
        with torch.no_grad():
            for tensor in list(model.parameters()) + list(model.buffers()):
                dist.broadcast(tensor, src=0)

    @staticmethod
    def supports(model: nn.Module) -> bool:
        """Whether the model's trainable parameters and float buffers share one dtype (one flat buffer)."""
        kinds = {p.dtype for p in model.parameters() if p.requires_grad}
        kinds |= {b.dtype for b in model.buffers() if b.is_floating_point()}
        return len(kinds) <= 1

    @torch.no_grad()
    def __call__(self) -> None:
        """Average the gradients over the ranks (after ``backward``, before the optimizer step)."""
        if not self.params:
            return
        example = self.params[0]
        used = torch.tensor([float(p.grad is not None) for p in self.params], dtype=example.dtype)
        parts = [used.to(example.device)]
        parts += [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in self.params]
        main = float(self.env.is_main)
        parts += [b.reshape(-1) * main for b in self.buffers]
        flat = torch.cat(parts)
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        counts = flat[: len(self.params)].tolist()
        offset = len(self.params)
        for p, count in zip(self.params, counts):
            size = p.numel()
            if count > 0:
                chunk = flat[offset : offset + size].view(p.shape).div_(self.env.world_size)
                if p.grad is None:
                    p.grad = torch.empty_like(p)
                p.grad.copy_(chunk)
            offset += size
        for b in self.buffers:
            size = b.numel()
            b.copy_(flat[offset : offset + size].view(b.shape))
            offset += size
