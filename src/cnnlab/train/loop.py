"""The training loop, as visible code: set up, then per epoch train, evaluate, log and checkpoint.

``train(config)`` runs a fresh run and ``resume_training(run_dir)`` continues one from ``last.pt``. The
state a run needs to continue exactly (weights, optimizer, schedule, scaler, EMA, every random
generator, the position in the epoch) is saved at epoch ends, every ``checkpoint_every`` steps and on
Ctrl-C; the data order is a pure function of (seed, epoch), so the position is just a step number.
"""

from __future__ import annotations

import math
import random
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from cnnlab.analysis.counting import count_macs, count_params
from cnnlab.data import BatchSource
from cnnlab.files import save_torch_atomic
from cnnlab.models import get_model_info
from cnnlab.train.build import (
    aux_loss_weight,
    build_model,
    freeze_backbone,
    load_initial_weights,
    split_outputs,
)
from cnnlab.train.checkpoint import (
    CHECKPOINT_FORMAT,
    capture_rng,
    is_cnnlab_checkpoint,
    load_checkpoint,
    restore_rng,
)
from cnnlab.train.config import TrainConfig, resolve_config
from cnnlab.train.distributed import (
    DistEnv,
    all_reduce_sum,
    cleanup_distributed,
    env_from_torchrun,
    gather_objects,
    init_distributed,
)
from cnnlab.train.evaluate import evaluate
from cnnlab.train.inputs import DataBundle, prepare_data
from cnnlab.train.optim import ModelEma, build_optimizer
from cnnlab.train.runlog import RunLog
from cnnlab.train.runtime import (
    autocast,
    hardware_info,
    notice,
    resolve_amp,
    seed_everything,
    select_device,
    set_deterministic,
    set_threads,
)
from cnnlab.train.schedules import Plateau, lr_at, steps_within_budget

__all__ = ["RESUME_OVERRIDABLE", "TrainState", "TrainingDivergedError", "resume_training", "train"]

# Settings a resumed run may change: they alter how long or how verbosely it runs, not what it computes.
RESUME_OVERRIDABLE = frozenset(
    {
        "epochs",
        "time_budget",
        "quiet",
        "log_every",
        "checkpoint_every",
        "tensorboard",
        "threads",
        "eval_batch_size",
        "workers",
        "data_dir",
    }
)


