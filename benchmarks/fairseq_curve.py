"""fairseq's own time-to-quality curve: test2016 BLEU against minutes of training.

    python benchmarks/fairseq_curve.py [--minutes 25] [--every 100] [--name N --fairseq-args A]

The peer side of ``time_to_quality.py``. fairseq (installed by ``peers.py install``) trains
the peers' transformer-small spec (``peers.FAIRSEQ_SPEC``: the same model, data, joint
SentencePiece 8k and recipe as ``peers.py run``) for ``--minutes`` of training time, with
a checkpoint every ``--every`` updates and validation switched off, so nothing but
training runs on the clock. fairseq cannot save at marks of time, so each checkpoint's
training minute is read from fairseq's own log: the time since it began its first epoch,
less every checkpoint write before and including it (fairseq logs each write's seconds),
just as attnmt's ``train.save_every_minutes`` takes saving off its clock. fairseq stops
itself a minute past the budget, and its last checkpoint (past ``--minutes`` of
training) is the end point the curve is held against, which favours fairseq slightly.

Every checkpoint is then decoded with ``fairseq-generate`` (val beam 5, test2016 greedy
and beam 5, 64-sentence batches, fairseq's default length settings, as ``peers.py``
decodes) and scored with sacreBLEU cased 13a and lowercased 13a. Writes
``results/time_to_quality_fairseq.json``; ``time_to_quality.py --figure`` draws it beside
attnmt's curve.

A variant (``--name tuned --fairseq-args "--max-tokens 1024 --lr 1e-3"``) trains the spec
with those fairseq arguments on top, into ``fs-curve_NAME`` and
``results/time_to_quality_fairseq_NAME.json``: fairseq given attnmt's tuned levers, to tell
the recipe's share of a lead from the engine's.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

from common import save
from peers import FAIRSEQ_SPEC, FS_ENV, PEERS, prepare_data, run_measured

STAMP = r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) \| INFO \| "
BEGIN = re.compile(STAMP + r"fairseq\.trainer \| begin training epoch 1$", re.M)
SAVED = re.compile(STAMP + r"fairseq\.checkpoint_utils \| Saved checkpoint (\S+) \(epoch \d+ "
                   r"@ (\d+) updates, .*?\(writing took ([\d.]+) seconds\)", re.M)


def train(name: str, minutes: float, every: int, extra: list[str]) -> Path:
    """fairseq for ``minutes`` of training (plus a minute for the saves), a checkpoint every
    ``every`` updates, no validation, ``extra`` arguments after the spec's (fairseq takes
    the last of a repeated option); returns its log."""
    run, log = PEERS / f"fs-curve{name}", PEERS / f"fs-curve{name}-train.log"
    done, inputs = run / "curve.json", {"minutes": minutes, "every": every, "extra": extra}
    if done.is_file() and json.loads(done.read_text()) == inputs:
        print(f"{run} has trained with these settings; scoring its checkpoints")
        return log
    shutil.rmtree(run, ignore_errors=True)
    cmd = [str(PEERS / "fs/bin/fairseq-train"), str(PEERS / "fsbin"), *FAIRSEQ_SPEC,
           "--stop-time-hours", str((minutes + 1) / 60), "--disable-validation",
           "--save-interval", "1000", "--save-interval-updates", str(every),
           "--keep-interval-updates", "-1", "--no-epoch-checkpoints", "--save-dir", str(run),
           *extra]
    print(f"fairseq trained: {run_measured(cmd, log, env=FS_ENV)}")
    done.write_text(json.dumps(inputs))
    return log


def checkpoints(log: Path) -> list[dict]:
    """Each checkpoint fairseq wrote, with its update and minute of training time."""
    text = log.read_text()
    begin = BEGIN.search(text)
    if not begin:
        raise SystemExit(f"fairseq did not begin training; see {log}")
    t0, rows, writing = _time(begin.group(1)), [], 0.0
    for stamp, path, updates, seconds in SAVED.findall(text):
        writing += float(seconds)
        # one row per update: a later save of an update already listed (fairseq's save at
        # the stop can fall on an interval's update) replaces it
        rows = [r for r in rows if r["step"] != int(updates)]
        rows.append({"step": int(updates), "path": path,
                     "minutes": round((_time(stamp) - t0 - writing) / 60, 3)})
    if not rows:
        raise SystemExit(f"fairseq wrote no checkpoint; see {log}")
    return rows


def _time(stamp: str) -> float:
    return datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").timestamp()


def generate(checkpoint: str, subset: str, beam: int, lines: int) -> list[str]:
    """``fairseq-generate``'s detokenised outputs for the ``lines`` input lines, in order."""
    out = subprocess.run(
        [str(PEERS / "fs/bin/fairseq-generate"), str(PEERS / "fsbin"), "--path", checkpoint,
         "--gen-subset", subset, "--beam", str(beam), "--batch-size", "64",
         "--required-batch-size-multiple", "1", "--remove-bpe", "sentencepiece", "--cpu",
         "--num-workers", "0"],
        capture_output=True, text=True, env={**os.environ, **FS_ENV}, check=True)
    hyps = dict(re.findall(r"^D-(\d+)\t\S+\t(.*)$", out.stdout, flags=re.M))
    if len(hyps) != lines:
        raise SystemExit(f"fairseq-generate wrote {len(hyps)} of {lines} {subset} lines "
                         f"for {checkpoint}")
    return [hyps[str(i)] for i in range(lines)]


