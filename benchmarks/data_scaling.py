"""Data scaling: prepared, memory-mapped data from 30 thousand to 10 million pairs.

    python benchmarks/data_scaling.py --sizes 30000,300000,3000000,10000000

For each size, a corpus made from Multi30k's training text (repeated, then shuffled
with seed 1; val is Multi30k's val) and one joint SentencePiece 8k vocabulary trained
on Multi30k train (the shipped transformer-small data settings), in one run:

- preparation: ``attnmt``'s ``prepare_split`` (2 workers) — wall time and the peak
  memory of the whole process tree (sampled from /proc);
- fairseq (peers venv, `benchmarks/peers.py install`): the same SentencePiece encoding to
  piece text (2 threads), then ``fairseq-preprocess --workers 2`` with the same dictionary;
  both timed, and their sum;
- training: a warm start (the cache present) of ``attnmt train`` with transformer-small
  for 50 updates — seconds from launching the command to the first update, peak RSS, PSS,
  USS and anonymous memory (the process's own, without mapped file pages) of the training
  process (``/proc/PID/smaps_rollup``), median target tokens/s;
- on the 3 M corpus (or the largest below it): the same start under ``torchrun`` with 2
  processes (gloo), the two ranks' summed PSS against one process's.

``--torchrun-sizes 30000,3000000`` measures only that: one process and two ranks at each
size, one after the other, and adds them to the saved results (``torchrun_by_size``) —
what two ranks hold at 3 M pairs against what two ranks hold at 30 thousand is the
memory the data costs them; the rest is each rank's own model, optimizer and activations.

``--filtered-sizes 30000,3000000`` measures the same with what a practitioner's corpus
needs: two corpora (half the pairs each; ``data.corpora`` weights 1 and 0.5) through the
filters (``data.filter``: min_len 2, ratio 3, exact duplicates, copies). Each pair gets its
line number so that pairs are unique, then 1 % exact duplicates and 0.5 % copies are put
in. Timed: ``attnmt data prepare`` (the vocabulary given, both corpora and val prepared)
with its process tree's peak memory, and the warm start of training — added to the saved
results (``filtered_by_size``) with the ratios of the largest size to the smallest.

Results go to ``benchmarks/results/data_scaling.json`` and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from statistics import median

import numpy as np
from common import MULTI30K, save

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
FAIRSEQ = Path(os.environ.get("ATTNMT_PEERS", Path.home() / ".cache/attnmt/peers")) / "fs/bin"


# ---- memory of a process tree ---------------------------------------------------------------
def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return out


def _rollup(pid: int) -> dict[str, int]:
    fields = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
            key, value = line.split(":", 1)
            fields[key] = int(value.split()[0])
    except (OSError, ValueError):
        return {}
    uss = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return {"rss": fields.get("Rss", 0), "pss": fields.get("Pss", 0), "uss": uss,
            "anon": fields.get("Anonymous", 0)}


class PeakMemory(threading.Thread):
    """Samples a process tree every 0.1 s: the peak of the tree's summed RSS/PSS/USS (KiB),
    optionally only of the processes ``select`` keeps."""

    def __init__(self, pid: int, select=None):
        super().__init__(daemon=True)
        self.pid, self.select, self.peak, self.done = pid, select, {}, False

    def run(self) -> None:
        while not self.done:
            pids = [p for p in _tree(self.pid) if self.select is None or self.select(p)]
            total = {"rss": 0, "pss": 0, "uss": 0, "anon": 0}
            for p in pids:
                for k, v in _rollup(p).items():
                    total[k] += v
            self.peak = {k: max(v, self.peak.get(k, 0)) for k, v in total.items()}
            time.sleep(0.1)

    def stop(self) -> dict[str, float]:
        self.done = True
        self.join()
        return {f"peak_{k}_mib": round(v / 1024, 1) for k, v in self.peak.items()}


def run_measured(cmd: list[str], env: dict | None = None, select=None, until=None
                 ) -> tuple[float, dict, float | None]:
    """Run a command; wall seconds, peak memory of its tree, and the seconds until
    ``until()`` first held (polled)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    mem = PeakMemory(proc.pid, select)
    mem.start()
    first = None
    while proc.poll() is None:
        if until and first is None and until():
            first = time.perf_counter() - start
        time.sleep(0.05)
    err = proc.stderr.read()
    peak = mem.stop()
    if proc.returncode:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{err[-3000:]}")
    return time.perf_counter() - start, peak, first


