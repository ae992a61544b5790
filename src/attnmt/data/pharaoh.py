"""Pharaoh word-alignment lines, as fast_align and eflomal write them: ``i-j`` links source
word ``i`` to target word ``j`` (whitespace words, from 0); a gold file may also mark
possible links ``i?j`` (Och & Ney 2003's *possible*, which a hypothesis may have without
penalty and need not have)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import UserError

Link = tuple[int, int]
_LINK = re.compile(r"^(\d+)([-?])(\d+)$")


@dataclass
class Gold:
    """One sentence's gold alignment: sure links, and possible ones (sure included)."""

    sure: set[Link]
    possible: set[Link]


def to_pharaoh(links: set[Link]) -> str:
    """Links as one Pharaoh line, sorted."""
    return " ".join(f"{i}-{j}" for i, j in sorted(links))


def parse_pharaoh(line: str, where: str) -> Gold:
    """A Pharaoh line (``i-j`` sure, ``i?j`` possible); ``where`` names the file and line
    in the one-line error a malformed link gets."""
    sure, possible = set(), set()
    for item in line.split():
        m = _LINK.match(item)
        if not m:
            raise UserError(f"{where}: {item!r} is not an alignment link; write i-j (sure) or "
                            "i?j (possible), word positions from 0")
        link = (int(m.group(1)), int(m.group(3)))
        possible.add(link)
        if m.group(2) == "-":
            sure.add(link)
    return Gold(sure, possible)
