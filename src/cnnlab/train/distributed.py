"""DistributedDataParallel set-up from torchrun's environment: NCCL on GPUs, gloo on the CPU.

The same ``cnnlab train`` command runs one process or N: torchrun sets RANK/WORLD_SIZE/LOCAL_RANK,
each rank trains on its slice of every global batch, and only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = [
    "DistEnv",
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
