"""Decoding controls: forced prefixes, constraints (dynamic beam allocation), no repeated
n-grams, the coverage penalty and ensembles, on small random models of both families."""

import pytest
import torch
from test_search import sequence_logprob, sources, tiny

from attnmt.data.tokenizers import BOS
from attnmt.inference.constrained import Phrases, bank_sizes
from attnmt.inference.controls import Controls
from attnmt.inference.search import beam_search, sequential
from attnmt.models.ensemble import Ensemble

pytestmark = pytest.mark.numerics

VOCAB = 14
PRESETS = ["transformer-tiny", "rnn-dot"]


def contains(tokens: list[int], phrase: list[int]) -> bool:
    n = len(phrase)
    return any(tokens[i:i + n] == phrase for i in range(len(tokens) - n + 1))


@pytest.mark.parametrize("preset", PRESETS)
def test_the_prefix_is_respected_by_greedy_sampling_and_beam(preset):
    model = tiny(preset, VOCAB)
    src, lengths = sources(4, VOCAB)
    prefixes = [[5, 6], [], [7], [8, 8, 9]]
    limits = torch.full((4,), 9)
    controls = Controls.make(prefixes)
    greedy = sequential(model, src, lengths, limits, controls=controls)
    sampled = sequential(model, src, lengths, limits, temperature=1.0, controls=controls,
                         generator=torch.Generator().manual_seed(0))
    beams = [h[0] for h in beam_search(model, src, lengths, limits, beam=3, controls=controls)]
    for hyps in (greedy, sampled, beams):
        for i, (h, p) in enumerate(zip(hyps, prefixes, strict=True)):
            assert h.tokens[: len(p)] == p
            one = (src[i:i + 1, : lengths[i]], lengths[i:i + 1])
            assert h.logprob == pytest.approx(sequence_logprob(model, *one, h.tokens), abs=1e-4)


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("n", [1, 2, 3])
def test_no_ngram_repeats(preset, n):
    model = tiny(preset, VOCAB, seed=2)
    src, lengths = sources(6, VOCAB, seed=3)
    limits = torch.full((6,), 12)
    controls = Controls.make(no_repeat_ngram=n)
    outs = [h.tokens for h in sequential(model, src, lengths, limits, controls=controls)]
    outs += [h[0].tokens for h in beam_search(model, src, lengths, limits, beam=4,
                                             controls=controls)]
    for tokens in outs:
        grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
        assert len(grams) == len(set(grams))


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("stopping", ["current", "bound", "beam"])
def test_constrained_search_without_constraints_is_plain_beam_search(preset, stopping):
    model = tiny(preset, VOCAB, seed=4)
    src, lengths = sources(6, VOCAB, seed=5)
    limits = torch.full((6,), 10)
    plain = beam_search(model, src, lengths, limits, beam=4, nbest=2, stopping=stopping)
    banked = beam_search(model, src, lengths, limits, beam=4, nbest=2, stopping=stopping,
                         constraints=[[] for _ in range(6)])
    assert [[h.tokens for h in s] for s in plain] == [[h.tokens for h in s] for s in banked]


@pytest.mark.parametrize("preset", PRESETS)
def test_every_constraint_appears_in_every_output(preset):
    model = tiny(preset, VOCAB, seed=6)
    src, lengths = sources(5, VOCAB, seed=7)
    constraints = [[[9]], [[10, 11]], [[4], [12, 13]], [], [[5, 6, 7], [8]]]
    limits = torch.full((5,), 12)
    results = beam_search(model, src, lengths, limits, beam=5, nbest=1,
                          constraints=constraints,
                          controls=Controls.make([[], [], [6], [], []]))
    for hyps, phrases in zip(results, constraints, strict=True):
        for phrase in phrases:
            assert contains(hyps[0].tokens, phrase), (hyps[0].tokens, phrase)
    assert results[2][0].tokens[0] == 6


@pytest.mark.parametrize("preset", PRESETS)
def test_a_constraint_is_never_followed_by_a_word_piece(preset):
    model = tiny(preset, VOCAB, seed=6)
    src, lengths = sources(6, VOCAB, seed=8)
    constraints = [[[9]], [[10, 11]], [[4], [12]], [[5, 6]], [[7]], [[8], [13]]]
    glued = torch.zeros(VOCAB, dtype=torch.bool)
    glued[4:] = True
    glued[[9, 10, 12]] = False          # a few tokens start words; every other one continues
    limits = torch.full((6,), 12)
    results = beam_search(model, src, lengths, limits, beam=5, constraints=constraints,
                          glued=glued)
    for hyps, phrases in zip(results, constraints, strict=True):
        tokens = hyps[0].tokens
        for phrase in phrases:
            n = len(phrase)
            ends = [i + n for i in range(len(tokens) - n + 1) if tokens[i:i + n] == phrase]
            assert ends, (tokens, phrase)
            assert any(end == len(tokens) or not glued[tokens[end]] for end in ends), tokens


