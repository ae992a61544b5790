"""A study's report: the summary and by-length tables (also the docs' generated study
tables), ``report.md`` and a self-contained ``report.html``."""

from __future__ import annotations

import base64
from pathlib import Path


def summary_table(report: dict) -> list[str]:
    """One markdown row per run: size, updates, speeds and scores (the report's first table,
    and the docs' generated study tables)."""
    ev = report["eval"]
    aer = any("alignment" in r for r in report["runs"].values())
    lines = [f"| run | parameters | steps (stopped by) | train tok/s | peak RSS MiB¹ | "
             f"decode sent/s greedy / beam {ev['beam']} | BLEU greedy / beam {ev['beam']} | "
             "chrF | exact % |" + (" attention AER² |" if aer else ""),
             "|---|---|---|---|---|---|---|---|---|" + ("---|" if aer else "")]
    for name, r in report["runs"].items():
        speed = r["decode_sentences_per_s"]
        stopped = f" ({r['stopped_by']})" if r.get("stopped_by") else ""
        aligned = f" {r['alignment']['aer']:.1f} |" if "alignment" in r else " – |"
        lines.append(f"| {name} | {r['parameters']:,} | {r['step']}{stopped} | "
                     f"{r['train_tokens_per_s']:,.0f} | {r['peak_rss_mib']:,} | "
                     f"{speed['greedy']:.1f} / {speed['beam']:.1f} | "
                     f"{r['greedy']['bleu']:.2f} / {r['bleu']:.2f} | "
                     f"{r['chrf']:.2f} | {r['exact']:.1f} |" + (aligned if aer else ""))
    return lines


def length_table(report: dict) -> list[str]:
    """The study's metric per run and source-length bucket, with each bucket's size."""
    metric = report["eval"]["metric"]
    buckets: list[str] = []
    for r in report["runs"].values():
        for b in r["by_length"]:
            if b["bucket"] not in buckets:
                buckets.append(b["bucket"])
    lines = ["| run | " + " | ".join(buckets) + " |", "|---|" + "---|" * len(buckets)]
    for name, r in report["runs"].items():
        by = {b["bucket"]: b for b in r["by_length"]}
        cells = [_cell(by[b], metric) if b in by else "–" for b in buckets]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    counts = [str(next((b["n"] for r in report["runs"].values() for b in r["by_length"]
                        if b["bucket"] == name), 0)) for name in buckets]
    lines.append("| sentences | " + " | ".join(counts) + " |")
    return lines


def join_table(report: dict) -> list[str]:
    """The study's metric per run on test examples made of k joined test pairs (``eval.join``),
    with the number of examples of each k, then the output's length over the reference's
    per k; empty when the study joins none."""
    metric, runs = report["eval"]["metric"], report["runs"]
    first = next((r["by_join"] for r in runs.values() if "by_join" in r), None)
    if first is None:
        return []
    ks = [row["k"] for row in first]
    head = ["| run | " + " | ".join(f"k = {k}" for k in ks) + " |", "|---|" + "---|" * len(ks)]

    def rows(cell) -> list[str]:
        out = []
        for name, r in runs.items():
            by = {row["k"]: row for row in r.get("by_join", [])}
            out.append(f"| {name} | " + " | ".join(cell(by[k]) if k in by else "–"
                                                   for k in ks) + " |")
        return out

    return [*head, *rows(lambda row: _cell(row, metric)),
            "| examples | " + " | ".join(str(row["n"]) for row in first) + " |",
            "", "Output length over reference length (BLEU's tokens):", "", *head,
            *rows(lambda row: f"{row['length_ratio']:.2f}" if "length_ratio" in row else "–")]


def _cell(row: dict, metric: str) -> str:
    """A bucket's score, with its 95 % bootstrap interval where one was computed."""
    if "ci95" not in row:
        return f"{row[metric]:.1f}"
    low, high = row["ci95"]
    return f"{row[metric]:.1f} ({low:.0f}–{high:.0f})"


def markdown_report(report: dict) -> str:
    ev = report["eval"]
    budget = report["budget"]
    budget_text = (f"{budget['minutes']} minutes of training per run" if "minutes" in budget
                   else f"{budget['steps']} updates per run")
    train_cfg = (report.get("config") or {}).get("train") or {}
    if train_cfg.get("patience"):
        patience, watched = train_cfg["patience"], train_cfg.get("best_metric", "bleu")
        budget_text = (f"each run trained until validation {watched} stopped improving "
                       f"for {patience} validations in a row (early stopping), at most "
                       + budget_text)
    first = next(iter(report["runs"].values()))
    parts = [f"# Study: {report['study']}", "", report.get("description", "").strip(), "",
             f"Command: `attnmt compare {report['study_file']}` · budget: {budget_text} · "
             f"test split `{report['test_split']}` · beam {ev['beam']}.", "",
             *summary_table(report), "",
             "¹ high-water mark of the process that trains the runs one after another, so a "
             "run's figure includes the runs before it.", "",
             *(["² alignment error rate of the attention (mean over layers and heads, "
                "argmax per target word, forced to the references) against the test split's "
                "gold word alignment; lower is better (`attnmt align --gold`).", ""]
               if any("alignment" in r for r in report["runs"].values()) else []),
             f"sacreBLEU: `{first['bleu_signature']}`", "",
             f"## {ev['metric']} by source length ({ev['length']})", "",
             *([f"In brackets: the 95 % bootstrap interval (1,000 resamples of the bucket's "
                f"sentences); buckets under {ev['min_bucket']} sentences are merged with a "
                "neighbour.", ""] if "min_bucket" in ev else []),
             *length_table(report), "", "![score by length](score_by_length.png)", "",
             *([f"## {ev['metric']} by joined test pairs", "",
                f"Each example of column k is k consecutive test pairs joined by a space "
                f"(`eval.join: {ev.get('join')}`); in brackets the 95 % bootstrap interval.",
                "", *join_table(report), ""] if join_table(report) else []),
             "## Learning curves", "", "![learning curves](learning_curves.png)", ""]
    if report.get("heatmaps"):
        parts += ["## Attention", ""]
        for h in report["heatmaps"]:
            parts += [f"Source: `{h['source']}`", "", f"Reference: `{h['reference']}`", "",
                      f"![attention]({h['file']})", ""]
    return "\n".join(parts)


def write_report(out: Path, report: dict) -> None:
    """``report.md`` and a self-contained ``report.html`` rendered from it (Python-Markdown,
    with the figures embedded as data URIs so the file works offline and by e-mail)."""
    import html

    import markdown

    md = markdown_report(report)
    (out / "report.md").write_text(md)
    body = markdown.markdown(md, extensions=["tables"], output_format="html")
    for name in {h["file"] for h in report.get("heatmaps", [])} | {"score_by_length.png",
                                                                     "learning_curves.png"}:
        if (out / name).is_file():
            data = base64.b64encode((out / name).read_bytes()).decode()
            body = body.replace(f'src="{name}"', f'src="data:image/png;base64,{data}"')
    style = ("body{font:15px/1.5 system-ui,sans-serif;max-width:1100px;margin:24px auto;"
             "padding:0 16px}table{border-collapse:collapse}td,th{border:1px solid #ddd;"
             "padding:4px 8px;text-align:right}img{max-width:100%}code{background:#f3f3f3}")
    (out / "report.html").write_text(f"<!doctype html><html><head><meta charset='utf-8'>"
                                     f"<title>{html.escape(str(report['study']))}</title>"
                                     f"<style>{style}</style></head><body>{body}"
                                     "</body></html>")
