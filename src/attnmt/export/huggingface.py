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
from ..models.decoder_only import DecoderOnlyTranslator
from ..models.heads import DecoderLM, EncoderClassifier
from ..models.positions import SCHEMES
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


CAUSAL = "decoder-only"          # the LM and the decoder-only translator: PegasusForCausalLM


def _kind(cfg, model) -> str:
    """``seq2seq`` (PegasusForConditionalGeneration) or ``causal`` (PegasusForCausalLM), or a
    one-line error naming what transformers' Pegasus cannot compute."""
    causal = isinstance(model, (DecoderLM, DecoderOnlyTranslator))
    if not causal and not isinstance(model, Transformer):
        what = ("an encoder-only classifier: transformers' encoder classes (BERT, RoBERTa, "
                "XLM, ...) all put a layer norm on the embeddings, which attnmt's encoder has "
                "not, so none computes the same function" if isinstance(model, EncoderClassifier)
                else f"a {cfg.model.arch} model; transformers has no architecture for it")
        raise UserError(f"this is {what} — Transformer, decoder-only and language-model runs "
                        "export to Hugging Face")
    m = cfg.model
    if m.positions in SCHEMES:
        raise UserError(f"model.positions {m.positions} lives in the attention; transformers' "
                        "Pegasus takes only a position table (sinusoidal or learned)")
    if m.norm != "pre":
        raise UserError("only pre-norm models export to Hugging Face's Pegasus (this run: "
                        f"norm {m.norm})")
    tied = model.out.weight is model.embed.embed.weight if causal else \
        model.src_embed.embed is model.tgt_embed.embed and m.tie_embeddings
    joint = not isinstance(model, DecoderOnlyTranslator) or model.src_tokens is model.embed.embed
    if not tied or not joint:
        raise UserError("Hugging Face export needs one embedding for source, target and "
                        "output (a joint vocabulary with data.joint_vocab: true and "
                        "model.tie_embeddings: true)")
    return "causal" if causal else "seq2seq"


class _Weights:
    """Our weights under Pegasus's names, the residual stream permuted by ``perm``."""

    def __init__(self, perm: torch.Tensor):
        self.perm, self.sd = perm, {}

    def reads(self, name: str, linear) -> None:        # input is the residual stream
        self.sd[f"{name}.weight"] = linear.weight[:, self.perm]
        self.sd[f"{name}.bias"] = linear.bias

    def writes(self, name: str, linear) -> None:       # output goes to the residual stream
        self.sd[f"{name}.weight"] = linear.weight[self.perm]
        self.sd[f"{name}.bias"] = linear.bias[self.perm]

    def norm(self, name: str, layer_norm) -> None:
        self.sd[f"{name}.weight"] = layer_norm.weight[self.perm]
        self.sd[f"{name}.bias"] = layer_norm.bias[self.perm]

    def attention(self, name: str, attn) -> None:
        for part in ("q_proj", "k_proj", "v_proj"):
            self.reads(f"{name}.{part}", getattr(attn, part))
        self.writes(f"{name}.out_proj", attn.out_proj)

    def block(self, name: str, layer, attns: list[tuple[str, object]]) -> None:
        for i, (attn_name, attn) in enumerate(attns):
            self.attention(f"{name}.{attn_name}", attn)
            self.norm(f"{name}.{attn_name}_layer_norm", layer.norms[i])
        self.norm(f"{name}.final_layer_norm", layer.norms[-1])
        self.reads(f"{name}.fc1", layer.ffn[0])
        self.writes(f"{name}.fc2", layer.ffn[-1])

    def tokens(self, name: str, embed) -> None:
        """The token table of ``embed`` (our :class:`Embeddings`)."""
        self.sd[f"{name}.weight"] = embed.embed.weight[:, self.perm]

    def positions(self, side: str, embed) -> None:
        """The position table of ``embed`` (sinusoidal or learned) for Pegasus's ``side``."""
        table = embed.learned.weight if embed.learned is not None else embed.table
        self.sd[f"model.{side}.embed_positions.weight"] = table[:, self.perm]

    def done(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().contiguous() for k, v in self.sd.items()}


