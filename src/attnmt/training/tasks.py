"""Tasks: what the one training loop needs to know about a kind of problem.

A task reads and tokenises its data, builds its model, computes the summed
loss of a batch and validates. The loop (``train.py``) is the same for all:

- ``translate``: sentence pairs -> a sequence-to-sequence model (the default)
- ``classify``:  ``text<TAB>label`` -> encoder-only classifier (BERT-style)
- ``mlm``:       plain text -> masked-language-model pre-training of that encoder
- ``lm``:        plain text -> decoder-only language model (GPT-style)

Under ``torchrun`` rank 0 creates the data folder and the vocabulary; the other
ranks wait at a barrier and read them.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import Config
from ..data.batching import Batch, EncodedSet, token_batches
from ..data.corpus import check_splits_aligned
from ..data.prepare import (
    SplitSpec,
    cache_root,
    labels_of,
    load_arrays,
    meta,
    prepare_split,
    sample_texts,
    summary,
)
from ..data.registry import read_split, resolve_dir
from ..data.tokenizers import Vocabs
from ..errors import DataError, UserError
from ..inference.metrics import classification_scores, corpus_scores
from ..models import build_for_task
from ..models.loss import token_loss
from ..rundir import RunDir, atomic_write
from ..symbols import PAD, SPECIALS, UNK
from .runtime import rank_and_world as _rank_world

MLM_RATE = 0.15
MASK = UNK  # the [MASK] symbol; SentencePiece with full character coverage has no <unk> in text


class Task:
    """Base: subclasses read their data in ``__init__`` (filling ``vocabs``, ``train`` and
    ``valid``) and define :meth:`loss` and :meth:`validate`."""

    name = ""
    vocabs: Vocabs
    train: EncodedSet
    valid: EncodedSet

    def __init__(self, cfg: Config, run: RunDir, log: Callable[[str], None] = print,
                 barrier: Callable[[], None] = lambda: None):
        self.cfg, self.run, self.log, self.barrier = cfg, run, log, barrier
        self.prepared_folders: dict[str, str] = {}     # split -> prepared data it used

    # ---- data and vocabulary, shared by every task --------------------------------------
    def data_folder(self):
        """The folder of the split files; rank 0 fetches or generates it first."""
        if _rank_world()[0] == 0:
            folder = resolve_dir(self.cfg.data, self.run.path / "data", log=self.log)
        self.barrier()
        if _rank_world()[0] != 0:
            folder = resolve_dir(self.cfg.data, self.run.path / "data", log=self.log)
        return folder

    def vocabulary(self, folder: Path, train: SplitSpec) -> Vocabs:
        """The run's vocabulary (rank 0 makes it, the others wait and read it).

        A vocabulary already in the run directory is kept when the run has a checkpoint
        (its weights are indexed by it) or when it was made from this run's data and
        settings (``vocab/made_from.json``); any other is replaced, so a failed start with
        other data never leaks its vocabulary into the next run."""
        run = self.run
        request = vocab_request(self.cfg, folder)
        if _rank_world()[0] == 0 and not self._vocab_fits(request):
            if Vocabs.exists(run.vocab_dir):
                self.log(f"{run.vocab_dir} was not made from this run's data and settings; "
                         "making a new vocabulary")
                shutil.rmtree(run.vocab_dir)
            if self.cfg.train.init_from:
                _inherit_vocab(RunDir(self.cfg.train.init_from), run, self.log)
            else:
                d = self.cfg.data
                src_texts, tgt_texts = sample_texts(train, d.sample_size, self.cfg.train.seed)
                Vocabs.train(d.tokenizer, src_texts, tgt_texts, d.vocab_size,
                             d.joint_vocab or d.task != "translate", d.spm_type
                             ).save(run.vocab_dir)
            write_vocab_request(run, request)
        self.barrier()
        return Vocabs.load(run.vocab_dir)

    def check_aligned(self, folder: Path) -> None:
        """The aligned files of every split (train, valid, test) end together: checked
        before the vocabulary or any prepared data is written."""
        d = self.cfg.data
        if self.spec(folder, d.train).kind == "pairs":
            check_splits_aligned(folder, (d.train, d.valid, d.test), d.src, d.tgt)

    def spec(self, folder: Path, split: str) -> SplitSpec:
        """How a split of this task's data is read and packed."""
        d = self.cfg.data
        if self.name == "translate":
            return SplitSpec("pairs", (str(folder / f"{split}.{d.src}"),
                                       str(folder / f"{split}.{d.tgt}")), split, "translate",
                             d.max_len)
        if self.name == "classify":
            return SplitSpec("labeled", (str(folder / f"{split}.tsv"),), split, "classify",
                             d.max_len)
        return SplitSpec("text", (str(folder / f"{split}.{d.src}"),), split, self.name,
                         d.max_len)

    def prepared(self, spec: SplitSpec) -> Path:
        """The split's prepared arrays: rank 0 prepares them (or finds them in the cache),
        the other ranks wait, then map the same files."""
        for f in spec.files:
            if not Path(f).is_file():
                raise DataError(f"{f} is missing")
        d = self.cfg.data
        args = (spec, self.run.vocab_dir, cache_root(d.cache_dir), d.workers)
        folder = prepare_split(*args, log=self.log) if _rank_world()[0] == 0 else None
        self.barrier()
        folder = folder or prepare_split(*args, log=self.log)     # a cache hit on rank > 0
        self.log(summary(meta(folder)))
        self.prepared_folders[spec.name] = str(folder)
        return folder

    def load_splits(self) -> Path:
        """The data folder, the vocabulary and the prepared train/valid sets; the folder."""
        d = self.cfg.data
        folder = self.data_folder()
        self.check_aligned(folder)
        self.vocabs = self.vocabulary(folder, self.spec(folder, d.train))
        self.train = self.encoded(self.spec(folder, d.train))
        self.valid = self.encoded(self.spec(folder, d.valid))
        return folder

    def encoded(self, spec: SplitSpec) -> EncodedSet:
        folder = self.prepared(spec)
        if not meta(folder)["kept"]:
            raise UserError(f"{spec.name}: no lines left after filtering")
        return EncodedSet.from_arrays(**load_arrays(folder))

    def _vocab_fits(self, request: dict) -> bool:
        if not Vocabs.exists(self.run.vocab_dir):
            return False
        if self.run.steps():          # a trained run keeps the vocabulary its weights use
            return True
        stamp = self.run.vocab_dir / VOCAB_REQUEST
        return stamp.is_file() and json.loads(stamp.read_text()) == request

    # ---- what the loop calls ------------------------------------------------------------
    @property
    def n_labels(self) -> int:
        return 0

    def build_model(self) -> nn.Module:
        return build_for_task(self.name, self.cfg.model, src_vocab=len(self.vocabs.src),
                              tgt_vocab=len(self.vocabs.tgt), joint_vocab=self.vocabs.joint,
                              n_labels=self.n_labels)

    def units(self, ids: np.ndarray) -> int:
        """How many loss terms a training batch contributes (the loss is normalised by
        their sum over the update)."""
        return int(self.train.tgt_lens[ids].sum())

    def valid_units(self, ids: np.ndarray) -> int:
        """The same for a validation batch."""
        return int(self.valid.tgt_lens[ids].sum())

    def loss(self, model: nn.Module, batch: Batch, label_smoothing: float) -> Tensor:
        raise NotImplementedError

    def validate(self, model: nn.Module, device: torch.device) -> dict:
        raise NotImplementedError

    def valid_loss(self, model: nn.Module, device: torch.device) -> float:
        """Mean validation loss per unit."""
        model.eval()
        loss, units = 0.0, 0
        for ids in token_batches(self.valid.src_lens, self.valid.tgt_lens,
                                 self.cfg.train.max_tokens, shuffle=False):
            loss += float(self.loss(model, self.valid.batch(ids).to(device), 0.0))
            units += self.valid_units(ids)
        return loss / max(1, units)


