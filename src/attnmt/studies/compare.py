"""``attnmt compare``: the history of attention as one rerunnable experiment.

A study file names one dataset, one vocabulary, one budget (equal minutes or
equal steps) and a list of runs (presets plus overrides). Every run is trained
on the same data and vocabulary, evaluated on the test split, and the report
folder gets a table, the score by source length for all runs on one plot
(Bahdanau et al. 2015, Fig. 2), attention heatmaps side by side, learning
curves and ``results.json``. Finished runs are not retrained; interrupted ones
resume.

Study file::

    name: bottleneck-numbers
    config: {data: {...}, train: {...}, decode: {...}}   # shared by every run
    budget: {minutes: 4}                                # or {steps: 2000}
    eval: {beam: 5, metric: exact, length: items, edges: [2, 4, 6, 8], heatmaps: 2,
           min_bucket: 30}     # buckets with fewer test sentences merge with a neighbour
    runs:
      - {name: seq2seq-lstm, preset: seq2seq-lstm}
      - {name: rnn-dot, preset: rnn-dot, set: {model.input_feeding: false}}
"""

from __future__ import annotations

import base64
import json
import shutil
import statistics
import time
from pathlib import Path

import yaml

from ..config import load_config
from ..data.corpus import check_splits_aligned
from ..data.registry import read_split, resolve_dir
from ..data.synthetic import ITEM_SEP
from ..data.tokenizers import Vocabs
from ..errors import ConfigError, UserError
from ..inference.alignment import gold_score
from ..inference.metrics import corpus_scores, merge_sparse_buckets, scores_by_length
from ..inference.translator import Translator
from ..presets import PRESETS
from ..rundir import RunDir, write_json
from ..textio import read_utf8
from ..training.loop import train
from ..training.task_data import vocab_request, write_vocab_request
from .plots import attention_grid, learning_curves, score_by_length

STUDY_KEYS = {"name", "description", "config", "budget", "eval", "runs"}
EVAL_DEFAULTS = {"beam": 5, "metric": "bleu", "length": "words", "edges": [10, 20, 30],
                 "heatmaps": 2, "min_bucket": 30}
EVAL_METRICS = ("bleu", "chrf", "exact")


