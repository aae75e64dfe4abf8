"""The run directory: which one a run writes or resumes, held by a lock while it does, and a finished run.

The directory is created and locked before any data loads, so a bad ``--out`` costs nothing; only the
main process writes, so only it takes the lock (an flock the system drops when the process dies, however
it dies). Resuming a finished run returns its results instead of testing it again.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

from cnnlab.errors import CheckpointError, OutputPathError
from cnnlab.files import LOCK_NAME, DirectoryBusyError, DirectoryLock, make_unique_directory
from cnnlab.train.checkpoint import TrainingCheckpoint
from cnnlab.train.config import TrainConfig
from cnnlab.train.console import notice

__all__ = ["busy_message", "claim_run_dir", "finished_results", "release_run_dir", "run_dir_to_resume"]


def finished_results(
    run_dir: Path, ckpt: TrainingCheckpoint, cfg: TrainConfig, epochs_overridden: bool
) -> dict | None:
    """The results of a finished run that resuming with ``cfg`` would not train further; else None.

    A run is finished when its results.json describes the checkpoint's step. It trains further when there
    are epochs left to run (more --epochs than it ran) and time left in its --time-budget, if it has one;
    otherwise resuming would only test it again, so its results are returned as they are, with a note on
    how to train it longer.
    """
    path = run_dir / "results.json"
    if not path.is_file():
        return None
    results = json.loads(path.read_text())
    state = ckpt.state
    if results.get("steps") != state.global_step:
        return None  # the results of an earlier finish: the run was extended since
    epochs = cfg.epochs if epochs_overridden else state.epochs
    time_left = cfg.time_budget is None or state.wall_seconds < 0.95 * cfg.time_budget
    if state.epoch < epochs and time_left:
        return None
    hint = f"--epochs {2 * state.epoch}"
    if cfg.time_budget is not None:
        hint += f" --time-budget {2 * cfg.time_budget:g}"
    notice(
        f"{run_dir} is complete ({state.epoch} epochs, {state.global_step} steps; test accuracy "
        f"{100 * results['test_accuracy']:.2f}% in {path}); to train it longer: "
        f"`cnnlab train --resume {run_dir} {hint}`"
    )
    return results




def run_dir_to_resume(path: Path) -> Path:
    """The run directory a --resume argument names: the directory itself, or the one holding its last.pt."""
    if not path.is_file():
        return path
    if path.name == "last.pt":
        return path.parent
    raise CheckpointError(
        f"--resume takes a run directory or its last.pt, not {path}; to start a new run from the weights in "
        f"{path}, use --init {path}"
    )


def busy_message(run_dir: str | Path, pid: int | None, resuming: bool) -> str:
    holder = f"process {pid}" if pid else "another process"
    if resuming:
        return (f"the run in {run_dir} is still training ({holder}); resume it once that process has stopped "
                f"(Ctrl-C checkpoints it)")
    return f"{run_dir} is being written by another run ({holder}); choose another --out or wait for it to finish"


def default_run_dir(cfg: TrainConfig) -> Path:
    data = Path(cfg.data).name or "data"
    return Path("runs") / f"{cfg.model}-{data}-{time.strftime('%Y%m%d-%H%M%S')}"


def claim_run_dir(cfg: TrainConfig, resuming: bool, is_main: bool) -> tuple[TrainConfig, DirectoryLock | None]:
    """Create and lock the run directory before any data loads, so a bad --out costs nothing.

    Only the main process writes, so only it takes the lock; a default name that exists already gets a
    suffix (two runs started in the same second get two directories).
    """
    if cfg.out is None:
        default = default_run_dir(cfg)
        cfg = replace(cfg, out=str(make_unique_directory(default) if is_main else default))
    out = Path(cfg.out)
    lock = DirectoryLock(out) if is_main else None
    try:
        if lock is not None:
            lock.acquire()
    except DirectoryBusyError as err:
        raise DirectoryBusyError(busy_message(out, err.pid, resuming), err.pid) from None
    if not resuming and (out / "last.pt").exists():
        if lock is not None:
            lock.release()
        raise OutputPathError(
            f"{out} already holds a run; continue it with `cnnlab train --resume {out}` or choose another --out"
        )
    return cfg, lock


def release_run_dir(lock: DirectoryLock | None, created: bool) -> None:
    """Give the run directory up; one this run created and wrote nothing into goes again."""
    if lock is None:
        return
    lock.release()
    if created and [p.name for p in lock.path.iterdir()] == [LOCK_NAME]:
        (lock.path / LOCK_NAME).unlink(missing_ok=True)
        lock.path.rmdir()
