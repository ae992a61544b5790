"""Time to quality: test2016 BLEU against minutes of training on this CPU.

    python benchmarks/time_to_quality.py [--minutes 25] [--mark 2.5] [--out runs/ttq]

Trains attnmt's shipped ``configs/multi30k_transformer_small.yaml`` for ``--minutes`` with
a kept checkpoint at every ``--mark`` minutes of training time (``train.save_every_minutes``:
the time spent saving is taken off the clock; validation during training is switched off,
so evaluation costs the training nothing), then scores every mark's checkpoint on val and
test2016, greedy and beam 5 with the config's decoding settings, sacreBLEU cased 13a and
lowercased 13a (``-lc``, the form published Multi30k results use). Reports the minute at
which attnmt first reaches fairseq's test2016 BLEU (beam 5) at the end of fairseq's own
run and writes
``results/time_to_quality.json`` and ``docs/figures/time_to_quality.png``.

An ablation row (``--row NAME --set KEY=VALUE ...``) trains the config with those
settings and scores every mark on **val only** (the recipe is chosen on val, never on
test2016), plus the average of the last 2 and 3 marks' weights at the end; rows go to
``results/time_to_quality_ablation.json`` and ``--table`` prints them as the table of
docs/results/multi30k.md.
A screening row (``--stop-at 12.5``) keeps the whole budget's schedule but stops the run
once that mark is kept and scores that mark only: a point of the full curve at part of the
cost.

fairseq's own curve is measured by ``fairseq_curve.py`` (its checkpoints every 100 updates,
each at the minute of training time fairseq's log gives it); once it has run, the report
and the figure hold attnmt against it, and ``--figure`` redraws both from the saved
results without training. ``--config`` trains another config the same way (its curve goes
to ``results/time_to_quality_STEM.json``, without the figure; its rows to
``results/time_to_quality_ablation_STEM.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from common import MULTI30K, RESULTS, machine, save

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs/multi30k_transformer_small.yaml"


def train(out: Path, config: Path, minutes: float, mark: float, threads: int,
          extra: list[str], stop_at: float | None = None) -> None:
    """``config`` (with ``extra`` settings), budget ``minutes``, a kept checkpoint
    every ``mark`` minutes; with ``stop_at``, stopped (SIGTERM: it finishes its update and
    saves) once the mark at ``stop_at`` minutes is kept, its schedule still that of the
    whole budget."""
    if (out / "checkpoints/finished.json").is_file() or (stop_at and mark_kept(out, stop_at)):
        print(f"{out} has finished training; scoring its marks")
        return
    sets = {"train.max_minutes": minutes, "train.save_every_minutes": mark,
            "train.valid_every": 10**9, "train.max_steps": 10**9, "train.threads": threads}
    cmd = [sys.executable, "-m", "attnmt.cli", "train", str(config), "--out", str(out)]
    for key, value in sets.items():
        cmd += ["--set", f"{key}={value}"]
    for setting in extra:
        cmd += ["--set", setting]
    env = {**os.environ, "ATTNMT_DATA_DIR": str(MULTI30K)}
    proc = subprocess.Popen(cmd, env=env)
    while proc.poll() is None:
        if stop_at and mark_kept(out, stop_at):
            proc.send_signal(signal.SIGTERM)
            proc.wait()
            return
        time.sleep(2)
    if proc.returncode:
        raise SystemExit(f"training failed (exit {proc.returncode}); see the output above")


def mark_kept(out: Path, minutes: float) -> bool:
    """Whether the run's mark at ``minutes`` is kept."""
    metrics = out / "metrics.jsonl"
    return metrics.is_file() and any(m["minutes"] >= minutes for m in marks(out))


def marks(out: Path) -> list[dict]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, filter(None, lines)) if r.get("type") == "mark"]


def score(out: Path, which: str, splits: dict[str, tuple[list[str], list[str]]]) -> dict:
    """BLEU (cased and lowercased 13a) of one checkpoint, greedy and beam 5."""
    import sacrebleu

    from attnmt.inference.translator import Translator

    tr = Translator.from_run(out, which)
    row = {}
    for split, (src, refs) in splits.items():
        for name, beam in (("greedy", 1), ("beam5", 5)):
            hyps = [h[0].text for h in tr.translate(src, beam=beam, batch_size=64)]
            row[f"{split}_{name}"] = round(sacrebleu.corpus_bleu(hyps, [refs]).score, 2)
            row[f"{split}_{name}_lc"] = round(
                sacrebleu.corpus_bleu(hyps, [refs], lowercase=True).score, 2)
    return row


