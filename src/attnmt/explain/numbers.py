"""The explainer's numbers: attention's five steps at every output word, from the model.

:func:`explain` decodes a sentence greedily through the model contract's
``explain_step`` (the same modules, the same arithmetic as ``decode_step``) and keeps
every number of every step:

- RNN attention (``dot``, ``general``, ``concat``, ``additive``): 1. the encoder states
  and the keys the scorer compares with, 2. the query and the raw scores (with the
  scorer's intermediate vectors), 3. the softmax weights, 4. the context vector,
  5. the decoder state, the combined state h̃ and the next-word probabilities.
- The fixed-context seq2seq: the one context vector every step receives.
- The Transformer: per layer and head, the query, keys, scaled scores QKᵀ/√d_k, the
  mask, the weights, each head's weighted sum of V, the heads joined and projected —
  for the decoder's self-attention and cross-attention at every step, and the encoder's
  self-attention once.

Interventions: ``masked`` source positions are taken out of the decoder's attention (the
encoder still reads them), ``zero_heads`` silences cross-attention heads; the sentence
is decoded again under them. :func:`to_json` turns the result into plain lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from ..inference.search import max_lengths
from ..inference.translator import Translator
from ..rundir import RunDir
from ..symbols import BOS, EOS


class ExplainError(UserError):
    """Bad input to the explainer; ``field`` names the request field at fault and
    ``status`` is the API's answer (422; 404 for what the served run does not have)."""

    def __init__(self, message: str, field: str = "text", status: int = 422):
        super().__init__(message)
        self.field, self.status = field, status


FORMULAS = {
    "dot": "score(hₜ, h̄ₛ) = hₜᵀ h̄ₛ",
    "general": "score(hₜ, h̄ₛ) = hₜᵀ W_a h̄ₛ",
    "concat": "score(hₜ, h̄ₛ) = v_aᵀ tanh(W_a [hₜ; h̄ₛ])",
    "additive": "score(sₜ₋₁, h̄ₛ) = v_aᵀ tanh(W_a sₜ₋₁ + U_a h̄ₛ)",
    "multi-head": "headᵢ = softmax(QᵢKᵢᵀ / √d_k) Vᵢ;  output = [head₁; …; head_h] W_O",
    None: "no attention: every step receives the same context vector c, the encoder's "
          "final state",
}
FAMILIES = {None: "fixed-context", "multi-head": "transformer"}


def _np(value) -> np.ndarray:
    return value.detach().float().cpu().numpy().copy()     # never a view of a cache


def _rnn_step(numbers: dict) -> dict:
    """One step of an RNN model's trace, batch and query-length dimensions removed."""
    skip = {"scorer", "keys", "values"}
    return {k: _np(v)[0, 0] if v.dim() > 2 else _np(v)[0]
            for k, v in numbers.items() if k not in skip and torch.is_tensor(v)}


def _layer_step(trace: dict) -> dict:
    """One attention of one Transformer layer at one step (batch and query dims removed);
    keys and values are kept aside (:func:`_transformer_kv`)."""
    out = {"query": _np(trace["query"])[0, :, -1], "scores": _np(trace["scores"])[0, :, -1],
           "weights": _np(trace["weights"])[0, :, -1], "heads": _np(trace["heads"])[0, :, -1],
           "output": _np(trace["output"])[0, -1]}
    allowed = trace["allowed"]
    n = out["scores"].shape[-1]
    out["allowed"] = (np.ones(n, bool) if allowed is None
                      else allowed.cpu().numpy().reshape(-1, n)[-1])
    return out


def _encoder_layer(trace: dict) -> dict:
    keep = ("query", "keys", "values", "scores", "weights", "heads", "output")
    out = {k: _np(trace[k])[0] for k in keep}
    out["allowed"] = trace["allowed"].cpu().numpy().reshape(-1)[-out["scores"].shape[-1]:]
    return out


def _check_interventions(model, n_src: int, masked: Sequence[int],
                         zero_heads: Sequence[tuple[int, int]]) -> None:
    if masked and not model.has_attention:
        raise ExplainError("this model has no attention to mask: its decoder sees the source "
                           "only through one fixed context vector", "masked")
    for s in masked:
        if not 0 <= s < n_src:
            raise ExplainError(f"mask position {s} is outside the source (positions "
                               f"0..{n_src - 1}, </s> included)", "masked")
    if len(set(masked)) >= n_src:
        raise ExplainError("every source position is masked; leave at least one to attend to",
                           "masked")
    if zero_heads and model.attention_shape is None:
        raise ExplainError("this model has one attention, not heads; zero heads of a "
                           "Transformer or mask source positions instead", "zero_heads")


