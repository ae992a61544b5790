"""Continue a prompt with a decoder-only language model (``models.CausalLM``): greedy or
sampled, with the key/value cache or without it (the reference the cache is tested
against). Seq2seq models are decoded by :mod:`.search`."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..symbols import EOS
from .search import _check, _filter_top


@torch.inference_mode()
def generate(model, prompt: list[int], max_new_tokens: int, temperature: float = 1.0,
             top_k: int = 0, top_p: float = 1.0, generator: torch.Generator | None = None,
             use_cache: bool = True, cancelled: Callable[[], bool] | None = None
             ) -> list[int]:
    """Continue ``prompt`` (ids starting with ``<s>``) with a decoder-only LM; ``cancelled``
    as in :func:`sequential`.

    With the cache the prompt is encoded once and each new token costs one
    position per layer; ``use_cache=False`` re-runs the whole prefix every step
    (the reference the cache is tested against). ``temperature == 0`` is greedy.
    """
    device = next(model.parameters()).device
    tokens = list(prompt)
    limit = min(max_new_tokens, model.max_positions - len(tokens))
    state = model.init_state()
    feed = torch.tensor([tokens], device=device)
    for _ in range(max(0, limit)):
        _check(cancelled)
        if use_cache:
            logits, state = model.decode(feed, state)
        else:
            logits = model(torch.tensor([tokens], device=device))
        logits = logits[:, -1].float()
        if temperature > 0:
            filtered = _filter_top(torch.log_softmax(logits, -1) / temperature, top_k, top_p)
            tok = int(torch.multinomial(filtered.softmax(-1), 1, generator=generator))
        else:
            tok = int(logits.argmax(-1))
        if tok == EOS:
            break
        tokens.append(tok)
        feed = torch.tensor([[tok]], device=device)
    return tokens[len(prompt):]
