"""What a training run shows and records: the progress bar on a terminal, a progress line
in a log file (no terminal: one line at most every ``LOG_SECONDS``), ``metrics.jsonl`` and,
when it is installed, TensorBoard. Only rank 0 shows or writes anything.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager

from tqdm import tqdm

from ..rundir import RunDir
from .runtime import tensorboard_writer

LOG_SECONDS = 30.0

# Every kind of metrics.jsonl record: when it is written and the fields it may carry (its
# "type" aside). ``Reporter.record`` refuses a field that is not listed, so this table — the
# docs' reference for the file — cannot fall behind the code that writes it.
RECORDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "train": ("every `train.log_every` updates", (
        "step", "epoch", "loss", "lr", "tokens_per_s", "elapsed", "peak_rss_mib")),
    "valid": ("every `train.valid_every` updates and at the end; the metrics depend on the "
              "task: loss and ppl always, bleu, chrf and exact for translation with "
              "`train.valid_bleu`, accuracy, macro_f1 and confusion (rows = gold) for a "
              "classifier", (
                  "step", "elapsed", "loss", "ppl", "bleu", "chrf", "exact", "accuracy",
                  "macro_f1", "confusion")),
    "mark": ("at each `train.save_every_minutes` mark of training time, with the kept "
             "checkpoint", ("step", "elapsed", "minutes")),
}


class Reporter:
    """The run's voice: log lines, the bar with its postfix, and the metric records."""

    def __init__(self, run: RunDir, *, rank: int, quiet: bool):
        self.run, self.rank, self.quiet = run, rank, quiet
        self.bar: tqdm | None = None
        self._tensorboard = None      # made on the first record; False when not installed
        self._tty, self._last_line = sys.stderr.isatty(), float("-inf")
        self._window_tokens, self._window_start = 0, time.time()

    def log(self, message: str) -> None:
        if self.rank == 0 and not self.quiet:
            tqdm.write(message)

    def record(self, record: dict) -> None:
        """One JSON line in metrics.jsonl, and TensorBoard scalars when it is installed."""
        kind = RECORDS.get(record.get("type"))
        unknown = set(record) - {"type"} - set(kind[1] if kind else ())
        if kind is None or unknown:
            raise ValueError(f"metrics record {record.get('type')!r} with undeclared field(s) "
                             f"{sorted(unknown)}: declare them in RECORDS")
        if self.rank != 0:
            return
        with open(self.run.metrics_file, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self._tensorboard is None:
            self._tensorboard = tensorboard_writer(self.run.path / "tensorboard")
        if self._tensorboard:
            for key, value in record.items():
                if key not in ("type", "step") and isinstance(value, (int, float)):
                    self._tensorboard.add_scalar(f"{record['type']}/{key}", value,
                                                 record["step"])
            self._tensorboard.flush()

    @contextmanager
    def progress_bar(self, total: int | None, initial: int):
        """The bar while the loop runs (a terminal only; ``total`` None: no step total)."""
        self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True,
                        disable=self.rank != 0 or self.quiet or not self._tty)
        self._window_tokens, self._window_start = 0, time.time()
        try:
            yield self.bar
        finally:
            self.bar.close()

    def count(self, tokens: int) -> None:
        """Target tokens of one update, for the tokens-per-second of the next report."""
        self._window_tokens += tokens
        if self.bar is not None:
            self.bar.update(1)

    def tokens_per_second(self) -> float:
        """The rate since the last call (which starts a new window)."""
        now = time.time()
        rate = self._window_tokens / max(now - self._window_start, 1e-9)
        self._window_tokens, self._window_start = 0, now
        return rate

    def show(self, step: int, shown: dict[str, str]) -> None:
        """The bar's postfix; without a terminal, a log line (the first update's, then one
        every ``LOG_SECONDS``)."""
        if self.bar is not None:
            self.bar.set_postfix(shown)
        now = time.time()
        if not self._tty and (now - self._last_line >= LOG_SECONDS or step == 1):
            self._last_line = now
            self.log(f"step {step}: " + ", ".join(f"{k.replace('_', ' ')} {v}"
                                                  for k, v in shown.items()))
