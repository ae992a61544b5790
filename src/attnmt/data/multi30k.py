"""The Multi30k dataset (task 1: de/en/fr/cs image captions, aligned by line).

Real users get the raw files downloaded once from the dataset's public
repository, checked (SHA-256 of the text, or the known line count) and cached
under ``~/.cache/attnmt/multi30k``. A local folder takes precedence: ``--from
DIR`` or the environment variable ``ATTNMT_DATA_DIR`` (pointing at the folder
itself or at a parent holding ``multi30k/``). Machines without internet use that.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import urllib.request
from pathlib import Path

from ..errors import DataError

LANGS = ("de", "en", "fr", "cs")
REQUIRED = ("train", "val")
TESTS = ("test_2016_flickr", "test_2017_flickr", "test_2017_mscoco", "test_2018_flickr")
URL = "https://github.com/multi30k/dataset/raw/master/data/task1/raw/{name}.gz"

# SHA-256 of the decompressed text files.
SHA256 = {
    "train.de": "2c2b73fd2b548fbcde3a875e0a78d6ee94d498bfdee6bd3eae3945779e9ddf72",
    "train.en": "460a15fbd157e34a7a9957ee388c1ca247fe47af3ef25fb50442af6c274e0fc6",
    "train.fr": "5925a3c18f1587b6b54b87743106e6e8ab93618edb6f65d19eac0621f853a10d",
    "train.cs": "2be68b38c8d586ff4f54eb13cc6e1baaaa053695b3f070d3038303a47f2268da",
    "val.de": "660e09eb7e1da2f856ea13ee5ad3cf6d36b3d5b0b733c857e94c5747a3dfc660",
    "val.en": "1f2a23d992769b5b3d209b0a10dd0b77c08cceb1f20dfb97ed0aafa49d107227",
    "val.fr": "5304e444d842e962b2dda4d816b70b22a1765b15401642b7ca37a67477e708dc",
    "val.cs": "d53827e469b0a1ca8d57e9e26b2b64c4bc4b33f5479c7b03ae87ae5c882c3e33",
    "test_2016_flickr.de": "4be6b5b3236b79c25475c6bb829800a7ce559e9ba7a1f6c2394fe4d40be46d16",
    "test_2016_flickr.en": "399a4382932c1aadd3ceb9bef1008d388a64c76d4ae4e9d4728c6f4301cac182",
    "test_2016_flickr.fr": "cb3160d69b002bb638e66cc7612fcd56cb0af82eadc9c142dedc438afb885ef6",
    "test_2016_flickr.cs": "45adb85f688de8407fddcbe1b36dca15d12aab868149b337e2576f2d6d2ff8d8",
}
# Files without a recorded checksum are checked by their known line count.
LINES = {"train": 29000, "val": 1014, "test_2016_flickr": 1000, "test_2017_flickr": 1000,
         "test_2017_mscoco": 461, "test_2018_flickr": 1071}
AVAILABLE = {"test_2017_flickr": ("de", "en", "fr"), "test_2017_mscoco": ("de", "en", "fr")}


def _check_langs(src: str, tgt: str) -> None:
    for lang in (src, tgt):
        if lang not in LANGS:
            raise DataError(f"multi30k has no language {lang!r}; choose from " + ", ".join(LANGS))
    if src == tgt:
        raise DataError("multi30k source and target languages must differ")


def local_dir(from_dir: str | Path | None = None) -> Path | None:
    """The local Multi30k folder from ``--from`` or ``ATTNMT_DATA_DIR``, if one is given."""
    given = from_dir or os.environ.get("ATTNMT_DATA_DIR")
    if not given:
        return None
    root = Path(given).expanduser()
    for candidate in (root, root / "multi30k"):
        if (candidate / "train.en").is_file() or (candidate / "train.de").is_file():
            return candidate
    raise DataError(f"{root} holds no Multi30k files (expected train.de, train.en, ...); "
                    "point --from or ATTNMT_DATA_DIR at the folder with them")


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "attnmt" / "multi30k"


def _verify(path: Path, split: str) -> None:
    data = path.read_bytes()
    expected = SHA256.get(path.name)
    if expected and hashlib.sha256(data).hexdigest() != expected:
        raise DataError(f"{path} does not match its SHA-256; delete it and fetch again")
    lines = data.count(b"\n")
    if not expected and lines != LINES[split]:
        raise DataError(f"{path} has {lines} lines, expected {LINES[split]}")


def _download(name: str, dest: Path, log) -> None:
    """Fetch one gzipped file, decompress it to a temporary name, verify, rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(dest.suffix + ".part")
    log(f"downloading {name} from the Multi30k repository")
    try:
        with urllib.request.urlopen(URL.format(name=name), timeout=60) as r, \
                gzip.GzipFile(fileobj=r) as gz, open(tmp, "wb") as out:
            shutil.copyfileobj(gz, out)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise DataError(f"could not download {name} ({e}); without internet, pass "
                        "--from DIR or set ATTNMT_DATA_DIR to a local Multi30k folder") from None
    _verify(tmp, name.split(".")[0])
    os.replace(tmp, dest)


def splits_for(src: str, tgt: str) -> list[str]:
    return [*REQUIRED, *(t for t in TESTS if all(lang in AVAILABLE.get(t, LANGS)
                                                 for lang in (src, tgt)))]


def fetch(src: str, tgt: str, out_dir: str | Path, from_dir: str | Path | None = None,
          log=print) -> list[str]:
    """Put the Multi30k files of a language pair into ``out_dir``; return the splits there.

    From a local folder, a missing test set is skipped with a one-line note; a
    missing train or val file is an error naming it.
    """
    _check_langs(src, tgt)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    local = local_dir(from_dir)
    present = []
    for split in splits_for(src, tgt):
        names = [f"{split}.{lang}" for lang in (src, tgt)]
        if local is not None:
            missing = [n for n in names if not (local / n).is_file()]
            if missing and split in REQUIRED:
                raise DataError(f"{local / missing[0]} is missing; Multi30k needs train and val")
            if missing:
                log(f"note: {split} is not in {local}; skipped")
                continue
            for n in names:
                if (out / n).resolve() != (local / n).resolve():
                    shutil.copyfile(local / n, out / n)
        else:
            for n in names:
                cached = cache_dir() / n
                if not cached.is_file():
                    _download(n, cached, log)
                shutil.copyfile(cached, out / n)
        present.append(split)
    return present
