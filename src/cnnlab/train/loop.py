"""The training loop, as visible code: set up, then per epoch train, evaluate, log and checkpoint.

``train(config)`` runs a fresh run and ``resume_training(run_dir)`` continues one from ``last.pt``. The
state a run needs to continue exactly (weights, optimizer, schedule, scaler, EMA, every random
generator, the position in the epoch) is saved at epoch ends, every ``checkpoint_every`` steps and on
Ctrl-C; the data order is a pure function of (seed, epoch), so the position is just a step number.
The time-budget planner (``budget.py``), what is printed (``console.py``) and what the checkpoint files
hold (``checkpoint.py``) live beside this file; the order of a step's work reads top to bottom here.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from cnnlab.analysis.counting import count_macs, count_params
from cnnlab.errors import CheckpointError, CnnlabError, OutputPathError
from cnnlab.files import save_torch_atomic
from cnnlab.models import get_model_info
from cnnlab.train.budget import BudgetPlanner
from cnnlab.train.build import aux_loss_weight, prepare_model, split_outputs, wrap_for_training
from cnnlab.train.checkpoint import (
    BestCheckpoint,
    TrainingCheckpoint,
    capture_rng,
    load_run_checkpoint,
    restore_rng,
)
from cnnlab.train.config import TrainConfig, resume_config
from cnnlab.train.console import ProgressBar, notice, print_epoch, print_result
from cnnlab.train.distributed import (
    DistEnv,
    all_reduce_sum,
    cleanup_distributed,
    env_from_torchrun,
    gather_objects,
    init_distributed,
    main_value,
)
from cnnlab.train.evaluate import evaluate
from cnnlab.train.inputs import DataBundle, prepare_data
from cnnlab.train.optim import ModelEma, build_optimizer
from cnnlab.train.runlog import RunLog
from cnnlab.train.runtime import (
    StopRequest,
    autocast,
    hardware_info,
    resolve_amp,
    seed_everything,
    select_device,
    set_deterministic,
    set_threads,
    stop_requests,
)
from cnnlab.train.schedules import Plateau, config_lr
from cnnlab.train.state import TrainState

__all__ = ["TrainState", "TrainingDivergedError", "resume_training", "train"]


class TrainingDivergedError(CnnlabError, RuntimeError):
    """The loss (or the weights) became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class _Run:
    """Everything the loop works with (one place, so the loop's functions stay short)."""

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


def train(config: TrainConfig) -> dict:
    """Train ``config.model`` as ``config`` says; returns (and writes to results.json) the final results."""
    return _run(config, None, epochs_overridden=False)


def resume_training(run_dir: str | Path, overrides: dict | None = None) -> dict:
    """Continue the run in ``run_dir`` from its last checkpoint, exactly where it stopped."""
    run_dir = Path(run_dir)
    ckpt = load_run_checkpoint(run_dir / "last.pt")
    if not isinstance(ckpt, TrainingCheckpoint):
        raise CheckpointError(f"{run_dir / 'last.pt'} holds weights only, not a training state to resume")
    cfg = resume_config(ckpt.config, overrides or {}, run_dir)
    return _run(cfg, ckpt, epochs_overridden="epochs" in (overrides or {}))


def _run(cfg: TrainConfig, ckpt: TrainingCheckpoint | None, epochs_overridden: bool) -> dict:
    cfg.validate()
    if cfg.out is None:
        data = Path(cfg.data).name or "data"
        cfg = replace(cfg, out=str(Path("runs") / f"{cfg.model}-{data}-{time.strftime('%Y%m%d-%H%M%S')}"))
    if ckpt is None and (Path(cfg.out) / "last.pt").exists():
        raise OutputPathError(
            f"{cfg.out} already holds a run; continue it with `cnnlab train --resume {cfg.out}` "
            f"or choose another --out"
        )
    device = select_device(cfg.device, env_from_torchrun().local_rank)
    owns_group = not (dist.is_available() and dist.is_initialized())
    env = init_distributed(device)
    try:
        run, state = _set_up(cfg, ckpt, env, device, epochs_overridden)
        try:
            with stop_requests() as stop:
                while state.epoch < state.epochs and state.stop_reason is None:
                    if _train_epoch(run, state, stop):
                        _end_epoch(run, state)
            if state.stop_reason == "interrupted":
                run.say(f"interrupted: checkpoint saved; continue with `cnnlab train --resume {run.run_dir}`")
                raise KeyboardInterrupt
            return _finish(run, state)
        finally:
            run.log.close()
    finally:
        if owns_group:
            cleanup_distributed()


