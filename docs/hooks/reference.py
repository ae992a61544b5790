"""MkDocs hook: the reference tables are made from the code at build time, so they cannot
drift from it. A page asks for one with a marker line:

- ``<!-- attnmt:config-keys -->``: every config key with its type, default, range and
  meaning, from the typed config (the source of ``attnmt config-keys``);
- ``<!-- attnmt:layers -->``: the package layers, top to bottom, from the import-linter
  contract that ``make test`` enforces.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("<", "&lt;").replace("\n", " ")


def config_keys() -> str:
    """One table per config section, from the same key list as ``attnmt config-keys``."""
    from attnmt.cli.keys import key_infos

    out, current = [], None
    for k in key_infos():
        if k.section != current:
            current = k.section
            out += [f"\n## `{k.section}`\n", "| key | type | default | allowed | meaning |",
                    "|---|---|---|---|---|"]
        allowed = " · ".join(f"`{a}`" for a in k.allowed.split("|")) if k.allowed else ""
        out.append(f"| `{k.section}.{k.name}` | `{_cell(k.type)}` | `{_cell(repr(k.default))}` "
                   f"| {_cell(allowed)} | {_cell(k.help)} |")
    return "\n".join(out)


def layers() -> str:
    """The layers of ``pyproject.toml``'s contract with the comment that describes each."""
    text = (ROOT / "pyproject.toml").read_text()
    comment = text.split("# Layers that point one way", 1)[1].split("[tool.importlinter]")[0]
    rows: list[list[str]] = []
    for line in comment.splitlines()[2:]:
        body = line.lstrip("#").rstrip()
        if body.startswith("   ") and not body.startswith("    " * 4) and body.strip():
            head, _, what = body.strip().partition("  ")
            if what.strip():
                rows.append([head.strip(), what.strip()])
                continue
        if rows and body.strip():
            rows[-1][1] += " " + body.strip()
    return "\n".join(["| layer | what it holds |", "|---|---|",
                      *(f"| `{a}` | {_cell(b)} |" for a, b in rows)])


MARKERS = {"<!-- attnmt:config-keys -->": config_keys, "<!-- attnmt:layers -->": layers}


def on_page_markdown(markdown: str, **kwargs) -> str:
    for marker, make in MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return markdown
