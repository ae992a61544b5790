"""Beam search against references: the model's own scores, exhaustive search, batching."""

import itertools

import pytest
import torch

from attnmt.config import PENALTIES, load_config
from attnmt.data.tokenizers import BOS, EOS
from attnmt.inference.search import STOPPING, beam_search, length_penalty
from attnmt.models import build_model

# the outcome depends on floating-point kernels: also run under other kernel settings
# (`make test-portable`, tests/kernel_settings.py)
pytestmark = pytest.mark.numerics


def tiny(preset: str, vocab: int, seed: int = 0):
    torch.manual_seed(seed)
    cfg = load_config(raw={"model": {"preset": preset, "emb_size": 16, "enc_hidden": 8,
                                     "dec_hidden": 16, "d_model": 16, "heads": 2, "ffn": 32,
                                     "dropout": 0.0}})
    model = build_model(cfg.model, vocab, vocab, joint_vocab=False).eval()
    with torch.no_grad():      # sharpen the random output layer so scores differ clearly
        for p in model.parameters():
            p.mul_(3.0)
    return model


def sources(n: int, vocab: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, 6, (n,), generator=g)
    src = torch.zeros(n, int(lengths.max()), dtype=torch.long)
    for i, n_i in enumerate(lengths.tolist()):
        src[i, :n_i] = torch.randint(4, vocab, (n_i,), generator=g)
    return src, lengths


@torch.no_grad()
def sequence_logprob(model, src, lengths, tokens: list[int]) -> float:
    """log P(tokens </s> | src) by one teacher-forced pass."""
    tgt_in = torch.tensor([[BOS, *tokens]])
    logits, _ = model(src, lengths, tgt_in)
    logprobs = torch.log_softmax(logits.float(), -1)[0]
    return float(sum(logprobs[i, t] for i, t in enumerate([*tokens, EOS])))


@pytest.mark.parametrize("preset", ["transformer-tiny", "rnn-dot"])
@pytest.mark.parametrize("stopping", STOPPING)
@pytest.mark.parametrize("penalty", PENALTIES)
def test_returned_scores_are_the_models_own(preset, stopping, penalty):
    vocab = 12
    model = tiny(preset, vocab)
    src, lengths = sources(5, vocab)
    limits = torch.full((5,), 7)
    results = beam_search(model, src, lengths, limits, beam=4, alpha=0.6, nbest=3,
                          stopping=stopping, penalty=penalty)
    for i, hyps in enumerate(results):
        assert len(hyps) == 3 and hyps[0].score >= hyps[1].score >= hyps[2].score
        for h in hyps:
            lp = sequence_logprob(model, src[i:i + 1, : lengths[i]], lengths[i:i + 1], h.tokens)
            assert h.logprob == pytest.approx(lp, abs=1e-4)
            assert h.score == pytest.approx(
                lp / length_penalty(len(h.tokens) + 1, 0.6, penalty), abs=1e-4)


@pytest.mark.parametrize("penalty", PENALTIES)
def test_bound_stopping_with_a_wide_beam_finds_the_exhaustive_best(penalty):
    """With more beams than prefixes the search is exhaustive, and the bound rule must not
    stop before the best length-normalised sequence is found, for either penalty form."""
    vocab, limit = 6, 4                    # outputs of at most 3 tokens + </s>
    model = tiny("transformer-tiny", vocab, seed=3)
    src, lengths = sources(3, vocab, seed=4)
    results = beam_search(model, src, lengths, torch.full((3,), limit), beam=vocab ** 3,
                          alpha=1.0, stopping="bound", penalty=penalty)
    for i, hyps in enumerate(results):
        one = (src[i:i + 1, : lengths[i]], lengths[i:i + 1])
        candidates = [list(seq) for n in range(limit)
                      for seq in itertools.product(range(vocab), repeat=n) if EOS not in seq]
        best = max(candidates, key=lambda s: sequence_logprob(model, *one, s)
                   / length_penalty(len(s) + 1, 1.0, penalty))
        assert hyps[0].tokens == best


@pytest.mark.parametrize("stopping", STOPPING)
def test_batching_does_not_change_the_result(stopping):
    vocab = 12
    model = tiny("transformer-tiny", vocab, seed=5)
    src, lengths = sources(6, vocab, seed=6)
    limits = lengths * 2 + 2
    batched = beam_search(model, src, lengths, limits, beam=3, stopping=stopping)
    for i in range(6):
        alone = beam_search(model, src[i:i + 1, : lengths[i]], lengths[i:i + 1],
                            limits[i:i + 1], beam=3, stopping=stopping)
        assert alone[0][0].tokens == batched[i][0].tokens
        assert alone[0][0].score == pytest.approx(batched[i][0].score, abs=1e-4)
