import numpy as np

from attnmt.data.batching import EncodedSet, sentence_batches, token_batches
from attnmt.data.tokenizers import BOS, EOS, PAD


def test_budget_never_exceeded_and_every_sentence_once():
    rng = np.random.default_rng(0)
    src, tgt = rng.integers(1, 60, 3000), rng.integers(1, 70, 3000)
    for epoch in range(3):
        plan = token_batches(src, tgt, 500, seed=1, epoch=epoch)
        seen = np.concatenate(plan)
        assert sorted(seen.tolist()) == list(range(3000))
        for b in plan:
            assert len(b) * max(src[b].max(), tgt[b].max()) <= 500
    assert all((a == b).all() for a, b in zip(token_batches(src, tgt, 500, 1, 0),
                                              token_batches(src, tgt, 500, 1, 0)))
    assert any(len(a) != len(b) or (a != b).any()
               for a, b in zip(token_batches(src, tgt, 500, 1, 0),
                               token_batches(src, tgt, 500, 1, 1)))


def test_length_sorting_keeps_padding_low():
    rng = np.random.default_rng(0)
    src = rng.integers(1, 40, 5000)
    plan = token_batches(src, src, 1000, seed=0)
    real = sum(src[b].sum() for b in plan)
    padded = sum(len(b) * src[b].max() for b in plan)
    assert real / padded > 0.95


def test_batch_tensors():
    data = EncodedSet([[5, 6, 7], [8]], [[9], [10, 11]])
    b = data.batch(np.array([0, 1]))
    assert b.src.tolist() == [[5, 6, 7, EOS], [8, EOS, PAD, PAD]]
    assert b.src_lengths.tolist() == [4, 2]
    assert b.tgt_in.tolist() == [[BOS, 9, PAD], [BOS, 10, 11]]
    assert b.tgt_out.tolist() == [[9, EOS, PAD], [10, 11, EOS]]
    assert b.n_tgt_tokens == 5


def test_sentence_batches_sorted():
    groups = sentence_batches([5, 1, 3, 2], 2)
    assert [g.tolist() for g in groups] == [[1, 3], [2, 0]]


def _reference_cut(widths, order, max_tokens):
    """The per-sentence greedy loop the vectorised plan must reproduce exactly."""
    batches, start, widest = [], 0, 0
    for pos, width in enumerate(widths.tolist()):
        new_widest = max(widest, width)
        if (pos - start + 1) * new_widest > max_tokens:
            batches.append(order[start:pos])
            start, new_widest = pos, width
        widest = new_widest
    if start < len(order):
        batches.append(order[start:])
    return batches


def test_vectorised_plan_equals_the_sentence_by_sentence_greedy_cut():
    from attnmt.data.batching import _cut

    rng = np.random.default_rng(3)
    for n, budget in ((1, 50), (500, 64), (3000, 300), (2000, 4096)):
        widths = rng.integers(1, 50, n)
        order = rng.permutation(n)
        got, want = _cut(widths, order, budget), _reference_cut(widths, order, budget)
        assert len(got) == len(want) and all((a == b).all() for a, b in zip(got, want))


def test_length_order_is_the_three_key_sort():
    from attnmt.data.batching import _length_order

    rng = np.random.default_rng(5)
    src, tgt = rng.integers(1, 30, 5000), rng.integers(1, 30, 5000)
    plain = _length_order(src, tgt, np.random.default_rng(0), shuffle=False)
    assert (plain == np.lexsort((np.arange(5000), src, tgt))).all()
    shuffled = _length_order(src, tgt, np.random.default_rng(0), shuffle=True)
    noise = np.random.default_rng(0).random(5000)
    assert (shuffled == np.lexsort((noise, src, tgt))).all() and not (shuffled == plain).all()
    long = src.copy()
    long[0] = 5000                                             # too long for the key: lexsort
    assert (_length_order(long, tgt, np.random.default_rng(0), shuffle=True)
            == np.lexsort((noise, long, tgt))).all()
    again = _length_order(src, tgt, np.random.default_rng(0), shuffle=True)
    assert (again == shuffled).all()
