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
    """CPU model, its bf16/AMX/AVX flags (results written before the flags were recorded
    say so), cores, torch and any GPU."""
    m = d.get("machine", {})
    if isinstance(m, str):
        return m + " (CPU flags not recorded)"
    flags = ", ".join(m["flags"]) if m.get("flags") else "CPU flags not recorded"
    return (f"{m.get('cpu', '?')} ({flags}), {m.get('cores', '?')} cores, torch "
            f"{m.get('torch', '?')}" + (f", {m['cuda']}" if m.get("cuda") else ""))


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _head(cells) -> list[str]:
    return [_row(cells), "|---" * len(cells) + "|"]


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
        f"{ours['fairseq_first_minute_at_its_end_bleu']:g}." + _machines(ours, theirs), "",
        _provenance(ours, "time_to_quality", "python benchmarks/time_to_quality.py --minutes "
                    f"{ours['minutes']:g} --mark {ours['mark']:g}")])


def _machines(ours: dict, theirs: dict) -> str:
    """A warning where two curves' minutes were measured on different CPUs."""
    mine, other = ours.get("machine", {}), theirs.get("machine", {})
    if mine.get("cpu") == other.get("cpu"):
        return ""
    return (f" The two curves come from different CPUs (attnmt: {mine.get('cpu', '?')}, "
            f"{ours['date']}; fairseq: {other.get('cpu', '?')}, {theirs['date']}), so their "
            "minutes compare machines as well as toolkits.")


def test_margins() -> str:
    """The spread of every training-dependent test quantity over seeds x kernel settings."""
    d = _load("test_margins")
    text = d["table"].rstrip() + "\n\n" + _provenance(d, "test_margins", d["command"])
    again = d.get("partial_rerun")
    if again:
        text += (f" *Measured again on {again['date']} on {_machine(again)}: "
                 f"{', '.join(again['quantities'])} ({again['why']}).*")
    return text


def multi30k_marks() -> str:
    """Every kept checkpoint of the two time-to-quality curves, scored on val and test2016."""
    ours, theirs = _load("time_to_quality"), _load("time_to_quality_fairseq")
    fields = [("val, beam 5", "val_beam5"), ("test2016, greedy", "test_greedy"),
              ("test2016, beam 5", "test_beam5"), ("test2016, beam 5, lowercased",
                                                   "test_beam5_lc")]
    out = []
    for title, d, fmt in (("attnmt, the shipped config", ours, "{:g}"),
                          ("fairseq, the peers' recipe (lr 5e-4, inverse sqrt, 4,096-token "
                           "batches), each checkpoint at its own minute", theirs, "{:.2f}")):
        marks = d["marks"]
        out += [title + ":", "", *_head(["minutes", *(fmt.format(m["minutes"]) for m in marks)]),
                _row(["updates", *(f"{m['step']:,}" for m in marks)])]
        out += [_row([name, *(f"{m[key]:.2f}" if key in m else "–" for m in marks)])
                for name, key in fields]
        out.append("")
    return "\n".join(out + [_provenance(ours, "time_to_quality", "python benchmarks/"
                                        "time_to_quality.py --table") + " fairseq: measured "
                            f"{theirs['date']} on {_machine(theirs)}; `benchmarks/"
                            "results/time_to_quality_fairseq.json`, rerun: `python benchmarks/"
                            f"fairseq_curve.py --minutes {theirs['minutes']:g} --every "
                            f"{theirs['every_updates']}`."])