def first_minute(rows: list[dict], key: str, target: float) -> float | None:
    return next((r["minutes"] for r in rows if r[key] >= target), None)


def fairseq_curve(name: str = "") -> list[dict]:
    """fairseq's own marks (``fairseq_curve.py [--name NAME]``), or none where it has not
    been run."""
    path = RESULTS / f"time_to_quality_fairseq{'_' + name if name else ''}.json"
    return json.loads(path.read_text())["marks"] if path.is_file() else []


def fairseq_where(ours: str) -> str:
    """Where fairseq's curve was measured, when that is not the CPU ``ours`` that measured
    attnmt's curve (the minutes then compare machines too); "" when it is."""
    path = RESULTS / "time_to_quality_fairseq.json"
    theirs = json.loads(path.read_text()) if path.is_file() else {}
    cpu = theirs.get("machine", {}).get("cpu")
    return f", {cpu}, {theirs['date']}" if cpu and cpu != ours else ""


def figure(rows: list[dict], fairseq: list[dict], target: float | None, path: Path,
           cpu: str = "") -> None:
    """attnmt's curve, fairseq's (and fairseq's with the tuned levers, where measured),
    the earlier recipe's val curve and fairseq's end score as a line."""
    from attnmt.studies.plots import plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    minutes = [r["minutes"] for r in rows]
    for key, label in (("test_beam5", "test2016, beam 5"), ("test_greedy", "test2016, greedy"),
                       ("val_beam5", "val, beam 5")):
        ax.plot(minutes, [r[key] for r in rows], marker="o", label=f"attnmt {label}")
    if fairseq:
        ax.plot([r["minutes"] for r in fairseq], [r["test_beam5"] for r in fairseq],
                color="black", marker="s",
                label=f"fairseq test2016, beam 5 (peers' recipe{fairseq_where(cpu)})")
    tuned = fairseq_curve("tuned")
    if tuned:
        ax.plot([r["minutes"] for r in tuned], [r["test_beam5"] for r in tuned], color="black",
                marker="s", markerfacecolor="white", linestyle="--",
                label=f"fairseq test2016, beam 5, 1,024-token batches, lr 1e-3{fairseq_where(cpu)}")
    ablation = RESULTS / "time_to_quality_ablation.json"
    first = json.loads(ablation.read_text()) if ablation.is_file() else {"rows": {}}
    where = (f", {first['machine']['cpu']}, {first['date']}"
             if first["rows"] and first["machine"]["cpu"] != cpu else "")
    for row in [r for r in first["rows"].values() if not r["settings"]]:
        # the row without settings: the config before the first round of levers
        ax.plot([m["minutes"] for m in row["marks"]], [m["val_beam5"] for m in row["marks"]],
                color="grey", marker=".", linestyle=":",
                label=f"attnmt val, beam 5, before (lr 5e-4, inverse sqrt, 4,096 tokens{where})")
    if target is not None:
        ax.axhline(target, color="grey", linestyle="--",
                   label=f"fairseq at the end, test2016 beam 5 ({target:.2f})")
    ax.set_xlabel("training minutes (2 CPU cores" + (f"; attnmt: {cpu}" if cpu else "") + ")")
    ax.set_ylabel("sacreBLEU (cased, 13a)")
    ax.set_title("Multi30k de→en, the shipped config: BLEU against training time")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def averaged(out: Path, last: int, splits: dict) -> dict:
    """Scores of the mean of the last ``last`` marks' weights."""
    from attnmt.rundir import RunDir, average_checkpoints

    average_checkpoints(RunDir(out), last, kept=True)
    return score(out, "averaged", splits)


def shown(config: Path) -> str:
    """``config`` as the results name it: relative to the repository where it lies in it."""
    return str(config.relative_to(REPO)) if config.is_relative_to(REPO) else str(config)


def ablation_name(config: Path, round_: str = "") -> str:
    """The ablation file of ``config``: the shipped config's, or ``..._STEM`` for another;
    a later round of screening (``--round NAME``: another machine, another base recipe)
    keeps its rows apart in ``..._NAME``."""
    return ("time_to_quality_ablation" + ("" if config == CONFIG else f"_{config.stem}")
            + (f"_{round_}" if round_ else ""))


