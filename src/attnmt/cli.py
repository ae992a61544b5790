"""The ``attnmt`` command.

    attnmt data synth|get|stats     make, fetch and inspect data
    attnmt train CONFIG             train a model into a run directory
    attnmt translate RUN_DIR        translate stdin or a file
    attnmt classify RUN_DIR         label lines (encoder-only classifier)
    attnmt generate RUN_DIR         continue a prompt (decoder-only LM)
    attnmt evaluate RUN_DIR         BLEU/chrF (and by source length) on a split
    attnmt compare STUDY            train, evaluate and compare the runs of a study
    attnmt plot attention RUN_DIR   attention heatmap of one sentence
    attnmt average RUN_DIR          average the last checkpoints
    attnmt serve RUN_DIR            REST API and a web page that shows attention
    attnmt presets | config-keys    what can be configured
    attnmt demo                     the offline demo: the bottleneck and attention

A user's mistake prints one line (``error: ...``) and exits with status 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .config import STOPPING
from .errors import UserError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="attnmt")
def cli() -> None:
    """attnmt — sequence-to-sequence learning built around attention."""


# ---- data ------------------------------------------------------------------------------
@cli.group()
def data() -> None:
    """Make, fetch and inspect corpora."""


@data.command("synth")
@click.argument("task", type=click.Choice(["numbers", "dates", "copy", "reverse"]))
@click.option("--src", default=None, help="source language (numbers: en/de/fr/ko/...; "
              "dates: a locale)")
@click.option("--tgt", default=None, help="target language, 'digits' (numbers) or 'iso' (dates)")
@click.option("--n", "n", default=20000, show_default=True, help="training pairs")
@click.option("--n-valid", default=500, show_default=True)
@click.option("--n-test", default=1000, show_default=True)
@click.option("--min-items", default=1, show_default=True, help="fewest items per sentence")
@click.option("--max-items", default=8, show_default=True, help="most items per sentence")
@click.option("--test-max-items", default=None, type=int,
              help="most items in the test split (to test beyond the training lengths)")
@click.option("--max-value", default=9999, show_default=True, help="numbers: largest number")
@click.option("--seed", default=1, show_default=True)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="output folder")
def data_synth(task, src, tgt, n, n_valid, n_test, min_items, max_items, test_max_items,
               max_value, seed, out) -> None:
    """Generate a synthetic task's train/val/test splits."""
    from .data.synthetic import write_task

    info = write_task(out, task, src, tgt, n, n_valid, n_test, min_items, max_items,
                      test_max_items, seed, max_value)
    click.echo(f"wrote {task} {info['src']}->{info['tgt']}: {n} train, {n_valid} val, "
               f"{n_test} test pairs into {out}")


@data.command("get")
@click.argument("dataset", type=click.Choice(["multi30k"]))
@click.option("--src", default="de", show_default=True)
@click.option("--tgt", default="en", show_default=True)
@click.option("--from", "from_dir", default=None, type=click.Path(),
              help="local folder with the raw files (else $ATTNMT_DATA_DIR, else download)")
@click.option("--out", required=True, type=click.Path(file_okay=False))
def data_get(dataset, src, tgt, from_dir, out) -> None:
    """Fetch a registered dataset's files for a language pair into OUT."""
    from .data import multi30k

    splits = multi30k.fetch(src, tgt, out, from_dir, log=click.echo)
    click.echo(f"multi30k {src}-{tgt} in {out}: " + ", ".join(splits))


@data.command("langid")
@click.option("--from", "from_dir", default=None, type=click.Path(),
              help="local Multi30k folder (else $ATTNMT_DATA_DIR, else download)")
@click.option("--langs", default="de,en,fr,cs", show_default=True)
@click.option("--seed", default=1, show_default=True)
@click.option("--out", required=True, type=click.Path(file_okay=False))
def data_langid(from_dir, langs, seed, out) -> None:
    """Language identification (text<TAB>language) from Multi30k's four languages."""
    from .data.langid import write_langid

    counts = write_langid(out, from_dir, tuple(langs.split(",")), seed, log=click.echo)
    click.echo(f"wrote language identification into {out}: "
               + ", ".join(f"{k} {v}" for k, v in counts.items()))


