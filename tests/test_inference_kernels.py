"""Decoding's fast paths compute what the plain model computes: the packed Linear on both of
its kernels (with and without the ReLU it absorbs), and greedy search with finished
sentences leaving the batch against a plain greedy loop written here."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attnmt.config import load_config
from attnmt.inference.search import sequential
from attnmt.models import build_model
from attnmt.models.backend import PackedLinear, can_pack, pack_linear_layers
from attnmt.symbols import BOS, EOS, PAD

# kernels round differently from one CPU to another (`make test-portable`)
pytestmark = pytest.mark.numerics


def tiny_transformer(vocab: int = 40) -> nn.Module:
    cfg = load_config(raw={"model": {"preset": "transformer-tiny", "d_model": 32, "heads": 4,
                                     "ffn": 64}})
    torch.manual_seed(0)
    return build_model(cfg.model, vocab, vocab, joint_vocab=False).eval()


@pytest.mark.parametrize("rows", [1, 4, 16, 64])
@pytest.mark.parametrize("activation", ["none", "relu"])
def test_packed_linear_equals_linear_on_both_kernels(rows, activation):
    linear = nn.Linear(256, 1024)
    if not can_pack(linear):
        pytest.skip("this PyTorch build has no oneDNN")
    packed = PackedLinear(linear, activation=activation)
    x = torch.randn(rows, 1, 256)
    want = linear(x)
    want = F.relu(want) if activation == "relu" else want
    with torch.inference_mode():
        got = packed(x)
    assert torch.allclose(got, want, atol=1e-4)
    with torch.enable_grad():                       # gradients take F.linear (attributions)
        assert torch.allclose(packed(x), want, atol=1e-4)


def test_the_feed_forward_relu_runs_inside_the_first_product():
    model = tiny_transformer()
    if not can_pack(model):
        pytest.skip("this PyTorch build has no oneDNN")
    packed = pack_linear_layers(copy.deepcopy(model))
    for layer in [*packed.encoder, *packed.decoder]:
        assert layer.ffn[0].activation == "relu"
        assert isinstance(layer.ffn[1], nn.Identity)
    src = torch.randint(4, 40, (24, 9))            # 24 x 9 rows: the packed kernel
    lengths = torch.full((24,), 9)
    tgt = torch.randint(4, 40, (24, 6))
    with torch.inference_mode():
        assert torch.allclose(packed(src, lengths, tgt)[0], model(src, lengths, tgt)[0],
                              atol=1e-4)


def plain_greedy(model, src, lengths, limits) -> list[tuple[list[int], float]]:
    """Greedy search without any of search.sequential's bookkeeping: every row decoded at
    every step, the whole batch to the longest limit."""
    state = model.init_state(model.encode(src, lengths))
    prev = torch.full((src.size(0),), BOS)
    tokens = [[] for _ in range(src.size(0))]
    logprob = [0.0] * src.size(0)
    done = [False] * src.size(0)
    for t in range(int(limits.max())):
        logits, state, _ = model.decode_step(prev, state)
        logprobs = torch.log_softmax(logits.float(), -1)
        logprobs[:, PAD] = logprobs[:, BOS] = float("-inf")
        prev = logprobs.argmax(-1)
        for i in range(src.size(0)):
            if done[i]:
                continue
            tok = EOS if t + 1 >= limits[i] else int(prev[i])
            logprob[i] += float(logprobs[i, tok])
            done[i] = tok == EOS
            if not done[i]:
                tokens[i].append(tok)
        prev = prev.masked_fill(torch.tensor(done), EOS)
    return list(zip(tokens, logprob, strict=True))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_greedy_search_equals_a_plain_greedy_loop(seed):
    """Sentences end at different steps (their own limits, or </s>), so rows leave the
    batch one by one; tokens and log-probabilities stay those of the plain loop."""
    model = tiny_transformer()
    gen = torch.Generator().manual_seed(seed)
    src = torch.randint(4, 40, (7, 10), generator=gen)
    lengths = torch.tensor([10, 9, 7, 6, 4, 3, 2])
    for i, n in enumerate(lengths):
        src[i, n:] = PAD
    limits = torch.tensor([3, 12, 1, 7, 9, 5, 12])
    with torch.inference_mode():
        got = sequential(model, src, lengths, limits)
        want = plain_greedy(model, src, lengths, limits)
    assert [h.tokens for h in got] == [w[0] for w in want]
    assert all(len(h.tokens) < int(n) for h, n in zip(got, limits, strict=True))
    assert len({len(h.tokens) for h in got}) > 3          # rows really left one by one
    for h, (_, lp) in zip(got, want, strict=True):
        assert h.logprob == pytest.approx(lp, abs=1e-4)


@pytest.mark.parametrize("coverage", [0.0, 0.4])
def test_beams_sharing_their_sentence_memory_search_as_with_a_copy_per_beam(coverage):
    """The Transformer keeps its encoder memory once per sentence in beam search (the beams
    attend to it together); with a copy of it per beam (the contract's plain reorder) the
    search finds the same hypotheses with the same scores. Sentences end at different
    steps, so the memory is also cut when they leave; the coverage penalty reads the
    attention weights, which must come back one row per beam."""
    from attnmt.inference.controls import Controls
    from attnmt.inference.search import beam_search
    from attnmt.models.base import Seq2SeqModel

    model = tiny_transformer()
    gen = torch.Generator().manual_seed(3)
    src = torch.randint(4, 40, (6, 8), generator=gen)
    lengths = torch.tensor([8, 7, 5, 4, 3, 2])
    for i, n in enumerate(lengths):
        src[i, n:] = PAD
    limits = torch.tensor([4, 9, 2, 6, 9, 3])

    def search():
        return beam_search(model, src, lengths, limits, beam=4, alpha=0.6, nbest=3,
                           controls=Controls(coverage=coverage))

    with torch.inference_mode():
        shared = search()
        model.reorder_state = lambda state, rows, source_rows: Seq2SeqModel.reorder_state(
            model, state, rows, source_rows)
        copied = search()
    assert [[h.tokens for h in s] for s in shared] == [[h.tokens for h in s] for s in copied]
    for a, b in zip(shared, copied, strict=True):
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-4)
