"""The third claim, measured: time per token against sentence length, RNN vs Transformer.

An RNN computes its states one time step after another; the Transformer's encoder and
teacher-forced decoder compute every position at once. On parallel hardware that should
show as a training cost per token that stays flat with length for the Transformer and not
for the RNNs. This script measures it on whatever it runs on:

- **training**: forward + backward + Adam step on a copy task (random tokens; the target is
  the source) with a fixed budget of target tokens per batch, median seconds per step
  divided by the batch's target tokens;
- **decoding**: attnmt's own greedy search (``search.sequential``) over a fixed batch of
  sentences, forced to produce exactly as many tokens as the source has (``</s>`` is masked
  out), seconds per sentence.

for ``seq2seq-gru``, ``rnn-dot``, ``rnn-additive`` and ``transformer-small`` (the attention
RNN presets and the Transformer with about as many parameters) at 8–256 tokens, and at each
thread count asked for. Untrained weights: time per step does not depend on what was
learned. float32 on a CPU; on CUDA (``--device cuda``) bf16 autocast, with the device
synchronised before every clock read.

    .venv/bin/python benchmarks/parallelism.py                 # 1 and 2 threads, ~10 min
    .venv/bin/python benchmarks/parallelism.py --lengths 8,16 --steps 1 --quick   # smoke

Writes ``benchmarks/results/parallelism[_<tag>].json`` and ``docs/figures/parallelism
[_<tag>].png``.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, save  # noqa: E402

from attnmt.config import load_config  # noqa: E402
from attnmt.inference.search import sequential  # noqa: E402
from attnmt.models import build_model  # noqa: E402
from attnmt.models.loss import token_loss  # noqa: E402
from attnmt.symbols import BOS, EOS, PAD  # noqa: E402

MODELS = ("seq2seq-gru", "rnn-dot", "rnn-additive", "transformer-small")
FIRST_ID = 4                      # ids below are <pad>, <unk>, <s>, </s>
FIGURES = Path(__file__).resolve().parent.parent / "docs" / "figures"


class NoEOS(torch.nn.Module):
    """The model with ``</s>`` masked out of every step, so greedy search runs to its limit."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def encode(self, src, lengths):
        return self.model.encode(src, lengths)

    def init_state(self, enc):
        return self.model.init_state(enc)

    def decode_step(self, prev, state, need_weights=False):
        logits, state, weights = self.model.decode_step(prev, state, need_weights)
        return logits.index_fill(-1, torch.tensor([EOS], device=logits.device),
                                 float("-inf")), state, weights


def build(preset: str, vocab: int, device: str):
    cfg = load_config(raw={"model": {"preset": preset, "dropout": 0.0}})
    return build_model(cfg.model, vocab, vocab, joint_vocab=True).to(device)


def copy_batch(sentences: int, length: int, vocab: int, device: str, seed: int):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(FIRST_ID, vocab, (sentences, length), generator=g)
    bos = torch.full((sentences, 1), BOS)
    eos = torch.full((sentences, 1), EOS)
    return (src.to(device), torch.full((sentences,), length, device=device),
            torch.cat([bos, src], 1).to(device), torch.cat([src, eos], 1).to(device))


def _clock(device: str) -> float:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter()


