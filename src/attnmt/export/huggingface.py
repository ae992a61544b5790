"""Export a Transformer run to the Hugging Face Transformers format.

The folder loads with ``AutoModelForSeq2SeqLM.from_pretrained(OUT)`` and
``AutoTokenizer.from_pretrained(OUT)`` — no custom code, no ``trust_remote_code``.

Our pre-norm Transformer is the same computation as ``transformers``' **Pegasus**
(``PegasusForConditionalGeneration``): layer norm before every sub-layer and once more
after the last layer of each stack, sinusoidal positions from 0 with Vaswani et al.'s
frequencies, token embeddings scaled by √d_model, ReLU feed-forward layers with biases,
one embedding matrix for source, target and output. One difference is absorbed here:
Pegasus puts all sines before all cosines (``[sin | cos]``) where we interleave them
(``sin, cos, sin, ...``). The residual stream's dimensions are permuted so that ours
line up with theirs — every weight that reads from or writes to the residual stream,
and every layer norm, is permuted the same way; attention heads and the feed-forward
hidden layer are untouched — which leaves the function the network computes unchanged.

The tokenizer is our SentencePiece model converted to a ``tokenizers`` Unigram model
(``transformers``' own SentencePiece converter) that appends ``</s>`` as we do.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import torch

from ..errors import UserError
from ..models.transformer import Transformer
from ..rundir import RunDir, ensure_empty_folder
from ..symbols import BOS, EOS, PAD, SPECIALS, UNK


def require_transformers():
    try:
        import transformers
    except ImportError:
        raise UserError("the transformers package is not installed; "
                        "pip install 'attnmt[hf]'") from None
    return transformers


def interleaved_to_halves(d_model: int) -> torch.Tensor:
    """The permutation taking our [sin0, cos0, sin1, cos1, ...] order to Pegasus's
    [sin0, sin1, ..., cos0, cos1, ...]: new dimension i is old dimension perm[i]."""
    return torch.cat([torch.arange(0, d_model, 2), torch.arange(1, d_model, 2)])


def _check(cfg, model) -> None:
    if not isinstance(model, Transformer):
        raise UserError(f"this is a {cfg.model.arch} model; transformers has no architecture "
                        "for it — only Transformer runs export to Hugging Face")
    m = cfg.model
    if m.norm != "pre" or m.positions != "sinusoidal":
        raise UserError("only pre-norm Transformers with sinusoidal positions export to "
                        f"Hugging Face (this run: norm {m.norm}, positions {m.positions})")
    if model.src_embed.embed is not model.tgt_embed.embed or not m.tie_embeddings:
        raise UserError("Hugging Face export needs one embedding for source, target and "
                        "output (a joint vocabulary with data.joint_vocab: true and "
                        "model.tie_embeddings: true)")


def _state_dict(model: Transformer, perm: torch.Tensor) -> dict[str, torch.Tensor]:
    """Our weights under Pegasus's names, the residual stream permuted by ``perm``."""
    sd: dict[str, torch.Tensor] = {}

    def reads(name: str, linear) -> None:        # input is the residual stream
        sd[f"{name}.weight"] = linear.weight[:, perm]
        sd[f"{name}.bias"] = linear.bias

    def writes(name: str, linear) -> None:       # output goes to the residual stream
        sd[f"{name}.weight"] = linear.weight[perm]
        sd[f"{name}.bias"] = linear.bias[perm]

    def norm(name: str, layer_norm) -> None:
        sd[f"{name}.weight"], sd[f"{name}.bias"] = layer_norm.weight[perm], layer_norm.bias[perm]

    def attention(name: str, attn) -> None:
        for part in ("q_proj", "k_proj", "v_proj"):
            reads(f"{name}.{part}", getattr(attn, part))
        writes(f"{name}.out_proj", attn.out_proj)

    def block(name: str, layer, attns: list[tuple[str, object]]) -> None:
        for i, (attn_name, attn) in enumerate(attns):
            attention(f"{name}.{attn_name}", attn)
            norm(f"{name}.{attn_name}_layer_norm", layer.norms[i])
        norm(f"{name}.final_layer_norm", layer.norms[-1])
        reads(f"{name}.fc1", layer.ffn[0])
        writes(f"{name}.fc2", layer.ffn[-1])

    sd["model.shared.weight"] = model.tgt_embed.embed.weight[:, perm]
    for side in ("encoder", "decoder"):
        sd[f"model.{side}.embed_positions.weight"] = model.tgt_embed.table[:, perm]
    for i, layer in enumerate(model.encoder):
        block(f"model.encoder.layers.{i}", layer, [("self_attn", layer.self_attn)])
    for i, layer in enumerate(model.decoder):
        block(f"model.decoder.layers.{i}", layer, [("self_attn", layer.self_attn),
                                                   ("encoder_attn", layer.cross_attn)])
    norm("model.encoder.layer_norm", model.enc_norm)
    norm("model.decoder.layer_norm", model.dec_norm)
    return {k: v.detach().contiguous() for k, v in sd.items()}


def _hf_model(cfg, model: Transformer):
    transformers = require_transformers()
    m, vocab = cfg.model, model.out.weight.size(0)
    config = transformers.PegasusConfig(
        vocab_size=vocab, d_model=m.d_model, encoder_layers=m.enc_layers,
        decoder_layers=m.dec_layers, encoder_attention_heads=m.heads,
        decoder_attention_heads=m.heads, encoder_ffn_dim=m.ffn, decoder_ffn_dim=m.ffn,
        activation_function="relu", max_position_embeddings=m.max_positions,
        scale_embedding=True, tie_word_embeddings=True, pad_token_id=PAD, bos_token_id=BOS,
        eos_token_id=EOS, decoder_start_token_id=BOS, forced_eos_token_id=None,
        dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)
    hf = transformers.PegasusForConditionalGeneration(config).eval()
    missing, unexpected = hf.load_state_dict(_state_dict(model, interleaved_to_halves(m.d_model)),
                                             strict=False)
    tied = {"model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight",
            "lm_head.weight", "final_logits_bias"}
    if set(missing) - tied or unexpected:
        raise RuntimeError(f"weights left unmapped: {sorted(set(missing) - tied)}, "
                           f"unexpected: {unexpected}")
    hf.generation_config = transformers.GenerationConfig(
        decoder_start_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD, bos_token_id=BOS,
        num_beams=1, max_new_tokens=m.max_positions - 2)
    return hf


