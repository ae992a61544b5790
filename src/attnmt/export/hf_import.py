"""Import a Hugging Face MarianMT or Pegasus checkpoint folder as an attnmt run directory.

The export's mapping (:mod:`.huggingface`) run in reverse, plus what these checkpoints
need that attnmt's own models did not: Marian's post-norm layers and swish activation,
Pegasus's GELU, embeddings with or without the √d scale, the output layer's bias
(``final_logits_bias``), separate source and target vocabularies, and the vocabulary's
own ids. Both keep their sinusoidal positions as ``[sin | cos]`` halves; the residual
stream is permuted to our interleaved order, which leaves the function unchanged.

Special symbols are re-seated at attnmt's fixed ids: the checkpoint's decoder start
token (Marian's and Pegasus's ``<pad>``) becomes our ``<s>``, its ``</s>`` and ``<unk>``
ours, and our ``<pad>`` is a zero row that no search ever emits. Every other token keeps
its piece, in the checkpoint's order (but for one named like our specials that plays no
part of theirs, e.g. an unused ``<s>``: a control symbol text never produces, left out).
Text is segmented by the checkpoint's own SentencePiece models (Marian: ``source.spm``
and ``target.spm``).

Only ``config.json``, the weights and the tokenizer files are read: importing does not
need ``transformers``. Marian's optional Moses punctuation normalisation (``sacremoses``)
is not applied.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import Config, load_config
from ..data.tokenizers import MappedSentencePieceTokenizer, Vocabs
from ..errors import UserError
from ..models.transformer import Transformer, sinusoidal_positions
from ..rundir import RunDir, atomic_write, ensure_empty_folder, write_json
from ..symbols import BOS, EOS, PAD, SPECIALS, UNK
from .huggingface import interleaved_to_halves

KINDS = {"marian": "post", "pegasus": "pre"}         # model_type -> layer norm placement
ACTIVATIONS = {"relu": "relu", "gelu": "gelu", "swish": "swish", "silu": "swish"}


class CheckpointError(UserError):
    """A folder that is not a checkpoint attnmt can import (one line, exit 2)."""


def _fail(folder: Path, what: str) -> None:
    raise CheckpointError(f"cannot import {folder}: {what}")


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} is not a JSON object")
    return data


def read_hf_config(folder: Path) -> dict:
    """``config.json`` of a supported checkpoint, or a one-line error naming what differs."""
    if not (folder / "config.json").is_file():
        _fail(folder, "it is not a Hugging Face checkpoint folder (no config.json)")
    hf = _read_json(folder / "config.json")
    kind = hf.get("model_type")
    if kind not in KINDS:
        _fail(folder, f"model_type {kind!r} is not supported; attnmt imports MarianMT "
                      "(marian) and Pegasus (pegasus) checkpoints")
    pairs = [("encoder_attention_heads", "decoder_attention_heads", "attention heads"),
             ("encoder_ffn_dim", "decoder_ffn_dim", "feed-forward sizes")]
    for enc, dec, what in pairs:
        if hf.get(enc) != hf.get(dec):
            _fail(folder, f"the encoder and decoder differ in {what} ({hf.get(enc)} vs "
                          f"{hf.get(dec)}); attnmt's Transformer has one setting for both")
    act = hf.get("activation_function", "gelu")
    if act not in ACTIVATIONS:
        _fail(folder, f"activation {act!r} is not one attnmt has (relu, gelu, swish)")
    if hf["d_model"] % hf["encoder_attention_heads"]:
        _fail(folder, "d_model is not a multiple of the attention heads")
    if kind == "pegasus" and not hf.get("is_encoder_decoder", True):
        _fail(folder, "a Pegasus decoder alone (PegasusForCausalLM) is not imported; "
                      "attnmt imports encoder-decoder checkpoints")
    return hf


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors: ``model.safetensors`` (one file or sharded) or
    ``pytorch_model.bin`` (loaded with ``weights_only``: no code runs)."""
    from safetensors.torch import load_file

    index = folder / "model.safetensors.index.json"
    if (folder / "model.safetensors").is_file():
        return load_file(str(folder / "model.safetensors"))
    if index.is_file():
        shards = sorted(set(_read_json(index).get("weight_map", {}).values()))
        weights: dict[str, torch.Tensor] = {}
        for shard in shards:
            weights.update(load_file(str(folder / shard)))
        return weights
    if (folder / "pytorch_model.bin").is_file():
        return torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
    _fail(folder, "it holds no weights (model.safetensors or pytorch_model.bin)")
    return {}