def load_study(path: str | Path) -> dict:
    """Read and check a study file; errors name the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"study file {path} does not exist")
    try:
        study = yaml.safe_load(read_utf8(path, ConfigError)) or {}
    except yaml.YAMLError:
        raise ConfigError(f"{path} is not valid YAML") from None
    if not isinstance(study, dict):
        raise ConfigError(f"{path}: a study is a mapping (name, config, budget, eval, runs), "
                          f"not a {type(study).__name__}")
    unknown = set(study) - STUDY_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown study key(s) {sorted(unknown)}; valid: "
                          + ", ".join(sorted(STUDY_KEYS)))
    if not isinstance(study.get("runs"), list) or not study["runs"]:
        raise ConfigError(f"{path}: a study needs a list of runs")
    budget = study.get("budget") or {}
    if not isinstance(budget, dict) or set(budget) - {"minutes", "steps"} or len(budget) != 1:
        raise ConfigError(f"{path}: budget must be exactly one of minutes: M or steps: N")
    names = set()
    for run in study["runs"]:
        if not isinstance(run, dict) or "name" not in run:
            raise ConfigError(f"{path}: every run needs a name")
        if run.get("preset") and run["preset"] not in PRESETS:
            raise ConfigError(f"{path}: run {run['name']} has unknown preset {run['preset']!r};"
                              " valid presets: " + ", ".join(PRESETS))
        if run["name"] in names:
            raise ConfigError(f"{path}: run name {run['name']!r} appears twice")
        names.add(run["name"])
    study["eval"] = ev = {**EVAL_DEFAULTS, **(study.get("eval") or {})}
    if ev["metric"] not in EVAL_METRICS:
        raise ConfigError(f"{path}: eval metric {ev['metric']!r} is unknown; use one of "
                          + ", ".join(EVAL_METRICS))
    if not isinstance(ev["min_bucket"], int) or ev["min_bucket"] < 1:
        raise ConfigError(f"{path}: eval min_bucket must be a whole number of sentences, 1 or "
                          f"more (got {ev['min_bucket']!r})")
    study["_path"] = str(path)
    return study


def run_config(study: dict, run: dict, budget_minutes: float | None,
               extra: list[str] | None = None):
    """The resolved config of one run: shared config + preset + run overrides + ``extra``
    (``key=value`` for every run, e.g. ``train.device=cuda``) + budget."""
    overrides = [f"{k}={json.dumps(v)}" for k, v in (run.get("set") or {}).items()]
    overrides += list(extra or [])
    if run.get("preset"):
        overrides.insert(0, f"model.preset={run['preset']}")
    budget = dict(study["budget"])
    if budget_minutes:
        budget = {"minutes": budget_minutes}
    if "minutes" in budget:
        overrides += [f"train.max_minutes={budget['minutes']}", "train.max_steps=100000000"]
    else:
        overrides += [f"train.max_steps={budget['steps']}", "train.max_minutes=0"]
    raw = json.loads(json.dumps(study.get("config") or {}))
    return load_config(raw=raw, overrides=overrides)


def _lengths(texts: list[str], unit: str) -> list[int]:
    if unit == "items":
        return [t.count(ITEM_SEP) + 1 for t in texts]
    return [len(t.split()) for t in texts]


def _median_rate(run: RunDir) -> float:
    rates = [r["tokens_per_s"] for r in run.records("train") if r["step"] > 1]
    return statistics.median(rates) if rates else 0.0




def _decode_timed(translator: Translator, texts: list[str], beam: int) -> tuple[list[str], float]:
    start = time.perf_counter()
    hyps = [h[0].text for h in translator.translate(texts, beam=beam)]
    return hyps, len(texts) / (time.perf_counter() - start)


def compare(study_path: str | Path, out: str | Path | None = None,
            budget_minutes: float | None = None, log=print,
            overrides: list[str] | None = None) -> dict:
    """Train (or resume), evaluate and report every run of a study; ``overrides``
    (``key=value``) apply to every run after its own settings."""
    study = load_study(study_path)
    out = Path(out or Path("studies/out") / study.get("name", Path(study_path).stem))
    ev = study["eval"]
    base = run_config(study, study["runs"][0], budget_minutes, overrides)
    d = base.data
    if d.dir and Path(d.dir).is_dir():          # the user's files, before anything is written
        check_splits_aligned(d.dir, (d.train, d.valid, d.test), d.src, d.tgt)
    out.mkdir(parents=True, exist_ok=True)
    data_dir = resolve_dir(base.data, out / "data", log=log)
    base.data.dir = str(data_dir)
    test = read_split(data_dir, base.data.test, base.data.src, base.data.tgt, required=False,
                      fmt=base.data.format)
    if test is None:
        raise UserError(f"the study's test split {base.data.test!r} is not in {data_dir}")
    vocab_dir = out / "vocab"
    if not Vocabs.exists(vocab_dir):
        train_split = read_split(data_dir, base.data.train, base.data.src, base.data.tgt,
                                 fmt=base.data.format)
        log(f"training the shared {base.data.tokenizer} vocabulary")
        Vocabs.train(base.data.tokenizer, train_split.src, train_split.tgt, base.data.vocab_size,
                     base.data.joint_vocab, base.data.spm_type).save(vocab_dir)
        write_vocab_request(vocab_dir, vocab_request(base, data_dir))
    lengths = _lengths(test.src, ev["length"])
    ev["edges"] = merge_sparse_buckets(lengths, ev["edges"], ev["min_bucket"])
    results: dict[str, dict] = {}
    for spec in study["runs"]:
        name = spec["name"]
        cfg = run_config(study, spec, budget_minutes, overrides)
        cfg.data.dir = str(data_dir)
        run = RunDir(out / "runs" / name)
        if not (run.ckpt / "finished.json").is_file():
            resume = run.latest() is not None
            if not resume:
                shutil.copytree(vocab_dir, run.vocab_dir, dirs_exist_ok=True)
            log(f"== {name}: {'resuming' if resume else 'training'}")
            train(cfg, run.path, resume=resume)
        else:
            log(f"== {name}: finished earlier, not retrained")
        results[name] = _evaluate_run(run, test, lengths, ev, log)
        gold = data_dir / f"{base.data.test}.align"
        if gold.is_file() and results[name]["has_attention"]:
            results[name]["alignment"] = gold_score(Translator.from_run(run.path), gold,
                                                    test.src, test.tgt)
    report = {"study": study.get("name"), "description": study.get("description", ""),
              "study_file": str(study_path), "budget": budget_minutes and {"minutes":
                                                                           budget_minutes}
              or study["budget"], "data_dir": str(data_dir), "test_split": base.data.test,
              "eval": ev, "config": study.get("config") or {}, "overrides": list(overrides or []),
              "runs": results}
    _figures(out, report, test, lengths)
    _write_report(out, report)
    log(f"wrote {out / 'report.md'}, {out / 'report.html'} and {out / 'results.json'}")
    return report


def _evaluate_run(run: RunDir, test, lengths: list[int], ev: dict, log) -> dict:
    cached = run.eval_dir / "study.json"
    finished = json.loads((run.ckpt / "finished.json").read_text())
    if cached.is_file():
        result = json.loads(cached.read_text())
        if result.get("step") == finished["step"] and result.get("beam") == ev["beam"]:
            hyps = (run.eval_dir / "study.hyp").read_text().splitlines()
            result["by_length"] = scores_by_length(hyps, test.tgt, lengths, ev["edges"],
                                                   interval=ev["metric"])
            result["stopped_by"] = finished.get("reason", "")
            return result
    translator = Translator.from_run(run.path)
    greedy, greedy_speed = _decode_timed(translator, test.src, 1)
    beam, beam_speed = ((greedy, greedy_speed) if ev["beam"] == 1
                        else _decode_timed(translator, test.src, ev["beam"]))
    scores_g = corpus_scores(greedy, test.tgt)
    scores_b = corpus_scores(beam, test.tgt)
    cfg = translator.cfg
    result = {
        "preset": cfg.model.preset, "arch": cfg.model.arch,
        "has_attention": translator.model.has_attention,
        "parameters": translator.model.num_parameters(), "step": finished["step"],
        "stopped_by": finished.get("reason", ""),
        "train_minutes": round(finished["elapsed"] / 60, 2),
        "train_tokens_per_s": round(_median_rate(run) or finished["tokens"]
                                    / max(finished["elapsed"], 1e-9), 1),
        "peak_rss_mib": round(finished.get("peak_rss_mib", 0)),
        "beam": ev["beam"],
        "greedy": {k: scores_g[k] for k in ("bleu", "chrf", "exact")},
        "bleu": scores_b["bleu"], "chrf": scores_b["chrf"], "exact": scores_b["exact"],
        "bleu_signature": scores_b["bleu_signature"],
        "decode_sentences_per_s": {"greedy": round(greedy_speed, 1),
                                   "beam": round(beam_speed, 1)},
        "by_length": scores_by_length(beam, test.tgt, lengths, ev["edges"],
                                      interval=ev["metric"]),
        "valid_curve": [{k: r[k] for k in ("step", "elapsed", "loss", "bleu", "chrf", "exact")
                         if k in r} for r in run.records("valid")],
    }
    write_json(cached, result)
    (run.eval_dir / "study.hyp").write_text("".join(h + "\n" for h in beam))
    log(f"   {run.path.name}: BLEU {result['bleu']:.2f}, exact {result['exact']:.1f}%")
    return result


def _pick_sentences(lengths: list[int], n: int) -> list[int]:
    """Fixed test sentences for heatmaps: spread over lengths, shortest index first."""
    if n <= 0:
        return []
    ordered = sorted(set(lengths))
    wanted = [ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1) * 0.6))]
              for q in [(i + 1) / n for i in range(n)]]
    return [min(i for i, x in enumerate(lengths) if x == w) for w in wanted]


def _figures(out: Path, report: dict, test, lengths: list[int]) -> None:
    ev, runs = report["eval"], report["runs"]
    metric = ev["metric"]
    unit = "numbers per sentence" if ev["length"] == "items" else "source length (words)"
    score_by_length({n: r["by_length"] for n, r in runs.items()}, out / "score_by_length.png",
                    metric, f"{metric} by source length (test, beam {ev['beam']})", unit)
    learning_curves({n: r["valid_curve"] for n, r in runs.items()}, out / "learning_curves.png",
                    metric if metric != "loss" else "loss")
    attention_runs = [n for n, r in runs.items() if r["has_attention"]]
    report["heatmaps"] = []
    for k, i in enumerate(_pick_sentences(lengths, ev["heatmaps"])):
        items = []
        for name in attention_runs:
            att = Translator.from_run(out / "runs" / name).attention(test.src[i])
            items.append({**att, "title": f"{name}: {att['translation'][:60]}"})
        if items:
            path = out / f"attention_{k + 1}.png"
            attention_grid(items, path)
            report["heatmaps"].append({"file": path.name, "source": test.src[i],
                                       "reference": test.tgt[i]})
    write_json(out / "results.json", report)


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


def _cell(row: dict, metric: str) -> str:
    """A bucket's score, with its 95 % bootstrap interval where one was computed."""
    if "ci95" not in row:
        return f"{row[metric]:.1f}"
    low, high = row["ci95"]
    return f"{row[metric]:.1f} ({low:.0f}–{high:.0f})"


def _markdown(report: dict) -> str:
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
             "In brackets: the 95 % bootstrap interval (1,000 resamples of the bucket's "
             f"sentences); buckets under {ev.get('min_bucket', 0)} sentences are merged with "
             "a neighbour.", "",
             *length_table(report), "", "![score by length](score_by_length.png)", "",
             "## Learning curves", "", "![learning curves](learning_curves.png)", ""]
    if report.get("heatmaps"):
        parts += ["## Attention", ""]
        for h in report["heatmaps"]:
            parts += [f"Source: `{h['source']}`", "", f"Reference: `{h['reference']}`", "",
                      f"![attention]({h['file']})", ""]
    return "\n".join(parts)


def _write_report(out: Path, report: dict) -> None:
    """``report.md`` and a self-contained ``report.html`` rendered from it (Python-Markdown,
    with the figures embedded as data URIs so the file works offline and by e-mail)."""
    import html

    import markdown

    md = _markdown(report)
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
