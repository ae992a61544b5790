"""``attnmt translate | classify | generate | evaluate | plot``: use a trained run."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..config import PENALTIES, STOPPING
from ..errors import UserError
from . import SEED, Finite, cli


@cli.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path())
@click.option("-i", "--input", "input_path", default=None, help="input file (default stdin)")
@click.option("-o", "--output", "output_path", default=None, help="output file (default stdout)")
@click.option("--prefix", default=None, help="start every translation with this text")
@click.option("--prefixes", "prefix_file", default=None, type=click.Path(),
              help="a file of target prefixes, one per input line (empty: none)")
@click.option("--constraints", "constraint_file", default=None, type=click.Path(),
              help="a file of phrases each translation must contain, tab-separated, one "
              "line per input line (beam search)")
@click.option("--no-repeat-ngram", default=0, type=click.IntRange(0, 100),
              help="never repeat an n-gram of this size (0: off)")
@click.option("--coverage", default=0.0, type=Finite(0.0, 10.0),
              help="GNMT's coverage penalty weight beta (beam search; 0: off)")
@click.option("--alignments", is_flag=True, help="add each translation's word alignment "
              "(Pharaoh i-j, argmax of the mean attention) after a tab")
@click.option("--beam", default=None, type=click.IntRange(1, 64), help="beam size (1 = greedy)")
@click.option("--alpha", default=None, type=Finite(0.0, 5.0), help="GNMT length penalty")
@click.option("--nbest", default=1, type=click.IntRange(1, 64),
              help="print the K best, tab-separated with scores")
@click.option("--sample", is_flag=True, help="sample instead of searching")
@click.option("--temperature", default=1.0, type=Finite(min=0.0, min_open=True, max=100.0))
@click.option("--top-k", default=0, type=click.IntRange(min=0))
@click.option("--top-p", default=1.0, type=Finite(0.0, 1.0, min_open=True))
@click.option("--seed", default=None, type=SEED, help="seed for --sample")
@click.option("--max-len-ratio", default=None, type=Finite(0.1, 100.0))
@click.option("--checkpoint", default="best", show_default=True,
              help="best, last, averaged or a step number")
@click.option("--device", default="cpu", show_default=True)
@click.option("--engine", default="attnmt", show_default=True,
              type=click.Choice(["attnmt", "ctranslate2"]),
              help="ctranslate2: RUN_DIR is a folder made by `attnmt export ctranslate2`; "
              "--alpha is then CTranslate2's length penalty (log-probability / length^alpha)")
@click.option("--int8", is_flag=True, help="dynamic int8 quantisation of the Linear layers "
              "(CPU; faster, slightly lower BLEU)")
@click.option("--bf16", is_flag=True, help="translate in bfloat16 (GPUs, and CPUs with "
              "AVX512-BF16 or AMX; faster, BLEU may move slightly)")
@click.option("--stopping", default=None, type=click.Choice(STOPPING),
              help="when a sentence leaves the beam (default: the run's decode.stopping)")
@click.option("--length-penalty", "penalty", default=None, type=click.Choice(PENALTIES),
              help="gnmt or average (log-probability / length^alpha); default: the run's "
              "decode.length_penalty")
def translate(run_dirs, input_path, output_path, prefix, prefix_file, constraint_file,
              no_repeat_ngram, coverage, alignments, beam, alpha, nbest, sample, temperature,
              top_k, top_p, seed, max_len_ratio, checkpoint, device, engine, int8, bf16,
              stopping, penalty) -> None:
    """Translate line by line; output lines stay aligned with input lines. Several
    RUN_DIRS translate as an ensemble (their log-probabilities averaged at every step)."""
    lines = _read_input(input_path)
    options = dict(sample=sample, temperature=temperature, top_k=top_k, top_p=top_p,
                   seed=seed, stopping=stopping, penalty=penalty,
                   **_forcing(lines, prefix, prefix_file, constraint_file))
    options.update({k: v for k, v in (("no_repeat_ngram", no_repeat_ngram),
                                      ("coverage", coverage)) if v})
    if engine == "ctranslate2":
        for flag, given in (("--stopping", stopping), ("--sample", sample),
                            ("--length-penalty", penalty), ("several runs", len(run_dirs) > 1),
                            ("--alignments", alignments),
                            ("--constraints", constraint_file)):
            if given:
                raise UserError(f"{flag} applies to the attnmt engine; CTranslate2 uses its "
                                "own search")
        options = {k: v for k, v in options.items()
                   if k in ("prefixes", "no_repeat_ngram", "coverage")}
    translator = _load(run_dirs, engine, checkpoint, device, _precision(int8, bf16))
    if nbest > 1 and (beam or translator.cfg.decode.beam) < nbest:
        raise UserError(f"--nbest {nbest} needs --beam of at least {nbest}")
    if alignments and nbest > 1:
        raise UserError("--alignments goes with one translation per line; drop --nbest")
    results = translator.translate(lines, beam=beam, alpha=alpha, nbest=nbest,
                                   max_len_ratio=max_len_ratio, **options)
    if nbest > 1:
        text = "".join("\t".join(f"{h.text}\t{h.score:.4f}" for h in hyps) + "\n"
                       for hyps in results)
    elif alignments:
        text = "".join(f"{best}\t{links}\n" for best, links in
                       zip([h[0].text for h in results],
                           _alignments(translator, lines, results), strict=True))
    else:
        text = "".join(hyps[0].text + "\n" for hyps in results)
    _write_output(text, output_path)


def _load(run_dirs, engine: str, checkpoint: str, device: str, precision: str):
    """One run's translator, or the ensemble of several (attnmt engine)."""
    from ..inference.ct2engine import load_translator
    from ..inference.translator import Translator

    if len(run_dirs) == 1:
        return load_translator(run_dirs[0], engine, checkpoint, device, precision)
    return Translator.from_runs(run_dirs, checkpoint, device, precision)