def multi30k_levers(name: str = "time_to_quality_ablation", command: str = "") -> str:
    """The screening runs behind the shipped recipe: val BLEU (beam 5) per lever."""
    d = _load(name)

    def at(row: dict, minutes: float) -> str:
        mark = next((m for m in row["marks"] if m["minutes"] == minutes), None)
        return f"{mark['val_beam5']:.2f}" if mark else "—"

    lines = _head(["row", "settings", "updates", "val @12.5", "val @25",
                   "avg of the last 2 / 3 marks"])
    rows = sorted(d["rows"].items(), key=lambda item: bool(item[1]["settings"]))
    for label, row in rows:
        avg = (f"{row['avg2']['val_beam5']:.2f} / {row['avg3']['val_beam5']:.2f}"
               if "avg2" in row else "—")
        lines.append(_row([label, " ".join(row["settings"]) or "—",
                           f"{row['marks'][-1]['step']:,}", at(row, 12.5), at(row, 25.0), avg]))
    return "\n".join(lines + ["", f"Base: {d['base']}.", "",
                              _provenance(d, name, "python benchmarks/time_to_quality.py "
                                          f"--stop-at 12.5 {command}--row NAME --set "
                                          "KEY=VALUE ...")])


def multi30k_rnn() -> str:
    """The attention RNN's config after 25 minutes, and the same with 2,048-token batches."""
    run, small = _load("run_m30k-rnn-dot"), _load("time_to_quality_multi30k_rnn_dot")
    ev, last = run["eval"], small["marks"][-1]
    lines = _head(["`configs/multi30k_rnn_dot.yaml`", "updates", "val BLEU beam 5",
                   "test2016 BLEU greedy / beam 5"])
    lines.append(_row(["as shipped (4,096-token batches)", f"{run['steps']:,}",
                       f"{ev['val.beam5']['bleu']:.2f}",
                       f"{ev['test_2016_flickr.beam1']['bleu']:.2f} / "
                       f"{ev['test_2016_flickr.beam5']['bleu']:.2f}"]))
    lines.append(_row([" ".join(small["settings"]), f"{last['step']:,}",
                       f"{last['val_beam5']:.2f}",
                       f"{last['test_greedy']:.2f} / {last['test_beam5']:.2f}"]))
    return "\n".join(lines + [
        "", _provenance(run, "run_m30k-rnn-dot", "python benchmarks/run_summary.py "
                        "runs/m30k-rnn-dot"),
        _provenance(small, "time_to_quality_multi30k_rnn_dot", "python benchmarks/"
                    "time_to_quality.py --config configs/multi30k_rnn_dot.yaml --set "
                    + " --set ".join(small["settings"]))])


def peers() -> str:
    """attnmt against fairseq and JoeyNMT on one spec, in one run."""
    d = _load("peers")
    return d["table"].rstrip() + "\n\n" + _provenance(
        d, "peers", f"python benchmarks/peers.py run --minutes {d['minutes']:g} --window "
        f"{d['window_minutes']:g} --attnmt-run {d['attnmt_run']}")


def parallelism() -> str:
    """Training cost per target token against length, at the most threads measured."""
    d = _load("parallelism")
    threads, models = max(d["settings"]["threads"]), d["settings"]["models"]
    cost = {(r["model"], r["length"]): r["train_us_per_token"] for r in d["rows"]
            if r["threads"] == threads}
    ratio = d["summary"]["rnn_over_transformer"][f"train_us_per_token@{threads}"]
    lines = _head(["length", *models])
    for n in d["settings"]["lengths"]:
        lines.append(_row([n, *(f"{cost[m, n]:,.0f}" + (f" ({ratio[m][str(n)]:.2f})"
                                                          if m in ratio else "")
                                for m in models)]))
    return "\n".join([f"Training, µs per target token at {threads} threads (in brackets: the "
                      "model's cost over the Transformer's):", "", *lines, "",
                      _provenance(d, "parallelism", "python benchmarks/parallelism.py")])


ENGINES = {"attnmt": "attnmt, float32 (pure PyTorch)", "attnmt_bf16": "attnmt `--bf16`",
           "attnmt_int8": "attnmt `--int8` (dynamic int8 Linear layers)",
           "ctranslate2": "CTranslate2 float32 through attnmt (`--engine ctranslate2`)",
           "ctranslate2_direct": "CTranslate2 float32, direct",
           "ctranslate2_direct_t1": "CTranslate2 float32, direct, **1 thread**",
           "ctranslate2_int8": "CTranslate2 int8 through attnmt",
           "ctranslate2_direct_int8": "CTranslate2 int8, direct",
           "ctranslate2_fairseq": "CTranslate2 float32 on fairseq's model (direct)",
           "ctranslate2_fairseq_int8": "CTranslate2 int8 on fairseq's model (direct)"}
