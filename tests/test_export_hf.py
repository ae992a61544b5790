"""Hugging Face export: transformers loads the folder with its own classes and computes
what attnmt computes — the same logits and the same greedy translations."""

from __future__ import annotations

import pytest
import torch

from attnmt.errors import UserError

# the outcome depends on floating-point kernels: also run under other kernel settings
# (`make test-portable`, tests/kernel_settings.py)
pytestmark = pytest.mark.numerics

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def spm_run(task, tmp_path_factory):
    """The tiny reverse task with a joint SentencePiece vocabulary (what HF export needs)."""
    import yaml
    from conftest import TINY_TRANSFORMER, config

    from attnmt.config import load_config
    from attnmt.training.loop import train

    tmp = tmp_path_factory.mktemp("hf")
    path = config(task, tmp / "c.yaml", TINY_TRANSFORMER, max_steps=300, valid_every=300)
    raw = yaml.safe_load(path.read_text())
    raw["data"].update(tokenizer="sentencepiece", vocab_size=40, joint_vocab=True)
    path.write_text(yaml.safe_dump(raw))
    train(load_config(path), tmp / "run", quiet=True)
    return tmp / "run"


@pytest.fixture(scope="module")
def exported(spm_run, tmp_path_factory):
    from attnmt.export.huggingface import export_huggingface

    return export_huggingface(spm_run, tmp_path_factory.mktemp("hf-out") / "model")


def test_transformers_computes_our_logits(spm_run, exported):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from attnmt.rundir import RunDir

    _, vocabs, ours = RunDir(spm_run).load()
    hf = AutoModelForSeq2SeqLM.from_pretrained(exported).eval()
    tok = AutoTokenizer.from_pretrained(exported)
    texts = ["a b c d", "g f e", "b"]
    batch = tok(texts, return_tensors="pt", padding=True)
    for text, ids, mask in zip(texts, batch["input_ids"], batch["attention_mask"]):
        assert ids[mask.bool()].tolist() == vocabs.src.encode(text) + [3]   # + </s>
    tgt_in = torch.tensor([[2, 5, 6, 7], [2, 7, 6, 5], [2, 4, 4, 4]])
    lengths = batch["attention_mask"].sum(1)
    with torch.no_grad():
        logits, _ = ours(batch["input_ids"], lengths, tgt_in)
        theirs = hf(**batch, decoder_input_ids=tgt_in).logits
    assert torch.allclose(theirs, logits, atol=1e-4)


def test_greedy_translations_agree(spm_run, exported, task):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from attnmt.export.huggingface import hf_greedy
    from attnmt.inference.translator import Translator

    src = (task / "test.src").read_text().splitlines()[:30]
    ours = Translator.from_run(spm_run).translate(src, beam=1)
    hf = AutoModelForSeq2SeqLM.from_pretrained(exported).eval()
    tok = AutoTokenizer.from_pretrained(exported)
    theirs = hf_greedy(hf, tok, src, max_len_ratio=1.5)
    assert [h[0].tokens for h in ours] == theirs
    assert tok.decode(theirs[0]) == ours[0][0].text
    # (transformers 5 removed the "translation" pipeline; generate is its replacement)
    card = (exported / "README.md").read_text()
    assert "Pegasus" in card and "attnmt" in card


def test_what_cannot_be_exported_says_why(seq2seq_run, trained, tmp_path):
    from attnmt.export.huggingface import export_huggingface

    with pytest.raises(UserError, match="only Transformer runs"):
        export_huggingface(seq2seq_run, tmp_path / "a")
    with pytest.raises(UserError, match="SentencePiece|one embedding"):
        export_huggingface(trained, tmp_path / "b")