def _forcing(lines: list[str], prefix: str | None, prefix_file: str | None,
             constraint_file: str | None) -> dict:
    """The translate options --prefix, --prefixes and --constraints ask for, one per line."""
    from ..data.corpus import read_lines

    if prefix is not None and prefix_file:
        raise UserError("--prefix and --prefixes exclude each other; choose one")
    options: dict = {}
    if prefix is not None:
        options["prefixes"] = [prefix] * len(lines)
    for name, path in (("prefixes", prefix_file), ("constraints", constraint_file)):
        if not path:
            continue
        given = read_lines(path)
        if len(given) != len(lines):
            raise UserError(f"--{name} {path} has {len(given)} lines but the input has "
                            f"{len(lines)}; give one line per input line (an empty one "
                            "for none)")
        options[name] = given if name == "prefixes" else \
            [[p for p in line.split("\t") if p.strip()] for line in given]
    return options


def _alignments(translator, lines: list[str], results) -> list[str]:
    """Each line's Pharaoh alignment with its best translation ("" for an empty line)."""
    from ..data.pharaoh import to_pharaoh
    from ..inference.alignment import align

    if not getattr(translator, "has_attention", False) or translator.engine != "attnmt":
        raise UserError("--alignments are read from the attention: they need a model with "
                        "attention and the attnmt engine")
    links, _ = align(translator, lines, [hyps[0].text for hyps in results])
    return [to_pharaoh(found) for found in links]


def _precision(int8: bool, bf16: bool) -> str:
    """The inference number format chosen by the --int8 / --bf16 flags."""
    if int8 and bf16:
        raise UserError("--int8 and --bf16 exclude each other; choose one")
    return "int8" if int8 else "bf16" if bf16 else "fp32"


def _write_output(text: str, output_path: str | None) -> None:
    if output_path and not Path(output_path).parent.is_dir():
        raise UserError(f"cannot write {output_path}: the folder {Path(output_path).parent} "
                        "does not exist")
    if output_path:
        Path(output_path).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


def _read_input(path: str | None) -> list[str]:
    from ..data.corpus import read_lines

    if path:
        return read_lines(path)
    from ..textio import decode_utf8

    return split_lines(decode_utf8(sys.stdin.buffer.read(), "standard input", UserError))


