"""Every family behind the one contract: shapes, masks, incremental = full, learning."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from attnmt.config import load_config
from attnmt.models import build_model
from attnmt.models.attention import MultiHeadAttention, rnn_attention

# the outcome depends on floating-point kernels: also run under other kernel settings
# (`make test-portable`, tests/kernel_settings.py)
pytestmark = pytest.mark.numerics

FAMILIES = ["seq2seq-rnn", "seq2seq-lstm", "seq2seq-gru", "rnn-dot", "rnn-general",
            "rnn-concat", "rnn-additive", "transformer-tiny", "decoder-only-small"]
SMALL = {"emb_size": 32, "enc_hidden": 16, "dec_hidden": 32, "d_model": 32, "heads": 4,
         "ffn": 64}


def make(preset, vocab=30, **extra):
    cfg = load_config(raw={"model": {"preset": preset, **SMALL, **extra}})
    return build_model(cfg.model, vocab, vocab + 5, joint_vocab=False)


def inputs():
    src = torch.randint(4, 30, (3, 7))
    lengths = torch.tensor([7, 4, 2])
    for i, n in enumerate(lengths):
        src[i, n:] = 0
    return src, lengths, torch.randint(4, 35, (3, 5))


@pytest.mark.parametrize("kind", ["dot", "general", "concat", "additive"])
def test_rnn_attention_masks_and_normalises(kind):
    attn = rnn_attention(kind, 8, 8)
    memory, query = torch.randn(2, 6, 8), torch.randn(2, 3, 8)
    mask = torch.tensor([[True] * 6, [True] * 2 + [False] * 4])
    ctx, w = attn(query, attn.project_keys(memory), memory, mask)
    assert ctx.shape == (2, 3, 8) and w.shape == (2, 3, 6)
    assert torch.allclose(w.sum(-1), torch.ones(2, 3))
    assert (w[1, :, 2:] == 0).all()


def test_multihead_fast_and_explicit_paths_agree():
    mha = MultiHeadAttention(16, 4).eval()
    x, mem = torch.randn(2, 5, 16), torch.randn(2, 6, 16)
    mask = torch.tensor([[True] * 6, [True] * 3 + [False] * 3])
    k, v = mha.project_kv(mem)
    fast, none = mha(x, k, v, mask)
    slow, w = mha(x, k, v, mask, need_weights=True)
    assert none is None and w.shape == (2, 4, 5, 6)
    assert torch.allclose(fast, slow, atol=1e-5)
    assert (w[1, ..., 3:] == 0).all() and torch.allclose(w.sum(-1), torch.ones(2, 4, 5))
    kx, vx = mha.project_kv(x)
    causal_fast, _ = mha(x, kx, vx, causal=True)
    causal_slow, wc = mha(x, kx, vx, causal=True, need_weights=True)
    assert torch.allclose(causal_fast, causal_slow, atol=1e-5)
    assert (wc[0, 0, 0, 1:] == 0).all()


def test_multihead_causal_with_a_padding_mask_masks_both():
    """Both masks at once: no query sees a later position or a padded key."""
    mha = MultiHeadAttention(16, 4).eval()
    x = torch.randn(2, 5, 16)
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    k, v = mha.project_kv(x)
    fast, _ = mha(x, k, v, mask, causal=True)
    slow, w = mha(x, k, v, mask, causal=True, need_weights=True)
    assert torch.allclose(fast, slow, atol=1e-5)
    assert (w.triu(1) == 0).all() and (w[1, ..., 3:] == 0).all()
    # the first query sees only itself: its output is the value of position 0
    alone, _ = mha(x[:, :1], k[:, :, :1], v[:, :, :1])
    assert torch.allclose(fast[:, 0], alone[:, 0], atol=1e-5)


def _chunks(total: int) -> list[tuple[int, int]]:
    return [(0, 3), (3, total)]


def test_transformer_decoder_fed_in_chunks_equals_the_full_forward():
    """A prompt of 3 tokens, then 5 through the cache: the logits of the full forward."""
    model = make("transformer-tiny").eval()
    src, lengths, _ = inputs()
    tgt = torch.randint(4, 35, (3, 8))
    full, _ = model(src, lengths, tgt)
    state = model.init_state(model.encode(src, lengths))
    parts = []
    for a, b in _chunks(8):
        logits, state, _ = model._decode(tgt[:, a:b], state, need_weights=False)
        parts.append(logits)
    assert (torch.cat(parts, 1) - full).abs().max() < 1e-4


def test_language_model_fed_in_chunks_equals_the_full_forward():
    from attnmt.config import ModelConfig
    from attnmt.models.heads import DecoderLM

    cfg = ModelConfig(d_model=32, heads=4, ffn=64, dec_layers=2, dropout=0.0)
    lm = DecoderLM(cfg, 40).eval()
    tokens = torch.randint(4, 40, (2, 8))
    full = lm(tokens)
    state, parts = lm.init_state(), []
    for a, b in _chunks(8):
        logits, state = lm.decode(tokens[:, a:b], state)
        parts.append(logits)
    assert (torch.cat(parts, 1) - full).abs().max() < 1e-4


def test_cpu_bf16_autocast_keeps_the_attention_itself_in_float32():
    from attnmt.models.backend import sdpa as _sdpa

    q, k, v = (torch.randn(2, 4, 5, 8, requires_grad=True) for _ in range(3))
    with torch.autocast("cpu", torch.bfloat16):
        out = _sdpa(q.bfloat16(), k.bfloat16(), v.bfloat16(), None, 0.0, True)
    reference = torch.nn.functional.scaled_dot_product_attention(
        q.bfloat16().float(), k.bfloat16().float(), v.bfloat16().float(), is_causal=True)
    assert out.dtype == torch.float32 and torch.allclose(out, reference, atol=1e-6)
    out.sum().backward()
    assert q.grad is not None and q.grad.dtype == torch.float32


@pytest.mark.parametrize("preset", FAMILIES)
def test_contract_shapes_padding_and_incremental(preset):
    check_contract(make(preset).eval(), preset)


def check_contract(model, preset: str) -> None:
    """Shapes, padding, incremental decoding = teacher forcing (also tests/test_positions)."""
    src, lengths, tgt = inputs()
    logits, w = model(src, lengths, tgt, need_weights=True)
    assert logits.shape == (3, 5, 35)
    if model.has_attention:
        assert w.shape == (3, 5, 7)
        if preset.startswith("decoder-only"):   # the share that goes back to the source
            assert (w.sum(-1) > 0.05).all() and (w.sum(-1) < 1 + 1e-5).all()
        else:
            assert torch.allclose(w.sum(-1), torch.ones(3, 5), atol=1e-5)
        assert (w[1, :, 4:] == 0).all() and (w[2, :, 2:] == 0).all()
    else:
        assert w is None
    # the padded sentence gives what it gives alone
    alone, _ = model(src[2:, :2], lengths[2:], tgt[2:])
    assert torch.allclose(alone, logits[2:], atol=1e-5)
    # incremental decoding equals teacher forcing
    state = model.init_state(model.encode(src, lengths))
    steps = []
    for t in range(tgt.size(1)):
        step_logits, state, step_w = model.decode_step(tgt[:, t], state, need_weights=True)
        steps.append(step_logits)
        if model.has_attention:
            assert torch.allclose(step_w, w[:, t], atol=1e-5)
    assert torch.allclose(torch.stack(steps, 1), logits, atol=1e-5)


def test_transformer_cache_grows_one_position_per_step_in_place():
    """A step writes one position into the cache's buffer; the buffer is reallocated only
    when full (by doubling), not copied every step."""
    model = make("transformer-tiny").eval()
    src, lengths, tgt = inputs()
    state = model.init_state(model.encode(src, lengths))
    buffers = []
    for t in range(40):
        _, state, _ = model.decode_step(tgt[:, t % tgt.size(1)], state)
        cache = state.cache[0]
        assert cache.length == t + 1
        if not buffers or buffers[-1] != cache.k.data_ptr():
            buffers.append(cache.k.data_ptr())
    assert len(buffers) == 3            # capacity 16, then 34, then 70


def test_a_selected_cache_is_not_changed_by_later_steps_of_the_original():
    from attnmt.models import select_state

    model = make("transformer-tiny").eval()
    src, lengths, tgt = inputs()
    state = model.init_state(model.encode(src, lengths))
    _, state, _ = model.decode_step(tgt[:, 0], state)
    picked = select_state(state, torch.arange(src.size(0)))
    before = picked.cache[0].k[:, :, :1].clone()
    for t in range(1, 3):
        _, state, _ = model.decode_step(tgt[:, t], state)
    assert torch.equal(picked.cache[0].k[:, :, :1], before)
    assert picked.cache[0].length == 1


@pytest.mark.parametrize("preset", ["transformer-tiny", "decoder-only-small"])
def test_beam_reorder_equals_picking_every_row(preset):
    """reorder_state may skip copying source-only parts, but must hold what a full
    row selection would: beams reordered within sentences, one sentence dropped."""
    check_beam_reorder(make(preset).eval())


def check_beam_reorder(model) -> None:
    from attnmt.models import select_state

    k = 2
    src, lengths, tgt = inputs()
    state = model.init_state(model.encode(src, lengths))
    state = select_state(state, torch.arange(3).repeat_interleave(k))
    _, state, _ = model.decode_step(tgt[:, 0].repeat_interleave(k), state)
    _, state, _ = model.decode_step(tgt[:, 1].repeat_interleave(k).flip(0), state)
    keep = torch.tensor([0, 2])                             # sentence 1 has finished
    rows = torch.tensor([1, 1, 5, 4])                       # beams swapped / duplicated
    source_rows = (keep[:, None] * k + torch.arange(k)).view(-1)

    def flat(value):
        if isinstance(value, torch.Tensor):
            return [value]
        if isinstance(value, (list, tuple)):
            return [t for v in value for t in flat(v)]
        if hasattr(value, "length"):                       # a LayerCache: its used part
            n = value.length
            return [] if value.k is None else \
                [value.k[:, :, :n], value.v[:, :, :n]] + flat(
                    value.pos[:, :n] if value.pos is not None else None)
        return []

    def assert_same(fast, full):
        assert type(fast) is type(full)
        for key in (f.name for f in dataclasses.fields(full)):
            a, b = flat(getattr(fast, key)), flat(getattr(full, key))
            assert len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b)), key

    assert_same(model.reorder_state(state, rows, source_rows), select_state(state, rows))
    swap = torch.tensor([1, 0, 3, 2, 5, 4])                 # nobody left: source_rows None
    assert_same(model.reorder_state(state, swap, None), select_state(state, swap))


@pytest.mark.parametrize("preset", FAMILIES)
def test_gradient_reaches_every_parameter(preset):
    model = make(preset).train()
    src, lengths, tgt = inputs()
    logits, _ = model(src, lengths, tgt)
    logits.sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []


def test_dot_attention_size_mismatch_is_a_config_error():
    from attnmt.errors import ConfigError

    with pytest.raises(ConfigError, match="dot needs dec_hidden equal to the encoder output"):
        make("rnn-dot", dec_hidden=48)


def copy_batches(n_batches, batch=64, length=6, vocab=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    for _ in range(n_batches):
        lengths = torch.randint(3, length + 1, (batch,), generator=g)
        src = torch.randint(4, vocab, (batch, length), generator=g)
        src[torch.arange(length)[None] >= lengths[:, None]] = 0
        src[torch.arange(batch), lengths - 1] = 3                   # </s>
        tgt_out = src.clone()
        tgt_in = torch.cat([torch.full((batch, 1), 2), src[:, :-1]], 1)
        tgt_in[tgt_in == 3] = 0
        yield src, lengths, tgt_in, tgt_out


def copy_accuracy(preset: str, steps: int, lr: float, seed: int = 0) -> float:
    """Token accuracy of greedy decoding on 200 held-out copy examples after ``steps``
    Adam updates from initialisation ``seed`` (also the training data's order)."""
    from attnmt.inference.search import sequential

    torch.manual_seed(seed)
    model = make(preset, vocab=12, dropout=0.0, **({"enc_hidden": 128, "dec_hidden": 256}
                                                    if preset.startswith("seq2seq") else
                                                    {"enc_hidden": 32, "dec_hidden": 64}))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    # linear decay to zero: the last updates settle the weights, so the end point varies
    # little from one trajectory (CPU, seed) to another
    decay = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1 - step / steps)
    for src, lengths, tgt_in, tgt_out in copy_batches(steps, seed=seed):
        logits, _ = model(src, lengths, tgt_in)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), tgt_out.reshape(-1),
                               ignore_index=0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        decay.step()
    model.eval()
    src, lengths, _, tgt_out = next(copy_batches(1, batch=200, seed=99))
    hyps = sequential(model, src, lengths, lengths + 2)
    correct = total = 0
    for h, ref, n in zip(hyps, tgt_out.tolist(), lengths.tolist(), strict=True):
        want = ref[: n - 1]
        correct += sum(a == b for a, b in zip(h.tokens, want)) - abs(len(h.tokens) - len(want))
        total += len(want)
    return correct / total


