"""Tasks: what the one training loop needs to know about a kind of problem.

A task reads and tokenises its data, builds its model, computes the summed
loss of a batch and validates. The loop (``train.py``) is the same for all:

- ``translate``: sentence pairs -> a sequence-to-sequence model (the default)
- ``classify``:  ``text<TAB>label`` -> encoder-only classifier (BERT-style)
- ``mlm``:       plain text -> masked-language-model pre-training of that encoder
- ``lm``:        plain text -> decoder-only language model (GPT-style)
"""

from __future__ import annotations

import json
import math
import os
import shutil

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checkpoint import RunDir
from .config import Config
from .data.batching import EncodedSet, token_batches
from .data.corpus import Corpus, read_lines, read_tsv
from .data.registry import read_split, resolve_dir
from .data.tokenizers import BOS, PAD, SPECIALS, UNK, Vocabs
from .errors import DataError, UserError
from .metrics import corpus_scores

MLM_RATE = 0.15


def _rank() -> int:
    return int(os.environ.get("RANK", 0))


def _filter_long(src: list[list[int]], tgt: list[list[int]], max_len: int
                 ) -> tuple[list[list[int]], list[list[int]], int]:
    keep = [i for i, (s, t) in enumerate(zip(src, tgt)) if len(s) < max_len and len(t) < max_len]
    return [src[i] for i in keep], [tgt[i] for i in keep], len(src) - len(keep)


def _inherit_vocab(source: RunDir, run: RunDir, log) -> None:
    """A run fine-tuned from another must read tokens with that run's vocabulary: the
    embeddings it inherits are indexed by it."""
    if not Vocabs.exists(source.vocab_dir):
        raise UserError(f"train.init_from: {source.path} holds no vocabulary; point it at a "
                        "finished attnmt run directory")
    shutil.copytree(source.vocab_dir, run.vocab_dir, dirs_exist_ok=True)
    log(f"vocabulary taken from {source.path} (train.init_from)")


def _shared_setup(cfg: Config, run: RunDir, log, barrier, train_texts) -> tuple:
    """Rank 0 creates the data folder and the vocabulary; the others wait, then read them."""
    folder = None
    if _rank() == 0:
        folder = resolve_dir(cfg.data, run.path / "data", log=log)
    barrier()
    if folder is None:
        folder = resolve_dir(cfg.data, run.path / "data", log=log)
    splits = train_texts(folder)
    if _rank() == 0 and not Vocabs.exists(run.vocab_dir) and cfg.train.init_from:
        _inherit_vocab(RunDir(cfg.train.init_from), run, log)
    if _rank() == 0 and not Vocabs.exists(run.vocab_dir):
        src, tgt = splits
        Vocabs.train(cfg.data.tokenizer, src, tgt, cfg.data.vocab_size,
                     cfg.data.joint_vocab or cfg.data.task != "translate",
                     cfg.data.spm_type).save(run.vocab_dir)
    barrier()
    return folder, Vocabs.load(run.vocab_dir)


class Task:
    """Base: subclasses fill ``train``/``valid`` (EncodedSet) and define loss and validate."""

    name = ""
    train: EncodedSet
    valid: EncodedSet

    def __init__(self, cfg: Config, run: RunDir, log=print, barrier=lambda: None):
        self.cfg, self.run, self.log = cfg, run, log

    def units(self, ids: np.ndarray) -> int:
        """How many loss terms a batch contributes (the loss is normalised by their sum)."""
        return int(self.train.tgt_lens[ids].sum())



