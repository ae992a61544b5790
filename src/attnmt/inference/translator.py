"""Translate text with a trained model: tokenise, batch by length, search, detokenise.

Used by ``attnmt translate``, validation, evaluation, the study and the server.
Input order is restored after length-sorted batching, and an empty input line
gives an empty output, so files stay aligned.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from ..config import Config
from ..data.batching import sentence_batches
from ..data.tokenizers import BOS, EOS, PAD, Vocabs
from ..errors import UserError, field_error
from ..models import Seq2SeqModel
from ..models.backend import pack_linear_layers
from ..models.ensemble import Ensemble
from ..rundir import RunDir
from .controls import Controls
from .forced import forced_ids
from .search import Hypothesis, beam_search, max_lengths, sequential

PRECISIONS = ("fp32", "bf16", "int8")
NO_LIMIT = 10**6


class NoAttentionError(UserError):
    """Attention was asked of the fixed-context seq2seq, which has none."""


def quantize_int8(model: nn.Module, device: str = "cpu") -> nn.Module:
    """Dynamic int8 quantisation of every Linear layer (int8 weights, activations quantised
    on the fly): a CPU inference option that trades a little BLEU for speed and memory."""
    if torch.device(device).type != "cpu":
        raise UserError("--int8 is a CPU inference option; drop it or use --device cpu")
    with warnings.catch_warnings():     # torch.ao.quantization is deprecated in favour of torchao
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)


def for_inference(model: nn.Module, precision: str, device: str = "cpu") -> nn.Module:
    """The model in the number format it will translate in: ``fp32`` as trained (on a CPU
    with its Linear weights prepacked for oneDNN: ``models.backend``), ``bf16``
    (weights and activations cast; fast on GPUs and on CPUs with bf16 dot-product
    instructions, search scores stay float32), ``int8`` (dynamic quantisation, CPU)."""
    if precision not in PRECISIONS:
        raise UserError(f"precision {precision!r} is unknown; use one of {', '.join(PRECISIONS)}")
    if precision == "int8":
        return quantize_int8(model, device)
    return model.to(torch.bfloat16) if precision == "bf16" else pack_linear_layers(model)


@dataclass
class Translation:
    text: str
    score: float
    tokens: list[int]


class Engine(Protocol):
    """What the server, the CLI and the benchmarks need of a translation engine: attnmt's
    own :class:`Translator` and ``ct2engine.CT2Translator`` both provide it."""

    engine: str                 # "attnmt" or "ctranslate2"
    cfg: Config
    vocabs: Vocabs

    @property
    def has_attention(self) -> bool: ...

    @property
    def default_alpha(self) -> float: ...

    def num_parameters(self) -> int: ...

    def encode_source(self, text: str) -> list[int]: ...

    def translate(self, texts: list[str], beam: int | None = None, alpha: float | None = None,
                  nbest: int = 1, **options) -> list[list[Translation]]: ...

    def attention(self, text: str, beam: int = 1,
                  cancelled: Callable[[], bool] | None = None) -> dict: ...


def translate_in_batches(texts: list[str], encode: Callable[[str], list[int]],
                         batch_size: int,
                         decode: Callable[[list[list[int]], list[int]],
                                          list[list[Translation]]]
                         ) -> list[list[Translation]]:
    """The driver every engine shares: an empty line gives one empty translation; the others
    are encoded, grouped by length (:func:`sentence_batches`), decoded a group at a time
    (``decode``: the group's token ids and their positions in ``texts`` -> each sentence's
    translations) and returned in input order."""
    results = [[Translation("", 0.0, [])] for _ in texts]
    todo = [i for i, t in enumerate(texts) if t.strip()]
    seqs = [encode(texts[i]) for i in todo]
    for group in sentence_batches([len(s) for s in seqs], batch_size):
        decoded = decode([seqs[j] for j in group], [todo[j] for j in group])
        for j, hyps in zip(group, decoded, strict=True):
            results[todo[j]] = hyps
    return results


def _check_controls(greedy: bool, constraints, coverage: float, has_attention: bool) -> None:
    """One line for a control the chosen search cannot apply."""
    if constraints is not None and greedy:
        raise field_error("constraints", "constraints need beam search: use a beam of 2 or "
                          "more, without sampling")
    if coverage and greedy:
        raise field_error("coverage", "the coverage penalty ranks beam hypotheses: use a "
                          "beam of 2 or more, without sampling")
    if coverage and not has_attention:
        raise field_error("coverage", "the coverage penalty is read from the attention, and "
                          "this model has none")


def _pieces(tokenizer) -> list[str]:
    return [tokenizer.piece(i) for i in range(len(tokenizer))]


class Translator:
    """attnmt's own engine: the PyTorch model and :mod:`attnmt.inference.search`."""

    engine = "attnmt"

    def __init__(self, model: Seq2SeqModel, vocabs: Vocabs, cfg: Config,
                 device: torch.device | str = "cpu"):
        self.model, self.vocabs, self.cfg = model, vocabs, cfg
        self.device = torch.device(device)
        self.src_cap = model.max_source_len or NO_LIMIT
        self.tgt_cap = model.max_target_len or NO_LIMIT
        self._glued_tokens: torch.Tensor | None = None

    @classmethod
    def from_run(cls, run_dir: str | Path, checkpoint: str = "best", device: str = "cpu",
                 precision: str = "fp32") -> Translator:
        """Load a run's model in ``precision`` (see :func:`for_inference`)."""
        cfg, vocabs, model = RunDir(run_dir).load(checkpoint, device, task="translate")
        return cls(for_inference(model, precision, device), vocabs, cfg, device)

    @classmethod
    def from_runs(cls, run_dirs: Sequence[str | Path], checkpoint: str = "best",
                  device: str = "cpu", precision: str = "fp32") -> Translator:
        """One run's translator, or an ensemble of several (:mod:`attnmt.models.ensemble`):
        their log-probabilities averaged at every step, decoding as the first run's config
        says. The runs must share both vocabularies (one line names the first that does
        not)."""
        if len(run_dirs) == 1:
            return cls.from_run(run_dirs[0], checkpoint, device, precision)
        loaded = [RunDir(d).load(checkpoint, device, task="translate") for d in run_dirs]
        cfg, vocabs, _ = loaded[0]
        for path, (_, other, _) in zip(run_dirs[1:], loaded[1:]):
            for side in ("src", "tgt"):
                if _pieces(getattr(other, side)) != _pieces(getattr(vocabs, side)):
                    raise UserError(f"{path} has another {side} vocabulary than "
                                    f"{run_dirs[0]}; an ensemble needs runs whose "
                                    "tokenizers were made alike (same data and data.* "
                                    "tokenizer settings)")
        members = [for_inference(model, precision, device) for _, _, model in loaded]
        return cls(Ensemble(members), vocabs, cfg, device)

    @property
    def has_attention(self) -> bool:
        return self.model.has_attention

    @property
    def default_alpha(self) -> float:
        """The GNMT length penalty's alpha the run decodes with."""
        return self.cfg.decode.alpha

    def num_parameters(self) -> int:
        return self.model.num_parameters()

    def encode_source(self, text: str) -> list[int]:
        ids = self.vocabs.src.encode(text)[: self.src_cap - 1]
        return ids + [EOS]

    def pad_batch(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Id sequences -> a padded (B, L) tensor and their lengths, on the device."""
        src = torch.full((len(seqs), max(map(len, seqs))), PAD, dtype=torch.long)
        for i, s in enumerate(seqs):
            src[i, : len(s)] = torch.tensor(s)
        lengths = torch.tensor([len(s) for s in seqs])
        return src.to(self.device), lengths.to(self.device)

    @torch.inference_mode()
    def translate(self, texts: list[str], beam: int | None = None, alpha: float | None = None,
                  nbest: int = 1, sample: bool = False, temperature: float = 1.0,
                  top_k: int = 0, top_p: float = 1.0, max_len_ratio: float | None = None,
                  seed: int | None = None, batch_size: int | None = None,
                  stopping: str | None = None, cancelled: Callable[[], bool] | None = None,
                  penalty: str | None = None, zero_heads: Sequence[tuple[int, int]] = (),
                  prefixes: Sequence[str] | None = None,
                  constraints: Sequence[Sequence[str]] | None = None,
                  no_repeat_ngram: int = 0, coverage: float = 0.0
                  ) -> list[list[Translation]]:
        """``nbest`` translations per text (one when greedy or sampling). ``cancelled`` is
        asked before every decoding step; when it returns True, ``search.Cancelled`` is
        raised (the server's deadline). ``zero_heads`` (layer, head) silences Transformer
        cross-attention heads for the whole translation (head importance). Per text,
        ``prefixes`` forces the start of the output and ``constraints`` lists phrases the
        output must contain (beam search); ``no_repeat_ngram`` forbids repeating any
        n-gram of that size; ``coverage`` is GNMT's coverage penalty weight (beam search,
        models with attention). See :mod:`.controls` and :mod:`.constrained`."""
        d = self.cfg.decode
        beam = d.beam if beam is None else beam
        _check_controls(sample or beam <= 1, constraints, coverage, self.has_attention)
        forced = forced_ids(texts, self.vocabs.tgt.encode, self.tgt_cap, prefixes, constraints)
        generator = torch.Generator(device=self.device)
        if seed is not None:
            generator.manual_seed(seed)
        search = partial(self._search, beam=beam, alpha=d.alpha if alpha is None else alpha,
                         nbest=nbest, temperature=temperature if sample else 0.0,
                         top_k=top_k, top_p=top_p, generator=generator, cancelled=cancelled,
                         stopping=stopping or d.stopping, penalty=penalty or d.length_penalty,
                         zero_heads=zero_heads, greedy=sample or beam <= 1)
        ratio = max_len_ratio or d.max_len_ratio
        self.model.eval()
        truncated = 0

        def encode(text: str) -> list[int]:
            nonlocal truncated
            ids = self.encode_source(text)
            truncated += len(ids) >= self.src_cap
            return ids

        def decode(seqs: list[list[int]], indices: list[int]) -> list[list[Translation]]:
            src, lengths = self.pad_batch(seqs)
            needed = torch.tensor([forced.length(i) + 1 for i in indices], device=self.device)
            limits = torch.maximum(max_lengths(lengths, ratio, self.tgt_cap), needed)
            controls = Controls.make([forced.prefixes[i] for i in indices], no_repeat_ngram,
                                     coverage, self.device)
            phrases = (None if forced.constraints is None
                       else [forced.constraints[i] for i in indices])
            hyps = search(src, lengths, limits.clamp(max=self.tgt_cap), controls, phrases)
            return [[Translation(self.vocabs.tgt.decode(h.tokens), h.score, h.tokens)
                     for h in sentence_hyps] for sentence_hyps in hyps]

        results = translate_in_batches(texts, encode, batch_size or d.batch_size, decode)
        if truncated:
            warnings.warn(f"{truncated} input(s) reached the model's limit of {self.src_cap} "
                          "tokens and were truncated", stacklevel=2)
        return results

    def _search(self, src: torch.Tensor, lengths: torch.Tensor, limits: torch.Tensor,
                controls: Controls, constraints: list | None, *, greedy: bool, beam: int,
                alpha: float, nbest: int, temperature: float, top_k: int, top_p: float,
                generator: torch.Generator, cancelled: Callable[[], bool] | None,
                stopping: str, penalty: str, zero_heads: Sequence[tuple[int, int]]
                ) -> list[list[Hypothesis]]:
        """One length-sorted group through greedy decoding, sampling or beam search."""
        if greedy:
            return [[h] for h in sequential(self.model, src, lengths, limits, temperature,
                                            top_k, top_p, generator, cancelled=cancelled,
                                            zero_heads=zero_heads, controls=controls)]
        return beam_search(self.model, src, lengths, limits, beam, alpha, nbest, stopping,
                           cancelled=cancelled, penalty=penalty, zero_heads=zero_heads,
                           controls=controls, constraints=constraints,
                           glued=None if constraints is None else self._glued())

    def _glued(self) -> torch.Tensor:
        """(V,) True at the target tokens that continue a word, so that constraints are
        met by whole words (computed once)."""
        if self._glued_tokens is None:
            tgt = self.vocabs.tgt
            self._glued_tokens = torch.tensor([tgt.continues_word(i) for i in range(len(tgt))],
                                              device=self.device)
        return self._glued_tokens

    @torch.inference_mode()
    def score(self, sources: list[str], targets: list[str], batch_size: int | None = None
              ) -> list[float]:
        """The log-probability the model gives each target (and its ``</s>``) given its
        source, by teacher forcing: what search maximises, for any pair of texts."""
        self.model.eval()
        if len(sources) != len(targets):
            raise UserError(f"{len(sources)} sources but {len(targets)} targets; give one "
                            "target per source")
        seqs = [self.encode_source(s) for s in sources]
        tgts = [self.vocabs.tgt.encode(t)[: self.tgt_cap - 1] + [EOS] for t in targets]
        out = [0.0] * len(sources)
        for group in sentence_batches([len(s) for s in seqs], batch_size or
                                      self.cfg.decode.batch_size):
            src, lengths = self.pad_batch([seqs[j] for j in group])
            gold, _ = self.pad_batch([tgts[j] for j in group])             # PAD-filled
            tgt_in = torch.cat([torch.full_like(gold[:, :1], BOS), gold[:, :-1]], 1)
            logits, _ = self.model(src, lengths, tgt_in)
            logprobs = torch.log_softmax(logits.float(), -1).gather(2, gold[..., None])[..., 0]
            sums = logprobs.masked_fill(gold == PAD, 0.0).sum(1)
            for j, value in zip(group, sums.tolist(), strict=True):
                out[j] = value
        return out

    @torch.inference_mode()
    def attention(self, text: str, beam: int = 1,
                  cancelled: Callable[[], bool] | None = None) -> dict:
        """Translate ``text`` and return the attention of that translation.

        The weights are recomputed by a teacher-forced pass over the output,
        which gives exactly what the decoder saw while searching.
        ``weights`` is (T, S); ``layers`` (layers, heads, T, S) for the Transformer.
        """
        if not self.has_attention:
            raise NoAttentionError("this model is a seq2seq without attention: it sees the "
                                   "source only through one fixed context vector, so there "
                                   "is no attention to show")
        best = self.translate([text], beam=beam, cancelled=cancelled)[0][0]
        return {"translation": best.text, "score": best.score,
                **self.attention_of(self.encode_source(text), best.tokens)}

    def forced_attention(self, text: str, target: str) -> dict:
        """The attention while the decoder is forced to write ``target`` (teacher forcing of
        a given translation, e.g. the reference), in :meth:`attention`'s format, with the
        token ids of both sides (``src_ids``, ``tgt_ids``, each ending in ``</s>``)."""
        if not self.has_attention:
            raise NoAttentionError("this model is a seq2seq without attention: there is no "
                                   "attention to align with")
        tgt_ids = self.vocabs.tgt.encode(target)[: self.tgt_cap - 1]
        return {"translation": target, **self.attention_of(self.encode_source(text), tgt_ids)}

    @torch.no_grad()
    def attention_of(self, src_ids: list[int], tgt_ids: list[int]) -> dict:
        """The teacher-forced attention of token ids ``src_ids`` (ending in ``</s>``) and
        ``tgt_ids`` (without it), in :meth:`forced_attention`'s format."""
        src, lengths = self.pad_batch([src_ids])
        tgt_in = torch.tensor([[BOS, *tgt_ids]], device=self.device)
        _, weights = self.model(src, lengths, tgt_in, need_weights=True)
        layers = self.model.attention_layers(src, lengths, tgt_in)
        return {"src_tokens": [self.vocabs.src.piece(i) for i in src_ids],
                "tgt_tokens": [self.vocabs.tgt.piece(i) for i in tgt_ids] + ["</s>"],
                "src_ids": list(src_ids), "tgt_ids": [*tgt_ids, EOS],
                "weights": weights[0].float().tolist(),
                "layers": None if layers is None else layers[0].float().tolist()}