# ---- corpora ----------------------------------------------------------------------------------
def make_corpus(n: int, out: Path) -> Path:
    if (out / "done").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    src = (MULTI30K / "train.de").read_text(encoding="utf-8").splitlines()
    tgt = (MULTI30K / "train.en").read_text(encoding="utf-8").splitlines()
    order = np.random.default_rng(1).permutation(n) % len(src)
    for lang, lines in (("de", src), ("en", tgt)):
        with open(out / f"train.{lang}", "w", encoding="utf-8") as f:
            for start in range(0, n, 100000):
                f.write("".join(lines[i] + "\n" for i in order[start:start + 100000]))
        shutil.copy(MULTI30K / f"val.{lang}", out / f"val.{lang}")
    (out / "done").touch()
    return out


def make_vocab(work: Path) -> Path:
    sys.path.insert(0, str(REPO / "src"))
    from attnmt.data.tokenizers import Vocabs

    vocab = work / "vocab"
    if not Vocabs.exists(vocab):
        src = (MULTI30K / "train.de").read_text(encoding="utf-8").splitlines()
        tgt = (MULTI30K / "train.en").read_text(encoding="utf-8").splitlines()
        Vocabs.train("sentencepiece", src, tgt, 8000, True, "unigram").save(vocab)
    return vocab


# ---- the measurements ---------------------------------------------------------------------------
PREPARE = """
import sys
from pathlib import Path
from attnmt.data.prepare import SplitSpec, prepare_split
d = Path(sys.argv[1])
spec = SplitSpec("pairs", (str(d / "train.de"), str(d / "train.en")), "train", "translate", 100)
prepare_split(spec, Path(sys.argv[2]), Path(sys.argv[3]), workers=2, log=lambda *_: None)
"""

SPM_PIECES = """
import sys
import sentencepiece as spm
sp = spm.SentencePieceProcessor(model_file=sys.argv[1])
for lang in ("de", "en"):
    with open(f"{sys.argv[2]}/train.{lang}", encoding="utf-8") as f, \\
            open(f"{sys.argv[3]}/train.{lang}", "w", encoding="utf-8") as out:
        while True:
            lines = [x.rstrip("\\n") for x in f.readlines(50_000_000)]
            if not lines:
                break
            out.write("".join(" ".join(p) + "\\n" for p in sp.encode(lines, out_type=str,
                                                                       num_threads=2)))
"""


def measure_prepare(corpus: Path, vocab: Path, cache: Path) -> dict:
    shutil.rmtree(cache, ignore_errors=True)
    wall, peak, _ = run_measured([PY, "-c", PREPARE, str(corpus), str(vocab), str(cache)])
    return {"seconds": round(wall, 2), **peak}


def measure_fairseq(corpus: Path, vocab: Path, work: Path) -> dict | None:
    if not (FAIRSEQ / "fairseq-preprocess").is_file():
        return None
    import sentencepiece as spm

    pieces, dest = work / "fs-pieces", work / "fs-bin"
    for d in (pieces, dest):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    sp = spm.SentencePieceProcessor(model_file=str(vocab / "joint.model"))
    with open(pieces / "dict.txt", "w", encoding="utf-8") as f:
        for i in range(sp.get_piece_size()):
            if sp.id_to_piece(i) not in ("<unk>", "<pad>", "<s>", "</s>"):
                f.write(f"{sp.id_to_piece(i)} 1\n")
    enc, enc_peak, _ = run_measured([PY, "-c", SPM_PIECES, str(vocab / "joint.model"),
                                     str(corpus), str(pieces)])
    pre, pre_peak, _ = run_measured([str(FAIRSEQ / "fairseq-preprocess"), "--source-lang", "de",
                                     "--target-lang", "en", "--trainpref",
                                     str(pieces / "train"), "--destdir", str(dest),
                                     "--srcdict", str(pieces / "dict.txt"),
                                     "--joined-dictionary", "--workers", "2"])
    shutil.rmtree(pieces, ignore_errors=True)
    return {"spm_encode_seconds": round(enc, 2), "preprocess_seconds": round(pre, 2),
            "seconds": round(enc + pre, 2), **pre_peak}


