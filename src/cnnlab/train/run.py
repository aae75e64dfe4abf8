"""The parts of one training run, in one typed object the loop's functions share."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from cnnlab.analysis.counting import count_forward, count_params
from cnnlab.errors import CheckpointError
from cnnlab.train.budget import BudgetPlanner
from cnnlab.train.checkpoint import TrainingCheckpoint, load_run_checkpoint, restore_rng
from cnnlab.train.config import TrainConfig
from cnnlab.train.console import notice
from cnnlab.train.distributed import DistEnv
from cnnlab.train.inputs import DataBundle
from cnnlab.train.optim import ModelEma
from cnnlab.train.runlog import RunLog
from cnnlab.train.runtime import hardware_info, precision_name
from cnnlab.train.schedules import Plateau
from cnnlab.train.state import TrainState
from cnnlab.train.tasks import Task

__all__ = ["Run"]


@dataclass
class Run:
    """Everything a training run works with: the model and its wrappers, optimizer, data, clocks, checkpoints."""

    cfg: TrainConfig
    env: DistEnv
    device: torch.device
    model: nn.Module  # the plain model: its state_dict is what checkpoints hold
    train_model: nn.Module  # the same, wrapped by DDP and/or torch.compile
    ema: ModelEma | None
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    plateau: Plateau
    data: DataBundle
    task: Task  # classification or segmentation: loss, hits, evaluation, the selecting score
    aug_gen: torch.Generator
    mix_rng: random.Random
    amp_dtype: torch.dtype | None
    log: RunLog
    threads: int
    aux_weight: float
    budget: BudgetPlanner | None = None
    session_start: float = 0.0
    wall_at_start: float = 0.0
    best_weights: dict | None = None
    frozen_norms: list[nn.Module] = field(default_factory=list)  # --freeze-backbone: kept in eval mode
    saved: tuple[Path, int] | None = None  # the last checkpoint written (path, global step), if any
    last_save_wall: float = 0.0  # run wall seconds (rank 0's clock) at the last checkpoint or the start

    def last_good(self) -> str:
        """Where the run can continue from, for a message about a failure."""
        if self.saved is None:
            return "no checkpoint was written before it"
        return f"the last good checkpoint is {self.saved[0]} (step {self.saved[1]})"

    @property
    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model

    @property
    def run_dir(self) -> Path:
        return self.log.dir

    def local_wall(self) -> float:
        """This process's wall seconds of the run, earlier sessions of a resumed run included."""
        return self.wall_at_start + time.perf_counter() - self.session_start

    def say(self, message: str) -> None:
        notice(message, self.env.is_main)

    def restore(self, ckpt: TrainingCheckpoint) -> TrainState:
        """Load a training checkpoint into the run's parts; the state to continue from."""
        self.model.load_state_dict(ckpt.model)
        self.optimizer.load_state_dict(ckpt.optimizer)
        self.scaler.load_state_dict(ckpt.scaler)
        self.plateau.load_state_dict(ckpt.plateau)
        if self.ema is not None:
            if ckpt.ema is None:
                raise CheckpointError("the checkpoint has no EMA weights to resume")
            self.ema.load_state_dict(ckpt.ema)
        ranks = ckpt.rng
        mine = ranks[self.env.rank] if len(ranks) == self.env.world_size else ranks[0]
        restore_rng(mine, self.aug_gen, self.mix_rng)
        best = Path(self.cfg.out) / "best.pt"
        if ckpt.state.best_epoch is not None and best.is_file():
            self.best_weights = load_run_checkpoint(best, self.device).model
        # A resumed run continues whatever stopped it (Ctrl-C, a spent time budget).
        return replace(ckpt.state, stop_reason=None)

    def results(self, state: TrainState, selected: str, test: dict | None) -> dict:
        """results.json: what was trained, the selected weights' test metrics (None when not tested), cost."""
        cfg, model, meta = self.cfg, self.eval_model, self.data.meta
        input_shape = (meta.in_chans, meta.input_size, meta.input_size)
        counted = count_forward(model, input_shape)  # the network as used at inference: no auxiliary heads
        tested = test or {}
        return {
            "model": cfg.model,
            "data": meta.dataset,
            "run_dir": str(self.run_dir),
            "test_accuracy": tested.get("accuracy"),
            "test_loss": tested.get("loss"),
            "test_images": tested.get("count", 0),
            "test_views": 10 if cfg.ten_crop else 2 if cfg.tta_flip else 1,  # predictions averaged per test image
            "selected": selected,
            f"best_val_{self.task.score_key}": state.best_val,
            "epochs_completed": state.epoch,
            "steps": state.global_step,
            "stopped_early": state.stop_reason
            or ("time budget" if state.total_steps is not None or state.epochs < cfg.epochs else None),
            "params": counted.params,
            "all_params": count_params(model),
            "macs": counted.macs,
            "input_size": list(input_shape),
            "num_classes": meta.num_classes,
            "wall_seconds": self.local_wall(),
            "precision": precision_name(self.amp_dtype),
            "train_seconds": state.train_seconds,
            "images_per_second": state.train_images / max(state.train_seconds, 1e-9),
            "hardware": hardware_info(self.device, self.threads, self.env.world_size),
            **(self.task.result_fields(test) if test else {}),
        }
