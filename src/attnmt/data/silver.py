"""Silver word alignments for a real corpus: eflomal's, both directions, symmetrised.

Real corpora come without gold alignments. A statistical aligner gives a *silver* one:
eflomal (Östling & Tiedemann 2016, a Bayesian IBM-model aligner, ``pip install eflomal``)
aligns the sentence pairs in each direction, and the two directional alignments are
joined with grow-diag-final-and (Koehn et al. 2005), as Moses and fast_align's ``atools``
do. Alignment is unsupervised, so the pairs to align are given together with a larger
corpus (the training data) that only adds statistics. The result is a statistical
aligner's output, not human judgement; attention is scored against it with the same AER.

Words are whitespace tokens, as in every Pharaoh file attnmt reads and writes.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..errors import UserError
from .pharaoh import Link, parse_pharaoh

SYMMETRISATIONS = ("grow-diag-final-and", "intersection", "union")
_NEIGHBOURS = ((-1, 0), (0, -1), (1, 0), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))


def symmetrise(forward: set[Link], reverse: set[Link],
               method: str = "grow-diag-final-and") -> set[Link]:
    """Join a source-to-target and a target-to-source alignment (both as (source word,
    target word) links): their intersection, union, or grow-diag-final-and — start from
    the intersection, grow into neighbouring (diagonals included) union links that align a
    word not aligned yet, then add union links whose two words are both still unaligned."""
    if method not in SYMMETRISATIONS:
        raise UserError(f"unknown symmetrisation {method!r}; choose from "
                        f"{', '.join(SYMMETRISATIONS)}")
    union = forward | reverse
    if method == "union":
        return set(union)
    links = forward & reverse
    if method == "intersection":
        return set(links)
    src_done = {i for i, _ in links}
    tgt_done = {j for _, j in links}
    grew = True
    while grew:
        grew = False
        for i, j in sorted(links):
            for di, dj in _NEIGHBOURS:
                cand = (i + di, j + dj)
                if cand in union and cand not in links and \
                        (cand[0] not in src_done or cand[1] not in tgt_done):
                    links.add(cand)
                    src_done.add(cand[0])
                    tgt_done.add(cand[1])
                    grew = True
    for directional in (forward, reverse):                  # final-and
        for i, j in sorted(directional):
            if i not in src_done and j not in tgt_done:
                links.add((i, j))
                src_done.add(i)
                tgt_done.add(j)
    return links


def eflomal_align(sources: Sequence[str], targets: Sequence[str], *,
                  extra_sources: Sequence[str] = (), extra_targets: Sequence[str] = (),
                  method: str = "grow-diag-final-and") -> list[set[Link]]:
    """Silver alignments of each (source, target) pair: eflomal run in both directions
    over ``extra`` + these pairs (the extra pairs add statistics; only these pairs'
    alignments are returned), symmetrised by ``method``. eflomal samples (its binary
    takes no seed), so two runs differ in a few links."""
    try:
        import eflomal
    except ImportError:
        raise UserError("silver alignments need eflomal: pip install eflomal") from None
    if len(sources) != len(targets) or len(extra_sources) != len(extra_targets):
        raise UserError(f"the source side has {len(sources) + len(extra_sources)} lines and "
                        f"the target side {len(targets) + len(extra_targets)}; give one "
                        "target line per source line")
    src = [*extra_sources, *sources]
    tgt = [*extra_targets, *targets]
    keep = [k for k, (a, b) in enumerate(zip(src, tgt, strict=True)) if a.split() and b.split()]
    with tempfile.TemporaryDirectory() as tmp:
        fwd, rev = Path(tmp) / "fwd", Path(tmp) / "rev"
        eflomal.Aligner().align([src[k] + "\n" for k in keep], [tgt[k] + "\n" for k in keep],
                                links_filename_fwd=str(fwd), links_filename_rev=str(rev))
        found = dict(zip(keep, zip(_links(fwd), _links(rev), strict=True), strict=True))
    first = len(extra_sources)
    return [symmetrise(*found[k], method) if k in found else set()
            for k in range(first, first + len(sources))]


def _links(path: Path) -> list[set[Link]]:
    return [parse_pharaoh(line, f"eflomal's {path.name} line {n}").sure
            for n, line in enumerate(path.read_text().splitlines(), 1)]
