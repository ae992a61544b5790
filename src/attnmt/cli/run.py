"""``attnmt train | compare | average | serve | export | import | presets | config-keys |
demo``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from . import Finite, cli


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
    from ..config import load_config
    from ..training.loop import train as run_training

    cfg = load_config(config, overrides)
    run_training(cfg, out or Path("runs") / Path(config).stem, resume=resume, quiet=quiet)


@cli.command()
@click.argument("study", type=click.Path())
@click.option("--budget-minutes", default=None, type=Finite(min=0.01, max=1e6),
              help="override the study's budget: this many training minutes per run")
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="report folder (default studies/out/<name>)")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="config override for every run, after the run's own (e.g. "
                   "--set train.device=cuda); repeatable")
def compare(study, budget_minutes, out, overrides) -> None:
    """Train, evaluate and compare every run of a STUDY file; write a report folder."""
    from ..studies.compare import compare as run_study

    run_study(study, out, budget_minutes, log=click.echo, overrides=list(overrides))


@cli.command()
@click.argument("run_dir", type=click.Path())
@click.option("--last", default=5, show_default=True, type=click.IntRange(min=1),
              help="average the last N step checkpoints")
@click.option("--kept", is_flag=True, help="average the last N kept checkpoints instead "
              "(checkpoints/kept: train.save_every_minutes or train.keep_every)")
def average(run_dir, last, kept) -> None:
    """Average the last N checkpoints into checkpoints/averaged.safetensors."""
    from ..rundir import RunDir, average_checkpoints

    files, out = average_checkpoints(RunDir(run_dir), last, kept=kept)
    click.echo(f"averaged {len(files)} checkpoints ({files[0].name} .. {files[-1].name}) into "
               f"{out}; use --checkpoint averaged")


@cli.command()
@click.argument("run_dir", type=click.Path())
@click.option("--host", default="127.0.0.1", show_default=True,
              help="interface to listen on (0.0.0.0 exposes the server)")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--max-batch", default=32, show_default=True, type=click.IntRange(min=1),
              help="most sentences decoded together")
@click.option("--max-wait-ms", default=10.0, show_default=True, type=Finite(0.0, 60000.0),
              help="how long a request waits for others to batch with")
@click.option("--max-chars", default=1000, show_default=True, type=click.IntRange(min=1))
@click.option("--max-texts", default=64, show_default=True, type=click.IntRange(min=1))
@click.option("--max-beam", default=16, show_default=True, type=click.IntRange(min=1))
@click.option("--timeout", default=30.0, show_default=True, type=Finite(0.1, 3600.0),
              help="seconds before a request gets 503 and its decoding stops")
@click.option("--max-work", default=16384, show_default=True, type=click.IntRange(min=1),
              help="most source tokens x beam one request may ask to decode")
@click.option("--device", default="cpu", show_default=True)
@click.option("--engine", default="attnmt", show_default=True,
              type=click.Choice(["attnmt", "ctranslate2"]),
              help="ctranslate2: RUN_DIR is a folder made by `attnmt export ctranslate2` "
              "(faster; /attention then gives the last layer's weights only)")
@click.option("--threads", default=0, show_default=True, type=click.IntRange(min=0),
              help="CPU threads for decoding (PyTorch's, or CTranslate2's intra_threads); "
              "0: the engine's default")
def serve(run_dir, host, port, max_batch, max_wait_ms, max_chars, max_texts, max_beam, timeout,
          max_work, device, engine, threads) -> None:
    """Serve RUN_DIR: REST API (/translate, /attention, /docs) and a web page at /; a
    classifier run answers /classify, a language model /generate."""
    from ..serve.app import serve as run_server
    from ..serve.limits import Limits

    if threads:
        import torch

        torch.set_num_threads(threads)
    click.echo(f"serving {run_dir} on http://{host}:{port}/ (API docs at /docs)")
    run_server(run_dir, host, port, max_batch, max_wait_ms,
               Limits(max_chars=max_chars, max_texts=max_texts, max_beam=max_beam,
                      timeout_s=timeout, max_work=max_work), device, engine, threads)


@cli.group()
def export() -> None:
    """Export a trained model to another inference engine or library."""


@export.command("ctranslate2")
@click.argument("run_dir", type=click.Path())
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--quantization", default=None,
              type=click.Choice(["int8", "int8_float32", "int16", "float16"]),
              help="weight type of the exported model (default float32)")
@click.option("--force", is_flag=True, help="write into a non-empty OUT_DIR")
def export_ct2(run_dir, out_dir, quantization, force) -> None:
    """Convert a Transformer run into a CTranslate2 model folder (with its vocabulary)."""
    from ..export.ctranslate2 import export_ctranslate2

    out = export_ctranslate2(run_dir, out_dir, quantization, force)
    click.echo(f"wrote {out}; translate with `attnmt translate --engine ctranslate2 {out}`")


@export.command("huggingface")
@click.argument("run_dir", type=click.Path())
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="write into a non-empty OUT_DIR")
def export_hf(run_dir, out_dir, force) -> None:
    """Convert a Transformer run into a Hugging Face Transformers folder (model, tokenizer,
    model card): AutoModelForSeq2SeqLM / AutoTokenizer.from_pretrained(OUT_DIR)."""
    from ..export.huggingface import export_huggingface

    out = export_huggingface(run_dir, out_dir, force)
    click.echo(f"wrote {out}; load it with AutoModelForSeq2SeqLM.from_pretrained({str(out)!r})")


@cli.group("import")
def import_() -> None:
    """Turn another toolkit's checkpoint into an attnmt run directory."""


@import_.command("huggingface")
@click.argument("folder", type=click.Path())
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="write into a non-empty OUT_DIR")
def import_hf(folder, out_dir, force) -> None:
    """Import a local MarianMT (e.g. OPUS-MT) or Pegasus folder: translate, evaluate,
    explain, serve, export and fine-tune it like a run trained here."""
    from ..export.hf_import import import_huggingface

    out = import_huggingface(folder, out_dir, force)
    click.echo(f"wrote {out}; translate with `attnmt translate {out}`, fine-tune with "
               f"`attnmt train {out}/finetune.yaml --set data.dir=FOLDER --out RUN`")


@cli.command()
def presets() -> None:
    """The named architectures and their settings."""
    from ..presets import PRESETS

    for name, keys in PRESETS.items():
        click.echo(f"{name:18} " + json.dumps(keys))


@cli.command("config-keys")
@click.argument("section", required=False,
                type=click.Choice(["data", "model", "train", "decode"]))
def config_keys(section) -> None:
    """Every config key with its default and meaning."""
    from .keys import describe

    click.echo(describe(section))


@cli.command()
@click.option("--out", default="runs/demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--minutes", default=2.0, show_default=True, type=Finite(0.05, 1e6),
              help="training minutes per model")
def demo(out, minutes) -> None:
    """Offline demo: seq2seq without and with attention on German->English numbers."""
    from ..studies.demo import run_demo

    run_demo(Path(out), minutes)
