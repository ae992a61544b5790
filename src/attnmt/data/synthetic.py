"""Synthetic translation tasks, generated deterministically from a seed.

Their length is controllable (1..K items per sentence), which is what makes the
context-vector bottleneck visible: a fixed-size vector must hold ever more.

- ``numbers``: numbers as words in one language -> another language or digits
  ("siebenundachtzig" -> "eighty-seven" needs reordering; Korean groups by 10^4).
- ``dates``: dates in a locale's long/full format -> ISO ``YYYY-MM-DD`` or another locale.
- ``copy`` / ``reverse``: letter sequences over a small alphabet.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from pathlib import Path

from ..errors import DataError
from .corpus import write_parallel

TASKS = ("numbers", "dates", "copy", "reverse")
NUMBER_LANGS = ("en", "de", "fr", "ko", "cs", "es", "ja")
ITEM_SEP = " ; "
ALPHABET = "abcdefghijklmnopqrst"


def _number_words(lang: str) -> Callable[[int], str]:
    from num2words import num2words

    if lang == "digits":
        return str
    if lang not in NUMBER_LANGS:
        raise DataError(f"numbers: language {lang!r} is not supported; choose from "
                        + ", ".join((*NUMBER_LANGS, "digits")))
    return lambda n: num2words(n, lang=lang)


def _date_writer(lang: str) -> Callable[[dt.date, random.Random], str]:
    if lang == "iso":
        return lambda d, rng: d.isoformat()
    from babel import Locale, UnknownLocaleError
    from babel.dates import format_date

    try:
        Locale.parse(lang)
    except (UnknownLocaleError, ValueError):
        raise DataError(f"dates: locale {lang!r} is unknown; use a locale such as en, de, "
                        "fr, ko, or iso") from None
    return lambda d, rng: format_date(d, format=rng.choice(("long", "full")), locale=lang)


def make_pair(task: str, rng: random.Random, n_items: int, src: str, tgt: str,
              max_value: int) -> tuple[str, str]:
    """One (source, target) pair with ``n_items`` items."""
    if task == "numbers":
        to_src, to_tgt = _number_words(src), _number_words(tgt)
        values = [rng.randint(0, max_value) for _ in range(n_items)]
        return (ITEM_SEP.join(to_src(v) for v in values),
                ITEM_SEP.join(to_tgt(v) for v in values))
    if task == "dates":
        write_src, write_tgt = _date_writer(src), _date_writer(tgt)
        start = dt.date(1900, 1, 1).toordinal()
        days = [dt.date.fromordinal(start + rng.randrange(73000)) for _ in range(n_items)]
        return (ITEM_SEP.join(write_src(d, rng) for d in days),
                ITEM_SEP.join(write_tgt(d, rng) for d in days))
    if task in ("copy", "reverse"):
        letters = [rng.choice(ALPHABET) for _ in range(n_items)]
        out = letters if task == "copy" else letters[::-1]
        return " ".join(letters), " ".join(out)
    raise DataError(f"unknown synthetic task {task!r}; choose from " + ", ".join(TASKS))


def gold_alignment(task: str, src: str, tgt: str) -> str:
    """The word alignment the generator knows, in Pharaoh format: ``i-j`` (source word i,
    target word j, from 0) for a sure link, ``i?j`` for a possible one.

    copy and reverse: letter k to letter k (reverse: to n-1-k), all sure. numbers and
    dates: item k of the source to item k of the target and separator to separator; an
    item of one word on both sides is a sure link, the words of a longer item ("zweihundert"
    -> "two hundred", "3. März 1975" -> "1975-03-03") are all possible links to each other.
    """
    if task in ("copy", "reverse"):
        n = len(src.split())
        return " ".join(f"{k}-{k if task == 'copy' else n - 1 - k}" for k in range(n))
    links, i0, j0 = [], 0, 0
    src_items, tgt_items = src.split(ITEM_SEP), tgt.split(ITEM_SEP)
    for k, (a, b) in enumerate(zip(src_items, tgt_items, strict=True)):
        if k:                                   # the separator before item k
            links.append(f"{i0}-{j0}")
            i0, j0 = i0 + 1, j0 + 1
        na, nb = len(a.split()), len(b.split())
        mark = "-" if na == nb == 1 else "?"
        links += [f"{i0 + i}{mark}{j0 + j}" for i in range(na) for j in range(nb)]
        i0, j0 = i0 + na, j0 + nb
    return " ".join(links)


def generate(task: str, n: int, src: str, tgt: str, min_items: int, max_items: int,
             seed: int, max_value: int = 9999) -> list[tuple[str, str]]:
    """``n`` pairs with item counts drawn uniformly from [min_items, max_items]."""
    if not 1 <= min_items <= max_items:
        raise DataError(f"need 1 <= min_items <= max_items, got {min_items} and {max_items}")
    rng = random.Random(f"{task}-{src}-{tgt}-{seed}")
    return [make_pair(task, rng, rng.randint(min_items, max_items), src, tgt, max_value)
            for _ in range(n)]


def default_langs(task: str) -> tuple[str, str]:
    return {"numbers": ("de", "en"), "dates": ("de", "iso")}.get(task, ("src", "tgt"))


def write_task(out_dir: str | Path, task: str, src: str | None = None, tgt: str | None = None,
               n: int = 20000, n_valid: int = 500, n_test: int = 1000, min_items: int = 1,
               max_items: int = 8, test_max_items: int | None = None, seed: int = 1,
               max_value: int = 9999) -> dict:
    """Write train/val/test splits of a task; the test split may reach longer items.

    Beside each split, ``{split}.align`` holds its gold word alignment (one line per pair,
    :func:`gold_alignment`). Returns the description of what was written (also stored as
    ``task.json``).
    """
    import json

    d_src, d_tgt = default_langs(task)
    src, tgt = src or d_src, tgt or d_tgt
    test_max = test_max_items or max_items
    splits = {
        "train": generate(task, n, src, tgt, min_items, max_items, seed, max_value),
        "val": generate(task, n_valid, src, tgt, min_items, max_items, seed + 1, max_value),
        "test": generate(task, n_test, src, tgt, min_items, test_max, seed + 2, max_value),
    }
    for split, pairs in splits.items():
        write_parallel(out_dir, split, src, tgt, pairs)
        (Path(out_dir) / f"{split}.align").write_text(
            "".join(gold_alignment(task, a, b) + "\n" for a, b in pairs), encoding="utf-8")
    info = dict(task=task, src=src, tgt=tgt, n=n, n_valid=n_valid, n_test=n_test,
                min_items=min_items, max_items=max_items, test_max_items=test_max,
                seed=seed, max_value=max_value)
    (Path(out_dir) / "task.json").write_text(json.dumps(info, indent=2))
    return info
