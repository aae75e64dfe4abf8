"""The run directory: resolved config, per-epoch metrics (CSV, JSONL, TensorBoard), final results.

Only the main process writes; each file is rewritten whole and renamed into place, so a run killed at
any moment leaves complete files that agree with its last checkpoint.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.errors import DataError
from cnnlab.files import write_json_atomic, write_jsonl_atomic, write_text_atomic

__all__ = ["RunLog", "RunRecord", "read_run"]


class RunLog:
    """Writes a run directory's files (a no-op on processes other than the main one)."""

    def __init__(self, run_dir: str | Path, enabled: bool = True, tensorboard: bool = True) -> None:
        self.dir = Path(run_dir)
        self.enabled = enabled
        self._tb = None
        self._use_tb = enabled and tensorboard and importlib.util.find_spec("tensorboard") is not None
        if enabled:
            self.dir.mkdir(parents=True, exist_ok=True)

    def write_json(self, name: str, data: Any) -> None:
        if self.enabled:
            write_json_atomic(self.dir / name, data)

    def write_metrics(self, history: list[dict]) -> None:
        """metrics.csv and metrics.jsonl from the full per-epoch history."""
        if not self.enabled or not history:
            return
        columns = list(dict.fromkeys(k for row in history for k in row))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(history)
        write_text_atomic(self.dir / "metrics.csv", buf.getvalue())
        write_jsonl_atomic(self.dir / "metrics.jsonl", history)

    def write_jsonl(self, name: str, rows: list[dict]) -> None:
        if self.enabled:
            write_jsonl_atomic(self.dir / name, rows)

    def log_epoch(self, row: dict) -> None:
        """One epoch's scalars to TensorBoard, when it is installed."""
        if not self._use_tb:
            return
        if self._tb is None:
            from torch.utils.tensorboard import SummaryWriter

            # A resumed run rewrites the epoch it was killed in: purge what the killed session logged from it on.
            self._tb = SummaryWriter(str(self.dir / "tensorboard"), purge_step=row["epoch"])
        for key, value in row.items():
            if key not in ("epoch", "step") and isinstance(value, int | float):
                self._tb.add_scalar(key, value, row["epoch"])
        self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


@dataclass
class RunRecord:
    """What a run directory holds about its training: the files RunLog wrote, read back."""

    dir: Path
    config: dict[str, Any]  # config.json
    history: list[dict[str, Any]]  # metrics.jsonl: one row per epoch
    curve: list[dict[str, Any]] = field(default_factory=list)  # curve.jsonl: one row per logging window
    results: dict[str, Any] | None = None  # results.json, once the run finished


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_run(run_dir: str | Path) -> RunRecord:
    """The config, per-epoch metrics, training curve and results of a run directory of ``cnnlab train``."""
    folder = Path(run_dir)
    if not (folder / "config.json").is_file():
        raise DataError(f"{folder} is not a run directory of `cnnlab train` (it has no config.json)")
    history, curve = _jsonl(folder / "metrics.jsonl"), _jsonl(folder / "curve.jsonl")
    if not history and not curve:
        raise DataError(f"{folder} has no training record yet (metrics.jsonl, curve.jsonl): it has not trained a "
                        f"logging window; let it run longer")
    results = folder / "results.json"
    return RunRecord(folder, json.loads((folder / "config.json").read_text()), history, curve,
                     json.loads(results.read_text()) if results.is_file() else None)
