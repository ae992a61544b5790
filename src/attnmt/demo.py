"""``make demo``: the context-vector bottleneck and attention, offline, in a few minutes.

German number words -> English number words (``siebenundachtzig`` -> ``eighty-seven``:
the tens come first in English, so the model must reorder inside every number),
lists of 1..12 numbers. Two GRU models of the same size are trained for the same
time: a seq2seq that sees the source only through its final state, and one with
Luong dot attention. The table shows exact match and BLEU by the number of
items; the heatmap shows where the attention model looked.
"""

from __future__ import annotations

from pathlib import Path

import click

from .config import load_config
from .data.synthetic import ITEM_SEP, write_task
from .evaluate import evaluate
from .metrics import scores_by_length
from .plots import attention_heatmap, score_by_length
from .train import train
from .translator import Translator

TASK = dict(n=30000, n_valid=200, n_test=600, min_items=1, max_items=12, test_max_items=12,
            max_value=99, seed=1)
SIZES = dict(emb_size=64, enc_hidden=128, dec_hidden=256, dropout=0.0, input_feeding=False)
MODELS = {"seq2seq (no attention)": "seq2seq-gru", "rnn-dot (attention)": "rnn-dot"}
EDGES = (3, 6, 9)


def _config(data_dir: Path, preset: str, minutes: float):
    return load_config(raw={
        "data": {"dir": str(data_dir), "src": "de", "tgt": "en", "tokenizer": "sentencepiece",
                 "spm_type": "bpe",
                 "vocab_size": 160, "max_len": 200},
        "model": {"preset": preset, **SIZES},
        "train": {"max_tokens": 3000, "lr": 0.003, "schedule": "constant", "warmup": 50,
                  "label_smoothing": 0.0, "max_steps": 100000, "max_minutes": minutes,
                  "valid_every": 150, "valid_max_sentences": 200, "best_metric": "exact",
                  "threads": 2},
        "decode": {"beam": 1}})


def run_demo(out: Path, minutes: float = 2.0) -> None:
    data_dir = out / "data"
    if not (data_dir / "train.de").is_file():
        write_task(data_dir, "numbers", "de", "en", **TASK)
    click.echo(f"task: German -> English number words, 1-12 numbers per line, "
               f"{TASK['n']} training pairs in {data_dir}")
    results, translators = {}, {}
    for name, preset in MODELS.items():
        run = out / preset
        click.echo(f"\n== training {name} for {minutes:g} minutes -> {run}")
        cfg = _config(data_dir, preset, minutes)
        resume = (run / "checkpoints" / "latest.json").is_file()
        if not resume or not (run / "eval").is_dir():
            train(cfg, run, resume=resume)
        translators[name] = Translator.from_run(run)
        results[name] = evaluate(run, "test", translator=translators[name], log=click.echo)
    src = (data_dir / "test.de").read_text().splitlines()
    ref = (data_dir / "test.en").read_text().splitlines()
    items = [s.count(ITEM_SEP) + 1 for s in src]
    by_items = {}
    for name in results:
        hyps = (out / MODELS[name] / "eval" / "test.beam1.hyp").read_text().splitlines()
        by_items[name] = scores_by_length(hyps, ref, items, EDGES)
    _print_table(by_items, results)
    score_by_length(by_items, out / "exact_by_length.png", metric="exact",
                    title="exact match by length (German -> English numbers)",
                    xlabel="numbers per sentence")
    click.echo("\nexamples (reference, then each model):")
    for i in _examples(items):
        click.echo(f"  de:   {src[i]}\n  ref:  {ref[i]}")
        for name, tr in translators.items():
            click.echo(f"  {name.split()[0]:<7} {tr.translate([src[i]], beam=1)[0][0].text}")
        click.echo("")
    sentence = src[_examples(items)[1]]
    att = translators["rnn-dot (attention)"].attention(sentence)
    attention_heatmap(att["weights"], att["src_tokens"], att["tgt_tokens"],
                      out / "attention.png", "rnn-dot: where each English token looked")
    click.echo(f"wrote {out / 'attention.png'} (attention heatmap) and "
               f"{out / 'exact_by_length.png'}")


def _examples(items: list[int]) -> list[int]:
    picks = []
    for want in (2, 5, 11):
        picks.append(min(range(len(items)), key=lambda i: (abs(items[i] - want), i)))
    return picks


def _print_table(by_items: dict, results: dict) -> None:
    names = list(by_items)
    buckets = [r["bucket"] for r in by_items[names[0]]]
    click.echo("\nexact match % / BLEU on the test set, by number of items per sentence")
    header = f"{'items':>8} " + "".join(f"{n:>28}" for n in names)
    click.echo(header)
    for b in buckets:
        row = f"{b:>8} "
        for n in names:
            r = next((x for x in by_items[n] if x["bucket"] == b), None)
            row += f"{r['exact']:>18.1f} / {r['bleu']:5.1f}" if r else f"{'-':>28}"
        click.echo(row)
    click.echo(f"{'all':>8} " + "".join(f"{results[n]['exact']:>18.1f} / {results[n]['bleu']:5.1f}"
                                        for n in names))