@data.command("stats")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
def data_stats(folder) -> None:
    """Sizes and length histograms (in words) of every text file in FOLDER."""
    import numpy as np

    from .data.corpus import read_lines

    files = sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix not in
                   (".json", ".model"))
    if not files:
        raise UserError(f"{folder} holds no text files")
    for path in files:
        lines = read_lines(path)
        lengths = np.array([len(x.split()) for x in lines] or [0])
        click.echo(f"{path.name}: {len(lines)} lines, {int((lengths == 0).sum())} empty, "
                   f"words min {lengths.min()} mean {lengths.mean():.1f} max {lengths.max()}")
        edges = np.unique(np.linspace(0, max(1, lengths.max()), 9).astype(int))
        counts, edges = np.histogram(lengths, bins=edges)
        top = max(1, counts.max())
        for c, lo, hi in zip(counts, edges[:-1], edges[1:]):
            click.echo(f"  {lo:>4}-{hi:<4} {'#' * int(40 * c / top):<40} {c}")


# ---- train / translate / evaluate ----------------------------------------------------------
@cli.command()
@click.argument("config", type=click.Path())
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="override a config key, e.g. --set train.max_steps=100 (repeatable)")
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="run directory (default runs/<config name>)")
@click.option("--resume", is_flag=True, help="continue from the run directory's last checkpoint")
@click.option("--quiet", is_flag=True, help="no progress bar or log lines")
def train(config, overrides, out, resume, quiet) -> None:
    """Train the model CONFIG describes (a YAML file) into a run directory."""
    from .config import load_config
    from .train import train as run_training

    cfg = load_config(config, overrides)
    run_training(cfg, out or Path("runs") / Path(config).stem, resume=resume, quiet=quiet)


def _read_input(path: str | None) -> list[str]:
    from .data.corpus import read_lines

    if path:
        return read_lines(path)
    data = sys.stdin.buffer.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"standard input is not valid UTF-8 (byte {e.start})") from None
    return text.splitlines()


@cli.command()
@click.argument("run_dir", type=click.Path())
@click.option("-i", "--input", "input_path", default=None, help="input file (default stdin)")
@click.option("-o", "--output", "output_path", default=None, help="output file (default stdout)")
@click.option("--beam", default=None, type=click.IntRange(1, 64), help="beam size (1 = greedy)")
@click.option("--alpha", default=None, type=float, help="GNMT length penalty")
@click.option("--nbest", default=1, type=click.IntRange(1, 64),
              help="print the K best, tab-separated with scores")
@click.option("--sample", is_flag=True, help="sample instead of searching")
@click.option("--temperature", default=1.0, type=click.FloatRange(min=0.0, min_open=True))
@click.option("--top-k", default=0, type=click.IntRange(min=0))
@click.option("--top-p", default=1.0, type=click.FloatRange(0.0, 1.0, min_open=True))
@click.option("--seed", default=None, type=int, help="seed for --sample")
@click.option("--max-len-ratio", default=None, type=click.FloatRange(min=0.1))
@click.option("--checkpoint", default="best", show_default=True,
              help="best, last, averaged or a step number")
@click.option("--device", default="cpu", show_default=True)
@click.option("--engine", default="attnmt", show_default=True,
              type=click.Choice(["attnmt", "ctranslate2"]),
              help="ctranslate2: RUN_DIR is a folder made by `attnmt export ctranslate2`")
@click.option("--int8", is_flag=True, help="dynamic int8 quantisation of the Linear layers "
              "(CPU; faster, slightly lower BLEU)")
@click.option("--bf16", is_flag=True, help="translate in bfloat16 (GPUs, and CPUs with "
              "AVX512-BF16 or AMX; faster, BLEU may move slightly)")
@click.option("--stopping", default=None, type=click.Choice(STOPPING),
              help="when a sentence leaves the beam (default: the run's decode.stopping)")