@dataclass
class Side:
    """One side's vocabulary: our symbols in order and, for each of our ids, the
    checkpoint's id (None: our ``<pad>``, a zero row)."""

    tokenizer: MappedSentencePieceTokenizer
    rows: list[int | None]


def _pieces_by_id(folder: Path, vocab_file: str | None) -> dict[int, str]:
    """The checkpoint's vocabulary, id -> piece: Marian's ``vocab.json`` (piece -> id) or a
    fast tokenizer's ``tokenizer.json`` (its model's table and its added tokens)."""
    if vocab_file:
        return {int(i): p for p, i in _read_json(folder / vocab_file).items()}
    data = _read_json(folder / "tokenizer.json")
    table = data.get("model", {}).get("vocab")
    if isinstance(table, list):                         # Unigram: [[piece, score], ...]
        pieces = {i: entry[0] for i, entry in enumerate(table)}
    elif isinstance(table, dict):                       # BPE / WordPiece: {piece: id}
        pieces = {int(i): p for p, i in table.items()}
    else:
        _fail(folder, "tokenizer.json has no vocabulary table")
    for added in data.get("added_tokens", []):
        pieces[int(added["id"])] = added["content"]
    return pieces


def _side(folder: Path, hf: dict, spm_file: str, vocab_file: str | None,
          vocab_size: int, own_ids: bool = False) -> Side:
    """One side's vocabulary. The start and end ids are config.json's (they are the
    decoder's); ``own_ids`` (a separate source vocabulary) finds them by name instead."""
    pieces = _pieces_by_id(folder, vocab_file)
    by_name = {p: i for i, p in sorted(pieces.items(), reverse=True)}
    if own_ids:
        start, end = by_name.get(SPECIALS[PAD]), by_name.get(SPECIALS[EOS])
    else:
        start = hf.get("decoder_start_token_id", hf.get("pad_token_id"))
        end = hf.get("eos_token_id")
        if start is None or end is None:
            _fail(folder, "config.json names no eos_token_id or decoder_start_token_id")
    roles = {PAD: None, UNK: _token_id(folder, pieces, "<unk>"), BOS: start, EOS: end}
    roles = {k: (v if v is not None and 0 <= v < vocab_size else None)
             for k, v in roles.items()}
    if roles[EOS] is None:
        _fail(folder, f"the end token is not an id of the {vocab_size}-token vocabulary")
    pad = hf.get("pad_token_id") if not own_ids else None
    seated = {r for r in roles.values() if r is not None} | {pad} | \
        {i for i, p in pieces.items() if p == SPECIALS[PAD]}
    rest = [i for i in range(vocab_size) if i not in seated]
    missing = [i for i in rest if i not in pieces]
    if missing:
        _fail(folder, f"the vocabulary names no piece for id {missing[0]} of the model's "
                      f"{vocab_size}")
    # a token named like one of ours that plays another part here (an unused "<s>"): a
    # control symbol the segmenter never produces; it is left out
    rest = [i for i in rest if pieces[i] not in SPECIALS]
    symbols = SPECIALS + [pieces[i] for i in rest]
    return Side(MappedSentencePieceTokenizer(_spm(folder, spm_file), symbols),
                [roles[PAD], roles[UNK], roles[BOS], roles[EOS], *rest])


def _token_id(folder: Path, pieces: dict[int, str], name: str) -> int:
    ids = [i for i, p in pieces.items() if p == name]
    if not ids:
        _fail(folder, f"the vocabulary has no {name} token")
    return ids[0]