def _train_config(corpus: Path, cache: Path, out: Path, data: dict | None = None) -> Path:
    import yaml

    cfg = yaml.safe_load((REPO / "configs/multi30k_transformer_small.yaml").read_text())
    cfg["data"].update({"dir": str(corpus), "dataset": None, "cache_dir": str(cache),
                        **(data or {})})
    cfg["train"].update({"max_steps": 50, "valid_every": 10**6, "log_every": 1,
                         "max_tokens": 4096,     # the batch its published results used
                         "valid_bleu": False, "max_minutes": 0, "threads": 2})
    path = out / "config.yaml"
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg))
    return path


def _run_dir_with_vocab(cfg_path: Path, vocab: Path, run: Path) -> None:
    """A run folder holding the benchmark's vocabulary, recorded as made from this data."""
    sys.path.insert(0, str(REPO / "src"))
    from attnmt.config import load_config
    from attnmt.training.task_data import vocab_request, write_vocab_request

    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(vocab, run / "vocab")
    cfg = load_config(cfg_path)
    write_vocab_request(run / "vocab", vocab_request(cfg, Path(cfg.data.dir)))


def measure_training(corpus: Path, vocab: Path, cache: Path, work: Path, ranks: int = 1,
                     data: dict | None = None) -> dict:
    cfg = _train_config(corpus, cache, work / "cfg", data)
    run = work / f"run{ranks}"
    _run_dir_with_vocab(cfg, vocab, run)
    metrics = run / "metrics.jsonl"
    cli = ["-m", "attnmt.cli", "train", str(cfg), "--out", str(run), "--quiet"]
    if ranks == 1:
        cmd, select = [PY, *cli], None
    else:
        cmd = [PY, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
               str(ranks), *cli]

        def select(pid):               # the ranks, not the launcher or its helpers
            try:
                return "attnmt.cli" in Path(f"/proc/{pid}/cmdline").read_text() and \
                    "torch.distributed.run" not in Path(f"/proc/{pid}/cmdline").read_text()
            except OSError:
                return False
    env = {"OMP_NUM_THREADS": "1"} if ranks > 1 else {}
    wall, peak, first = run_measured(cmd, env=env, select=select,
                                     until=lambda: metrics.is_file() and metrics.stat().st_size)
    records = [json.loads(x) for x in metrics.read_text().splitlines()]
    rates = [r["tokens_per_s"] for r in records if r["type"] == "train" and r["step"] > 5]
    return {"ranks": ranks, "start_to_first_update_s": round(first or wall, 2),
            "tokens_per_s": round(median(rates)) if rates else None, **peak}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="30000,300000,3000000")
    ap.add_argument("--work", default=str(Path.home() / ".cache/attnmt/data_scaling"))
    ap.add_argument("--no-fairseq", action="store_true")
    ap.add_argument("--keep", default=None, help="results JSON whose preparation and fairseq "
                    "rows are kept (measure only training again)")
    ap.add_argument("--torchrun-sizes", default=None, help="only measure one process and two "
                    "torchrun ranks at these sizes; added to the saved results")
    ap.add_argument("--filtered-sizes", default=None, help="only measure two weighted corpora "
                    "through the filters at these sizes; added to the saved results")
    args = ap.parse_args()
    work = Path(args.work)
    sizes = [int(x) for x in args.sizes.split(",")]
    vocab = make_vocab(work)
    if args.filtered_sizes:
        return filtered_by_size([int(x) for x in args.filtered_sizes.split(",")], vocab, work)
    if args.torchrun_sizes:
        return torchrun_by_size([int(x) for x in args.torchrun_sizes.split(",")], vocab, work)
    kept = ({r["pairs"]: r for r in json.loads(Path(args.keep).read_text())["rows"]}
            if args.keep else {})
    rows = []
    for n in sizes:
        corpus = make_corpus(n, work / f"corpus-{n}")
        cache = work / f"cache-{n}"
        if n in kept:              # earlier measurements; the cache is (re)made, not timed
            subprocess.run([PY, "-c", PREPARE, str(corpus), str(vocab), str(cache)], check=True)
            row = {"pairs": n, "prepare": kept[n]["prepare"], "fairseq": kept[n]["fairseq"],
                   "kept_from": args.keep}
        else:
            row = {"pairs": n, "prepare": measure_prepare(corpus, vocab, cache)}
            row["fairseq"] = None if args.no_fairseq else measure_fairseq(corpus, vocab, work)
        row["train"] = measure_training(corpus, vocab, cache, work)
        print(json.dumps(row), flush=True)
        rows.append(row)
    torchrun_n = max([n for n in sizes if n <= 3_000_000] or sizes[:1])
    corpus, cache = work / f"corpus-{torchrun_n}", work / f"cache-{torchrun_n}"
    two = measure_training(corpus, vocab, cache, work, ranks=2)
    one = next(r["train"] for r in rows if r["pairs"] == torchrun_n)
    torchrun = {"pairs": torchrun_n, "two_ranks": two, "one_process": one,
                "pss_ratio": round(two["peak_pss_mib"] / one["peak_pss_mib"], 2)}
    print(json.dumps(torchrun), flush=True)
    _table(rows, torchrun)
    save("data_scaling", {"command": "python benchmarks/data_scaling.py --sizes " + args.sizes,
                          "rows": rows, "torchrun": torchrun})


