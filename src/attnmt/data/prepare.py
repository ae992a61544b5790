"""Prepared data: a corpus encoded once into memory-mappable token arrays, kept in a cache.

The first run (or ``attnmt data prepare CONFIG``) streams a split's files once —
the corpus is never held as Python objects — encodes chunks of lines in parallel
worker processes, applies the same validation and filters as always (misaligned
files, invalid UTF-8 naming the file and line, empty and over-long pairs counted)
and writes, per side, a flat array of ``int32`` tokens (raw, ``{side}.tokens``)
and ``int64`` offsets (``{side}.offsets.npy``).

The folder is named by a key over everything that determines it: the files'
identity (path, size, modification time), the tokenizer files, the task and
``max_len``. It is written under a temporary name and renamed when complete, so a
killed preparation leaves nothing that a later run uses. Training maps the arrays
read-only: its memory does not grow with the corpus beyond the pages it touches.

Kinds of split: ``pairs`` (``{split}.{src}`` + ``{split}.{tgt}``, or one TSV or JSON
Lines file: ``data.format``), ``text`` (one file, for the language models) and
``labeled`` (``text<TAB>label`` for the classifier). A training split of pairs may also
pass ``data.filter`` (:mod:`.filters`), each rule counted in ``meta.json``.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import multiprocessing
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..symbols import BOS, PAD
from .corpus import misaligned, parse_pair
from .filters import COUNTS, LanguageIdentifier, first_occurrences, length_reason, pair_hash
from .tokenizers import Vocabs

CHUNK_LINES = 20000
FORMAT_VERSION = 2


@dataclass(frozen=True)
class SplitSpec:
    """What to prepare: the files of one split and how they become token sequences."""

    kind: str                 # pairs | text | labeled
    files: tuple[str, ...]    # one or two paths
    name: str                 # the split's name, for messages
    pack: str                 # translate | lm | mlm | classify
    max_len: int
    fmt: str = "parallel"     # pairs: parallel (two files), tsv or jsonl (one file)
    langs: tuple[str, str] = ("", "")      # pairs: the source and target language codes
    filters: tuple = ()       # pairs: data.filter as sorted (name, value) items

    @property
    def filter(self) -> dict:
        return dict(self.filters)


# ---- reading lines ---------------------------------------------------------------------------
def _lines(path: str) -> Iterator[bytes]:
    """Raw lines without the line ending (``\\n``, ``\\r\\n``); a UTF-8 BOM is dropped."""
    with open(path, "rb") as f:
        first = True
        for line in f:
            if first:
                line, first = line.removeprefix(b"\xef\xbb\xbf"), False
            yield line.rstrip(b"\n").removesuffix(b"\r")


_END = object()


def _chunks(spec: SplitSpec) -> Iterator[tuple[int, list[tuple[bytes, ...]]]]:
    """(first line number, rows) in chunks; aligned files of different lengths are an
    error naming both files and counts, whichever file ends first and wherever."""
    its = [_lines(p) for p in spec.files]
    number, rows = 1, []
    for row in zip_longest(*its, fillvalue=_END):
        if _END in row:
            done, ended = number - 1 + len(rows), row.index(_END)
            counts = [done + (i != ended) + sum(1 for _ in it) for i, it in enumerate(its)]
            raise misaligned(*spec.files, *counts)
        rows.append(row)
        if len(rows) == CHUNK_LINES:
            yield number, rows
            number, rows = number + len(rows), []
    if rows:
        yield number, rows


# ---- encoding in worker processes --------------------------------------------------------------
_VOCABS: Vocabs | None = None
_LANGID: LanguageIdentifier | None = None


def _init_worker(vocab_dir: str, langid: str | None = None) -> None:
    global _VOCABS, _LANGID
    _VOCABS = Vocabs.load(vocab_dir)
    if langid:
        import torch

        torch.set_num_threads(1)           # one per worker: the workers share the cores
        _LANGID = LanguageIdentifier(langid)


def _decode(rows: list[tuple[bytes, ...]], spec: SplitSpec, first: int) -> list[tuple[str, ...]]:
    out = []
    for k, row in enumerate(rows):
        try:
            texts = tuple(x.decode("utf-8") for x in row)
            if spec.kind == "pairs" and spec.fmt != "parallel":
                texts = parse_pair(spec.fmt, texts[0], *spec.langs, spec.files[0], first + k)
            out.append(tuple(x.strip() for x in texts))
        except UnicodeDecodeError:
            for path, x in zip(spec.files, row, strict=True):
                try:
                    x.decode("utf-8")
                except UnicodeDecodeError:
                    raise DataError(f"{path} line {first + k} is not valid UTF-8; re-encode "
                                    "the file as UTF-8") from None
    return out


def _encode_chunk(job: tuple[SplitSpec, int, list[tuple[bytes, ...]]]) -> dict:
    """Encode one chunk: flat arrays and lengths per side, and what the filters dropped."""
    spec, first, rows = job
    texts = _decode(rows, spec, first)
    src_tok = _VOCABS.src
    if spec.kind == "pairs":
        return _encode_pairs(texts, spec)
    if spec.kind == "labeled":
        kept = [_split_label(row[0], spec, first + k) for k, row in enumerate(texts)]
        kept = [x for x in kept if x is not None]
        src = [[BOS, *x][: spec.max_len] for x in src_tok.encode_batch([s for s, _, _ in kept])]
        keep, tgt, labels = range(len(kept)), [[0]] * len(kept), [[y, n] for _, y, n in kept]
    else:
        kept = [row[0] for row in texts if row[0]]
        ids = src_tok.encode_batch(kept)
        body = [x for x in ids if 0 < len(x) < spec.max_len - 1]
        keep = body
        if spec.pack == "mlm":
            src, tgt = [[BOS, *x] for x in body], [[PAD]] * len(body)
        else:
            src, tgt = [[]] * len(body), body
        labels = None
    return {"src": _flat(src), "tgt": _flat(tgt), "labels": labels,
            "empty": len(rows) - len(kept), "long": len(kept) - len(keep), "lines": len(rows)}


def _encode_pairs(texts: list[tuple[str, ...]], spec: SplitSpec) -> dict:
    """Encode a chunk of pairs through ``data.max_len`` and ``data.filter``, counting what
    each rule drops; with ``dedup``, each kept pair's fingerprint goes back to the parent
    (duplicates are found across chunks there)."""
    rules = spec.filter
    counts = dict.fromkeys(("empty", "long", *COUNTS), 0)
    kept = [(s, t) for s, t in texts if s and t]
    counts["empty"] = len(texts) - len(kept)
    if rules.get("copies"):
        pairs = [(s, t) for s, t in kept if s != t]
        counts["copy"], kept = len(kept) - len(pairs), pairs
    src = _VOCABS.src.encode_batch([s for s, _ in kept])
    tgt = _VOCABS.tgt.encode_batch([t for _, t in kept])
    keep = []
    for i in range(len(kept)):
        reason = length_reason(len(src[i]), len(tgt[i]), spec.max_len,
                               rules.get("min_len", 0), rules.get("ratio", 0))
        if reason:
            counts[reason] += 1
        else:
            keep.append(i)
    if _LANGID is not None and keep:
        said = _LANGID([kept[i][0] for i in keep] + [kept[i][1] for i in keep])
        right = [i for i, a, b in zip(keep, said[:len(keep)], said[len(keep):])
                 if (a, b) == spec.langs]
        counts["langid"], keep = len(keep) - len(right), right
    hashes = (np.array([pair_hash(*kept[i]) for i in keep], dtype=np.int64)
              if rules.get("dedup") else None)
    return {"src": _flat([src[i] for i in keep]), "tgt": _flat([tgt[i] for i in keep]),
            "labels": None, "hashes": hashes, "lines": len(texts), **counts}


def _split_label(line: str, spec: SplitSpec, number: int) -> tuple[str, str, int] | None:
    if not line.strip():
        return None
    parts = line.split("\t")
    if len(parts) != 2:
        raise DataError(f"{spec.files[0]} line {number} has {len(parts) - 1} tabs; expected "
                        "text<TAB>label")
    text, label = parts[0].strip(), parts[1].strip()
    return (text, label, number) if text and label else None


def _flat(seqs: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    flat = np.fromiter((t for s in seqs for t in s), dtype=np.int32, count=int(lengths.sum()))
    return flat, lengths


# ---- the cache -------------------------------------------------------------------------------
def cache_root(configured: str | None) -> Path:
    """``data.cache_dir``, else ``$ATTNMT_CACHE/prepared``, else ``~/.cache/attnmt/prepared``."""
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("ATTNMT_CACHE") or Path.home() / ".cache" / "attnmt"
    return Path(base) / "prepared"


def cache_key(spec: SplitSpec, vocab_dir: Path) -> str:
    """A hash of everything that determines the prepared arrays."""
    h = hashlib.sha256(json.dumps([FORMAT_VERSION, spec.kind, spec.pack, spec.max_len,
                                   spec.fmt, spec.langs, spec.filters]).encode())
    if spec.filter.get("langid"):
        h.update(json.dumps(LanguageIdentifier.identity(spec.filter["langid"])).encode())
    for f in spec.files:
        st = Path(f).stat()
        h.update(json.dumps([str(Path(f).resolve()), st.st_size, st.st_mtime_ns]).encode())
    for f in sorted(p for p in vocab_dir.iterdir() if p.name != "made_from.json"):
        h.update(f.name.encode())
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()[:24]


def prepare_split(spec: SplitSpec, vocab_dir: Path, root: Path, workers: int = 0,
                  log: Callable[[str], None] = print) -> Path:
    """The prepared folder of ``spec`` under ``root``: found in the cache, or written now
    (atomically, by ``workers`` processes; 0 = every core)."""
    folder = root / f"{spec.name}-{cache_key(spec, vocab_dir)}"
    if (folder / "meta.json").is_file():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{folder.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        info = _write_arrays(spec, vocab_dir, tmp, workers or os.cpu_count() or 1)
        (tmp / "meta.json").write_text(json.dumps(info, indent=2))
        os.replace(tmp, folder)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (folder / "meta.json").is_file():
            raise
        # another process finished the same folder first: use theirs
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"{spec.name}: prepared into {folder}")
    return folder


def _write_arrays(spec: SplitSpec, vocab_dir: Path, out: Path, workers: int) -> dict:
    counts = dict.fromkeys(("lines", "empty", "long", *COUNTS), 0)
    lens: dict[str, list[np.ndarray]] = {"src": [], "tgt": []}
    labels: list[str] = []
    hashes: list[np.ndarray] = []
    files = {side: open(out / f"{side}.tokens", "wb") for side in ("src", "tgt")}
    jobs = ((spec, first, rows) for first, rows in _chunks(spec))
    # spawn, not fork: the parent may hold threads (torch, a torchrun process group) that a
    # forked child must not inherit; the workers import only numpy and the tokenizers
    ctx = multiprocessing.get_context("spawn")
    try:
        init = (str(vocab_dir), spec.filter.get("langid"))
        with ctx.Pool(workers, initializer=_init_worker, initargs=init) as pool:
            for result in pool.imap(_encode_chunk, jobs, chunksize=1):
                for side in ("src", "tgt"):
                    result[side][0].tofile(files[side])
                    lens[side].append(result[side][1])
                labels += result["labels"] or []
                if result.get("hashes") is not None:
                    hashes.append(result["hashes"])
                for key in counts:
                    counts[key] += result.get(key, 0)
    finally:
        for f in files.values():
            f.close()
    lengths = {side: np.concatenate(lens[side]) if lens[side] else np.zeros(0, np.int64)
               for side in ("src", "tgt")}
    if spec.filter.get("dedup") and hashes:
        unique = first_occurrences(np.concatenate(hashes))
        counts["duplicate"] = int((~unique).sum())
        if counts["duplicate"]:
            for side in ("src", "tgt"):
                _compact(out / f"{side}.tokens", lengths[side], unique)
                lengths[side] = lengths[side][unique]
    for side in ("src", "tgt"):
        offsets = np.zeros(len(lengths[side]) + 1, dtype=np.int64)
        np.cumsum(lengths[side], out=offsets[1:])
        np.save(out / f"{side}.offsets.npy", offsets)
    kept = counts["lines"] - sum(counts[k] for k in ("empty", "long", *COUNTS))
    if labels:
        (out / "labels.json").write_text(json.dumps(labels, ensure_ascii=False))
    return {"split": spec.name, "kind": spec.kind, "pack": spec.pack, "files": spec.files,
            "max_len": spec.max_len, "kept": kept, **counts}


def _compact(path: Path, lengths: np.ndarray, keep: np.ndarray, rows: int = 1 << 16) -> None:
    """Rewrite a token file with only the sequences ``keep`` marks, a block of rows at a
    time (memory stays flat in the corpus size)."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    tmp = path.with_suffix(".compact")
    tokens = np.memmap(path, dtype=np.int32, mode="r") if offsets[-1] else np.zeros(0, np.int32)
    with open(tmp, "wb") as f:
        for a in range(0, len(lengths), rows):
            b = min(a + rows, len(lengths))
            block = np.asarray(tokens[offsets[a]:offsets[b]])
            mask = np.repeat(keep[a:b], lengths[a:b])
            block[mask].tofile(f)
    del tokens
    os.replace(tmp, path)


