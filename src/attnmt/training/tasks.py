"""Tasks: what the one training loop needs to know about a kind of problem.

A task holds its data (:class:`~.task_data.TaskData`: folder, vocabulary, prepared
splits), builds its model, computes the summed loss of a batch and validates. The loop
(``loop.py``) is the same for all:

- ``translate``: sentence pairs -> a sequence-to-sequence model (the default)
- ``classify``:  ``text<TAB>label`` -> encoder-only classifier (BERT-style)
- ``mlm``:       plain text -> masked-language-model pre-training of that encoder
- ``lm``:        plain text -> decoder-only language model (GPT-style)

Each task is a small class of its own; what they share is passed in (the data) or is a
function here (the validation loss, the model), not a base class.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import Config
from ..data.batching import (
    Batch,
    EncodedSet,
    JoinedSet,
    SampledSegmentation,
    WeightedSet,
    token_batches,
)
from ..data.prepare import SplitSpec, labels_of, load_arrays
from ..data.registry import read_split
from ..data.tokenizers import Vocabs
from ..errors import DataError, UserError
from ..inference.metrics import classification_scores, corpus_scores
from ..models import build_for_task
from ..models.loss import token_loss
from ..rundir import RunDir, atomic_write
from ..symbols import PAD, SPECIALS, UNK
from .runtime import rank_and_world
from .task_data import TaskData, encoded

MLM_RATE = 0.15
MASK = UNK  # the [MASK] symbol; SentencePiece with full character coverage has no <unk> in text


def build_model(task, n_labels: int = 0) -> nn.Module:
    """The model of ``task``'s config, sized to its vocabulary."""
    cfg, vocabs = task.cfg, task.vocabs
    return build_for_task(task.name, cfg.model, src_vocab=len(vocabs.src),
                          tgt_vocab=len(vocabs.tgt), joint_vocab=vocabs.joint,
                          n_labels=n_labels)


def valid_loss(task, model: nn.Module, device: torch.device) -> float:
    """Mean validation loss per unit (target token, sentence or masked token)."""
    model.eval()
    loss, units = 0.0, 0
    data = task.valid
    for ids in token_batches(data.src_lens, data.tgt_lens, task.cfg.train.max_tokens,
                             shuffle=False):
        loss += float(task.loss(model, data.batch(ids).to(device), 0.0))
        units += task.units(data, ids)
    return loss / max(1, units)


class _Prepared:
    """What every task holds once its data is ready (``attnmt data prepare`` stops here)."""

    name = ""
    kind = ""
    vocabs: Vocabs
    train: EncodedSet
    valid: EncodedSet

    def __init__(self, data: TaskData):
        self.data, self.cfg = data, data.cfg

    @property
    def prepared_folders(self) -> dict[str, str]:
        return self.data.prepared_folders


class TranslationTask(_Prepared):
    name, kind = "translate", "pairs"

    def __init__(self, data: TaskData):
        super().__init__(data)
        d = self.cfg.data
        folder, self.vocabs, trains, valid = data.prepare_weighted()
        self.train, self.valid = training_set(self, trains), encoded(valid, d.valid)
        texts = read_split(folder, d.valid, d.src, d.tgt, fmt=d.format)   # validation BLEU
        n = self.cfg.train.valid_max_sentences or len(texts.src)
        self.valid_src, self.valid_ref = texts.src[:n], texts.tgt[:n]

    def build_model(self) -> nn.Module:
        return build_model(self)

    def units(self, data: EncodedSet, ids: np.ndarray) -> int:
        """Loss terms of a batch: its target tokens (the loss is normalised by their sum)."""
        return int(data.lengths(ids)[1].sum())

    def loss(self, model: nn.Module, batch: Batch, label_smoothing: float) -> Tensor:
        logits, _ = model(batch.src, batch.src_lengths, batch.tgt_in)
        return token_loss(logits, batch.tgt_out, label_smoothing)

    @torch.no_grad()
    def validate(self, model: nn.Module, device: torch.device) -> dict:
        from ..inference.translator import Translator

        loss = valid_loss(self, model, device)
        result = {"loss": loss, "ppl": math.exp(min(loss, 50))}
        if self.cfg.train.valid_bleu:
            translator = Translator(model, self.vocabs, self.cfg, device)
            hyps = [h[0].text for h in translator.translate(self.valid_src, beam=1)]
            scores = corpus_scores(hyps, self.valid_ref)
            result.update(bleu=scores["bleu"], chrf=scores["chrf"], exact=scores["exact"])
        return result


def training_set(task: TranslationTask, trains: list[tuple[Path, float]]):
    """The training pairs: one corpus, or several weighted ones (``data.corpora``), with
    SentencePiece sampling over them when ``data.spm_alpha`` asks and pairs joined into
    long examples when ``data.join`` does."""
    d, t = task.cfg.data, task.cfg.train
    parts = [encoded(folder, Path(folder).name) for folder, _ in trains]
    data = parts[0] if len(parts) == 1 and trains[0][1] == 1.0 else \
        WeightedSet(parts, [w for _, w in trains])
    if d.spm_alpha > 0:          # (config.py refuses it for other tokenizers)
        data = SampledSegmentation(data, task.vocabs.src, task.vocabs.tgt, d.spm_alpha,
                                   t.seed, d.max_len)
    if d.join > 0:
        data = JoinedSet(data, fraction=d.join, max_k=d.join_max, seed=t.seed,
                         limit=min(d.max_len, t.max_tokens),
                         separators=(task.vocabs.src.separator(), task.vocabs.tgt.separator()))
    return data


