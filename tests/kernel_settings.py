"""Kernel settings that make this CPU compute as other CPUs do (``make test-portable``).

PyTorch, oneDNN and MKL each pick a code path for the CPU they run on, and another path
sums in another order: a tiny training run then follows another trajectory. These
environment variables, read when torch loads, select other paths on the same machine:

- ``native``: the CPU as it is.
- ``avx-compat``: MKL's conditional-numerical-reproducibility path (``MKL_CBWR=COMPATIBLE``,
  other matmul kernels) and oneDNN capped at AVX (other RNN and bf16 kernels).
- ``generic``: ATen's unvectorised kernels (``ATEN_CPU_CAPABILITY=default``: softmax,
  reductions, elementwise) and oneDNN capped at SSE4.1.

A setting that asks for a path the CPU lacks is clamped by the libraries themselves, so
each of these runs on any x86-64 CPU. ``python tests/kernel_settings.py NAME`` prints a setting as
``VAR=value`` words for ``env``.
"""

from __future__ import annotations

import sys

SETTINGS: dict[str, dict[str, str]] = {
    "native": {},
    "avx-compat": {"MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "AVX"},
    "generic": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"},
}

if __name__ == "__main__":
    print(" ".join(f"{k}={v}" for k, v in SETTINGS[sys.argv[1]].items()))
