"""The job runner behind sweeps and experiments: a record per finished job, restarts that run only what is
missing, failures recorded, and the same results from this process, a process pool and Ray."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

import cnnlab.train
from _tiny import make_idx_dataset
from cnnlab.errors import ConfigError
from cnnlab.experiments.jobs import BUSY, Job, read_record, refuse_busy, run_jobs
from cnnlab.files import DirectoryBusyError, DirectoryLock
from cnnlab.train import TrainingDivergedError

BASE = {"model": "lenet5_relu", "data": "fashion-mnist", "epochs": 1, "batch_size": 32, "val_split": 0,
        "threads": 1, "quiet": True, "download": False, "lr": 0.02}


@pytest.fixture(scope="module")
def fashion_dir(tmp_path_factory):
    return make_idx_dataset(tmp_path_factory.mktemp("fashion"), n_train=96, n_test=32)


def _jobs(data_dir, n: int) -> list[Job]:
    return [Job(f"trial-{i}", {**BASE, "data_dir": str(data_dir), "seed": i}, {"index": i}) for i in range(n)]


def test_a_killed_sweep_restarts_with_only_the_missing_jobs(fashion_dir, tmp_path, monkeypatch):
    real_train = cnnlab.train.train
    calls = []

    def killed_at_the_third(cfg):
        calls.append(cfg.seed)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the sweep is killed during its third job
        return real_train(cfg)

    monkeypatch.setattr(cnnlab.train, "train", killed_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        run_jobs(_jobs(fashion_dir, 4), tmp_path)
    assert [r.key for r in read_record(tmp_path / "results.jsonl")] == ["trial-0", "trial-1"]

    monkeypatch.setattr(cnnlab.train, "train", real_train)
    events = []
    results = run_jobs(_jobs(fashion_dir, 4), tmp_path, on_event=lambda kind, job, r: events.append((kind, job.key)))
    assert [r.key for r in results] == ["trial-0", "trial-1", "trial-2", "trial-3"]
    assert ("skip", "trial-0") in events and ("start", "trial-2") in events and ("start", "trial-0") not in events
    record = read_record(tmp_path / "results.jsonl")
    assert sorted(r.key for r in record) == ["trial-0", "trial-1", "trial-2", "trial-3"]  # no duplicates
    assert all(r.status == "ok" and 0 <= r.result["test_accuracy"] <= 1 for r in record)
    assert [r.info["index"] for r in results] == [0, 1, 2, 3]


def test_a_diverging_job_is_recorded_as_failed_not_raised(fashion_dir, tmp_path, monkeypatch):
    real_train = cnnlab.train.train

    def diverge_on_seed_1(cfg):
        if cfg.seed == 1:
            raise TrainingDivergedError("the training loss became NaN in epoch 1 near step 2")
        return real_train(cfg)

    monkeypatch.setattr(cnnlab.train, "train", diverge_on_seed_1)
    results = run_jobs(_jobs(fashion_dir, 2), tmp_path)
    assert [r.status for r in results] == ["ok", "failed"] and "NaN" in results[1].error
    # A failure is final: a restart does not retry it.
    assert run_jobs(_jobs(fashion_dir, 2), tmp_path)[1].status == "failed"


def test_a_job_another_process_holds_is_left_for_a_restart_not_recorded_as_failed(fashion_dir, tmp_path):
    held = DirectoryLock(tmp_path / "trial-0")  # as an orphaned worker of a killed sweep still holds its trial
    with held:
        results = run_jobs(_jobs(fashion_dir, 2), tmp_path)
        assert [r.status for r in results] == [BUSY, "ok"] and "another run" in results[0].error
        assert [r.key for r in read_record(tmp_path / "results.jsonl")] == ["trial-1"]
        with pytest.raises(DirectoryBusyError, match="1 run"):
            refuse_busy(results)
    again = run_jobs(_jobs(fashion_dir, 2), tmp_path)
    assert [r.status for r in again] == ["ok", "ok"]
    assert sorted(r.key for r in read_record(tmp_path / "results.jsonl")) == ["trial-0", "trial-1"]


_ORPHAN = """
import multiprocessing, os, sys, time
from pathlib import Path

def child(folder):
    from cnnlab.experiments.jobs import _stop_with_parent
    _stop_with_parent()
    Path(folder, "ready").write_text("")
    try:
        time.sleep(60)
    except KeyboardInterrupt:
        Path(folder, "stopped").write_text("")

if __name__ == "__main__":
    process = multiprocessing.get_context("spawn").Process(target=child, args=(sys.argv[1],))
    process.start()
    while not Path(sys.argv[1], "ready").exists():
        time.sleep(0.05)
    os._exit(0)  # killed: the child is orphaned
"""


def test_a_pool_worker_stops_when_its_parent_is_killed(tmp_path):
    script = tmp_path / "orphan.py"
    script.write_text(_ORPHAN)
    subprocess.run([sys.executable, str(script), str(tmp_path)], check=True, timeout=60)
    deadline = time.monotonic() + 20
    while not (tmp_path / "stopped").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (tmp_path / "stopped").exists()


def test_a_torn_last_line_is_ignored(tmp_path):
    good = {"key": "a", "status": "ok", "seconds": 1.0, "error": None, "info": {}, "result": {}}
    (tmp_path / "results.jsonl").write_text(json.dumps(good) + "\n" + '{"key": "b", "sta')
    assert [r.key for r in read_record(tmp_path / "results.jsonl")] == ["a"]


@pytest.mark.parametrize("jobs, message", [
    ([Job("a", {}), Job("a", {})], "unique"),
    ([Job("x/y", {})], "folder name"),
])
def test_bad_jobs_are_config_errors(tmp_path, jobs, message):
    with pytest.raises(ConfigError, match=message):
        run_jobs(jobs, tmp_path)


@pytest.mark.slow
def test_a_process_pool_gives_the_results_of_one_process(fashion_dir, tmp_path):
    one = run_jobs(_jobs(fashion_dir, 2), tmp_path / "one")
    pool = run_jobs(_jobs(fashion_dir, 2), tmp_path / "pool", workers=2)
    for a, b in zip(one, pool):
        assert a.key == b.key and a.result["test_accuracy"] == pytest.approx(b.result["test_accuracy"])
        assert a.result["test_loss"] == pytest.approx(b.result["test_loss"], rel=1e-4)


@pytest.mark.slow
def test_ray_runs_the_same_jobs_and_resumes(fashion_dir, tmp_path):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        first = run_jobs(_jobs(fashion_dir, 2), tmp_path, executor="ray")
        assert [r.status for r in first] == ["ok", "ok"]
        events = []
        again = run_jobs(_jobs(fashion_dir, 3), tmp_path, executor="ray",
                         on_event=lambda kind, job, r: events.append((kind, job.key)))
    finally:
        ray.shutdown()
    assert [e for e in events if e[0] == "start"] == [("start", "trial-2")]
    assert [r.key for r in again] == ["trial-0", "trial-1", "trial-2"]
    assert len(read_record(tmp_path / "results.jsonl")) == 3
    local = run_jobs(_jobs(fashion_dir, 1), tmp_path / "local")
    assert local[0].result["test_accuracy"] == pytest.approx(first[0].result["test_accuracy"])
