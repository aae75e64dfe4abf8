"""Many independent training runs, resumable, in this process, a local process pool, or a Ray cluster.

A :class:`Job` is one ``cnnlab train`` run: a key (its folder name) and ``TrainConfig`` settings. The
runner trains every job into ``out_dir/KEY`` and appends one line per finished job to a JSON-lines
record, so a killed sweep restarts with only the missing jobs; a job that diverges is recorded as
failed, not raised. A job whose folder another live process still holds (a worker of a killed sweep
finishing its trial) is reported "busy" and left out of the record: a later restart runs or reuses it.
Design-space sweeps, the notes' experiments and ``compare --train`` all run here.

Executors:

- ``local`` (default): ``workers=1`` trains in this process, one job after another; ``workers=N``
  starts N worker processes (the ``spawn`` method: no state shared with this one), each with an equal
  share of the CPU threads.
- ``ray``: each job is a Ray task asking for its CPUs (and a GPU when the job trains on CUDA); results
  stream back as tasks finish. ``address=None`` starts a private local Ray; ``"auto"`` or
  ``"HOST:PORT"`` joins a running cluster (``ray start --head`` on one machine, ``ray start
  --address=HOST:PORT`` on the others; every machine needs cnnlab and the data). Install with
  ``pip install 'cnnlab[ray]'``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.errors import ConfigError
from cnnlab.files import DirectoryBusyError, write_text_atomic

__all__ = ["BUSY", "EXECUTORS", "Job", "JobResult", "read_record", "refuse_busy", "run_jobs"]

BUSY = "busy"  # a JobResult's status when another process holds the job's folder; never recorded
_WATCHING = False  # whether this (worker) process already watches for its parent's death

EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class Job:
    """One training run: ``key`` names its folder and its line in the record; ``settings`` are TrainConfig fields."""

    key: str
    settings: Mapping[str, Any]
    info: Mapping[str, Any] = field(default_factory=dict)  # carried into the record untouched (e.g. a sampled config)


@dataclass
class JobResult:
    """How one job ended: ``status`` "ok" with the run's results.json, "failed" or "busy" with the error."""

    key: str
    status: str
    result: dict[str, Any]
    info: dict[str, Any]
    seconds: float
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "status": self.status, "seconds": self.seconds, "error": self.error,
                "info": self.info, "result": self.result}

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> JobResult:
        return cls(row["key"], row["status"], dict(row.get("result") or {}), dict(row.get("info") or {}),
                   float(row.get("seconds", 0.0)), row.get("error"))


