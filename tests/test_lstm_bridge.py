"""The fixed-context LSTM against a minimal one written here in plain PyTorch.

attnmt's seq2seq LSTM once squashed the bridged cell state with ``tanh``; it learned the
numbers task no further than its first number while this minimal model did
(``benchmarks/lstm_bridge.py``). This test pins the two together: the same weights give
the same logits, teacher-forced and step by step."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from attnmt.config import ModelConfig
from attnmt.models import build_model
from attnmt.presets import PRESETS


class MinimalSeq2Seq(nn.Module):
    """Sutskever et al. (2014) with a bidirectional encoder: the encoder's final states,
    through one linear map each (``tanh`` on the hidden state only), start the decoder."""

    def __init__(self, vocab: int, emb_size: int, enc_hidden: int, dec_hidden: int):
        super().__init__()
        self.src_emb = nn.Embedding(vocab, emb_size, padding_idx=0)
        self.tgt_emb = nn.Embedding(vocab, emb_size, padding_idx=0)
        self.enc = nn.LSTM(emb_size, enc_hidden, batch_first=True, bidirectional=True)
        self.bridge_h = nn.Linear(2 * enc_hidden, dec_hidden)
        self.bridge_c = nn.Linear(2 * enc_hidden, dec_hidden)
        self.dec = nn.LSTM(emb_size, dec_hidden, batch_first=True)
        self.out = nn.Linear(dec_hidden, vocab)

    def final_cells(self, src, lengths):
        return self._encode(src, lengths)[1]

    def _encode(self, src, lengths):
        packed = pack_padded_sequence(self.src_emb(src), lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        _, (h, c) = self.enc(packed)                       # (2, B, H): forward, backward
        return torch.cat([h[0], h[1]], -1), torch.cat([c[0], c[1]], -1)

    def forward(self, src, lengths, tgt_in):
        h, c = self._encode(src, lengths)
        start = (torch.tanh(self.bridge_h(h))[None], self.bridge_c(c)[None])
        out, _ = self.dec(self.tgt_emb(tgt_in), start)
        return self.out(out), None


SIZES = dict(emb_size=16, enc_hidden=24, dec_hidden=40)


def _pair(vocab: int = 30):
    m = ModelConfig(**{**PRESETS["seq2seq-lstm"], **SIZES, "dropout": 0.0})
    ours = build_model(m, vocab, vocab).eval()
    minimal = MinimalSeq2Seq(vocab, **SIZES).eval()
    names = {"src_emb": "encoder.embed", "tgt_emb": "tgt_embed", "enc": "encoder.rnn",
             "bridge_h": "bridge.0", "bridge_c": "bridge.1", "dec": "decoder", "out": "out"}
    theirs = dict(ours.named_parameters())
    with torch.no_grad():
        for name, p in minimal.named_parameters():
            part, rest = name.split(".", 1)
            p.copy_(theirs[f"{names[part]}.{rest}"])
    return ours, minimal


def _batch(vocab: int = 30, n: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, 12, (n,), generator=g)
    src = torch.randint(4, vocab, (n, int(lengths.max())), generator=g)
    src[torch.arange(src.size(1))[None] >= lengths[:, None]] = 0
    tgt = torch.randint(4, vocab, (n, 7), generator=g)
    return src, lengths, tgt


def test_the_same_weights_give_the_minimal_models_logits():
    ours, minimal = _pair()
    src, lengths, tgt = _batch()
    a, _ = ours(src, lengths, tgt)
    b, _ = minimal(src, lengths, tgt)
    assert torch.allclose(a, b, atol=1e-5)
    state, steps = ours.init_state(ours.encode(src, lengths)), []
    for t in range(tgt.size(1)):                      # the search's path: one step at a time
        logits, state, _ = ours.decode_step(tgt[:, t], state)
        steps.append(logits)
    assert torch.allclose(torch.stack(steps, 1), b, atol=1e-5)