class ClassifyTask(_Prepared):
    """Sentence classification with an encoder (``[CLS]`` = ``<s>`` + tokens + ``</s>``)."""

    name, kind = "classify", "labeled"

    def __init__(self, data: TaskData):
        super().__init__(data)
        run = data.run
        folder, self.vocabs, train, valid = data.prepare()
        self.labels = run.labels() or sorted({y for y, _ in labels_of(train)})
        if rank_and_world()[0] == 0 and not run.labels_file.is_file():
            atomic_write(run.labels_file, lambda tmp: tmp.write_text(
                json.dumps(self.labels, ensure_ascii=False)))
        d = self.cfg.data
        self.train = self._labelled(train, data.spec(folder, d.train))
        self.valid = self._labelled(valid, data.spec(folder, d.valid))

    def build_model(self) -> nn.Module:
        return build_model(self, n_labels=len(self.labels))

    def _labelled(self, folder: Path, spec: SplitSpec) -> EncodedSet:
        """``<s>`` + tokens (cut to ``max_len``); the label id is the one-token target."""
        index = {label: i for i, label in enumerate(self.labels)}
        ids = []
        for label, line in labels_of(folder):
            if label not in index:
                raise DataError(f"{spec.files[0]} line {line}: unknown label {label!r}; the "
                                f"model knows {', '.join(self.labels)}")
            ids.append(index[label])
        if not ids:
            raise UserError(f"{spec.files[0]}: no labelled lines")
        arrays = load_arrays(folder)
        return EncodedSet.from_arrays(arrays["src_flat"], arrays["src_off"],
                                      np.asarray(ids, dtype=np.int32),
                                      np.arange(len(ids) + 1, dtype=np.int64))

    def units(self, data: EncodedSet, ids: np.ndarray) -> int:
        """One loss term per sentence."""
        return len(ids)

    def loss(self, model: nn.Module, batch: Batch, label_smoothing: float) -> Tensor:
        logits = model(batch.src, batch.src_lengths)
        return F.cross_entropy(logits.float(), batch.tgt_out[:, 0],
                               label_smoothing=label_smoothing, reduction="sum")

    @torch.no_grad()
    def validate(self, model: nn.Module, device: torch.device) -> dict:
        loss = valid_loss(self, model, device)
        gold, pred = predict_labels(model, self.valid, device, self.cfg.train.max_tokens)
        return {"loss": loss, **classification_scores(gold, pred, len(self.labels))}


@torch.no_grad()
def predict_labels(model: nn.Module, data: EncodedSet, device: torch.device, max_tokens: int
                   ) -> tuple[list[int], list[int]]:
    """Gold and predicted label ids of every sentence of ``data``."""
    model.eval()
    gold, pred = [], []
    for ids in token_batches(data.src_lens, data.tgt_lens, max_tokens, shuffle=False):
        batch = data.batch(ids).to(device)
        pred += model(batch.src, batch.src_lengths).argmax(-1).tolist()
        gold += batch.tgt_out[:, 0].tolist()
    return gold, pred


class _TextTask(_Prepared):
    """Plain text, one sentence per line (the language models)."""

    kind = "text"

    def __init__(self, data: TaskData):
        super().__init__(data)
        _, self.vocabs, train, valid = data.prepare()
        d = self.cfg.data
        self.train, self.valid = encoded(train, d.train), encoded(valid, d.valid)

    def build_model(self) -> nn.Module:
        return build_model(self)

    @torch.no_grad()
    def validate(self, model: nn.Module, device: torch.device) -> dict:
        loss = valid_loss(self, model, device)
        return {"loss": loss, "ppl": math.exp(min(loss, 50))}


class LMTask(_TextTask):
    """Next-token prediction: ``<s> x1 .. xn`` -> ``x1 .. xn </s>``."""

    name = "lm"

    def units(self, data: EncodedSet, ids: np.ndarray) -> int:
        return int(data.lengths(ids)[1].sum())

    def loss(self, model: nn.Module, batch: Batch, label_smoothing: float) -> Tensor:
        return token_loss(model(batch.tgt_in), batch.tgt_out, label_smoothing)


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

    def units(self, data: EncodedSet, ids: np.ndarray) -> int:
        """The masked tokens of a batch."""
        return int(sum(max(1, round(MLM_RATE * (n - 2))) for n in data.src_lens[ids]))

    def loss(self, model: nn.Module, batch: Batch, label_smoothing: float) -> Tensor:
        generator = None if model.training else torch.Generator().manual_seed(0)
        inputs, targets = mask_tokens(batch.src.cpu(), batch.src_lengths.cpu(),
                                      len(self.vocabs.src), generator)
        logits = model(inputs.to(batch.src.device), batch.src_lengths)
        return token_loss(logits, targets.to(batch.src.device), label_smoothing)


TASKS = {task.name: task for task in (TranslationTask, ClassifyTask, MLMTask, LMTask)}
Task = TranslationTask | ClassifyTask | MLMTask | LMTask


def make_task(cfg: Config, run: RunDir, log: Callable[[str], None] = print,
              barrier: Callable[[], None] = lambda: None) -> Task:
    """The task of ``cfg``: its data folder, vocabulary and prepared splits are ready
    (``attnmt data prepare`` stops here; training goes on to build the model)."""
    kind = TASKS[cfg.data.task]
    return kind(TaskData(cfg, run, task=kind.name, kind=kind.kind, log=log, barrier=barrier))
