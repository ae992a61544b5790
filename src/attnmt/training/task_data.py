"""A task's data, shared by every task: the data folder, the vocabulary and the prepared
splits, made once on rank 0 under ``torchrun`` while the other ranks wait and read them.

A task holds one :class:`TaskData` and says only how its split files look
(``kind``: sentence pairs, labelled lines or plain text) and how a prepared split becomes
the arrays it trains on.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from ..config import Config
from ..data.batching import EncodedSet
from ..data.corpus import check_aligned, split_files
from ..data.prepare import (
    SplitSpec,
    cache_root,
    load_arrays,
    meta,
    prepare_split,
    sample_texts,
    summary,
)
from ..data.registry import resolve_dir
from ..data.tokenizers import Vocabs
from ..errors import DataError, UserError
from ..rundir import RunDir, atomic_write
from .runtime import rank_and_world

VOCAB_REQUEST = "made_from.json"


class TaskData:
    """The data of one run for a task whose split files are of ``kind`` (``pairs``,
    ``labeled`` or ``text``)."""

    def __init__(self, cfg: Config, run: RunDir, *, task: str, kind: str,
                 log: Callable[[str], None] = print, barrier: Callable[[], None] = lambda: None):
        self.cfg, self.run, self.task, self.kind = cfg, run, task, kind
        self.log, self.barrier = log, barrier
        self.prepared_folders: dict[str, str] = {}     # split -> prepared data it used
        self.prepared_counts: dict[str, dict] = {}     # split -> what its filters kept

    def prepare(self) -> tuple[Path, Vocabs, Path, Path]:
        """The data folder, the vocabulary and the prepared train and valid folders (a task
        without ``data.corpora``)."""
        folder, vocabs, trains, valid = self.prepare_weighted()
        return folder, vocabs, trains[0][0], valid

    def prepare_weighted(self) -> tuple[Path, Vocabs, list[tuple[Path, float]], Path]:
        """The data folder, the vocabulary, every training corpus's prepared folder with its
        sampling weight (``data.corpora``; else the train split, weight 1) and the prepared
        valid folder. Alignment is checked before the vocabulary or any prepared data is
        written."""
        d = self.cfg.data
        folder = self.folder()
        trains = self.train_specs(folder)
        valid = self.spec(folder, d.valid)
        if self.kind == "pairs":
            for spec in [s for s, _ in trains] + [valid, self.spec(folder, d.test)]:
                if len(spec.files) == 2 and all(Path(f).is_file() for f in spec.files):
                    check_aligned(*spec.files)
        vocabs = self.vocabulary(folder, [s for s, _ in trains])
        return (folder, vocabs, [(self.prepared(s), w) for s, w in trains],
                self.prepared(valid))

    def train_specs(self, folder: Path) -> list[tuple[SplitSpec, float]]:
        """The training corpora: ``data.corpora`` (file stems relative to the data folder,
        each with its weight, the config's filters on each), or the train split."""
        return [(self.spec(folder, stem, training=True), weight)
                for stem, weight in corpus_stems(self.cfg)]

    def folder(self) -> Path:
        """The folder of the split files; rank 0 fetches or generates it first."""
        if rank_and_world()[0] == 0:
            folder = resolve_dir(self.cfg.data, self.run.path / "data", log=self.log)
        self.barrier()
        if rank_and_world()[0] != 0:
            folder = resolve_dir(self.cfg.data, self.run.path / "data", log=self.log)
        return folder

    def spec(self, folder: Path, split: str, training: bool = False) -> SplitSpec:
        """How a split of this task's data is read and packed; a training split of pairs
        passes ``data.filter`` too."""
        d = self.cfg.data
        if self.kind != "pairs":
            files = {"labeled": (f"{split}.tsv",), "text": (f"{split}.{d.src}",)}[self.kind]
            return SplitSpec(self.kind, tuple(str(folder / f) for f in files), split,
                             self.task, d.max_len)
        files = split_files(folder, split, d.format, d.src, d.tgt)
        filters = tuple(sorted(d.filter.items())) if training else ()
        return SplitSpec(self.kind, tuple(str(f) for f in files), Path(split).name, self.task,
                         d.max_len, fmt=d.format, langs=(d.src, d.tgt), filters=filters)

    def vocabulary(self, folder: Path, trains: list[SplitSpec]) -> Vocabs:
        """The run's vocabulary (rank 0 makes it, the others wait and read it).

        A vocabulary already in the run directory is kept when the run has a checkpoint
        (its weights are indexed by it) or when it was made from this run's data and
        settings (``vocab/made_from.json``); any other is replaced, so a failed start with
        other data never leaks its vocabulary into the next run."""
        run, cfg = self.run, self.cfg
        request = vocab_request(cfg, folder)
        if rank_and_world()[0] == 0 and not self._vocab_fits(request):
            if Vocabs.exists(run.vocab_dir):
                self.log(f"{run.vocab_dir} was not made from this run's data and settings; "
                         "making a new vocabulary")
                shutil.rmtree(run.vocab_dir)
            if cfg.train.init_from:
                _inherit_vocab(RunDir(cfg.train.init_from), run, self.log)
            else:
                d = cfg.data
                src_texts, tgt_texts = [], []
                for spec in trains:           # an equal share of the sample from each corpus
                    s, t = sample_texts(spec, d.sample_size // len(trains), cfg.train.seed)
                    src_texts, tgt_texts = src_texts + s, tgt_texts + t
                Vocabs.train(d.tokenizer, src_texts, tgt_texts, d.vocab_size,
                             d.joint_vocab or d.task != "translate", d.spm_type
                             ).save(run.vocab_dir)
            write_vocab_request(run.vocab_dir, request)
        self.barrier()
        return Vocabs.load(run.vocab_dir)

    def prepared(self, spec: SplitSpec) -> Path:
        """The split's prepared arrays: rank 0 prepares them (or finds them in the cache),
        the other ranks wait, then map the same files."""
        for f in spec.files:
            if not Path(f).is_file():
                raise DataError(f"{f} is missing")
        d = self.cfg.data
        args = (spec, self.run.vocab_dir, cache_root(d.cache_dir), d.workers)
        folder = prepare_split(*args, log=self.log) if rank_and_world()[0] == 0 else None
        self.barrier()
        folder = folder or prepare_split(*args, log=self.log)     # a cache hit on rank > 0
        info = meta(folder)
        self.log(summary(info))
        self.prepared_folders[spec.name] = str(folder)
        self.prepared_counts[spec.name] = {k: v for k, v in info.items()
                                           if isinstance(v, int) and k != "max_len"}
        return folder

    def _vocab_fits(self, request: dict) -> bool:
        if not Vocabs.exists(self.run.vocab_dir):
            return False
        if self.run.steps():          # a trained run keeps the vocabulary its weights use
            return True
        stamp = self.run.vocab_dir / VOCAB_REQUEST
        return stamp.is_file() and json.loads(stamp.read_text()) == request


def encoded(folder: Path, name: str) -> EncodedSet:
    """A prepared split as the arrays a task trains on; an empty one is an error."""
    if not meta(folder)["kept"]:
        raise UserError(f"{name}: no lines left after filtering")
    return EncodedSet.from_arrays(**load_arrays(folder))


def corpus_stems(cfg: Config) -> list[tuple[str, float]]:
    """The training corpora's file stems with their weights: ``data.corpora`` (translate),
    else the train split alone."""
    d = cfg.data
    if d.corpora and d.task == "translate":
        return [(c["path"], float(c.get("weight", 1.0))) for c in d.corpora]
    return [(d.train, 1.0)]


def vocab_request(cfg: Config, folder: Path) -> dict:
    """What determines a run's vocabulary: the tokenizer settings and the identity (name,
    size, modification time) of the training files, or the run it is inherited from."""
    d = cfg.data
    if cfg.train.init_from:
        return {"init_from": str(Path(cfg.train.init_from).resolve())}
    files = sorted(p for stem, _ in corpus_stems(cfg)
                   for p in (Path(folder) / stem).parent.glob(f"{Path(stem).name}.*")
                   if p.is_file())
    return {"task": d.task, "tokenizer": d.tokenizer, "vocab_size": d.vocab_size,
            "joint": d.joint_vocab or d.task != "translate", "spm_type": d.spm_type,
            "src": d.src, "tgt": d.tgt,
            "files": [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns]
                      for p in files]}


def write_vocab_request(vocab_dir: Path, request: dict) -> None:
    """Record what a vocabulary was made from (:func:`vocab_request`), next to it."""
    atomic_write(Path(vocab_dir) / VOCAB_REQUEST, lambda tmp: tmp.write_text(
        json.dumps(request, sort_keys=True)))


def _inherit_vocab(source: RunDir, run: RunDir, log: Callable[[str], None]) -> None:
    """A run fine-tuned from another must read tokens with that run's vocabulary: the
    embeddings it inherits are indexed by it."""
    if not Vocabs.exists(source.vocab_dir):
        raise UserError(f"train.init_from: {source.path} holds no vocabulary; point it at a "
                        "finished attnmt run directory")
    shutil.copytree(source.vocab_dir, run.vocab_dir, dirs_exist_ok=True)
    log(f"vocabulary taken from {source.path} (train.init_from)")
