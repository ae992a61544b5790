"""Parallel corpora: read, validate and filter aligned text.

Two aligned files (``train.de`` + ``train.en``), one TSV (``src<TAB>tgt``) or one JSON
Lines file (``{"de": ..., "en": ...}`` per line, or under ``"translation"`` as Hugging
Face datasets write it) — ``data.format`` parallel, tsv or jsonl.
Misaligned files, invalid UTF-8 and malformed TSV lines are errors that name the
file and line. Empty pairs and over-long lines are skipped *by rule* and
counted in a one-line summary, so nothing is dropped silently.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from ..textio import read_utf8


@dataclass
class Corpus:
    """Aligned source/target sentences plus what filtering removed."""

    src: list[str]
    tgt: list[str]
    name: str = ""
    skipped_empty: int = 0
    skipped_long: int = 0
    line_numbers: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.src)

    def summary(self, limit: str = "the limit") -> str:
        """One line: pairs read, kept, and skipped by each rule (``limit`` names the length
        limit, e.g. "100 tokens")."""
        total = len(self) + self.skipped_empty + self.skipped_long
        return (f"{self.name}: {total} pairs read, {len(self)} kept, "
                f"{self.skipped_empty} skipped as empty, "
                f"{self.skipped_long} skipped as longer than {limit}")


def read_lines(path: str | Path) -> list[str]:
    """All lines of a UTF-8 file without line endings; bad bytes raise with the line number."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist")
    text = read_utf8(path)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def count_lines(path: str | Path, block: int = 1 << 24) -> int:
    """The number of lines of a file as :func:`read_lines` and the streaming reader see them
    (a last line without a newline counts), read in blocks: no line is held in memory."""
    n, last = 0, b"\n"
    with open(path, "rb") as f:
        while chunk := f.read(block):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (last != b"\n")


def misaligned(src_path: str | Path, tgt_path: str | Path, n_src: int, n_tgt: int) -> DataError:
    """The one error for aligned files of different lengths: both files, both counts."""
    return DataError(f"{src_path} has {n_src} lines but {tgt_path} has {n_tgt}; aligned "
                     "files must have the same number of lines")


def check_aligned(src_path: str | Path, tgt_path: str | Path) -> None:
    """Raise :func:`misaligned` unless the two files have the same number of lines."""
    n_src, n_tgt = count_lines(src_path), count_lines(tgt_path)
    if n_src != n_tgt:
        raise misaligned(src_path, tgt_path, n_src, n_tgt)


def check_splits_aligned(folder: str | Path, splits: tuple[str, ...], src: str, tgt: str
                         ) -> None:
    """Every split of ``splits`` whose two files are in ``folder`` is aligned: checked by
    counting lines, before anything reads, encodes or writes the data."""
    for split in dict.fromkeys(splits):
        pair = Path(folder) / f"{split}.{src}", Path(folder) / f"{split}.{tgt}"
        if all(p.is_file() for p in pair):
            check_aligned(*pair)


def _filter(src: list[str], tgt: list[str], name: str, max_len: int,
            length: Callable[[str], int]) -> Corpus:
    corpus = Corpus([], [], name=name)
    for i, (s, t) in enumerate(zip(src, tgt, strict=True), start=1):
        s, t = s.strip(), t.strip()
        if not s or not t:
            corpus.skipped_empty += 1
        elif length(s) > max_len or length(t) > max_len:
            corpus.skipped_long += 1
        else:
            corpus.src.append(s)
            corpus.tgt.append(t)
            corpus.line_numbers.append(i)
    return corpus


def _words(text: str) -> int:
    return len(text.split())


def read_parallel(src_path: str | Path, tgt_path: str | Path, max_len: int = 10**9,
                  length: Callable[[str], int] = _words) -> Corpus:
    """Read two aligned files; different line counts are an error naming both."""
    src, tgt = read_lines(src_path), read_lines(tgt_path)
    if len(src) != len(tgt):
        raise misaligned(src_path, tgt_path, len(src), len(tgt))
    return _filter(src, tgt, f"{Path(src_path).stem}", max_len, length)