def _seq2seq_weights(model: Transformer, perm: torch.Tensor) -> dict[str, torch.Tensor]:
    w = _Weights(perm)
    w.tokens("model.shared", model.tgt_embed)
    w.positions("encoder", model.src_embed)
    w.positions("decoder", model.tgt_embed)
    for i, layer in enumerate(model.encoder):
        w.block(f"model.encoder.layers.{i}", layer, [("self_attn", layer.self_attn)])
    for i, layer in enumerate(model.decoder):
        w.block(f"model.decoder.layers.{i}", layer, [("self_attn", layer.self_attn),
                                                     ("encoder_attn", layer.cross_attn)])
    w.norm("model.encoder.layer_norm", model.enc_norm)
    w.norm("model.decoder.layer_norm", model.dec_norm)
    if model.out.bias is not None:
        w.sd["final_logits_bias"] = model.out.bias[None]
    return w.done()


def _causal_weights(model, perm: torch.Tensor) -> dict[str, torch.Tensor]:
    """A causal stack as Pegasus's decoder alone. Its layers' cross-attention (never run
    without an encoder) is written as zeros, so the folder holds no random weights."""
    w = _Weights(perm)
    w.tokens("model.decoder.embed_tokens", model.embed)
    w.positions("decoder", model.embed)
    for i, layer in enumerate(model.layers):
        name = f"model.decoder.layers.{i}"
        w.block(name, layer, [("self_attn", layer.self_attn)])
        for part in ("q_proj", "k_proj", "v_proj", "out_proj"):
            linear = getattr(layer.self_attn, part)
            w.sd[f"{name}.encoder_attn.{part}.weight"] = torch.zeros_like(linear.weight)
            w.sd[f"{name}.encoder_attn.{part}.bias"] = torch.zeros_like(linear.bias)
        w.sd[f"{name}.encoder_attn_layer_norm.weight"] = torch.ones_like(perm, dtype=torch.float)
        w.sd[f"{name}.encoder_attn_layer_norm.bias"] = torch.zeros_like(perm, dtype=torch.float)
    w.norm("model.decoder.layer_norm", model.norm)
    return w.done()


def _hf_model(cfg, model, kind: str):
    transformers = require_transformers()
    m, vocab = cfg.model, model.out.weight.size(0)
    layers = (dict(encoder_layers=m.enc_layers, decoder_layers=m.dec_layers) if kind == "seq2seq"
              else dict(encoder_layers=0, decoder_layers=len(model.layers), is_decoder=True,
                        is_encoder_decoder=False))
    config = transformers.PegasusConfig(
        vocab_size=vocab, d_model=m.d_model, **layers, encoder_attention_heads=m.heads,
        decoder_attention_heads=m.heads, encoder_ffn_dim=m.ffn, decoder_ffn_dim=m.ffn,
        activation_function=m.activation, max_position_embeddings=m.max_positions,
        scale_embedding=m.scale_embedding, tie_word_embeddings=True, pad_token_id=PAD,
        bos_token_id=BOS, eos_token_id=EOS, decoder_start_token_id=BOS, forced_eos_token_id=None,
        dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)
    # learned positions are a table like any other; sinusoidal ones are permuted to
    # Pegasus's [sin | cos] order, and the residual stream with them (module docstring)
    perm = (interleaved_to_halves(m.d_model) if m.positions == "sinusoidal"
            else torch.arange(m.d_model))
    if kind == "seq2seq":
        hf = transformers.PegasusForConditionalGeneration(config).eval()
        weights = _seq2seq_weights(model, perm)
        tied = {"model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight",
                "lm_head.weight", "final_logits_bias"}      # the bias: zeros unless we have one
    else:
        hf = transformers.PegasusForCausalLM(config).eval()
        weights, tied = _causal_weights(model, perm), {"lm_head.weight"}
    missing, unexpected = hf.load_state_dict(weights, strict=False)
    if set(missing) - tied or unexpected:
        raise RuntimeError(f"weights left unmapped: {sorted(set(missing) - tied)}, "
                           f"unexpected: {unexpected}")
    hf.generation_config = transformers.GenerationConfig(
        decoder_start_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD, bos_token_id=BOS,
        num_beams=1, max_new_tokens=m.max_positions - 2)
    return hf


# What the tokenizer adds around a text: the source of a translation ends in </s>; a
# decoder-only translator continues after its separator; a language model starts at <s>.
TEMPLATES = {"seq2seq": "$A </s>", "translator": "$A </s> <s>", "lm": "<s> $A"}


