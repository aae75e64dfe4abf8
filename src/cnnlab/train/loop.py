"""The training loop, as visible code: set up, then per epoch train, evaluate, log and checkpoint.

``train(config)`` runs a fresh run and ``resume_training(run_dir)`` continues one from ``last.pt``. The
state a run needs to continue exactly (weights, optimizer, schedule, scaler, EMA, every random
generator, the position in the epoch) is saved at epoch ends, every ``checkpoint_seconds`` of wall time
(checked at the syncs every ``log_every`` steps), every ``checkpoint_every`` steps and on Ctrl-C; the
data order is a pure function of (seed, epoch), so the position is just a step number.
The time-budget planner (``budget.py``), what is printed (``console.py``) and what the checkpoint files
hold (``checkpoint.py``) live beside this file; the order of a step's work reads top to bottom here.
"""

from __future__ import annotations

import math
import random
import signal
import time
from functools import partial
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from cnnlab.errors import CheckpointError, CnnlabError
from cnnlab.files import (
    DirectoryBusyError,
    DiskFullError,
    directory_holder,
    save_torch_atomic,
)
from cnnlab.models import get_model_info
from cnnlab.train.budget import BudgetPlanner
from cnnlab.train.build import (
    aux_loss_weight,
    frozen_norm_layers,
    prepare_model,
    split_outputs,
    train_mode,
    wrap_for_training,
)
from cnnlab.train.checkpoint import (
    BestCheckpoint,
    TrainingCheckpoint,
    capture_rng,
    load_run_checkpoint,
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
from cnnlab.train.inputs import prepare_data
from cnnlab.train.optim import ModelEma, build_optimizer
from cnnlab.train.run import Run
from cnnlab.train.rundir import busy_message, claim_run_dir, finished_results, release_run_dir, run_dir_to_resume
from cnnlab.train.runlog import RunLog
from cnnlab.train.runtime import (
    StopRequest,
    autocast,
    channels_last_for,
    resolve_amp,
    seed_everything,
    select_device,
    set_deterministic,
    set_threads,
    stop_requests,
)
from cnnlab.train.schedules import Plateau, config_lr
from cnnlab.train.state import TrainState
from cnnlab.train.tasks import task_for

__all__ = ["TrainState", "TrainingDivergedError", "resume_training", "train"]


class TrainingDivergedError(CnnlabError, RuntimeError):
    """The loss (or the weights) became NaN or infinite; the last good checkpoint is kept."""


def train(config: TrainConfig, started: float | None = None) -> dict:
    """Train ``config.model`` as ``config`` says; returns (and writes to results.json) the final results.

    ``started`` is the ``time.time()`` the run's clock (``--time-budget``, ``wall_seconds``) counts from:
    the CLI passes its process's start, so data loading and model building count; default: now.
    """
    return _run(config, None, epochs_overridden=False, started=started)


def resume_training(run_dir: str | Path, overrides: dict | None = None, started: float | None = None) -> dict:
    """Continue the run in ``run_dir`` (or of its ``last.pt``) from its last checkpoint, exactly where it stopped."""
    run_dir = run_dir_to_resume(Path(run_dir))
    holder = directory_holder(run_dir)
    if holder is not None:
        raise DirectoryBusyError(busy_message(run_dir, holder, resuming=True), holder)
    ckpt = load_run_checkpoint(run_dir / "last.pt")
    if not isinstance(ckpt, TrainingCheckpoint):
        raise CheckpointError(f"{run_dir / 'last.pt'} holds weights only, not a training state to resume")
    cfg = resume_config(ckpt.config, overrides or {}, run_dir)
    finished = finished_results(run_dir, ckpt, cfg, "epochs" in (overrides or {}))
    if finished is not None:
        return finished
    return _run(cfg, ckpt, epochs_overridden="epochs" in (overrides or {}), started=started)


def _start_clock(started: float | None) -> float:
    """The ``time.perf_counter()`` reading at the wall-clock moment ``started`` (now when None)."""
    now = time.perf_counter()
    return now if started is None else now - max(time.time() - started, 0.0)


def _run(cfg: TrainConfig, ckpt: TrainingCheckpoint | None, epochs_overridden: bool, started: float | None) -> dict:
    session_start = _start_clock(started)
    cfg.validate()
    env = env_from_torchrun()
    created = cfg.out is None or not Path(cfg.out).exists()
    cfg, lock = claim_run_dir(cfg, ckpt is not None, env.is_main)
    try:
        return _train_in(cfg, ckpt, epochs_overridden, session_start, env)
    finally:
        release_run_dir(lock, created)


def _train_in(
    cfg: TrainConfig, ckpt: TrainingCheckpoint | None, epochs_overridden: bool, session_start: float, env: DistEnv
) -> dict:
    """Set up, train, test: the run whose directory ``_run`` holds."""
    device = select_device(cfg.device, env.local_rank)
    owns_group = not (dist.is_available() and dist.is_initialized())
    env = init_distributed(device)
    try:
        run, state = _set_up(cfg, ckpt, env, device, epochs_overridden, session_start)
        try:
            with stop_requests() as stop:
                while state.epoch < state.epochs and state.stop_reason is None:
                    if _train_epoch(run, state, stop):
                        _end_epoch(run, state)
            if state.stop_reason == "interrupted":
                terminated = stop.signum == signal.SIGTERM
                run.say(f"{'terminated' if terminated else 'interrupted'}: checkpoint saved; continue with "
                        f"`cnnlab train --resume {run.run_dir}`")
                if terminated:
                    # The handlers in force before the loop are back: SIGTERM again ends the process as a
                    # SIGTERM would have (exit 143 under the CLI) now that the checkpoint is safe.
                    signal.raise_signal(signal.SIGTERM)
                raise KeyboardInterrupt
            return _finish(run, state)
        finally:
            run.log.close()
    finally:
        if owns_group:
            cleanup_distributed()


def _set_up(
    cfg: TrainConfig,
    ckpt: TrainingCheckpoint | None,
    env: DistEnv,
    device: torch.device,
    epochs_overridden: bool,
    session_start: float,
) -> tuple[Run, TrainState]:
    """Threads, seeds, data, model, optimizer, and the saved state when resuming."""
    say = partial(notice, enabled=env.is_main)
    threads = set_threads(cfg.threads, env.local_world_size)
    set_deterministic(cfg.deterministic)
    seed_everything(cfg.seed)
    amp_dtype, amp_note = resolve_amp(cfg.amp, device)
    if amp_note:
        say(amp_note)
    channels_last = channels_last_for(cfg.channels_last, device)
    data = prepare_data(cfg, get_model_info(cfg.model), device, env, channels_last, say)
    task = task_for(cfg, data.meta)
    model = prepare_model(
        cfg, data.num_classes, data.meta.in_chans, device, channels_last, cfg.sync_bn and env.enabled, say,
        fresh=ckpt is None,
    )
    task.check_model(model, data.meta.in_chans)
    torch.manual_seed(cfg.seed + env.rank)  # dropout masks: a stream per process
    optimizer = build_optimizer(
        model, cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.momentum, cfg.nesterov, tuple(cfg.betas),
        cfg.norm_bias_decay, cfg.backbone_lr_mult,
    )
    aug_gen = torch.Generator(device=device)
    aug_gen.manual_seed(cfg.seed)
    run = Run(
        cfg=cfg, env=env, device=device, model=model,
        train_model=wrap_for_training(model, device, env.enabled, cfg.compile),
        ema=ModelEma(model, cfg.ema_decay) if cfg.ema_decay else None,
        optimizer=optimizer,
        scaler=torch.amp.GradScaler(device.type, enabled=amp_dtype is torch.float16),
        plateau=Plateau(cfg.plateau_patience, cfg.plateau_threshold),
        data=data, task=task, aug_gen=aug_gen, mix_rng=random.Random(cfg.seed), amp_dtype=amp_dtype,
        log=RunLog(cfg.out, env.is_main, cfg.tensorboard), threads=threads, aux_weight=aux_loss_weight(cfg.model),
        frozen_norms=frozen_norm_layers(model) if cfg.freeze_backbone else [],
    )
    state = TrainState(epochs=cfg.epochs)
    if ckpt is not None:
        state = run.restore(ckpt)
        run.saved = (run.run_dir / "last.pt", state.global_step)
        if epochs_overridden:
            state.epochs = cfg.epochs
            state.total_steps = None  # the epochs asked for replace where a time budget had cut the schedule
        run.say(f"resuming {cfg.out} at epoch {state.epoch + 1}, step {state.step_in_epoch} of the epoch")
    run.log.write_json("config.json", cfg.to_dict())
    if ckpt is None:
        _keep_epoch(run, state)  # the trajectory starts at the initial weights
    run.session_start, run.wall_at_start = session_start, state.wall_seconds
    # The set-up (data, model) is on the clock; every rank takes rank 0's, so that budget plans agree.
    state.wall_seconds = run.last_save_wall = main_value(run.local_wall(), env, device)
    run.budget = BudgetPlanner.for_run(cfg, data, env, state, run.say)
    return run, state


def _train_step(run: Run, x_u8: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on a uint8 batch; returns (loss, correct predictions) as device tensors."""
    cfg = run.cfg
    x, target = run.data.augment.train(x_u8, y, run.aug_gen, run.mix_rng, run.env.shard)
    with autocast(run.device, run.amp_dtype):
        logits, aux = split_outputs(run.train_model(x))
        loss = run.task.loss(logits, target)
        for aux_logits in aux:
            loss = loss + run.aux_weight * run.task.loss(aux_logits, target)
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    if cfg.grad_clip:
        run.scaler.unscale_(run.optimizer)
        nn.utils.clip_grad_norm_([p for g in run.optimizer.param_groups for p in g["params"]], cfg.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    if run.ema is not None:
        run.ema.update(run.model)
    return loss.detach(), run.task.hits(logits.detach(), y, target)


def _train_epoch(run: Run, state: TrainState, stop: StopRequest) -> bool:
    """Train the rest of the current epoch; False when stopped before its end (time budget or Ctrl-C)."""
    cfg, steps = run.cfg, len(run.data.train)
    train_mode(run.model, run.frozen_norms)
    bar = ProgressBar(state, steps, enabled=not cfg.quiet and run.env.is_main, budget=cfg.time_budget)
    window = torch.zeros(2, device=run.device)  # loss sum, correct predictions since the last sync
    images = 0  # counted on the host: a device-side count would cost a host-to-device copy per step
    tick = time.perf_counter()
    try:
        for x_u8, y in run.data.train.batches(state.epoch, state.step_in_epoch):
            lr = config_lr(cfg, state.global_step, state.planned_steps(steps), steps, run.plateau.reductions)
            for group in run.optimizer.param_groups:
                group["lr"] = lr * group.get("lr_mult", 1.0)  # the backbone's share when fine-tuning
            loss, correct = _train_step(run, x_u8, y)
            state.partial.lr = lr
            window += torch.stack([loss.float() * len(y), correct.float()])
            images += len(y)
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
            # Due by rank 0's clock (every rank has it after the sync), so all ranks save together.
            since_save = state.wall_seconds - run.last_save_wall
            checkpoint_due |= 0 < cfg.checkpoint_seconds <= since_save
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
    run: Run, state: TrainState, window: torch.Tensor, images: int, seconds: float, stop: bool, lr: float
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
            f"{state.epoch + 1} near step {state.step_in_epoch} (learning rate {lr:.3g}); stopped; "
            f"{run.last_good()}. Try a lower --lr, --grad-clip 1.0 or --amp off"
        )
    state.add_window(loss_sum, correct, int(seen), seconds, len(run.data.train))
    return stop_votes > 0, time_votes > 0


def _end_epoch(run: Run, state: TrainState) -> None:
    """Validate, log the epoch, adjust the schedule, checkpoint."""
    cfg, val = run.cfg, None
    if run.data.val is not None:
        val = run.task.evaluate(run.eval_model, run.data.val, run.data.augment, run.amp_dtype, cfg.tta_flip, run.env,
                                topk=cfg.topk, progress=None if cfg.quiet else "validation")
    # Every rank takes rank 0's clock, so that time-budget plans agree.
    row = state.finish_epoch(val, main_value(run.local_wall(), run.env, run.device), run.task.epoch_columns(val))
    if cfg.schedule == "plateau" and val and run.plateau.observe(run.task.score(val)):
        run.say(f"validation {run.task.score_label} plateaued: learning rate x{cfg.gamma} from now on")
    improved = val is not None and (state.best_val is None or run.task.score(val) > state.best_val)
    if improved:
        state.best_val, state.best_epoch = run.task.score(val), state.epoch
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


def _save_last(run: Run, state: TrainState) -> None:
    """Write last.pt (every rank's generator states, rank 0 writes); refuse to save non-finite weights."""
    if not all(bool(torch.isfinite(p).all()) for p in run.model.parameters()):
        raise TrainingDivergedError(
            f"the weights became NaN or infinite at step {state.global_step}; stopped; {run.last_good()}. "
            f"Try a lower --lr or --grad-clip 1.0"
        )
    rng = gather_objects(capture_rng(run.aug_gen, run.mix_rng), run.env)
    path = run.run_dir / "last.pt"
    try:
        if run.env.is_main:
            ckpt = TrainingCheckpoint(
                config=run.cfg, data=run.data.meta, model=run.model.state_dict(),
                ema=run.ema.state_dict() if run.ema is not None else None, optimizer=run.optimizer.state_dict(),
                scaler=run.scaler.state_dict(), plateau=run.plateau.state_dict(), rng=rng, state=state,
            )
            save_torch_atomic(ckpt.to_dict(), path)
        run.saved, run.last_save_wall = (path, state.global_step), state.wall_seconds
        run.log.write_jsonl("curve.jsonl", state.curve)  # kept in step with the checkpoint
    except DiskFullError as err:
        raise DiskFullError(f"{err.where}; stopped at step {state.global_step}: {run.last_good()}", err.where) from err


def _keep_epoch(run: Run, state: TrainState) -> None:
    """--keep-epochs: the weights after ``state.epoch`` epochs (0: before training) as epochs/epoch-NNN.pt."""
    if run.cfg.keep_epochs and run.env.is_main:
        save_torch_atomic(run.model.state_dict(), run.run_dir / "epochs" / f"epoch-{state.epoch:03d}.pt")


def _finish(run: Run, state: TrainState) -> dict:
    """Test the selected weights once (unless --no-test) and write results.json."""
    cfg, model = run.cfg, run.eval_model
    selected = "last"
    if run.best_weights is not None:
        model.load_state_dict(run.best_weights)
        selected = f"best validation {run.task.score_label} (epoch {state.best_epoch})"
    test = None
    if cfg.test:
        test = run.task.evaluate(model, run.data.test, run.data.augment, run.amp_dtype, cfg.tta_flip, run.env,
                                 topk=cfg.topk, ten_crop=cfg.ten_crop, progress=None if cfg.quiet else "test")
    results = run.results(state, selected, test)
    run.log.write_json("results.json", results)
    print_result(results, run.run_dir / "results.json", run.env.is_main)
    return results
