"""Decoding speed on Multi30k test2016: sentences/s and target tokens/s, with the BLEU.

    python benchmarks/decode_speed.py runs/m30k-tsmall [--repeats 3] [--threads 2]
    python benchmarks/decode_speed.py runs/m30k-tsmall --int8 --bf16 --ctranslate2
    python benchmarks/decode_speed.py runs/m30k-tsmall --ctranslate2 --batch-sizes 64,8

Greedy and beam 5, batches of 64 sentences sorted by length (``--batch-sizes 64,8`` also
times 8-sentence batches: rows ``greedy_b8``, ``beam5_b8``), model load excluded,
median over repeats; ``--rounds N`` runs every engine's process N times, round-robin, and
takes the median over all of them (a shared machine's slow spells then fall on every
engine). **Every engine is timed in its own process**: two runtimes' thread
pools in one process fight over the cores (CTranslate2 right after a PyTorch decode in
the same process ran at half its speed). The BLEU of the same output is printed next
to the speed, so speed is never bought with quality silently.

``--int8`` / ``--bf16`` time attnmt with dynamically int8-quantised Linear layers / in
bfloat16, ``--stopping current,beam`` beam 5 under other stopping rules,
``--ctranslate2`` the run exported with ``attnmt export ctranslate2`` (float32 and int8,
exported into ``--export-dir``) — and then prints how many greedy lines CTranslate2
float32 and attnmt agree on (they must all agree), and times CTranslate2's own
``translate_batch`` on the same export called directly (pieces in, pieces out, one call,
``max_batch_size=64``) — the anchor attnmt's wrapper is held against.
``--ct2-threads 1`` adds CTranslate2 float32 called directly on 1 thread (on a CPU where
it runs faster on fewer threads than attnmt gets, its best is the fair anchor).
``--fairseq-ct2`` adds CTranslate2 on fairseq's transformer-small of the same shape
(``peers.py fairseq-ct2`` trains and converts it) and the ratios of our export to it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from common import MULTI30K, save

MODES = {"greedy": 1, "beam5": 5}
DEFAULT_BATCH = 64
EXPORTS = Path(os.environ.get("ATTNMT_BENCH", Path.home() / ".cache/attnmt/bench"))
PEERS = Path(os.environ.get("ATTNMT_PEERS", Path.home() / ".cache/attnmt/peers"))
FAIRSEQ_MAX_OUT = 99    # the peers' fairseq spec has 100 target positions


def mode_name(search: str, batch: int) -> str:
    """A row's name: ``greedy``/``beam5`` at 64-sentence batches, else ``greedy_b8`` etc."""
    return search if batch == DEFAULT_BATCH else f"{search}_b{batch}"


def measure(translate: Callable[[list[str], int, int], list[str]], src: list[str],
            refs: list[str], tokens: Callable[[str], int], repeats: int, modes: list[str],
            batch_sizes: list[int]) -> dict:
    """Time ``translate(src, beam, batch_size)`` per mode and batch size; the median of
    ``repeats`` runs."""
    from attnmt.inference.metrics import corpus_scores

    rows = {}
    for name, batch in [(m, b) for b in batch_sizes for m in modes]:
        times, hyps = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            hyps = translate(src, MODES[name], batch)
            times.append(time.perf_counter() - start)
        seconds = statistics.median(times)
        scores = corpus_scores(hyps, refs)
        n_tokens = sum(tokens(h) + 1 for h in hyps)          # + </s>
        rows[mode_name(name, batch)] = {"sentences_per_s": round(len(hyps) / seconds, 1),
                      "tokens_per_s": round(n_tokens / seconds, 1), "bleu": scores["bleu"],
                      "chrf": scores["chrf"], "seconds": [round(t, 2) for t in times],
                      "hyps": hyps}
    return rows