def ablation(config: Path, name: str, settings: list[str], rows: list[dict],
             extra: dict, round_: str = "") -> None:
    path = RESULTS / f"{ablation_name(config, round_)}.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    table = old.get("rows", {})
    table[name] = {"settings": settings, "marks": rows, **extra}
    save(ablation_name(config, round_), {"config": shown(config),
                                         "base": old.get("base", "the config as it is"),
                                         "rows": table})


def print_marks(marks: list[dict], label: str, minute: str) -> None:
    """One curve as the results page's markdown table: a column per mark."""
    print(f"| {label} | " + " | ".join(format(m["minutes"], minute) for m in marks) + " |")
    print("|---" * (len(marks) + 1) + "|")
    print("| updates | " + " | ".join(f"{m['step']:,}" for m in marks) + " |")
    for key, text in (("val_beam5", "val, beam 5"), ("test_greedy", "test2016, greedy"),
                      ("test_beam5", "test2016, beam 5"),
                      ("test_beam5_lc", "test2016, beam 5, lowercased")):
        print(f"| {text} | " + " | ".join(f"{m[key]:.2f}" for m in marks) + " |")
    print()


def print_curves() -> None:
    """attnmt's curve (``results/time_to_quality.json``), then fairseq's
    (``fairseq_curve.py``), each fairseq checkpoint at its own minute."""
    marks = json.loads((RESULTS / "time_to_quality.json").read_text())["marks"]
    print_marks(marks, "minutes", "g")
    for name, label in (("", "fairseq, peers' recipe: minutes"),
                        ("tuned", "fairseq, 1,024-token batches, lr 1e-3: minutes")):
        if curve := fairseq_curve(name):
            print_marks(curve, label, ".2f")


def print_table(config: Path, round_: str = "") -> None:
    """The curves, then ``config``'s ablation rows as a markdown table: val BLEU (beam 5)
    at 12.5 and 25 minutes."""
    print_curves()
    rows = json.loads((RESULTS / f"{ablation_name(config, round_)}.json").read_text())["rows"]
    print("| row | settings | updates | val @12.5 | val @25 | avg of the last 2 / 3 marks |")
    print("|---|---|---|---|---|---|")
    def order(item: tuple[str, dict]) -> tuple[bool, int]:    # 25-minute rows first
        return item[1]["marks"][-1]["minutes"] != 25.0, len(item[1]["settings"])

    for name, row in sorted(rows.items(), key=order):
        at = {m["minutes"]: m for m in row["marks"]}
        half, end = at.get(12.5, {}), at.get(25.0, {})
        averages = (f"{row['avg2']['val_beam5']} / {row['avg3']['val_beam5']}"
                    if "avg2" in row else "—")
        print(f"| {name} | {' '.join(row['settings']) or '—'} | "
              f"{row['marks'][-1]['step']:,} | {half.get('val_beam5', '—')} | "
              f"{end.get('val_beam5', '—')} | {averages} |")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", type=Path, default=CONFIG, help="the config to train (the "
                    "shipped Transformer config by default; another one's curve goes to "
                    "results/time_to_quality_STEM.json)")
    ap.add_argument("--minutes", type=float, default=25.0)
    ap.add_argument("--mark", type=float, default=2.5)
    ap.add_argument("--out", default="runs/ttq")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--set", dest="settings", action="append", default=[],
                    metavar="KEY=VALUE", help="a setting on top of the config")
    ap.add_argument("--row", help="an ablation row of this name: val only, into "
                    "results/time_to_quality_ablation.json (another --config's: "
                    "..._ablation_STEM.json)")
    ap.add_argument("--round", dest="round_", default="", metavar="NAME", help="with "
                    "--row or --table: a later round of screening, its rows in "
                    "results/time_to_quality_ablation_NAME.json")
    ap.add_argument("--table", action="store_true", help="print the curve and the ablation "
                    "table (markdown) and stop")
    ap.add_argument("--figure", action="store_true", help="redraw the figure and the "
                    "comparison with fairseq from the saved results (no training) and stop")
    ap.add_argument("--stop-at", type=float, help="a screening row: stop once the mark at "
                    "this minute is kept (the schedule stays that of --minutes) and score "
                    "that mark only")
    ap.add_argument("--sentences", type=int, default=0, help="score only the first N "
                    "sentences of each split (a smoke test; 0 = all)")
    return ap