def test_word_pieces_are_those_without_the_space_mark(tmp_path):
    from attnmt.data.tokenizers import CharTokenizer, SentencePieceTokenizer, WordTokenizer

    texts = [f"the igloo{i} and the igloos of {i} dogs." for i in range(300)]
    sp = SentencePieceTokenizer.train(texts, 60)
    ids = sp.encode("igloos.")
    glued = [sp.continues_word(i) for i in ids]
    assert not glued[0] and not glued[-1]          # "▁..." starts, "." is no letter
    assert all(sp.continues_word(i) == (not sp.piece(i).startswith("\u2581")
                                        and sp.piece(i)[:1].isalnum()) for i in ids)
    chars = CharTokenizer.train(["ab c."])
    assert [chars.continues_word(i) for i in chars.encode("ab c.")] == [
        True, True, False, True, False]
    assert not any(WordTokenizer.train(["a b"]).continues_word(i) for i in range(4, 6))


def test_phrases_track_progress_and_restarts():
    p = Phrases([[4, 5], [6]])
    state = p.advance(p.advance((0, -1, 0), 4), 7)      # 4 then a break: back to nothing
    assert p.met_tokens(state) == 0 and p.wanted(state) == {4, 6}
    state = p.advance(p.advance(p.advance(state, 4), 5), 6)
    assert p.done(state) and p.met_tokens(state) == 3


def test_bank_sizes_pass_unused_places_down():
    assert bank_sizes(5, [9, 9, 9]) == [1, 1, 3]
    assert bank_sizes(5, [9, 9, 0]) == [1, 4, 0]
    assert sum(bank_sizes(4, [1, 0, 0, 0, 0])) <= 4


@pytest.mark.parametrize("preset", PRESETS)
def test_an_ensemble_of_one_is_that_model(preset):
    model = tiny(preset, VOCAB, seed=8)
    src, lengths = sources(5, VOCAB, seed=9)
    limits = torch.full((5,), 9)
    alone = beam_search(model, src, lengths, limits, beam=4)
    ensemble = beam_search(Ensemble([model]), src, lengths, limits, beam=4)
    assert [h[0].tokens for h in alone] == [h[0].tokens for h in ensemble]
    for a, e in zip(alone, ensemble, strict=True):
        assert e[0].score == pytest.approx(a[0].score, abs=1e-4)


def test_an_ensemble_averages_its_members_log_probabilities():
    a, b = tiny("rnn-dot", VOCAB, seed=10), tiny("transformer-tiny", VOCAB, seed=11)
    src, lengths = sources(3, VOCAB, seed=12)
    tgt = torch.tensor([[1, 5, 6], [1, 7, 8], [1, 9, 4]])
    mean = (torch.log_softmax(a(src, lengths, tgt)[0], -1)
            + torch.log_softmax(b(src, lengths, tgt)[0], -1)) / 2
    assert torch.allclose(Ensemble([a, b])(src, lengths, tgt)[0], mean, atol=1e-5)


def test_the_coverage_penalty_ranks_by_attended_source():
    model = tiny("rnn-dot", VOCAB, seed=13)
    src, lengths = sources(4, VOCAB, seed=14)
    limits = torch.full((4,), 9)
    covered = beam_search(model, src, lengths, limits, beam=4, nbest=3, alpha=0.0,
                          controls=Controls.make(coverage=0.5))
    for i, hyps in enumerate(covered):
        one = (src[i:i + 1, : lengths[i]], lengths[i:i + 1])
        for h in hyps:
            tgt_in = torch.tensor([[BOS, *h.tokens]])
            with torch.no_grad():
                _, weights = model(*one, tgt_in, need_weights=True)
            cp = 0.5 * weights[0].sum(0).clamp(max=1.0).log().sum()
            assert h.score == pytest.approx(h.logprob + float(cp), abs=1e-4)


def test_forced_tokens_over_the_output_limit_are_one_line_naming_the_field():
    from attnmt.errors import UserError
    from attnmt.inference.forced import forced_ids

    def encode(text):
        return [5] * len(text.split())

    with pytest.raises(UserError, match="text 1: its prefix and constraints are 6 tokens") as e:
        forced_ids(["x"], encode, cap=6, prefixes=["a b"], constraints=[["c d e f"]])
    assert e.value.field == "constraints"
    with pytest.raises(UserError, match="2 prefixes for 1 texts") as e:
        forced_ids(["x"], encode, cap=6, prefixes=["a", "b"])
    assert e.value.field == "prefixes"