# (preset, updates, lr, threshold). The accuracy after training depends on the CPU's kernels
# (another summation order is another trajectory). Measured over 4 seeds x 3 kernel settings
# (benchmarks/test_margins.py, benchmarks/results/test_margins.json): seq2seq-lstm
# 1..1 (0.9972..1 before its cell bridge lost the tanh), rnn-dot 1..1, transformer-tiny 1..1;
# at a constant rate (before the linear decay) the same runs spread over 0.955..1 and an
# Intel Xeon gave 0.986. Each threshold sits below the lowest by several times the measured
# spread.
# decoder-only-small (one CPU, 3 seeds, default kernels): 0.9915..1, so its threshold
# sits lower.
COPY_CASES = [("seq2seq-lstm", 500, 3e-3, 0.98), ("rnn-dot", 300, 3e-3, 0.98),
              ("transformer-tiny", 400, 3e-3, 0.98), ("decoder-only-small", 400, 3e-3, 0.96)]


@pytest.mark.parametrize("preset,steps,lr,threshold", COPY_CASES)
def test_each_family_learns_to_copy(preset, steps, lr, threshold):
    assert copy_accuracy(preset, steps, lr) >= threshold


@pytest.mark.parametrize("extra", [{"norm": "post"}, {"positions": "learned"},
                                   {"attention_dropout": 0.1, "activation_dropout": 0.1}])