def translate(run_dir, input_path, output_path, beam, alpha, nbest, sample, temperature, top_k,
              top_p, seed, max_len_ratio, checkpoint, device, engine, int8, bf16,
              stopping) -> None:
    """Translate line by line; output lines stay aligned with input lines."""
    precision = _precision(int8, bf16)
    if engine == "ctranslate2":
        from .export import CT2Translator

        if precision != "fp32":
            raise UserError(f"--{precision} applies to the attnmt engine; export a quantised "
                            "CTranslate2 model with `attnmt export ctranslate2 "
                            "--quantization int8` instead")
        if stopping:
            raise UserError("--stopping applies to the attnmt engine; CTranslate2 uses its "
                            "own stopping rule")

        if nbest > 1 and (beam or 5) < nbest:
            raise UserError(f"--nbest {nbest} needs --beam of at least {nbest}")
        outputs = CT2Translator(run_dir, device).translate(
            _read_input(input_path), beam=beam or 5, nbest=nbest,
            max_len_ratio=max_len_ratio or 1.5)
        _write_output("".join("\t".join(hyps) + "\n" for hyps in outputs), output_path)
        return
    from .translator import Translator

    translator = Translator.from_run(run_dir, checkpoint, device, precision)
    if nbest > 1 and (beam or translator.cfg.decode.beam) < nbest:
        raise UserError(f"--nbest {nbest} needs --beam of at least {nbest}")
    lines = _read_input(input_path)
    results = translator.translate(lines, beam=beam, alpha=alpha, nbest=nbest, sample=sample,
                                   temperature=temperature, top_k=top_k, top_p=top_p,
                                   max_len_ratio=max_len_ratio, seed=seed, stopping=stopping)
    if nbest > 1:
        text = "".join("\t".join(f"{h.text}\t{h.score:.4f}" for h in hyps) + "\n"
                       for hyps in results)
    else:
        text = "".join(hyps[0].text + "\n" for hyps in results)
    _write_output(text, output_path)


def _precision(int8: bool, bf16: bool) -> str:
    """The inference number format chosen by the --int8 / --bf16 flags."""
    if int8 and bf16:
        raise UserError("--int8 and --bf16 exclude each other; choose one")
    return "int8" if int8 else "bf16" if bf16 else "fp32"


def _write_output(text: str, output_path: str | None) -> None:
    if output_path:
        Path(output_path).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


@cli.command()
@click.argument("run_dir", type=click.Path())
@click.option("--split", default="test", show_default=True, help="test, val or a split name")
@click.option("--data", "data_dir", default=None, type=click.Path(),
              help="folder with the split files (default: the run's data)")
@click.option("--beam", default=None, type=click.IntRange(1, 64))
@click.option("--alpha", default=None, type=float)
@click.option("--checkpoint", default="best", show_default=True)
@click.option("--int8", is_flag=True, help="translation models: evaluate the dynamically "
              "int8-quantised model (results saved with an .int8 suffix)")
@click.option("--bf16", is_flag=True, help="translation models: evaluate in bfloat16 "
              "(results saved with a .bf16 suffix)")
def evaluate(run_dir, split, data_dir, beam, alpha, checkpoint, int8, bf16) -> None:
    """sacreBLEU BLEU and chrF, exact match and scores by source length on a split."""
    from .checkpoint import RunDir

    precision = _precision(int8, bf16)
    task = RunDir(run_dir).load_config().data.task if Path(run_dir).is_dir() else "translate"
    if precision != "fp32" and task != "translate":
        raise UserError(f"--{precision} is available for translation models; {run_dir} holds "
                        f"a {task} model")
    if task == "classify":
        from .predict import Classifier

        result = Classifier(run_dir, checkpoint).evaluate(split, data_dir)
        click.echo(f"{result['split']}: accuracy {result['accuracy']:.2f}%  macro-F1 "
                   f"{result['macro_f1']:.2f}  ({result['n']} sentences)")
        labels = result["labels"]
        click.echo("confusion (rows: gold, columns: predicted)")
        click.echo(" " * 10 + "".join(f"{x[:8]:>9}" for x in labels))
        for label, row in zip(labels, result["confusion"]):
            click.echo(f"{label[:9]:>10}" + "".join(f"{v:>9}" for v in row))
        return
    if task in ("lm", "mlm"):
        if task == "mlm":
            raise UserError(f"{run_dir} is an mlm pre-training run; fine-tune a classifier "
                            "from it (train.init_from) and evaluate that")
        from .predict import LanguageModel

        result = LanguageModel(run_dir, checkpoint).perplexity(split, data_dir)
        click.echo(f"{result['split']}: perplexity {result['perplexity']:.2f} "
                   f"({result['tokens']} tokens, {result['sentences']} lines)")
        return
    from .evaluate import evaluate as run_eval
    from .translator import Translator

    result = run_eval(run_dir, split, data_dir, beam, alpha,
                      translator=Translator.from_run(run_dir, checkpoint, precision=precision),
                      log=click.echo, tag="" if precision == "fp32" else f".{precision}")
    click.echo(f"{result['split']} (beam {result['beam']}): BLEU {result['bleu']:.2f}  "
               f"chrF {result['chrf']:.2f}  exact {result['exact']:.1f}%  "
               f"({result['n']} sentences, {result['sentences_per_s']:.1f} sent/s)")
    click.echo(result["bleu_signature"])
    click.echo("by source length (words):")
    for row in result["by_length"]:
        click.echo(f"  {row['bucket']:>7}  n={row['n']:<5} BLEU {row['bleu']:6.2f}  "
                   f"chrF {row['chrf']:6.2f}  exact {row['exact']:5.1f}%")