def _spm(folder: Path, name: str) -> bytes:
    if not (folder / name).is_file():
        _fail(folder, f"the SentencePiece model {name} is missing")
    return (folder / name).read_bytes()


def read_vocabularies(folder: Path, hf: dict) -> tuple[Side, Side]:
    """Source and target sides: Marian's two SentencePiece models over ``vocab.json``
    (or ``target_vocab.json`` with separate vocabularies); Pegasus's one model over its
    ``tokenizer.json``."""
    if hf["model_type"] == "marian":
        tok_cfg = _read_json(folder / "tokenizer_config.json") \
            if (folder / "tokenizer_config.json").is_file() else {}
        if not (folder / "vocab.json").is_file():
            _fail(folder, "a Marian checkpoint needs its vocab.json")
        separate = bool(tok_cfg.get("separate_vocabs"))
        tgt_size = hf.get("decoder_vocab_size") or hf["vocab_size"]
        src = _side(folder, hf, "source.spm", "vocab.json", hf["vocab_size"], own_ids=separate)
        tgt = _side(folder, hf, "target.spm", "target_vocab.json" if separate else "vocab.json",
                    tgt_size)
        return src, tgt
    spm = next((n for n in ("spiece.model", "spm.model", "sentencepiece.bpe.model")
                if (folder / n).is_file()), None)
    if spm is None or not (folder / "tokenizer.json").is_file():
        _fail(folder, "a Pegasus checkpoint needs its SentencePiece model (spiece.model) and "
                      "tokenizer.json")
    side = _side(folder, hf, spm, None, hf["vocab_size"])
    return side, side


def model_section(hf: dict, tied: bool) -> dict:
    """The ``model:`` section of the imported run."""
    return dict(arch="transformer", enc_layers=hf["encoder_layers"],
                dec_layers=hf["decoder_layers"], d_model=hf["d_model"],
                heads=hf["encoder_attention_heads"], ffn=hf["encoder_ffn_dim"],
                norm=KINDS[hf["model_type"]], positions="sinusoidal",
                activation=ACTIVATIONS[hf.get("activation_function", "gelu")],
                scale_embedding=bool(hf.get("scale_embedding", False)), output_bias=True,
                max_positions=hf["max_position_embeddings"],
                dropout=hf.get("dropout", 0.1), attention_dropout=hf.get("attention_dropout", 0.0),
                activation_dropout=hf.get("activation_dropout", 0.0),
                tie_embeddings=tied)


class _Reader:
    """The checkpoint's tensors copied into our modules, the residual stream permuted from
    Pegasus's and Marian's ``[sin | cos]`` order to ours (``inv``: the inverse of
    :func:`.huggingface.interleaved_to_halves`)."""

    def __init__(self, weights: dict[str, torch.Tensor], inv: torch.Tensor, folder: Path):
        self.w, self.inv, self.folder, self.used = weights, inv, folder, set()

    def get(self, name: str) -> torch.Tensor:
        if name not in self.w:
            _fail(self.folder, f"the weights lack {name}")
        self.used.add(name)
        return self.w[name].float()

    @staticmethod
    def _put(param: torch.nn.Parameter, value: torch.Tensor, name: str) -> None:
        if param.shape != value.shape:
            raise CheckpointError(f"{name} has shape {tuple(value.shape)}, the model expects "
                               f"{tuple(param.shape)}")
        param.copy_(value)

    def reads(self, name: str, linear) -> None:        # input is the residual stream
        self._put(linear.weight, self.get(f"{name}.weight")[:, self.inv], name)
        self._put(linear.bias, self.get(f"{name}.bias"), name)

    def writes(self, name: str, linear) -> None:       # output goes to the residual stream
        self._put(linear.weight, self.get(f"{name}.weight")[self.inv], name)
        self._put(linear.bias, self.get(f"{name}.bias")[self.inv], name)

    def norm(self, name: str, layer_norm) -> None:
        self._put(layer_norm.weight, self.get(f"{name}.weight")[self.inv], name)
        self._put(layer_norm.bias, self.get(f"{name}.bias")[self.inv], name)

    def block(self, name: str, layer, attns: list[tuple[str, object]]) -> None:
        for i, (attn_name, attn) in enumerate(attns):
            for part in ("q_proj", "k_proj", "v_proj"):
                self.reads(f"{name}.{attn_name}.{part}", getattr(attn, part))
            self.writes(f"{name}.{attn_name}.out_proj", attn.out_proj)
            self.norm(f"{name}.{attn_name}_layer_norm", layer.norms[i])
        self.norm(f"{name}.final_layer_norm", layer.norms[-1])
        self.reads(f"{name}.fc1", layer.ffn[0])
        self.writes(f"{name}.fc2", layer.ffn[-1])

    def table(self, name: str, rows: list[int | None]) -> torch.Tensor:
        """An embedding table (or the output layer) in our ids: row i is the checkpoint's
        row ``rows[i]``, zeros for None."""
        theirs = self.get(name)[:, self.inv]
        out = torch.zeros(len(rows), theirs.size(1))
        for i, r in enumerate(rows):
            if r is not None:
                out[i] = theirs[r]
        return out

    def positions(self, side: str, d_model: int) -> None:
        """A stored position table (Pegasus, old Marian files) must be the sinusoidal one."""
        name = f"model.{side}.embed_positions.weight"
        if name in self.w:
            stored = self.get(name)[:, self.inv]
            ours = sinusoidal_positions(stored.size(0), d_model)
            if not torch.allclose(stored, ours, atol=1e-4):
                _fail(self.folder, f"{name} is not the sinusoidal table attnmt computes")


