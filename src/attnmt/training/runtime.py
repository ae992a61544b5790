"""Where training runs: device, precision, process rank, memory, TensorBoard, signals.

Small facts about the machine and the process, kept out of the training loop so the
loop reads top to bottom.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from ..errors import ConfigError


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes (1 outside torchrun)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pick_device(name: str) -> torch.device:
    """``train.device``: auto picks this rank's GPU when there is one."""
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError("train.device is cuda but no CUDA device is available")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def tensorboard_writer(folder: Path):
    """A TensorBoard SummaryWriter, or False when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return False
    return SummaryWriter(str(folder))


def uses_bf16(precision: str, device: torch.device) -> bool:
    """bf16 autocast: always on CUDA under auto; on a CPU only when asked for, since it pays
    off only where the CPU has bf16 dot-product instructions (AVX512-BF16, AMX)."""
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")


def check_in_sync(model: torch.nn.Module, world: int) -> str:
    """DDP keeps replicas identical; verify it (a parameter checksum per rank, compared
    across ranks) and say so, or raise when they diverged."""
    import torch.distributed as dist

    total = torch.stack([q.detach().double().sum() for q in model.parameters()]).sum()
    lo, hi = total.clone().view(1), total.clone().view(1)
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    if float(hi - lo) > 1e-6 * max(1.0, abs(float(total))):
        raise RuntimeError(f"ranks diverged: parameter checksums {float(lo)} .. {float(hi)}")
    return f"ranks in sync: {world} replicas with parameter checksum {float(total):.6f}"


@contextmanager
def stop_on_signals(request_stop: Callable[[], None]) -> Iterator[None]:
    """Inside the block SIGINT and SIGTERM call ``request_stop`` instead of killing the
    process (training finishes its update and writes a checkpoint); the previous handlers
    come back after it."""
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in handlers:
        signal.signal(s, lambda signum, frame: request_stop())
    try:
        yield
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