MODE_NAMES = {"greedy": "greedy, 64", "beam5": "beam 5, 64", "greedy_b8": "greedy, 8",
              "beam5_b8": "beam 5, 8"}


def _decode_command(d: dict) -> str:
    """The decode_speed.py command that gives a results file with these engines and modes."""
    flags = [flag for key, flag in (("attnmt_int8", "--int8"), ("attnmt_bf16", "--bf16"),
                                    ("ctranslate2", "--ctranslate2"),
                                    ("ctranslate2_fairseq", "--fairseq-ct2")) if key in d]
    threads = [k.rsplit("_t", 1)[1] for k in d if k.startswith("ctranslate2_direct_t")]
    if threads:
        flags.append(f"--ct2-threads {','.join(threads)}")
    sizes = sorted({int(m.split("_b")[1]) for m in d["attnmt"] if "_b" in m}, reverse=True)
    if sizes:
        flags.append("--batch-sizes " + ",".join(map(str, [64, *sizes])))
    return (f"python benchmarks/decode_speed.py {d['run']} {' '.join(flags)} "
            f"--repeats {d['repeats']} --rounds {d['rounds']}")


def decoding_speed() -> str:
    """Every engine's decoding speed and BLEU on test2016 at each batch size, against
    CTranslate2 float32 through attnmt's wrapper on the same threads."""
    d = _load("decode_speed_m30k-tsmall")
    base = d["ctranslate2"]
    modes = [m for m in MODE_NAMES if m in d["attnmt"]]
    lines = _head(["engine", *[f"{MODE_NAMES[m]}: sent/s (BLEU) · / CT2 f32" for m in modes]])
    for key, name in ENGINES.items():
        if key not in d:
            continue
        cells = [f"{d[key][m]['sentences_per_s']:.1f} ({d[key][m]['bleu']:.2f})" +
                 ("" if "fairseq" in key else
                  f" · {d[key][m]['sentences_per_s'] / base[m]['sentences_per_s']:.2f}×")
                 for m in modes]
        lines.append(_row([name, *cells]))
    agree = [f"{base[k]} of {len_}" for k, len_ in
             ((f"{m}_agreement", 1000) for m in modes) if k in base]
    return "\n".join(lines + ["", "Greedy lines equal between CTranslate2 float32 and attnmt "
                              f"(64 and 8 per batch): {', '.join(agree)}." if agree else "",
                              "", _provenance(d, "decode_speed_m30k-tsmall", _decode_command(d))])


def serve_load() -> str:
    """Requests/s of ``attnmt serve`` under load, each engine on 2 threads and on 1."""
    runs = [_load("serve_load_m30k-tsmall"), _load("serve_load_m30k-tsmall_t1")]
    names = {"batched": "attnmt (PyTorch), max-batch 32", "unbatched":
             "attnmt (PyTorch), max-batch 1", "ctranslate2_batched":
             "CTranslate2 engine, max-batch 32"}
    lines = _head(["load run", "server", "decoding threads", "requests/s", "p50 ms",
                   "p99 ms", "failures", "mean micro-batch", "model thread busy"])
    for d in runs:
        for key, r in d.items():
            if not (isinstance(r, dict) and "requests_per_s" in r):
                continue
            threads = int(key.rsplit("_t", 1)[1]) if "_t" in key else d["threads"]
            lines.append(_row([f"`--threads {d['threads']}`", names[key.split("_t")[0]], threads,
                               f"{r['requests_per_s']:.1f}", f"{r['p50_ms']:.0f}",
                               f"{r['p99_ms']:.0f}", r["failures"], f"{r['mean_batch']:.1f}",
                               f"{r['model_busy']:.0%}"]))
    return "\n".join(lines + ["", _provenance(
        runs[0], "serve_load_m30k-tsmall.json` and `serve_load_m30k-tsmall_t1",
        "python benchmarks/serve_load.py runs/m30k-tsmall --ctranslate2 --ct2-threads 2,1`"
        " and `... --ctranslate2 --threads 1")])