def split_lines(text: str) -> list[str]:
    """Lines split at ``\\n`` only (a trailing ``\\r`` is dropped), the same rule as files:
    U+2028, form feeds and other separators inside a line stay in it, so output lines stay
    aligned with input lines."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


@cli.command()
@click.argument("run_dir", type=click.Path())
@click.option("--split", default="test", show_default=True, help="test, val or a split name")
@click.option("--data", "data_dir", default=None, type=click.Path(),
              help="folder with the split files (default: the run's data)")
@click.option("--beam", default=None, type=click.IntRange(1, 64))
@click.option("--alpha", default=None, type=Finite(0.0, 5.0))
@click.option("--checkpoint", default="best", show_default=True)
@click.option("--int8", is_flag=True, help="translation models: evaluate the dynamically "
              "int8-quantised model (results saved with an .int8 suffix)")
@click.option("--bf16", is_flag=True, help="translation models: evaluate in bfloat16 "
              "(results saved with a .bf16 suffix)")
@click.option("--engine", default="attnmt", show_default=True,
              type=click.Choice(["attnmt", "ctranslate2"]),
              help="ctranslate2: RUN_DIR is a folder made by `attnmt export ctranslate2`")
def evaluate(run_dir, split, data_dir, beam, alpha, checkpoint, int8, bf16, engine) -> None:
    """Scores on a split: sacreBLEU BLEU/chrF, exact match and scores by source length
    (translation), accuracy and confusion (classifier) or perplexity (language model)."""
    from ..api import load_predictor

    predictor = load_predictor(run_dir, checkpoint, _precision(int8, bf16), engine)
    result = predictor.evaluate(split, data_dir, beam=beam, alpha=alpha, log=click.echo)
    click.echo("\n".join(predictor.describe(result)))


@cli.command()
@click.argument("run_dir", type=click.Path())
@click.option("-i", "--input", "input_path", default=None, help="input file (default stdin)")
@click.option("--checkpoint", default="best", show_default=True)
def classify(run_dir, input_path, checkpoint) -> None:
    """Label each input line with a trained classifier: LABEL<TAB>PROBABILITY."""
    from ..api import Classifier

    for label, prob in Classifier(run_dir, checkpoint).classify(_read_input(input_path)):
        click.echo(f"{label}\t{prob:.4f}" if label else "")


@cli.command()
@click.argument("run_dir", type=click.Path())
@click.option("--prompt", default="", help="text to continue")
@click.option("--max-new-tokens", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--temperature", default=1.0, show_default=True, type=Finite(0.0, 100.0),
              help="0 = greedy")
@click.option("--top-k", default=0, type=click.IntRange(min=0))
@click.option("--top-p", default=1.0, type=Finite(0.0, 1.0, min_open=True))
@click.option("--seed", default=None, type=SEED)
@click.option("-n", "--samples", default=1, show_default=True, type=click.IntRange(min=1))
def generate(run_dir, prompt, max_new_tokens, temperature, top_k, top_p, seed, samples) -> None:
    """Continue PROMPT with a decoder-only language model."""
    from ..api import LanguageModel

    lm = LanguageModel(run_dir)
    for k in range(samples):
        click.echo(lm.generate(prompt, max_new_tokens, temperature, top_k, top_p,
                               None if seed is None else seed + k))


@cli.group()
def plot() -> None:
    """Figures."""


@plot.command("attention")
@click.argument("run_dir", type=click.Path())
@click.argument("sentence")
@click.option("--out", default="attention.png", show_default=True, type=click.Path())
@click.option("--beam", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--layer", default=None, type=click.IntRange(min=0),
              help="Transformer: one layer (0-based)")
@click.option("--head", default=None, type=click.IntRange(min=0),
              help="Transformer: one head of --layer")
def plot_attention(run_dir, sentence, out, beam, layer, head) -> None:
    """Heatmap of the attention while translating SENTENCE (a classifier: its encoder
    self-attention; a language model: its causal self-attention over SENTENCE)."""
    from ..api import load_predictor
    from ..inference.alignment import attention_matrix
    from ..studies.plots import attention_heatmap

    result = load_predictor(run_dir).attention(sentence, beam=beam)
    weights, title = attention_matrix(result, layer, head)
    attention_heatmap(weights, result["src_tokens"], result["tgt_tokens"], out, title,
                      axes=result.get("axes", ("source", "generated")))
    if result["translation"] is not None:
        click.echo(result["translation"])
    click.echo(f"wrote {out}")


@plot.command("curves")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path())
@click.option("--metric", default="loss", show_default=True,
              help="a validation metric the runs record (loss, ppl, bleu, chrf, exact, "
                   "accuracy, macro_f1)")
@click.option("--x", "x", default="minutes", show_default=True,
              type=click.Choice(["minutes", "updates"]))
@click.option("--out", default="curves.png", show_default=True, type=click.Path())
def plot_curves(run_dirs, metric, x, out) -> None:
    """Learning curves: the validation METRIC of each run in RUN_DIRS (from its
    metrics.jsonl) against training time or updates, one line per run."""
    from ..rundir import RunDir
    from ..studies.plots import learning_curves

    series = {}
    for path in run_dirs:
        records = RunDir(path).records("valid")
        if not records:
            raise UserError(f"{path} has no validation records in metrics.jsonl; is it a run "
                            "directory that has validated at least once?")
        if not any(metric in r for r in records):
            known = sorted({k for r in records for k in r} - {"type", "step", "elapsed",
                                                              "confusion"})
            raise UserError(f"{path} records no {metric!r}; it records {', '.join(known)}")
        series[Path(path).name] = records
    learning_curves(series, out, metric, x)
    click.echo(f"wrote {out}")