def _set_up(
    cfg: TrainConfig, ckpt: TrainingCheckpoint | None, env: DistEnv, device: torch.device, epochs_overridden: bool
) -> tuple[_Run, TrainState]:
    """Threads, seeds, data, model, optimizer, and the saved state when resuming."""
    say = partial(notice, enabled=env.is_main)
    threads = set_threads(cfg.threads, env.local_world_size)
    set_deterministic(cfg.deterministic)
    seed_everything(cfg.seed)
    amp_dtype, amp_note = resolve_amp(cfg.amp, device)
    if amp_note:
        say(amp_note)
    channels_last = cfg.channels_last if cfg.channels_last is not None else device.type in ("cpu", "cuda")
    data = prepare_data(cfg, get_model_info(cfg.model), device, env, channels_last, say)
    model = prepare_model(
        cfg, data.num_classes, data.meta.in_chans, device, channels_last, cfg.sync_bn and env.enabled, say,
        fresh=ckpt is None,
    )
    torch.manual_seed(cfg.seed + env.rank)  # dropout masks: a stream per process
    optimizer = build_optimizer(
        model, cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.momentum, cfg.nesterov, tuple(cfg.betas),
        cfg.norm_bias_decay,
    )
    aug_gen = torch.Generator(device=device)
    aug_gen.manual_seed(cfg.seed)
    run = _Run(
        cfg=cfg, env=env, device=device, model=model,
        train_model=wrap_for_training(model, device, env.enabled, cfg.compile),
        ema=ModelEma(model, cfg.ema_decay) if cfg.ema_decay else None,
        optimizer=optimizer,
        scaler=torch.amp.GradScaler(device.type, enabled=amp_dtype is torch.float16),
        plateau=Plateau(cfg.plateau_patience, cfg.plateau_threshold),
        data=data, aug_gen=aug_gen, mix_rng=random.Random(cfg.seed), amp_dtype=amp_dtype,
        log=RunLog(cfg.out, env.is_main, cfg.tensorboard), threads=threads, aux_weight=aux_loss_weight(cfg.model),
    )
    state = TrainState(epochs=cfg.epochs)
    if ckpt is not None:
        state = _restore(run, ckpt)
        if epochs_overridden:
            state.epochs = cfg.epochs
        run.say(f"resuming {cfg.out} at epoch {state.epoch + 1}, step {state.step_in_epoch} of the epoch")
    run.log.write_json("config.json", cfg.to_dict())
    if ckpt is None:
        _keep_epoch(run, state)  # the trajectory starts at the initial weights
    run.session_start, run.wall_at_start = time.perf_counter(), state.wall_seconds
    run.budget = BudgetPlanner.for_run(cfg, data, env, state, run.say)
    return run, state


def _restore(run: _Run, ckpt: TrainingCheckpoint) -> TrainState:
    run.model.load_state_dict(ckpt.model)
    run.optimizer.load_state_dict(ckpt.optimizer)
    run.scaler.load_state_dict(ckpt.scaler)
    run.plateau.load_state_dict(ckpt.plateau)
    if run.ema is not None:
        if ckpt.ema is None:
            raise CheckpointError("the checkpoint has no EMA weights to resume")
        run.ema.load_state_dict(ckpt.ema)
    ranks = ckpt.rng
    restore_rng(ranks[run.env.rank] if len(ranks) == run.env.world_size else ranks[0], run.aug_gen, run.mix_rng)
    best = Path(run.cfg.out) / "best.pt"
    if ckpt.state.best_epoch is not None and best.is_file():
        run.best_weights = load_run_checkpoint(best, run.device).model
    # A resumed run continues whatever stopped it (Ctrl-C, a spent time budget).
    return replace(ckpt.state, stop_reason=None)


