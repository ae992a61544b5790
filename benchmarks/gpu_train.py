"""transformer-base on Multi30k de->en with bf16 autocast: tokens/s, MFU and test2016 BLEU.

    bash benchmarks/gpu.sh 3                # 3 minutes of training on the GPU, then the rest
                                            # of issue 18's GPU part (see gpu.sh)
    python benchmarks/gpu_train.py --minutes 4 --out runs/gpu-tbase

Trains ``configs/multi30k_transformer_base.yaml`` for a time budget (bf16 autocast on
CUDA, float32 on a CPU), then reports: target tokens/s (median of the logged intervals
after warm-up), model FLOPs utilisation against the card's bf16 dense peak (datasheet,
when the card is known) and against a matmul in the training precision measured on the
same device, and test2016 sacreBLEU with beam 5. MFU uses 6 x parameters FLOPs per
target token (source and target are about as long here), so it leaves attention's
score/mix FLOPs out: a lower bound.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
from common import MULTI30K, save

# dense bf16 tensor-core peaks from the vendors' datasheets, TFLOP/s
DATASHEET_BF16_TFLOPS = {"H100 SXM": 989.4, "H100 PCIe": 756.0, "H100 NVL": 835.0,
                         "H100": 989.4, "H200": 989.4, "A100": 312.0, "L40S": 362.0,
                         "L4": 121.0, "A10": 125.0}


def datasheet_peak(name: str) -> float | None:
    """The card's bf16 peak in TFLOP/s, matched on its name (longest key first)."""
    for key in sorted(DATASHEET_BF16_TFLOPS, key=len, reverse=True):
        if key in name:
            return DATASHEET_BF16_TFLOPS[key]
    return None


def measured_matmul_tflops(device: torch.device, dtype: torch.dtype) -> float:
    """Median matmul rate in ``dtype`` on this device (8192^2 on a GPU, 2048^2 on a CPU)."""
    n = 8192 if device.type == "cuda" else 2048
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    rates = []
    for _ in range(8):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(4):
            a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        rates.append(4 * 2 * n**3 / (time.perf_counter() - start) / 1e12)
    return statistics.median(rates[2:])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=4.0)
    ap.add_argument("--config", default="configs/multi30k_transformer_base.yaml")
    ap.add_argument("--out", default="runs/gpu-tbase")
    ap.add_argument("--warmup", type=int, default=50, help="updates left out of tokens/s")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    args = ap.parse_args()
    os.environ.setdefault("ATTNMT_DATA_DIR", str(MULTI30K))
    from attnmt.config import load_config
    from attnmt.inference.evaluate import evaluate
    from attnmt.inference.translator import Translator
    from attnmt.training.loop import pick_device, train, uses_bf16

    cfg = load_config(args.config, [f"train.max_minutes={args.minutes}",
                                    "train.log_every=5", *args.overrides])
    device = pick_device(cfg.train.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    bf16 = uses_bf16(cfg.train.precision, device)
    print(f"device: {name}; training precision: {'bf16 autocast' if bf16 else 'float32'}")
    kind = "bf16" if bf16 else "fp32"
    matmul = measured_matmul_tflops(device, torch.bfloat16 if bf16 else torch.float32)
    peak = datasheet_peak(name) if device.type == "cuda" and bf16 else None
    print(f"{kind} matmul measured: {matmul:.2f} TFLOP/s; bf16 datasheet peak: "
          f"{f'{peak:.0f} TFLOP/s' if peak else 'unknown or not applicable'}")

    out = Path(args.out)
    if out.exists():
        raise SystemExit(f"{out} exists; pass another --out (or GPU_RUN=... for gpu.sh) or "
                         "remove it")
    train(cfg, out)
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    rates = [r["tokens_per_s"] for r in records
             if r["type"] == "train" and r["step"] > args.warmup]
    if not rates:
        raise SystemExit(f"too few updates after the {args.warmup}-update warm-up; "
                         "give it more --minutes")
    rate = statistics.median(rates)
    translator = Translator.from_run(out, device=str(device))
    params = translator.model.num_parameters()
    model_tflops = 6 * params * rate / 1e12
    result = evaluate(out, "test", beam=5, translator=translator, log=lambda *_: None)
    row = {"device": name, "precision": kind, "minutes": args.minutes,
           "updates": max(r["step"] for r in records), "parameters": params,
           "tokens_per_s": round(rate, 1), "model_tflops": round(model_tflops, 3),
           "matmul_tflops_measured": round(matmul, 2), "datasheet_peak_tflops": peak,
           "mfu_vs_measured_matmul": round(model_tflops / matmul, 4),
           "mfu_vs_datasheet": round(model_tflops / peak, 4) if peak else None,
           "test2016_bleu_beam5": round(result["bleu"], 2),
           "decode_sentences_per_s": round(result["sentences_per_s"], 1),
           "command": " ".join(["bash benchmarks/gpu.sh", f"{args.minutes:g}",
                                *(f"--set {o}" for o in args.overrides)])}
    print(f"{name}: {rate:,.0f} target tokens/s, {model_tflops:.2f} model TFLOP/s = "
          f"{100 * row['mfu_vs_measured_matmul']:.1f}% of the measured {kind} matmul"
          + (f", {100 * row['mfu_vs_datasheet']:.1f}% of the datasheet peak" if peak else "")
          + f"; test2016 BLEU (beam 5) {result['bleu']:.2f} after {row['updates']} updates")
    save(f"gpu_{'cpu' if device.type == 'cpu' else name.replace(' ', '_')}", row)


if __name__ == "__main__":
    main()