def worker(spec: dict) -> dict:
    """One engine in this process: load it, then time it (see :func:`time_engine`)."""
    import torch

    torch.set_num_threads(spec["threads"])
    from attnmt.data.corpus import read_parallel

    split = spec["split"]
    if spec["engine"] == "ct2-direct":
        return ct2_direct(spec)
    if spec["engine"] == "ct2-fairseq":
        return ct2_fairseq(spec)
    from attnmt.inference.ct2engine import load_translator

    tr = load_translator(spec["path"], spec["engine"], precision=spec["precision"],
                         threads=spec["threads"])
    if spec.get("stopping"):
        tr.cfg.decode.stopping = spec["stopping"]
    corpus = read_parallel(MULTI30K / f"{split}.{tr.cfg.data.src}",
                           MULTI30K / f"{split}.{tr.cfg.data.tgt}")
    fast = {"scores": False} if spec["engine"] == "ctranslate2" else {}

    def translate(src: list[str], beam: int, batch: int) -> list[str]:
        return [h[0].text for h in tr.translate(src, beam=beam, batch_size=batch, **fast)]

    return measure(translate, corpus.src, corpus.tgt,
                   lambda h: len(tr.vocabs.tgt.encode(h)), spec["repeats"], spec["modes"],
                   spec["batch_sizes"])


def ct2_direct(spec: dict) -> dict:
    """CTranslate2 as its own documentation uses it: all sentences in one call, which sorts
    them by length and decodes 64 at a time, with one length limit for all."""
    import ctranslate2

    from attnmt.data.corpus import read_parallel
    from attnmt.data.tokenizers import Vocabs
    from attnmt.rundir import RunDir

    cfg, vocabs = RunDir(spec["path"]).load_config(), Vocabs.load(Path(spec["path"]) / "vocab")
    corpus = read_parallel(MULTI30K / f"{spec['split']}.{cfg.data.src}",
                           MULTI30K / f"{spec['split']}.{cfg.data.tgt}")
    ct2 = ctranslate2.Translator(spec["path"], device="cpu", intra_threads=spec["threads"])

    def translate(src: list[str], beam: int, batch: int) -> list[str]:
        pieces = [[vocabs.src.piece(i) for i in vocabs.src.encode(t)] for t in src]
        out = ct2.translate_batch(pieces, max_batch_size=batch, beam_size=beam)
        return [vocabs.tgt.decode([vocabs.tgt.index_of(p) for p in r.hypotheses[0]])
                for r in out]

    return measure(translate, corpus.src, corpus.tgt, lambda h: len(vocabs.tgt.encode(h)),
                   spec["repeats"], spec["modes"], spec["batch_sizes"])


def ct2_fairseq(spec: dict) -> dict:
    """The anchor: CTranslate2 on fairseq's transformer-small of the same shape (made by
    ``peers.py fairseq-ct2``), called as :func:`ct2_direct` calls it, with fairseq's own
    joint SentencePiece model; outputs stop at its 100 target positions."""
    import ctranslate2
    import sentencepiece as spm

    from attnmt.data.corpus import read_parallel

    sp = spm.SentencePieceProcessor(model_file=str(Path(spec["path"]) / "spm8k.model"))
    corpus = read_parallel(MULTI30K / f"{spec['split']}.de", MULTI30K / f"{spec['split']}.en")
    ct2 = ctranslate2.Translator(spec["path"], device="cpu", intra_threads=spec["threads"])

    def translate(src: list[str], beam: int, batch: int) -> list[str]:
        out = ct2.translate_batch(sp.encode(src, out_type=str), max_batch_size=batch,
                                  beam_size=beam, max_decoding_length=FAIRSEQ_MAX_OUT)
        return [sp.decode(r.hypotheses[0]) for r in out]

    return measure(translate, corpus.src, corpus.tgt, lambda h: len(sp.encode(h)),
                   spec["repeats"], spec["modes"], spec["batch_sizes"])


