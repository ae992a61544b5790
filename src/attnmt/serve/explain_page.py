"""`attnmt explain --html`: one self-contained page (no network) with the explainer view.

The page inlines the same ``explain.js`` and ``explain.css`` the server's Explain view
loads, and the numbers of :mod:`attnmt.explain.numbers` as JSON. Views: ``explain`` (step
through the output words, switch layers and heads), ``timeline`` (a slider over the
checkpoints a run kept) and ``study`` (every run of a study side by side). Interventions
need a model, so they are offered by ``attnmt serve`` only.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

STATIC = Path(__file__).parent / "static"

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body {{ margin: 0; padding: 24px; background: #f7f8fa; }}
main {{ max-width: 1000px; margin: 0 auto; }} h1 {{ font: 600 20px system-ui, sans-serif; }}
{css}</style></head>
<body><main class="explain"><h1>{title}</h1>
<p class="muted">{subtitle}</p><div id="explain"></div></main>
<script>{js}</script>
<script>const EXPLAIN = {data};
AttnExplain.{call}(document.getElementById("explain"), EXPLAIN, {{step: {step}}});</script>
</body></html>
"""


VIEWS = {"explain": "render", "timeline": "timeline", "study": "study"}


def explain_html(data: dict, *, view: str = "explain", step: int = 0, title: str = "",
                 subtitle: str = "") -> str:
    """The page for ``data`` (:func:`attnmt.explain.numbers.to_json` of an explanation, a timeline
    or a study's explanations, as ``view`` says)."""
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return PAGE.format(title=html.escape(title or "attnmt explain"),
                       subtitle=html.escape(subtitle),
                       css=(STATIC / "explain.css").read_text(encoding="utf-8"),
                       js=(STATIC / "explain.js").read_text(encoding="utf-8"),
                       data=payload.replace("</", "<\\/"), step=int(step), call=VIEWS[view])
