"""Filters on training pairs, applied while a corpus is prepared, each one counted.

``data.filter`` in a config: ``min_len`` (fewest tokens on either side), ``ratio``
(longest side over shortest, in tokens), ``copies`` (source equal to target), ``dedup``
(a pair seen before, exactly) and ``langid`` (an attnmt language-ID classifier run —
``attnmt data langid`` and ``attnmt train`` make one — must read the source as
``data.src`` and the target as ``data.tgt``). ``data.max_len`` and empty pairs are
counted as before. Duplicates are found across the whole split by an 8-byte hash of each
kept pair (8 bytes per pair held while preparing, nothing else grows with the corpus).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..symbols import BOS

COUNTS = ("copy", "short", "ratio", "langid", "duplicate")      # beside empty and long


def pair_hash(src: str, tgt: str) -> int:
    """An 8-byte fingerprint of a pair (exact duplicates share it)."""
    digest = hashlib.blake2b(f"{src}\t{tgt}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def first_occurrences(hashes: np.ndarray) -> np.ndarray:
    """A mask, True at the first pair of every fingerprint (in corpus order)."""
    _, first = np.unique(hashes, return_index=True)
    keep = np.zeros(len(hashes), dtype=bool)
    keep[first] = True
    return keep


def length_reason(n_src: int, n_tgt: int, max_len: int, min_len: int, ratio: float
                  ) -> str | None:
    """Which length rule drops a pair of ``n_src`` and ``n_tgt`` tokens (None: kept)."""
    if n_src >= max_len or n_tgt >= max_len:
        return "long"
    if min(n_src, n_tgt) < min_len:
        return "short"
    if ratio and max(n_src, n_tgt) > ratio * max(1, min(n_src, n_tgt)):
        return "ratio"
    return None


class LanguageIdentifier:
    """An attnmt classifier run that labels text with a language (its labels are language
    codes), loaded from its folder with the model code alone."""

    def __init__(self, run_dir: str | Path):
        import torch
        import yaml
        from safetensors.torch import load_model

        from ..config import config_from_dict
        from ..models import build_for_task
        from .tokenizers import Vocabs

        folder = Path(run_dir)
        labels, weights = folder / "labels.json", folder / "checkpoints" / "best.safetensors"
        if not labels.is_file() or not weights.is_file():
            raise DataError(f"data.filter.langid: {folder} is not a trained classifier run "
                            "(train one on `attnmt data langid` output)")
        cfg = config_from_dict(yaml.safe_load((folder / "config.yaml").read_text()))
        self.labels = json.loads(labels.read_text())
        self.vocab = Vocabs.load(folder / "vocab").src
        self.max_len = cfg.model.max_positions
        self.model = build_for_task("classify", cfg.model, src_vocab=len(self.vocab),
                                    tgt_vocab=len(self.vocab), n_labels=len(self.labels))
        load_model(self.model, str(weights))
        self.model.eval()
        self.torch = torch

    def __call__(self, texts: list[str]) -> list[str]:
        """The label of each text."""
        if not texts:
            return []
        torch = self.torch
        ids = [[BOS, *x][: self.max_len] for x in self.vocab.encode_batch(texts)]
        out: list[str] = []
        for start in range(0, len(ids), 256):
            chunk = ids[start:start + 256]
            lengths = torch.tensor([len(x) for x in chunk])
            batch = torch.zeros(len(chunk), int(lengths.max()), dtype=torch.long)
            for row, x in enumerate(chunk):
                batch[row, : len(x)] = torch.tensor(x)
            with torch.inference_mode():
                best = self.model(batch, lengths).argmax(-1).tolist()
            out += [self.labels[i] for i in best]
        return out

    @staticmethod
    def identity(run_dir: str | Path) -> list:
        """What a prepared corpus depends on: the classifier's weights file."""
        f = Path(run_dir) / "checkpoints" / "best.safetensors"
        st = f.stat() if f.is_file() else None
        return [str(f.resolve()), st.st_size if st else 0, st.st_mtime_ns if st else 0]
