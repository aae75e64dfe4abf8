"""Getting a named data set onto this machine: found locally, else Debian's package, else torchvision.

``make demo`` and ``make test`` call ``cnnlab data fetch fashion-mnist`` so a fresh machine needs no
set-up by hand. The decision is one pure function (:func:`fetch_plan`) of what the machine offers, so
it is tested without root, apt or a network; :func:`fetch_dataset` carries the plan out.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cnnlab.data import sources
from cnnlab.errors import UnknownNameError

__all__ = ["FetchResult", "fetch_dataset", "fetch_plan"]

@dataclass(frozen=True)
class FetchResult:
    """Where the data set is now and how it got there ("found", "apt" or "download")."""

    name: str
    folder: Path
    how: str
    notes: tuple[str, ...] = ()


def fetch_plan(has_apt_package: bool, is_root: bool, has_apt: bool, download: bool, apt: bool = True) -> list[str]:
    """The ways to try, in order, for a data set not found on disk: Debian's package needs root and apt-get."""
    plan = []
    if apt and has_apt_package and is_root and has_apt:
        plan.append("apt")
    if download:
        plan.append("download")
    return plan


def fetch_dataset(name: str, data_dir: str | Path | None = None, *, apt: bool = True, download: bool = True,
                  run: Callable[[Sequence[str]], int] | None = None) -> FetchResult:
    """Make sure the named data set is on disk; returns where, or raises one clear ``DatasetNotFoundError``."""
    key = sources.canonical_dataset_name(name)
    if key is None:
        raise UnknownNameError(f"unknown data set {name!r}; choose one of {', '.join(sources.DATASETS)}")
    spec = sources.DATASETS[key]
    roots = sources.data_roots(data_dir)
    folder, missing = sources.find_dataset_dir(spec, roots)
    if folder is not None:
        return FetchResult(key, folder, "found")
    run = run or _run_quietly
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    plan = fetch_plan(spec.apt_package is not None, is_root, shutil.which("apt-get") is not None, download, apt)
    notes = []
    for step in plan:
        if step == "apt":
            ok = run(["apt-get", "install", "-y", "-q", spec.apt_package]) == 0 or (
                run(["apt-get", "update", "-q"]) == 0
                and run(["apt-get", "install", "-y", "-q", spec.apt_package]) == 0)
            notes.append(f"apt-get install {spec.apt_package}: {'done' if ok else 'failed'}")
        else:
            target = sources.download_root(roots)
            try:
                sources.DOWNLOADER(spec, target)
                notes.append(f"torchvision download into {target}: done")
            except Exception as err:  # noqa: BLE001  (any failure is reported in the one message below)
                notes.append(f"torchvision download into {target}: failed ({str(err).splitlines()[0][:120]})")
        folder, missing = sources.find_dataset_dir(spec, sources.data_roots(data_dir))
        if folder is not None:
            return FetchResult(key, folder, step, tuple(notes))
    tried = "; ".join(notes) if notes else _why_nothing_was_tried(spec, is_root, apt, download)
    raise sources.not_found_error(spec, missing, roots, tried)


def _why_nothing_was_tried(spec: sources.DatasetSpec, is_root: bool, apt: bool, download: bool) -> str:
    reasons = ["downloading is disabled (--no-download)" if not download else ""]
    if spec.apt_package and apt and not is_root:
        reasons.append(f"Debian's {spec.apt_package} needs root")
    return "; ".join(r for r in reasons if r) or "no way to fetch it here"


def _run_quietly(command: Sequence[str]) -> int:
    try:
        return subprocess.run(list(command), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=900).returncode
    except (OSError, subprocess.TimeoutExpired):
        return 1