def test_transformer_variants_keep_the_contract(extra):
    model = make("transformer-tiny", **extra).eval()
    src, lengths, tgt = inputs()
    logits, _ = model(src, lengths, tgt)
    state = model.init_state(model.encode(src, lengths))
    steps = []
    for t in range(tgt.size(1)):
        step_logits, state, _ = model.decode_step(tgt[:, t], state)
        steps.append(step_logits)
    assert torch.allclose(torch.stack(steps, 1), logits, atol=1e-5)


def test_packed_inference_model_computes_what_the_model_computes():
    """PackedLinear (prepacked oneDNN weights), the fused self-attention projections and
    the one-query attention path change how decoding is computed, not what: logits agree
    with the plain model's."""
    import copy

    from attnmt.models.backend import PackedLinear, can_pack, pack_linear_layers

    model = make("transformer-tiny").eval()
    if not can_pack(model):
        pytest.skip("this PyTorch build has no oneDNN")
    packed = pack_linear_layers(copy.deepcopy(model))
    assert any(isinstance(m, PackedLinear) for m in packed.modules())
    assert packed.num_parameters() == model.num_parameters()
    # self-attention's q, k, v are one product, kept out of the weights that are saved
    assert all("qkv" in layer.self_attn.fused for layer in [*packed.encoder, *packed.decoder])
    assert not any(layer.cross_attn.fused for layer in packed.decoder)
    assert packed.state_dict().keys() == model.state_dict().keys()
    src, lengths, tgt = inputs()
    with torch.no_grad():
        assert torch.allclose(packed(src, lengths, tgt)[0], model(src, lengths, tgt)[0],
                              atol=1e-4)
        a = model.init_state(model.encode(src, lengths))
        b = packed.init_state(packed.encode(src, lengths))
        for t in range(tgt.size(1)):                        # one query per step
            la, a, _ = model.decode_step(tgt[:, t], a)
            lb, b, _ = packed.decode_step(tgt[:, t], b)
            assert torch.allclose(la, lb, atol=1e-4)