def _start(translator: Translator, src_ids: list[int], masked: Sequence[int],
           zero_heads: Sequence[tuple[int, int]]):
    """Encode, apply the interventions and return (model state, encoder numbers)."""
    model = translator.model
    src, lengths = translator.pad_batch([src_ids])
    enc = model.encode(src, lengths)
    if masked:
        enc.mask = enc.mask.clone()
        enc.mask[0, list(masked)] = False
    state = model.init_state(enc)
    if zero_heads:
        try:
            state = model.zero_heads(state, [tuple(x) for x in zero_heads])
        except ValueError as e:
            raise ExplainError(str(e), "zero_heads") from None
    layers = model.explain_encoder(src, lengths)
    encoder = [_encoder_layer(t) for t in layers] if layers is not None else None
    limit = int(max_lengths(lengths, translator.cfg.decode.max_len_ratio, translator.tgt_cap)[0])
    return state, encoder, limit


def explain(translator: Translator, text: str, *, top_k: int = 5, masked: Sequence[int] = (),
            zero_heads: Sequence[tuple[int, int]] = (), attribution: bool = False,
            ig_steps: int = 8) -> dict:
    """The numbers of every output word of the greedy translation of ``text`` (see the
    module docstring); arrays are numpy. ``masked`` are source positions (``</s>``
    included), ``zero_heads`` (layer, head) pairs, both counted from 0. ``attribution``
    adds ``attribution``: attention beside gradient attributions and masking for the same
    translation, of the model without interventions (:mod:`attnmt.explain.attribution`;
    ``ig_steps`` for integrated gradients)."""
    out = _explain(translator, text, top_k=top_k, masked=masked, zero_heads=zero_heads)
    if attribution:
        from .attribution import attribute

        out["attribution"] = attribute(translator, text, target_ids=out["tgt_ids"],
                                       ig_steps=ig_steps)
    return out


@torch.inference_mode()
def _explain(translator: Translator, text: str, *, top_k: int, masked: Sequence[int],
             zero_heads: Sequence[tuple[int, int]]) -> dict:
    if getattr(translator, "engine", None) != "attnmt":
        raise ExplainError("the explainer needs the attnmt engine (load the run, not an "
                           "export)", "engine")
    if not text.strip():
        raise ExplainError("the text is empty; give a sentence to explain")
    model, vocabs = translator.model, translator.vocabs
    model.eval()
    src_ids = translator.encode_source(text)
    _check_interventions(model, len(src_ids), masked, zero_heads)
    state, encoder, limit = _start(translator, src_ids, masked, zero_heads)
    prev, steps, tokens, kv = BOS, [], [], None
    for t in range(limit):
        logits, state, numbers = model.explain_step(torch.tensor([prev],
                                                                 device=translator.device), state)
        if numbers is None:
            raise UserError(f"{type(model).__name__} does not explain its steps; `attnmt "
                            "plot attention` and /attention show where it looks")
        probs = logits[0].float().softmax(-1)
        tok = EOS if t + 1 >= limit else int(probs.argmax())
        top = probs.topk(min(top_k, probs.numel()))
        step = {"top": [(vocabs.tgt.piece(int(i)), float(p))
                        for p, i in zip(top.values, top.indices)],
                "chosen": vocabs.tgt.piece(tok), "probability": float(probs[tok])}
        kv = _collect(numbers, step, kv)
        steps.append(step)
        tokens.append(tok)
        if tok == EOS:
            break
        prev = tok
    scorer = numbers["scorer"]
    out = {"family": FAMILIES.get(scorer, "attention"), "scorer": scorer,
           "formula": FORMULAS[scorer], "translation": vocabs.tgt.decode(tokens[:-1]),
           "src_tokens": [vocabs.src.piece(i) for i in src_ids],
           "tgt_tokens": [vocabs.tgt.piece(i) for i in tokens[:-1]] + ["</s>"],
           "tgt_ids": tokens[:-1], "masked": sorted(set(masked)),
           "zeroed_heads": [list(x) for x in zero_heads],
           "steps": steps, **kv}
    if encoder is not None:
        out["encoder_layers"] = encoder
    out["alignment"] = _alignment(out)
    return out