def torchrun_by_size(sizes: list[int], vocab: Path, work: Path) -> None:
    """One process and two ranks at each size; saved beside the earlier results."""
    out = []
    for n in sizes:
        corpus, cache = make_corpus(n, work / f"corpus-{n}"), work / f"cache-{n}"
        subprocess.run([PY, "-c", PREPARE, str(corpus), str(vocab), str(cache)], check=True)
        one = measure_training(corpus, vocab, cache, work)
        two = measure_training(corpus, vocab, cache, work, ranks=2)
        out.append({"pairs": n, "one_process": one, "two_ranks": two,
                    "pss_ratio": round(two["peak_pss_mib"] / one["peak_pss_mib"], 2)})
        print(json.dumps(out[-1]), flush=True)
    base = out[0]["two_ranks"]
    for row in out:
        row["two_ranks_pss_over_smallest"] = round(
            row["two_ranks"]["peak_pss_mib"] / base["peak_pss_mib"], 3)
        print(f"{row['pairs']:>9} pairs: two ranks / one process PSS {row['pss_ratio']:.2f}x; "
              f"two ranks / two ranks at {out[0]['pairs']} pairs "
              f"{row['two_ranks_pss_over_smallest']:.3f}x")
    saved = json.loads((Path(__file__).parent / "results/data_scaling.json").read_text())
    saved.pop("date", None)
    saved.pop("machine", None)
    save("data_scaling", {**saved, "torchrun_by_size": out, "torchrun_by_size_command":
                          "python benchmarks/data_scaling.py --torchrun-sizes "
                          + ",".join(map(str, sizes))})


FILTERED = {"corpora": [{"path": "a", "weight": 1.0}, {"path": "b", "weight": 0.5}],
            "filter": {"min_len": 2, "ratio": 3.0, "dedup": True, "copies": True}}