@cli.command()
@click.argument("study", type=click.Path())
@click.option("--budget-minutes", default=None, type=click.FloatRange(min=0.01),
              help="override the study's budget: this many training minutes per run")
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="report folder (default studies/out/<name>)")
def compare(study, budget_minutes, out) -> None:
    """Train, evaluate and compare every run of a STUDY file; write a report folder."""
    from .compare import compare as run_study

    run_study(study, out, budget_minutes, log=click.echo)


@cli.command()
@click.argument("run_dir", type=click.Path())
@click.option("-i", "--input", "input_path", default=None, help="input file (default stdin)")
@click.option("--checkpoint", default="best", show_default=True)
def classify(run_dir, input_path, checkpoint) -> None:
    """Label each input line with a trained classifier: LABEL<TAB>PROBABILITY."""
    from .predict import Classifier

    for label, prob in Classifier(run_dir, checkpoint).classify(_read_input(input_path)):
        click.echo(f"{label}\t{prob:.4f}" if label else "")


@cli.command()
@click.argument("run_dir", type=click.Path())
@click.option("--prompt", default="", help="text to continue")
@click.option("--max-new-tokens", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--temperature", default=1.0, show_default=True, type=click.FloatRange(min=0.0),
              help="0 = greedy")
@click.option("--top-k", default=0, type=click.IntRange(min=0))
@click.option("--top-p", default=1.0, type=click.FloatRange(0.0, 1.0, min_open=True))
@click.option("--seed", default=None, type=int)
@click.option("-n", "--samples", default=1, show_default=True, type=click.IntRange(min=1))
def generate(run_dir, prompt, max_new_tokens, temperature, top_k, top_p, seed, samples) -> None:
    """Continue PROMPT with a decoder-only language model."""
    from .predict import LanguageModel

    lm = LanguageModel(run_dir)
    for k in range(samples):
        click.echo(lm.generate(prompt, max_new_tokens, temperature, top_k, top_p,
                               None if seed is None else seed + k))


# ---- plots, checkpoints, information --------------------------------------------------------
@cli.group()
def plot() -> None:
    """Figures."""


