"""Inference by task: translation, sentence classification and text generation.

:func:`load_predictor` is the one place that picks the predictor for a run's task;
every predictor evaluates a split, describes the result in lines of text and, where
the model has attention to show, returns it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .data.batching import EncodedSet, token_batches
from .data.corpus import label_ids, read_text, read_tsv
from .errors import UserError
from .inference.generate import generate
from .inference.metrics import classification_scores
from .models.loss import token_loss
from .rundir import RunDir, write_json
from .symbols import BOS


def _load(run_dir: str | Path, task: str, checkpoint: str = "best"):
    return RunDir(run_dir).load(checkpoint, task=task)


def _split_location(cfg, run: RunDir, split: str, data_dir) -> tuple[Path, str]:
    """The folder of a run's data (or ``data_dir``) and the file name of ``split``."""
    folder = run.data_folder(cfg, data_dir)
    return folder, cfg.data.split_name(split)


SCORING_TOKENS = 8192   # token budget of a batch when classifying or scoring perplexity


# A self-attention heatmap's axes: each row is a token attending, each column one attended.
SELF_ATTENTION_AXES = ("attended token", "attending token")


class Classifier:
    """A trained encoder-only classifier."""

    def __init__(self, run_dir: str | Path, checkpoint: str = "best"):
        self.run = RunDir(run_dir)
        self.cfg, self.vocabs, self.model = _load(run_dir, "classify", checkpoint)
        self.labels = self.run.labels()

    def encode_source(self, text: str) -> list[int]:
        """The token ids of ``text`` (what a request's work is counted in)."""
        return self.vocabs.src.encode(text)

    def _encode(self, texts: list[str]) -> EncodedSet:
        n = self.cfg.data.max_len
        return EncodedSet([[BOS, *self.vocabs.src.encode(t)][:n] for t in texts],
                          [[0]] * len(texts))

    @torch.no_grad()
    def probabilities(self, texts: list[str]) -> np.ndarray:
        """(N, labels) probabilities; an empty text gets a row of NaN."""
        out = np.full((len(texts), len(self.labels)), np.nan)
        todo = [i for i, t in enumerate(texts) if t.strip()]
        data = self._encode([texts[i] for i in todo])
        for ids in token_batches(data.src_lens, data.tgt_lens, SCORING_TOKENS, shuffle=False):
            b = data.batch(ids)
            probs = self.model(b.src, b.src_lengths).softmax(-1).numpy()
            out[[todo[i] for i in ids]] = probs
        return out

    def classify(self, texts: list[str]) -> list[tuple[str, float]]:
        """(label, probability) per text; ("", 0.0) for an empty line."""
        probs = self.probabilities(texts)
        return [("", 0.0) if np.isnan(p).any() else (self.labels[int(p.argmax())],
                                                     float(p.max())) for p in probs]

    def evaluate(self, split: str, data_dir: str | Path | None = None, **_) -> dict:
        folder, name = _split_location(self.cfg, self.run, split, data_dir)
        path = folder / f"{name}.tsv"
        corpus = read_tsv(path)
        gold = label_ids(corpus, self.labels, path)
        probs = self.probabilities(corpus.src)
        result = {"split": name, "n": len(gold), "labels": self.labels,
                  **classification_scores(gold, probs.argmax(1).tolist(), len(self.labels))}
        (self.run.path / "eval").mkdir(exist_ok=True)
        write_json(self.run.path / "eval" / f"{name}.json", result)
        return result

    @staticmethod
    def describe(result: dict) -> list[str]:
        lines = [f"{result['split']}: accuracy {result['accuracy']:.2f}%  macro-F1 "
                 f"{result['macro_f1']:.2f}  ({result['n']} sentences)",
                 "confusion (rows: gold, columns: predicted)",
                 " " * 10 + "".join(f"{x[:8]:>9}" for x in result["labels"])]
        return lines + [f"{label[:9]:>10}" + "".join(f"{v:>9}" for v in row)
                        for label, row in zip(result["labels"], result["confusion"])]

    def tokens_of(self, data: EncodedSet, row: int = 0) -> list[str]:
        """The tokens the model reads for one encoded text, ``<s>`` and ``</s>`` included."""
        return ["<s>", *[self.vocabs.src.piece(i) for i in data.src_ids(row)[1:]], "</s>"]

    def explain(self, text: str, attribution: bool = True, ig_steps: int = 8) -> dict:
        """What the classifier looks at for ``text``: the attention from the pooled position
        per layer and head beside attributions for the predicted label (numpy arrays;
        :func:`attnmt.explain.classifier.explain_classifier`)."""
        from .explain.classifier import explain_classifier

        return explain_classifier(self, text, attribution=attribution, ig_steps=ig_steps)

    def attention(self, text: str, beam: int = 1) -> dict:
        """Encoder self-attention of ``text``: tokens on both axes, mean and per layer/head."""
        if not text.strip():
            raise UserError("the text is empty")
        data = self._encode([text])
        b = data.batch(np.array([0]))
        layers = self.model.self_attention(b.src, b.src_lengths)[0]       # (L, H, S, S)
        tokens = self.tokens_of(data)
        return {"src_tokens": tokens, "tgt_tokens": tokens, "translation": None,
                "weights": layers.mean((0, 1)).tolist(), "layers": layers.tolist(),
                "title": "encoder self-attention (mean over layers and heads)",
                "axes": SELF_ATTENTION_AXES}


