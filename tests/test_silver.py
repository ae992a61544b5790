"""Silver alignments: grow-diag-final-and on hand-made directional alignments, and eflomal
on a corpus where the right links are plain."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest

from attnmt.data.pharaoh import parse_pharaoh
from attnmt.data.silver import symmetrise
from attnmt.errors import UserError


def test_grow_diag_final_and_grows_from_the_intersection():
    forward = {(0, 0), (1, 1), (2, 1), (1, 0), (3, 4)}
    reverse = {(0, 0), (1, 1), (4, 4)}
    assert symmetrise(forward, reverse, "intersection") == {(0, 0), (1, 1)}
    assert symmetrise(forward, reverse, "union") == forward | reverse
    # grow: (2, 1) neighbours (1, 1) and aligns the unaligned source word 2; (1, 0)
    # neighbours both but links two aligned words. final-and: (3, 4), far from the rest,
    # links two unaligned words; (4, 4) then finds target word 4 taken.
    assert symmetrise(forward, reverse) == {(0, 0), (1, 1), (2, 1), (3, 4)}
    with pytest.raises(UserError, match="unknown symmetrisation"):
        symmetrise(forward, reverse, "grow")


def _corpus(n: int, seed: int) -> tuple[list[str], list[str], list[set]]:
    """Word-for-word 'translations' with the target order reversed: the links are known."""
    rng = random.Random(seed)
    lexicon = {f"w{k}": f"v{k}" for k in range(30)}
    src, tgt, links = [], [], []
    for _ in range(n):
        words = rng.sample(sorted(lexicon), rng.randint(3, 7))
        src.append(" ".join(words))
        tgt.append(" ".join(lexicon[w] for w in reversed(words)))
        links.append({(i, len(words) - 1 - i) for i in range(len(words))})
    return src, tgt, links


def test_eflomal_finds_the_links_of_a_plain_corpus(tmp_path):
    pytest.importorskip("eflomal")
    src, tgt, links = _corpus(400, seed=1)
    (tmp_path / "s").write_text("\n".join(src[:20]) + "\n")
    (tmp_path / "t").write_text("\n".join(tgt[:20]) + "\n")
    (tmp_path / "xs").write_text("\n".join(src[20:]) + "\n")
    (tmp_path / "xt").write_text("\n".join(tgt[20:]) + "\n")
    r = subprocess.run([sys.executable, "-m", "attnmt.cli", "data", "silver-align", "-s",
                        tmp_path / "s", "-t", tmp_path / "t", "--with-src", tmp_path / "xs",
                        "--with-tgt", tmp_path / "xt", "-o", tmp_path / "out.align"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    found = [parse_pharaoh(line, "out").sure
             for line in (tmp_path / "out.align").read_text().splitlines()]
    assert len(found) == 20
    hits = sum(len(f & g) for f, g in zip(found, links[:20], strict=True))
    assert hits / sum(map(len, links[:20])) >= 0.9
    r = subprocess.run([sys.executable, "-m", "attnmt.cli", "data", "silver-align", "-s",
                        tmp_path / "s", "-t", tmp_path / "xt", "-o", tmp_path / "x"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "give one target line per source line" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
