"""Why CTranslate2's beam search and ours give different BLEU on the same weights.

    python benchmarks/search_gap.py runs/m30k-tsmall [--split val]

Decodes one split with beam 5 three ways on the same weights: attnmt's default search
(GNMT penalty, α from the config), attnmt with CTranslate2's objective (log-probability
divided by the length counting ``</s>``, ``decode.length_penalty: average``, α 1), and the
run exported to CTranslate2 (``length_penalty=1``, the float32 export). Every output is then
scored by the model itself (teacher forcing, :meth:`Translator.score`), so on the lines where
two searches disagree it says which found the hypothesis with the higher score under the
shared objective: a search error of one of them, or a translation the model prefers that
BLEU does not (a model error). Writes ``results/search_gap.json``. Quality only: the two
engines share a process here, so nothing is timed.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import sacrebleu
from common import MULTI30K, save

EXPORTS = Path.home() / ".cache/attnmt/bench"
SPLITS = {"val": "val", "test2016": "test_2016_flickr"}


def per_token(tr, src: list[str], hyps: list[str]) -> list[float]:
    """The model's log-probability of each output (with ``</s>``) over its token count."""
    logp = tr.score(src, hyps)
    return [lp / (len(tr.vocabs.tgt.encode(h)) + 1) for lp, h in zip(logp, hyps)]


def compare(tr, src: list[str], a: list[str], b: list[str]) -> dict:
    """Lines where ``a`` and ``b`` differ, and which scores higher per token."""
    differ = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
    sa = per_token(tr, [src[i] for i in differ], [a[i] for i in differ])
    sb = per_token(tr, [src[i] for i in differ], [b[i] for i in differ])
    gaps = [x - y for x, y in zip(sa, sb)]
    return {"lines_differ": len(differ), "a_scores_higher": sum(g > 1e-6 for g in gaps),
            "b_scores_higher": sum(g < -1e-6 for g in gaps),
            "median_gap_per_token": round(statistics.median(gaps), 4) if gaps else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--split", default="val", choices=sorted(SPLITS))
    args = ap.parse_args()
    from attnmt.data.corpus import read_lines
    from attnmt.export.ctranslate2 import export_ctranslate2
    from attnmt.inference.ct2engine import load_translator
    from attnmt.inference.translator import Translator

    name = SPLITS[args.split]
    src, refs = read_lines(MULTI30K / f"{name}.de"), read_lines(MULTI30K / f"{name}.en")
    tr = Translator.from_run(args.run)                    # the best checkpoint, as exported
    folder = EXPORTS / f"{Path(args.run).resolve().name}-ct2-float32"
    export_ctranslate2(args.run, folder, None, force=True)
    ct2 = load_translator(folder, engine="ctranslate2")
    alpha = tr.default_alpha
    outputs = {
        f"attnmt, GNMT penalty α {alpha} (default)": tr.translate(src, beam=5),
        "attnmt, per-token average (α 1)": tr.translate(src, beam=5, alpha=1.0,
                                                         penalty="average"),
        "CTranslate2, length_penalty 1": ct2.translate(src, beam=5, alpha=1.0),
    }
    texts = {k: [h[0].text for h in v] for k, v in outputs.items()}
    rows = {}
    for key, hyps in texts.items():
        scores = per_token(tr, src, hyps)
        rows[key] = {"bleu": round(sacrebleu.corpus_bleu(hyps, [refs]).score, 2),
                     "mean_logprob_per_token": round(statistics.mean(scores), 4),
                     "mean_length": round(statistics.mean(len(h.split()) for h in hyps), 3)}
        print(f"{key:<42} BLEU {rows[key]['bleu']:6.2f}  mean log p / token "
              f"{rows[key]['mean_logprob_per_token']:.4f}  words/line "
              f"{rows[key]['mean_length']:.2f}")
    ours, theirs = list(texts)[1], list(texts)[2]
    duel = compare(tr, src, texts[ours], texts[theirs])
    print(f"{ours} vs {theirs}: {duel['lines_differ']} lines differ; ours scores higher per "
          f"token on {duel['a_scores_higher']}, CTranslate2's on {duel['b_scores_higher']} "
          f"(median gap {duel['median_gap_per_token']})")
    save(f"search_gap_{args.split}", {"run": args.run, "split": args.split, "beam": 5,
                                      "engines": rows, "attnmt_average_vs_ctranslate2": duel})


if __name__ == "__main__":
    main()
