"""The ``attnmt`` command.

    attnmt data synth|get|langid|stats   make, fetch and inspect data      (cli/data.py)
    attnmt train CONFIG                  train a model into a run directory (cli/run.py)
    attnmt compare STUDY                 train, evaluate and compare the runs of a study
    attnmt average RUN_DIR               average the last checkpoints
    attnmt serve RUN_DIR                 REST API and a web page that shows attention
    attnmt export ctranslate2 RUN OUT    the model for another inference engine
    attnmt export huggingface RUN OUT    the model for Hugging Face Transformers
    attnmt import huggingface DIR OUT    a MarianMT or Pegasus checkpoint as a run directory
    attnmt presets | config-keys         what can be configured
    attnmt demo                          the offline demo: the bottleneck and attention
    attnmt translate RUN_DIR             translate stdin or a file             (cli/use.py)
    attnmt classify RUN_DIR              label lines (encoder-only classifier)
    attnmt generate RUN_DIR              continue a prompt (decoder-only LM)
    attnmt evaluate RUN_DIR              scores on a split, for any task
    attnmt plot attention RUN_DIR        attention heatmap of one sentence
    attnmt explain RUN_DIR SENTENCE      attention's five steps, the model's own numbers

A user's mistake prints one line (``error: ...``) and exits with status 2; anything
unexpected also prints one line (exit 1) with a hint to rerun with ``--debug`` for
the traceback.
"""

from __future__ import annotations

import math
import sys
import warnings

import click

from ..errors import UserError, WrongTaskError


class Finite(click.FloatRange):
    """A float flag that must be a finite number (``inf`` and ``nan`` are refused) in range."""

    name = "finite float"

    def convert(self, value, param, ctx):
        number = click.FLOAT.convert(value, param, ctx)
        if math.isnan(number) or math.isinf(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return super().convert(number, param, ctx)


SEED = click.IntRange(0, 2**32 - 1)
# What each task's trained run is used with (shown when a run is used the wrong way).
TASK_USE = {"translate": "attnmt translate", "classify": "attnmt classify",
            "lm": "attnmt generate", "mlm": "it as train.init_from for a classifier"}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="attnmt")
@click.option("--debug", is_flag=True, help="show the full traceback of an unexpected error")
def cli(debug: bool) -> None:
    """attnmt — sequence-to-sequence learning built around attention."""


from . import align, data, explain, run, use  # noqa: E402,F401  (each module adds its commands to `cli`)


def _one_line(e: BaseException | str) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    """The library's warnings (a truncated input, a checkpoint that does not load) as one
    line on stderr, like every other message of the command."""
    click.echo(f"warning: {_one_line(str(message))}", err=True)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    warnings.showwarning = _warning_line
    try:
        cli.main(args=args, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.UsageError as e:       # one line, with where to find the valid usage
        where = f" (see `{e.ctx.command_path} --help`)" if e.ctx else ""
        click.echo(f"error: {_one_line(e.format_message())}{where}", err=True)
        sys.exit(e.exit_code)
    except click.ClickException as e:
        click.echo(f"error: {_one_line(e.format_message())}", err=True)
        sys.exit(e.exit_code)
    except WrongTaskError as e:
        click.echo(f"{e}; use {TASK_USE[e.task]}", err=True)
        sys.exit(2)
    except UserError as e:
        click.echo(str(e), err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except OSError as e:
        if debug:
            raise
        click.echo(f"error: {_one_line(e)}", err=True)
        sys.exit(2)
    except Exception as e:  # a bug or an unforeseen input: one line, not a traceback
        if debug:
            raise
        click.echo(f"internal error: {type(e).__name__}: {_one_line(e)} (rerun with "
                   "`attnmt --debug ...` for the traceback, and report it)", err=True)
        sys.exit(1)
