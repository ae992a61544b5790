"""The training loop — one loop for one process or many (``torchrun`` + DDP).

Under ``torchrun`` every rank builds the same batch plan and takes its own share of each
update's batches (rank r takes batch r, r + world, ...); the loss is normalised by the target
tokens of the *whole* update, so N ranks compute the same update as one process accumulating
N batches. Only rank 0 validates and writes; stop decisions (budget, early stopping,
signals) are agreed with an all-reduce so every rank stops at the same step.
"""

from __future__ import annotations

import copy
import gc
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ..config import Config
from ..data.batching import epoch_batches
from ..errors import ConfigError, UserError
from ..models.adapters import apply_finetuning, check_finetuning, trainable_note
from ..rundir import DiskFullError, RunDir, load_matching_weights, write_json
from .ema import WeightAverage
from .progress import Progress, TrainingClock, check_run_dir
from .reporting import Reporter
from .runtime import (
    check_in_sync,
    peak_rss_mib,
    pick_device,
    rank_and_world,
    stop_on_signals,
    uses_bf16,
)
from .schedule import lr_at
from .tasks import make_task


class Trainer:
    """One training run: checks everything first, writes only once the checks pass.

    ``cfg`` is copied: the run's own copy records the data folder as an absolute path, the
    caller's config is never changed."""

    def __init__(self, cfg: Config, out: str | Path, resume: bool = False, quiet: bool = False):
        self.cfg, self.run, self.resume = copy.deepcopy(cfg), RunDir(out), resume
        self.rank, self.world = rank_and_world()
        self.report = Reporter(self.run, rank=self.rank, quiet=quiet)
        self.progress = Progress()
        self.stop_requested = False
        self._plan_epoch: int | None = None
        self._plan_batches: list[np.ndarray] = []
        self._setup()

    def log(self, message: str) -> None:
        self.report.log(message)

    # ---- setup: every check before anything is written -----------------------------------
    def _setup(self) -> None:
        cfg, resume = self.cfg, self.resume
        self._setup_process()
        check_run_dir(self.run, self.cfg, resume)
        check_finetuning(cfg)                     # train.freeze, train.lora: before writing
        torch.manual_seed(cfg.train.seed)
        self.task = make_task(cfg, self.run, log=self.log, barrier=self._barrier)
        self._check_lengths()
        self.model = self._build_model()
        self.optimizer = self._build_optimizer()
        self.average = WeightAverage(self.model, cfg.train.ema) if cfg.train.ema else None
        if resume:
            self._restore()
        if self.rank == 0:            # every check passed: now the run directory is written
            self._write_run_dir()

    def _setup_process(self) -> None:
        cfg = self.cfg.train
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = pick_device(cfg.device)
        self.bf16 = uses_bf16(cfg.precision, self.device)

    def _check_lengths(self) -> None:
        """Every training and validation sentence must fit in one batch."""
        longest = max(int(max(s.src_lens.max(), s.tgt_lens.max()))
                      for s in (self.task.train, self.task.valid))
        if self.cfg.train.max_tokens < longest:
            raise ConfigError(f"train.max_tokens {self.cfg.train.max_tokens} is below the "
                              f"longest training or validation sentence ({longest} tokens); "
                              "raise it or lower data.max_len")

    def _build_model(self) -> torch.nn.Module:
        """The task's model on the device (starting from ``train.init_from``'s matching
        weights, e.g. an MLM encoder in a classifier), wrapped in DDP under torchrun."""
        cfg = self.cfg
        model = self.task.build_model()
        if cfg.train.init_from and not self.resume:
            self.log(load_matching_weights(model, cfg.train.init_from))
        apply_finetuning(model, cfg.train)
        model.to(self.device)
        self.log(f"model: {cfg.model.preset or cfg.model.arch} ({self.task.name}), "
                 f"{model.num_parameters():,} parameters{trainable_note(model)}")
        self.ddp = None
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
        return model

    def _build_optimizer(self) -> torch.optim.Optimizer:
        t = self.cfg.train
        opt = torch.optim.AdamW if t.optimizer == "adamw" else torch.optim.Adam
        return opt([p for p in self.model.parameters() if p.requires_grad],  # (not frozen)
                   lr=t.lr, betas=tuple(t.betas), weight_decay=t.weight_decay,
                   fused=self.device.type in ("cpu", "cuda"))   # one kernel

    def _write_run_dir(self) -> None:
        """The config (its data folder absolute, so the run can be used from anywhere), the
        timeline's first frame and the prepared data the run reads."""
        cfg = self.cfg
        if cfg.data.dir:
            cfg.data.dir = str(Path(cfg.data.dir).resolve())
        self.run.save_config(cfg)
        if cfg.train.keep_every and not self.resume:   # the training timeline's first frame
            self.run.keep_weights(self.model, 0)
        write_json(self.run.path / "prepared.json", {"folders": self.task.prepared_folders,
                                                     "counts": self.task.data.prepared_counts})

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

    # ---- checkpoints ---------------------------------------------------------------------
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

    def _save_at_time_mark(self, clock: TrainingClock) -> None:
        """``train.save_every_minutes``: at each mark of training time a checkpoint, also
        kept for good, and a ``mark`` record; the time spent saving is off the clock."""
        every, p = self.cfg.train.save_every_minutes * 60, self.progress
        if not every or p.elapsed < (p.marks + 1) * every:
            return
        with clock.paused():
            p.marks = int(p.elapsed // every)
            self._save(keep=True)
            self.report.record({"type": "mark", "step": p.step, "elapsed": p.elapsed,
                                "minutes": round(p.marks * every / 60, 4)})

    def _request_stop(self) -> None:
        self.stop_requested = True
        self.log("stop requested: finishing this update and writing a checkpoint")

    def _averaged(self):
        """Inside: the model holds the averaged weights (``train.ema``), if any."""
        return self.average.applied() if self.average else nullcontext()

    # ---- one update ----------------------------------------------------------------------
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
            t, self._plan_epoch = self.cfg.train, epoch
            self._plan_batches = epoch_batches(self.task.train, t.max_tokens, t.seed, epoch)
        return self._plan_batches

    def _update(self) -> tuple[float, int]:
        """One optimizer update. Returns (summed loss of this rank, target tokens of all)."""
        cfg, model, task = self.cfg.train, self.ddp or self.model, self.task
        group = self._next_group()
        total = sum(task.units(task.train, b) for b in group)
        mine = group[self.rank:: self.world]
        step = self.progress.step + 1
        lr = lr_at(self.cfg, step, self.progress.lr_scale, self.progress.elapsed)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        self.model.train()
        loss_sum = 0.0
        for i, ids in enumerate(mine):
            batch = task.train.batch(ids).to(self.device)
            sync = self.ddp is None or i == len(mine) - 1
            ctx = model.no_sync() if not sync else nullcontext()
            with ctx, torch.autocast(self.device.type, torch.bfloat16, enabled=self.bf16):
                loss = task.loss(model, batch, cfg.label_smoothing)
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

    def _report_update(self, loss_sum: float, tokens: int) -> None:
        """The progress line (bar postfix or log line) and a ``train`` record."""
        cfg, p = self.cfg.train, self.progress
        rate = self.report.tokens_per_second()
        lr = self.optimizer.param_groups[0]["lr"]
        loss = loss_sum * self.world / tokens
        shown = dict(loss=f"{loss:.3f}", lr=f"{lr:.2e}", tok_s=f"{rate:,.0f}")
        if cfg.max_minutes:  # the time budget, not max_steps, ends this run
            left = max(0.0, cfg.max_minutes * 60 - p.elapsed)
            shown["budget_left"] = f"{int(left // 60)}:{int(left % 60):02d}"
        self.report.show(p.step, shown)
        self.report.record({"type": "train", "step": p.step, "epoch": p.epoch, "loss": loss,
                            "lr": lr, "tokens_per_s": rate, "elapsed": p.elapsed,
                            "peak_rss_mib": peak_rss_mib()})

    # ---- validation ----------------------------------------------------------------------
    def _validate(self) -> dict | None:
        """Rank 0 validates (with the averaged weights, if any), records and logs the
        result; the other ranks get None."""
        if self.rank != 0:
            return None
        p = self.progress
        with self._averaged():
            result = self.task.validate(self.model, self.device)
        p.history.append({"step": p.step, "elapsed": p.elapsed, **result})
        self.report.record({"type": "valid", "step": p.step, "elapsed": p.elapsed, **result})
        shown = ", ".join(f"{k} {v:.2f}" for k, v in result.items()
                          if isinstance(v, (int, float)))
        self.log(f"step {p.step}: valid {shown}")
        return result

    def _track_best(self, result: dict | None) -> dict | None:
        """Update the best score, the count of validations without progress and a plateau
        schedule's scale (the same on every rank); ``{metric: value}`` when this validation
        is the best so far, else None."""
        cfg, p = self.cfg.train, self.progress
        best = None
        if result is not None:
            metric = result.get(cfg.best_metric, result["loss"])
            lower_is_better = cfg.best_metric in ("loss", "ppl")
            if p.best is None or (metric < p.best if lower_is_better else metric > p.best):
                p.best, p.bad_validations, best = metric, 0, {cfg.best_metric: metric}
            else:
                p.bad_validations += 1
                if (cfg.schedule == "plateau"
                        and p.bad_validations % max(1, cfg.plateau_patience) == 0):
                    p.lr_scale *= cfg.plateau_factor
        if self.world > 1:
            shared = [p.best, p.bad_validations, p.lr_scale]
            dist.broadcast_object_list(shared, src=0)
            p.best, p.bad_validations, p.lr_scale = shared
        return best

    def _validate_and_save(self) -> None:
        """A validation, the best score tracked, and a checkpoint (marked best if it is)."""
        self._save(best=self._track_best(self._validate()))

    def _stop_reason(self, validated: bool) -> str | None:
        """Why this run stops after the current update (agreed by every rank), or None;
        early stopping is decided when this update was ``validated``."""
        cfg, p = self.cfg.train, self.progress
        patience_spent = bool(cfg.patience) and p.bad_validations >= cfg.patience
        reasons = [("signal", self.stop_requested),
                   ("early stopping", validated and patience_spent),
                   ("time budget", bool(cfg.max_minutes) and p.elapsed >= cfg.max_minutes * 60),
                   ("max_epochs", p.epoch >= cfg.max_epochs)]
        if not self._agree(any(flag for _, flag in reasons)):
            return None
        return next((name for name, flag in reasons if flag), "stop")

    # ---- the loop ------------------------------------------------------------------------
    def fit(self) -> Progress:
        """Update until a budget, a signal or early stopping ends the run: after each update
        the clock, a time mark's checkpoint, the progress report, a due validation with its
        checkpoint, and the stop decision; a run always ends on a checkpoint."""
        cfg, p = self.cfg.train, self.progress
        if self.rank == 0:
            (self.run.ckpt / "finished.json").unlink(missing_ok=True)
        # under a time budget the step total says nothing; budget_left in the postfix does
        total = None if cfg.max_minutes else cfg.max_steps
        clock, reason = TrainingClock(p.elapsed), "max_steps"
        with stop_on_signals(self._request_stop), self.report.progress_bar(total, p.step):
            while p.step < cfg.max_steps:
                loss_sum, tokens = self._update()
                p.tokens += tokens
                self.report.count(tokens)
                p.elapsed = clock.elapsed()
                self._save_at_time_mark(clock)
                if p.step % cfg.log_every == 0 or p.step == 1:
                    self._report_update(loss_sum, tokens)
                due = p.step % cfg.valid_every == 0 or p.step == cfg.max_steps
                if due:
                    self._validate_and_save()
                stop = self._stop_reason(validated=due)
                if stop:
                    reason = stop
                    if not due and self.stop_requested:   # end on a checkpoint
                        self._save()
                    elif not due:
                        self._validate_and_save()
                    break
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


def train(cfg: Config, out: str | Path, resume: bool = False, quiet: bool = False) -> Progress:
    """Train a model as the config says, into the run directory ``out``."""
    trainer = Trainer(cfg, out, resume=resume, quiet=quiet)
    distributed = trainer.world > 1 and dist.is_initialized()
    try:
        progress = trainer.fit()
    except BaseException:
        if distributed:       # no barrier: another rank may be inside a collective
            dist.destroy_process_group()
        raise
    if distributed:
        _leave_process_group(trainer)
    return progress


def _leave_process_group(trainer: Trainer) -> None:
    """End torchrun's process group on every rank together, once DDP has let go of the
    work it holds: a rank whose interpreter exits while Gloo's threads still hold that work
    can abort (SIGABRT) after a run that finished."""
    trainer.ddp = None
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()
