"""``attnmt data``: make, fetch and inspect corpora."""

from __future__ import annotations

from pathlib import Path

import click

from . import cli


@cli.group()
def data() -> None:
    """Make, fetch and inspect corpora."""


@data.command("synth")
@click.argument("task", type=click.Choice(["numbers", "dates", "copy", "reverse"]))
@click.option("--src", default=None, help="source language (numbers: en/de/fr/ko/...; "
              "dates: a locale)")
@click.option("--tgt", default=None, help="target language, 'digits' (numbers) or 'iso' (dates)")
@click.option("--n", "n", default=20000, show_default=True, type=click.IntRange(min=1),
              help="training pairs")
@click.option("--n-valid", default=500, show_default=True, type=click.IntRange(min=1))
@click.option("--n-test", default=1000, show_default=True, type=click.IntRange(min=1))
@click.option("--min-items", default=1, show_default=True, type=click.IntRange(min=1),
              help="fewest items per sentence")
@click.option("--max-items", default=8, show_default=True, type=click.IntRange(min=1),
              help="most items per sentence")
@click.option("--test-max-items", default=None, type=click.IntRange(min=1),
              help="most items in the test split (to test beyond the training lengths)")
@click.option("--max-value", default=9999, show_default=True, type=click.IntRange(min=1),
              help="numbers: largest number")
@click.option("--seed", default=1, show_default=True)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="output folder")
def data_synth(task, src, tgt, n, n_valid, n_test, min_items, max_items, test_max_items,
               max_value, seed, out) -> None:
    """Generate a synthetic task's train/val/test splits."""
    from ..data.synthetic import write_task
    from ..errors import UserError

    if min_items > max_items:
        raise UserError(f"--min-items {min_items} is above --max-items {max_items}")
    info = write_task(out, task, src=src, tgt=tgt, n=n, n_valid=n_valid, n_test=n_test,
                      min_items=min_items, max_items=max_items, test_max_items=test_max_items,
                      seed=seed, max_value=max_value)
    click.echo(f"wrote {task} {info['src']}->{info['tgt']}: {n} train, {n_valid} val, "
               f"{n_test} test pairs into {out}")


@data.command("get")
@click.argument("dataset", type=click.Choice(["multi30k", "sst"]))
@click.option("--src", default="de", show_default=True, help="multi30k: source language")
@click.option("--tgt", default="en", show_default=True, help="multi30k: target language")
@click.option("--from", "from_dir", default=None, type=click.Path(),
              help="local folder with the raw files (else $ATTNMT_DATA_DIR, else download)")
@click.option("--multi30k", "multi30k_dir", default=None, type=click.Path(),
              help="sst: local Multi30k folder for the unlabelled English (else "
                   "$ATTNMT_DATA_DIR, else download)")
@click.option("--out", required=True, type=click.Path(file_okay=False))
def data_get(dataset, src, tgt, from_dir, multi30k_dir, out) -> None:
    """Fetch a registered dataset's files into OUT: a Multi30k language pair, or SST-2 and
    SST-5 (sentiment, with an unlabelled English corpus for pre-training)."""
    if dataset == "sst":
        from ..data.sst import write_sst

        counts = write_sst(out, from_dir, multi30k_dir, log=click.echo)
        click.echo(f"sst in {out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        return
    from ..data import multi30k

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
    from ..data.langid import write_langid

    counts = write_langid(out, from_dir, tuple(langs.split(",")), seed, log=click.echo)
    click.echo(f"wrote language identification into {out}: "
               + ", ".join(f"{k} {v}" for k, v in counts.items()))


@data.command("stats")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
def data_stats(folder) -> None:
    """Sizes and length histograms (in words) of every text file in FOLDER; aligned files
    with different line counts are an error naming both counts."""
    from ..data.stats import folder_stats
    from ..errors import DataError

    lines, problems = folder_stats(folder)
    click.echo("\n".join(lines))
    if problems:
        raise DataError("; ".join(problems))


@data.command("prepare")
@click.argument("config", type=click.Path())
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="override a config key, as for `attnmt train`")
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="run directory whose vocabulary the data is prepared with (default "
                   "runs/<config name>)")
def data_prepare(config, overrides, out) -> None:
    """Make the run's vocabulary and prepare (tokenise, cache, memory-map) its data now,
    exactly as the first `attnmt train` would; training then starts from the cache."""
    from ..config import load_config
    from ..rundir import RunDir
    from ..training.tasks import make_task

    run = RunDir(out or Path("runs") / Path(config).stem)
    task = make_task(load_config(config, overrides), run, log=click.echo)
    for split, folder in task.prepared_folders.items():
        click.echo(f"{split}: {folder}")


@data.command("silver-align")
@click.option("-s", "--src", "src_path", required=True, type=click.Path(),
              help="source sentences, one per line (whitespace words)")
@click.option("-t", "--tgt", "tgt_path", required=True, type=click.Path(),
              help="their translations, line by line")
@click.option("--with-src", default=None, type=click.Path(),
              help="more source text (e.g. the training data) that adds statistics")
@click.option("--with-tgt", default=None, type=click.Path(), help="its target side")
@click.option("--symmetrise", "method", default="grow-diag-final-and", show_default=True,
              type=click.Choice(["grow-diag-final-and", "intersection", "union"]))
@click.option("-o", "--output", "output_path", required=True, type=click.Path(),
              help="the silver alignment, Pharaoh i-j per line")
def data_silver_align(src_path, tgt_path, with_src, with_tgt, method, output_path) -> None:
    """A silver word alignment of SRC/TGT from eflomal (pip install eflomal), both
    directions symmetrised: the reference `attnmt align --gold` scores attention against
    on a corpus without human alignments. A statistical aligner's output, not gold."""
    from ..data.corpus import read_lines
    from ..data.pharaoh import to_pharaoh
    from ..data.silver import eflomal_align
    from ..errors import UserError

    if bool(with_src) != bool(with_tgt):
        raise UserError("--with-src and --with-tgt go together: give both sides")
    extra = (read_lines(with_src), read_lines(with_tgt)) if with_src else ((), ())
    links = eflomal_align(read_lines(src_path), read_lines(tgt_path), extra_sources=extra[0],
                          extra_targets=extra[1], method=method)
    Path(output_path).write_text("".join(to_pharaoh(x) + "\n" for x in links),
                                 encoding="utf-8")
    click.echo(f"wrote {output_path}: {sum(map(len, links))} links over {len(links)} pairs")