class LanguageModel:
    """A trained decoder-only language model."""

    def __init__(self, run_dir: str | Path, checkpoint: str = "best"):
        self.run = RunDir(run_dir)
        self.cfg, self.vocabs, self.model = _load(run_dir, "lm", checkpoint)

    def encode_source(self, text: str) -> list[int]:
        """The token ids of ``text`` (a prompt)."""
        return self.vocabs.tgt.encode(text)

    def generate(self, prompt: str, max_new_tokens: int = 50, temperature: float = 1.0,
                 top_k: int = 0, top_p: float = 1.0, seed: int | None = None,
                 use_cache: bool = True) -> str:
        """``prompt`` continued by up to ``max_new_tokens`` tokens."""
        return self.continuation(prompt, max_new_tokens, temperature, top_k, top_p, seed,
                                 use_cache=use_cache)[0]

    def continuation(self, prompt: str, max_new_tokens: int = 50, temperature: float = 1.0,
                     top_k: int = 0, top_p: float = 1.0, seed: int | None = None, *,
                     use_cache: bool = True, cancelled=None) -> tuple[str, int]:
        """The prompt continued and how many tokens were added; ``cancelled`` is asked
        before every step (``search.Cancelled`` when it returns True)."""
        generator = torch.Generator()
        if seed is not None:
            generator.manual_seed(seed)
        ids = [BOS, *self.vocabs.tgt.encode(prompt)] if prompt.strip() else [BOS]
        new = generate(self.model, ids, max_new_tokens, temperature, top_k, top_p, generator,
                       use_cache, cancelled)
        return self.vocabs.tgt.decode(ids[1:] + new), len(new)

    @staticmethod
    def describe(result: dict) -> list[str]:
        return [f"{result['split']}: perplexity {result['perplexity']:.2f} "
                f"({result['tokens']} tokens, {result['sentences']} lines)"]

    def attention(self, text: str, beam: int = 1) -> dict:
        """Causal self-attention over ``<s>`` and ``text``'s tokens: each position (row)
        attends to itself and the positions before it (columns); mean and per layer/head."""
        if not text.strip():
            raise UserError("the text is empty")
        ids = [BOS, *self.vocabs.tgt.encode(text)][: self.model.max_positions]
        layers = self.model.self_attention(torch.tensor([ids]))[0]          # (L, H, T, T)
        tokens = ["<s>", *(self.vocabs.tgt.piece(i) for i in ids[1:])]
        return {"src_tokens": tokens, "tgt_tokens": tokens, "translation": None,
                "weights": layers.mean((0, 1)).tolist(), "layers": layers.tolist(),
                "title": "causal self-attention (mean over layers and heads)",
                "axes": SELF_ATTENTION_AXES}

    def evaluate(self, split: str, data_dir: str | Path | None = None, **_) -> dict:
        return self.perplexity(split, data_dir)

    @torch.no_grad()
    def perplexity(self, split: str, data_dir: str | Path | None = None) -> dict:
        folder, name = _split_location(self.cfg, self.run, split, data_dir)
        corpus = read_text(folder, name, self.cfg.data.src)
        ids = [self.vocabs.tgt.encode(t)[: self.model.max_positions - 2] for t in corpus.src]
        data = EncodedSet([[]] * len(ids), ids)
        loss, tokens = 0.0, 0
        for batch_ids in token_batches(data.src_lens, data.tgt_lens, SCORING_TOKENS, shuffle=False):
            b = data.batch(batch_ids)
            loss += float(token_loss(self.model(b.tgt_in), b.tgt_out, 0.0))
            tokens += b.n_tgt_tokens
        result = {"split": name, "sentences": len(ids), "tokens": tokens,
                  "loss": loss / tokens, "perplexity": math.exp(loss / tokens)}
        (self.run.path / "eval").mkdir(exist_ok=True)
        write_json(self.run.path / "eval" / f"{name}.json", result)
        return result