class TrainingDivergedError(RuntimeError):
    """The loss (or the weights) became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainState:
    """Where a run is; saved in every checkpoint as plain numbers and lists."""

    epochs: int  # planned epochs, the last maybe partial (a time budget shortens them in the first epoch)
    epoch: int = 0  # epochs completed
    step_in_epoch: int = 0  # steps completed in the current epoch
    global_step: int = 0  # optimizer steps completed
    wall_seconds: float = 0.0  # wall time of all sessions so far
    train_seconds: float = 0.0  # time spent in training steps (not evaluation): images/s
    train_images: int = 0  # images trained on, all processes together
    partial: dict = field(
        default_factory=lambda: {"loss_sum": 0.0, "correct": 0.0, "seen": 0, "seconds": 0.0}
    )
    best_val: float | None = None  # best validation accuracy so far
    best_epoch: int | None = None
    history: list[dict] = field(default_factory=list)  # one metrics row per epoch
    curve: list[dict] = field(default_factory=list)  # training loss/accuracy every log_every steps
    replanned: bool = False  # the schedule was fitted to --time-budget
    total_steps: int | None = None  # the schedule's length when a time budget cut it (it may end mid-epoch)
    stop_reason: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


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
    session_start: float = 0.0
    wall_at_start: float = 0.0
    budget_clocks: list[tuple[float, int]] = field(default_factory=list)  # (wall, step) to time steps from
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
    ckpt = load_checkpoint(run_dir / "last.pt")
    if not is_cnnlab_checkpoint(ckpt):
        raise ValueError(f"{run_dir / 'last.pt'} is not a cnnlab training checkpoint")
    stored = ckpt["config"]
    # Naming the run's own model or directory again is harmless; anything else must be resumable.
    overrides = {k: v for k, v in (overrides or {}).items() if not (k in ("model", "out") and v == stored[k])}
    changed = sorted(set(overrides) - RESUME_OVERRIDABLE)
    if changed:
        raise ValueError(
            f"cannot change {', '.join(changed)} when resuming (the run would not continue the same way); "
            f"start a new run with --init {run_dir / 'last.pt'} instead"
        )
    cfg = resolve_config(overrides, base=TrainConfig.from_dict(ckpt["config"]))
    cfg = replace(cfg, out=str(run_dir))
    return _run(cfg, ckpt, epochs_overridden="epochs" in overrides)


def _default_out(cfg: TrainConfig) -> str:
    data = Path(cfg.data).name or "data"
    return str(Path("runs") / f"{cfg.model}-{data}-{time.strftime('%Y%m%d-%H%M%S')}")


def _run(cfg: TrainConfig, ckpt: dict | None, epochs_overridden: bool) -> dict:
    cfg.validate()
    if cfg.out is None:
        cfg = replace(cfg, out=_default_out(cfg))
    if ckpt is None and (Path(cfg.out) / "last.pt").exists():
        raise ValueError(
            f"{cfg.out} already holds a run; continue it with `cnnlab train --resume {cfg.out}` "
            f"or choose another --out"
        )
    device = select_device(cfg.device, env_from_torchrun().local_rank)
    owns_group = not (dist.is_available() and dist.is_initialized())
    env = init_distributed(device)
    try:
        run, state = _set_up(cfg, ckpt, env, device, epochs_overridden)
        try:
            with _stop_requests() as stop_requested:
                _fit(run, state, stop_requested)
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
    cfg: TrainConfig, ckpt: dict | None, env: DistEnv, device: torch.device, epochs_overridden: bool
) -> tuple[_Run, TrainState]:
    """Threads, seeds, data, model, optimizer, and the saved state when resuming."""

    def say(message: str) -> None:
        notice(message, env.is_main)

    threads = set_threads(cfg.threads, env.local_world_size)
    set_deterministic(cfg.deterministic)
    seed_everything(cfg.seed)
    info = get_model_info(cfg.model)
    amp_dtype, amp_note = resolve_amp(cfg.amp, device)
    if amp_note:
        say(amp_note)
    channels_last = cfg.channels_last if cfg.channels_last is not None else device.type in ("cpu", "cuda")
    data = prepare_data(cfg, info, device, env, channels_last, say)
    model = build_model(cfg, data.num_classes, data.meta["in_chans"])
    if cfg.init and ckpt is None:
        fresh = load_initial_weights(model, cfg.init, cfg.model)
        say(f"started from {cfg.init}" + (f"; new classifier: {', '.join(fresh)}" if fresh else ""))
    if cfg.freeze_backbone:
        say(f"backbone frozen: {freeze_backbone(model):,} trainable parameters")
    if cfg.sync_bn and env.enabled:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    torch.manual_seed(cfg.seed + env.rank)  # dropout masks: a stream per process
    optimizer = build_optimizer(
        model,
        cfg.optimizer,
        cfg.lr,
        cfg.weight_decay,
        cfg.momentum,
        cfg.nesterov,
        tuple(cfg.betas),
        cfg.norm_bias_decay,
    )
    aug_gen = torch.Generator(device=device)
    aug_gen.manual_seed(cfg.seed)
    train_model: nn.Module = model
    if env.enabled:
        ids = [device.index] if device.type == "cuda" else None
        train_model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if cfg.compile:
        train_model = torch.compile(train_model)
    run = _Run(
        cfg=cfg,
        env=env,
        device=device,
        model=model,
        train_model=train_model,
        ema=ModelEma(model, cfg.ema_decay) if cfg.ema_decay else None,
        optimizer=optimizer,
        scaler=torch.amp.GradScaler(device.type, enabled=amp_dtype is torch.float16),
        plateau=Plateau(cfg.plateau_patience, cfg.plateau_threshold),
        data=data,
        aug_gen=aug_gen,
        mix_rng=random.Random(cfg.seed),
        amp_dtype=amp_dtype,
        log=RunLog(cfg.out, env.is_main, cfg.tensorboard),
        threads=threads,
        aux_weight=aux_loss_weight(cfg.model),
    )
    state = TrainState(epochs=cfg.epochs)
    if ckpt is not None:
        state = _restore(run, ckpt)
        if epochs_overridden:
            state.epochs = cfg.epochs
        run.say(f"resuming {cfg.out} at epoch {state.epoch + 1}, step {state.step_in_epoch} of the epoch")
    run.log.write_json("config.json", cfg.to_dict())
    run.session_start, run.wall_at_start = time.perf_counter(), state.wall_seconds
    run.budget_clocks = [(state.wall_seconds, state.global_step)]
    return run, state


def _restore(run: _Run, ckpt: dict) -> TrainState:
    run.model.load_state_dict(ckpt["model"])
    run.optimizer.load_state_dict(ckpt["optimizer"])
    run.scaler.load_state_dict(ckpt["scaler"])
    run.plateau.load_state_dict(ckpt["scheduler"]["plateau"])
    if run.ema is not None:
        if ckpt.get("ema") is None:
            raise ValueError("the checkpoint has no EMA weights to resume")
        run.ema.load_state_dict(ckpt["ema"])
    ranks = ckpt["rng"]
    restore_rng(
        ranks[run.env.rank] if len(ranks) == run.env.world_size else ranks[0], run.aug_gen, run.mix_rng
    )
    best = Path(run.cfg.out) / "best.pt"
    if ckpt["state"]["best_epoch"] is not None and best.is_file():
        run.best_weights = load_checkpoint(best, run.device)["model"]
    # A resumed run continues whatever stopped it (Ctrl-C, a spent time budget).
    return replace(TrainState(**ckpt["state"]), stop_reason=None)


@contextmanager
def _stop_requests() -> Iterator[dict]:
    """Ctrl-C (or SIGTERM) asks the loop to checkpoint and stop after this step; a second one quits now."""
    flag = {"set": False}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, frame: object) -> None:
        if flag["set"]:
            raise KeyboardInterrupt
        flag["set"] = True
        notice("stopping after this step to save a checkpoint (press Ctrl-C again to quit at once)")

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _fit(run: _Run, state: TrainState, stop_requested: dict) -> None:
    while state.epoch < state.epochs and state.stop_reason is None:
        if _train_epoch(run, state, stop_requested):
            _end_epoch(run, state)


def _current_lr(run: _Run, state: TrainState) -> float:
    cfg, spe = run.cfg, len(run.data.train)
    return lr_at(
        state.global_step,
        name=cfg.schedule,
        base_lr=cfg.lr,
        total=_total_steps(state, spe),
        steps_per_epoch=spe,
        warmup_steps=round(cfg.warmup_epochs * spe),
        gamma=cfg.gamma,
        step_epochs=cfg.step_epochs,
        milestones=cfg.milestones,
        min_lr=cfg.min_lr,
        onecycle_peak=cfg.onecycle_peak,
        plateau_reductions=run.plateau.reductions,
    )


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


def _train_epoch(run: _Run, state: TrainState, stop_requested: dict) -> bool:
    """Train the rest of the current epoch; False when stopped early (time budget or Ctrl-C)."""
    cfg, steps = run.cfg, len(run.data.train)
    run.model.train()
    bar = _progress_bar(run, state, steps)
    window = torch.zeros(2, device=run.device)  # loss sum, correct predictions since the last sync
    images = 0  # counted on the host: a device-side count would cost a host-to-device copy per step
    tick = time.perf_counter()
    lr = 0.0
    for x_u8, y in run.data.train.batches(state.epoch, state.step_in_epoch):
        lr = _current_lr(run, state)
        for group in run.optimizer.param_groups:
            group["lr"] = lr
        loss, correct = _train_step(run, x_u8, y)
        state.partial["lr"] = lr
        window += torch.stack([loss.float() * y.numel(), correct.float()])
        images += y.numel()
        state.step_in_epoch += 1
        state.global_step += 1
        last = state.step_in_epoch == steps or state.global_step == state.total_steps
        checkpoint_due = cfg.checkpoint_every > 0 and state.global_step % cfg.checkpoint_every == 0
        local_stop = stop_requested["set"] and not run.env.enabled
        if not (last or checkpoint_due or local_stop or state.step_in_epoch % cfg.log_every == 0):
            continue
        now = time.perf_counter()
        stop, time_up = _sync(run, state, window, images, now - tick, stop_requested["set"], lr)
        tick, images = now, 0
        _plan_budget(run, state)
        _update_bar(bar, state, steps, lr)
        if stop:
            state.stop_reason = "interrupted"
        elif time_up:
            state.stop_reason = "time budget"
            if last:
                break
        if state.stop_reason is not None or (checkpoint_due and not last):
            _save_last(run, state)
        if state.stop_reason is not None:
            bar.close()
            return last
        if state.global_step >= _total_steps(state, steps):
            break  # the planned schedule ends within this epoch
    bar.close()
    return True


def _total_steps(state: TrainState, steps_per_epoch: int) -> int:
    return state.total_steps if state.total_steps is not None else state.epochs * steps_per_epoch


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
    if seen:
        state.curve.append({
            "step": state.global_step,
            "epoch": state.epoch + state.step_in_epoch / len(run.data.train),
            "images": state.train_images + int(seen),
            "train_seconds": state.train_seconds + seconds,
            "loss": loss_sum / seen,
            "accuracy": correct / seen,
        })
    partial = state.partial
    partial["loss_sum"] += loss_sum
    partial["correct"] += correct
    partial["seen"] += int(seen)
    partial["seconds"] += seconds
    state.train_seconds += seconds
    state.train_images += int(seen)
    return stop_votes > 0, time_votes > 0


def _progress_bar(run: _Run, state: TrainState, steps: int) -> tqdm:
    return tqdm(
        total=steps,
        initial=state.step_in_epoch,
        desc=f"epoch {state.epoch + 1}/{state.epochs}",
        unit="step",
        disable=run.cfg.quiet or not run.env.is_main,
        leave=False,
        dynamic_ncols=True,
    )


def _update_bar(bar: tqdm, state: TrainState, steps: int, lr: float) -> None:
    if bar.disable:
        return
    p = state.partial
    done_steps = state.epoch * steps + state.step_in_epoch
    left_steps = state.epochs * steps - done_steps
    per_step = p["seconds"] / max(state.step_in_epoch, 1)
    bar.set_postfix_str(
        f"loss {p['loss_sum'] / max(p['seen'], 1):.4f} acc {100 * p['correct'] / max(p['seen'], 1):.2f}% "
        f"{p['seen'] / max(p['seconds'], 1e-9):,.0f} img/s lr {lr:.3g} "
        f"run ETA {_clock(left_steps * per_step)}",
        refresh=False,
    )
    bar.n = state.step_in_epoch
    bar.set_description(f"epoch {state.epoch + 1}/{state.epochs}", refresh=False)  # a budget may replan
    bar.refresh()


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _end_epoch(run: _Run, state: TrainState) -> None:
    """Validate, log the epoch, adjust the schedule, checkpoint."""
    cfg, p = run.cfg, state.partial
    val = None
    if run.data.val is not None:
        val = evaluate(run.eval_model, run.data.val, run.data.augment, run.amp_dtype, cfg.tta_flip, run.env)
    state.epoch += 1
    state.wall_seconds = _main_wall(run)
    row = {
        "epoch": state.epoch,
        "step": state.global_step,
        "train_loss": p["loss_sum"] / max(p["seen"], 1),
        "train_accuracy": p["correct"] / max(p["seen"], 1),
        "val_loss": val["loss"] if val else None,
        "val_accuracy": val["accuracy"] if val else None,
        "lr": p.get("lr", 0.0),
        "images_per_second": p["seen"] / max(p["seconds"], 1e-9),
        "epoch_seconds": p["seconds"],
        "wall_seconds": state.wall_seconds,
    }
    state.history.append(row)
    state.step_in_epoch = 0
    state.partial = TrainState(epochs=0).partial
    if cfg.schedule == "plateau" and val and run.plateau.observe(val["accuracy"]):
        run.say(f"validation accuracy plateaued: learning rate x{cfg.gamma} from now on")
    improved = val is not None and (state.best_val is None or val["accuracy"] > state.best_val)
    if improved:
        state.best_val, state.best_epoch = val["accuracy"], state.epoch
        run.best_weights = {k: v.detach().clone() for k, v in run.eval_model.state_dict().items()}
    _revise_budget_plan(run, state)
    _save_last(run, state)
    if improved:
        _save_best(run, state)
    run.log.write_metrics(state.history)
    run.log.log_epoch(row)
    if run.env.is_main:
        print(_epoch_line(row, state.epochs), flush=True)


def _epoch_line(row: dict, epochs: int) -> str:
    val = (
        f"  val loss {row['val_loss']:.4f} acc {100 * row['val_accuracy']:.2f}%"
        if row["val_accuracy"] is not None
        else ""
    )
    return (
        f"epoch {row['epoch']}/{epochs}  train loss {row['train_loss']:.4f} acc "
        f"{100 * row['train_accuracy']:.2f}%{val}  lr {row['lr']:.3g}  "
        f"{row['images_per_second']:,.0f} img/s  {row['epoch_seconds']:.1f} s"
    )


def _plan_budget(run: _Run, state: TrainState) -> None:
    """Once a tenth of the first epoch is timed, shorten the schedule to end within --time-budget.

    Steps are timed from the first sync on, leaving out the first steps' one-time set-up costs (an
    epoch too short to time that way is timed whole). ``_revise_budget_plan`` refines the plan at the
    epochs' ends. Every rank plans from rank 0's clock (``_sync`` shares it), so all plan alike.
    """
    budget, steps = run.cfg.time_budget, len(run.data.train)
    if budget is None or state.replanned or state.epoch != 0:
        return
    last = state.step_in_epoch == steps
    if len(run.budget_clocks) == 1 and not last:
        run.budget_clocks.append((state.wall_seconds, state.global_step))  # the set-up costs are behind
        return
    since_wall, since_step = run.budget_clocks[-1]
    if state.global_step - since_step < math.ceil(steps / 10) and not last:
        return
    if state.global_step == since_step:  # too short an epoch to time from the first sync
        since_wall, since_step = run.budget_clocks[0]
    state.replanned = True
    per_step = (state.wall_seconds - since_wall) / max(state.global_step - since_step, 1)
    _fit_to_budget(run, state, per_step, _total_steps(state, steps), revision=False)
    run.budget_clocks.append((state.wall_seconds, state.global_step))  # revisions time from here


def _revise_budget_plan(run: _Run, state: TrainState) -> None:
    """At an epoch's end, refit the schedule to --time-budget from the time since the first plan.

    After the first epoch the plan may grow (up to --epochs) as well as shrink: the first plan was timed
    on a tenth of an epoch, which a busy moment can slow, and the one-cycle rate is still near its peak.
    Later it only shrinks, when the run has slowed down; growing then would raise an annealed rate again.
    """
    budget, steps = run.cfg.time_budget, len(run.data.train)
    since_wall, since_step = run.budget_clocks[-1]
    if budget is None or state.epoch >= state.epochs or state.global_step - since_step < math.ceil(steps / 10):
        return
    # The time measured holds the validations of the epochs since: take them out to time a step.
    epochs_timed = (state.global_step - since_step) / steps
    val_seconds = _eval_reserves(run, (state.wall_seconds - since_wall) / (state.global_step - since_step))[0]
    per_step = (state.wall_seconds - since_wall - epochs_timed * val_seconds) / (state.global_step - since_step)
    limit = run.cfg.epochs * steps if state.epoch == 1 else _total_steps(state, steps)
    _fit_to_budget(run, state, per_step, limit, revision=True)


def _fit_to_budget(run: _Run, state: TrainState, per_step: float, limit: int, revision: bool) -> None:
    """Plan the schedule's last step: as many steps as the budget holds at ``per_step``, up to ``limit``."""
    steps = len(run.data.train)
    val_seconds, test_seconds = _eval_reserves(run, per_step)
    # 2% of the budget is left for the epochs' checkpoints and logs and for a slower machine later on.
    left = 0.98 * run.cfg.time_budget - state.wall_seconds - test_seconds
    total = state.global_step + steps_within_budget(left, per_step, steps, state.step_in_epoch, val_seconds)
    if total % steps < steps // 50:
        total -= total % steps  # a last epoch of a few steps would only clutter the logs
    total = max(min(total, limit), state.global_step)
    planned = _total_steps(state, steps)
    if total == planned or (revision and abs(total - planned) <= planned // 100):
        return  # a revision within 1% is speed noise, which the 2% margin absorbs
    verb = "shortened" if total < planned else "lengthened"
    state.total_steps = total if total < run.cfg.epochs * steps else None
    state.epochs = math.ceil(total / steps)
    run.say(
        f"time budget {run.cfg.time_budget:g} s: the schedule is {verb} to {total / steps:.2f} epochs "
        f"({total} steps of about {per_step:.3f} s; {test_seconds:.0f} s kept for the test)"
    )


def _eval_reserves(run: _Run, per_step: float) -> tuple[float, float]:
    """Seconds of one validation pass and of the test, estimated from the seconds of a training step.

    An image's forward pass costs about a third of its training step; half is reserved, for margin.
    """
    per_image = 0.5 * per_step / run.data.train.local_batch
    views = 2 if run.cfg.tta_flip else 1
    return (
        views * _rank_images(run.data.val, run.env) * per_image,
        views * _rank_images(run.data.test, run.env) * per_image,
    )


def _main_wall(run: _Run) -> float:
    """Rank 0's wall seconds of the run, on every rank (plans made from it agree across ranks)."""
    wall = run.local_wall()
    if not run.env.enabled:
        return wall
    clock = torch.tensor([wall * float(run.env.is_main)], dtype=torch.float64, device=run.device)
    return all_reduce_sum(clock, run.env).item()


def _rank_images(source: BatchSource | None, env: DistEnv) -> int:
    """Images one process evaluates in a pass over ``source`` (ranks share evaluation sets)."""
    return 0 if source is None else math.ceil(source.num_samples / env.world_size)


def _weights_finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def _checkpoint(run: _Run, state: TrainState, rng: list[dict]) -> dict:
    return {
        "format": CHECKPOINT_FORMAT,
        "model_name": run.cfg.model,
        "config": run.cfg.to_dict(),
        "data": run.data.meta,
        "model": run.model.state_dict(),
        "ema": run.ema.state_dict() if run.ema is not None else None,
        "optimizer": run.optimizer.state_dict(),
        "scaler": run.scaler.state_dict(),
        "scheduler": {"plateau": run.plateau.state_dict()},
        "rng": rng,
        "state": state.to_dict(),
        "epoch": state.epoch,
        "step": state.global_step,
    }


def _save_last(run: _Run, state: TrainState) -> None:
    """Write last.pt (every rank's generator states, rank 0 writes); refuse to save non-finite weights."""
    if not _weights_finite(run.model):
        raise TrainingDivergedError(
            f"the weights became NaN or infinite at step {state.global_step}; stopped. The last good "
            f"checkpoint is {run.run_dir / 'last.pt'}. Try a lower --lr or --grad-clip 1.0"
        )
    rng = gather_objects(capture_rng(run.aug_gen, run.mix_rng), run.env)
    if run.env.is_main:
        save_torch_atomic(_checkpoint(run, state, rng), run.run_dir / "last.pt")
    run.log.write_jsonl("curve.jsonl", state.curve)  # kept in step with the checkpoint


def _save_best(run: _Run, state: TrainState) -> None:
    """best.pt: the weights evaluated (EMA when on) at the best validation accuracy, for inference."""
    if run.env.is_main:
        best = {
            "format": CHECKPOINT_FORMAT,
            "model_name": run.cfg.model,
            "config": run.cfg.to_dict(),
            "data": run.data.meta,
            "model": run.best_weights,
            "ema": None,
            "epoch": state.epoch,
            "step": state.global_step,
            "val_accuracy": state.best_val,
        }
        save_torch_atomic(best, run.run_dir / "best.pt")


def _finish(run: _Run, state: TrainState) -> dict:
    """Test the selected weights once and write results.json."""
    cfg, model = run.cfg, run.eval_model
    selected = "last"
    if run.best_weights is not None:
        model.load_state_dict(run.best_weights)
        selected = f"best validation accuracy (epoch {state.best_epoch})"
    test = evaluate(model, run.data.test, run.data.augment, run.amp_dtype, cfg.tta_flip, run.env)
    size = run.data.meta["input_size"]
    results = {
        "model": cfg.model,
        "data": run.data.meta["dataset"],
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
        "macs": count_macs(model, (run.data.meta["in_chans"], size, size)),
        "input_size": [run.data.meta["in_chans"], size, size],
        "num_classes": len(run.data.meta["classes"]),
        "wall_seconds": run.local_wall(),
        "train_seconds": state.train_seconds,
        "images_per_second": state.train_images / max(state.train_seconds, 1e-9),
        "hardware": hardware_info(run.device, run.threads, run.env.world_size),
    }
    run.log.write_json("results.json", results)
    if run.env.is_main:
        print(
            f"test accuracy {100 * test['accuracy']:.2f}% ({selected}); "
            f"{results['images_per_second']:,.0f} img/s; results in {run.run_dir / 'results.json'}",
            flush=True,
        )
    return results