def _train_step(run: _Run, x_u8: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on a uint8 batch; returns (loss, correct predictions) as device tensors."""
    cfg = run.cfg
    x, target = run.data.augment.train(x_u8, y, run.aug_gen, run.mix_rng, run.env.shard)
    with autocast(run.device, run.amp_dtype):
        logits, aux = split_outputs(run.train_model(x))
        loss = F.cross_entropy(logits.float(), target, label_smoothing=cfg.label_smoothing)
        for aux_logits in aux:
            aux_loss = F.cross_entropy(aux_logits.float(), target, label_smoothing=cfg.label_smoothing)
            loss = loss + run.aux_weight * aux_loss
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    if cfg.grad_clip:
        run.scaler.unscale_(run.optimizer)
        nn.utils.clip_grad_norm_([p for g in run.optimizer.param_groups for p in g["params"]], cfg.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    if run.ema is not None:
        run.ema.update(run.model)
    return loss.detach(), (logits.detach().argmax(1) == y).sum()


def _train_epoch(run: _Run, state: TrainState, stop: StopRequest) -> bool:
    """Train the rest of the current epoch; False when stopped before its end (time budget or Ctrl-C)."""
    cfg, steps = run.cfg, len(run.data.train)
    run.model.train()
    bar = ProgressBar(state, steps, enabled=not cfg.quiet and run.env.is_main)
    window = torch.zeros(2, device=run.device)  # loss sum, correct predictions since the last sync
    images = 0  # counted on the host: a device-side count would cost a host-to-device copy per step
    tick = time.perf_counter()
    try:
        for x_u8, y in run.data.train.batches(state.epoch, state.step_in_epoch):
            lr = config_lr(cfg, state.global_step, state.planned_steps(steps), steps, run.plateau.reductions)
            for group in run.optimizer.param_groups:
                group["lr"] = lr
            loss, correct = _train_step(run, x_u8, y)
            state.partial.lr = lr
            window += torch.stack([loss.float() * y.numel(), correct.float()])
            images += y.numel()
            state.step_in_epoch += 1
            state.global_step += 1
            # Sync with the device (and the other processes) only every log_every steps: it stalls the queue.
            last = state.step_in_epoch == steps or state.global_step == state.total_steps
            checkpoint_due = cfg.checkpoint_every > 0 and state.global_step % cfg.checkpoint_every == 0
            local_stop = stop.requested and not run.env.enabled
            if not (last or checkpoint_due or local_stop or state.step_in_epoch % cfg.log_every == 0):
                continue
            now = time.perf_counter()
            stop_voted, time_up = _sync(run, state, window, images, now - tick, stop.requested, lr)
            tick, images = now, 0
            run.budget.after_sync(state)
            bar.update(state, lr)
            if stop_voted:
                state.stop_reason = "interrupted"
            elif time_up:
                state.stop_reason = "time budget"
                if last:
                    break
            if state.stop_reason is not None or (checkpoint_due and not last):
                _save_last(run, state)
            if state.stop_reason is not None:
                return last
            if state.global_step >= state.planned_steps(steps):
                break  # the planned schedule ends within this epoch
        return True
    finally:
        bar.close()


def _sync(
    run: _Run, state: TrainState, window: torch.Tensor, images: int, seconds: float, stop: bool, lr: float
) -> tuple[bool, bool]:
    """Fold the step window into the epoch totals (over all ranks) and agree on stopping.

    Returns (stop requested, time budget spent); raises when the loss is no longer finite.
    """
    wall = run.local_wall()
    time_up = run.cfg.time_budget is not None and wall >= run.cfg.time_budget
    main = float(run.env.is_main)
    host = torch.tensor([images, float(stop), float(time_up) * main, wall * main], device=run.device)
    totals = all_reduce_sum(torch.cat([window, host]), run.env).tolist()
    window.zero_()
    loss_sum, correct, seen, stop_votes, time_votes, state.wall_seconds = totals  # rank 0's clock for all
    if not math.isfinite(loss_sum):
        raise TrainingDivergedError(
            f"the training loss became {'NaN' if math.isnan(loss_sum) else 'infinite'} in epoch "
            f"{state.epoch + 1} near step {state.step_in_epoch} (learning rate {lr:.3g}); stopped. The last "
            f"good checkpoint is {run.run_dir / 'last.pt'}. Try a lower --lr, --grad-clip 1.0 or --amp off"
        )
    state.add_window(loss_sum, correct, int(seen), seconds, len(run.data.train))
    return stop_votes > 0, time_votes > 0


def _end_epoch(run: _Run, state: TrainState) -> None:
    """Validate, log the epoch, adjust the schedule, checkpoint."""
    cfg, val = run.cfg, None
    if run.data.val is not None:
        val = evaluate(run.eval_model, run.data.val, run.data.augment, run.amp_dtype, cfg.tta_flip, run.env)
    # Every rank takes rank 0's clock, so that time-budget plans agree.
    row = state.finish_epoch(val, main_value(run.local_wall(), run.env, run.device))
    if cfg.schedule == "plateau" and val and run.plateau.observe(val["accuracy"]):
        run.say(f"validation accuracy plateaued: learning rate x{cfg.gamma} from now on")
    improved = val is not None and (state.best_val is None or val["accuracy"] > state.best_val)
    if improved:
        state.best_val, state.best_epoch = val["accuracy"], state.epoch
        run.best_weights = {k: v.detach().clone() for k, v in run.eval_model.state_dict().items()}
    run.budget.at_epoch_end(state)
    _save_last(run, state)
    _keep_epoch(run, state)
    if improved and run.env.is_main:
        best = BestCheckpoint(run.cfg, run.data.meta, run.best_weights, state.epoch, state.global_step, state.best_val)
        save_torch_atomic(best.to_dict(), run.run_dir / "best.pt")
    run.log.write_metrics(state.history)
    run.log.log_epoch(row)
    print_epoch(row, state.epochs, run.env.is_main)


def _save_last(run: _Run, state: TrainState) -> None:
    """Write last.pt (every rank's generator states, rank 0 writes); refuse to save non-finite weights."""
    if not all(bool(torch.isfinite(p).all()) for p in run.model.parameters()):
        raise TrainingDivergedError(
            f"the weights became NaN or infinite at step {state.global_step}; stopped. The last good "
            f"checkpoint is {run.run_dir / 'last.pt'}. Try a lower --lr or --grad-clip 1.0"
        )
    rng = gather_objects(capture_rng(run.aug_gen, run.mix_rng), run.env)
    if run.env.is_main:
        ckpt = TrainingCheckpoint(
            config=run.cfg, data=run.data.meta, model=run.model.state_dict(),
            ema=run.ema.state_dict() if run.ema is not None else None, optimizer=run.optimizer.state_dict(),
            scaler=run.scaler.state_dict(), plateau=run.plateau.state_dict(), rng=rng, state=state,
        )
        save_torch_atomic(ckpt.to_dict(), run.run_dir / "last.pt")
    run.log.write_jsonl("curve.jsonl", state.curve)  # kept in step with the checkpoint


def _keep_epoch(run: _Run, state: TrainState) -> None:
    """--keep-epochs: the weights after ``state.epoch`` epochs (0: before training) as epochs/epoch-NNN.pt."""
    if run.cfg.keep_epochs and run.env.is_main:
        save_torch_atomic(run.model.state_dict(), run.run_dir / "epochs" / f"epoch-{state.epoch:03d}.pt")


def _finish(run: _Run, state: TrainState) -> dict:
    """Test the selected weights once and write results.json."""
    cfg, model, meta = run.cfg, run.eval_model, run.data.meta
    selected = "last"
    if run.best_weights is not None:
        model.load_state_dict(run.best_weights)
        selected = f"best validation accuracy (epoch {state.best_epoch})"
    test = evaluate(model, run.data.test, run.data.augment, run.amp_dtype, cfg.tta_flip, run.env)
    input_shape = (meta.in_chans, meta.input_size, meta.input_size)
    results = {
        "model": cfg.model,
        "data": meta.dataset,
        "run_dir": str(run.run_dir),
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "test_images": test["count"],
        "selected": selected,
        "best_val_accuracy": state.best_val,
        "epochs_completed": state.epoch,
        "steps": state.global_step,
        "stopped_early": state.stop_reason
        or ("time budget" if state.total_steps is not None or state.epochs < cfg.epochs else None),
        "params": count_params(model),
        "macs": count_macs(model, input_shape),
        "input_size": list(input_shape),
        "num_classes": meta.num_classes,
        "wall_seconds": run.local_wall(),
        "train_seconds": state.train_seconds,
        "images_per_second": state.train_images / max(state.train_seconds, 1e-9),
        "hardware": hardware_info(run.device, run.threads, run.env.world_size),
    }
    run.log.write_json("results.json", results)
    print_result(results, run.run_dir / "results.json", run.env.is_main)
    return results
