"""Export a Transformer run to CTranslate2 (its own fast inference engine).

Translating with the exported folder is ``ct2engine.CT2Translator``.
The weights are written through CTranslate2's own Python spec API
(``TransformerSpec.from_config``): token embeddings (scaled by √d), our
position table, fused Q/K/V projections, layer norms and the tied output
layer. The run's vocabulary folder is copied beside the model, so the
exported folder is all that ``attnmt translate --engine ctranslate2`` needs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from ..data.tokenizers import SPECIALS
from ..errors import UserError
from ..models.positions import SCHEMES
from ..models.transformer import Transformer
from ..rundir import RunDir, ensure_empty_folder


def require_ctranslate2():
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
    """Token embeddings, the position table and the embedding scale of one side."""
    emb = spec.embeddings[0] if isinstance(spec.embeddings, list) else spec.embeddings
    emb.weight = embeddings.embed.weight.detach().numpy()
    table = embeddings.learned.weight if embeddings.learned is not None else embeddings.table
    spec.position_encodings.encodings = table.detach().numpy()
    spec.scale_embeddings = embeddings.scale


UNEXPORTED = {   # what CTranslate2's specs (4.x) can express, and what this export writes
    "alibi": "model.positions alibi: CTranslate2 has ALiBi in its decoder only, not in its "
             "encoder; decode this run with attnmt",
    "rope": "model.positions rope: CTranslate2's specs have rotary embeddings (rotary_dim), "
            "but this export writes position tables only; decode this run with attnmt"}


def _vocabulary(tokenizer) -> list[str]:
    pieces = [tokenizer.piece(i) for i in range(len(tokenizer))]
    return ["<blank>" if p == SPECIALS[0] else p for p in pieces]


def export_ctranslate2(run_dir: str | Path, out_dir: str | Path,
                       quantization: str | None = None, force: bool = False) -> Path:
    """Convert a ``transformer-*`` run into a CTranslate2 model folder."""
    require_ctranslate2()
    from ctranslate2.specs import transformer_spec

    cfg, vocabs, model = RunDir(run_dir).load()
    if not isinstance(model, Transformer):
        raise UserError(f"{run_dir} is a {cfg.model.arch} model; only Transformer models "
                        "can be exported to CTranslate2")
    from ctranslate2.specs.common_spec import Activation

    if cfg.model.positions in SCHEMES:
        raise UserError(UNEXPORTED[cfg.model.positions])
    pre = cfg.model.norm == "pre"
    activation = {"relu": Activation.RELU, "gelu": Activation.GELU,
                  "swish": Activation.SWISH}[cfg.model.activation]
    # The alignment (the attention CTranslate2 returns) is the last layer's, all heads.
    spec = transformer_spec.TransformerSpec.from_config(
        (cfg.model.enc_layers, cfg.model.dec_layers), cfg.model.heads, pre_norm=pre,
        activation=activation, alignment_layer=-1, alignment_heads=cfg.model.heads)
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
    ensure_empty_folder(out, force)
    spec.validate()
    spec.optimize(quantization=quantization)
    out.mkdir(parents=True, exist_ok=True)
    spec.save(str(out))
    shutil.copytree(RunDir(run_dir).vocab_dir, out / "vocab", dirs_exist_ok=True)
    RunDir(out).save_config(cfg)
    (out / "attnmt.json").write_text(json.dumps({
        "run_dir": str(Path(run_dir).resolve()), "parameters": model.num_parameters(),
        "quantization": quantization or "float32"}))
    return out