def search_gap() -> str:
    """attnmt's beam search against CTranslate2's on the same weights and objective."""
    d = _load("search_gap_val")
    lines = _head(["search", f"{d['split']} BLEU, beam {d['beam']}",
                   "mean log-probability per token", "mean length (words)"])
    lines += [_row([name, f"{e['bleu']:.2f}", f"{e['mean_logprob_per_token']:.4f}",
                    f"{e['mean_length']:.2f}"]) for name, e in d["engines"].items()]
    gap = d["attnmt_average_vs_ctranslate2"]
    return "\n".join(lines + [
        "", f"Per-token average against CTranslate2: the outputs differ on {gap['lines_differ']} "
        f"lines; on {gap['a_scores_higher']} of them attnmt's has the higher score under the "
        f"shared objective, on {gap['b_scores_higher']} CTranslate2's.", "",
        _provenance(d, "search_gap_val", f"python benchmarks/search_gap.py {d['run']} "
                    f"--split {d['split']}")])


def alignment(name: str = "alignment_demo") -> str:
    """AER of each attention model of a study against its gold (or silver) alignment."""
    d = _load(name)

    def cell(entry: dict | None, where: str = "") -> str:
        return "–" if entry is None else f"{entry['aer']:.2f}{where}"

    lines = _head(["run", "attention read at", "AER, mean attention", "precision / recall",
                   "best layer", "best head"])
    for name, modes in d["runs"].items():
        for mode, s in modes.items():
            layer, head = s["best_layer"], s["best_head"]
            lines.append(_row([name, "the step that writes the word" if mode == "as written"
                               else "the step that reads it (shift)", cell(s["mean"]),
                               f"{s['mean']['precision']:.2f} / {s['mean']['recall']:.2f}",
                               cell(layer, layer and f" (layer {layer['layer']})"),
                               cell(head, head and f" (layer {head['layer']} head "
                                                   f"{head['head']})")]))
    return "\n".join(lines + ["", f"{d['task']}, {d['split']} split, {d['sentences']} pairs, "
                              f"{d['method']} per target word; lower AER is better.", "",
                              _provenance(d, name, d["command"])])


def alignment_timeline() -> str:
    """Exact match and attention AER at each kept checkpoint of one run."""
    d = _load("alignment_timeline_align-timeline")
    points = d["points"]
    lines = [*_head(["updates", *(f"{p['step']:,}" for p in points)]),
             _row(["test exact match %", *(f"{p['exact']:.1f}" for p in points)]),
             _row(["attention AER, as written", *(f"{p['aer']:.1f}" for p in points)]),
             _row(["attention AER, shifted", *(f"{p['aer_shifted']:.1f}" for p in points)])]
    return "\n".join(lines + ["", f"{d['task']}, the first {d['sentences']} test pairs, greedy; "
                              "AER against the generator's gold.", "",
                              _provenance(d, "alignment_timeline_align-timeline",
                                          d["command"])])


def head_importance(name: str = "head_importance_transformer") -> str:
    """Each cross-attention head of a Transformer: what silencing it costs, and how well it
    aligns on its own."""
    d = _load(name)
    heads = d["heads"]
    lines = [*_head(["head", *(f"L{h['layer']}H{h['head']}" for h in heads)]),
             _row(["exact match lost", *(f"{h['exact_lost']:.1f}" for h in heads)]),
             _row(["BLEU lost", *(f"{h['bleu_lost']:.1f}" for h in heads)]),
             _row(["AER of the head", *(f"{h['aer']:.1f}" for h in heads)])]
    return "\n".join(lines + [
        "", f"The full model: exact match {d['full']['exact']:.1f} %, BLEU "
        f"{d['full']['bleu']:.2f} ({d['sentences']} {d['split']} sentences, greedy). Spearman "
        f"rank correlation with the head's AER: {d['spearman_exact_lost_vs_aer']} (exact "
        f"lost), {d['spearman_bleu_lost_vs_aer']} (BLEU lost), over {len(heads)} heads.", "",
        _provenance(d, name, d["command"])])