# ---- reading prepared data -------------------------------------------------------------------
def load_arrays(folder: Path) -> dict[str, np.ndarray]:
    """The prepared arrays of a folder, memory-mapped read-only. The token arrays are read
    at random (a batch's sentences lie anywhere), so the kernel is told not to read ahead
    around each one: only the pages a batch needs enter the process."""
    out = {}
    for side in ("src", "tgt"):
        path = folder / f"{side}.tokens"
        out[f"{side}_flat"] = (_random_access(np.memmap(path, dtype=np.int32, mode="r"))
                               if path.stat().st_size else np.zeros(0, np.int32))
        out[f"{side}_off"] = np.load(folder / f"{side}.offsets.npy", mmap_mode="r")
    return out


def _random_access(array: np.memmap) -> np.memmap:
    handle = getattr(array, "_mmap", None)
    if handle is not None and hasattr(mmap, "MADV_RANDOM"):
        handle.madvise(mmap.MADV_RANDOM)
    return array


def meta(folder: Path) -> dict:
    return json.loads((folder / "meta.json").read_text())


def labels_of(folder: Path) -> list[tuple[str, int]]:
    """(label, line number) of every kept line of a prepared labelled split."""
    f = folder / "labels.json"
    return [tuple(x) for x in json.loads(f.read_text())] if f.is_file() else []