class TranslationTask(Task):
    name = "translate"

    def __init__(self, cfg: Config, run: RunDir, log=print, barrier=lambda: None):
        super().__init__(cfg, run, log, barrier)
        d = cfg.data
        corpora = {}

        def texts(folder):
            corpora["train"] = read_split(folder, d.train, d.src, d.tgt)
            corpora["valid"] = read_split(folder, d.valid, d.src, d.tgt)
            return corpora["train"].src, corpora["train"].tgt

        _, self.vocabs = _shared_setup(cfg, run, log, barrier, texts)
        sets = []
        for corpus in (corpora["train"], corpora["valid"]):
            src = [self.vocabs.src.encode(s) for s in corpus.src]
            tgt = [self.vocabs.tgt.encode(t) for t in corpus.tgt]
            src, tgt, corpus.skipped_long = _filter_long(src, tgt, d.max_len)
            log(corpus.summary().replace("the limit", f"{d.max_len} tokens"))
            if not src:
                raise UserError(f"{corpus.name}: no sentence pairs left after filtering")
            sets.append(EncodedSet(src, tgt))
        self.train, self.valid = sets
        n = cfg.train.valid_max_sentences or len(corpora["valid"].src)
        self.valid_src = corpora["valid"].src[:n]
        self.valid_ref = corpora["valid"].tgt[:n]

    def build_model(self) -> nn.Module:
        from .models import build_model

        return build_model(self.cfg.model, len(self.vocabs.src), len(self.vocabs.tgt),
                           self.vocabs.joint)

    def loss(self, model: nn.Module, batch, label_smoothing: float) -> Tensor:
        logits, _ = model(batch.src, batch.src_lengths, batch.tgt_in)
        return token_loss(logits, batch.tgt_out, label_smoothing)

    @torch.no_grad()
    def validate(self, model: nn.Module, device: torch.device) -> dict:
        from .translator import Translator

        loss, tokens = _valid_loss(self, model, device)
        result = {"loss": loss / tokens, "ppl": math.exp(min(loss / tokens, 50))}
        if self.cfg.train.valid_bleu:
            translator = Translator(model, self.vocabs, self.cfg, device)
            hyps = [h[0].text for h in translator.translate(self.valid_src, beam=1)]
            scores = corpus_scores(hyps, self.valid_ref)
            result.update(bleu=scores["bleu"], chrf=scores["chrf"], exact=scores["exact"])
        return result


def token_loss(logits: Tensor, targets: Tensor, label_smoothing: float) -> Tensor:
    """Summed (label-smoothed) cross-entropy over non-pad targets. logits (B, T, V)."""
    return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1),
                           ignore_index=PAD, label_smoothing=label_smoothing, reduction="sum")


def _valid_loss(task: Task, model: nn.Module, device: torch.device) -> tuple[float, int]:
    model.eval()
    loss, units = 0.0, 0
    for ids in token_batches(task.valid.src_lens, task.valid.tgt_lens,
                             task.cfg.train.max_tokens, shuffle=False):
        batch = task.valid.batch(ids).to(device)
        loss += float(task.loss(model, batch, 0.0))
        units += task.valid_units(ids) if hasattr(task, "valid_units") else batch.n_tgt_tokens
    return loss, units


# ---- encoder-only classifier ---------------------------------------------------------------
def read_labeled(path) -> Corpus:
    """``text<TAB>label`` lines (a bad line is an error naming it; empty ones are counted)."""
    return read_tsv(path)


def label_ids(corpus: Corpus, labels: list[str], path) -> list[int]:
    index = {label: i for i, label in enumerate(labels)}
    out = []
    for text_line, label in zip(corpus.line_numbers or range(1, len(corpus) + 1), corpus.tgt):
        if label not in index:
            raise DataError(f"{path} line {text_line}: unknown label {label!r}; the model "
                            f"knows {', '.join(labels)}")
        out.append(index[label])
    return out


def _labeled_path(folder, split: str):
    return folder / f"{split}.tsv"


class ClassifyTask(Task):
    """Sentence classification with an encoder (``[CLS]`` = ``<s>`` + tokens + ``</s>``)."""

    name = "classify"

    def __init__(self, cfg: Config, run: RunDir, log=print, barrier=lambda: None):
        super().__init__(cfg, run, log, barrier)
        d, corpora = cfg.data, {}

        def texts(folder):
            for key, split in (("train", d.train), ("valid", d.valid)):
                corpora[key] = read_labeled(_labeled_path(folder, split))
            return corpora["train"].src, []

        folder, self.vocabs = _shared_setup(cfg, run, log, barrier, texts)
        labels_file = run.path / "labels.json"
        if labels_file.is_file():
            self.labels = json.loads(labels_file.read_text())
        else:
            self.labels = sorted(set(corpora["train"].tgt))
            if _rank() == 0:
                labels_file.write_text(json.dumps(self.labels, ensure_ascii=False))
        self.train = self._encode(corpora["train"], _labeled_path(folder, d.train))
        self.valid = self._encode(corpora["valid"], _labeled_path(folder, d.valid))

    def _encode(self, corpus: Corpus, path) -> EncodedSet:
        ids = label_ids(corpus, self.labels, path)
        src = [[BOS, *self.vocabs.src.encode(t)] for t in corpus.src]
        cut = sum(len(x) > self.cfg.data.max_len for x in src)
        self.log(corpus.summary() + (f"; {cut} truncated to {self.cfg.data.max_len} tokens"
                                     if cut else ""))
        if not src:
            raise UserError(f"{path}: no labelled lines")
        return EncodedSet([x[: self.cfg.data.max_len] for x in src], [[y] for y in ids])

    def units(self, ids: np.ndarray) -> int:
        return len(ids)

    def valid_units(self, ids: np.ndarray) -> int:
        return len(ids)

    def build_model(self) -> nn.Module:
        return build_encoder(self.cfg, len(self.vocabs.src), len(self.labels))

    def loss(self, model: nn.Module, batch, label_smoothing: float) -> Tensor:
        logits = model(batch.src, batch.src_lengths)
        return F.cross_entropy(logits.float(), batch.tgt_out[:, 0],
                               label_smoothing=label_smoothing, reduction="sum")

    @torch.no_grad()
    def validate(self, model: nn.Module, device: torch.device) -> dict:
        loss, n = _valid_loss(self, model, device)
        gold, pred = predict_labels(model, self.valid, device, self.cfg.train.max_tokens)
        return {"loss": loss / n, **classification_scores(gold, pred, len(self.labels))}