def _tokenizer(spm_model: Path, template: str = TEMPLATES["seq2seq"]):
    """Our SentencePiece model as a fast tokenizer that adds what ``template`` says."""
    transformers = require_transformers()
    from tokenizers import processors
    from transformers.convert_slow_tokenizer import SpmConverter

    tok = SpmConverter(SimpleNamespace(vocab_file=str(spm_model), add_prefix_space=True,
                                       legacy=True)).converted()
    tok.post_processor = processors.TemplateProcessing(
        single=template, pair="$A </s> $B </s>",
        special_tokens=[(SPECIALS[BOS], BOS), (SPECIALS[EOS], EOS)])
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=SPECIALS[PAD], unk_token=SPECIALS[UNK],
        bos_token=SPECIALS[BOS], eos_token=SPECIALS[EOS], model_max_length=10**6)


USAGE = {
    "seq2seq": ("Transformer", "AutoModelForSeq2SeqLM",
                'out = model.generate(**tok(["..."], return_tensors="pt"), num_beams=5)',
                "print(tok.batch_decode(out, skip_special_tokens=True))"),
    "translator": ("decoder-only translator", "AutoModelForCausalLM",
                   'ids = tok(["..."], return_tensors="pt")   # source </s> <s>',
                   "out = model.generate(**ids, num_beams=5)\n"
                   "print(tok.batch_decode(out[:, ids['input_ids'].size(1):], "
                   "skip_special_tokens=True))"),
    "lm": ("language model", "AutoModelForCausalLM",
           'out = model.generate(**tok(["..."], return_tensors="pt"), do_sample=True)',
           "print(tok.batch_decode(out, skip_special_tokens=True))")}


def _role(cfg, kind: str) -> str:
    """``seq2seq``, ``translator`` (decoder-only) or ``lm``: what the export holds."""
    return "seq2seq" if kind == "seq2seq" else "lm" if cfg.data.task == "lm" else "translator"


def model_card(cfg, run: RunDir, version: str, role: str = "seq2seq") -> str:
    """README.md of the exported folder: data, config, scores, how it was trained."""
    scores = run.eval_results()
    what, auto, call, show = USAGE[role]
    pair = f"{cfg.data.src}→{cfg.data.tgt} " if role != "lm" else ""
    alone = "its decoder alone, " if role != "seq2seq" else ""
    lines = [f"# {pair}{what}, trained with attnmt {version}", "",
             "```python", f"from transformers import {auto}, AutoTokenizer",
             'tok = AutoTokenizer.from_pretrained("THIS_FOLDER")',
             f'model = {auto}.from_pretrained("THIS_FOLDER")', call, show, "```", "",
             f"Architecture: Pegasus in `transformers` ({alone}the same computation as "
             "attnmt's pre-norm model; see `attnmt/export/huggingface.py`).", "",
             f"- data: {cfg.data.dataset or cfg.data.dir} ({cfg.data.train} / {cfg.data.valid}"
             f" / {cfg.data.test}), tokenizer {cfg.data.tokenizer} {cfg.data.vocab_size}",
             f"- model: {cfg.model.preset or cfg.model.arch}, d_model {cfg.model.d_model}, "
             f"{cfg.model.enc_layers if role == 'seq2seq' else 0}+{cfg.model.dec_layers} "
             f"layers, {cfg.model.heads} heads, "
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
    kind = _kind(cfg, model)
    role = _role(cfg, kind)
    spm_model = run.vocab_dir / "joint.model"
    if cfg.data.tokenizer != "sentencepiece" or not spm_model.is_file():
        raise UserError("Hugging Face export needs a joint SentencePiece vocabulary "
                        f"(this run: {cfg.data.tokenizer})")
    out = Path(out_dir)
    ensure_empty_folder(out, force)
    hf = _hf_model(cfg, model, kind)
    out.mkdir(parents=True, exist_ok=True)
    hf.save_pretrained(out)
    _tokenizer(spm_model, TEMPLATES[role]).save_pretrained(out)
    shutil.copy(spm_model, out / "spm.model")
    shutil.copy(run.config_file, out / "attnmt_config.yaml")
    (out / "README.md").write_text(model_card(cfg, run, attnmt_version, role),
                                   encoding="utf-8")
    return out