def score(checkpoint: str) -> dict:
    """val beam 5 and test2016 greedy and beam 5, sacreBLEU cased and lowercased 13a."""
    import sacrebleu

    from attnmt.data.corpus import read_lines

    row = {}
    for split, subset, ref_file, beams in (("val", "valid", "val.en", (5,)),
                                           ("test", "test", "test_2016_flickr.en", (1, 5))):
        refs = read_lines(PEERS / "data" / ref_file)
        for beam in beams:
            hyps = generate(checkpoint, subset, beam, len(refs))
            name = f"{split}_{'greedy' if beam == 1 else 'beam5'}"
            row[name] = round(sacrebleu.corpus_bleu(hyps, [refs]).score, 2)
            row[f"{name}_lc"] = round(
                sacrebleu.corpus_bleu(hyps, [refs], lowercase=True).score, 2)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=25.0)
    ap.add_argument("--every", type=int, default=100, help="updates between checkpoints "
                    "(fairseq trains ~39 updates a minute here, so 100 is ~2.5 minutes)")
    ap.add_argument("--fairseq-args", default="", help="fairseq-train arguments on top of "
                    "the peers' spec, e.g. \"--max-tokens 1024 --lr 1e-3\"")
    ap.add_argument("--name", default="", help="a variant's name: its run, log and results "
                    "file are suffixed with _NAME")
    args = ap.parse_args()
    if not (PEERS / "fs/.installed").is_file():
        raise SystemExit(f"{PEERS / 'fs'} is missing; run `python benchmarks/peers.py install`")
    prepare_data()
    rows = []
    try:
        extra = shlex.split(args.fairseq_args)
    except ValueError as err:
        raise SystemExit(f"--fairseq-args: {err}; quote it as one shell word") from None
    suffix = f"_{args.name}" if args.name else ""
    for ckpt in checkpoints(train(suffix, args.minutes, args.every, extra)):
        rows.append({"minutes": ckpt["minutes"], "step": ckpt["step"], **score(ckpt["path"])})
        print(json.dumps(rows[-1]), flush=True)
    save(f"time_to_quality_fairseq{suffix}", {
        "spec": "benchmarks/peers.py FAIRSEQ_SPEC (transformer-small, lr 5e-4 inverse sqrt, "
                "warm-up 250, 4096-token batches, label smoothing 0.1)",
        "fairseq_args": extra, "minutes": args.minutes, "every_updates": args.every,
        "marks": rows})


if __name__ == "__main__":
    main()