VOCAB_REQUEST = "made_from.json"


def vocab_request(cfg: Config, folder: Path) -> dict:
    """What determines a run's vocabulary: the tokenizer settings and the identity (name,
    size, modification time) of the training files, or the run it is inherited from."""
    d = cfg.data
    if cfg.train.init_from:
        return {"init_from": str(Path(cfg.train.init_from).resolve())}
    files = sorted(p for p in Path(folder).glob(f"{d.train}.*") if p.is_file())
    return {"task": d.task, "tokenizer": d.tokenizer, "vocab_size": d.vocab_size,
            "joint": d.joint_vocab or d.task != "translate", "spm_type": d.spm_type,
            "src": d.src, "tgt": d.tgt,
            "files": [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns]
                      for p in files]}


def write_vocab_request(run: RunDir, request: dict) -> None:
    atomic_write(run.vocab_dir / VOCAB_REQUEST, lambda tmp: tmp.write_text(
        json.dumps(request, sort_keys=True)))


def _inherit_vocab(source: RunDir, run: RunDir, log: Callable[[str], None]) -> None:
    """A run fine-tuned from another must read tokens with that run's vocabulary: the
    embeddings it inherits are indexed by it."""
    if not Vocabs.exists(source.vocab_dir):
        raise UserError(f"train.init_from: {source.path} holds no vocabulary; point it at a "
                        "finished attnmt run directory")
    shutil.copytree(source.vocab_dir, run.vocab_dir, dirs_exist_ok=True)
    log(f"vocabulary taken from {source.path} (train.init_from)")