def _tokenizer(spm_model: Path):
    """Our SentencePiece model as a fast tokenizer that appends ``</s>`` like we do."""
    transformers = require_transformers()
    from tokenizers import processors
    from transformers.convert_slow_tokenizer import SpmConverter

    tok = SpmConverter(SimpleNamespace(vocab_file=str(spm_model), add_prefix_space=True,
                                       legacy=True)).converted()
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", EOS)])
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=SPECIALS[PAD], unk_token=SPECIALS[UNK],
        bos_token=SPECIALS[BOS], eos_token=SPECIALS[EOS], model_max_length=10**6)


def model_card(cfg, run: RunDir, version: str) -> str:
    """README.md of the exported folder: data, config, scores, how it was trained."""
    scores = run.eval_results()
    lines = [f"# {cfg.data.src}→{cfg.data.tgt} Transformer, trained with attnmt {version}", "",
             "```python", "from transformers import AutoModelForSeq2SeqLM, AutoTokenizer",
             'tok = AutoTokenizer.from_pretrained("THIS_FOLDER")',
             'model = AutoModelForSeq2SeqLM.from_pretrained("THIS_FOLDER")',
             'out = model.generate(**tok(["..."], return_tensors="pt"), num_beams=5)',
             "print(tok.batch_decode(out, skip_special_tokens=True))", "```", "",
             "Architecture: Pegasus in `transformers` (the same computation as attnmt's "
             "pre-norm Transformer; see `attnmt/export_hf.py`).", "",
             f"- data: {cfg.data.dataset or cfg.data.dir} ({cfg.data.train} / {cfg.data.valid}"
             f" / {cfg.data.test}), tokenizer {cfg.data.tokenizer} {cfg.data.vocab_size}",
             f"- model: {cfg.model.preset or cfg.model.arch}, d_model {cfg.model.d_model}, "
             f"{cfg.model.enc_layers}+{cfg.model.dec_layers} layers, {cfg.model.heads} heads, "
             f"FFN {cfg.model.ffn}",
             f"- training: {cfg.train.optimizer} lr {cfg.train.lr}, {cfg.train.schedule} "
             f"warm-up {cfg.train.warmup}, {cfg.train.max_tokens} tokens per batch, label "
             f"smoothing {cfg.train.label_smoothing}, precision {cfg.train.precision}"]
    best = run.best() or {}
    if best:
        lines.append(f"- checkpoint: step {best.get('step')}")
    for s in scores:
        if "bleu" in s:
            lines.append(f"- {s['split']} beam {s['beam']}: BLEU {s['bleu']:.2f}, chrF "
                         f"{s['chrf']:.2f} (sacreBLEU {s.get('bleu_signature', '')})")
    lines += ["", "The full attnmt config is `attnmt_config.yaml` in this folder.", ""]
    return "\n".join(lines)


def hf_greedy(hf_model, tokenizer, texts: list[str], max_len_ratio: float = 1.5,
              batch_size: int = 64) -> list[list[int]]:
    """Greedy decoding with ``transformers``' ``generate`` under attnmt's per-sentence
    length limit (a batch runs to its longest limit; each output is cut at its own —
    for greedy search the same tokens attnmt's search gives). Returns token ids without
    ``</s>``: the check behind the export."""
    import torch

    out: list[list[int]] = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True)
        limits = [int(n * max_len_ratio + 10) for n in batch["attention_mask"].sum(1).tolist()]
        with torch.no_grad():
            ids = hf_model.generate(**batch, num_beams=1, do_sample=False,
                                    max_new_tokens=max(limits) - 1)
        # [:, 1:] drops the start token
        for row, limit in zip(ids[:, 1:].tolist(), limits, strict=True):
            row = row[: row.index(EOS)] if EOS in row else row
            out.append([t for t in row if t != PAD][: limit - 1])
    return out


def export_huggingface(run_dir: str | Path, out_dir: str | Path, force: bool = False) -> Path:
    """Write ``out_dir``: config.json, model.safetensors, tokenizer files, README.md."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        attnmt_version = version("attnmt")
    except PackageNotFoundError:                # a source tree on PYTHONPATH, not installed
        attnmt_version = "(source tree)"
    run = RunDir(run_dir)
    cfg, vocabs, model = run.load()
    _check(cfg, model)
    spm_model = run.vocab_dir / "joint.model"
    if cfg.data.tokenizer != "sentencepiece" or not spm_model.is_file():
        raise UserError("Hugging Face export needs a joint SentencePiece vocabulary "
                        f"(this run: {cfg.data.tokenizer})")
    out = Path(out_dir)
    ensure_empty_folder(out, force)
    hf = _hf_model(cfg, model)
    out.mkdir(parents=True, exist_ok=True)
    hf.save_pretrained(out)
    _tokenizer(spm_model).save_pretrained(out)
    shutil.copy(spm_model, out / "spm.model")
    shutil.copy(run.config_file, out / "attnmt_config.yaml")
    (out / "README.md").write_text(model_card(cfg, run, attnmt_version), encoding="utf-8")
    return out