def main() -> None:
    args = parser().parse_args()
    if args.table:
        return print_table(args.config.resolve(), args.round_)
    if args.figure:
        saved = json.loads((RESULTS / "time_to_quality.json").read_text())
        return report(saved, saved["marks"], None)
    import torch

    torch.set_num_threads(args.threads)
    from attnmt.data.corpus import read_lines

    out, config = Path(args.out), args.config.resolve()
    if not config.is_file():
        raise SystemExit(f"--config {args.config}: no such file; the configs are in "
                         f"{REPO / 'configs'}")
    train(out, config, args.minutes, args.mark, args.threads, args.settings, args.stop_at)
    n = args.sentences or None
    names = (("val", "val"),) if args.row else (("val", "val"), ("test", "test_2016_flickr"))
    splits = {s: (read_lines(MULTI30K / f"{f}.de")[:n], read_lines(MULTI30K / f"{f}.en")[:n])
              for s, f in names}
    rows, kept = [], marks(out)
    if args.stop_at:                        # a screening row: the mark it stopped at
        kept = [m for m in kept if m["minutes"] >= args.stop_at][:1]
    for m in kept:
        rows.append({"minutes": m["minutes"], "step": m["step"],
                     **score(out, str(m["step"]), splits)})
        print(json.dumps(rows[-1]), flush=True)
    if args.row:
        extra = ({"stopped_at": args.stop_at} if args.stop_at else
                 {f"avg{k}": averaged(out, k, splits) for k in (2, 3)})
        print(json.dumps(extra))
        if not n:
            ablation(config, args.row, args.settings, rows, extra, args.round_)
        return
    meta = {"config": shown(config), "settings": args.settings,
            "minutes": args.minutes, "mark": args.mark, "threads": args.threads}
    report(meta, rows, n)


def report(meta: dict, rows: list[dict], n: int | None) -> None:
    """fairseq's score at the end of its curve (``fairseq_curve.py``; without it, its
    25-minute score from ``results/peers.json``), the minute each toolkit first reaches
    it, the ratio, the figure and the JSON. Another config than the shipped one writes
    its curve alone, to ``results/time_to_quality_STEM.json``."""
    if meta["config"] != shown(CONFIG):
        if not n:
            save(f"time_to_quality_{Path(meta['config']).stem}", {**meta, "marks": rows})
        return
    fairseq, peers = fairseq_curve(), RESULTS / "peers.json"
    target = (fairseq[-1]["test_beam5"] if fairseq else
              json.loads(peers.read_text())["decode"]["fairseq"]["beam5"]["bleu"]
              if peers.is_file() else None)
    ours = first_minute(rows, "test_beam5", target) if target is not None else None
    theirs = first_minute(fairseq, "test_beam5", target) if fairseq else None
    tuned = fairseq_curve("tuned")
    cpu = meta.get("machine", machine())["cpu"]       # --figure: the saved curve's CPU
    elsewhere = fairseq_where(cpu)      # a ratio of minutes on two CPUs is not published
    speedup = round(theirs / ours, 2) if ours and theirs and not elsewhere else None
    print(f"fairseq's test2016 BLEU (beam 5) at the end of its run: {target}"
          + (f", first reached at {theirs} minutes" if theirs else "")
          + f"; attnmt first reaches it at {ours if ours is not None else 'no mark'} minutes"
          + (f" ({speedup}x)" if speedup else "")
          + (f" (fairseq's curve was measured elsewhere{elsewhere}: no ratio)"
             if elsewhere else ""))
    if n:                                   # a smoke test leaves the published files alone
        return
    figure(rows, fairseq, target, REPO / "docs/figures/time_to_quality.png", cpu)
    keep = ("config", "settings", "minutes", "mark", "threads")
    # --figure redraws from saved marks: they keep the day they were measured
    measured = meta.get("attnmt_curve_date", meta.get("date", time.strftime("%Y-%m-%d")))
    save("time_to_quality", {**{k: meta[k] for k in keep}, "attnmt_curve_date": measured,
                             "marks": rows,
                             "fairseq_end_test_beam5": target,
                             "fairseq_end_minutes": fairseq[-1]["minutes"] if fairseq else 25.0,
                             "fairseq_first_minute_at_its_end_bleu": theirs,
                             "attnmt_first_minute_at_fairseq_bleu": ours,
                             "speedup_to_fairseq_bleu": speedup,
                             "fairseq_tuned_first_minute_at_fairseq_bleu":
                                 first_minute(tuned, "test_beam5", target) if tuned else None,
                             "fairseq_tuned_end_test_beam5":
                                 tuned[-1]["test_beam5"] if tuned else None})


if __name__ == "__main__":
    main()
