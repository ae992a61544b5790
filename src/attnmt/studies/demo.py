"""``make demo``: the context-vector bottleneck and attention, offline, in a few minutes.

The demo is a study (``studies/demo.yaml`` inside the package) run by the same
machinery as ``attnmt compare``: two GRU models of the same size, one without
attention and one with Luong dot attention, trained for the same time on German
-> English number words. This module only prints what the report holds in a form
that reads well in a terminal: exact match and BLEU by the number of items, and
a few examples from each model.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..data.synthetic import ITEM_SEP
from ..inference.translator import Translator
from .compare import compare, load_study

STUDY = Path(__file__).parent / "demo.yaml"
LABELS = {"seq2seq-gru": "seq2seq (no attention)", "rnn-dot": "rnn-dot (attention)"}


def run_demo(out: Path, minutes: float = 2.0) -> dict:
    """Train (or reuse) the demo's two runs in ``out`` and print the comparison."""
    study = load_study(STUDY)
    synth = study["config"]["data"]["synth"]
    click.echo(f"task: German -> English number words, {synth['min_items']}-"
               f"{synth['max_items']} numbers per line, {synth['n']} training pairs")
    report = compare(STUDY, out, budget_minutes=minutes, log=click.echo)
    _print_table(report["runs"])
    _print_examples(out, report)
    click.echo(f"\nwrote {out / 'report.md'}, {out / 'score_by_length.png'} (exact match by "
               f"length) and {out / 'attention_1.png'} (attention heatmap)")
    return report


def _print_table(runs: dict) -> None:
    names = list(runs)
    buckets = [r["bucket"] for r in runs[names[0]]["by_length"]]
    click.echo("\nexact match % / BLEU on the test set, by number of items per sentence")
    click.echo(f"{'items':>8} " + "".join(f"{LABELS.get(n, n):>28}" for n in names))
    for b in buckets:
        row = f"{b:>8} "
        for n in names:
            r = next((x for x in runs[n]["by_length"] if x["bucket"] == b), None)
            row += f"{r['exact']:>18.1f} / {r['bleu']:5.1f}" if r else f"{'-':>28}"
        click.echo(row)
    click.echo(f"{'all':>8} " + "".join(f"{runs[n]['exact']:>18.1f} / {runs[n]['bleu']:5.1f}"
                                        for n in names))


def _print_examples(out: Path, report: dict) -> None:
    data = Path(report["data_dir"])
    split = report["test_split"]
    src = (data / f"{split}.de").read_text(encoding="utf-8").splitlines()
    ref = (data / f"{split}.en").read_text(encoding="utf-8").splitlines()
    items = [s.count(ITEM_SEP) + 1 for s in src]
    translators = {n: Translator.from_run(out / "runs" / n) for n in report["runs"]}
    click.echo("\nexamples (reference, then each model):")
    for want in (2, 5, 11):
        i = min(range(len(items)), key=lambda k: (abs(items[k] - want), k))
        click.echo(f"  de:   {src[i]}\n  ref:  {ref[i]}")
        for name, tr in translators.items():
            click.echo(f"  {LABELS.get(name, name).split()[0]:<7} "
                       f"{tr.translate([src[i]], beam=1)[0][0].text}")
        click.echo("")