def build_encoder(cfg: Config, vocab: int, n_labels: int) -> nn.Module:
    from .models.heads import EncoderClassifier

    m = cfg.model
    return EncoderClassifier(vocab, n_labels, m.d_model, m.heads, m.ffn, m.enc_layers, m.dropout,
                             m.norm, m.positions, m.max_positions, m.pooling,
                             m.attention_dropout, m.activation_dropout)


@torch.no_grad()
def predict_labels(model: nn.Module, data: EncodedSet, device, max_tokens: int
                   ) -> tuple[list[int], list[int]]:
    model.eval()
    gold, pred = [], []
    for ids in token_batches(data.src_lens, data.tgt_lens, max_tokens, shuffle=False):
        batch = data.batch(ids).to(device)
        pred += model(batch.src, batch.src_lengths).argmax(-1).tolist()
        gold += batch.tgt_out[:, 0].tolist()
    return gold, pred


def classification_scores(gold: list[int], pred: list[int], n_labels: int) -> dict:
    """Accuracy and macro-F1 in percent, and the confusion matrix (rows = gold)."""
    confusion = np.zeros((n_labels, n_labels), dtype=int)
    for g, p in zip(gold, pred):
        confusion[g, p] += 1
    tp = np.diag(confusion).astype(float)
    precision = np.divide(tp, confusion.sum(0), out=np.zeros(n_labels), where=confusion.sum(0) > 0)
    recall = np.divide(tp, confusion.sum(1), out=np.zeros(n_labels), where=confusion.sum(1) > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(n_labels),
                   where=(precision + recall) > 0)
    present = confusion.sum(1) > 0
    return {"accuracy": round(100 * tp.sum() / max(1, len(gold)), 2),
            "macro_f1": round(100 * float(f1[present].mean()) if present.any() else 0.0, 2),
            "confusion": confusion.tolist()}


# ---- masked-LM pre-training and the decoder-only LM -----------------------------------------
def read_text(folder, split: str, lang: str) -> Corpus:
    path = folder / f"{split}.{lang}"
    lines = read_lines(path)
    kept = [x.strip() for x in lines if x.strip()]
    corpus = Corpus(kept, kept, name=split, skipped_empty=len(lines) - len(kept))
    return corpus


class _TextTask(Task):
    def __init__(self, cfg: Config, run: RunDir, log=print, barrier=lambda: None):
        super().__init__(cfg, run, log, barrier)
        d, corpora = cfg.data, {}

        def texts(folder):
            corpora["train"] = read_text(folder, d.train, d.src)
            corpora["valid"] = read_text(folder, d.valid, d.src)
            return corpora["train"].src, []

        _, self.vocabs = _shared_setup(cfg, run, log, barrier, texts)
        self.train = self._encode(corpora["train"])
        self.valid = self._encode(corpora["valid"])

    @torch.no_grad()
    def validate(self, model: nn.Module, device: torch.device) -> dict:
        loss, n = _valid_loss(self, model, device)
        return {"loss": loss / n, "ppl": math.exp(min(loss / n, 50))}

    def _encode(self, corpus: Corpus) -> EncodedSet:
        ids = [self.vocabs.src.encode(t) for t in corpus.src]
        keep = [x for x in ids if 0 < len(x) < self.cfg.data.max_len - 1]
        corpus.skipped_long = len(ids) - len(keep)
        self.log(corpus.summary().replace("the limit", f"{self.cfg.data.max_len} tokens"))
        if not keep:
            raise UserError(f"{corpus.name}: no lines left after filtering")
        return self._pack(keep)


