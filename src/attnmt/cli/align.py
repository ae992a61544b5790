"""``attnmt align``: word alignments from a model's attention, optionally scored."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import UserError
from . import Finite, cli
from .use import _read_input, _write_output


@cli.command()
@click.argument("run_dir", type=click.Path())
@click.option("-i", "--input", "input_path", default=None, help="source file (default stdin)")
@click.option("-t", "--target", "target_path", default=None,
              help="target file: align each source line with this line (forced decoding, "
                   "e.g. the reference) instead of with the model's own translation")
@click.option("-o", "--output", "output_path", default=None,
              help="alignments, Pharaoh i-j per line (default stdout)")
@click.option("--method", default="argmax", show_default=True,
              type=click.Choice(["argmax", "threshold"]),
              help="argmax: the most-attended source word per target word; threshold: every "
                   "pair whose weight reaches --threshold")
@click.option("--shift", is_flag=True,
              help="read each target word's attention from the step that takes it as input "
                   "(Chen et al. 2020's shift-att) instead of the step that writes it")
@click.option("--threshold", default=0.5, show_default=True, type=Finite(0.0, 1.0))
@click.option("--layer", default=None, type=click.IntRange(min=0),
              help="Transformer: one layer (default: the mean of all layers and heads)")
@click.option("--head", default=None, type=click.IntRange(min=0), help="one head of --layer")
@click.option("--beam", default=1, show_default=True, type=click.IntRange(1, 64),
              help="without --target: the beam that finds the translation")
@click.option("--gold", "gold_path", default=None, type=click.Path(),
              help="a gold alignment (Pharaoh; i?j marks a possible link): print AER, "
                   "precision and recall, and with --heads those of every layer and head; "
                   "needs --target")
@click.option("--heads", is_flag=True, help="with --gold: score every layer and head")
@click.option("--json", "json_path", default=None, type=click.Path(),
              help="with --gold: write the scores here")
@click.option("--with-translation", is_flag=True,
              help="write 'translation<TAB>alignment' lines (without --target)")
def align(run_dir, input_path, target_path, output_path, method, shift, threshold, layer, head,
          beam, gold_path, heads, json_path, with_translation) -> None:
    """Word alignments between each source line and its translation, read from the model's
    attention: Pharaoh `i-j` links (source word i, target word j, whitespace words from 0),
    as fast_align and eflomal write them."""
    from ..data.pharaoh import to_pharaoh
    from ..inference import alignment
    from ..inference.translator import Translator

    if gold_path and not target_path:
        raise UserError("--gold needs --target: a gold alignment is of given sentence "
                        "pairs, so the model must be forced to the same target")
    if (heads or json_path) and not gold_path:
        raise UserError("--heads and --json score alignments: give --gold FILE too")
    translator = Translator.from_run(run_dir)
    sources = _read_input(input_path)
    targets = _read_input(target_path) if target_path else None
    golds = alignment.read_gold(gold_path, sources, targets) if gold_path else None
    links, written = alignment.align(translator, sources, targets, method=method,
                                     threshold=threshold, layer=layer, head=head, beam=beam,
                                     shift=shift)
    lines = [to_pharaoh(x) for x in links]
    if with_translation and not targets:
        lines = [f"{text}\t{line}" for text, line in zip(written, lines, strict=True)]
    _write_output("".join(line + "\n" for line in lines), output_path)
    if golds is None:
        return
    scores = (alignment.head_scores(translator, sources, targets, golds, method=method,
                                    threshold=threshold, shift=shift) if heads else
              {"mean": alignment.score(links, golds)})
    for line in _describe(scores, layer, head):
        click.echo(line, err=output_path is None)
    if json_path:
        Path(json_path).write_text(json.dumps({"run": str(run_dir), "method": method,
                                               "shift": shift, "threshold": threshold,
                                               **scores}, indent=2))


def _describe(scores: dict, layer: int | None, head: int | None) -> list[str]:
    def line(name: str, s: dict) -> str:
        p, r = ("–" if s[k] is None else f"{s[k]:.2f}" for k in ("precision", "recall"))
        return f"{name:<18} AER {s['aer']:6.2f}  precision {p:>6}  recall {r:>6}"

    which = ("mean attention" if layer is None else f"layer {layer}"
             + ("" if head is None else f" head {head}"))
    out = [line(which if not scores.get("heads") else "mean attention", scores["mean"])]
    out += [line(f"layer {s['layer']}", s) for s in scores.get("layers", [])]
    out += [line(f"layer {s['layer']} head {s['head']}", s) for s in scores.get("heads", [])]
    return out + [f"({scores['mean']['sentences']} sentence pairs)"]