@plot.command("attention")
@click.argument("run_dir", type=click.Path())
@click.argument("sentence")
@click.option("--out", default="attention.png", show_default=True, type=click.Path())
@click.option("--beam", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--layer", default=None, type=int, help="Transformer: one layer (0-based)")
@click.option("--head", default=None, type=int, help="Transformer: one head of --layer")
def plot_attention(run_dir, sentence, out, beam, layer, head) -> None:
    """Heatmap of the attention while translating SENTENCE."""
    from .checkpoint import RunDir
    from .plots import attention_heatmap
    from .translator import Translator

    if Path(run_dir).is_dir() and RunDir(run_dir).load_config().data.task == "classify":
        from .predict import Classifier

        result = Classifier(run_dir).self_attention(sentence)
        attention_heatmap(result["weights"], result["tokens"], result["tokens"], out,
                          "encoder self-attention (mean over layers and heads)")
        click.echo(f"wrote {out}")
        return
    translator = Translator.from_run(run_dir)
    if not translator.model.has_attention:
        raise UserError(f"{run_dir} is a seq2seq model without attention: it sees the source "
                        "only through one fixed context vector, so there is nothing to plot")
    result = translator.attention(sentence, beam=beam)
    weights, title = result["weights"], "attention (mean over layers and heads)"
    if (layer is not None or head is not None) and result["layers"] is None:
        raise UserError("--layer/--head apply to Transformer models only")
    if layer is not None:
        import numpy as np

        layers = np.asarray(result["layers"])
        if not 0 <= layer < layers.shape[0]:
            raise UserError(f"--layer must be in 0..{layers.shape[0] - 1}")
        if head is not None and not 0 <= head < layers.shape[1]:
            raise UserError(f"--head must be in 0..{layers.shape[1] - 1}")
        weights = layers[layer, head] if head is not None else layers[layer].mean(0)
        title = f"layer {layer}" + (f", head {head}" if head is not None else ", mean of heads")
    attention_heatmap(weights, result["src_tokens"], result["tgt_tokens"], out, title)
    click.echo(f"{result['translation']}\nwrote {out}")


@cli.command()
@click.argument("run_dir", type=click.Path())
@click.option("--last", default=5, show_default=True, type=click.IntRange(min=1),
              help="average the last N step checkpoints")
def average(run_dir, last) -> None:
    """Average the last N checkpoints into checkpoints/averaged.safetensors."""
    from .checkpoint import RunDir, average_checkpoints

    files, out = average_checkpoints(RunDir(run_dir), last)
    click.echo(f"averaged {len(files)} checkpoints ({files[0].name} .. {files[-1].name}) into "
               f"{out}; use --checkpoint averaged")


@cli.command()
@click.argument("run_dir", type=click.Path())
@click.option("--host", default="127.0.0.1", show_default=True,
              help="interface to listen on (0.0.0.0 exposes the server)")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--max-batch", default=32, show_default=True, type=click.IntRange(min=1),
              help="most sentences decoded together")
@click.option("--max-wait-ms", default=10.0, show_default=True, type=click.FloatRange(min=0),
              help="how long a request waits for others to batch with")
@click.option("--max-chars", default=1000, show_default=True, type=click.IntRange(min=1))
@click.option("--max-texts", default=64, show_default=True, type=click.IntRange(min=1))
@click.option("--max-beam", default=16, show_default=True, type=click.IntRange(min=1))
@click.option("--timeout", default=30.0, show_default=True, type=click.FloatRange(min=0.1),
              help="seconds before a request gets 503")
@click.option("--device", default="cpu", show_default=True)
def serve(run_dir, host, port, max_batch, max_wait_ms, max_chars, max_texts, max_beam, timeout,
          device) -> None:
    """Serve RUN_DIR: REST API (/translate, /attention, /docs) and a web page at /."""
    from .serve.app import Limits
    from .serve.app import serve as run_server

    click.echo(f"serving {run_dir} on http://{host}:{port}/ (API docs at /docs)")
    run_server(run_dir, host, port, max_batch, max_wait_ms,
               Limits(max_chars, max_texts, max_beam, timeout), device)


@cli.group()
def export() -> None:
    """Export a trained model to another inference engine."""


@export.command("ctranslate2")
@click.argument("run_dir", type=click.Path())
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--quantization", default=None,
              type=click.Choice(["int8", "int8_float32", "int16", "float16"]),
              help="weight type of the exported model (default float32)")
@click.option("--force", is_flag=True, help="write into a non-empty OUT_DIR")
def export_ct2(run_dir, out_dir, quantization, force) -> None:
    """Convert a Transformer run into a CTranslate2 model folder (with its vocabulary)."""
    from .export import export_ctranslate2

    out = export_ctranslate2(run_dir, out_dir, quantization, force)
    click.echo(f"wrote {out}; translate with `attnmt translate --engine ctranslate2 {out}`")


@cli.command()
def presets() -> None:
    """The named architectures and their settings."""
    from .presets import PRESETS

    for name, keys in PRESETS.items():
        click.echo(f"{name:18} " + json.dumps(keys))


@cli.command("config-keys")
@click.argument("section", required=False,
                type=click.Choice(["data", "model", "train", "decode"]))
def config_keys(section) -> None:
    """Every config key with its default and meaning."""
    from .config import describe

    click.echo(describe(section))


@cli.command()
@click.option("--out", default="runs/demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--minutes", default=2.0, show_default=True, type=click.FloatRange(min=0.05),
              help="training minutes per model")
def demo(out, minutes) -> None:
    """Offline demo: seq2seq without and with attention on German->English numbers."""
    from .demo import run_demo

    run_demo(Path(out), minutes)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except UserError as e:
        click.echo(str(e), err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)


if __name__ == "__main__":
    main()
