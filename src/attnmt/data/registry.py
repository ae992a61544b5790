"""The dataset registry: where a config's data comes from.

``data.dir`` names a folder of aligned ``{split}.{lang}`` files. When it is
empty or absent and ``data.dataset`` is set, the registry fills it: Multi30k
from a local folder, the cache or a download; a synthetic task is generated
from ``data.synth`` options.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..config import DataConfig
from ..errors import DataError
from . import multi30k, synthetic
from .corpus import Corpus, read_pairs, split_files


def resolve_dir(data: DataConfig, default_dir: Path, log=print) -> Path:
    """The folder holding the config's split files, creating it from the registry if needed."""
    folder = Path(data.dir) if data.dir else None
    stem = data.valid if data.corpora else data.train       # corpora replace the train split
    probe = f"{data.train}.tsv" if data.task == "classify" else \
        split_files(".", stem, data.format, data.src, data.tgt)[0].name
    if folder is not None and (folder / probe).is_file():
        return folder
    if data.dataset == "multi30k":
        local = multi30k.local_dir()
        if folder is None and local is not None:
            return local
        target = folder or default_dir
        multi30k.fetch(data.src, data.tgt, target, log=log)
        return target
    if data.dataset in synthetic.TASKS:
        return _synthesize(data, folder or default_dir, log)
    if folder is None:
        raise DataError("set data.dir to a folder of {split}.{lang} files, or data.dataset "
                        "to multi30k or a synthetic task")
    how = ("attnmt data get sst ...` or `attnmt data langid ..." if data.task == "classify"
           else "attnmt data synth ...` or `attnmt data get multi30k ...")
    raise DataError(f"{folder / probe} does not exist; create the data with `{how}`")


def read_split(folder: Path, split: str, src: str, tgt: str, required: bool = True,
               fmt: str = "parallel") -> Corpus | None:
    """Read one split (in ``data.format`` ``fmt``); a missing optional split returns None."""
    files = split_files(folder, split, fmt, src, tgt)
    missing = [f for f in files if not f.is_file()]
    if missing:
        if required:
            raise DataError(f"{missing[0]} is missing")
        return None
    return read_pairs(folder, split, fmt, src, tgt)


def _synthesize(data: DataConfig, target: Path, log) -> Path:
    """Generate a synthetic task into ``target``, unless it already holds the same one
    (``request.json`` records the dataset and options it was made from)."""
    opts = dict(data.synth)
    opts.setdefault("src", data.src)
    opts.setdefault("tgt", data.tgt)
    request = {"dataset": data.dataset, **opts}
    stamp = target / "request.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == request:
        return target
    try:
        synthetic.write_task(target, data.dataset, **opts)
    except TypeError as e:
        raise DataError(f"data.synth has an unknown option ({e})") from None
    stamp.write_text(json.dumps(request, sort_keys=True))
    log(f"generated the {data.dataset} task into {target}")
    return target
