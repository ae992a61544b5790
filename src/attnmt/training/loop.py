"""The training loop — one loop for one process or many (``torchrun`` + DDP).

Under ``torchrun`` every rank builds the same batch plan and takes its own share of each
update's batches (rank r takes batch r, r + world, ...); the loss is normalised by the target
tokens of the *whole* update, so N ranks compute the same update as one process accumulating
N batches. Only rank 0 validates and writes; stop decisions (budget, early stopping,
signals) are agreed with an all-reduce so every rank stops at the same step.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from ..config import Config
from ..data.batching import token_batches
from ..errors import ConfigError, UserError
from ..rundir import DiskFullError, RunDir, load_matching_weights, write_json
from .ema import WeightAverage
from .progress import SAFE_ON_RESUME, Progress, changed_keys, lr_at
from .runtime import (
    bound_onednn_cache,
    check_in_sync,
    peak_rss_mib,
    pick_device,
    rank_and_world,
    stop_on_signals,
    tensorboard_writer,
    uses_bf16,
)
from .tasks import make_task

LOG_SECONDS = 30.0   # without a terminal: one progress line at most this often


class Trainer:
    """One training run: checks everything first, writes only once the checks pass."""

    def __init__(self, cfg: Config, out: str | Path, resume: bool = False, quiet: bool = False):
        self.cfg, self.run, self.quiet = cfg, RunDir(out), quiet
        self.rank, self.world = rank_and_world()
        self.progress = Progress()
        self.stop_requested = False
        self._tensorboard = None      # created on the first write; False when not installed
        self._plan_epoch: int | None = None
        self._plan_batches: list[np.ndarray] = []
        self._window_tokens, self._window_start = 0, 0.0
        self._tty, self._last_line = sys.stderr.isatty(), float("-inf")   # no tty: no bar
        self._setup_process()
        self._check_run_dir(resume)
        torch.manual_seed(cfg.train.seed)
        self.task = make_task(cfg, self.run, log=self.log, barrier=self._barrier)
        self._check_lengths()
        self.model = self.task.build_model()
        if cfg.train.init_from and not resume:     # e.g. an MLM encoder into a classifier
            self.log(load_matching_weights(self.model, cfg.train.init_from))
        self.model.to(self.device)
        self.log(f"model: {cfg.model.preset or cfg.model.arch} ({self.task.name}), "
                 f"{self.model.num_parameters():,} parameters")
        self.ddp = None
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        opt = torch.optim.AdamW if cfg.train.optimizer == "adamw" else torch.optim.Adam
        self.optimizer = opt(self.model.parameters(), lr=cfg.train.lr,
                             betas=tuple(cfg.train.betas), weight_decay=cfg.train.weight_decay,
                             fused=self.device.type in ("cpu", "cuda"))   # one kernel
        self.average = WeightAverage(self.model, cfg.train.ema) if cfg.train.ema else None
        if resume:
            self._restore()
        if self.rank == 0:            # every check passed: now the run directory is written
            if cfg.data.dir:          # absolute, so the run can be used from anywhere
                cfg.data.dir = str(Path(cfg.data.dir).resolve())
            self.run.save_config(cfg)
            if cfg.train.keep_every and not resume:   # the training timeline's first frame
                self.run.keep_weights(self.model, 0)
            write_json(self.run.path / "prepared.json", self.task.prepared_folders)

    def _setup_process(self) -> None:
        cfg = self.cfg.train
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = pick_device(cfg.device)
        self.bf16 = uses_bf16(cfg.precision, self.device)
        if self.bf16 and self.device.type == "cpu":
            bound_onednn_cache()

    def _check_run_dir(self, resume: bool) -> None:
        """A new run needs an unused folder; a resumed one a checkpoint and the same
        settings (except those in :data:`SAFE_ON_RESUME`)."""
        run = self.run
        has_checkpoint = bool(run.steps())
        if resume and not has_checkpoint:
            raise UserError(f"--resume: {run.path} has no checkpoint to resume from")
        if not resume and has_checkpoint:
            raise UserError(f"{run.path} already holds a run; pass --resume to continue "
                            "it or choose another --out")
        if resume:
            changed = [k for k in changed_keys(run.load_config(), self.cfg)
                       if k not in SAFE_ON_RESUME and not k.startswith("decode.")]
            if changed:
                raise UserError(f"--resume: {', '.join(changed)} differ from the run in "
                                f"{run.path}; resume with its settings or train into another "
                                "--out (only budgets, reporting and decoding may change)")

    def _check_lengths(self) -> None:
        """Every training and validation sentence must fit in one batch."""
        longest = max(int(max(s.src_lens.max(), s.tgt_lens.max()))
                      for s in (self.task.train, self.task.valid))
        if self.cfg.train.max_tokens < longest:
            raise ConfigError(f"train.max_tokens {self.cfg.train.max_tokens} is below the "
                              f"longest training or validation sentence ({longest} tokens); "
                              "raise it or lower data.max_len")

    def log(self, message: str) -> None:
        if self.rank == 0 and not self.quiet:
            tqdm.write(message)

    def _barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def _agree(self, flag: bool) -> bool:
        """True on every rank if it is true on any rank."""
        if self.world == 1:
            return flag
        t = torch.tensor([float(flag)], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def _write_metrics(self, record: dict) -> None:
        """One JSON line in metrics.jsonl, and TensorBoard scalars when it is installed."""
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

    def _restore(self) -> None:
        """Weights, optimizer, progress and RNG of the newest checkpoint that loads; the
        metrics log is cut back to that step so a resumed run does not repeat records."""
        from safetensors.torch import load_model

        step = self.run.resume_step(log=self.log)
        if step is None:
            raise UserError(f"--resume: no checkpoint in {self.run.ckpt} loads; use another --out")
        load_model(self.model, str(self.run.weights(step)), device=str(self.device))
        state = torch.load(self.run.train_state(step), weights_only=True, map_location="cpu")
        self.optimizer.load_state_dict(state["optimizer"])
        if self.average:      # the weights file holds the average; the model's own are here
            self.average.restore(state["training_weights"])
        self.progress = Progress(**state["progress"])
        torch.set_rng_state(state["rng"])
        if torch.cuda.is_available() and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"])
        if self.rank == 0:
            self.run.truncate_metrics(step)
        self.log(f"resumed from step {step}")

    def _save(self, best: dict | None = None, keep: bool = False) -> None:
        """Write a checkpoint (and the best copy when ``best`` says why it is best; a kept
        copy of the weights with ``keep``)."""
        if self.rank != 0:
            return
        state = {"optimizer": self.optimizer.state_dict(), "progress": vars(self.progress),
                 "rng": torch.get_rng_state()}
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state()
        if self.average:
            state["training_weights"] = self.average.training_weights()
        try:
            with self._averaged():
                self.run.save_checkpoint(self.model, state, self.progress.step,
                                         self.cfg.train.keep_last, best,
                                         1 if keep else self.cfg.train.keep_every)
        except DiskFullError as e:
            safe = self.run.resume_step()
            kept = f"step {safe} is intact" if safe else "no checkpoint was completed"
            raise DiskFullError(f"{str(e).split(': ', 1)[1]}; {kept} (free space, then "
                                "--resume)") from None

    def _request_stop(self) -> None:
        self.stop_requested = True
        self.log("stop requested: finishing this update and writing a checkpoint")

    def _averaged(self):
        """Inside: the model holds the averaged weights (``train.ema``), if any."""
        return self.average.applied() if self.average else nullcontext()

    # ---- the loop --------------------------------------------------------------------
    def _next_group(self) -> list[np.ndarray]:
        """The batches of the next update (all ranks, all accumulation steps), in order."""
        need = self.cfg.train.accum * self.world
        group: list[np.ndarray] = []
        p = self.progress
        while len(group) < need:
            plan = self._plan(p.epoch)
            take = plan[p.batch_pos: p.batch_pos + need - len(group)]
            group.extend(take)
            p.batch_pos += len(take)
            if p.batch_pos >= len(plan):
                p.epoch, p.batch_pos = p.epoch + 1, 0
        return group

    def _plan(self, epoch: int) -> list[np.ndarray]:
        """The batch plan of an epoch, built once and kept while the epoch lasts."""
        if self._plan_epoch != epoch:
            self._plan_epoch = epoch
            self._plan_batches = token_batches(self.task.train.src_lens,
                                               self.task.train.tgt_lens,
                                               self.cfg.train.max_tokens, self.cfg.train.seed,
                                               epoch)
        return self._plan_batches

    def _update(self) -> tuple[float, int]:
        """One optimizer update. Returns (summed loss of this rank, target tokens of all)."""
        cfg, model = self.cfg.train, self.ddp or self.model
        group = self._next_group()
        total = sum(self.task.units(b) for b in group)
        mine = group[self.rank:: self.world]
        step = self.progress.step + 1
        lr = lr_at(self.cfg, step, self.progress.lr_scale, self.progress.elapsed)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        self.model.train()
        loss_sum = 0.0
        for i, ids in enumerate(mine):
            batch = self.task.train.batch(ids).to(self.device)
            sync = self.ddp is None or i == len(mine) - 1
            ctx = model.no_sync() if not sync else nullcontext()
            with ctx, torch.autocast(self.device.type, torch.bfloat16, enabled=self.bf16):
                loss = self.task.loss(model, batch, cfg.label_smoothing)
                (loss * self.world / total).backward()
            loss_sum += loss.item()
        if cfg.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.average:
            self.average.update(step)
        self.progress.step = step
        return loss_sum, total

    def _after_validation(self, result: dict) -> bool:
        """Checkpoint, track the best, adjust a plateau schedule; True to stop early."""
        cfg, p = self.cfg.train, self.progress
        metric = result.get(cfg.best_metric, result["loss"])
        lower_is_better = cfg.best_metric in ("loss", "ppl")
        better = p.best is None or (metric < p.best if lower_is_better else metric > p.best)
        if better:
            p.best, p.bad_validations = metric, 0
        else:
            p.bad_validations += 1
            if cfg.schedule == "plateau" and p.bad_validations % max(1, cfg.plateau_patience) == 0:
                p.lr_scale *= cfg.plateau_factor
        self._save(best={cfg.best_metric: metric} if better else None)
        return bool(cfg.patience) and p.bad_validations >= cfg.patience

    def _log_update(self, bar: tqdm, loss_sum: float, tokens: int) -> None:
        """Every ``log_every`` updates: the progress line and a metrics record."""
        cfg, p = self.cfg.train, self.progress
        now = time.time()
        rate = self._window_tokens / max(now - self._window_start, 1e-9)
        self._window_tokens, self._window_start = 0, now
        lr = self.optimizer.param_groups[0]["lr"]
        loss = loss_sum * self.world / tokens
        shown = dict(loss=f"{loss:.3f}", lr=f"{lr:.2e}", tok_s=f"{rate:,.0f}")
        if cfg.max_minutes:  # the time budget, not max_steps, ends this run
            left = max(0.0, cfg.max_minutes * 60 - p.elapsed)
            shown["budget_left"] = f"{int(left // 60)}:{int(left % 60):02d}"
        bar.set_postfix(shown)
        if not self._tty and (now - self._last_line >= LOG_SECONDS or p.step == 1):
            self._last_line = now
            self.log(f"step {p.step}: " + ", ".join(f"{k.replace('_', ' ')} {v}"
                                                     for k, v in shown.items()))
        self._write_metrics({"type": "train", "step": p.step, "epoch": p.epoch, "loss": loss,
                             "lr": lr, "tokens_per_s": rate, "elapsed": p.elapsed,
                             "peak_rss_mib": peak_rss_mib()})

    def _stop_reason(self, stop_early: bool) -> str | None:
        """Why this run stops after the current update (agreed by every rank), or None."""
        cfg, p = self.cfg.train, self.progress
        reasons = [("signal", self.stop_requested), ("early stopping", stop_early),
                   ("time budget", bool(cfg.max_minutes) and p.elapsed >= cfg.max_minutes * 60),
                   ("max_epochs", p.epoch >= cfg.max_epochs)]
        if not self._agree(any(flag for _, flag in reasons)):
            return None
        return next((name for name, flag in reasons if flag), "stop")

    def fit(self) -> Progress:
        cfg, p = self.cfg.train, self.progress
        if self.rank == 0:
            (self.run.ckpt / "finished.json").unlink(missing_ok=True)
        # under a time budget the step total says nothing; budget_left in the postfix does
        bar = tqdm(total=None if cfg.max_minutes else cfg.max_steps, initial=p.step,
                   disable=self.rank != 0 or self.quiet or not self._tty, dynamic_ncols=True,
                   unit="step")
        start, self._window_tokens, self._window_start = time.time() - p.elapsed, 0, time.time()
        reason = "max_steps"
        with stop_on_signals(self._request_stop):
            try:
                while p.step < cfg.max_steps:
                    loss_sum, tokens = self._update()
                    p.tokens += tokens
                    self._window_tokens += tokens
                    p.elapsed = time.time() - start
                    start = self._time_mark(start)
                    bar.update(1)
                    if p.step % cfg.log_every == 0 or p.step == 1:
                        self._log_update(bar, loss_sum, tokens)
                    due = p.step % cfg.valid_every == 0 or p.step == cfg.max_steps
                    stop = self._stop_reason(self._validate_and_save() if due else False)
                    if stop:
                        reason = stop
                        if not due and self.stop_requested:   # end on a checkpoint
                            self._save()
                        elif not due:
                            self._validate_and_save()
                        break
            finally:
                bar.close()
        self._finish(reason)
        return p

    def _finish(self, reason: str) -> None:
        p = self.progress
        self.log(f"stopped after {p.step} steps ({reason}); {p.tokens:,} target tokens in "
                 f"{p.elapsed:.0f} s; peak memory {peak_rss_mib():,.0f} MiB; "
                 f"run directory {self.run.path}")
        if self.rank == 0 and reason != "signal":
            write_json(self.run.ckpt / "finished.json",
                       {"reason": reason, "step": p.step, "elapsed": p.elapsed,
                        "tokens": p.tokens, "peak_rss_mib": peak_rss_mib()})
        if self.world > 1:
            self.log(check_in_sync(self.model, self.world))

    def _time_mark(self, start: float) -> float:
        """``train.save_every_minutes``: at each mark of training time a checkpoint, also
        kept for good, and a ``mark`` record; the time spent saving is taken off the clock
        (the clock's new start is returned)."""
        every, p = self.cfg.train.save_every_minutes * 60, self.progress
        if not every or p.elapsed < (p.marks + 1) * every:
            return start
        begin, p.marks = time.time(), int(p.elapsed // every)
        self._save(keep=True)
        if self.rank == 0:
            self._write_metrics({"type": "mark", "step": p.step, "elapsed": p.elapsed,
                                 "minutes": round(p.marks * every / 60, 4)})
        return start + time.time() - begin

    def _validate_and_save(self) -> bool:
        stop = False
        if self.rank == 0:
            with self._averaged():
                result = self.task.validate(self.model, self.device)
            self.progress.history.append({"step": self.progress.step,
                                          "elapsed": self.progress.elapsed, **result})
            self._write_metrics({"type": "valid", "step": self.progress.step,
                                 "elapsed": self.progress.elapsed, **result})
            shown = ", ".join(f"{k} {v:.2f}" for k, v in result.items()
                              if isinstance(v, (int, float)))
            self.log(f"step {self.progress.step}: valid {shown}")
            stop = self._after_validation(result)
        if self.world > 1:  # every rank keeps the same best / plateau state
            p = self.progress
            shared = [p.best, p.bad_validations, p.lr_scale, stop]
            dist.broadcast_object_list(shared, src=0)
            p.best, p.bad_validations, p.lr_scale, stop = shared
        return stop


def train(cfg: Config, out: str | Path, resume: bool = False, quiet: bool = False) -> Progress:
    """Train a model as the config says, into the run directory ``out``."""
    trainer = Trainer(cfg, out, resume=resume, quiet=quiet)
    try:
        return trainer.fit()
    finally:
        if trainer.world > 1 and dist.is_initialized():
            dist.destroy_process_group()
