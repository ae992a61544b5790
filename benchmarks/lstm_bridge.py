"""Why the fixed-context LSTM did not learn the numbers task: the bridge into its decoder.

The task and sizes of ``studies/bottleneck_numbers.yaml`` (German number words -> English,
1-24 numbers per sentence, joint BPE of 160, embeddings 64, a bidirectional encoder of
2x128, a decoder of 256, Adam at 0.003, gradients clipped at 1, 4,000-token batches).
Each variant trains the same batches for ``--steps`` updates in its own process with one
thread; every 100 updates it records the validation loss and what reaches the decoder:

- ``attnmt-lstm``: attnmt's fixed-context LSTM as shipped (the cell state bridged by a
  linear map);
- ``attnmt-lstm-squashed``: the same with ``tanh`` on the bridged cell state, as attnmt
  had it before, and with the reversed source (Sutskever et al. 2014) on top;
- ``minimal-lstm`` and ``minimal-lstm-squashed``: a seq2seq LSTM in 30 lines of plain
  PyTorch (``tests/test_lstm_bridge.py``), without and with the same ``tanh``;
- ``attnmt-gru``: the GRU of the same sizes (no cell state), for reference.

The diagnostics: the encoder's final cell states (mean absolute value), the share of
bridged cell units whose ``tanh`` would be saturated (> 0.99), both for short (≤ 6 numbers)
and long (≥ 18) validation sentences, and the gradient norm that reaches the encoder.

    python benchmarks/lstm_bridge.py --steps 600 --jobs 2
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from common import save
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

VARIANTS = ("attnmt-lstm", "attnmt-lstm-squashed", "attnmt-lstm-squashed-reversed",
            "minimal-lstm", "minimal-lstm-squashed", "attnmt-gru")
SIZES = dict(emb_size=64, enc_hidden=128, dec_hidden=256, dropout=0.0)


def task_data():
    """The study's numbers task, its BPE vocabulary, and the pairs as token arrays."""
    from attnmt.data.batching import EncodedSet
    from attnmt.data.synthetic import ITEM_SEP, generate
    from attnmt.data.tokenizers import SentencePieceTokenizer

    train = generate("numbers", 40000, "de", "en", 1, 24, 1, 99)
    val = generate("numbers", 200, "de", "en", 1, 24, 2, 99)
    tok = SentencePieceTokenizer.train([s for p in train for s in p], 160, model_type="bpe")
    enc = lambda pairs: EncodedSet([tok.encode(a) for a, _ in pairs],    # noqa: E731
                                   [tok.encode(b) for _, b in pairs])
    items = np.array([a.count(ITEM_SEP) + 1 for a, _ in val])
    return enc(train), enc(val), len(tok), items


def build(variant: str, vocab: int) -> nn.Module:
    from test_lstm_bridge import MinimalSeq2Seq

    from attnmt.config import ModelConfig
    from attnmt.models import build_model
    from attnmt.presets import PRESETS

    if variant.startswith("minimal"):
        model = MinimalSeq2Seq(vocab, **{k: SIZES[k] for k in ("emb_size", "enc_hidden",
                                                                 "dec_hidden")})
    else:
        preset = "seq2seq-gru" if variant == "attnmt-gru" else "seq2seq-lstm"
        m = ModelConfig(**{**PRESETS[preset], **SIZES, "feed_context": False,
                           "reverse_source": variant.endswith("reversed")})
        model = build_model(m, vocab, vocab, joint_vocab=True)
    if "squashed" in variant:
        bridge = model.bridge[1] if hasattr(model, "bridge") else model.bridge_c
        squashed = nn.Sequential(bridge, nn.Tanh())
        if hasattr(model, "bridge"):
            model.bridge[1] = squashed
        else:
            model.bridge_c = squashed
    return model


def cell_bridge(model: nn.Module, batch) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The encoder's final cell states and the linear bridge's output for them."""
    if hasattr(model, "bridge_c"):
        c, linear = model.final_cells(batch.src, batch.src_lengths), model.bridge_c
    elif len(model.bridge) == 2:
        _, finals = model.encoder(batch.src, batch.src_lengths)
        c, linear = finals[1][-1], model.bridge[1]
    else:
        return None
    linear = linear[0] if isinstance(linear, nn.Sequential) else linear
    return c, linear(c)


def diagnostics(model: nn.Module, val, items: np.ndarray) -> dict:
    from attnmt.models.loss import token_loss

    model.eval()
    batch = val.batch(np.arange(len(val)))
    with torch.no_grad():
        logits, _ = model(batch.src, batch.src_lengths, batch.tgt_in)
        loss = token_loss(logits, batch.tgt_out, 0.0) / batch.n_tgt_tokens
        out = {"val_loss": round(float(loss), 4)}
        bridged = cell_bridge(model, batch)
        for name, rows in (("short", items <= 6), ("long", items >= 18)):
            if bridged is not None:
                c, pre = bridged
                out[f"cell_abs_{name}"] = round(float(c[rows].abs().mean()), 3)
                out[f"saturated_{name}"] = round(float((pre[rows].tanh().abs() > 0.99)
                                                       .float().mean()), 3)
    model.train()
    return out


def train_variant(variant: str, steps: int, seed: int) -> dict:
    from attnmt.data.batching import epoch_batches
    from attnmt.models.loss import token_loss

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    train, val, vocab, items = task_data()
    model = build(variant, vocab)
    opt = torch.optim.Adam(model.parameters(), lr=0.003)
    encoder = [p for n, p in model.named_parameters() if n.startswith(("encoder.", "enc."))]
    curve, grads, start, epoch = [], [], time.perf_counter(), 0
    plan: list = []
    for step in range(1, steps + 1):
        if not plan:
            plan, epoch = list(epoch_batches(train, 4000, seed, epoch)), epoch + 1
        batch = train.batch(plan.pop())
        logits, _ = model(batch.src, batch.src_lengths, batch.tgt_in)
        loss = token_loss(logits, batch.tgt_out, 0.0) / batch.n_tgt_tokens   # per token
        opt.zero_grad()
        loss.backward()
        grads.append(float(torch.norm(torch.stack([p.grad.norm() for p in encoder]))))
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 100 == 0:
            curve.append({"step": step, "encoder_grad_norm": round(float(np.mean(grads)), 4),
                          **diagnostics(model, val, items)})
            grads = []
    return {"variant": variant, "curve": curve,
            "seconds": round(time.perf_counter() - start, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2, help="variants trained at once")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    args = ap.parse_args()
    variants = args.variants.split(",")
    with ProcessPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(train_variant, variants, [args.steps] * len(variants),
                             [args.seed] * len(variants)))
    print("| variant | " + " | ".join(f"val loss @{r['step']}" for r in runs[0]["curve"])
          + " | encoder cells, long (end) | saturated short / long (end) "
          "| encoder grad norm (end) |")
    print("|---|" + "---|" * (len(runs[0]["curve"]) + 3))
    for r in runs:
        end = r["curve"][-1]
        cells = f"{end['cell_abs_long']:.2f}" if "cell_abs_long" in end else "–"
        sat = (f"{end['saturated_short']:.2f} / {end['saturated_long']:.2f}"
               if "saturated_short" in end else "–")
        print(f"| {r['variant']} | " + " | ".join(f"{c['val_loss']:.3f}" for c in r["curve"])
              + f" | {cells} | {sat} | {end['encoder_grad_norm']:.4f} |")
    save("lstm_bridge", {"command": "python benchmarks/lstm_bridge.py " + " ".join(sys.argv[1:]),
                         "steps": args.steps, "seed": args.seed, "runs": runs})


if __name__ == "__main__":
    main()
