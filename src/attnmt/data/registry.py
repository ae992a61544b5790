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
from .corpus import Corpus, read_parallel


def resolve_dir(data: DataConfig, default_dir: Path, log=print) -> Path:
    """The folder holding the config's split files, creating it from the registry if needed."""
    folder = Path(data.dir) if data.dir else None
    probe = f"{data.train}.tsv" if data.task == "classify" else f"{data.train}.{data.src}"
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


def read_split(folder: Path, split: str, src: str, tgt: str, required: bool = True
               ) -> Corpus | None:
    """Read one split; a missing optional split returns None."""
    s, t = folder / f"{split}.{src}", folder / f"{split}.{tgt}"
    if not s.is_file() or not t.is_file():
        if required:
            missing = s if not s.is_file() else t
            raise DataError(f"{missing} is missing")
        return None
    return read_parallel(s, t)


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