def make_filtered_corpus(n: int, out: Path) -> Path:
    """Two corpora ``a`` and ``b`` (half of ``n`` each) of unique Multi30k-based pairs (each
    ends in its line number), with 1 % exact duplicates and 0.5 % copies put in."""
    if (out / "done").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    src = (MULTI30K / "train.de").read_text(encoding="utf-8").splitlines()
    tgt = (MULTI30K / "train.en").read_text(encoding="utf-8").splitlines()
    order = np.random.default_rng(1).permutation(n) % len(src)
    for part, (lo, hi) in (("a", (0, n // 2)), ("b", (n // 2, n))):
        with open(out / f"{part}.de", "w", encoding="utf-8") as fs, \
                open(out / f"{part}.en", "w", encoding="utf-8") as ft:
            for start in range(lo, hi, 100000):
                rows = []
                for i in range(start, min(hi, start + 100000)):
                    j = i - 1 if i % 100 == 99 else i            # a duplicate of the last
                    s, t = f"{src[order[j]]} {j}", f"{tgt[order[j]]} {j}"
                    rows.append((s, s if i % 200 == 7 else t))     # a copy
                fs.write("".join(s + "\n" for s, _ in rows))
                ft.write("".join(t + "\n" for _, t in rows))
    for lang in ("de", "en"):
        shutil.copy(MULTI30K / f"val.{lang}", out / f"val.{lang}")
    (out / "done").touch()
    return out


def filtered_by_size(sizes: list[int], vocab: Path, work: Path) -> None:
    """Preparation and training start of two weighted, filtered corpora at each size."""
    out = []
    for n in sizes:
        corpus, cache = make_filtered_corpus(n, work / f"filtered-{n}"), work / f"fcache-{n}"
        shutil.rmtree(cache, ignore_errors=True)
        cfg = _train_config(corpus, cache, work / "fcfg", FILTERED)
        run = work / "frun"
        _run_dir_with_vocab(cfg, vocab, run)
        wall, peak, _ = run_measured([PY, "-m", "attnmt.cli", "data", "prepare", str(cfg),
                                      "--out", str(run)])
        counts = {p.name.split("-")[0]: json.loads((p / "meta.json").read_text())
                  for p in cache.iterdir() if p.is_dir()}
        train = measure_training(corpus, vocab, cache, work, data=FILTERED)
        out.append({"pairs": n, "prepare": {"seconds": round(wall, 2), **peak},
                    "counts": {k: {c: v[c] for c in ("lines", "kept", "empty", "long", "copy",
                                                      "short", "ratio", "duplicate")}
                               for k, v in counts.items()}, "train": train})
        print(json.dumps(out[-1]), flush=True)
    small, big = out[0], out[-1]
    ratios = {"pairs": big["pairs"] / small["pairs"],
              "prepare_seconds": round(big["prepare"]["seconds"] / small["prepare"]["seconds"],
                                       2),
              "prepare_peak_pss": round(big["prepare"]["peak_pss_mib"] /
                                        small["prepare"]["peak_pss_mib"], 3),
              "train_peak_rss": round(big["train"]["peak_rss_mib"] /
                                      small["train"]["peak_rss_mib"], 3),
              "train_peak_anon": round(big["train"]["peak_anon_mib"] /
                                       small["train"]["peak_anon_mib"], 3),
              "train_start": round(big["train"]["start_to_first_update_s"] /
                                   small["train"]["start_to_first_update_s"], 2)}
    print(json.dumps(ratios))
    saved = json.loads((Path(__file__).parent / "results/data_scaling.json").read_text())
    saved.pop("date", None)
    saved.pop("machine", None)
    save("data_scaling", {**saved, "filtered_by_size": out, "filtered_ratios": ratios,
                          "filtered_settings": FILTERED, "filtered_by_size_command":
                          "python benchmarks/data_scaling.py --filtered-sizes "
                          + ",".join(map(str, sizes))})


def _table(rows: list[dict], torchrun: dict) -> None:
    print("| pairs | attnmt prepare s (pairs/s) | fairseq encode+preprocess s (pairs/s) | "
          "ratio | warm start to 1st update s | train peak RSS / PSS / USS MiB | tok/s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        p, f, t = r["prepare"], r["fairseq"], r["train"]
        fs = f"{f['seconds']} ({r['pairs'] / f['seconds']:,.0f})" if f else "–"
        ratio = f"{f['seconds'] / p['seconds']:.2f}x" if f else "–"
        print(f"| {r['pairs']:,} | {p['seconds']} ({r['pairs'] / p['seconds']:,.0f}) | {fs} | "
              f"{ratio} | {t['start_to_first_update_s']} | {t['peak_rss_mib']:,} / "
              f"{t['peak_pss_mib']:,} / {t['peak_uss_mib']:,} | {t['tokens_per_s']:,} |")
    print(f"torchrun 2 ranks on {torchrun['pairs']:,} pairs: summed PSS "
          f"{torchrun['two_ranks']['peak_pss_mib']:,} MiB vs one process "
          f"{torchrun['one_process']['peak_pss_mib']:,} MiB ({torchrun['pss_ratio']}x)")


if __name__ == "__main__":
    main()
