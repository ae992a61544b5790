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
           min_bucket: 30,     # buckets with fewer test sentences merge with a neighbour
           join: 1}            # > 1: also score test pairs joined 2..join at a time
    runs:
      - {name: seq2seq-lstm, preset: seq2seq-lstm}
      - {name: rnn-dot, preset: rnn-dot, set: {model.input_feeding: false}}
"""

from __future__ import annotations

import json
import shutil
import statistics
import time
from dataclasses import replace
from pathlib import Path

import yaml

from ..config import load_config
from ..data.corpus import Corpus, check_splits_aligned
from ..data.registry import read_split, resolve_dir
from ..data.synthetic import ITEM_SEP
from ..data.tokenizers import Vocabs
from ..errors import ConfigError, UserError
from ..inference.alignment import gold_score
from ..inference.metrics import (
    bootstrap_interval,
    corpus_scores,
    merge_sparse_buckets,
    scores_by_length,
)
from ..inference.translator import Translator
from ..presets import PRESETS
from ..rundir import RunDir, write_json
from ..textio import read_utf8
from ..training.loop import train
from ..training.task_data import vocab_request, write_vocab_request
from .plots import attention_grid, learning_curves, score_by_length
from .report import write_report

STUDY_KEYS = {"name", "description", "config", "budget", "eval", "runs"}
EVAL_DEFAULTS = {"beam": 5, "metric": "bleu", "length": "words", "edges": [10, 20, 30],
                 "heatmaps": 2, "min_bucket": 30, "join": 1}
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
    if isinstance(ev["join"], bool) or not isinstance(ev["join"], int) or ev["join"] < 1:
        raise ConfigError(f"{path}: eval join must be a whole number of test pairs per "
                          f"example, 1 or more (got {ev['join']!r})")
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


def joined_test(test: Corpus, most: int) -> tuple[Corpus, list[int]]:
    """The test split followed, for k = 2 .. ``most``, by its consecutive groups of k pairs
    joined by a space (long inputs made of real sentences; a last group short of k pairs
    is left out); and the k of every example."""
    if most == 1:
        return test, [1] * len(test.src)
    src, tgt, joined = [], [], []
    for k in range(1, most + 1):
        for i in range(0, len(test.src) - k + 1, k):
            src.append(" ".join(test.src[i: i + k]))
            tgt.append(" ".join(test.tgt[i: i + k]))
            joined.append(k)
    return replace(test, src=src, tgt=tgt, line_numbers=[]), joined


def scores_by_join(hyps: list[str], refs: list[str], joined: list[int], metric: str
                   ) -> list[dict]:
    """Corpus scores of the examples made of k test pairs, for each k, with the 95 %
    bootstrap interval of ``metric`` and the output's length over the reference's."""
    rows = []
    for k in sorted(set(joined)):
        rows_k = [i for i, n in enumerate(joined) if n == k]
        h, r = [hyps[i] for i in rows_k], [refs[i] for i in rows_k]
        s = corpus_scores(h, r)
        rows.append({"k": k, "n": s["n"], "bleu": s["bleu"], "chrf": s["chrf"],
                     "exact": s["exact"], "length_ratio": s["length_ratio"],
                     "bleu_precisions": s["bleu_precisions"],
                     "ci95": list(bootstrap_interval(h, r, metric))})
    return rows


def _median_rate(run: RunDir) -> float:
    rates = [r["tokens_per_s"] for r in run.records("train") if r["step"] > 1]
    return statistics.median(rates) if rates else 0.0




def _decode_timed(translator: Translator, texts: list[str], beam: int) -> tuple[list[str], float]:
    start = time.perf_counter()
    hyps = [h[0].text for h in translator.translate(texts, beam=beam)]
    return hyps, len(texts) / (time.perf_counter() - start)


def _shared_vocab(base, data_dir: Path, vocab_dir: Path, log) -> Path:
    """The one vocabulary every run of the study copies, trained once on the train split."""
    if not Vocabs.exists(vocab_dir):
        train_split = read_split(data_dir, base.data.train, base.data.src, base.data.tgt,
                                 fmt=base.data.format)
        log(f"training the shared {base.data.tokenizer} vocabulary")
        Vocabs.train(base.data.tokenizer, train_split.src, train_split.tgt, base.data.vocab_size,
                     base.data.joint_vocab, base.data.spm_type).save(vocab_dir)
        write_vocab_request(vocab_dir, vocab_request(base, data_dir))
    return vocab_dir


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
    test, joined = joined_test(test, ev["join"])
    vocab_dir = _shared_vocab(base, data_dir, out / "vocab", log)
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
        if ev["join"] > 1:
            hyps = (run.eval_dir / "study.hyp").read_text().splitlines()
            results[name]["by_join"] = scores_by_join(hyps, test.tgt, joined, ev["metric"])
        gold = data_dir / f"{base.data.test}.align"
        if gold.is_file() and results[name]["has_attention"] and ev["join"] == 1:
            results[name]["alignment"] = gold_score(Translator.from_run(run.path), gold,
                                                    test.src, test.tgt)
    report = {"study": study.get("name"), "description": study.get("description", ""),
              "study_file": str(study_path), "budget": budget_minutes and {"minutes":
                                                                           budget_minutes}
              or study["budget"], "data_dir": str(data_dir), "test_split": base.data.test,
              "eval": ev, "config": study.get("config") or {}, "overrides": list(overrides or []),
              "runs": results}
    _figures(out, report, test, lengths)
    write_report(out, report)
    log(f"wrote {out / 'report.md'}, {out / 'report.html'} and {out / 'results.json'}")
    return report


def _evaluate_run(run: RunDir, test, lengths: list[int], ev: dict, log) -> dict:
    cached = run.eval_dir / "study.json"
    finished = json.loads((run.ckpt / "finished.json").read_text())
    if cached.is_file():
        result = json.loads(cached.read_text())
        kept = run.eval_dir / "study.hyp"
        hyps = kept.read_text().splitlines() if kept.is_file() else []
        if (result.get("step"), result.get("beam"), len(hyps)) == (finished["step"], ev["beam"],
                                                                   len(test.src)):
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