TIED_COPIES = ("model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight",
               "lm_head.weight")     # copies of model.shared that some files store again


def _embeddings(r: _Reader, model: Transformer, src: Side, tgt: Side, d_model: int) -> None:
    """Token tables, the output layer and its bias, in our ids; stored positions checked."""
    shared = "model.shared.weight" in r.w
    enc = "model.shared.weight" if shared else "model.encoder.embed_tokens.weight"
    dec = "model.shared.weight" if shared else "model.decoder.embed_tokens.weight"
    model.tgt_embed.embed.weight.copy_(r.table(dec, tgt.rows))
    if model.src_embed.embed is not model.tgt_embed.embed:
        model.src_embed.embed.weight.copy_(r.table(enc, src.rows))
    if model.out.weight is not model.tgt_embed.embed.weight:
        model.out.weight.copy_(r.table("lm_head.weight", tgt.rows))
    bias = r.get("final_logits_bias")[0] if "final_logits_bias" in r.w else \
        torch.zeros(max(i for i in tgt.rows if i is not None) + 1)
    model.out.bias.copy_(torch.stack([bias[i] if i is not None else bias.new_zeros(())
                                      for i in tgt.rows]))
    for side in ("encoder", "decoder"):
        r.positions(side, d_model)


@torch.no_grad()
def convert(weights: dict[str, torch.Tensor], hf: dict, cfg: Config, src: Side, tgt: Side,
            folder: Path) -> Transformer:
    """Our Transformer holding the checkpoint's weights."""
    model = Transformer(cfg.model, len(src.rows), len(tgt.rows),
                        share_src=src.tokenizer.same_ids(tgt.tokenizer)).eval()
    inv = torch.argsort(interleaved_to_halves(hf["d_model"]))
    r = _Reader(weights, inv, folder)
    _embeddings(r, model, src, tgt, hf["d_model"])
    for i, layer in enumerate(model.encoder):
        r.block(f"model.encoder.layers.{i}", layer, [("self_attn", layer.self_attn)])
    for i, layer in enumerate(model.decoder):
        r.block(f"model.decoder.layers.{i}", layer, [("self_attn", layer.self_attn),
                                                     ("encoder_attn", layer.cross_attn)])
    if cfg.model.norm == "pre":
        r.norm("model.encoder.layer_norm", model.enc_norm)
        r.norm("model.decoder.layer_norm", model.dec_norm)
    left = sorted(k for k in weights if k not in r.used and k not in TIED_COPIES)
    if left:
        _fail(folder, f"{len(left)} tensors have no place in attnmt's Transformer "
                      f"(first: {left[0]})")
    return model


