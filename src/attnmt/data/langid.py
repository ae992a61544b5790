"""Language identification over Multi30k: a real classification task built from local files.

Each Multi30k caption in de/en/fr/cs becomes ``caption<TAB>language``; the
splits follow Multi30k's own (train, val, test_2016_flickr -> test), shuffled
with a seed so that the languages are interleaved.
"""

from __future__ import annotations

import random
from pathlib import Path

from . import multi30k
from .corpus import read_lines

SPLITS = {"train": "train", "val": "val", "test": "test_2016_flickr"}


def write_langid(out_dir: str | Path, from_dir: str | Path | None = None,
                 langs: tuple[str, ...] = multi30k.LANGS, seed: int = 1, log=print) -> dict:
    """Write train/val/test.tsv (and the text alone as .txt); returns lines per split."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    source = multi30k.local_dir(from_dir)
    if source is None:
        source = out / "raw"
        for lang in langs[1:]:
            multi30k.fetch(langs[0], lang, source, log=log)
    counts = {}
    for split, name in SPLITS.items():
        rows = []
        for lang in langs:
            lines = read_lines(source / f"{name}.{lang}")
            kept = [" ".join(line.split()) for line in lines if line.strip()]  # tabs -> spaces
            if len(kept) < len(lines):
                log(f"note: {len(lines) - len(kept)} empty line(s) of {name}.{lang} skipped")
            rows += [f"{text}\t{lang}" for text in kept]
        random.Random(f"{seed}-{split}").shuffle(rows)
        (out / f"{split}.tsv").write_text("".join(r + "\n" for r in rows), encoding="utf-8")
        (out / f"{split}.txt").write_text("".join(r.split("\t")[0] + "\n" for r in rows),
                                          encoding="utf-8")       # raw text for MLM
        counts[split] = len(rows)
    return counts
