"""End to end through the `attnmt` command: train, translate, evaluate, plot, resume, torchrun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import TINY_TRANSFORMER, config
from safetensors.torch import load_file


def attnmt(*args, input=None, env=None, check=True):
    r = subprocess.run([sys.executable, "-m", "attnmt.cli", *map(str, args)],
                       capture_output=True, text=True, input=input,
                       env={**os.environ, **(env or {})})
    if check and r.returncode:
        raise AssertionError(f"attnmt {' '.join(map(str, args))} failed:\n{r.stderr}")
    return r


@pytest.mark.numerics
def test_run_directory_holds_everything(trained):
    assert (trained / "config.yaml").is_file() and (trained / "vocab/joint.json").is_file()
    latest = json.loads((trained / "checkpoints/latest.json").read_text())
    assert latest["step"] == 450
    assert (trained / "checkpoints/best.safetensors").is_file()
    records = [json.loads(x) for x in (trained / "metrics.jsonl").read_text().splitlines()]
    valid = [r for r in records if r["type"] == "valid"]
    assert [r["step"] for r in valid] == [150, 300, 450]
    assert valid[-1]["loss"] < valid[0]["loss"]
    kept = sorted(p.name for p in (trained / "checkpoints").glob("step-*.safetensors"))
    assert kept == ["step-0000300.safetensors", "step-0000450.safetensors"]  # keep_last 2


def test_metrics_also_go_to_tensorboard(trained):
    pytest.importorskip("torch.utils.tensorboard")
    events = list((trained / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


@pytest.mark.numerics
def test_translate_keeps_lines_aligned_and_learns(trained, task):
    src = (task / "test.src").read_text().splitlines()[:5]
    text = "\n".join([src[0], "", src[1], "   ", *src[2:]]) + "\n"
    out = attnmt("translate", trained, input=text).stdout.split("\n")
    assert len(out) == 8 and out[1] == "" and out[3] == "" and out[7] == ""
    outputs = [o for o in out[:7] if o]
    good = sum(o.split() == s.split()[::-1] for o, s in zip(outputs, src))
    assert good >= 3  # measured 4..5 of 5 (test_margins.json); chance is ~0
    nbest = attnmt("translate", trained, "--beam", "4", "--nbest", "3", input=src[0] + "\n")
    fields = nbest.stdout.rstrip("\n").split("\t")
    assert len(fields) == 6 and float(fields[1]) >= float(fields[3]) >= float(fields[5])
    a = attnmt("translate", trained, "--sample", "--seed", "3", "--temperature", "1.5",
               input="\n".join(src) + "\n").stdout
    b = attnmt("translate", trained, "--sample", "--seed", "3", "--temperature", "1.5",
               input="\n".join(src) + "\n").stdout
    assert a == b and len(a.splitlines()) == 5


@pytest.mark.numerics
def test_evaluate_and_plot(trained, tmp_path):
    r = attnmt("evaluate", trained, "--split", "test", "--beam", "2")
    assert "BLEU" in r.stdout and "nrefs:1|case:mixed|eff:no|tok:13a" in r.stdout
    result = json.loads((trained / "eval/test.beam2.json").read_text())
    # exact measured 96.7..100 % of 60 (benchmarks/results/test_margins.json)
    assert result["n"] == 60 and result["exact"] > 50 and result["by_length"]
    assert sum(b["n"] for b in result["by_length"]) == 60
    # the reverse task's gold alignment: AER 2.72..6.61 (test_margins.json)
    assert result["alignment"]["aer"] <= 15 and "attention as word alignment" in r.stdout
    png = tmp_path / "a.png"
    r = attnmt("plot", "attention", trained, "a b c d", "--out", png, "--layer", "1", "--head", "0")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = attnmt("plot", "attention", trained, "a b", "--layer", "9", "--out", png, check=False)
    assert r.returncode == 2 and "--layer 9 is out of range: layers 0..1" in r.stderr


@pytest.mark.numerics
def test_int8_quantised_inference_stays_close_to_float(trained, task):
    import torch

    from attnmt.inference.translator import Translator

    float_tr, int8_tr = Translator.from_run(trained), Translator.from_run(trained, precision="int8")
    kinds = {type(m) for m in int8_tr.model.modules()}
    assert torch.ao.nn.quantized.dynamic.Linear in kinds and torch.nn.Linear not in kinds
    src = (task / "test.src").read_text().splitlines()
    same = sum(a[0].text == b[0].text for a, b in
               zip(float_tr.translate(src, beam=1), int8_tr.translate(src, beam=1)))
    assert same >= 0.9 * len(src)       # measured 0.95..1 (benchmarks/results/test_margins.json)
    r = attnmt("evaluate", trained, "--split", "test", "--beam", "1", "--int8")
    assert (trained / "eval/test.beam1.int8.json").is_file() and "BLEU" in r.stdout
    r = attnmt("translate", trained, "--engine", "ctranslate2", "--int8", input="a\n",
               check=False)
    assert r.returncode == 2 and "--quantization int8" in r.stderr


@pytest.mark.numerics
def test_bf16_inference_stays_close_to_float(trained, task):
    import torch

    from attnmt.inference.translator import Translator

    float_tr, bf16_tr = Translator.from_run(trained), Translator.from_run(trained, precision="bf16")
    assert {p.dtype for p in bf16_tr.model.parameters()} == {torch.bfloat16}
    src = (task / "test.src").read_text().splitlines()
    for beam in (1, 3):
        same = sum(a[0].text == b[0].text for a, b in
                   zip(float_tr.translate(src, beam=beam), bf16_tr.translate(src, beam=beam)))
        assert same >= 0.9 * len(src)   # measured 0.983..1 (benchmarks/results/test_margins.json)
    r = attnmt("evaluate", trained, "--split", "test", "--beam", "1", "--bf16")
    assert (trained / "eval/test.beam1.bf16.json").is_file() and "BLEU" in r.stdout
    r = attnmt("translate", trained, "--engine", "ctranslate2", "--stopping", "bound",
               input="a\n", check=False)
    assert r.returncode == 2 and "--stopping applies to the attnmt engine" in r.stderr
    r = attnmt("translate", trained, "--bf16", "--int8", input="a\n", check=False)
    assert r.returncode == 2 and r.stderr.strip() == (
        "error: --int8 and --bf16 exclude each other; choose one")


# Two runs that differ only in precision drift apart as two seeds do; the linear decay to
# zero settles both, so their end losses differ by little more than bf16's own effect.
BF16_PAIR = {"max_steps": 150, "valid_every": 150, "valid_bleu": False, "best_metric": "loss",
             "schedule": "linear"}


@pytest.mark.numerics
def test_bf16_autocast_training_learns_as_well_as_float32(task, tmp_path):
    from attnmt.config import load_config
    from attnmt.training.loop import train

    losses = {}
    for precision in ("fp32", "bf16"):
        cfg = config(task, tmp_path / f"{precision}.yaml", TINY_TRANSFORMER, **BF16_PAIR,
                     precision=precision)
        train(load_config(cfg), tmp_path / precision, quiet=True)
        records = [json.loads(x) for x in (tmp_path / precision / "metrics.jsonl")
                   .read_text().splitlines()]
        losses[precision] = [r["loss"] for r in records if r["type"] == "valid"][-1]
        weights = load_file(tmp_path / precision / "checkpoints/step-0000150.safetensors")
        assert {str(w.dtype) for w in weights.values()} == {"torch.float32"}
    # measured (benchmarks/results/test_margins.json): fp32 loss 0.34..0.60, |bf16 - fp32|
    # at most 0.009 of fp32; uniform over the alphabet is ~3.3
    assert losses["fp32"] < 1.0
    assert abs(losses["bf16"] - losses["fp32"]) < 0.15 * losses["fp32"] + 0.05
    assert losses["bf16"] != losses["fp32"]    # same seed: equal only if bf16 were ignored


def test_bf16_training_leaves_onednn_kernel_cache_at_its_size(task, tmp_path, monkeypatch):
    """oneDNN keeps a compiled kernel per bf16 product shape; capping its cache made every
    update on an AMX CPU 1.27x slower (benchmarks/README.md), so the trainer must not."""
    from attnmt.config import load_config
    from attnmt.training.loop import Trainer

    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    cfg = config(task, tmp_path / "bf16.yaml", TINY_TRANSFORMER, max_steps=1, precision="bf16")
    Trainer(load_config(cfg), tmp_path / "run", quiet=True)
    assert "ONEDNN_PRIMITIVE_CACHE_CAPACITY" not in os.environ


def test_seq2seq_has_no_attention_to_plot(seq2seq_run):
    r = attnmt("plot", "attention", seq2seq_run, "a b", check=False)
    assert r.returncode == 2
    assert "without attention" in r.stderr and "Traceback" not in r.stderr


def test_user_errors_are_one_line(tmp_path, trained):
    r = attnmt("translate", tmp_path / "missing", input="a\n", check=False)
    assert r.returncode == 2 and r.stderr.strip() == (
        f"error: run directory {tmp_path / 'missing'} does not exist")
    (tmp_path / "empty").mkdir()
    r = attnmt("translate", tmp_path / "empty", input="a\n", check=False)
    assert r.returncode == 2 and "is not a run directory" in r.stderr
    r = attnmt("translate", trained, "--beam", "0", input="a\n", check=False)
    assert r.returncode == 2 and "Invalid value for '--beam'" in r.stderr
    r = attnmt("translate", trained, "--nbest", "5", "--beam", "2", input="a\n", check=False)
    assert r.returncode == 2 and "--nbest 5 needs --beam of at least 5" in r.stderr
    r = attnmt("train", tmp_path / "nope.yaml", check=False)
    assert r.returncode == 2 and "does not exist" in r.stderr


@pytest.mark.numerics
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(task, tmp_path):
    model = {"preset": "rnn-additive", "emb_size": 16, "enc_hidden": 16, "dec_hidden": 32,
             "dropout": 0.3}
    cfg = config(task, tmp_path / "c.yaml", model, max_steps=12, valid_every=6,
                 valid_bleu=False, best_metric="loss")
    attnmt("train", cfg, "--out", tmp_path / "full", "--quiet")
    attnmt("train", cfg, "--out", tmp_path / "split", "--quiet", "--set", "train.max_steps=6")
    r = attnmt("train", cfg, "--out", tmp_path / "split", "--quiet", check=False)
    assert r.returncode == 2 and "pass --resume" in r.stderr
    attnmt("train", cfg, "--out", tmp_path / "split", "--quiet", "--resume")
    a = load_file(tmp_path / "full/checkpoints/step-0000012.safetensors")
    b = load_file(tmp_path / "split/checkpoints/step-0000012.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


def test_sigterm_writes_a_checkpoint_and_resume_continues(task, tmp_path):
    cfg = config(task, tmp_path / "c.yaml", TINY_TRANSFORMER, max_steps=100000,
                 valid_every=100000)
    proc = subprocess.Popen([sys.executable, "-m", "attnmt.cli", "train", str(cfg), "--out",
                             str(tmp_path / "run"), "--quiet"], stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "run/metrics.jsonl"
    deadline = time.time() + 60
    def lines() -> int:
        return metrics.read_text().count("\n") if metrics.is_file() else 0

    while time.time() < deadline and lines() < 2:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, proc.stderr.read()
    step = json.loads((tmp_path / "run/checkpoints/latest.json").read_text())["step"]
    assert step >= 10
    attnmt("train", cfg, "--out", tmp_path / "run", "--quiet", "--resume", "--set",
           f"train.max_steps={step + 5}")
    assert json.loads((tmp_path / "run/checkpoints/latest.json").read_text())["step"] == step + 5


def test_average_checkpoints(trained):
    r = attnmt("average", trained, "--last", "2")
    assert "averaged 2 checkpoints" in r.stdout
    a = load_file(trained / "checkpoints/step-0000300.safetensors")
    b = load_file(trained / "checkpoints/step-0000450.safetensors")
    avg = load_file(trained / "checkpoints/averaged.safetensors")
    assert avg.keys() == a.keys()
    assert all(((a[k] + b[k]) / 2 - avg[k]).abs().max() < 1e-6 for k in avg)
    out = attnmt("translate", trained, "--checkpoint", "averaged", input="a b c\n").stdout
    assert len(out.splitlines()) == 1


def test_average_the_last_kept_checkpoints(kept_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(kept_run, run)
    kept = sorted((run / "checkpoints/kept").glob("step-*.safetensors"))[-3:]
    r = attnmt("average", run, "--last", "3", "--kept")
    assert f"averaged 3 checkpoints ({kept[0].name} .. {kept[-1].name})" in r.stdout
    inputs = [load_file(f) for f in kept]
    avg = load_file(run / "checkpoints/averaged.safetensors")
    assert all((sum(w[k] for w in inputs) / 3 - avg[k]).abs().max() < 1e-6 for k in avg)


@pytest.mark.numerics
def test_torchrun_two_processes_match_one_process_on_the_same_global_batch(task, tmp_path):
    model = {"preset": "transformer-tiny", "d_model": 32, "ffn": 64, "dropout": 0.0}
    cfg = config(task, tmp_path / "c.yaml", model, max_steps=8, valid_every=8, log_every=1,
                 valid_bleu=False, best_metric="loss")
    attnmt("train", cfg, "--out", tmp_path / "one", "--quiet", "--set", "train.accum=2")
    cache = tmp_path / "cache"
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                        "--nproc_per_node", "2", "-m", "attnmt.cli", "train", str(cfg), "--out",
                        str(tmp_path / "two")], capture_output=True, text=True,
                       env={**os.environ, "OMP_NUM_THREADS": "1", "ATTNMT_CACHE": str(cache)})
    assert r.returncode == 0, r.stderr[-3000:]
    # rank 0 prepared one copy of each split; both ranks mapped it, nothing left half-done
    assert sorted(p.name.split("-")[0] for p in (cache / "prepared").iterdir()) == ["train",
                                                                                   "val"]
    assert "ranks in sync: 2 replicas" in r.stderr + r.stdout
    one = load_file(tmp_path / "one/checkpoints/step-0000008.safetensors")
    two = load_file(tmp_path / "two/checkpoints/step-0000008.safetensors")
    assert one.keys() == two.keys()
    assert max(float((one[k] - two[k]).abs().max()) for k in one) < 1e-4
    losses = [json.loads(x)["loss"] for x in (tmp_path / "two/metrics.jsonl").read_text()
              .splitlines() if '"train"' in x]
    assert len(losses) >= 2 and losses[-1] < losses[0]  # training progressed


@pytest.mark.numerics
def test_checkpoints_at_training_time_marks_are_kept_and_resume(task, tmp_path):
    """``train.save_every_minutes``: a kept checkpoint and a ``mark`` record at every mark
    of training time; a resumed run continues the marks where it stopped."""
    import attnmt
    from attnmt.config import load_config
    from attnmt.rundir import RunDir
    from attnmt.training.loop import train

    def marks() -> list[dict]:
        lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
        return [r for r in map(json.loads, lines) if r["type"] == "mark"]

    cfg = config(task, tmp_path / "c.yaml", TINY_TRANSFORMER, max_steps=100000,
                 max_minutes=0.04, valid_every=100000, save_every_minutes=0.01)
    train(load_config(cfg), tmp_path / "run", quiet=True)
    first = marks()
    assert len(first) >= 2
    assert [m["minutes"] for m in first] == pytest.approx([0.01 * (i + 1) for i in
                                                           range(len(first))])
    assert all(m["elapsed"] >= m["minutes"] * 60 for m in first)
    run = RunDir(tmp_path / "run")
    assert {m["step"] for m in first} <= set(run.kept_steps())
    assert isinstance(attnmt.load(tmp_path / "run", checkpoint=str(first[0]["step"]))
                      .translate("a b"), str)                  # a mark's weights load
    longer = config(task, tmp_path / "c2.yaml", TINY_TRANSFORMER, max_steps=100000,
                    max_minutes=0.07, valid_every=100000, save_every_minutes=0.01)
    train(load_config(longer), tmp_path / "run", resume=True, quiet=True)
    after = marks()
    assert len(after) > len(first) and after[: len(first)] == first
    minutes = [m["minutes"] for m in after]
    assert minutes == sorted(set(minutes))                  # no mark twice across the resume


def test_a_metrics_record_carries_only_declared_fields(tmp_path):
    """metrics.jsonl's reference (docs/reference/run-directory.md) is generated from
    ``RECORDS``; a record with a field it does not declare is refused, so the two agree."""
    from attnmt.rundir import RunDir
    from attnmt.training.reporting import Reporter

    report = Reporter(RunDir(tmp_path), rank=0, quiet=True)
    report.record({"type": "mark", "step": 3, "elapsed": 1.5, "minutes": 0.025})
    assert RunDir(tmp_path).records("mark") == [{"type": "mark", "step": 3, "elapsed": 1.5,
                                                  "minutes": 0.025}]
    with pytest.raises(ValueError, match="undeclared"):
        report.record({"type": "mark", "step": 4, "surprise": 1})
    with pytest.raises(ValueError, match="undeclared"):
        report.record({"type": "unheard-of", "step": 4})


@pytest.mark.numerics
def test_translate_with_prefixes_constraints_ensembles_and_alignments(trained, task, tmp_path):
    src = (task / "test.src").read_text().splitlines()[:4]
    words = [s.split() for s in src]
    text = "\n".join(src) + "\n"
    prefixes = tmp_path / "prefixes"
    prefixes.write_text("\n".join([words[0][0], "", words[2][1], ""]) + "\n")
    out = attnmt("translate", trained, "--prefixes", prefixes, input=text).stdout.splitlines()
    assert out[0].split()[0] == words[0][0] and out[2].split()[0] == words[2][1]
    constraints = tmp_path / "constraints"
    constraints.write_text("\n".join([words[0][0], f"{words[1][0]}\t{words[1][-1]}", "",
                                      words[3][1]]) + "\n")
    out = attnmt("translate", trained, "--beam", "4", "--constraints", constraints,
                 input=text).stdout.splitlines()
    for line, wanted in zip(out, constraints.read_text().splitlines(), strict=True):
        assert all(w in line.split() for w in wanted.split("\t") if w)
    plain = attnmt("translate", trained, "--beam", "4", input=text).stdout
    assert attnmt("translate", trained, trained, "--beam", "4", input=text).stdout == plain
    aligned = attnmt("translate", trained, "--alignments", input=text).stdout.splitlines()
    assert all("\t" in line and "-" in line.split("\t")[1] for line in aligned)
    bad = tmp_path / "short"
    bad.write_text("x\n")
    r = attnmt("translate", trained, "--constraints", bad, input=text, check=False)
    assert r.returncode == 2 and "has 1 lines but the input has 4" in r.stderr
    r = attnmt("translate", trained, "--beam", "1", "--constraints", constraints, input=text,
               check=False)
    assert r.returncode == 2 and "constraints need beam search" in r.stderr
    long = tmp_path / "long"
    long.write_text("\n".join([" ".join(words[0] * 40)] + [""] * 3) + "\n")
    r = attnmt("translate", trained, "--beam", "4", "--constraints", long, input=text)
    assert " ".join(words[0] * 40) in r.stdout.splitlines()[0]   # the RNN's limit stretches
