"""Evaluate a run on a split: sacreBLEU BLEU/chrF, exact match, scores by source length."""

from __future__ import annotations

import time
from pathlib import Path

from ..data.registry import read_split
from ..errors import UserError
from ..rundir import RunDir, write_json
from .alignment import gold_score
from .metrics import DEFAULT_BUCKETS, corpus_scores, scores_by_length
from .translator import Translator


def evaluate(run_dir: str | Path, split: str = "test", data_dir: str | Path | None = None,
             beam: int | None = None, alpha: float | None = None,
             edges: tuple[int, ...] = DEFAULT_BUCKETS, translator: Translator | None = None,
             log=print, tag: str = "") -> dict:
    """Translate ``split`` and score it; writes ``eval/{split}.beam{B}{tag}.json`` and
    ``.hyp`` (``tag`` marks a variant such as ``.int8``). Where the split has a gold word
    alignment (``{split}.align``, as the synthetic tasks write), the attention's alignment
    error rate too (mean attention, argmax, forced to the references)."""
    run = RunDir(run_dir)
    translator = translator or Translator.from_run(run_dir)
    cfg = translator.cfg
    folder = run.data_folder(cfg, data_dir, log=log)
    name = cfg.data.split_name(split)
    corpus = read_split(folder, name, cfg.data.src, cfg.data.tgt, required=False,
                        fmt=cfg.data.format)
    if corpus is None:
        raise UserError(f"split {name!r} is not in {folder} (files {name}.{cfg.data.src} and "
                        f"{name}.{cfg.data.tgt}); pass --data DIR or another --split")
    beam = cfg.decode.beam if beam is None else beam
    start = time.perf_counter()
    hyps = [t[0].text for t in translator.translate(corpus.src, beam=beam, alpha=alpha)]
    seconds = time.perf_counter() - start
    scores = corpus_scores(hyps, corpus.tgt)
    lengths = [len(s.split()) for s in corpus.src]
    result = {"split": name, "beam": beam, **scores,
              "by_length": scores_by_length(hyps, corpus.tgt, lengths, edges),
              "sentences_per_s": len(hyps) / seconds, "decode_seconds": seconds}
    aligned = gold_score(translator, Path(folder) / f"{name}.align", corpus.src, corpus.tgt)
    if aligned:
        result["alignment"] = aligned
    out = run.eval_dir
    out.mkdir(exist_ok=True)
    write_json(out / f"{name}.beam{beam}{tag}.json", result)
    (out / f"{name}.beam{beam}{tag}.hyp").write_text("".join(h + "\n" for h in hyps))
    return result
