"""attnmt against JoeyNMT 2.3.0, fairseq (fairseq-fixed 0.12.3.1) and CTranslate2, in one run.

    python benchmarks/peers.py install                      # peer venvs (~10 minutes, once)
    python benchmarks/peers.py run --minutes 15 --window 4 --attnmt-run RUN
    python benchmarks/peers.py fairseq-ct2 --minutes 15     # decode_speed.py's fairseq anchor

Same spec for everyone (`transformer-small`, Multi30k de->en, joint SentencePiece
unigram 8k, ~4096-token batches, inverse-sqrt lr 5e-4 with 250 warm-up updates,
label smoothing 0.1; the peer configs are in `benchmarks/peers/`):

- fairseq trains `--minutes` of wall-clock time; its training throughput (median of
  its logged `wps` after warm-up), peak RSS, validation BLEU and test2016 BLEU and
  decoding speed (greedy, beam 5; `fairseq-generate`, 64-sentence batches) are measured.
- JoeyNMT trains its Transformer and its attention RNN for `--window` minutes each
  (throughput and peak RSS only: its quality at this budget is in
  `../shared/peers/README.md`, far below).
- attnmt trains `transformer-small` (the shipped config, bf16 autocast, and again in
  float32) and `rnn-dot` for `--window` minutes each for throughput and peak RSS; quality
  and decoding use `--attnmt-run` (a run trained for the same `--minutes`), or, without
  it, a run the harness trains for `--minutes`.
- CTranslate2 decodes that attnmt run, exported with `attnmt export ctranslate2`.
  Every decoder runs in its own process (``decode_speed.time_engine``): two runtimes'
  thread pools in one process slow each other down.

Peak RSS is sampled every 0.5 s over each training process tree, the same way for
every toolkit. Everything runs one after the other on the same machine, so ratios
are fair; absolute numbers move with the machine. Writes `results/peers.json`. Each
step's result is saved, so a failed run resumes: `--fresh` measures everything again,
`--redo a,b` the named steps; each step records when it was measured.
Peers live in ``$ATTNMT_PEERS`` (default ``~/.cache/attnmt/peers``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import MULTI30K, save

REPO = Path(__file__).resolve().parents[1]
CONFIGS = Path(__file__).parent / "peers"
PEERS = Path(os.environ.get("ATTNMT_PEERS", Path.home() / ".cache/attnmt/peers"))
REDO: set[str] = set()      # steps to measure again (--redo)
TORCH = "torch==2.13.0"     # the CPU build on disk; anything else pulls a multi-GB CUDA build
SPLITS = {"train": "train", "val": "valid", "test_2016_flickr": "test"}


# ---- installation ------------------------------------------------------------------------
def pip(venv: Path, *args: str) -> None:
    env = {**os.environ, "PIP_CONSTRAINT": str(PEERS / "constraints.txt")}
    subprocess.run([str(venv / "bin/pip"), "install", "-q", *args], check=True, env=env)


def make_venv(name: str, steps: list[list[str]]) -> None:
    venv = PEERS / name
    if (venv / ".installed").exists():
        print(f"{venv}: installed")
        return
    print(f"{venv}: installing {' '.join(steps[-1])}")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    for args in steps:
        pip(venv, *args)
    (venv / ".installed").touch()


def install() -> None:
    PEERS.mkdir(parents=True, exist_ok=True)
    (PEERS / "constraints.txt").write_text(TORCH + "\n")
    # JoeyNMT 2.3.0 calls SentencePiece's SetVocabulary (gone in 0.2.1+) and imports
    # importlib_metadata; fairseq's build needs torch and cython already in the venv.
    make_venv("joey", [[TORCH], ["joeynmt==2.3.0", "importlib_metadata",
                                 "sentencepiece==0.2.0"]])
    make_venv("fs", [[TORCH, "cython", "numpy", "setuptools", "wheel"],
                     ["--no-build-isolation", "fairseq-fixed==0.12.3.1", "sacrebleu",
                      "sentencepiece"]])


# ---- data ---------------------------------------------------------------------------------
def prepare_data() -> None:
    """Raw Multi30k, the joint SentencePiece model (peer ids: unk 0, pad 1, bos 2, eos 3),
    and fairseq's binarised copy."""
    import sentencepiece as spm

    data, done = PEERS / "data", PEERS / "data/.done"
    if done.exists():
        return
    (data / "spm").mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        for lang in ("de", "en"):
            shutil.copy(MULTI30K / f"{split}.{lang}", data / f"{split}.{lang}")
    spm.SentencePieceTrainer.Train(
        input=f"{data}/train.de,{data}/train.en", model_prefix=str(data / "spm/spm8k"),
        model_type="unigram", vocab_size=8000, character_coverage=1.0, unk_piece="<unk>",
        bos_piece="<s>", eos_piece="</s>", pad_piece="<pad>", unk_id=0, pad_id=1, bos_id=2,
        eos_id=3, vocabulary_output_piece_score=False, input_sentence_size=0,
        seed_sentencepiece_size=1000000, num_threads=2, minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=str(data / "spm/spm8k.model"))
    fsdata = PEERS / "fsdata"
    fsdata.mkdir(exist_ok=True)
    for split, name in SPLITS.items():
        for lang in ("de", "en"):
            lines = (data / f"{split}.{lang}").read_text(encoding="utf-8").splitlines()
            (fsdata / f"{name}.{lang}").write_text(
                "".join(" ".join(sp.encode(x, out_type=str)) + "\n" for x in lines),
                encoding="utf-8")
    specials = {"<unk>", "<pad>", "<s>", "</s>"}
    (fsdata / "dict.txt").write_text("".join(
        f"{sp.id_to_piece(i)} 1\n" for i in range(sp.get_piece_size())
        if sp.id_to_piece(i) not in specials), encoding="utf-8")
    shutil.rmtree(PEERS / "fsbin", ignore_errors=True)
    subprocess.run([str(PEERS / "fs/bin/fairseq-preprocess"), "--source-lang", "de",
                    "--target-lang", "en", "--trainpref", f"{fsdata}/train",
                    "--validpref", f"{fsdata}/valid", "--testpref", f"{fsdata}/test",
                    "--destdir", str(PEERS / "fsbin"), "--srcdict", f"{fsdata}/dict.txt",
                    "--joined-dictionary", "--workers", "2"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done.touch()


# ---- measuring a training process -----------------------------------------------------------
def tree_rss_mib(root: int) -> float:
    """Resident memory of a process and all its descendants."""
    parent, rss = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            parent[int(entry.name)] = int(fields[1])
            rss[int(entry.name)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        for child, p in parent.items():
            if p == pid and child not in tree:
                tree.add(child)
                frontier.append(child)
    return sum(rss.get(p, 0) for p in tree) / 2**20


def run_measured(cmd: list[str], log: Path, minutes: float | None = None,
                 env: dict | None = None) -> dict:
    """Run ``cmd`` (stopped with SIGTERM after ``minutes``), sampling its peak RSS."""
    start, peak, stopped = time.monotonic(), 0.0, False
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                                env={**os.environ, **(env or {})}, start_new_session=True)
        while proc.poll() is None:
            peak = max(peak, tree_rss_mib(proc.pid))
            if minutes and time.monotonic() - start > minutes * 60:
                stopped = True
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
            time.sleep(0.5)
    if proc.returncode != 0 and not stopped:
        raise SystemExit(f"{cmd[0]} failed (exit {proc.returncode}); see {log}")
    return {"seconds": round(time.monotonic() - start, 1), "peak_rss_mib": round(peak)}


def median_after_warmup(values: list[float], skip: int) -> float:
    if len(values) <= skip:
        raise SystemExit(f"only {len(values)} throughput intervals logged; train longer")
    return round(statistics.median(values[skip:]), 1)


# ---- fairseq --------------------------------------------------------------------------------
FAIRSEQ_SPEC = [
    "--source-lang", "de", "--target-lang", "en", "--task", "translation",
    "--arch", "transformer", "--share-all-embeddings",
    "--encoder-layers", "3", "--decoder-layers", "3",
    "--encoder-embed-dim", "256", "--decoder-embed-dim", "256",
    "--encoder-ffn-embed-dim", "1024", "--decoder-ffn-embed-dim", "1024",
    "--encoder-attention-heads", "4", "--decoder-attention-heads", "4",
    "--encoder-normalize-before", "--decoder-normalize-before",
    "--dropout", "0.1", "--attention-dropout", "0.0", "--activation-dropout", "0.0",
    "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1",
    "--optimizer", "adam", "--adam-betas", "(0.9, 0.98)", "--adam-eps", "1e-8",
    "--weight-decay", "0.0", "--clip-norm", "1.0",
    "--lr", "5e-4", "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "250",
    "--warmup-init-lr", "1e-7",
    "--max-tokens", "4096", "--max-source-positions", "100", "--max-target-positions", "100",
    "--skip-invalid-size-inputs-valid-test", "--max-epoch", "1000",
    "--eval-bleu", "--eval-bleu-args", '{"beam": 1, "max_len_a": 1.2, "max_len_b": 10}',
    "--eval-bleu-detok", "space", "--eval-bleu-remove-bpe", "sentencepiece",
    "--best-checkpoint-metric", "bleu", "--maximize-best-checkpoint-metric",
    "--log-format", "simple", "--log-interval", "20", "--seed", "42", "--num-workers", "0",
    "--cpu"]
FS_ENV = {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}   # fairseq checkpoints under torch 2.13


def fairseq_train(minutes: float) -> dict:
    save_dir = PEERS / "fs-run"
    shutil.rmtree(save_dir, ignore_errors=True)
    # validate and save only when the time is up (as the attnmt window runs do)
    cmd = [str(PEERS / "fs/bin/fairseq-train"), str(PEERS / "fsbin"), *FAIRSEQ_SPEC,
           "--stop-time-hours", str(minutes / 60), "--validate-interval", "1000",
           "--save-interval", "1000", "--validate-interval-updates", "1000000",
           "--save-interval-updates", "1000000", "--no-epoch-checkpoints",
           "--save-dir", str(save_dir)]
    log = PEERS / "fs-train.log"
    measured = run_measured(cmd, log, env=FS_ENV)
    text = log.read_text()
    inner = [line for line in text.splitlines() if "wps=" in line and "num_updates=" in line]
    wps = [float(re.search(r"wps=([\d.]+)", line).group(1)) for line in inner]
    wpb = [float(re.search(r"wpb=([\d.]+)", line).group(1)) for line in inner]
    valid = re.findall(r"valid on 'valid' subset \| .*?nll_loss ([\d.]+) \| ppl ([\d.]+)"
                       r"(?: \| bleu ([\d.]+))?.*?num_updates (\d+)", text)
    if not valid:
        raise SystemExit(f"fairseq did not validate at the end; see {log}")
    nll, ppl, bleu, updates = valid[-1]
    return {**measured, "tokens_per_s_median": median_after_warmup(wps, 2),
            "real_target_tokens_per_batch": round(statistics.mean(wpb)),
            "updates": int(updates), "valid_ppl": float(ppl),
            "valid_bleu_greedy": float(bleu) if bleu else None}


def fairseq_decode(repeats: int) -> dict:
    from attnmt.data.corpus import read_lines
    from attnmt.inference.metrics import corpus_scores

    refs = read_lines(MULTI30K / "test_2016_flickr.en")
    rows = {}
    for name, beam in (("greedy", 1), ("beam5", 5)):
        speeds, token_speeds = [], []
        for _ in range(repeats):
            out = subprocess.run(
                [str(PEERS / "fs/bin/fairseq-generate"), str(PEERS / "fsbin"),
                 "--path", str(PEERS / "fs-run/checkpoint_best.pt"), "--gen-subset", "test",
                 "--beam", str(beam), "--batch-size", "64", "--required-batch-size-multiple",
                 "1", "--remove-bpe", "sentencepiece", "--cpu", "--num-workers", "0"],
                capture_output=True, text=True, env={**os.environ, **FS_ENV}, check=True)
            text = out.stdout + out.stderr
            m = re.search(r"Translated ([\d,]+) sentences \(([\d,]+) tokens\) in ([\d.]+)s", text)
            n, tokens, seconds = (int(m.group(1).replace(",", "")),
                                  int(m.group(2).replace(",", "")), float(m.group(3)))
            speeds.append(n / seconds)
            token_speeds.append(tokens / seconds)
        hyps = dict(re.findall(r"^D-(\d+)\t\S+\t(.*)$", out.stdout, flags=re.M))
        scores = corpus_scores([hyps.get(str(i), "") for i in range(len(refs))], refs)
        rows[name] = {"sentences_per_s": round(statistics.median(speeds), 1),
                      "tokens_per_s": round(statistics.median(token_speeds), 1),
                      "bleu": scores["bleu"], "chrf": scores["chrf"]}
        print(f"     fairseq {name:>7}: {rows[name]['sentences_per_s']:7.1f} sentences/s  "
              f"BLEU {scores['bleu']:.2f}")
    return rows


def fairseq_ct2(minutes: float) -> None:
    """The anchor of ``decode_speed.py --fairseq-ct2``: fairseq's transformer-small (the
    spec above) trained for ``minutes`` (kept in ``fs-run`` and reused), converted with
    CTranslate2's own fairseq converter (the version this project's venv has) to
    ``fs-ct2-float32`` and ``fs-ct2-int8``, with the SentencePiece model beside it (the
    checkpoint is our own, so its pickle is loaded with ``--unsafe_deserialization``)."""
    from importlib.metadata import version

    prepare_data()
    checkpoint = PEERS / "fs-run/checkpoint_best.pt"
    if not checkpoint.is_file():
        trained = fairseq_train(minutes)
        (PEERS / "fs-run/train.json").write_text(json.dumps({"minutes": minutes, **trained}))
    pip(PEERS / "fs", f"ctranslate2=={version('ctranslate2')}")
    for quant in ("float32", "int8"):
        out = PEERS / f"fs-ct2-{quant}"
        subprocess.run([str(PEERS / "fs/bin/ct2-fairseq-converter"), "--model_path",
                        str(checkpoint), "--data_dir", str(PEERS / "fsbin"), "--source_lang",
                        "de", "--target_lang", "en", "--output_dir", str(out),
                        "--quantization", quant, "--force", "--unsafe_deserialization"],
                       check=True, env={**os.environ, **FS_ENV})
        shutil.copy(PEERS / "data/spm/spm8k.model", out / "spm8k.model")
        print(f"wrote {out}")


# ---- JoeyNMT ----------------------------------------------------------------------------------
def joey_window(name: str, config: str, minutes: float) -> dict:
    """Train JoeyNMT for ``minutes`` with validation pushed past the window."""
    text = (CONFIGS / config).read_text().replace("$PEERS", str(PEERS))
    text = re.sub(r"model_dir: .*", f'model_dir: "{PEERS}/joey-{name}"', text)
    text = re.sub(r"updates: \d+", "updates: 1000000", text)
    text = re.sub(r"validation_freq: \d+", "validation_freq: 120000", text)
    cfg = PEERS / f"joey-{name}.yaml"
    cfg.write_text(text)
    log = PEERS / f"joey-{name}.log"
    measured = run_measured([str(PEERS / "joey/bin/python"), "-m", "joeynmt", "train",
                             str(cfg)], log, minutes=minutes)
    rates = [float(x) for x in re.findall(r"Tokens per Sec:\s+([\d.]+)", log.read_text())]
    return {**measured, "tokens_per_s_median": median_after_warmup(rates, 2)}


# ---- attnmt ----------------------------------------------------------------------------------
# The peers' recipe (fairseq's and JoeyNMT's configs use it too): the shipped config's
# learning rate, schedule and batch size were since tuned for the 25-minute budget (README,
# "Time to quality"), so the same-spec comparison pins the recipe it was run with.
PEER_SPEC = ("train.lr=0.0005", "train.schedule=inverse_sqrt", "train.max_tokens=4096")


def attnmt_train(name: str, config: str, minutes: float, window: bool,
                 extra: tuple[str, ...] = ()) -> dict:
    out = PEERS / f"attnmt-{name}"
    shutil.rmtree(out, ignore_errors=True)
    overrides = [f"train.max_minutes={minutes}", "train.max_steps=100000000", *extra]
    if window:       # throughput only: no validation inside the window
        overrides += ["train.valid_every=100000000", "train.valid_bleu=false"]
    cmd = [str(Path(sys.executable).parent / "attnmt"), "train", config, "--out", str(out),
           "--quiet"] + [x for o in overrides for x in ("--set", o)]
    measured = run_measured(cmd, PEERS / f"attnmt-{name}.log",
                            env={"ATTNMT_DATA_DIR": str(MULTI30K)})
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    rates = [r["tokens_per_s"] for r in records if r["type"] == "train"]
    return {**measured, "run": str(out), "tokens_per_s_median": median_after_warmup(rates, 1),
            "updates": max(r["step"] for r in records)}


# ---- the table --------------------------------------------------------------------------------
def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}×" if a and b else "–"


def table(r: dict) -> str:
    a, fs, joey = r["attnmt"], r["fairseq"], r["joeynmt"]
    dec, fdec, ct2 = r["decode"]["attnmt"], r["decode"]["fairseq"], r["decode"]["ctranslate2"]
    fp32 = a.get("tsmall_fp32")
    rows = [
        ("train tok/s, transformer-small (attnmt: shipped config, bf16 autocast)",
         a["tsmall"]["tokens_per_s_median"], fs["train"]["tokens_per_s_median"],
         joey["tsmall"]["tokens_per_s_median"]),
        *([("train tok/s, transformer-small, attnmt in float32", fp32["tokens_per_s_median"],
            fs["train"]["tokens_per_s_median"], joey["tsmall"]["tokens_per_s_median"])]
          if fp32 else []),
        ("train tok/s, attention RNN", a["rnn"]["tokens_per_s_median"], None,
         joey["rnn"]["tokens_per_s_median"]),
        ("peak train RSS MiB, transformer-small (attnmt: bf16 autocast)",
         a["tsmall"]["peak_rss_mib"], fs["train"]["peak_rss_mib"],
         joey["tsmall"]["peak_rss_mib"]),
        *([("peak train RSS MiB, transformer-small, attnmt in float32", fp32["peak_rss_mib"],
            fs["train"]["peak_rss_mib"], joey["tsmall"]["peak_rss_mib"])] if fp32 else []),
        ("peak train RSS MiB, attention RNN", a["rnn"]["peak_rss_mib"], None,
         joey["rnn"]["peak_rss_mib"]),
        (f"test2016 BLEU after {r['minutes']} min, greedy", dec["greedy"]["bleu"],
         fdec["greedy"]["bleu"], None),
        (f"test2016 BLEU after {r['minutes']} min, beam 5", dec["beam5"]["bleu"],
         fdec["beam5"]["bleu"], None),
        ("decode sentences/s, greedy", dec["greedy"]["sentences_per_s"],
         fdec["greedy"]["sentences_per_s"], None),
        ("decode sentences/s, beam 5", dec["beam5"]["sentences_per_s"],
         fdec["beam5"]["sentences_per_s"], None),
        ("decode sentences/s, beam 5, attnmt --int8", r["decode"]["attnmt_int8"]["beam5"]
         ["sentences_per_s"], fdec["beam5"]["sentences_per_s"], None),
        ("test2016 BLEU, beam 5, attnmt --int8", r["decode"]["attnmt_int8"]["beam5"]["bleu"],
         fdec["beam5"]["bleu"], None),
    ]
    if "attnmt_bf16" in r["decode"]:
        bf16 = r["decode"]["attnmt_bf16"]
        rows += [("decode sentences/s, greedy, attnmt --bf16", bf16["greedy"]["sentences_per_s"],
                  fdec["greedy"]["sentences_per_s"], None),
                 ("decode sentences/s, beam 5, attnmt --bf16", bf16["beam5"]["sentences_per_s"],
                  fdec["beam5"]["sentences_per_s"], None),
                 ("test2016 BLEU, beam 5, attnmt --bf16", bf16["beam5"]["bleu"],
                  fdec["beam5"]["bleu"], None)]
    if "run_end" in a:
        rows[:0] = [(f"updates in {r['minutes']:g} min, transformer-small",
                     a["run_end"]["updates"], fs["train"]["updates"], None),
                    ("validation perplexity at the end", a["run_end"]["valid_ppl"],
                     fs["train"]["valid_ppl"], None)]
    lines = ["| figure | attnmt | fairseq | JoeyNMT | attnmt/fairseq | attnmt/JoeyNMT |",
             "|---|---|---|---|---|---|"]
    for label, ours, f, j in rows:
        lines.append(f"| {label} | {ours:,} | {f if f is not None else '–':} | "
                     f"{j if j is not None else '–'} | {ratio(ours, f)} | {ratio(ours, j)} |")
    lines += ["", "| CTranslate2 (attnmt model exported) | greedy | beam 5 |", "|---|---|---|"]
    for key, row in ct2.items():
        lines.append(f"| {key}: sentences/s (BLEU) | {row['greedy']['sentences_per_s']} "
                     f"({row['greedy']['bleu']}) | {row['beam5']['sentences_per_s']} "
                     f"({row['beam5']['bleu']}) |")
        lines.append(f"| attnmt / CTranslate2 {key}, sentences/s | "
                     f"{ratio(dec['greedy']['sentences_per_s'], row['greedy']['sentences_per_s'])}"
                     f" | {ratio(dec['beam5']['sentences_per_s'], row['beam5']['sentences_per_s'])}"
                     " |")
    return "\n".join(lines)


STEPS = ("attnmt-tsmall", "attnmt-tsmall-fp32", "attnmt-rnn", "joey-tsmall", "joey-rnn",
         "fairseq-train", "attnmt-tsmall-full", "decode-fairseq", "decode-attnmt",
         "decode-attnmt-int8", "decode-attnmt-bf16", "decode-ct2-float32", "decode-ct2-int8")


def _no_hyps(rows: dict) -> dict:
    return {mode: {k: v for k, v in row.items() if k != "hyps"} for mode, row in rows.items()}


def cached(name: str, fresh: bool, inputs: dict, measure) -> dict:
    """Run one measurement, or reuse its saved result when it was measured with the same
    ``inputs`` (budget, window, run decoded, ...), so a failed run resumes where it stopped.
    ``--fresh`` measures everything again, ``--redo`` the named steps."""
    path = PEERS / "steps" / f"{name}.json"
    if path.exists() and not fresh and name not in REDO:
        saved = json.loads(path.read_text())
        if saved.get("inputs") == inputs:
            print(f"{name}: reusing {path} (measured {saved['measured']})")
            return saved
        print(f"{name}: saved result was measured with other inputs; measuring again")
    result = {"measured": datetime.datetime.now(datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M UTC"), "inputs": inputs, **measure()}
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    return result


def decode_all(result: dict, run_dir: str, args: argparse.Namespace) -> None:
    """fairseq-generate, attnmt (fp32, int8, bf16) and the CTranslate2 export (float32,
    int8) on test2016, each engine in its own process."""
    from decode_speed import export, time_engine

    split, reps, threads, fresh = "test_2016_flickr", args.repeats, args.threads, args.fresh
    fs_model = {"model trained": result["fairseq"]["train"]["measured"], "repeats": reps}
    result["decode"]["fairseq"] = cached("decode-fairseq", fresh, fs_model,
                                         lambda: fairseq_decode(reps))
    ours = {"run": run_dir, "repeats": reps, "threads": threads}
    common = dict(split=split, repeats=reps, threads=threads, modes=["greedy", "beam5"])
    for precision in ("fp32", "int8", "bf16"):
        suffix = "" if precision == "fp32" else f"_{precision}"
        result["decode"][f"attnmt{suffix}"] = cached(
            f"decode-attnmt{suffix.replace('_', '-')}", fresh, ours,
            lambda p=precision: _no_hyps(time_engine(
                f"attnmt-{p}", engine="attnmt", path=run_dir, precision=p, **common)))
    result["decode"]["ctranslate2"] = {}
    for quant in ("float32", "int8"):
        result["decode"]["ctranslate2"][quant] = cached(
            f"decode-ct2-{quant}", fresh, ours, lambda q=quant: _no_hyps(time_engine(
                f"ct2-{q}", engine="ctranslate2", path=str(export(run_dir, q)),
                precision="fp32", **common)))


def run(args: argparse.Namespace) -> None:
    for venv in ("joey", "fs"):
        if not (PEERS / venv / ".installed").exists():
            raise SystemExit(f"{PEERS / venv} is missing; run `python {__file__} install`")
    import torch

    torch.set_num_threads(args.threads)
    prepare_data()
    result = {"minutes": args.minutes, "window_minutes": args.window, "peers": str(PEERS),
              "attnmt": {}, "joeynmt": {}, "fairseq": {}, "decode": {}}
    w, fresh = args.window, args.fresh
    print(f"attnmt windows ({w} min each) ...")
    window = {"window_minutes": w}
    result["attnmt"]["tsmall"] = cached("attnmt-tsmall", fresh, window, lambda: attnmt_train(
        "tsmall", "configs/multi30k_transformer_small.yaml", w, window=True, extra=PEER_SPEC))
    result["attnmt"]["tsmall_fp32"] = cached("attnmt-tsmall-fp32", fresh, window, lambda:
        attnmt_train("tsmall-fp32", "configs/multi30k_transformer_small.yaml", w, window=True,
        extra=("train.precision=fp32", *PEER_SPEC)))
    result["attnmt"]["rnn"] = cached("attnmt-rnn", fresh, window, lambda: attnmt_train(
        "rnn-dot", "configs/multi30k_rnn_dot.yaml", w, window=True))
    print(f"JoeyNMT windows ({w} min each) ...")
    result["joeynmt"]["tsmall"] = cached("joey-tsmall", fresh, window, lambda: joey_window(
        "tsmall", "joeynmt_tsmall_deen.yaml", w))
    result["joeynmt"]["rnn"] = cached("joey-rnn", fresh, window, lambda: joey_window(
        "rattn", "joeynmt_rattn_deen.yaml", w))
    print(f"fairseq, {args.minutes} min ...")
    budget = {"minutes": args.minutes}
    result["fairseq"]["train"] = cached("fairseq-train", fresh, budget,
                                        lambda: fairseq_train(args.minutes))
    run_dir = args.attnmt_run
    if not run_dir:
        print(f"attnmt transformer-small, {args.minutes} min ...")
        trained = cached("attnmt-tsmall-full", fresh, budget, lambda: attnmt_train(
            "tsmall-full", "configs/multi30k_transformer_small.yaml", args.minutes,
            window=False, extra=PEER_SPEC))
        result["attnmt"]["tsmall_full"] = trained
        run_dir = trained["run"]
    result["attnmt_run"] = str(run_dir)
    valid = [json.loads(x) for x in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
             if '"valid"' in x]
    result["attnmt"]["run_end"] = {"updates": valid[-1]["step"],
                                   "valid_ppl": round(valid[-1]["ppl"], 2)}
    print("decoding test2016 ...")
    decode_all(result, str(run_dir), args)
    result["table"] = table(result)
    print(result["table"])
    save("peers", result)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("install", help="create the JoeyNMT and fairseq venvs")
    r = sub.add_parser("run", help="train and decode with every toolkit, one after the other")
    r.add_argument("--minutes", type=float, default=15, help="fairseq's (and attnmt's) budget")
    r.add_argument("--window", type=float, default=4, help="throughput window per model")
    r.add_argument("--attnmt-run", default=None,
                   help="an attnmt transformer-small run trained for --minutes")
    r.add_argument("--repeats", type=int, default=3)
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--fresh", action="store_true",
                   help="measure every step again instead of reusing saved step results")
    r.add_argument("--redo", default="", help="comma-separated steps to measure again "
                   "(names of the files in $ATTNMT_PEERS/steps, without .json)")
    f = sub.add_parser("fairseq-ct2", help="train fairseq transformer-small and convert it "
                       "to CTranslate2 (decode_speed.py --fairseq-ct2's anchor)")
    f.add_argument("--minutes", type=float, default=15)
    args = ap.parse_args()
    if args.command == "fairseq-ct2":
        return fairseq_ct2(args.minutes)
    REDO.update(filter(None, getattr(args, "redo", "").split(",")))
    if REDO - set(STEPS):
        ap.error(f"--redo: unknown step(s) {', '.join(sorted(REDO - set(STEPS)))}; steps are "
                 + ", ".join(STEPS))
    install() if args.command == "install" else run(args)


if __name__ == "__main__":
    main()
