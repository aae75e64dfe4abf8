"""Every script in benchmarks/ runs to its end in its quickest form, on generated data (figures not checked).

benchmarks/fft_conv.py has its quick run in test_nn_fft_conv.py. The timings these print mean nothing on
a loaded test machine; what is checked is that each script still works as its docstring says and writes
the rows it promises.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from _tiny import make_idx_dataset

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

pytestmark = pytest.mark.slow


def _run(script: str, *args: str, cwd: Path) -> str:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_idx_dataset(tmp_path_factory.mktemp("fashion"), n_train=256, n_test=64)


def test_time_to_accuracy_quick(data, tmp_path):
    report = tmp_path / "tta.json"
    out = _run("time_to_accuracy.py", "--model", "lenet5_relu", "--model-args", "", "--goals", "6:0.1:1",
               "--seeds", "0", "--threads", "1", "--data-dir", str(data), "--json", str(report), cwd=tmp_path)
    result = json.loads(report.read_text())
    (goal,) = result["goals"]
    assert result["model"] == "lenet5_relu" and goal["budget_seconds"] == 6 and len(goal["runs"]) == 1
    assert 0 <= goal["median_accuracy"] <= 1 and ("reached" in out or "missed" in out)
    run = goal["runs"][0]
    assert 0 <= run["test_accuracy_without_tta"] <= 1 and run["precision"] == "fp32" and run["tta_flip"]


def test_tuning_reads_no_test_set_and_picks_the_best_validation(data, tmp_path):
    report = tmp_path / "tune.json"
    _run("tune_fast_recipe.py", "--budget", "4", "--only", "base", "lr 0.2", "--val-split", "64", "--threads", "1",
         "--data-dir", str(data), "--json", str(report), cwd=tmp_path)
    result = json.loads(report.read_text())
    rows = {r["candidate"]: r for r in result["candidates"]}
    assert set(rows) == {"base", "lr 0.2"}
    assert result["chosen"] == max(rows, key=lambda k: rows[k]["final_val_accuracy"])


def test_train_throughput_quick(data, tmp_path):
    report = tmp_path / "throughput.json"
    _run("train_throughput.py", "--models", "lenet5_relu", "--seconds", "0.5", "--workers", "0", "--threads", "1",
         "--batch-size", "32", "--data-dir", str(data), "--json", str(report), cwd=tmp_path)
    (row,) = json.loads(report.read_text())
    assert row["model"] == "lenet5_relu" and row["cnnlab_images_per_second"] > 0
    assert row["conventional_images_per_second"] > 0 and row["ratio"] > 0 and row["matmul_peak_gflops"] > 0


def test_summary_speed_quick(tmp_path):
    out = _run("summary_speed.py", "--models", "lenet5", "--repeat", "1", "--threads", "1", cwd=tmp_path)
    (line,) = [line for line in out.splitlines() if line.startswith("lenet5 ")]
    assert "1x32x32" in line and line.count("s") >= 2


def test_landscape_speed_quick(data, tmp_path):
    out = tmp_path / "landscape.json"
    _run("landscape_speed.py", "--quick", "--threads", "2", "--data-dir", str(data), "--json", str(out), cwd=tmp_path)
    report = json.loads(out.read_text())
    names = [row["what"] for row in report["rows"]]
    assert names == ["reference loop", "cnnlab", "cnnlab, 2 processes x 1 thread"]
    assert report["grid"] == [3, 3] and report["images"] == 256
    assert report["max_diff"] < 1e-4  # the processes' share of the grid gives the same losses as one process
    assert all(row["seconds"] > 0 for row in report["rows"])