PAIR_NAMES = {"attention": "attention", "input_x_gradient": "input × gradient",
              "integrated_gradients": "integrated gradients", "masking": "masking"}


def attribution(name: str = "attribution_align-m30k") -> str:
    """Per run: each method read as an alignment (AER), and the rank agreement of each pair
    of methods over the output tokens."""
    d = _load(name)
    runs = d["runs"]
    pairs = list(next(iter(runs.values()))["agreement"])
    methods = list(next(iter(runs.values()))["aer"])
    lines = _head(["run", *(f"AER, {PAIR_NAMES[m]}" for m in methods),
                   *(" ~ ".join(PAIR_NAMES[m] for m in p.split("~")) for p in pairs),
                   "integrated gradients' gap, median nats"])
    for run, r in runs.items():
        lines.append(_row([run, *(f"{r['aer'][m]:.1f}" for m in methods),
                           *(f"{r['agreement'][p]['spearman']:+.2f} "
                             f"({100 * r['agreement'][p]['top1']:.0f} %)" for p in pairs),
                           f"{r['ig_delta_median']:.2f}"]))
    tokens = next(iter(runs.values()))["agreement"][pairs[0]]["tokens"]
    return "\n".join(lines + [
        "", f"{d['task']}, the first {d['sentences']} {d['split']} pairs forced to the "
        f"references ({tokens:,} output tokens); AER of the argmax per target word; agreement: "
        "mean Spearman correlation of the magnitudes over the source tokens, per output token, "
        f"and in brackets how often both put the same source token first; integrated "
        f"gradients with {d['ig_steps']} steps (the gap: how far their scores' sum misses the "
        "log-probability's change from the baseline).", "", _provenance(d, name, d["command"])])


def attribution_speed(name: str = "explain_speed_transformer-small") -> str:
    """How long `attnmt explain --attribution` computes, beside the explanation alone."""
    d = _load(name)
    m = d["median"]
    steps = sorted(int(k.split("_")[1]) for k in m if k.startswith("attribution_"))
    lines = _head(["what", "median ms", "× greedy translation"])
    lines += [_row(["greedy translation", f"{m['greedy_ms']:.0f}", "1.0"]),
              _row(["explain (every number of every step)", f"{m['explain_ms']:.0f}",
                    f"{m['explain_ms'] / m['greedy_ms']:.1f}"])]
    lines += [_row([f"explain --attribution, {n} integrated-gradient steps (completeness gap "
                    f"{m[f'ig_delta_{n}']:.2f} nats)", f"{m[f'attribution_{n}_ms']:.0f}",
                    f"{m[f'attribution_{n}_ms'] / m['greedy_ms']:.1f}"]) for n in steps]
    words = d["sentences"][0]["output_words"]
    return "\n".join(lines + [
        "", f"{Path(d['run']).name}, {len(d['sentences'])} validation sentences of "
        f"{d['sentences'][0]['source_tokens']} source tokens (the first has {words} output "
        f"tokens), {d['threads']} threads, in-process (the command adds its start-up).", "",
        _provenance(d, name, d["command"])])