def test_one_query_attention_equals_sdpa():
    import torch.nn.functional as F

    from attnmt.models.backend import sdpa

    q, k, v = torch.randn(3, 2, 1, 8), torch.randn(3, 2, 5, 8), torch.randn(3, 2, 5, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.bool)
    mask = mask[:, None, None, :]
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.allclose(sdpa(q, k, v, mask, 0.0), expected, atol=1e-6)
    assert torch.allclose(sdpa(q, k, v, None, 0.0),
                          F.scaled_dot_product_attention(q, k, v), atol=1e-6)


def test_lstm_forget_gates_start_at_the_configured_bias():
    cfg = load_config(raw={"model": {"preset": "seq2seq-lstm", "forget_bias": 1.0}})
    model = build_model(cfg.model, 30, 30)
    for lstm in (model.encoder.rnn, model.decoder):
        h = lstm.hidden_size
        for name, bias in lstm.named_parameters():
            if name.startswith("bias_"):
                expected = 1.0 if name.startswith("bias_ih") else 0.0
                assert torch.all(bias[h:2 * h] == expected), name
                assert bias[:h].abs().sum() > 0            # other gates keep their init
    default = build_model(load_config(raw={"model": {"preset": "seq2seq-lstm",
                                                     "forget_bias": 0.0}}).model, 30, 30)
    h = default.decoder.hidden_size
    assert torch.all(default.decoder.bias_ih_l0[h:2 * h] == 0)