def run_worker(spec: dict) -> dict:
    """Run :func:`worker` in a fresh Python process and return its rows (with hypotheses)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rows.json"
        subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec), str(out)],
                       check=True, env={**os.environ, "OMP_NUM_THREADS": str(spec["threads"])})
        return json.loads(out.read_text())


def merge(label: str, runs: list[dict]) -> dict:
    """One engine's rows from several processes: speeds from the median of all their
    timed repeats (each process decodes the same sentences the same way)."""
    rows = {}
    for name in runs[0]:
        row = dict(runs[0][name])
        times = [t for r in runs for t in r[name]["seconds"]]
        scale = statistics.median(times) / statistics.median(row["seconds"])
        row.update(sentences_per_s=round(row["sentences_per_s"] / scale, 1),
                   tokens_per_s=round(row["tokens_per_s"] / scale, 1), seconds=times)
        rows[name] = row
        print(f"{label:>16} {name:>7}: {row['sentences_per_s']:7.1f} sentences/s  "
              f"{row['tokens_per_s']:8.1f} tokens/s  BLEU {row['bleu']:.2f}", flush=True)
    return rows


def time_engine(label: str, rounds: int = 1, **spec) -> dict:
    """:func:`run_worker` ``rounds`` times, merged."""
    return merge(label, [run_worker(spec) for _ in range(rounds)])


def time_engines(engines: dict[str, dict], rounds: int) -> dict:
    """Every engine in its own process, round-robin ``rounds`` times, so that a slow
    spell of a shared machine falls on all of them rather than on one."""
    runs: dict[str, list[dict]] = {key: [] for key in engines}
    for r in range(rounds):
        for key, spec in engines.items():
            print(f"round {r + 1}/{rounds}: {key}", flush=True)
            runs[key].append(run_worker(spec))
    return {key: merge(key, runs[key]) for key in engines}


def export(run: str, quantization: str) -> Path:
    from attnmt.export.ctranslate2 import export_ctranslate2

    folder = EXPORTS / f"{Path(run).resolve().name}-ct2-{quantization}"
    export_ctranslate2(run, folder, None if quantization == "float32" else quantization,
                       force=True)
    return folder


def agreement(a: list[str], b: list[str]) -> int:
    return sum(x == y for x, y in zip(a, b, strict=True))


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        Path(sys.argv[3]).write_text(json.dumps(worker(json.loads(sys.argv[2]))))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--ctranslate2", action="store_true",
                    help="also time the run exported to CTranslate2 (float32 and int8)")
    ap.add_argument("--int8", action="store_true", help="also time `--int8` (dynamic int8)")
    ap.add_argument("--bf16", action="store_true", help="also time `--bf16` (bfloat16)")
    ap.add_argument("--stopping", default="", help="comma-separated stopping rules to time "
                    "beam 5 under as well (bound, current, beam)")
    ap.add_argument("--fairseq-ct2", action="store_true",
                    help="also time CTranslate2 on fairseq's transformer-small (float32 and "
                    "int8; make it with `peers.py fairseq-ct2`)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=1, help="processes per engine, run "
                    "round-robin; speeds are the median of all their repeats")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--split", default="test_2016_flickr")
    ap.add_argument("--ct2-threads", default="", help="with --ctranslate2: also time "
                    "CTranslate2 float32 (called directly) on these thread counts, e.g. 1")
    ap.add_argument("--batch-sizes", default=str(DEFAULT_BATCH),
                    help="comma-separated sentences per batch to time (default 64)")
    args = ap.parse_args()
    rows = run_all(args)
    hyps = {key: {mode: row.pop("hyps") for mode, row in value.items()}
            for key, value in rows.items()}
    if "ctranslate2" in rows:
        for mode in (m for m in hyps["attnmt"] if m.startswith("greedy")):
            same = agreement(hyps["attnmt"][mode], hyps["ctranslate2"][mode])
            rows["ctranslate2"][f"{mode}_agreement"] = same
            print(f"{mode} lines equal, CTranslate2 float32 and attnmt: {same} / "
                  f"{len(hyps['attnmt'][mode])}")
    rows["anchor_ratios"] = anchor_ratios(rows)
    rows["engine_ratios"] = engine_ratios(rows)
    suffix = "" if args.threads == 2 else f"_t{args.threads}"
    save(f"decode_speed_{args.run.rstrip('/').split('/')[-1]}{suffix}",
         {"run": args.run, "split": args.split, "threads": args.threads,
          "repeats": args.repeats, "rounds": args.rounds, "separate_processes": True,
          **rows})


def run_all(args: argparse.Namespace) -> dict:
    """Every asked-for engine, one process each, round-robin ``--rounds`` times."""
    common = dict(split=args.split, repeats=args.repeats, threads=args.threads,
                  batch_sizes=[int(b) for b in args.batch_sizes.split(",")])
    both = list(MODES)
    engines = {"attnmt": dict(engine="attnmt", path=args.run, precision="fp32", modes=both,
                              **common)}
    for precision in ("int8", "bf16"):
        if getattr(args, precision):
            engines[f"attnmt_{precision}"] = dict(engine="attnmt", path=args.run,
                                                  precision=precision, modes=both, **common)
    for rule in filter(None, args.stopping.split(",")):
        engines[f"attnmt_stopping_{rule}"] = dict(engine="attnmt", path=args.run,
                                                  precision="fp32", stopping=rule,
                                                  modes=["beam5"], **common)
    if args.ctranslate2:
        folders = {}
        for quant, suffix in (("float32", ""), ("int8", "_int8")):
            folder = folders[quant] = str(export(args.run, quant))
            engines[f"ctranslate2{suffix}"] = dict(engine="ctranslate2", path=folder,
                                                   precision="fp32", modes=both, **common)
            engines[f"ctranslate2_direct{suffix}"] = dict(engine="ct2-direct", path=folder,
                                                          precision="fp32", modes=both,
                                                          **common)
        for n in filter(None, args.ct2_threads.split(",")):     # float32 on other threads
            engines[f"ctranslate2_direct_t{n}"] = dict(
                engine="ct2-direct", path=folders["float32"], precision="fp32",
                modes=both, **{**common, "threads": int(n)})
    if args.fairseq_ct2:
        for quant, suffix in (("float32", ""), ("int8", "_int8")):
            folder = PEERS / f"fs-ct2-{quant}"
            if not (folder / "model.bin").is_file():
                raise SystemExit(f"{folder} is missing; make it with `python "
                                 "benchmarks/peers.py fairseq-ct2`")
            engines[f"ctranslate2_fairseq{suffix}"] = dict(engine="ct2-fairseq",
                                                           path=str(folder), modes=both,
                                                           precision="fp32", **common)
    return time_engines(engines, args.rounds)


def engine_ratios(rows: dict) -> dict:
    """Pure-PyTorch attnmt (float32) over CTranslate2 float32 — through attnmt's wrapper,
    called directly, and called directly on other thread counts (``_tN``) — in sentences/s,
    per mode and batch size."""
    out = {}
    for other in (k for k in rows if k.startswith("ctranslate2") and "int8" not in k):
        for mode, row in rows["attnmt"].items():
            ratio = round(row["sentences_per_s"] / rows[other][mode]["sentences_per_s"], 3)
            out[f"attnmt_over_{other}_{mode}"] = ratio
            print(f"attnmt / {other} {mode}: {ratio:.3f}x sentences/s")
    return out


def anchor_ratios(rows: dict) -> dict:
    """Our export through CTranslate2 (attnmt's wrapper, and called directly) against
    CTranslate2 on fairseq's model, in target tokens/s (the two models write sentences of
    different lengths) and sentences/s."""
    out = {}
    for suffix in ("", "_int8"):
        anchor = rows.get(f"ctranslate2_fairseq{suffix}")
        for ours in (f"ctranslate2{suffix}", f"ctranslate2_direct{suffix}"):
            if anchor is None or ours not in rows:
                continue
            for mode in anchor:
                key = f"{ours}_vs_fairseq_{mode}"
                out[key] = {unit: round(rows[ours][mode][unit] / anchor[mode][unit], 3)
                            for unit in ("tokens_per_s", "sentences_per_s")}
                print(f"{key}: {out[key]['tokens_per_s']:.3f}x tokens/s, "
                      f"{out[key]['sentences_per_s']:.3f}x sentences/s")
    return out


if __name__ == "__main__":
    main()