def read_record(path: str | Path) -> list[JobResult]:
    """The finished jobs of a record file (a torn last line, from a kill mid-write, is ignored)."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(JobResult.from_dict(json.loads(line)))
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    return rows


def run_jobs(
    jobs: Sequence[Job],
    out_dir: str | Path,
    *,
    executor: str = "local",
    workers: int = 1,
    address: str | None = None,
    record: str = "results.jsonl",
    on_event: Callable[[str, Job, JobResult | None], None] | None = None,
) -> list[JobResult]:
    """Train every job not yet in ``out_dir/record``; returns every job's result in the order of ``jobs``.

    ``on_event(kind, job, result)`` is told "skip" (already recorded), "start" and "done" (with its
    result) so a caller can show progress.
    """
    _check_jobs(jobs)
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")
    if workers < 1:
        raise ConfigError(f"workers must be 1 or more, got {workers}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    record_path = out / record
    # A recorded run whose folder lost its results (deleted, or copied without them) runs again.
    done = {r.key: r for r in read_record(record_path) if r.status != "ok" or (out / r.key / "results.json").exists()}
    todo = [job for job in jobs if job.key not in done]
    for job in jobs:
        if job.key in done and on_event is not None:
            on_event("skip", job, done[job.key])
    threads = _threads_per_worker(workers, jobs)
    if executor == "ray":
        results = _run_ray(todo, out, threads, address, on_event)
    elif workers == 1 or len(todo) <= 1:
        results = (_announce(job, on_event) or run_job(job, out, threads) for job in todo)
    else:
        results = _run_pool(todo, out, workers, threads, on_event)
    try:
        for result in results:
            if result.status != BUSY:
                _append(record_path, result)
            done[result.key] = result
            if on_event is not None:
                on_event("done", next(j for j in jobs if j.key == result.key), result)
    finally:
        # Interrupted (Ctrl-C, an exception in on_event): stop the executor now, not when the generator
        # is garbage-collected, so a restart never races a trial of this run still going.
        close = getattr(results, "close", None)
        if close is not None:
            close()
    return [done[job.key] for job in jobs]


def refuse_busy(results: Sequence[JobResult]) -> None:
    """Raise when a job was held by another process: a verdict or table must not count it as failed."""
    busy = [r for r in results if r.status == BUSY]
    if busy:
        raise DirectoryBusyError(f"{len(busy)} run(s) are still being trained by another process ({busy[0].error}); "
                                 f"the finished ones are kept: rerun once it has stopped")


def run_job(job: Job, out_dir: str | Path, threads: int | None = None) -> JobResult:
    """Train one job into ``out_dir/KEY`` (resuming a killed run, reusing a finished one); never raises for
    a diverging run or a bad setting, which are recorded as failures."""
    from cnnlab.errors import CnnlabError
    from cnnlab.train import resolve_config, resume_training, train

    run_dir = Path(out_dir) / job.key
    start = time.perf_counter()
    try:
        if (run_dir / "results.json").exists():
            result = json.loads((run_dir / "results.json").read_text())
        elif (run_dir / "last.pt").exists():
            result = resume_training(run_dir)
        else:
            settings = dict(job.settings)
            if threads is not None and settings.get("threads") is None:
                settings["threads"] = threads
            result = train(resolve_config({**settings, "out": str(run_dir)}))
    except DirectoryBusyError as err:  # not this job's failure: another process is still training it
        print(f"cnnlab: {job.key} left for a later restart: {err}", file=sys.stderr, flush=True)
        return JobResult(job.key, BUSY, {}, dict(job.info), time.perf_counter() - start, str(err))
    except CnnlabError as err:  # a diverging run (TrainingDivergedError) or a setting that cannot work
        print(f"cnnlab: {job.key} failed: {err}", file=sys.stderr, flush=True)
        return JobResult(job.key, "failed", {}, dict(job.info), time.perf_counter() - start, str(err))
    return JobResult(job.key, "ok", result, dict(job.info), time.perf_counter() - start)


def _check_jobs(jobs: Sequence[Job]) -> None:
    keys = [job.key for job in jobs]
    if len(set(keys)) != len(keys):
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        raise ConfigError(f"job keys must be unique; repeated: {', '.join(repeated)}")
    bad = [k for k in keys if not k or "/" in k or k.startswith(".")]
    if bad:
        raise ConfigError(f"a job key is a folder name (no '/', not starting with '.'), got {bad[0]!r}")


def _threads_per_worker(workers: int, jobs: Sequence[Job]) -> int | None:
    """An equal share of the free cores per worker, unless the jobs set their own thread count."""
    if workers == 1 or any(job.settings.get("threads") for job in jobs):
        return None
    from cnnlab.train.runtime import free_cores

    return max(1, free_cores(workers))


def _announce(job: Job, on_event: Callable[[str, Job, JobResult | None], None] | None) -> None:
    if on_event is not None:
        on_event("start", job, None)


def _append(path: Path, result: JobResult) -> None:
    """Add one line to the record: rewritten whole and renamed, so a kill never leaves half a line."""
    text = path.read_text() if path.exists() else ""
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]  # drop a torn line
    write_text_atomic(path, text + json.dumps(result.to_dict(), default=str) + "\n")


def _stop_with_parent() -> None:
    """In a pool worker: when the process that started it dies (killed, not Ctrl-C), stop as on Ctrl-C.

    Otherwise an orphaned worker trains its trial on, holding the trial's folder, while a restarted
    sweep starts beside it on the same cores.
    """
    global _WATCHING
    if _WATCHING:
        return
    _WATCHING = True
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGINT)  # the trainer checkpoints on KeyboardInterrupt
        time.sleep(60.0)
        os._exit(1)  # a worker that did not stop after its checkpoint

    threading.Thread(target=watch, name="cnnlab-parent-watch", daemon=True).start()


def _local_pool_worker(job: Job, out_dir: str, threads: int | None) -> JobResult:
    _stop_with_parent()
    return _pool_worker(job, out_dir, threads)


def _pool_worker(job: Job, out_dir: str, threads: int | None) -> JobResult:
    # Worker processes are fresh interpreters: quiet progress bars would interleave otherwise.
    return run_job(Job(job.key, {"quiet": True, **job.settings}, job.info), out_dir, threads)


def _run_pool(todo: Sequence[Job], out: Path, workers: int, threads: int | None,
              on_event: Callable[[str, Job, JobResult | None], None] | None) -> Iterator[JobResult]:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        pending = {}
        queue = list(todo)
        while queue or pending:
            while queue and len(pending) < workers:
                job = queue.pop(0)
                _announce(job, on_event)
                pending[pool.submit(_local_pool_worker, job, str(out), threads)] = job
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                pending.pop(future)
                yield future.result()


def _run_ray(todo: Sequence[Job], out: Path, threads: int | None, address: str | None,
             on_event: Callable[[str, Job, JobResult | None], None] | None) -> Iterator[JobResult]:
    try:
        import ray
    except ImportError as err:
        raise ConfigError("--executor ray needs Ray: pip install 'cnnlab[ray]'") from err
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(_source_paths())}})
    pending = {}
    try:
        task = ray.remote(_pool_worker)
        for job in todo:
            _announce(job, on_event)
            cpus = job.settings.get("threads") or threads or 1
            gpus = 1 if str(job.settings.get("device", "")).startswith("cuda") else 0
            ref = task.options(num_cpus=cpus, num_gpus=gpus).remote(job, str(out), cpus)
            pending[ref] = job
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                pending.pop(ref)
                yield ray.get(ref)
    finally:
        for ref in pending:  # left unfinished by an interruption: their trials run again on restart
            ray.cancel(ref, force=True)
        if pending:  # a restart must not find a dying worker still holding its run folder's lock
            ray.wait(list(pending), num_returns=len(pending), timeout=60)
        if started_here:
            ray.shutdown()


def _source_paths() -> list[str]:
    """Where cnnlab is imported from, so Ray's worker processes import the same code."""
    here = str(Path(__file__).resolve().parents[2])  # the folder holding the cnnlab package
    return [here, *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != here]]

