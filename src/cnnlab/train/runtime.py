"""The machine side of a run: device, threads, mixed precision, determinism, signals, hardware description."""

from __future__ import annotations

import os
import platform
import random
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from cnnlab.errors import ConfigError
from cnnlab.train.console import notice

__all__ = [
    "StopRequest",
    "autocast",
    "busy_cores",
    "channels_last_for",
    "cpu_has_fast_bf16",
    "free_cores",
    "hardware_info",
    "precision_name",
    "process_start_time",
    "read_cpu_times",
    "resolve_amp",
    "seed_everything",
    "select_device",
    "set_deterministic",
    "set_threads",
    "stop_requests",
]


def select_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` is CUDA (this process's GPU under torchrun) when available, else the CPU."""
    if name == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ConfigError(f"unknown device {name!r}; use cpu, cuda, cuda:N, mps or auto") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda was asked for but PyTorch sees no CUDA GPU; use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device mps was asked for but is not available here; use --device cpu")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


def _allowed_cpus() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def read_cpu_times(path: str = "/proc/stat") -> dict[int, tuple[int, int]] | None:
    """Per-CPU (busy, total) jiffies from Linux's /proc/stat; None where there is no such file."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    times = {}
    for line in lines:
        name, *fields = line.split() or [""]
        if name.startswith("cpu") and name[3:].isdigit():
            # user nice system idle iowait irq softirq steal: idle and iowait are the free time
            ticks = [int(v) for v in fields[:8]]
            total = sum(ticks)
            times[int(name[3:])] = (total - ticks[3] - ticks[4], total)
    return times or None


def busy_cores(cpus: list[int], window: float = 0.2) -> float:
    """How many of ``cpus`` other processes keep busy now, sampled over ``window`` seconds.

    The 1-minute load average would lag: a run started just after another ended (or after this
    process's own previous run, as in a comparison) would still see the old load and take too few threads.
    """
    before = read_cpu_times()
    if before is None:
        return float(round(os.getloadavg()[0])) if hasattr(os, "getloadavg") else 0.0
    time.sleep(window)
    after = read_cpu_times() or {}
    busy = 0.0
    for cpu in cpus:
        if cpu in before and cpu in after:
            spent = after[cpu][1] - before[cpu][1]
            busy += (after[cpu][0] - before[cpu][0]) / spent if spent > 0 else 0.0
    return busy


def free_cores(processes: int = 1) -> int:
    """Cores this process may use and that other processes leave idle now, split over ``processes``."""
    cpus = _allowed_cpus()
    busy = round(busy_cores(cpus))
    return max(1, (len(cpus) - busy) // max(processes, 1))


def set_threads(threads: int | None, processes: int = 1) -> int:
    """Set PyTorch's intra-op thread count once (``None``: the free cores); returns the count used."""
    count = threads or free_cores(processes)
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
    return count


def cpu_has_fast_bf16() -> bool:
    """Whether the CPU computes bf16 natively (AVX512-BF16 or AMX); elsewhere bf16 autocast is slower."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_amp(mode: str, device: torch.device) -> tuple[torch.dtype | None, str | None]:
    """The autocast dtype (None: fp32) for ``mode`` on ``device``, and a notice when bf16 was asked for and is off.

    ``auto`` falls back to fp32 silently: nobody asked for mixed precision, so its absence is no news.
    """
    if mode == "off":
        return None, None
    if device.type == "cuda":
        if mode == "fp16" or (mode == "auto" and not torch.cuda.is_bf16_supported()):
            return torch.float16, None
        return torch.bfloat16, None
    if device.type == "cpu":
        if mode == "fp16":
            raise ConfigError("fp16 autocast is for CUDA; on the CPU use --amp bf16 or --amp off")
        # auto takes bf16 where the CPU computes it natively because it trains faster there. Measured on
        # a 2-core AMD EPYC with AVX512-BF16 shared with other jobs (load 5-11), a training step (SGD,
        # channels-last, batch 128 of 1x28x28), fp32 and bf16 autocast in 7 interleaved rounds: median CPU
        # seconds per step on 1 thread, bf16 / fp32 = 0.80 LeNet-5, 0.68 LeNet-5 (ReLU), 0.63 ResNet-20,
        # every paired round below 1 (0.58-0.85). On 2 threads the load swamped the difference (wall ratios
        # 0.75-1.18 with paired rounds from 0.4 to 2): not a contrary result, a measurement to repeat on a
        # quiet machine. Without native bf16 (next line down) bf16 autocast is slower, and auto stays fp32.
        if cpu_has_fast_bf16():
            return torch.bfloat16, None
        if mode == "auto":
            return None, None
        return None, "mixed precision off: this CPU has no fast bf16 (AVX512-BF16/AMX); training in fp32"
    return None, None if mode == "auto" else f"mixed precision off on {device.type}: training in fp32"


def channels_last_for(setting: bool | None, device: torch.device) -> bool:
    """Whether to use the NHWC layout: as set, else on for CPU and CUDA, whose convolutions run it faster."""
    return setting if setting is not None else device.type in ("cpu", "cuda")


def precision_name(dtype: torch.dtype | None) -> str:
    """What a run computed in: fp32, or the autocast dtype (bf16, fp16)."""
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def process_start_time() -> float | None:
    """The ``time.time()`` at which this process started (Linux's /proc), or None where it cannot be told.

    A command's clock should count the interpreter and imports as the user's wall clock does.
    """
    try:
        with open("/proc/self/stat") as f:
            # Field 22 (starttime, in clock ticks after boot) follows the command name, which may hold spaces.
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    age = uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    return time.time() - age if 0 <= age < 86_400 else None


def autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager:
    """Autocast to ``dtype`` on ``device``, or nothing when ``dtype`` is None."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_deterministic(enabled: bool) -> None:
    """Deterministic algorithms only (errors on ops that have none); cuDNN autotuning off when enabled."""
    if enabled:
        # cuBLAS needs a fixed workspace for reproducible results (CUDA docs, "Reproducibility").
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled


@dataclass
class StopRequest:
    """Set by Ctrl-C or SIGTERM: the loop checkpoints and stops after the current step."""

    requested: bool = False
    signum: int | None = None  # the signal that asked (SIGINT or SIGTERM)


@contextmanager
def stop_requests() -> Iterator[StopRequest]:
    """Ctrl-C (or SIGTERM) asks the loop to checkpoint and stop after this step; a second one quits now.

    Signal handlers can only be set in the main thread; elsewhere the request is never set.
    """
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: object) -> None:
        if stop.requested:
            raise KeyboardInterrupt
        stop.requested, stop.signum = True, signum
        notice("stopping after this step to save a checkpoint (press Ctrl-C again to quit at once)")

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware_info(device: torch.device, threads: int, world_size: int = 1) -> dict:
    """What ran the training: CPU, cores, threads, GPU, library versions."""
    info = {
        "device": str(device),
        "cpu": _cpu_name(),
        "cpu_cores": os.cpu_count(),
        "threads": threads,
        "processes": world_size,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info
