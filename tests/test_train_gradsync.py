"""GradientAllReduce (CPU data parallelism): averaged gradients, rank 0's buffers, unused parameters left alone."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from cnnlab.train.distributed import DistEnv, GradientAllReduce

WORLD = 2


class _Net(nn.Module):
    """A conv with batch norm, and a head no forward uses."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3)
        self.bn = nn.BatchNorm2d(3)
        self.unused = nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x)).sum()


def _worker(rank: int, port: int, folder: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    torch.set_num_threads(1)
    try:
        torch.manual_seed(100 + rank)  # different weights on each rank: the sync must start from rank 0's
        model = _Net().to(memory_format=torch.channels_last)
        sync = GradientAllReduce(model, DistEnv(rank, WORLD, rank, WORLD))
        start = {k: v.clone() for k, v in model.state_dict().items()}
        x = torch.randn(4, 1, 6, 6, generator=torch.Generator().manual_seed(rank))  # each rank its own batch
        model(x.contiguous(memory_format=torch.channels_last)).backward()
        own = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
        sync()
        torch.save({"start": start, "own": own, "state": model.state_dict(),
                    "grads": {k: None if p.grad is None else p.grad.clone() for k, p in model.named_parameters()}},
                   os.path.join(folder, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gradients_averaged_buffers_from_rank0_unused_untouched(tmp_path):
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("this PyTorch build has no gloo backend")
    mp.spawn(_worker, args=(_port(), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    zero, one = ranks
    # rank 0's weights reached rank 1 before training
    for key, value in zero["start"].items():
        assert torch.equal(one["start"][key], value), key
    assert not torch.allclose(zero["own"]["conv.weight"], one["own"]["conv.weight"])  # the batches differed
    for key in zero["own"]:
        mean = (zero["own"][key] + one["own"][key]) / WORLD
        for r in ranks:
            assert torch.allclose(r["grads"][key], mean, atol=1e-6), key
    assert zero["grads"]["unused.weight"] is None and one["grads"]["unused.weight"] is None
    # batch-norm statistics: each rank updated its own; after the sync both hold rank 0's
    assert not torch.equal(zero["state"]["bn.running_mean"], zero["start"]["bn.running_mean"])
    for key in ("bn.running_mean", "bn.running_var"):
        assert torch.equal(one["state"][key], zero["state"][key]), key