def terminology(name: str = "terminology_m30k") -> str:
    """Constrained beam search with terms drawn from the reference, against plain beam."""
    d = _load(name)
    lines = _head(["terms per sentence", "terms", "term use, plain beam", "term use, "
                   "constrained", "BLEU, plain beam", "BLEU, constrained",
                   "speed vs plain beam"])
    lines += [_row([r["terms_per_sentence"], r["terms"], f"{r['plain']['term_use']:.1f} %",
                    f"{r['constrained']['term_use']:.1f} %", f"{r['plain']['bleu']:.2f}",
                    f"{r['constrained']['bleu']:.2f}",
                    f"x{r['constrained']['speed_vs_plain']:.2f}"]) for r in d["rows"]]
    return "\n".join(lines + ["", f"{d['split']}, beam {d['beam']}, run `{d['run']}`; "
                               "speed: median of the per-round ratios over "
                               f"{d['rounds']} rounds.", "", _provenance(d, name, d["command"])])


def repetition(name: str = "repetition_m30k") -> str:
    """Validation BLEU, repeated words, length and speed per repetition/coverage setting."""
    d = _load(name)
    lines = _head(["setting", f"{d['split']} BLEU", "outputs repeating a word bigram",
                   "length / reference", "outputs changed", "speed vs plain beam"])
    lines += [_row([r["setting"], f"{r['bleu']:.2f}", f"{r['repeating_outputs']:.1f} %",
                    f"{r['length_ratio']:.3f}", f"{r['changed_outputs']} / {d['sentences']}",
                    f"x{r['speed_vs_plain']:.2f}"]) for r in d["rows"]]
    return "\n".join(lines + ["", f"beam {d['beam']}, run `{d['run']}`; the references repeat a "
                               f"word bigram in {d['reference_repeating']:.1f} % of sentences; "
                               "speed: median of the per-round ratios over "
                               f"{d['rounds']} rounds.", "",
                               _provenance(d, name, d["command"])])


def sst_curve(task: str = "sst2") -> str:
    """Test accuracy by labelled-set size, from scratch and MLM pre-trained, with intervals
    (and each arm's mean dev accuracy, where settings are chosen)."""
    name = f"sst_curve_{task}"
    d = _load(name)
    lines = _head(["labelled sentences", "from scratch", "MLM pre-trained",
                   "gain (paired by seed)", "dev: scratch / pre-trained"])

    def dev(runs: list[dict]) -> str:
        return f"{sum(r['dev_accuracy'] for r in runs) / len(runs):.2f}"

    lines += [_row([f"{r['labelled']:,}", *(f"{r[k][0]:.2f} ± {r[k][1]:.2f}"
                                            for k in ("scratch", "pretrained")),
                    f"{r['gain'][0]:+.2f} ± {r['gain'][1]:.2f}",
                    f"{dev(r['runs']['scratch'])} / {dev(r['runs']['pretrained'])}"])
              for r in d["rows"]]
    marks = "; ".join(f"{k} {v}" for k, v in d["landmarks"].items())
    sets = "; ".join(f"{arm}: `{' '.join(v)}`" for arm, v in d.get("overrides", {}).items()
                     if v)
    return "\n".join(lines + ["", f"{task.upper()} test accuracy (%), mean of seeds "
                               f"{', '.join(map(str, d['seeds']))} with a 95 % t-interval; "
                               f"config `{d['config']}`"
                               + (f" with overrides chosen on dev ({sets})" if sets else "")
                               + f", pre-trained run `{d['mlm']}`. "
                               f"Published, for orientation only: {marks}.", "",
                               _provenance(d, name, d["command"])])


def sst_screen(name: str = "sst_screen") -> str:
    """The dev screen that chose each arm's pooling and rate for the SST curve."""
    d = _load(name)
    lines = _head(["arm", "pooling", "peak rate", "best dev accuracy"])
    lines += [_row([r["arm"], r["pooling"], f"{r['lr']:g}", f"{r['dev_accuracy']:.2f}"])
              for r in d["rows"]]
    return "\n".join(lines + ["", f"SST-2 dev accuracy (%), {d['labelled']:,} labelled "
                               f"sentences, {d['updates']} updates, seed {d['seed']}.", "",
                               _provenance(d, name, d["command"])])