class LMTask(_TextTask):
    """Next-token prediction: ``<s> x1 .. xn`` -> ``x1 .. xn </s>``."""

    name = "lm"

    def _pack(self, ids: list[list[int]]) -> EncodedSet:
        return EncodedSet([[]] * len(ids), ids)          # the target side carries the text

    def build_model(self) -> nn.Module:
        from .models.heads import DecoderLM

        m = self.cfg.model
        return DecoderLM(len(self.vocabs.tgt), m.d_model, m.heads, m.ffn, m.dec_layers,
                         m.dropout, m.norm, m.positions, m.max_positions, m.attention_dropout,
                         m.activation_dropout)

    def loss(self, model: nn.Module, batch, label_smoothing: float) -> Tensor:
        return token_loss(model(batch.tgt_in), batch.tgt_out, label_smoothing)


MASK = UNK  # the [MASK] symbol; SentencePiece with full character coverage has no <unk> in text


def mask_tokens(tokens: Tensor, lengths: Tensor, vocab: int,
                generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """BERT masking of ``<s> x1 .. xn </s>`` rows: ``max(1, round(0.15 n))`` of the x become
    targets; 80 % of those are replaced by the mask symbol, 10 % by a random token, 10 %
    stay. Returns (inputs, targets); targets are PAD where nothing is predicted."""
    inputs, targets = tokens.clone(), torch.full_like(tokens, PAD)
    for row, n in enumerate((lengths - 2).tolist()):
        k = max(1, round(MLM_RATE * n))
        pos = 1 + torch.randperm(n, generator=generator)[:k]
        targets[row, pos] = tokens[row, pos]
        fate = torch.rand(k, generator=generator)
        inputs[row, pos[fate < 0.8]] = MASK
        swap = pos[(fate >= 0.8) & (fate < 0.9)]
        inputs[row, swap] = torch.randint(len(SPECIALS), vocab, (len(swap),),
                                          generator=generator)
    return inputs, targets


class MLMTask(_TextTask):
    """Masked-language-model pre-training of the encoder (Devlin et al. 2019, §3.1).

    Inputs look exactly like the classifier's (``<s> x1 .. xn </s>``), so a
    classifier fine-tuned from this run (``train.init_from``) starts from them.
    """

    name = "mlm"

    def _pack(self, ids: list[list[int]]) -> EncodedSet:
        return EncodedSet([[BOS, *x] for x in ids], [[PAD]] * len(ids))

    def units(self, ids: np.ndarray) -> int:
        return int(sum(max(1, round(MLM_RATE * (n - 2))) for n in self.train.src_lens[ids]))

    def valid_units(self, ids: np.ndarray) -> int:
        return int(sum(max(1, round(MLM_RATE * (n - 2))) for n in self.valid.src_lens[ids]))

    def build_model(self) -> nn.Module:
        return build_encoder(self.cfg, len(self.vocabs.src), 0)

    def loss(self, model: nn.Module, batch, label_smoothing: float) -> Tensor:
        generator = None if model.training else torch.Generator().manual_seed(0)
        inputs, targets = mask_tokens(batch.src.cpu(), batch.src_lengths.cpu(),
                                      len(self.vocabs.src), generator)
        logits = model(inputs.to(batch.src.device), batch.src_lengths)
        return token_loss(logits, targets.to(batch.src.device), label_smoothing)


def model_for_run(cfg: Config, vocabs: Vocabs, run_path) -> nn.Module:
    """The (untrained) model a saved run's config describes, for loading its weights."""
    from pathlib import Path

    from .models import build_model
    from .models.heads import DecoderLM

    task, m = cfg.data.task, cfg.model
    if task == "translate":
        return build_model(m, len(vocabs.src), len(vocabs.tgt), vocabs.joint)
    if task == "classify":
        labels = json.loads((Path(run_path) / "labels.json").read_text())
        return build_encoder(cfg, len(vocabs.src), len(labels))
    if task == "mlm":
        return build_encoder(cfg, len(vocabs.src), 0)
    return DecoderLM(len(vocabs.tgt), m.d_model, m.heads, m.ffn, m.dec_layers, m.dropout, m.norm,
                     m.positions, m.max_positions, m.attention_dropout, m.activation_dropout)


TASKS = {"translate": TranslationTask, "classify": ClassifyTask, "mlm": MLMTask, "lm": LMTask}


def make_task(cfg: Config, run: RunDir, log=print, barrier=lambda: None) -> Task:
    return TASKS[cfg.data.task](cfg, run, log, barrier)
