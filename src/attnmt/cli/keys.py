"""``attnmt config-keys``: every config key with its type, default, allowed values and
meaning, read from the typed config; the docs site's config reference reads the same list."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..config import _SECTION_CLASSES


@dataclass(frozen=True)
class KeyInfo:
    """One config key as documentation shows it (``attnmt config-keys``, the docs site)."""

    section: str
    name: str
    type: str
    default: Any
    help: str
    allowed: str      # "a|b|c" for choices, "lo..hi" for a range, "" for neither


def key_infos(section: str | None = None) -> list[KeyInfo]:
    """Every key of the config (of one ``section``), in the order of the dataclasses."""
    out = []
    for name, cls in _SECTION_CLASSES.items():
        if section and name != section:
            continue
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            choices = [str(c) for c in f.metadata.get("choices") or () if c is not None]
            lo, hi = f.metadata.get("min"), f.metadata.get("max")
            allowed = "|".join(choices) if choices else ""
            if hi is not None:
                allowed += ("; " if allowed else "") + f"{'' if lo is None else f'{lo:g}'}..{hi:g}"
            out.append(KeyInfo(name, f.name, str(f.type), default, f.metadata["help"], allowed))
    return out


def describe(section: str | None = None) -> str:
    """Every key with its default and documentation, for `attnmt config-keys`."""
    lines, current = [], None
    for k in key_infos(section):
        if k.section != current:
            current = k.section
            lines.append(f"{k.section}:")
        extra = f" [{k.allowed.replace('; ', '] [')}]" if k.allowed else ""
        lines.append(f"  {k.name}: {k.default!r}  # {k.help}{extra}")
    return "\n".join(lines)