def rnn_screen(name: str = "rnn_screen") -> str:
    """The val screen that chose the recurrent recipe of the Multi30k study."""
    d = _load(name)
    lines = _head(["run", "settings", "minutes", "updates", "target tokens/s",
                   "val BLEU (greedy) at the end"])
    for run, r in d["rows"].items():
        shown = [s for s in r["settings"] if not s.startswith("train.valid_every")]
        bleu = f"{r['final_bleu']:.2f}" if r["part"] == "screen" else "—"
        lines.append(_row([run, " ".join(f"`{s}`" for s in shown), f"{r['minutes']:g}",
                           f"{r['updates']:,}", f"{r['tokens_per_s']:,.0f}", bleu]))
    return "\n".join(lines + ["", _provenance(d, name, d["command"])])


def ensemble(name: str = "ensemble_m30k") -> str:
    """Test BLEU of each run alone and of their ensembles."""
    d = _load(name)
    lines = _head(["runs", f"{d['split']} BLEU, beam {d['beam']}", "sentences/s"])
    lines += [_row([" + ".join(r["runs"]), f"{r['bleu']:.2f}", f"{r['sentences_per_s']:.1f}"])
              for r in d["rows"]]
    return "\n".join(lines + ["", _provenance(d, name, d["command"])])


def finetune(name: str = "finetune_numbers_dates") -> str:
    """Full fine-tuning against LoRA and a frozen encoder: cost, and both tasks' scores."""
    d = _load(name)
    lines = _head(["recipe", "trainable parameters", "updates/s", "gradients + Adam MiB",
                   "process peak MiB", "numbers test exact %", "dates test exact %"])
    for recipe, r in d["rows"].items():
        what = "numbers model (before)" if recipe == "base" else recipe
        lines.append(_row([what, f"{r['trainable']:,} of {r['parameters']:,}",
                           r.get("updates_per_s", "–"), r.get("grad_and_adam_mib", "–"),
                           r.get("peak_rss_mib", "–"), r["numbers"], r["dates"]]))
    return "\n".join(lines + ["", _provenance(d, name, d["command"])])


def data_filtered(name: str = "data_scaling") -> str:
    """Two weighted corpora through the filters, at the smallest and largest size."""
    d = _load(name)
    lines = _head(["pairs", "prepare s", "prepare peak PSS MiB", "kept of read (a / b)",
                   "duplicates", "copies", "ratio", "warm start s", "training RSS / own "
                   "(anonymous) MiB"])
    for r in d["filtered_by_size"]:
        c, p, t = r["counts"], r["prepare"], r["train"]
        lines.append(_row([f"{r['pairs']:,}", p["seconds"], f"{p['peak_pss_mib']:,}",
                           f"{c['a']['kept']:,} / {c['b']['kept']:,} of "
                           f"{c['a']['lines'] + c['b']['lines']:,}",
                           f"{c['a']['duplicate'] + c['b']['duplicate']:,}",
                           f"{c['a']['copy'] + c['b']['copy']:,}",
                           f"{c['a']['ratio'] + c['b']['ratio']:,}",
                           t["start_to_first_update_s"],
                           f"{t['peak_rss_mib']:,} / {t['peak_anon_mib']:,}"]))
    q = d["filtered_ratios"]
    note = (f"{q['pairs']:,.0f}× the pairs: preparation {q['prepare_seconds']}× the time and "
            f"{q['prepare_peak_pss']}× the peak memory; training {q['train_peak_rss']}× the "
            f"resident and {q['train_peak_anon']}× its own memory, {q['train_start']}× the "
            "start.")
    return "\n".join(lines + ["", note, "", _provenance(d, name, d["filtered_by_size_command"])])


def spm_alpha(name: str = "spm_alpha_m30k") -> str:
    """Validation scores of the shipped config with each subword-sampling alpha."""
    d = _load(name)
    lines = _head(["data.spm_alpha", "updates in the budget", "val BLEU (beam 5)", "val chrF",
                   "val loss"])
    for r in d["rows"]:
        what = f"{r['alpha']:g}" + (" (one best segmentation)" if r["alpha"] == 0 else "")
        lines.append(_row([what, f"{r['updates']:,}", f"{r['val_bleu_beam5']:.2f}",
                           f"{r['val_chrf_beam5']:.2f}", f"{r['val_loss']:.3f}"]))
    return "\n".join(lines + ["", _provenance(d, name, d["command"])])


