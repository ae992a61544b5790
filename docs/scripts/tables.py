"""The tables in the docs and the README, made from ``benchmarks/results/*.json`` so a number
on a page is the number in its results file.

A page holds a generated table between two marker lines::

    <!-- table:NAME -->
    ...
    <!-- /table -->

``python docs/scripts/tables.py`` rewrites every such table (``make docs`` runs it);
``--check`` changes nothing and exits 1, naming the files, when a table is out of date
(``make test`` runs that through ``tests/test_docs.py``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks/results"
BLOCK = re.compile(r"(<!-- table:([\w-]+) -->\n)(.*?)(<!-- /table -->)", re.S)


def _load(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.json").read_text())


def _machine(d: dict) -> str:
    m = d.get("machine", {})
    return (f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, torch {m.get('torch', '?')}"
            + (f", {m['cuda']}" if m.get("cuda") else ""))


def _provenance(d: dict, name: str, command: str) -> str:
    return (f"*Measured {d['date']} on {_machine(d)}; `benchmarks/results/{name}.json`; "
            f"rerun: `{command}`.*")


def time_to_quality() -> str:
    """attnmt's and fairseq's test2016 BLEU (beam 5) against training minutes."""
    ours, theirs = _load("time_to_quality"), _load("time_to_quality_fairseq")
    rows = ["| training minutes | " + " | ".join(f"{m['minutes']:g}" for m in ours["marks"])
            + " |", "|---" * (len(ours["marks"]) + 1) + "|",
            "| attnmt | " + " | ".join(f"{m['test_beam5']:.2f}" for m in ours["marks"]) + " |"]
    fairseq = ", ".join(f"{m['test_beam5']:.2f} at {m['minutes']:.1f}" for m in theirs["marks"])
    return "\n".join(rows + [
        "", f"fairseq (the peers' spec and recipe): {fairseq} minutes. attnmt first reaches "
        f"fairseq's end score ({ours['fairseq_end_test_beam5']}) at "
        f"{ours['attnmt_first_minute_at_fairseq_bleu']:g} minutes, fairseq at "
        f"{ours['fairseq_first_minute_at_its_end_bleu']:g}.", "",
        _provenance(ours, "time_to_quality", "python benchmarks/time_to_quality.py --minutes "
                    f"{ours['minutes']:g} --mark {ours['mark']:g}")])


def test_margins() -> str:
    """The spread of every training-dependent test quantity over seeds x kernel settings."""
    d = _load("test_margins")
    return d["table"].rstrip() + "\n\n" + _provenance(d, "test_margins", d["command"])


TABLES: dict[str, Callable[[], str]] = {"time-to-quality": time_to_quality,
                                        "test-margins": test_margins}


def render(text: str, source: str = "") -> str:
    """``text`` with every generated table made anew; an unknown name is an error."""
    def fill(m: re.Match) -> str:
        if m.group(2) not in TABLES:
            raise SystemExit(f"{source}: unknown table {m.group(2)!r}; known: "
                             f"{', '.join(TABLES)}")
        return m.group(1) + TABLES[m.group(2)]().rstrip() + "\n" + m.group(4)

    return BLOCK.sub(fill, text)


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    args = ap.parse_args()
    stale = []
    for page in pages():
        text = page.read_text()
        new = render(text, str(page.relative_to(ROOT)))
        if new != text:
            stale.append(str(page.relative_to(ROOT)))
            if not args.check:
                page.write_text(new)
    if args.check and stale:
        sys.exit(f"generated tables out of date in {', '.join(stale)}; run "
                 "`python docs/scripts/tables.py`")
    print(("would rewrite " if args.check else "rewrote ") + (", ".join(stale) or "nothing"))


if __name__ == "__main__":
    main()
