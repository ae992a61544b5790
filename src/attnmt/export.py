"""Export a Transformer run to CTranslate2, and translate with the exported model.

The weights are written through CTranslate2's own Python spec API
(``TransformerSpec.from_config``): token embeddings (scaled by √d), our
position table, fused Q/K/V projections, layer norms and the tied output
layer. The run's vocabulary folder is copied beside the model, so the
exported folder is all that ``attnmt translate --engine ctranslate2`` needs.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import torch

from .checkpoint import RunDir
from .data.tokenizers import SPECIALS, Vocabs
from .errors import UserError
from .models.transformer import Transformer


def _require_ctranslate2():
    try:
        import ctranslate2
    except ImportError:
        raise UserError("the ctranslate2 package is not installed; pip install ctranslate2") \
            from None
    return ctranslate2


def _linear(spec, layer: torch.nn.Linear) -> None:
    spec.weight = layer.weight.detach().numpy()
    if layer.bias is not None:
        spec.bias = layer.bias.detach().numpy()


def _norm(spec, norm: torch.nn.LayerNorm) -> None:
    spec.gamma = norm.weight.detach().numpy()
    spec.beta = norm.bias.detach().numpy()


def _attention(spec, attn, self_attention: bool) -> None:
    from ctranslate2.converters import utils
    from ctranslate2.specs import common_spec

    if self_attention:
        parts = [common_spec.LinearSpec() for _ in range(3)]
        for part, layer in zip(parts, (attn.q_proj, attn.k_proj, attn.v_proj)):
            _linear(part, layer)
        utils.fuse_linear(spec.linear[0], parts)
    else:
        _linear(spec.linear[0], attn.q_proj)
        parts = [common_spec.LinearSpec() for _ in range(2)]
        for part, layer in zip(parts, (attn.k_proj, attn.v_proj)):
            _linear(part, layer)
        utils.fuse_linear(spec.linear[1], parts)
    _linear(spec.linear[-1], attn.out_proj)


def _ffn(spec, layer) -> None:
    _norm(spec.layer_norm, layer.norms[-1])
    _linear(spec.linear_0, layer.ffn[0])
    _linear(spec.linear_1, layer.ffn[-1])


def _inputs(spec, embeddings) -> None:
    emb = spec.embeddings[0] if isinstance(spec.embeddings, list) else spec.embeddings
    emb.weight = embeddings.embed.weight.detach().numpy()
    table = embeddings.learned.weight if embeddings.learned is not None else embeddings.table
    spec.position_encodings.encodings = table.detach().numpy()
    spec.scale_embeddings = math.sqrt(embeddings.embed.embedding_dim)


def _vocabulary(tokenizer) -> list[str]:
    pieces = [tokenizer.piece(i) for i in range(len(tokenizer))]
    return ["<blank>" if p == SPECIALS[0] else p for p in pieces]


def export_ctranslate2(run_dir: str | Path, out_dir: str | Path,
                       quantization: str | None = None, force: bool = False) -> Path:
    """Convert a ``transformer-*`` run into a CTranslate2 model folder."""
    _require_ctranslate2()
    from ctranslate2.specs import transformer_spec

    cfg, vocabs, model = RunDir(run_dir).load()
    if not isinstance(model, Transformer):
        raise UserError(f"{run_dir} is a {cfg.model.arch} model; only Transformer models "
                        "can be exported to CTranslate2")
    pre = cfg.model.norm == "pre"
    spec = transformer_spec.TransformerSpec.from_config(
        (cfg.model.enc_layers, cfg.model.dec_layers), cfg.model.heads, pre_norm=pre)
    _inputs(spec.encoder, model.src_embed)
    for layer_spec, layer in zip(spec.encoder.layer, model.encoder):
        _attention(layer_spec.self_attention, layer.self_attn, True)
        _norm(layer_spec.self_attention.layer_norm, layer.norms[0])
        _ffn(layer_spec.ffn, layer)
    _inputs(spec.decoder, model.tgt_embed)
    for layer_spec, layer in zip(spec.decoder.layer, model.decoder):
        _attention(layer_spec.self_attention, layer.self_attn, True)
        _norm(layer_spec.self_attention.layer_norm, layer.norms[0])
        _attention(layer_spec.attention, layer.cross_attn, False)
        _norm(layer_spec.attention.layer_norm, layer.norms[1])
        _ffn(layer_spec.ffn, layer)
    if pre:
        _norm(spec.encoder.layer_norm, model.enc_norm)
        _norm(spec.decoder.layer_norm, model.dec_norm)
    _linear(spec.decoder.projection, model.out)
    spec.register_source_vocabulary(_vocabulary(vocabs.src))
    spec.register_target_vocabulary(_vocabulary(vocabs.tgt))
    spec.config.decoder_start_token = SPECIALS[2]       # <s>
    spec.config.add_source_eos = True
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not force:
        raise UserError(f"{out} is not empty; choose another folder or pass --force")
    spec.validate()
    spec.optimize(quantization=quantization)
    out.mkdir(parents=True, exist_ok=True)
    spec.save(str(out))
    shutil.copytree(RunDir(run_dir).vocab_dir, out / "vocab", dirs_exist_ok=True)
    (out / "attnmt.json").write_text(json.dumps({
        "run_dir": str(Path(run_dir).resolve()), "max_positions": cfg.model.max_positions,
        "quantization": quantization or "float32"}))
    return out


class CT2Translator:
    """Translate with an exported CTranslate2 model (same tokenisation as attnmt)."""

    def __init__(self, model_dir: str | Path, device: str = "cpu", threads: int = 0):

        ct2 = _require_ctranslate2()
        folder = Path(model_dir)
        if not (folder / "model.bin").is_file():
            raise UserError(f"{folder} is not a CTranslate2 model folder (no model.bin); "
                            "create one with `attnmt export ctranslate2 RUN_DIR OUT_DIR`")
        self.vocabs = Vocabs.load(folder / "vocab")
        self.max_positions = json.loads((folder / "attnmt.json").read_text())["max_positions"]
        self.translator = ct2.Translator(str(folder), device=device, intra_threads=threads)

    def translate(self, texts: list[str], beam: int = 5, nbest: int = 1,
                  max_len_ratio: float = 1.5, batch_size: int = 64) -> list[list[str]]:
        todo = [i for i, t in enumerate(texts) if t.strip()]
        pieces = [[self.vocabs.src.piece(i) for i in self.vocabs.src.encode(texts[j])]
                  [: self.max_positions - 2] for j in todo]
        # CTranslate2 takes one length limit per call, attnmt's search one per sentence
        # (ratio x (pieces + </s>) + 10, counting </s>): batch sentences that share a
        # limit, so a model that repeats itself stops where attnmt's own search would.
        def limit(k: int) -> int:
            return min(self.max_positions - 1, int((len(pieces[k]) + 1) * max_len_ratio + 10))

        order = sorted(range(len(pieces)), key=lambda k: len(pieces[k]))
        chunks: list[list[int]] = []
        for k in order:
            if not chunks or len(chunks[-1]) == batch_size or limit(chunks[-1][0]) != limit(k):
                chunks.append([])
            chunks[-1].append(k)
        results: list = [None] * len(pieces)
        for chunk in chunks:
            batch = self.translator.translate_batch(
                [pieces[k] for k in chunk], beam_size=beam, num_hypotheses=nbest,
                max_batch_size=batch_size, max_decoding_length=limit(chunk[0]) - 1)
            for k, result in zip(chunk, batch):
                results[k] = result
        out = [[""] * nbest for _ in texts]
        for j, result in zip(todo, results):
            out[j] = [self.vocabs.tgt.decode([self.vocabs.tgt.index_of(p) for p in hyp])
                      for hyp in result.hypotheses]
        return out
