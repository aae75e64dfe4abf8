"""Every shell and Python block of the README runs as written, in order, in one working directory.

What a new user pastes must work, so the README is run the way they would: each ```bash block with bash
(-e: every line must succeed), each ```python block with this Python, from a fresh folder. Three things
make it fast and offline, none of them edits to the commands:

- ``CNNLAB_README_SMOKE=1``: the ``cnnlab`` command cuts every training it starts to one epoch of 512
  images (20 s under a time budget); the README's Development section says so.
- Generated Fashion-MNIST-shaped data in ``$CNNLAB_DATA`` (10 classes, 28x28), found before any real copy.
- Stand-ins for what a user brings or downloads: ``my-photos/`` (their image folder, 3 classes) and
  torchvision's ResNet-18 ImageNet weights in ``$TORCH_HOME`` (untrained, with the file name torchvision
  caches them under, so ``weights=IMAGENET1K_V1`` loads them instead of downloading).

A block that cannot run here is marked ``<!-- readme-test: skip (reason) -->`` on the line above it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from _tiny import make_idx_dataset, make_image_folder

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
_SKIP = re.compile(r"<!--\s*readme-test:\s*skip\s*\((.+?)\)\s*-->\s*$")
# torchvision caches ResNet18_Weights.IMAGENET1K_V1 under this name (the URL's last part).
_RESNET18_FILE = "resnet18-f37072fd.pth"

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Block:
    """One fenced block of the README: its language, text, line number and skip reason (if marked)."""

    language: str
    text: str
    line: int
    skip: str | None

    @property
    def name(self) -> str:
        first = next((x for x in self.text.splitlines() if x.strip()), "")
        return f"line {self.line}: {first[:50]}"


def readme_blocks(text: str) -> list[Block]:
    """The README's ```bash and ```python blocks, in order (other fences, e.g. ```text, are not run)."""
    blocks = []
    for match in _FENCE.finditer(text):
        language = match.group(1)
        if language not in ("bash", "python"):
            continue
        line = text.count("\n", 0, match.start()) + 1
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        skip = _SKIP.search(before)
        blocks.append(Block(language, match.group(2), line, skip.group(1) if skip else None))
    return blocks


BLOCKS = readme_blocks(README.read_text())


def _shims(folder: Path) -> Path:
    """``cnnlab`` and ``python`` commands that run this source tree with this interpreter."""
    folder.mkdir()
    for name, command in (("cnnlab", f'"{sys.executable}" -m cnnlab "$@"'), ("python", f'"{sys.executable}" "$@"')):
        script = folder / name
        script.write_text(f"#!/bin/sh\nexec {command}\n")
        script.chmod(0o755)
    return folder


def _stand_in_weights(torch_home: Path) -> None:
    import torch
    import torchvision

    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(torchvision.models.resnet18().state_dict(), folder / _RESNET18_FILE)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """(folder to run in, environment): generated data, stand-ins, smoke budgets, the shims first on PATH."""
    root = tmp_path_factory.mktemp("readme")
    data = make_idx_dataset(root / "data", n_train=640, n_test=200)
    work = root / "work"
    work.mkdir()
    make_image_folder(work / "my-photos", per_class=20, size=40)  # 60 training images, as in the issue
    _stand_in_weights(root / "torch")
    env = {
        **os.environ,
        "CNNLAB_README_SMOKE": "1",
        "CNNLAB_DATA": str(data),
        "TORCH_HOME": str(root / "torch"),
        "PATH": f"{_shims(root / 'bin')}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": os.environ.get("CNNLAB_TEST_THREADS", "1"),
    }
    return work, env


def test_the_readme_has_runnable_blocks_and_every_skip_says_why():
    assert sum(b.skip is None for b in BLOCKS) >= 10
    assert all(b.skip.strip() for b in BLOCKS if b.skip is not None)
    assert {b.language for b in BLOCKS} == {"bash", "python"}


@pytest.mark.parametrize("block", BLOCKS, ids=[b.name for b in BLOCKS])
def test_readme_block_runs_as_written(block, workspace):
    if block.skip is not None:
        pytest.skip(block.skip)
    work, env = workspace
    command = ["bash", "-e", "-o", "pipefail", "-c", block.text] if block.language == "bash" else \
        [sys.executable, "-c", block.text]
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (
        f"README {block.name} failed (exit {done.returncode}):\n{block.text}\n"
        f"--- stdout ---\n{done.stdout[-3000:]}\n--- stderr ---\n{done.stderr[-3000:]}"
    )