class TranslationModel:
    """A trained translation model: what ``attnmt.load`` returns for a translation run, and
    what ``attnmt evaluate`` and ``attnmt plot`` use. ``translator`` is the engine
    underneath (``Translator`` or ``CT2Translator``), for n-best lists and every option."""

    def __init__(self, run_dir: str | Path, checkpoint: str = "best", precision: str = "fp32",
                 engine: str = "attnmt"):
        from .inference.ct2engine import load_translator

        self.run_dir, self.precision = run_dir, precision
        self.translator = load_translator(run_dir, engine, checkpoint, precision=precision)
        self.tag = "" if engine == "attnmt" else f".{engine}"

    def translate(self, texts: str | list[str], beam: int | None = None, **options
                  ) -> str | list[str]:
        """The best translation of each text (one string for one string); ``beam`` 1 is
        greedy, None the run's default; ``options`` as ``Translator.translate`` takes."""
        one = isinstance(texts, str)
        results = self.translator.translate([texts] if one else list(texts), beam=beam,
                                            **options)
        best = [hyps[0].text for hyps in results]
        return best[0] if one else best

    def score(self, sources: list[str], targets: list[str]) -> list[float]:
        """log p(target | source) of each pair under the model (teacher forcing)."""
        if self.translator.engine != "attnmt":
            raise UserError("scoring needs the attnmt engine (load the run, not an export)")
        return self.translator.score(sources, targets)

    def align(self, sources: str | list[str], targets: str | list[str] | None = None, *,
              method: str = "argmax", shift: bool = False, threshold: float = 0.5,
              layer: int | None = None, head: int | None = None, beam: int = 1
              ) -> str | list[str]:
        """Word alignments in Pharaoh format (``"0-0 1-2 ..."``: source word i, target word
        j, whitespace words from 0) read from the attention, of each source with its target
        (forced decoding) or, without targets, with the model's own translation; options
        as ``attnmt align`` (:mod:`attnmt.inference.alignment`)."""
        from .data.pharaoh import to_pharaoh
        from .inference.alignment import align

        one = isinstance(sources, str)
        wrap = (lambda x: [x]) if one else list
        links, _ = align(self.translator, wrap(sources),
                         None if targets is None else wrap(targets), method=method,
                         shift=shift, threshold=threshold, layer=layer, head=head, beam=beam)
        lines = [to_pharaoh(x) for x in links]
        return lines[0] if one else lines

    def evaluate(self, split: str, data_dir: str | Path | None = None, *,
                 beam: int | None = None, alpha: float | None = None, log=print) -> dict:
        from .inference.evaluate import evaluate

        tag = self.tag + ("" if self.precision == "fp32" else f".{self.precision}")
        return evaluate(self.run_dir, split, data_dir, beam, alpha, translator=self.translator,
                        log=log, tag=tag)

    @staticmethod
    def describe(result: dict) -> list[str]:
        lines = [f"{result['split']} (beam {result['beam']}): BLEU {result['bleu']:.2f}  "
                 f"chrF {result['chrf']:.2f}  exact {result['exact']:.1f}%  "
                 f"({result['n']} sentences, {result['sentences_per_s']:.1f} sent/s)",
                 result["bleu_signature"], "by source length (words):"]
        if "alignment" in result:
            a = result["alignment"]
            lines.append(f"attention as word alignment (gold {result['split']}.align): AER "
                         f"{a['aer']:.2f}, precision {a['precision']}, recall {a['recall']}")
        return lines + [f"  {r['bucket']:>7}  n={r['n']:<5} BLEU {r['bleu']:6.2f}  "
                        f"chrF {r['chrf']:6.2f}  exact {r['exact']:5.1f}%"
                        for r in result["by_length"]]

    def explain(self, text: str, *, top_k: int = 5, masked: Sequence[int] = (),
                zero_heads: Sequence[tuple[int, int]] = (), attribution: bool = False,
                ig_steps: int = 8) -> dict:
        """Every number of attention at every output word of the greedy translation of
        ``text``, optionally with source positions masked out of attention or
        Transformer heads silenced (see :mod:`attnmt.explain.numbers`), and with
        ``attribution`` the gradient attributions beside it; arrays are numpy."""
        from .explain.numbers import explain

        return explain(self.translator, text, top_k=top_k, masked=masked,
                       zero_heads=zero_heads, attribution=attribution, ig_steps=ig_steps)

    def attribute(self, text: str, target: str | None = None, *, ig_steps: int = 8) -> dict:
        """Attention, input x gradient, integrated gradients (Captum) and masking: how much
        each source token mattered to each output word of the greedy translation (or of
        ``target``), and how far the four methods agree (:mod:`attnmt.explain.attribution`)."""
        from .explain.attribution import attribute

        return attribute(self.translator, text, target, ig_steps=ig_steps)

    def attribution_agreement(self, sources: list[str], targets: list[str] | None = None, *,
                              ig_steps: int = 8) -> dict:
        """The four methods' agreement pooled over a corpus: per pair, the mean Spearman
        correlation over output tokens and how often their top source token is the same."""
        from .explain.attribution import corpus_agreement

        return corpus_agreement(self.translator, sources, targets, ig_steps=ig_steps)

    def five_steps(self, text: str, top_k: int = 5) -> dict:
        """Attention's five steps at every output word of the greedy translation of
        ``text``, with the real numbers (RNN attention models; the fixed-context seq2seq
        gives its one context vector): per step ``query``, ``keys``, ``values``,
        ``scores``, ``weights``, ``context``, ``combined`` as numpy arrays (one row per
        query), the ``top`` next words with their probabilities and the word greedy
        search ``chosen``."""
        shown = self.explain(text, top_k=top_k)
        if shown["family"] == "transformer":
            raise UserError(f"{self.run_dir}: the five steps are shown for the RNN families; "
                            "for the Transformer use explain()")
        rows = ("query", "scores", "weights", "context")
        steps = [{**{k: (v[None] if k in rows else v) for k, v in step.items()},
                  "keys": shown.get("keys"), "values": shown.get("states"),
                  "scorer": shown["scorer"]} for step in shown["steps"]]
        return {**{k: shown[k] for k in ("translation", "scorer", "src_tokens", "tgt_tokens")},
                "steps": steps}

    def attention(self, text: str, beam: int = 1) -> dict:
        result = self.translator.attention(text, beam=beam)
        title = ("attention (mean over layers and heads)" if result["layers"] is not None
                 or self.translator.engine == "attnmt" else "attention (last layer, mean of heads)")
        return {**result, "title": title}


PREDICTORS = {"translate": TranslationModel, "classify": Classifier, "lm": LanguageModel}


def load_predictor(run_dir: str | Path, checkpoint: str = "best", precision: str = "fp32",
                   engine: str = "attnmt"):
    """The predictor for the task of ``run_dir`` (a translation model, a classifier or a
    language model); ``precision`` other than fp32 and the ``ctranslate2`` engine (an
    exported folder) apply to translation models only."""
    task = RunDir(run_dir).load_config().data.task
    if task not in PREDICTORS:
        raise UserError(f"{run_dir} is an {task} pre-training run; fine-tune a classifier "
                        "from it (train.init_from) and evaluate that")
    if task != "translate":
        if precision != "fp32":
            raise UserError(f"--{precision} is available for translation models; {run_dir} "
                            f"holds a {task} model")
        return PREDICTORS[task](run_dir, checkpoint)
    return TranslationModel(run_dir, checkpoint, precision, engine)