def test_reading_order_reverses_each_source_and_keeps_its_end_mark_last():
    from attnmt.models.rnn import reading_order

    order = reading_order(torch.tensor([5, 3, 1]), 6)
    assert order.tolist() == [[3, 2, 1, 0, 4, 5], [1, 0, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5]]


@pytest.mark.parametrize("preset", ["seq2seq-lstm", "rnn-dot"])
def test_a_reversed_source_keeps_the_contract_and_reads_backwards(preset):
    model = make(preset, reverse_source=True, bidirectional=False, enc_hidden=32).eval()
    check_contract(model, preset)
    plain = make(preset, bidirectional=False, enc_hidden=32).eval()
    plain.load_state_dict(model.state_dict())
    src, lengths, _ = inputs()
    backwards = src.clone()
    for i, n in enumerate(lengths.tolist()):
        backwards[i, : n - 1] = src[i, : n - 1].flip(0)
    ours, theirs = model.encode(src, lengths), plain.encode(backwards, lengths)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(ours.final, theirs.final))
    if ours.memory is not None:                 # states stay at their own tokens
        for i, n in enumerate(lengths.tolist()):
            assert torch.allclose(ours.memory[i, : n - 1], theirs.memory[i, : n - 1].flip(0),
                                  atol=1e-6)


def test_reverse_source_is_refused_for_a_transformer():
    from attnmt.errors import ConfigError

    with pytest.raises(ConfigError, match="reverse_source applies to RNN encoders"):
        make("transformer-tiny", reverse_source=True)