# ---- a sample for the tokenizer ----------------------------------------------------------------
def sample_texts(spec: SplitSpec, size: int, seed: int) -> tuple[list[str], list[str]]:
    """Source and target texts of at most ``size`` non-empty lines (pairs) chosen uniformly
    from the whole split with ``seed`` — every line, in order, when the split is smaller.
    Two streaming passes: one counts the lines, one keeps the chosen ones."""
    for f in spec.files:
        if not Path(f).is_file():
            raise DataError(f"{f} is missing")
    n = sum(1 for _ in _lines(spec.files[0]))
    if n > size:
        chosen = np.sort(np.random.default_rng(seed).choice(n, size, replace=False))
    else:
        chosen = np.arange(n)
    src, tgt = [], []
    for first, rows in _chunks(spec):
        lo, hi = np.searchsorted(chosen, [first - 1, first - 1 + len(rows)])
        picks = chosen[lo:hi]
        for i in picks.tolist():
            j = i - (first - 1)
            row = _decode([rows[j]], spec, first + j)[0]
            if spec.kind == "labeled":
                row = (row[0].split("\t", 1)[0].strip(),)
            if all(row):
                src.append(row[0])
                tgt.append(row[-1])
    return src, (tgt if spec.kind == "pairs" else [])


FILTERED = {"copy": "as copies (source = target)", "short": "as shorter than data.filter."
            "min_len", "ratio": "for their length ratio", "langid": "as another language",
            "duplicate": "as duplicates"}


def summary(info: dict) -> str:
    """The one-line account of what preparing a split kept and skipped, rule by rule."""
    filtered = "".join(f", {info[k]} skipped {what}" for k, what in FILTERED.items()
                       if info.get(k))
    return (f"{info['split']}: {info['lines']} lines read, {info['kept']} kept, "
            f"{info['empty']} skipped as empty, {info['long']} skipped as longer than "
            f"{info['max_len']} tokens{filtered}")
