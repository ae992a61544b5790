"""The Hugging Face export, checked on real data: greedy outputs of ``transformers``'
``generate`` on the exported model against attnmt's own, line by line.

    python benchmarks/hf_export_check.py runs/m30k-tsmall [--split test_2016_flickr]

Exports the run with ``attnmt export huggingface`` (into ``$ATTNMT_BENCH``, default
``~/.cache/attnmt/bench``), loads it with ``AutoModelForSeq2SeqLM`` / ``AutoTokenizer``,
decodes the split greedily in 64-sentence batches under attnmt's per-sentence length
limit (``export_hf.hf_greedy``) and prints how many token sequences are equal, with
both BLEUs. Writes ``results/hf_export_<run>.json``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from common import MULTI30K, save

EXPORTS = Path(os.environ.get("ATTNMT_BENCH", Path.home() / ".cache/attnmt/bench"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--split", default="test_2016_flickr")
    args = ap.parse_args()
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from attnmt.data.corpus import read_parallel
    from attnmt.export.huggingface import export_huggingface, hf_greedy
    from attnmt.inference.metrics import corpus_scores
    from attnmt.inference.translator import Translator

    out = export_huggingface(args.run, EXPORTS / f"{Path(args.run).resolve().name}-hf",
                             force=True)
    tr = Translator.from_run(args.run)
    corpus = read_parallel(MULTI30K / f"{args.split}.{tr.cfg.data.src}",
                           MULTI30K / f"{args.split}.{tr.cfg.data.tgt}")
    ours = tr.translate(corpus.src, beam=1, batch_size=64)
    hf = AutoModelForSeq2SeqLM.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    start = time.perf_counter()
    theirs = hf_greedy(hf, tok, corpus.src, max_len_ratio=tr.cfg.decode.max_len_ratio)
    seconds = time.perf_counter() - start
    same = sum(h[0].tokens == t for h, t in zip(ours, theirs, strict=True))
    texts = [tr.vocabs.tgt.decode(t) for t in theirs]
    result = {"run": args.run, "split": args.split, "exported": str(out),
              "equal_greedy_outputs": same, "sentences": len(ours),
              "attnmt_bleu": corpus_scores([h[0].text for h in ours], corpus.tgt)["bleu"],
              "transformers_bleu": corpus_scores(texts, corpus.tgt)["bleu"],
              "transformers_seconds": round(seconds, 2)}
    print(f"greedy outputs equal, transformers (exported) and attnmt: {same} / {len(ours)}; "
          f"BLEU {result['transformers_bleu']:.2f} / {result['attnmt_bleu']:.2f}")
    save(f"hf_export_{Path(args.run).resolve().name}", result)


if __name__ == "__main__":
    main()