def lstm_bridge(name: str = "lstm_bridge") -> str:
    """The fixed-context LSTM with and without tanh on its bridged cell state, the minimal
    plain-PyTorch LSTM and the GRU: validation loss and what reaches the encoder."""
    d = _load(name)
    steps = [c["step"] for c in d["runs"][0]["curve"]]
    lines = _head(["variant", *(f"val loss @{s}" for s in steps), "encoder cells ⌀, long",
                   "tanh-saturated share, short / long", "encoder gradient norm"])
    for r in d["runs"]:
        end = r["curve"][-1]
        cells = (f"{end['cell_abs_long']:.2f}", f"{end['saturated_short']:.2f} / "
                 f"{end['saturated_long']:.2f}") if "cell_abs_long" in end else ("–", "–")
        lines.append(_row([r["variant"], *(f"{c['val_loss']:.3f}" for c in r["curve"]),
                           *cells, f"{end['encoder_grad_norm']:.4f}"]))
    return "\n".join(lines + ["", _provenance(d, name, d["command"])])


def _study(name: str) -> Callable[[], str]:
    def table() -> str:
        from attnmt.studies.report import join_table, length_table, summary_table

        report = json.loads((ROOT / "docs/results" / name / "results.json").read_text())
        joined = join_table(report)
        return "\n".join([*summary_table(report), "", "¹ high-water mark of the process that "
                          "trains the runs one after another, so a run's figure includes the "
                          "runs before it.", "", f"{report['eval']['metric']} by source "
                          f"length ({report['eval']['length']}), 95 % bootstrap interval in "
                          "brackets:", "", *length_table(report), "",
                          *([f"{report['eval']['metric']} by the number k of test pairs "
                             "joined into one example:", "", *joined, ""] if joined else []),
                          f"*From `docs/results/{name}/results.json`; rerun: `attnmt compare "
                          f"{report['study_file']} --out docs/results/{name}`.*"])
    table.__doc__ = f"The {name} study's summary and its score by length."
    return table


TABLES: dict[str, Callable[[], str]] = {
    "time-to-quality": time_to_quality, "test-margins": test_margins,
    "multi30k-marks": multi30k_marks, "multi30k-levers": multi30k_levers,
    "multi30k-levers-intel": lambda: multi30k_levers("time_to_quality_ablation_intel",
                                                     "--round intel "),
    "multi30k-rnn": multi30k_rnn, "peers": peers, "parallelism": parallelism,
    "decoding-speed": decoding_speed, "serve-load": serve_load, "search-gap": search_gap,
    "alignment": alignment,
    "alignment-timeline": alignment_timeline, "head-importance": head_importance,
    "alignment-multi30k": lambda: alignment("alignment_align-m30k"),
    "head-importance-multi30k": lambda: head_importance("head_importance_multi30k"),
    "attribution-multi30k": attribution, "attribution-speed": attribution_speed,
    "attribution-demo": lambda: attribution("attribution_demo"),
    "attribution-speed-rnn": lambda: attribution_speed("explain_speed_rnn-dot"),
    "terminology": terminology, "ensemble": ensemble, "repetition": repetition,
    "sst-curve-sst2": sst_curve, "sst-curve-sst5": lambda: sst_curve("sst5"),
    "sst-screen": sst_screen, "finetune": finetune, "data-filtered": data_filtered,
    "spm-alpha": spm_alpha, "lstm-bridge": lstm_bridge, "rnn-screen": rnn_screen,
    **{f"study-{p.parent.name}": _study(p.parent.name)
       for p in sorted((ROOT / "docs/results").glob("*/results.json"))}}


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
