"""The documentation site: built offline with ``mkdocs build --strict`` (broken links,
missing pages and bad references fail), its reference pages generated from the code, and
nothing in it that reaches past this machine — checked in the files and in a real browser."""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


class QuietHandler(SimpleHTTPRequestHandler):
    """Serves files without a log line per request."""

    def log_message(self, *args) -> None:
        pass


ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("mkdocs")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d",
                        str(out)], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def test_the_readme_is_a_front_door_into_the_site():
    readme = (ROOT / "README.md").read_text()
    assert readme.count("\n") <= 150
    linked = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert linked and all((ROOT / p).is_file() for p in linked), linked


def test_the_config_reference_names_every_key(site):
    from attnmt.config import _SECTION_CLASSES

    text = (site / "reference/config/index.html").read_text()
    keys = [f"{s}.{f.name}" for s, cls in _SECTION_CLASSES.items()
            for f in dataclasses.fields(cls)]
    missing = [k for k in keys if f"<code>{k}</code>" not in text]
    assert len(keys) > 50 and not missing, missing


def test_the_cli_reference_names_every_command(site):
    from attnmt.cli import cli

    text = (site / "reference/cli/index.html").read_text()
    assert cli.commands and all(f"attnmt {name}" in text for name in cli.commands)


def test_the_rest_and_metrics_references_come_from_the_code(site):
    from attnmt.serve.app import openapi_schema
    from attnmt.training.reporting import RECORDS

    rest = (site / "reference/rest-api/index.html").read_text()
    schema = openapi_schema()
    routes = [f"{m.upper()} {p}" for p, ms in schema["paths"].items() for m in ms]
    assert len(routes) >= 6 and not [r for r in routes if f"<code>{r}</code>" not in rest]
    fields = schema["components"]["schemas"]["TranslateRequest"]["properties"]
    assert all(f"<code>{f}</code>" in rest for f in fields)
    run_dir = (site / "reference/run-directory/index.html").read_text()
    assert all(f"<code>{kind}</code>" in run_dir for kind in RECORDS)
    how_to = (site / "how-to/benchmarks/index.html").read_text()
    scripts = [p.name for p in (ROOT / "benchmarks").glob("*.py") if p.name != "common.py"]
    assert len(scripts) > 10 and all(f"benchmarks/{n}</code>" in how_to for n in scripts)


def test_the_notebook_page_is_the_notebook_executed(site):
    import nbformat

    notebook = ROOT / "docs/notebooks/attention_in_5_steps.ipynb"
    source = nbformat.read(notebook, as_version=4)
    executed = nbformat.read(notebook.with_suffix(".executed.ipynb"), as_version=4)
    assert [c.source for c in executed.cells] == [c.source for c in source.cells], \
        "the executed copy is stale: run python docs/scripts/execute_notebook.py"
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs]
    assert outputs and not [o for o in outputs if o.output_type == "error"]
    page = (site / "tutorial/notebook/index.html").read_text()
    assert "data:image/png;base64," in page and "weights sum to" in page


def test_the_api_and_design_pages_come_from_the_docstrings(site):
    api = (site / "reference/python-api/index.html").read_text()
    assert "TranslationModel" in api and "five_steps" in api
    design = (site / "explanation/design/index.html").read_text()
    assert "<code>training</code>" in design and "reorder_state" in design


def test_no_file_of_the_site_loads_anything_from_the_network(site):
    loads = re.compile(r"""<(?:script|link|img|iframe)[^>]*(?:src|href)=["']https?://"""
                       r"""|@import\s+url\(["']?https?://|fonts\.googleapis""")
    offenders = [str(p.relative_to(site)) for p in site.rglob("*")
                 if p.suffix in (".html", ".css", ".js") and loads.search(p.read_text())]
    assert not offenders
    assert (site / "search/search_index.json").is_file()     # search works from the files


@pytest.fixture
def served(site):
    """The built site over HTTP on 127.0.0.1 (as ``make docs-serve``; file:// would keep
    the search worker from loading)."""
    handler = functools.partial(QuietHandler, directory=str(site))
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_the_site_in_a_real_browser_shows_its_pages_and_stays_on_this_machine(page, served):
    errors, requests = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(served + "/", wait_until="networkidle")
    assert "attnmt" in page.title()
    assert page.locator("img[src*='demo_exact_by_length']").first.evaluate(
        "img => img.naturalWidth") > 0
    page.goto(served + "/tutorial/five-steps/", wait_until="networkidle")
    assert page.locator("h1").first.inner_text().startswith("2. Attention in five steps")
    page.goto(served + "/tutorial/notebook/", wait_until="networkidle")
    assert page.locator("img[src^='data:image/png']").first.evaluate(
        "img => img.naturalWidth") > 0
    page.goto(served + "/reference/config/", wait_until="networkidle")
    assert page.locator("code", has_text="train.max_steps").count() > 0
    assert not errors, errors
    assert requests and all(u.startswith(served) for u in requests), \
        [u for u in requests if not u.startswith(served)]


def test_every_generated_table_is_the_one_its_results_file_makes():
    r = subprocess.run([sys.executable, "docs/scripts/tables.py", "--check"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    sys.path.insert(0, str(ROOT / "docs/scripts"))
    import tables

    readme = (ROOT / "README.md").read_text()
    assert "<!-- table:time-to-quality -->" in readme
    stale = readme.replace("| attnmt | ", "| attnmt | 99.99 | ", 1)   # a hand-edited row
    assert stale != readme and tables.render(stale) == readme
