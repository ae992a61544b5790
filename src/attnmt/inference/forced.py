"""What a translate request forces into each output — a target prefix and constraint
phrases per text — tokenised with the target vocabulary and checked before any decoding:
one per text, and short enough for the model's output limit. Every failure is one line
that names the text and the field (``prefixes`` or ``constraints``, the REST names)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import field_error as _error


@dataclass
class Forced:
    """Per text: the prefix's token ids and each constraint phrase's token ids."""

    prefixes: list[list[int]]
    constraints: list[list[list[int]]] | None       # None: no constrained search

    def length(self, i: int) -> int:
        """Tokens text ``i``'s output must hold at least (prefix and every phrase)."""
        phrases = self.constraints[i] if self.constraints is not None else []
        return len(self.prefixes[i]) + sum(map(len, phrases))


def forced_ids(texts: Sequence[str], encode: Callable[[str], list[int]], cap: int,
               prefixes: Sequence[str] | None = None,
               constraints: Sequence[Sequence[str]] | None = None) -> Forced:
    """Tokenise ``prefixes`` (one per text; "" for none) and ``constraints`` (per text, a
    list of phrases, maybe empty) with ``encode``; ``cap`` counts the output's ``</s>``."""
    for field, given in (("prefixes", prefixes), ("constraints", constraints)):
        if given is not None and len(given) != len(texts):
            raise _error(field, f"{len(given)} {field} for {len(texts)} texts; give one per "
                                "text (an empty one where there is none)")
    forced = Forced([encode(p) if p else [] for p in prefixes] if prefixes is not None
                    else [[] for _ in texts], None)
    if constraints is not None:
        forced.constraints = [[_phrase(encode, p, i) for p in phrases]
                              for i, phrases in enumerate(constraints)]
    for i in range(len(texts)):
        if forced.length(i) > cap - 1:
            field = "constraints" if constraints is not None else "prefixes"
            raise _error(field, f"text {i + 1}: its prefix and constraints are "
                                f"{forced.length(i)} tokens, more than the {cap - 1} the "
                                "model can write; shorten them")
    return forced


def _phrase(encode: Callable[[str], list[int]], phrase: str, i: int) -> list[int]:
    ids = encode(phrase)
    if not ids:
        raise _error("constraints", f"text {i + 1}: constraint {phrase!r} is empty; leave "
                                    "it out")
    return ids
