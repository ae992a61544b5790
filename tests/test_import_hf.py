"""Hugging Face import: a MarianMT or Pegasus folder, built here with random weights by
``transformers`` itself (no hub, no network), becomes a run directory whose model computes
the checkpoint's logits and greedy translations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.numerics
pytest.importorskip("transformers")

TEXTS = ["ein hund läuft im park", "zwei kinder spielen mit einem ball",
         "a dog runs in the park", "two children play with a ball", "ein ball"]
SIZES = dict(d_model=16, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
             decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
             max_position_embeddings=128)


def _spm(tmp: Path):
    from attnmt.data.tokenizers import SentencePieceTokenizer

    return SentencePieceTokenizer.train(TEXTS * 40, 60)


def _bias_pad_down(model, pad: int) -> None:
    """Random weights with a small random output bias; the start/pad token is never an
    output (attnmt's search forbids it; Marian's generation config bans it too)."""
    torch.manual_seed(0)
    with torch.no_grad():
        model.final_logits_bias.normal_(0, 0.1)


def _marian_vocab(pieces: list[str]) -> dict[str, int]:
    vocab = {"</s>": 0, "<unk>": 1, **{p: i + 2 for i, p in enumerate(pieces)}}
    vocab["<pad>"] = len(vocab)
    return vocab


def make_marian(tmp: Path, separate: bool = False, **overrides) -> tuple[Path, dict]:
    """A tiny random MarianMT folder with Marian's vocabulary layout: ``</s>`` 0,
    ``<unk>`` 1, pieces, ``<pad>`` last (also the decoder start). ``separate``: source and
    target vocabularies of their own (the target's pieces in another order and one fewer)
    and separate embeddings, as newer OPUS-MT checkpoints have."""
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    folder = tmp / "marian"
    tok = _spm(tmp)
    for name in ("source.spm", "target.spm"):
        (tmp / name).write_bytes(tok.proto)
    pieces = [tok.piece(i) for i in range(4, len(tok))]
    vocab = _marian_vocab(pieces)
    target = _marian_vocab(pieces[::-1][1:]) if separate else vocab
    (tmp / "vocab.json").write_text(json.dumps(vocab))
    (tmp / "target_vocab.json").write_text(json.dumps(target))
    pad = target["<pad>"]
    cfg = dict(SIZES, vocab_size=len(vocab), decoder_vocab_size=len(target),
               share_encoder_decoder_embeddings=not separate,
               activation_function="swish", scale_embedding=True,
               pad_token_id=pad, decoder_start_token_id=pad, eos_token_id=0,
               forced_eos_token_id=0, init_std=0.2, **overrides)
    torch.manual_seed(0)
    model = MarianMTModel(MarianConfig(**cfg)).eval()
    _bias_pad_down(model, pad)
    model.save_pretrained(folder)
    MarianTokenizer(str(tmp / "source.spm"), str(tmp / "target.spm"), str(tmp / "vocab.json"),
                    target_vocab_file=str(tmp / "target_vocab.json") if separate else None,
                    separate_vocabs=separate, source_lang="de", target_lang="en"
                    ).save_pretrained(folder)
    return folder, vocab


def make_pegasus(tmp: Path) -> Path:
    """A tiny random Pegasus folder (pre-norm, GELU, unscaled embeddings, decoder start =
    ``<pad>``) with a fast tokenizer over our SentencePiece model."""
    from transformers import PegasusConfig, PegasusForConditionalGeneration

    from attnmt.export.huggingface import _tokenizer

    folder = tmp / "pegasus"
    tok = _spm(tmp)
    (tmp / "spiece.model").write_bytes(tok.proto)
    torch.manual_seed(0)
    model = PegasusForConditionalGeneration(PegasusConfig(
        **SIZES, vocab_size=len(tok), pad_token_id=0, eos_token_id=3, forced_eos_token_id=3,
        decoder_start_token_id=0)).eval()
    _bias_pad_down(model, 0)
    model.save_pretrained(folder)
    _tokenizer(tmp / "spiece.model").save_pretrained(folder)
    (folder / "spiece.model").write_bytes(tok.proto)
    return folder


def _logits_agree(hf_folder: Path, run: Path, tokenizer_cls) -> None:
    from transformers import AutoModelForSeq2SeqLM

    from attnmt.rundir import RunDir

    cfg, vocabs, ours = RunDir(run).load()
    hf = AutoModelForSeq2SeqLM.from_pretrained(hf_folder).eval()
    tok = tokenizer_cls.from_pretrained(hf_folder)
    start = hf.config.decoder_start_token_id
    # the checkpoint's ids -> ours
    to_ours = {tok.convert_tokens_to_ids(vocabs.tgt.piece(i)): i
               for i in range(4, len(vocabs.tgt))}
    to_ours.update({start: 2, hf.config.eos_token_id: 3, tok.unk_token_id: 1})
    batch = tok(TEXTS[:3], return_tensors="pt", padding=True)
    for text, ids, mask in zip(TEXTS, batch["input_ids"], batch["attention_mask"]):
        assert [to_ours[i] for i in ids[mask.bool()].tolist()] == vocabs.src.encode(text) + [3]
    dec = torch.tensor([[start, 5, 6, 7], [start, 7, 6, 5], [start, 9, 9, 9]])
    ours_src = torch.tensor([[to_ours.get(i, 0) for i in row]
                             for row in batch["input_ids"].tolist()])
    ours_src[~batch["attention_mask"].bool()] = 0
    with torch.no_grad():
        theirs = hf(**batch, decoder_input_ids=dec).logits
        logits, _ = ours(ours_src, batch["attention_mask"].sum(1),
                         dec.apply_(lambda i: to_ours[i]))
    hf_ids = sorted(to_ours)
    diff = (logits[..., [to_ours[i] for i in hf_ids]] - theirs[..., hf_ids]).abs().max()
    assert diff < 1e-4 * max(1.0, float(theirs.abs().max())), diff


def _greedy_agrees(hf_folder: Path, run: Path, tokenizer_cls) -> None:
    from transformers import AutoModelForSeq2SeqLM

    from attnmt.inference.translator import Translator

    hf = AutoModelForSeq2SeqLM.from_pretrained(hf_folder).eval()
    tok = tokenizer_cls.from_pretrained(hf_folder)
    translator = Translator.from_run(run)
    ours, vocab = translator.translate(TEXTS, beam=1), translator.vocabs.tgt
    for text, hyp in zip(TEXTS, ours):
        batch = tok([text], return_tensors="pt")
        limit = int(batch["input_ids"].size(1) * 1.5 + 10)     # attnmt's, counting </s>
        out = hf.generate(**batch, num_beams=1, do_sample=False, max_new_tokens=limit,
                          forced_eos_token_id=None,
                          bad_words_ids=[[hf.config.decoder_start_token_id]])[0, 1:].tolist()
        eos = hf.config.eos_token_id
        out = out[: out.index(eos)] if eos in out else out[: limit - 1]
        assert _target_pieces(hf_folder, tok, out) == [vocab.piece(i) for i in hyp[0].tokens]


def _target_pieces(folder: Path, tok, ids: list[int]) -> list[str]:
    """The checkpoint's target pieces of ``ids`` (a separate target vocabulary when it has
    one: the tokenizer's own lookup reads source ids)."""
    if (folder / "target_vocab.json").is_file() and \
            json.loads((folder / "tokenizer_config.json").read_text()).get("separate_vocabs"):
        table = {i: p for p, i in json.loads((folder / "target_vocab.json").read_text()).items()}
        return [table[i] for i in ids]
    return tok.convert_ids_to_tokens(ids)


@pytest.fixture(scope="module")
def marian(tmp_path_factory):
    from attnmt.export.hf_import import import_huggingface

    tmp = tmp_path_factory.mktemp("marian")
    folder, _ = make_marian(tmp)
    return folder, import_huggingface(folder, tmp / "run")


def test_marian_logits_and_greedy_agree(marian):
    from transformers import MarianTokenizer

    folder, run = marian
    _logits_agree(folder, run, MarianTokenizer)
    _greedy_agrees(folder, run, MarianTokenizer)


def test_marian_with_separate_vocabularies(tmp_path):
    """Source and target ids of their own, separate embeddings: the same greedy output."""
    from transformers import MarianTokenizer

    from attnmt.export.hf_import import import_huggingface
    from attnmt.rundir import RunDir

    folder, _ = make_marian(tmp_path, separate=True)
    run = import_huggingface(folder, tmp_path / "run")
    _, vocabs, model = RunDir(run).load()
    assert not vocabs.joint and model.src_embed.embed is not model.tgt_embed.embed
    _greedy_agrees(folder, run, MarianTokenizer)


def test_imported_run_records_what_it_is(marian):
    import yaml

    from attnmt.config import load_config

    folder, run = marian
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["model"]["norm"] == "post" and cfg["model"]["activation"] == "swish"
    assert cfg["data"]["src"] == "de" and cfg["data"]["tgt"] == "en"
    info = json.loads((run / "imported.json").read_text())
    assert info["model_type"] == "marian"
    finetune = load_config(run / "finetune.yaml")
    assert finetune.train.init_from == str(run.resolve())
    assert finetune.model.output_bias and finetune.model.norm == "post"


def test_pegasus_logits_and_greedy_agree(tmp_path):
    from transformers import AutoTokenizer

    from attnmt.export.hf_import import import_huggingface

    folder = make_pegasus(tmp_path)
    run = import_huggingface(folder, tmp_path / "run")
    _logits_agree(folder, run, AutoTokenizer)
    _greedy_agrees(folder, run, AutoTokenizer)


def test_round_trip_of_our_own_export(tmp_path):
    """An attnmt run exported to Pegasus and imported back computes what it did."""
    from transformers import PegasusConfig  # noqa: F401  (transformers present)

    from attnmt.config import load_config
    from attnmt.data.tokenizers import Vocabs
    from attnmt.export.hf_import import import_huggingface
    from attnmt.export.huggingface import export_huggingface
    from attnmt.models import build_model
    from attnmt.rundir import RunDir, write_json

    tok = _spm(tmp_path)
    cfg = load_config(raw={"model": dict(preset="transformer-tiny", d_model=32, heads=2,
                                         ffn=64, activation="gelu"),
                           "data": {"tokenizer": "sentencepiece"}})
    torch.manual_seed(1)
    model = build_model(cfg.model, len(tok), len(tok), True).eval()
    run = RunDir(tmp_path / "orig")
    run.save_config(cfg)
    Vocabs(tok, tok).save(run.vocab_dir)
    from safetensors.torch import save_model

    run.ckpt.mkdir(parents=True)
    save_model(model, str(run.ckpt / "best.safetensors"))
    write_json(run.ckpt / "best.json", {"step": 0})
    back = import_huggingface(export_huggingface(run.path, tmp_path / "hf"), tmp_path / "back")
    _, _, again = RunDir(back).load()
    src = torch.tensor([[5, 6, 7, 3], [8, 9, 3, 0]])
    tgt = torch.tensor([[2, 5, 6], [2, 9, 9]])
    with torch.no_grad():
        a, _ = model(src, torch.tensor([4, 3]), tgt)
        b, _ = again(src, torch.tensor([4, 3]), tgt)
    assert torch.allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("change, message", [
    ({"model_type": "bart"}, "model_type 'bart' is not supported"),
    ({"decoder_attention_heads": 4}, "differ in attention heads (2 vs 4)"),
    ({"activation_function": "gelu_new"}, "activation 'gelu_new'"),
])
def test_unsupported_checkpoints_are_one_line(tmp_path, capsys, change, message):
    from test_bad_input import run_cli

    folder, _ = make_marian(tmp_path)
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(change)
    (folder / "config.json").write_text(json.dumps(cfg))
    capsys.readouterr()                          # transformers' own progress output
    code, err = run_cli(capsys, "import", "huggingface", folder, tmp_path / "out")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_a_folder_that_is_no_checkpoint_is_one_line(tmp_path, capsys):
    from test_bad_input import run_cli

    code, err = run_cli(capsys, "import", "huggingface", tmp_path, tmp_path / "out")
    assert code == 2 and "not a Hugging Face checkpoint folder (no config.json)" in err


def test_imported_model_is_explained_finetuned_with_lora_and_exported(marian, tmp_path):
    """The whole path of a practitioner's model: import, look inside, adapt cheaply to
    their corpus, ship it to CTranslate2 — and each step computes what the last one left."""
    pytest.importorskip("peft")
    pytest.importorskip("ctranslate2")
    from attnmt.cli import main
    from attnmt.config import load_config
    from attnmt.export.ctranslate2 import export_ctranslate2
    from attnmt.inference.ct2engine import CT2Translator
    from attnmt.inference.translator import Translator
    from attnmt.training.loop import train

    _, run = marian
    main(["explain", str(run), "ein hund läuft", "--json", str(tmp_path / "x.json")])
    explained = json.loads((tmp_path / "x.json").read_text())
    assert explained["src_tokens"][-1] == "</s>" and explained["steps"]
    data = tmp_path / "data"
    data.mkdir()
    pairs = [("ein hund läuft im park", "a dog runs in the park"),
             ("zwei kinder spielen mit einem ball", "two children play with a ball")]
    for split, n in (("train", 100), ("val", 2), ("test", 2)):
        (data / f"{split}.de").write_text("".join(p[0] + "\n" for p in pairs * (n // 2)))
        (data / f"{split}.en").write_text("".join(p[1] + "\n" for p in pairs * (n // 2)))
    cfg = load_config(run / "finetune.yaml", [
        f"data.dir={data}", "train.lora={rank: 4, alpha: 8}", "train.lr=0.01",
        "train.max_steps=600", "train.valid_every=100", "train.warmup=0",
        "train.schedule=constant", "train.max_tokens=400", "train.threads=1",
        "train.label_smoothing=0", "model.dropout=0"])      # 100 % exact from ~400 updates
    train(cfg, tmp_path / "ft", quiet=True)
    tuned = Translator.from_run(tmp_path / "ft").translate([p[0] for p in pairs], beam=1)
    assert [h[0].text for h in tuned] == [p[1] for p in pairs]     # it learned the corpus
    out = export_ctranslate2(tmp_path / "ft", tmp_path / "ct2")
    ct2 = CT2Translator(out).translate([p[0] for p in pairs], beam=1)
    assert [h[0].tokens for h in ct2] == [h[0].tokens for h in tuned]