def _autocast(device: str):
    if device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def time_training(model, length: int, *, budget: int, vocab: int, steps: int,
                  device: str) -> float:
    """Seconds per target token: median over ``steps`` updates after one warm-up update."""
    sentences = max(1, budget // (length + 1))
    src, lengths, tgt_in, tgt_out = copy_batch(sentences, length, vocab, device, seed=length)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()
    times = []
    for step in range(steps + 1):
        start = _clock(device)
        with _autocast(device):
            logits, _ = model(src, lengths, tgt_in)
            loss = token_loss(logits.float(), tgt_out)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step:
            times.append(_clock(device) - start)
    return statistics.median(times) / tgt_out.ne(PAD).sum().item()


def time_decoding(model, length: int, *, sentences: int, vocab: int, rounds: int,
                  device: str) -> float:
    """Seconds per sentence of greedy search producing ``length`` tokens (median of rounds)."""
    src, lengths, _, _ = copy_batch(sentences, length, vocab, device, seed=length + 1)
    limits = torch.full((sentences,), length, device=device)
    wrapped = NoEOS(model.eval())
    times = []
    with torch.inference_mode(), _autocast(device):
        for r in range(rounds + 1):
            start = _clock(device)
            hyps = sequential(wrapped, src, lengths, limits)
            if r:
                times.append(_clock(device) - start)
    assert all(len(h.tokens) == length - 1 for h in hyps), "decoding stopped early"
    return statistics.median(times) / sentences


def measure(args) -> list[dict]:
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for preset in args.models:
            torch.manual_seed(1)
            model = build(preset, args.vocab, args.device)
            params = sum(p.numel() for p in model.parameters())
            for length in args.lengths:
                train_s = time_training(model, length, budget=args.budget, vocab=args.vocab,
                                        steps=args.steps, device=args.device)
                decode_s = time_decoding(model, length, sentences=args.sentences,
                                         vocab=args.vocab, rounds=args.rounds,
                                         device=args.device)
                row = {"model": preset, "threads": threads, "length": length,
                       "parameters": params, "train_us_per_token": round(train_s * 1e6, 2),
                       "decode_ms_per_sentence": round(decode_s * 1e3, 3)}
                rows.append(row)
                print(f"{threads}t {preset:18s} L={length:4d}  train "
                      f"{row['train_us_per_token']:9.2f} µs/token  greedy "
                      f"{row['decode_ms_per_sentence']:9.3f} ms/sentence", flush=True)
    return rows


def summary(rows: list[dict], threads: list[int]) -> dict:
    """Per thread count and length: each RNN's cost over the Transformer's (>1: the
    Transformer is cheaper), and per model the speed-up from the fewest to the most threads."""
    def cost(model, t, length, key):
        return next(r[key] for r in rows if r["model"] == model and r["threads"] == t
                    and r["length"] == length)

    models = sorted({r["model"] for r in rows}, key=MODELS.index)
    lengths = sorted({r["length"] for r in rows})
    out: dict = {"rnn_over_transformer": {}, "thread_speedup": {}}
    for key in ("train_us_per_token", "decode_ms_per_sentence"):
        for t in threads:
            out["rnn_over_transformer"][f"{key}@{t}"] = {
                m: {length: round(cost(m, t, length, key)
                                  / cost("transformer-small", t, length, key), 2)
                    for length in lengths}
                for m in models if m != "transformer-small"}
        if len(threads) > 1:
            out["thread_speedup"][key] = {
                m: {length: round(cost(m, threads[0], length, key)
                                  / cost(m, threads[-1], length, key), 2)
                    for length in lengths} for m in models}
    return out


def figure(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    threads = sorted({r["threads"] for r in rows})
    styles = {t: s for t, s in zip(threads[::-1], ("-", "--", ":"))}
    for ax, key, label in ((axes[0], "train_us_per_token", "training: µs per target token"),
                           (axes[1], "decode_ms_per_sentence",
                            "greedy decoding: ms per sentence")):
        for i, model in enumerate(m for m in MODELS if any(r["model"] == m for r in rows)):
            for t in threads:
                pts = sorted((r["length"], r[key]) for r in rows
                             if r["model"] == model and r["threads"] == t)
                ax.plot(*zip(*pts), styles[t], marker="o", color=f"C{i}",
                        label=f"{model}, {t} thread{'s' if t > 1 else ''}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sentence length (tokens)")
        ax.set_title(label)
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=lambda s: s.split(","), default=list(MODELS))
    ap.add_argument("--lengths", type=lambda s: [int(x) for x in s.split(",")],
                    default=[8, 16, 32, 64, 128, 256])
    ap.add_argument("--threads", type=lambda s: [int(x) for x in s.split(",")],
                    default=[1, 2])
    ap.add_argument("--budget", type=int, default=4096, help="target tokens per training batch")
    ap.add_argument("--sentences", type=int, default=32, help="sentences per decoding batch")
    ap.add_argument("--vocab", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=3, help="timed training updates per point")
    ap.add_argument("--rounds", type=int, default=2, help="timed decoding rounds per point")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tag", default="", help="suffix for the results and figure names")
    ap.add_argument("--quick", action="store_true", help="smoke test: write nothing")
    args = ap.parse_args()
    if args.device.startswith("cuda"):
        args.threads = [torch.get_num_threads()]
    rows = measure(args)
    result = {"machine": machine(), "device": args.device,
              "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
              "settings": {k: v for k, v in vars(args).items() if k not in ("quick", "tag")},
              "rows": rows, "summary": summary(rows, args.threads)}
    for key, table in result["summary"]["rnn_over_transformer"].items():
        print(f"RNN cost / Transformer cost, {key}: {table}")
    for key, table in result["summary"]["thread_speedup"].items():
        print(f"speed-up {args.threads[0]} -> {args.threads[-1]} threads, {key}: {table}")
    if args.quick:
        return
    name = "parallelism" + (f"_{args.tag}" if args.tag else "")
    save(name, result)
    where = args.device if not result["gpu"] else result["gpu"]
    figure(rows, FIGURES / f"{name}.png",
           f"copy task, {args.budget} target tokens per training batch, {args.sentences} "
           f"sentences per decoding batch, untrained weights, {where}")


if __name__ == "__main__":
    main()
