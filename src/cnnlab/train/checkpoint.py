"""Checkpoints: plain dicts of tensors, numbers, strings and lists, written atomically and loaded safely.

``torch.load(weights_only=True)`` refuses arbitrary objects, so everything stored is plain: the config
as a dict, random-number-generator states as tensors.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "CHECKPOINT_FORMAT",
    "capture_rng",
    "is_cnnlab_checkpoint",
    "load_checkpoint",
    "restore_rng",
]

CHECKPOINT_FORMAT = "cnnlab-checkpoint-v1"


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
        raise FileNotFoundError(f"checkpoint {path} does not exist{hint}")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001  (pickle, zip and unsafe-type errors all mean the same here)
        raise ValueError(f"cannot load checkpoint {path}: {str(err).splitlines()[0]}") from err
    if not isinstance(obj, dict):
        raise ValueError(f"{path} holds a {type(obj).__name__}, not a checkpoint or state_dict")
    return obj


def is_cnnlab_checkpoint(obj: dict) -> bool:
    """Whether a loaded dict is one of our training checkpoints (not a bare state_dict)."""
    return obj.get("format") == CHECKPOINT_FORMAT


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
