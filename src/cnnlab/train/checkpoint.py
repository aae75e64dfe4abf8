"""Checkpoints: plain dicts of tensors, numbers, strings and lists, written atomically and loaded safely.

``torch.load(weights_only=True)`` refuses arbitrary objects, so everything stored is plain: the config
as a dict, random-number-generator states as tensors. ``TrainingCheckpoint`` (last.pt) and
``BestCheckpoint`` (best.pt) name what each file holds; ``to_dict()`` is what goes to disk, and
``from_dict()`` reads it back, files of format "cnnlab-checkpoint-v1" written before these types included.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnlab.errors import CheckpointError, ConfigError
from cnnlab.train.config import TrainConfig
from cnnlab.train.inputs import DataMeta
from cnnlab.train.state import TrainState

__all__ = [
    "CHECKPOINT_FORMAT",
    "BestCheckpoint",
    "CheckpointNotFoundError",
    "RunCheckpoint",
    "TrainingCheckpoint",
    "capture_rng",
    "is_cnnlab_checkpoint",
    "load_checkpoint",
    "load_run_checkpoint",
    "restore_rng",
]

CHECKPOINT_FORMAT = "cnnlab-checkpoint-v1"


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A checkpoint path that names no file (a FileNotFoundError too, as Python callers expect)."""


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """A checkpoint (ours or any plain state_dict file), loaded with ``weights_only=True``."""
    path = Path(path)
    if path.is_dir():
        path = path / "last.pt"
    if not path.is_file():
        hint = ""
        if path.name == "best.pt" and (path.parent / "last.pt").is_file():
            last = path.parent / "last.pt"
            hint = f"; best.pt is written only when a run keeps a validation split (--val-split), use {last}"
        raise CheckpointNotFoundError(f"checkpoint {path} does not exist{hint}")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except OSError as err:
        raise CheckpointError(f"cannot read checkpoint {path}: {err.strerror or err}") from err
    except Exception as err:  # noqa: BLE001  (pickle, zip and unsafe-type errors all mean the same here)
        raise CheckpointError(_load_failure(path, err)) from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a checkpoint or state_dict")
    return obj


def _load_failure(path: Path, err: Exception) -> str:
    """One line on why ``torch.load`` failed, without PyTorch's advice to load unsafely (weights_only=False)."""
    unsafe = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
    if unsafe:
        return (
            f"cannot load checkpoint {path}: it holds a Python object ({unsafe.group(1)}), which cnnlab does not "
            f"unpickle (it could run code); save tensors only, e.g. torch.save(model.state_dict(), path)"
        )
    size = path.stat().st_size
    detail = "an empty file" if size == 0 else f"{size:,} bytes that PyTorch cannot read"
    return (
        f"cannot load checkpoint {path}: it is not a cnnlab checkpoint or is damaged ({detail}); "
        f"use a last.pt or best.pt that `cnnlab train` wrote"
    )


def is_cnnlab_checkpoint(obj: dict) -> bool:
    """Whether a loaded dict is one of our training checkpoints (not a bare state_dict)."""
    return obj.get("format") == CHECKPOINT_FORMAT


@dataclass
class RunCheckpoint:
    """What every cnnlab checkpoint holds: the run's config, its data description and model weights."""

    config: TrainConfig
    data: DataMeta
    model: dict[str, torch.Tensor]  # the plain model's state_dict

    @property
    def weights(self) -> dict[str, torch.Tensor]:
        """The weights to predict with."""
        return self.model

    def _common(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "model_name": self.config.model,
            "config": self.config.to_dict(),
            "data": self.data.to_dict(),
            "model": self.model,
        }


