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

    with pytest.raises(UserError, match="decoder-only and language-model runs export"):
        export_huggingface(seq2seq_run, tmp_path / "a")
    with pytest.raises(UserError, match="SentencePiece|one embedding"):
        export_huggingface(trained, tmp_path / "b")


def _spm_run(task, folder, model: dict, data: dict | None = None, steps: int = 40):
    """A run on the reverse task with a joint SentencePiece vocabulary, trained a little
    (so biases are no longer zero and a mapping mistake shows)."""
    import yaml
    from conftest import config

    from attnmt.config import load_config
    from attnmt.training.loop import train

    folder.mkdir(parents=True, exist_ok=True)
    path = config(task, folder / "c.yaml", model, max_steps=steps, valid_every=steps,
                  best_metric="loss")
    raw = yaml.safe_load(path.read_text())
    raw["data"].update(tokenizer="sentencepiece", vocab_size=40, joint_vocab=True,
                       **(data or {}))
    path.write_text(yaml.safe_dump(raw))
    train(load_config(path), folder / "run", quiet=True)
    return folder / "run"


@pytest.mark.parametrize("positions", ["sinusoidal", "learned"])
def test_a_decoder_only_translator_exports_as_a_causal_lm(task, tmp_path, positions):
    """PegasusForCausalLM reads 'source </s> <s>' and continues it with our logits and our
    greedy translation."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from attnmt.export.huggingface import export_huggingface
    from attnmt.inference.translator import Translator
    from attnmt.rundir import RunDir

    run = _spm_run(task, tmp_path, {"preset": "decoder-only-small", "dec_layers": 2,
                                    "d_model": 32, "ffn": 64, "positions": positions})
    out = export_huggingface(run, tmp_path / "hf")
    hf = AutoModelForCausalLM.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    _, vocabs, ours = RunDir(run).load()
    translator = Translator.from_run(run)
    for text in (task / "test.src").read_text().splitlines()[:5]:
        prompt = tok([text], return_tensors="pt")["input_ids"]
        src = vocabs.src.encode(text) + [3]
        assert prompt[0].tolist() == src + [2]                     # source </s> <s>
        tgt_in = torch.tensor([[2, 5, 6, 7, 8]])
        with torch.no_grad():
            logits, _ = ours(torch.tensor([src]), torch.tensor([len(src)]), tgt_in)
            theirs = hf(torch.cat([prompt, tgt_in[:, 1:]], 1)).logits[:, len(src):]
        assert torch.allclose(theirs, logits, atol=1e-4)
        greedy = translator.translate([text], beam=1)[0][0].tokens
        made = hf.generate(prompt, do_sample=False, num_beams=1, eos_token_id=3,
                           max_new_tokens=len(greedy) + 1)[0, prompt.size(1):].tolist()
        # (a barely trained model may run to attnmt's length limit, where it stops)
        assert made[: len(greedy)] == greedy


def test_a_language_model_exports_and_a_classifier_says_why(task, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from attnmt.export.huggingface import export_huggingface
    from attnmt.rundir import RunDir

    tiny = {"preset": "transformer-tiny", "d_model": 32, "ffn": 64, "heads": 4,
            "enc_layers": 2, "dec_layers": 2}
    lm = _spm_run(task, tmp_path / "lm", tiny, {"task": "lm", "src": "src"})
    out = export_huggingface(lm, tmp_path / "lm-hf")
    hf = AutoModelForCausalLM.from_pretrained(out).eval()
    ids = AutoTokenizer.from_pretrained(out)(["a b c d"], return_tensors="pt")["input_ids"]
    _, vocabs, ours = RunDir(lm).load()
    assert ids[0].tolist() == [2, *vocabs.tgt.encode("a b c d")]      # <s> text
    with torch.no_grad():
        assert torch.allclose(hf(ids).logits, ours(ids), atol=1e-4)
    assert "AutoModelForCausalLM" in (out / "README.md").read_text()
    from test_descendants import cfg, write_toy

    from attnmt.training.loop import train

    toy = write_toy(tmp_path)
    train(cfg(toy, "classify", max_steps=2, valid_every=2), tmp_path / "clf", quiet=True)
    with pytest.raises(UserError, match="layer norm on the embeddings"):
        export_huggingface(tmp_path / "clf", tmp_path / "clf-hf")
    assert not (tmp_path / "clf-hf").exists()
