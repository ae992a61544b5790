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


def machine() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu or platform.processor(), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def save(name: str, data: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"date": stamp, "machine": machine(), **data}, indent=2))
    print(f"wrote {path}")
    return path
