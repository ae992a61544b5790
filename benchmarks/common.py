"""Shared helpers of the benchmark scripts (not tests): machine facts, results files."""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"
MULTI30K = Path(os.environ.get("ATTNMT_DATA_DIR", Path(__file__).parents[2] /
                                "shared/data/multi30k"))


# The instruction-set flags that decide which kernels (and so which speeds and roundings) a
# CPU gets: bf16 and int8 matrix units.
FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8", "amx_tile")


def _cpuinfo() -> tuple[str, list[str]]:
    cpu, flags = "", []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not cpu:
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = line.split(":", 1)[1].split()
    except OSError:
        pass
    return cpu, [f for f in FLAGS if f in flags]


def machine() -> dict:
    """The CPU model, its kernel-relevant flags, cores, threads and the torch build."""
    cpu, flags = _cpuinfo()
    return {"cpu": cpu or platform.processor(), "flags": flags, "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def save(name: str, data: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"date": stamp, "machine": machine(), **data}, indent=2))
    print(f"wrote {path}")
    return path
