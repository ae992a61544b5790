"""Named architectures (fairseq-style presets): one flag turns an ablation on.

Each preset is a partial ``model:`` section; keys set in a config file or with
``--set`` override it. Plain data beside the config, so loading a config imports no
model code.
"""

from __future__ import annotations

from .errors import ConfigError

_RNN_ATTN = dict(arch="rnn", rnn_type="gru", emb_size=256, enc_hidden=256, dec_hidden=512,
                 enc_layers=1, dec_layers=1, bidirectional=True, input_feeding=True,
                 dropout=0.2, tie_embeddings=False)
_SEQ2SEQ = dict(arch="seq2seq", emb_size=256, enc_hidden=256, dec_hidden=512, enc_layers=1,
                dec_layers=1, bidirectional=True, dropout=0.2, tie_embeddings=False)

PRESETS: dict[str, dict] = {
    # 1. the fixed context vector (Sutskever et al. 2014; Cho et al. 2014)
    "seq2seq-rnn": {**_SEQ2SEQ, "rnn_type": "rnn"},
    "seq2seq-lstm": {**_SEQ2SEQ, "rnn_type": "lstm"},
    "seq2seq-gru": {**_SEQ2SEQ, "rnn_type": "gru", "feed_context": True},
    # 2. seq2seq + attention (Luong et al. 2015; Bahdanau et al. 2015)
    "rnn-dot": {**_RNN_ATTN, "attention": "dot"},
    "rnn-general": {**_RNN_ATTN, "attention": "general"},
    "rnn-concat": {**_RNN_ATTN, "attention": "concat"},
    "rnn-additive": {**_RNN_ATTN, "attention": "additive"},
    # 3. the Transformer (Vaswani et al. 2017)
    "transformer-tiny": dict(arch="transformer", enc_layers=2, dec_layers=2, d_model=128,
                             heads=4, ffn=512, dropout=0.1),
    "transformer-small": dict(arch="transformer", enc_layers=3, dec_layers=3, d_model=256,
                              heads=4, ffn=1024, dropout=0.1),
    # 4. translation by a decoder alone (GPT-style): 7 causal layers have about the
    # parameters of transformer-small's 3 encoder + 3 decoder layers
    "decoder-only-small": dict(arch="decoder-only", dec_layers=7, d_model=256, heads=4,
                               ffn=1024, dropout=0.1),
    "transformer-base": dict(arch="transformer", enc_layers=6, dec_layers=6, d_model=512,
                             heads=8, ffn=2048, dropout=0.1),
}


def preset_config(name: str) -> dict:
    """The model keys of a preset, or a one-line error listing the valid names."""
    if name not in PRESETS:
        raise ConfigError(f"model.preset {name!r} is unknown; valid presets: "
                          + ", ".join(PRESETS))
    return {"preset": name, **PRESETS[name]}
