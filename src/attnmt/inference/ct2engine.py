"""Translate with a model exported to CTranslate2 — the fast engine behind
``attnmt translate --engine ctranslate2`` and ``attnmt serve --engine ctranslate2``.

It speaks the same language as :class:`attnmt.inference.translator.Translator` (``translate``
returns :class:`Translation` lists, ``attention``, ``encode_source``, ``cfg``), so the
server, the CLI and the benchmarks use either without knowing which.

CTranslate2 is handed full, length-sorted batches. Its length limit is one number per
call while attnmt's search has one per sentence (``max_len_ratio`` x source tokens + 10,
counting ``</s>``), so each batch is decoded with its largest limit and every
hypothesis is then cut at its own. For greedy search this gives exactly attnmt's
output: a sentence's tokens do not depend on the other rows or on the limit, only
where it is forced to stop does, and the cut stops it there. For beam search a
sentence can now keep a hypothesis that its own limit would have ended earlier, so a
beam output may differ from attnmt's where a limit was reached (rare: the limits are
far above the length of a normal translation).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ..config import Config
from ..data.tokenizers import EOS, Vocabs
from ..errors import UserError, field_error
from ..export.ctranslate2 import require_ctranslate2
from ..rundir import RunDir
from .forced import forced_ids
from .search import Cancelled
from .translator import NoAttentionError, Translation, translate_in_batches

# Never an output, as in attnmt's own search (search.step_logprobs): <s> and the padding
# symbol (<blank> in the exported vocabulary).
NEVER_OUTPUT = [["<s>"], ["<blank>"]]

ENGINES = ("attnmt", "ctranslate2")


class CT2Translator:
    """An exported CTranslate2 folder (``attnmt export ctranslate2``), with attnmt's
    tokenisation, batching and per-sentence length limits."""

    engine = "ctranslate2"
    has_attention = True
    default_alpha = 1.0         # CTranslate2's length penalty: log-probability / length^alpha

    def __init__(self, model_dir: str | Path, device: str = "cpu", threads: int = 0):
        ct2 = require_ctranslate2()
        folder = Path(model_dir)
        if not (folder / "model.bin").is_file():
            raise UserError(f"{folder} is not a CTranslate2 model folder (no model.bin); "
                            "create one with `attnmt export ctranslate2 RUN_DIR OUT_DIR`")
        if not (folder / "config.yaml").is_file():
            raise UserError(f"{folder} was exported by an older attnmt (no config.yaml); "
                            "export the run again with `attnmt export ctranslate2 --force`")
        self.folder = folder
        self.cfg: Config = RunDir(folder).load_config()
        self.vocabs = Vocabs.load(folder / "vocab")
        self.cap = self.cfg.model.max_positions - 1            # tokens, counting </s>
        self.translator = ct2.Translator(str(folder), device=device, intra_threads=threads)

    def num_parameters(self) -> int:
        """The exported run's parameter count (written by the export)."""
        return int(json.loads((self.folder / "attnmt.json").read_text())["parameters"])

    def encode_source(self, text: str) -> list[int]:
        return self.vocabs.src.encode(text)[: self.cap - 1] + [EOS]

    def _pieces(self, ids: list[int]) -> list[str]:
        return [self.vocabs.src.piece(i) for i in ids[:-1]]    # CTranslate2 adds </s> itself

    def _limit(self, n_source: int, ratio: float) -> int:
        """attnmt's own limit (``search.max_lengths``): output tokens counting </s>."""
        return min(self.cap, int(n_source * ratio + 10))

    def translate(self, texts: list[str], beam: int | None = None, alpha: float | None = None,
                  nbest: int = 1, max_len_ratio: float | None = None,
                  batch_size: int | None = None, scores: bool = True,
                  cancelled: Callable[[], bool] | None = None,
                  prefixes: list[str] | None = None, no_repeat_ngram: int = 0,
                  coverage: float = 0.0, **unsupported) -> list[list[Translation]]:
        """``nbest`` translations per text. ``alpha`` is CTranslate2's length penalty (a
        beam hypothesis's log-probability divided by length^alpha; default 1), not the
        GNMT penalty of attnmt's search. ``cancelled`` is asked between batches.
        ``prefixes``, ``no_repeat_ngram`` and ``coverage`` are CTranslate2's own
        ``target_prefix``, ``no_repeat_ngram_size`` and ``coverage_penalty``."""
        if unsupported:
            raise field_error(min(unsupported), f"{', '.join(sorted(unsupported))}: not "
                              "available with the ctranslate2 engine; use the attnmt engine")
        d = self.cfg.decode
        beam = d.beam if beam is None else beam
        ratio = max_len_ratio or d.max_len_ratio
        forced = forced_ids(texts, self.vocabs.tgt.encode, self.cap, prefixes)

        def decode(seqs: list[list[int]], indices: list[int]) -> list[list[Translation]]:
            if cancelled is not None and cancelled():
                raise Cancelled
            limits = [max(self._limit(len(ids), ratio), forced.length(i) + 1)
                      for ids, i in zip(seqs, indices, strict=True)]
            target_prefix = ([[self.vocabs.tgt.piece(t) for t in forced.prefixes[i]]
                              for i in indices] if prefixes is not None else None)
            batch = self.translator.translate_batch(
                [self._pieces(ids) for ids in seqs], beam_size=beam, num_hypotheses=nbest,
                length_penalty=1.0 if alpha is None else alpha, return_scores=scores,
                max_decoding_length=max(limits) - 1, max_input_length=0,
                target_prefix=target_prefix, no_repeat_ngram_size=no_repeat_ngram,
                coverage_penalty=coverage, suppress_sequences=NEVER_OUTPUT)
            return [[self._translation(hyp, limit, result.scores, k)
                     for k, hyp in enumerate(result.hypotheses)]
                    for limit, result in zip(limits, batch, strict=True)]

        return translate_in_batches(texts, self.encode_source, batch_size or d.batch_size,
                                    decode)

    def _translation(self, pieces: list[str], limit: int, scores: list, k: int) -> Translation:
        tokens = [self.vocabs.tgt.index_of(p) for p in pieces[: limit - 1]]
        return Translation(self.vocabs.tgt.decode(tokens), scores[k] if scores else 0.0, tokens)

    def attention(self, text: str, beam: int = 1,
                  cancelled: Callable[[], bool] | None = None) -> dict:
        """The translation and its cross-attention as CTranslate2 returns it: one matrix,
        the last decoder layer's weights averaged over its heads. CTranslate2 does not
        give every layer and head; ``layers`` is then None and ``note`` says so."""
        if not text.strip():
            raise NoAttentionError("the text is empty: there is nothing to attend to")
        if cancelled is not None and cancelled():
            raise Cancelled
        ids = self.encode_source(text)
        limit = self._limit(len(ids), self.cfg.decode.max_len_ratio)
        result = self.translator.translate_batch(
            [self._pieces(ids)], beam_size=beam, return_scores=True, return_attention=True,
            return_end_token=True, max_decoding_length=limit, max_input_length=0,
            suppress_sequences=NEVER_OUTPUT)[0]
        pieces = result.hypotheses[0][: limit]
        # CTranslate2 leaves out the </s> it appended to the source; the weights of every row
        # sum to 1 over all positions, so what the row lacks is the weight on </s>.
        weights = [[*row, max(0.0, 1.0 - sum(row))] for row in result.attention[0][: len(pieces)]]
        tokens = [self.vocabs.tgt.index_of(p) for p in pieces if p != "</s>"]
        ended = ["</s>"] if pieces and pieces[-1] == "</s>" else []   # one row per token
        return {"translation": self.vocabs.tgt.decode(tokens), "score": result.scores[0],
                "src_tokens": [self.vocabs.src.piece(i) for i in ids],
                "tgt_tokens": [self.vocabs.tgt.piece(i) for i in tokens] + ended,
                "weights": weights, "layers": None,
                "note": "CTranslate2 returns one attention matrix: the last decoder layer's, "
                        "averaged over its heads; per-layer and per-head weights need the "
                        "attnmt engine"}


def load_translator(path: str | Path, engine: str = "attnmt", checkpoint: str = "best",
                    device: str = "cpu", precision: str = "fp32", threads: int = 0):
    """The translator of a run (``attnmt``) or of an exported CTranslate2 folder."""
    if engine == "ctranslate2":
        if precision != "fp32":
            raise UserError(f"--{precision} applies to the attnmt engine; export a quantised "
                            "model with `attnmt export ctranslate2 --quantization int8`")
        return CT2Translator(path, device, threads)
    if engine != "attnmt":
        raise UserError(f"engine {engine!r} is unknown; use one of {', '.join(ENGINES)}")
    if (Path(path) / "model.bin").is_file():
        raise UserError(f"{path} is a model exported to CTranslate2; use --engine ctranslate2 "
                        "(in Python: engine='ctranslate2')")
    from .translator import Translator

    return Translator.from_run(path, checkpoint, device, precision)
