"""``attnmt data stats``: sizes and length histograms of a folder's text files.

Files are read one line at a time, so a corpus of millions of lines is never held
in memory. Aligned files of one split (``train.de`` / ``train.en``) whose line
counts differ are reported as misaligned, with both counts, as training would.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from ..errors import DataError

SKIPPED_SUFFIXES = (".json", ".model", ".yaml")


def _length_counts(path: Path) -> Counter:
    """How many lines have each length in words; bad UTF-8 names the line."""
    counts: Counter = Counter()
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise DataError(f"{path} line {number} is not valid UTF-8; re-encode the file "
                                "as UTF-8") from None
            counts[len(line.split())] += 1
    return counts


def _histogram(counts: Counter, bars: int = 8) -> list[str]:
    lengths = np.array(sorted(counts), dtype=int)
    weights = np.array([counts[n] for n in lengths])
    edges = np.unique(np.linspace(0, max(1, lengths.max()), bars + 1).astype(int))
    hist, edges = np.histogram(lengths, bins=edges, weights=weights)
    top = max(1, hist.max())
    return [f"  {lo:>4}-{hi:<4} {'#' * int(40 * c / top):<40} {int(c)}"
            for c, lo, hi in zip(hist, edges[:-1], edges[1:])]


def folder_stats(folder: str | Path) -> tuple[list[str], list[str]]:
    """The report (one line per string) and the problems found: one line for each split
    whose aligned files have different line counts."""
    files = sorted(p for p in Path(folder).iterdir()
                   if p.is_file() and p.suffix not in SKIPPED_SUFFIXES)
    if not files:
        raise DataError(f"{folder} holds no text files")
    lines, sizes = [], {}
    for path in files:
        counts = _length_counts(path)
        n = sum(counts.values())
        sizes[path] = n
        total = sum(length * c for length, c in counts.items())
        lines.append(f"{path.name}: {n} lines, {counts.get(0, 0)} empty, words min "
                     f"{min(counts, default=0)} mean {total / max(1, n):.1f} max "
                     f"{max(counts, default=0)}")
        if n:
            lines += _histogram(counts)
    return lines, _misaligned(sizes)


def _misaligned(sizes: dict[Path, int]) -> list[str]:
    by_split: dict[str, list[Path]] = {}
    for path in sizes:
        if path.suffix != ".tsv":
            by_split.setdefault(path.stem, []).append(path)
    out = []
    for paths in by_split.values():
        if len({sizes[p] for p in paths}) > 1:
            shown = ", ".join(f"{p.name} has {sizes[p]}" for p in paths)
            out.append(f"misaligned split: {shown} lines; aligned files must have the same "
                       "number of lines")
    return out
