"""``attnmt explain RUN "sentence"``: attention's five steps with the model's own numbers.

Prints one output word's steps in the terminal and, on request, writes the whole
explanation as a self-contained web page (``--html``), a figure (``--png``) or JSON.
Positions, steps, layers and heads count from 0, as in the API.
"""

from __future__ import annotations

import json

import click

from ..errors import UserError
from ..explain.text import describe, describe_attribution
from ..inference.alignment import check_layer_head
from . import cli


def _positions(text: str | None) -> list[int]:
    if not text:
        return []
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--mask {text!r}: give source positions as numbers, e.g. --mask 0,3"
                        ) from None


def _heads(values: tuple[str, ...]) -> list[tuple[int, int]]:
    heads = []
    for value in values:
        try:
            layer, head = (int(x) for x in value.split(":"))
        except ValueError:
            raise UserError(f"--zero-head {value!r}: give LAYER:HEAD, e.g. --zero-head 0:2"
                            ) from None
        heads.append((layer, head))
    return heads


def _check_view(data: dict, step: int, kind: str, layer: int | None, head: int | None) -> None:
    n = len(data["src_tokens"]) if kind == "encoder" else len(data["steps"])
    what = "source positions" if kind == "encoder" else "output steps"
    if not 0 <= step < n:
        raise UserError(f"--step {step} is out of range: this sentence has {what} 0..{n - 1}")
    if data["family"] != "transformer":
        if kind != "cross" or layer is not None or head is not None:
            raise UserError("--attention, --layer and --head apply to Transformer runs; this "
                            "model has one attention")
        return
    shape = len(data["layers_kv"]), len(data["steps"][0]["layers"][0]["cross"]["weights"])
    check_layer_head(shape, layer, head)


@cli.command()
@click.argument("run_dir", type=click.Path())
@click.argument("sentence")
@click.option("--step", default=0, show_default=True, type=int,
              help="the output word to show (0 = the first; the source position with "
                   "--attention encoder)")
@click.option("--mask", default=None, help="source positions to mask out of the decoder's "
              "attention before decoding, e.g. 0,3")
@click.option("--zero-head", multiple=True, metavar="LAYER:HEAD",
              help="Transformer: silence a cross-attention head (repeatable)")
@click.option("--attention", "kind", default="cross", show_default=True,
              type=click.Choice(["cross", "self", "encoder"]), help="Transformer: which attention")
@click.option("--layer", default=None, type=int, help="Transformer: one layer")
@click.option("--head", default=None, type=int, help="Transformer: one head")
@click.option("--top-k", default=5, show_default=True, type=click.IntRange(1, 50))
@click.option("--html", "html_path", default=None, type=click.Path(),
              help="write a self-contained page (works offline)")
@click.option("--png", "png_path", default=None, type=click.Path(), help="write a figure")
@click.option("--json", "json_path", default=None, type=click.Path(), help="write the numbers")
@click.option("--timeline", is_flag=True, help="the attention under every checkpoint the "
              "run kept (train.keep_every), oldest first")
@click.option("--attribution", is_flag=True,
              help="beside attention: input x gradient and integrated gradients (Captum) on "
                   "the source embeddings and the exact effect of masking each source token, "
                   "with their rank agreement (--png draws the four side by side)")
@click.option("--ig-steps", default=8, show_default=True, type=click.IntRange(2, 512),
              help="with --attribution: integrated gradients' steps (more: a smaller "
                   "completeness gap, more time)")
@click.option("--checkpoint", default="best", show_default=True)
def explain(run_dir, sentence, step, mask, zero_head, kind, layer, head, top_k, html_path,
            png_path, json_path, timeline, attribution, ig_steps, checkpoint) -> None:
    """Attention's five steps, with the model's own numbers, while translating SENTENCE.

    RUN_DIR may also be a study folder (the output of `attnmt compare`): every run of the
    study explains the same sentence, side by side."""
    from ..api import load_predictor
    from ..explain.numbers import to_json
    from ..rundir import study_runs

    runs = study_runs(run_dir)
    one_run = [name for name, used in (("--step", step), ("--mask", mask),
                                       ("--zero-head", zero_head), ("--attention", kind != "cross"),
                                       ("--layer", layer is not None), ("--head", head is not None),
                                       ("--checkpoint", checkpoint != "best"),
                                       ("--attribution", attribution)) if used]
    if (runs or timeline) and one_run:
        raise UserError(f"{', '.join(one_run)} apply to one run's explanation, not to "
                        f"{'a study folder' if runs else '--timeline'}; leave them out")
    if runs:
        return _study(runs, sentence, top_k, html_path, png_path, json_path)
    if timeline:
        return _timeline(run_dir, sentence, html_path, png_path, json_path)
    model = load_predictor(run_dir, checkpoint)
    if not hasattr(model, "explain"):
        raise UserError(f"{run_dir} is a language model; explain shows translation models and "
                        "classifiers (for a language model: attnmt plot attention)")
    if hasattr(model, "labels"):
        return _classifier(model, run_dir, sentence, kind, attribution, ig_steps,
                           html_path, png_path, json_path)
    data = to_json(model.explain(sentence, top_k=top_k, masked=_positions(mask),
                                 zero_heads=_heads(zero_head), attribution=attribution,
                                 ig_steps=ig_steps))
    _check_view(data, step, kind, layer, head)
    for line in describe(data, step, kind, layer, head):
        click.echo(line)
    if attribution and kind != "encoder":
        for line in describe_attribution(data["attribution"], step):
            click.echo(line)
    _write(data, run_dir, step, html_path, png_path, json_path)


