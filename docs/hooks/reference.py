"""MkDocs hook: the reference tables are made from the code at build time, so they cannot
drift from it. A page asks for one with a marker line:

- ``<!-- attnmt:config-keys -->``: every config key with its type, default, range and
  meaning, from the typed config (the source of ``attnmt config-keys``);
- ``<!-- attnmt:layers -->``: the package layers, top to bottom, from the import-linter
  contract that ``make test`` enforces;
- ``<!-- attnmt:rest-api -->``: every route of ``attnmt serve`` with its request fields,
  limits and answers, from the app's own OpenAPI schema (``-classify`` and ``-lm``: the
  routes of a classifier's and a language model's server);
- ``<!-- attnmt:metrics-records -->``: the kinds of record in a run's ``metrics.jsonl``
  and their fields, from the code that writes them;
- ``<!-- attnmt:benchmarks -->``: every script under ``benchmarks/`` with the first line of
  its docstring (what it measures).

It also adds one page: ``tutorial/notebook.md``, the executed tutorial notebook
(``docs/scripts/execute_notebook.py``) as markdown, its figures inline.
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


def _json_type(field: dict) -> str:
    if field.get("type") == "array":
        return f"array of {_json_type(field.get('items', {}))}"
    return field.get("type") or " or ".join(_json_type(f) for f in field.get("anyOf", [])) or "any"


def _limits(field: dict) -> str:
    bounds = [f"{name} {field[key]:g}" for key, name in
              (("minimum", "≥"), ("maximum", "≤"), ("maxLength", "characters ≤"),
               ("maxItems", "items ≤"), ("minItems", "items ≥")) if key in field]
    inner = _limits(field["items"]) if field.get("items") else ""
    return ", ".join(bounds + ([f"each: ({inner})"] if inner else []))


def _body(schema: dict, name: str) -> list[str]:
    body = schema["components"]["schemas"][name]
    required = set(body.get("required", []))
    either = [name for alt in body.get("oneOf", []) for name in alt["required"]]
    lines = ["| field | type | required | default | limits | meaning |",
             "|---|---|---|---|---|---|"]
    for key, field in body["properties"].items():
        needed = ("yes" if key in required else
                  "one of " + " or ".join(f"`{e}`" for e in either) if key in either else "")
        default = f"`{field['default']}`" if "default" in field else ""
        lines.append(f"| `{key}` | {_json_type(field)} | {needed} | {default} | "
                     f"{_cell(_limits(field))} | {_cell(field.get('description', ''))} |")
    return lines


def rest_api(task: str = "translate") -> str:
    """Each route of the server of a ``task``'s run: method, path, what it does, its request
    body and answers (the classifier's and language model's: their own routes only)."""
    from attnmt.serve.app import openapi_schema
    from attnmt.serve.task_app import task_openapi_schema

    schema = openapi_schema() if task == "translate" else task_openapi_schema(task)
    shared = {"/health", "/info", "/attention"} if task != "translate" else set()
    out: list[str] = []
    for path, methods in schema["paths"].items():
        if path in shared:
            continue
        for method, op in methods.items():
            out += [f"\n## `{method.upper()} {path}`\n", op.get("description", op["summary"]), ""]
            ref = (op.get("requestBody", {}).get("content", {}).get("application/json", {})
                   .get("schema", {}).get("$ref"))
            if ref:
                out += ["Request body (JSON; unknown fields are refused):", "",
                        *_body(schema, ref.rsplit("/", 1)[1]), ""]
            codes = ", ".join(f"{code} {r['description'].lower()}"
                              for code, r in op["responses"].items())
            out.append(f"Answers: {codes}.")
    return "\n".join(out)


def metrics_records() -> str:
    """The record kinds of ``metrics.jsonl`` and their fields, from the writers' docstrings."""
    from attnmt.training.reporting import RECORDS

    lines = ["| `kind` | written | fields |", "|---|---|---|"]
    for kind, (when, fields) in RECORDS.items():
        lines.append(f"| `{kind}` | {_cell(when)} | "
                     + ", ".join(f"`{f}`" for f in fields) + " |")
    return "\n".join(lines)


def benchmarks() -> str:
    """One row per benchmark script: its name and what its docstring says it measures."""
    import ast

    rows = ["| script | what it measures |", "|---|---|"]
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        if path.name == "common.py":
            continue
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        first = " ".join(doc.split("\n\n")[0].split())
        rows.append(f"| `benchmarks/{path.name}` | {_cell(first)} |")
    return "\n".join(rows)


NOTEBOOK = ROOT / "docs/notebooks/attention_in_5_steps.executed.ipynb"


def _fenced(text: str, lang: str = "") -> str:
    fence = "````" if "```" in text else "```"
    return f"{fence}{lang}\n{text.rstrip()}\n{fence}"


def notebook_page() -> str:
    """The executed notebook: markdown cells as they are, code cells fenced, then each
    output (printed text fenced, figures as inline PNG; the training progress a cell
    writes to stderr is left out)."""
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    parts = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            parts.append(cell.source)
            continue
        parts.append(_fenced(cell.source, "python"))
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "image/png" in data:
                parts.append(f"![output](data:image/png;base64,{data['image/png'].strip()})")
            elif out.get("name") == "stdout" or "text/plain" in data:
                text = out.get("text") or data["text/plain"]
                if parts and parts[-1].startswith("```\n") and out.get("name") == "stdout":
                    parts[-1] = _fenced(parts[-1][4:-4] + "\n" + text)   # one block per run
                else:
                    parts.append(_fenced(text))
    return "\n\n".join(parts) + (
        "\n\n*This page is [the notebook](../notebooks/attention_in_5_steps.ipynb) as "
        "`python docs/scripts/execute_notebook.py` ran it; download it and open it in Jupyter "
        "(`pip install 'attnmt[notebook]'`) to run it yourself.*\n")


def on_files(files, config):
    from mkdocs.structure.files import File

    files.append(File.generated(config, "tutorial/notebook.md", content=notebook_page()))
    return files


MARKERS = {"<!-- attnmt:config-keys -->": config_keys, "<!-- attnmt:layers -->": layers,
           "<!-- attnmt:rest-api -->": rest_api,
           "<!-- attnmt:rest-api-classify -->": lambda: rest_api("classify"),
           "<!-- attnmt:rest-api-lm -->": lambda: rest_api("lm"),
           "<!-- attnmt:metrics-records -->": metrics_records,
           "<!-- attnmt:benchmarks -->": benchmarks}


def on_page_markdown(markdown: str, **kwargs) -> str:
    for marker, make in MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return markdown