@dataclass
class TrainingCheckpoint(RunCheckpoint):
    """last.pt: everything a run needs to continue exactly where it stopped."""

    ema: dict | None  # ModelEma.state_dict() when --ema-decay is on
    optimizer: dict
    scaler: dict  # GradScaler state (fp16)
    plateau: dict  # Plateau.state_dict(): reductions made so far
    rng: list[dict]  # capture_rng() of every process, in rank order
    state: TrainState

    @property
    def weights(self) -> dict[str, torch.Tensor]:
        """The weights the run evaluates: the EMA's when it keeps one."""
        return (self.ema or {}).get("module") or self.model

    def to_dict(self) -> dict[str, Any]:
        return {
            **self._common(),
            "ema": self.ema,
            "optimizer": self.optimizer,
            "scaler": self.scaler,
            "scheduler": {"plateau": self.plateau},
            "rng": self.rng,
            "state": self.state.to_dict(),
            "epoch": self.state.epoch,
            "step": self.state.global_step,
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingCheckpoint:
        return cls(
            config=TrainConfig.from_dict(values["config"]),
            data=DataMeta.from_dict(values["data"]),
            model=values["model"],
            ema=values["ema"],
            optimizer=values["optimizer"],
            scaler=values["scaler"],
            plateau=values["scheduler"]["plateau"],
            rng=values["rng"],
            state=TrainState.from_dict(values["state"]),
        )


@dataclass
class BestCheckpoint(RunCheckpoint):
    """best.pt: the weights evaluated (EMA when on) at the best validation accuracy, for inference."""

    epoch: int  # epochs completed when they were best
    step: int
    val_accuracy: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            **self._common(),
            "ema": None,
            "epoch": self.epoch,
            "step": self.step,
            "val_accuracy": self.val_accuracy,
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> BestCheckpoint:
        return cls(
            config=TrainConfig.from_dict(values["config"]),
            data=DataMeta.from_dict(values["data"]),
            model=values["model"],
            epoch=values["epoch"],
            step=values["step"],
            val_accuracy=values["val_accuracy"],
        )


def load_run_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> TrainingCheckpoint | BestCheckpoint:
    """A last.pt (it has an optimizer state) or best.pt that ``cnnlab train`` wrote, as its typed payload."""
    obj = load_checkpoint(path, map_location)
    if not is_cnnlab_checkpoint(obj):
        raise CheckpointError(
            f"{path} is not a cnnlab training checkpoint (a bare state_dict has no model name or data "
            f"description); use a last.pt or best.pt that `cnnlab train` wrote"
        )
    kind = TrainingCheckpoint if "optimizer" in obj else BestCheckpoint
    try:
        return kind.from_dict(obj)
    except (KeyError, TypeError) as err:
        raise CheckpointError(f"{path} is a damaged cnnlab checkpoint: it lacks or garbles {err}") from err
    except ConfigError as err:
        raise CheckpointError(
            f"{path} holds a config this cnnlab cannot read ({err}); is it from a newer cnnlab?"
        ) from err


def capture_rng(augment_gen: torch.Generator, mix_rng: random.Random) -> dict:
    """Every random-number state the training draws from, as tensors and plain numbers."""
    version, mt, gauss = random.getstate()
    _, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()  # MT19937
    mix_version, mix_mt, mix_gauss = mix_rng.getstate()
    state = {
        "python": torch.tensor(mt, dtype=torch.int64),
        "python_version": version,
        "python_gauss": gauss,
        "numpy": torch.from_numpy(np_keys.astype(np.int64)),
        "numpy_pos": int(np_pos),
        "numpy_has_gauss": int(np_has_gauss),
        "numpy_gauss": float(np_gauss),
        "torch": torch.get_rng_state(),
        "augment": augment_gen.get_state(),
        "mix": torch.tensor(mix_mt, dtype=torch.int64),
        "mix_version": mix_version,
        "mix_gauss": mix_gauss,
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict, augment_gen: torch.Generator, mix_rng: random.Random) -> None:
    """Put every generator back where ``capture_rng`` found it."""
    random.setstate((state["python_version"], tuple(state["python"].tolist()), state["python_gauss"]))
    keys = state["numpy"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, state["numpy_pos"], state["numpy_has_gauss"], state["numpy_gauss"]))
    torch.set_rng_state(state["torch"])
    augment_gen.set_state(state["augment"])
    mix_rng.setstate((state["mix_version"], tuple(state["mix"].tolist()), state["mix_gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