def _lm_head_tied(weights: dict[str, torch.Tensor]) -> bool:
    """Whether the output layer is the (decoder) embedding: a tied checkpoint stores no
    ``lm_head`` or stores the same values."""
    head = weights.get("lm_head.weight")
    if head is None:
        return True
    emb = weights.get("model.shared.weight", weights.get("model.decoder.embed_tokens.weight"))
    return emb is not None and head.shape == emb.shape and torch.equal(head, emb)


def imported_config(hf: dict, folder: Path, src: Side, tgt: Side, tied: bool) -> Config:
    """The run's config: the architecture, the vocabulary, and decoding as the
    checkpoint's ``generation_config.json`` asks (beam size; length penalty by length,
    as transformers divides by length^alpha)."""
    shared = src.tokenizer.same_ids(tgt.tokenizer)
    tok_cfg = _read_json(folder / "tokenizer_config.json") \
        if (folder / "tokenizer_config.json").is_file() else {}
    gen = _read_json(folder / "generation_config.json") \
        if (folder / "generation_config.json").is_file() else {}
    data = dict(task="translate", tokenizer="sentencepiece", joint_vocab=shared,
                vocab_size=len(tgt.rows),
                src=str(tok_cfg.get("source_lang") or "src"),
                tgt=str(tok_cfg.get("target_lang") or "tgt"))
    decode = dict(beam=int(gen.get("num_beams") or hf.get("num_beams") or 5),
                  length_penalty="average",
                  alpha=float(gen.get("length_penalty", hf.get("length_penalty", 1.0))))
    return load_config(raw={"data": data, "model": model_section(hf, tied),
                            "decode": decode})


FINETUNE_TRAIN = dict(lr=5e-5, warmup=100, schedule="inverse_sqrt", max_steps=2000,
                      label_smoothing=0.1, valid_every=200)


def import_huggingface(folder: str | Path, out_dir: str | Path, force: bool = False) -> Path:
    """Write ``out_dir``, an attnmt run directory holding the checkpoint of ``folder``:
    config.yaml, vocab/, checkpoints/best.safetensors, imported.json, and finetune.yaml
    (a fine-tuning config that starts from it; set its data folder)."""
    from safetensors.torch import save_model

    folder, out = Path(folder), Path(out_dir)
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is not a folder")
    hf = read_hf_config(folder)
    src, tgt = read_vocabularies(folder, hf)
    weights = read_weights(folder)
    cfg = imported_config(hf, folder, src, tgt, _lm_head_tied(weights))
    model = convert(weights, hf, cfg, src, tgt, folder)
    ensure_empty_folder(out, force)
    run = RunDir(out)
    run.save_config(cfg)
    Vocabs(src.tokenizer, src.tokenizer if src is tgt else tgt.tokenizer).save(run.vocab_dir)
    atomic_write(run.ckpt / "best.safetensors", lambda tmp: save_model(model, str(tmp)))
    write_json(run.ckpt / "best.json", {"step": 0, "imported_from": str(folder.resolve())})
    write_json(out / "imported.json", {
        "from": str(folder.resolve()), "model_type": hf["model_type"],
        "architectures": hf.get("architectures", []), "parameters": model.num_parameters()})
    _write_finetune(cfg, out)
    return out


def _write_finetune(cfg: Config, out: Path) -> None:
    import yaml

    raw = cfg.to_dict()
    raw["train"].update(FINETUNE_TRAIN, init_from=str(out.resolve()))
    text = ("# Fine-tune the imported model on your corpus (a folder of train/val/test files):\n"
            f"#   attnmt train {out / 'finetune.yaml'} --set data.dir=FOLDER --out RUN\n"
            "# train.lora / train.freeze make it cheaper (docs: how-to/finetune).\n"
            + yaml.safe_dump(raw, sort_keys=False))
    atomic_write(out / "finetune.yaml", lambda tmp: tmp.write_text(text, encoding="utf-8"))