def _alignment(shown: dict) -> np.ndarray | None:
    """(T, S) attention over the source at every output word: the weights of an RNN, the
    mean of every layer's and head's cross-attention for a Transformer; None without."""
    if shown["family"] == "attention":
        return np.stack([s["weights"] for s in shown["steps"]])
    if shown["family"] == "transformer":
        return np.stack([np.mean([layer["cross"]["weights"] for layer in s["layers"]], (0, 1))
                         for s in shown["steps"]])
    return None


def _collect(numbers: dict, step: dict, kv: dict | None) -> dict:
    """Add one step's numbers to ``step``; return what is per sentence (encoder states,
    keys, values), taken from the latest step."""
    if numbers["scorer"] is None:                          # the fixed-context seq2seq
        step["context"] = _np(numbers["context"])[0, 0]
        return {}
    if "layers" not in numbers:                            # one RNN attention
        step.update(_rnn_step(numbers))
        return kv or {"states": _np(numbers["values"])[0], "keys": _np(numbers["keys"])[0]}
    step["layers"] = [{name: _layer_step(trace[name]) for name in ("self", "cross")}
                      for trace in numbers["layers"]]
    return {"layers_kv": [{name: {"keys": _np(trace[name]["keys"])[0],
                                  "values": _np(trace[name]["values"])[0]}
                           for name in ("self", "cross")} for trace in numbers["layers"]]}


def to_json(value, digits: int = 4):
    """Numpy arrays to nested lists of numbers with ``digits`` significant digits (short
    JSON); −∞ and NaN (a masked score) become None."""
    if isinstance(value, dict):
        return {k: to_json(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v, digits) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist() if value.dtype == bool else _rounded_list(value, digits)
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _rounded_list(array: np.ndarray, digits: int) -> list:
    v = array.astype(np.float64)
    finite = np.isfinite(v)
    exponent = np.zeros_like(v)
    nonzero = finite & (v != 0)
    exponent[nonzero] = np.floor(np.log10(np.abs(v[nonzero])))
    shift = digits - 1 - exponent                       # decimals to keep
    up = np.where(shift >= 0, 10.0 ** np.clip(shift, 0, None), 1.0)
    down = np.where(shift < 0, 10.0 ** np.clip(-shift, 0, None), 1.0)
    with np.errstate(invalid="ignore"):
        rounded = np.round(v * up / down) * down / up   # integer / 10^k: a short repr
    if finite.all():
        return rounded.tolist()
    return _none_for_nan(np.where(finite, rounded, np.nan).tolist())


def _none_for_nan(value):
    if isinstance(value, list):
        return [_none_for_nan(v) for v in value]
    return None if value != value else value


def explain_runs(translators: dict[str, Translator], text: str, top_k: int = 5) -> dict:
    """:func:`explain` under every run of a study: the same sentence side by side."""
    return {"text": text, "runs": {name: explain(tr, text, top_k=top_k)
                                   for name, tr in translators.items()}}


def timeline(run_dir: str | Path, text: str, device: str = "cpu") -> dict:
    """The attention of ``text``'s greedy translation under every checkpoint the run kept
    (``train.keep_every``), oldest first: the alignment forming as the model learns. Each
    frame has the ``step``, its ``translation``, ``tgt_tokens``, the (T, S) ``weights``
    (mean of layers and heads for a Transformer) and the validation record of that step."""
    if not text.strip():
        raise ExplainError("the text is empty; give a sentence to explain")
    run = RunDir(run_dir)
    steps = run.kept_steps()
    if not steps:
        raise ExplainError(f"{run_dir} kept no checkpoints along the way; train it with "
                           "train.keep_every: N (e.g. 200) to see the alignment form", "run",
                           status=404)
    valid = {r["step"]: r for r in run.records("valid")}
    frames, shown = [], {}
    for step in steps:
        shown = Translator.from_run(run_dir, str(step), device=device).attention(text, beam=1)
        frames.append({"step": step, "translation": shown["translation"],
                       "tgt_tokens": shown["tgt_tokens"],
                       "weights": np.asarray(shown["weights"], dtype=np.float32),
                       "valid": {k: v for k, v in valid.get(step, {}).items()
                                 if k not in ("type", "step", "elapsed")}})
    return {"text": text, "src_tokens": shown["src_tokens"], "frames": frames}