class TranslationTask(Task):
    name = "translate"

    def __init__(self, cfg: Config, run: RunDir, log: Callable[[str], None] = print,
                 barrier: Callable[[], None] = lambda: None):
        super().__init__(cfg, run, log, barrier)
        d = cfg.data
        folder = self.load_splits()
        valid = read_split(folder, d.valid, d.src, d.tgt)       # texts for validation BLEU
        n = cfg.train.valid_max_sentences or len(valid.src)
        self.valid_src, self.valid_ref = valid.src[:n], valid.tgt[:n]

    def loss(self, model: nn.Module, batch: Batch, label_smoothing: float) -> Tensor:
        logits, _ = model(batch.src, batch.src_lengths, batch.tgt_in)
        return token_loss(logits, batch.tgt_out, label_smoothing)

    @torch.no_grad()
    def validate(self, model: nn.Module, device: torch.device) -> dict:
        from ..inference.translator import Translator

        loss = self.valid_loss(model, device)
        result = {"loss": loss, "ppl": math.exp(min(loss, 50))}
        if self.cfg.train.valid_bleu:
            translator = Translator(model, self.vocabs, self.cfg, device)
            hyps = [h[0].text for h in translator.translate(self.valid_src, beam=1)]
            scores = corpus_scores(hyps, self.valid_ref)
            result.update(bleu=scores["bleu"], chrf=scores["chrf"], exact=scores["exact"])
        return result


class ClassifyTask(Task):
    """Sentence classification with an encoder (``[CLS]`` = ``<s>`` + tokens + ``</s>``)."""

    name = "classify"

    def __init__(self, cfg: Config, run: RunDir, log: Callable[[str], None] = print,
                 barrier: Callable[[], None] = lambda: None):
        super().__init__(cfg, run, log, barrier)
        d = cfg.data
        folder = self.data_folder()
        train_spec, valid_spec = self.spec(folder, d.train), self.spec(folder, d.valid)
        self.vocabs = self.vocabulary(folder, train_spec)
        train_folder, valid_folder = self.prepared(train_spec), self.prepared(valid_spec)
        self.labels = run.labels() or sorted({y for y, _ in labels_of(train_folder)})
        if _rank_world()[0] == 0 and not run.labels_file.is_file():
            atomic_write(run.labels_file, lambda tmp: tmp.write_text(
                json.dumps(self.labels, ensure_ascii=False)))
        self.train = self._labelled(train_folder, train_spec)
        self.valid = self._labelled(valid_folder, valid_spec)

    @property
    def n_labels(self) -> int:
        return len(self.labels)

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

    def units(self, ids: np.ndarray) -> int:
        return len(ids)

    def valid_units(self, ids: np.ndarray) -> int:
        return len(ids)

    def loss(self, model: nn.Module, batch: Batch, label_smoothing: float) -> Tensor:
        logits = model(batch.src, batch.src_lengths)
        return F.cross_entropy(logits.float(), batch.tgt_out[:, 0],
                               label_smoothing=label_smoothing, reduction="sum")

    @torch.no_grad()
    def validate(self, model: nn.Module, device: torch.device) -> dict:
        loss = self.valid_loss(model, device)
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


class _TextTask(Task):
    """Plain text, one sentence per line (the language models)."""

    def __init__(self, cfg: Config, run: RunDir, log: Callable[[str], None] = print,
                 barrier: Callable[[], None] = lambda: None):
        super().__init__(cfg, run, log, barrier)
        self.load_splits()

    @torch.no_grad()
    def validate(self, model: nn.Module, device: torch.device) -> dict:
        loss = self.valid_loss(model, device)
        return {"loss": loss, "ppl": math.exp(min(loss, 50))}


class LMTask(_TextTask):
    """Next-token prediction: ``<s> x1 .. xn`` -> ``x1 .. xn </s>``."""

    name = "lm"

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


def _masked_count(src_lens: np.ndarray) -> int:
    return int(sum(max(1, round(MLM_RATE * (n - 2))) for n in src_lens))


class MLMTask(_TextTask):
    """Masked-language-model pre-training of the encoder (Devlin et al. 2019, §3.1).

    Inputs look exactly like the classifier's (``<s> x1 .. xn </s>``), so a
    classifier fine-tuned from this run (``train.init_from``) starts from them.
    """

    name = "mlm"

    def units(self, ids: np.ndarray) -> int:
        return _masked_count(self.train.src_lens[ids])

    def valid_units(self, ids: np.ndarray) -> int:
        return _masked_count(self.valid.src_lens[ids])

    def loss(self, model: nn.Module, batch: Batch, label_smoothing: float) -> Tensor:
        generator = None if model.training else torch.Generator().manual_seed(0)
        inputs, targets = mask_tokens(batch.src.cpu(), batch.src_lengths.cpu(),
                                      len(self.vocabs.src), generator)
        logits = model(inputs.to(batch.src.device), batch.src_lengths)
        return token_loss(logits, targets.to(batch.src.device), label_smoothing)


TASKS = {task.name: task for task in (TranslationTask, ClassifyTask, MLMTask, LMTask)}


def make_task(cfg: Config, run: RunDir, log: Callable[[str], None] = print,
              barrier: Callable[[], None] = lambda: None) -> Task:
    """The task of ``cfg``: its data folder, vocabulary and prepared splits are ready
    (``attnmt data prepare`` stops here; training goes on to build the model)."""
    return TASKS[cfg.data.task](cfg, run, log, barrier)