FORMATS = ("parallel", "tsv", "jsonl")


def split_files(folder: str | Path, stem: str, fmt: str, src: str, tgt: str
                ) -> tuple[Path, ...]:
    """The file(s) of one split (or corpus) ``stem`` in ``fmt``: two aligned files, or one."""
    folder = Path(folder)
    if fmt == "parallel":
        return folder / f"{stem}.{src}", folder / f"{stem}.{tgt}"
    return (folder / f"{stem}.{fmt}",)


def parse_pair(fmt: str, line: str, src: str, tgt: str, path: str | Path, number: int
               ) -> tuple[str, str]:
    """(source, target) of one line of a TSV or JSON Lines file; a blank line is an empty
    pair; a malformed line is an error naming the file and line."""
    if not line.strip():
        return "", ""
    if fmt == "tsv":
        parts = line.split("\t")
        if len(parts) != 2:
            raise DataError(f"{path} line {number} has {len(parts)} fields; expected "
                            "source<TAB>target")
        return parts[0], parts[1]
    try:
        row = json.loads(line)
    except ValueError:
        raise DataError(f"{path} line {number} is not valid JSON") from None
    pair = row.get("translation", row) if isinstance(row, dict) else None
    if not isinstance(pair, dict) or not isinstance(pair.get(src), str) or \
            not isinstance(pair.get(tgt), str):
        raise DataError(f"{path} line {number} has no {src!r} and {tgt!r} text fields "
                        f"(expected {{\"{src}\": ..., \"{tgt}\": ...}})")
    return pair[src], pair[tgt]


def read_tsv(path: str | Path, max_len: int = 10**9,
             length: Callable[[str], int] = _words) -> Corpus:
    """Read ``source<TAB>target`` lines; a line without exactly one tab is an error."""
    return _read_one_file(path, "tsv", "", "", max_len, length)


def _read_one_file(path: str | Path, fmt: str, src_lang: str, tgt_lang: str, max_len: int,
                   length: Callable[[str], int]) -> Corpus:
    pairs = [parse_pair(fmt, line, src_lang, tgt_lang, path, i)
             for i, line in enumerate(read_lines(path), start=1)]
    return _filter([s for s, _ in pairs], [t for _, t in pairs], Path(path).stem, max_len,
                   length)


def read_pairs(folder: str | Path, stem: str, fmt: str, src: str, tgt: str) -> Corpus:
    """Read one split in ``data.format`` (see :func:`split_files`)."""
    files = split_files(folder, stem, fmt, src, tgt)
    if fmt == "parallel":
        return read_parallel(*files)
    return _read_one_file(files[0], fmt, src, tgt, 10**9, _words)


def write_parallel(out_dir: str | Path, split: str, src_lang: str, tgt_lang: str,
                   pairs: list[tuple[str, str]]) -> None:
    """Write ``{split}.{src_lang}`` and ``{split}.{tgt_lang}``, one sentence per line."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{split}.{src_lang}").write_text("".join(s + "\n" for s, _ in pairs),
                                             encoding="utf-8")
    (out / f"{split}.{tgt_lang}").write_text("".join(t + "\n" for _, t in pairs),
                                             encoding="utf-8")


def read_text(folder: str | Path, split: str, lang: str) -> Corpus:
    """Plain text ``{split}.{lang}``, one sentence per line; empty lines are counted."""
    lines = read_lines(Path(folder) / f"{split}.{lang}")
    kept = [x.strip() for x in lines if x.strip()]
    return Corpus(kept, kept, name=split, skipped_empty=len(lines) - len(kept))


def label_ids(corpus: Corpus, labels: list[str], path: str | Path) -> list[int]:
    """The index of every line's label in ``labels``; an unknown label names its line."""
    index = {label: i for i, label in enumerate(labels)}
    out = []
    for line, label in zip(corpus.line_numbers or range(1, len(corpus) + 1), corpus.tgt):
        if label not in index:
            raise DataError(f"{path} line {line}: unknown label {label!r}; the model "
                            f"knows {', '.join(labels)}")
        out.append(index[label])
    return out