def _classifier(model, run_dir: str, sentence: str, kind: str, attribution: bool,
                ig_steps: int, html_path, png_path, json_path) -> None:
    """A classifier run: the attention from the pooled position per layer (and, with
    --attribution, the attributions for the predicted label)."""
    from ..explain.classifier import describe_classifier
    from ..explain.numbers import to_json

    if kind != "cross" or html_path:
        raise UserError(f"{'--html' if html_path else '--attention'} applies to translation "
                        "runs; a classifier's view is its attention from the pooled position "
                        "(the table, --png, --json, or the page of attnmt serve)")
    data = to_json(model.explain(sentence, attribution=attribution, ig_steps=ig_steps))
    for line in describe_classifier(data):
        click.echo(line)
    if png_path:
        from ..studies.plots import classifier_figure

        classifier_figure(data, png_path)
        click.echo(f"wrote {png_path}")
    _write(data, run_dir, 0, None, None, json_path)


def _study(runs: dict, sentence: str, top_k: int, html_path, png_path, json_path) -> None:
    from ..api import load_predictor
    from ..explain.numbers import explain_runs, to_json
    from ..studies.plots import attention_grid

    data = to_json(explain_runs({name: load_predictor(path).translator
                                 for name, path in runs.items()}, sentence, top_k))
    for name, shown in data["runs"].items():
        click.echo(f"{name:>24}: {shown['translation']}")
    if png_path:
        attention_grid([{"weights": r["alignment"], "src_tokens": r["src_tokens"],
                         "tgt_tokens": r["tgt_tokens"], "title": name}
                        for name, r in data["runs"].items() if r["alignment"] is not None],
                       png_path)
        click.echo(f"wrote {png_path}")
    _write(data, "study", 0, html_path, None, json_path, view="study")


def _timeline(run_dir: str, sentence: str, html_path, png_path, json_path) -> None:
    from ..explain.numbers import timeline, to_json
    from ..studies.plots import attention_grid

    data = to_json(timeline(run_dir, sentence))
    for frame in data["frames"]:
        click.echo(f"update {frame['step']:>7}: {frame['translation']}")
    if png_path:
        frames = data["frames"]                # where the translation changed, and the last
        changed = [i for i, f in enumerate(frames)
                   if i == 0 or f["translation"] != frames[i - 1]["translation"]]
        if len(changed) > 5:
            changed = [changed[round(k * (len(changed) - 1) / 4)] for k in range(5)]
        picked = sorted({*changed, len(frames) - 1})
        attention_grid([{"weights": frames[i]["weights"], "src_tokens": data["src_tokens"],
                         "tgt_tokens": frames[i]["tgt_tokens"],
                         "title": f"update {frames[i]['step']}"} for i in picked], png_path,
                       columns=3)
        click.echo(f"wrote {png_path}")
    _write(data, run_dir, 0, html_path, None, json_path, view="timeline")


def _write(data: dict, run_dir: str, step: int, html_path, png_path, json_path,
           view: str = "explain") -> None:
    if html_path:
        from ..serve.explain_page import explain_html

        page = explain_html(data, view=view, step=step, title=f"attnmt explain — {run_dir}",
                            subtitle=data.get("translation") or data.get("text", ""))
        with open(html_path, "w", encoding="utf-8") as f:
            f.write(page)
        click.echo(f"wrote {html_path}")
    if png_path:
        from ..studies.plots import attribution_figure, explain_figure

        if "attribution" in data:
            attribution_figure(data["attribution"], png_path)
        else:
            explain_figure(data, step, png_path)
        click.echo(f"wrote {png_path}")
    if json_path:
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False)
        click.echo(f"wrote {json_path}")
