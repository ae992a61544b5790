"""Attention beside attributions: is attention an explanation of the output?

For every output word of a translation (the model's greedy one, or a given target under
teacher forcing) four methods say how much each source token mattered to it:

- ``attention``: the decoder's attention weight on the token (the Transformer: the mean
  over layers and heads), what the heatmaps show;
- ``input_x_gradient`` (Shrikumar et al. 2017) and ``integrated_gradients`` (Sundararajan
  et al. 2017, from an all-zero embedding), computed by Captum on the source token
  embeddings for the output word's log-probability; a token's score is the sum over its
  embedding dimensions (integrated gradients' scores add up to the log-probability's
  change from the baseline, up to ``ig_delta``);
- ``masking``: the exact change in the output word's log-probability when the token is
  taken out of the decoder's attention (the explainer's intervention), one forced pass per
  token, all in one batch.

Their agreement is Spearman's rank correlation of the scores' magnitudes over the source
tokens, per output word (Jain & Wallace 2019 compare attention with gradients and with
leaving a word out the same way), and how often the two methods' top token is the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import torch

from ..errors import UserError
from ..inference.alignment import check_fits
from ..symbols import BOS, EOS

METHODS = ("attention", "input_x_gradient", "integrated_gradients", "masking")


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman's rank correlation (ties share their mean rank); None when either side is
    constant. Written here because it is four lines and SciPy would be a large dependency
    for it."""
    ra, rb = _ranks(a), _ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def _ranks(x: Sequence[float]) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    ranks = np.empty(len(x))
    ranks[x.argsort(kind="stable")] = np.arange(len(x))
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    return (np.bincount(inverse, weights=ranks) / counts)[inverse]


def _check_model(translator) -> None:
    if getattr(translator, "engine", None) != "attnmt":
        raise UserError("attributions need the attnmt engine (load the run, not an export)")
    if any("quantized" in type(m).__module__ for m in translator.model.modules()):
        raise UserError("attributions need gradients, which an int8 model has not; load the "
                        "run in fp32 or bf16")


class _Forced:
    """One sentence pair under teacher forcing: the log-probability of each target token
    as a function of the source token embeddings (what Captum differentiates)."""

    def __init__(self, translator, src_ids: list[int], tgt_ids: list[int]):
        device = translator.device
        self.model = translator.model
        self.src, self.lengths = translator.pad_batch([src_ids])
        self.tgt_in = torch.tensor([[BOS, *tgt_ids[:-1]]], device=device)
        self.tgt_out = torch.tensor([tgt_ids], device=device)

    def embedded(self) -> torch.Tensor:
        with torch.no_grad():
            return self.model.embed_source(self.src).float()

    def __call__(self, embedded: torch.Tensor, positions: torch.Tensor | None = None
                 ) -> torch.Tensor:
        """(B, S, E) -> (B, T) log-probabilities of the target tokens, or (B,) those at
        each row's target position in ``positions`` (only that position's logits are
        computed)."""
        b, dtype = embedded.size(0), next(self.model.parameters()).dtype
        logits, _ = self.model(self.src.expand(b, -1), self.lengths.expand(b),
                               self.tgt_in.expand(b, -1), embedded=embedded.to(dtype),
                               positions=positions)
        gold = self.tgt_out.expand(b, -1) if positions is None else \
            self.tgt_out[0, positions][:, None]
        logprobs = torch.log_softmax(logits.float(), -1).gather(2, gold[..., None])[..., 0]
        return logprobs if positions is None else logprobs[:, 0]

    @torch.no_grad()
    def masking(self) -> np.ndarray:
        """(T, S): log p(target token) with source token s out of the attention, minus
        log p with the whole source; row 0 of the batch masks nothing."""
        n = self.src.size(1)
        enc = self.model.encode(self.src.expand(n + 1, -1), self.lengths.expand(n + 1))
        enc.mask = enc.mask.clone()
        enc.mask[torch.arange(1, n + 1), torch.arange(n)] = False
        state = self.model.init_state(enc)
        out = []
        for t in range(self.tgt_in.size(1)):
            logits, state, _ = self.model.decode_step(self.tgt_in[:, t].expand(n + 1), state)
            out.append(torch.log_softmax(logits.float(), -1)[:, self.tgt_out[0, t]])
        logp = torch.stack(out, 1)                                        # (S + 1, T)
        return (logp[1:] - logp[:1]).T.cpu().numpy()


def _gradients(forced: _Forced, ig_steps: int) -> tuple[dict, float]:
    """Input x gradient and integrated gradients, (T, S) each, for every target token at
    once: the source is copied once per target token and each copy is attributed for its
    own token; and integrated gradients' largest convergence delta."""
    from captum.attr import InputXGradient, IntegratedGradients

    base = forced.embedded()
    n_tgt = forced.tgt_out.size(1)
    inputs = base.expand(n_tgt, -1, -1).contiguous().requires_grad_()
    positions = torch.arange(n_tgt, device=base.device)          # copy t explains token t
    with torch.enable_grad():
        ixg = InputXGradient(forced).attribute(inputs, additional_forward_args=positions)
        ig, delta = IntegratedGradients(forced).attribute(
            inputs, baselines=torch.zeros_like(inputs), additional_forward_args=positions,
            n_steps=ig_steps, return_convergence_delta=True)
    scores = {"input_x_gradient": ixg.sum(-1).detach().cpu().numpy(),
              "integrated_gradients": ig.sum(-1).detach().cpu().numpy()}
    return scores, float(delta.abs().max())


def attribute(translator, text: str, target: str | None = None, *,
              target_ids: Sequence[int] | None = None, ig_steps: int = 8) -> dict:
    """The four methods' scores (T, S) for ``text`` and its greedy translation, or
    ``target`` (text) or ``target_ids`` (token ids without ``</s>``, as the explainer
    decoded them), with their agreement per output token; arrays are numpy. Models
    without attention get the two gradient methods only."""
    _check_model(translator)
    if not text.strip() or (target is not None and not target.strip()):
        raise UserError("the text is empty; give a sentence to attribute")
    if target_ids is None:
        target_ids = (translator.translate([text], beam=1)[0][0].tokens if target is None
                      else translator.vocabs.tgt.encode(target))
    check_fits(translator, text, target_ids=target_ids)
    src_ids = translator.encode_source(text)
    translator.model.eval()
    forced = _Forced(translator, src_ids, [*target_ids, EOS])
    scores, delta = _gradients(forced, ig_steps)
    if translator.has_attention:
        attention = translator.attention_of(src_ids, list(target_ids))["weights"]
        scores = {"attention": np.asarray(attention), **scores, "masking": forced.masking()}
    vocabs = translator.vocabs
    return {"translation": vocabs.tgt.decode(list(target_ids)),
            "src_tokens": [vocabs.src.piece(i) for i in src_ids],
            "tgt_tokens": [vocabs.tgt.piece(i) for i in target_ids] + ["</s>"],
            "methods": scores, "agreement": agreement(scores), "ig_steps": ig_steps,
            "ig_delta": delta}


def agreement(scores: dict[str, np.ndarray]) -> dict:
    """For each pair of methods: Spearman's rank correlation of the magnitudes per output
    token (None where one side is constant), its mean, and the share of output tokens
    whose top source token is the same for both."""
    out = {}
    for a, b in combinations([m for m in METHODS if m in scores], 2):
        x, y = np.abs(scores[a]), np.abs(scores[b])
        rho = [spearman(r, s) for r, s in zip(x, y, strict=True)]
        kept = [r for r in rho if r is not None]
        out[f"{a}~{b}"] = {"spearman": rho,
                           "mean": float(np.mean(kept)) if kept else None,
                           "top1": float(np.mean(x.argmax(1) == y.argmax(1)))}
    return out


def corpus_agreement(translator, sources: Sequence[str], targets: Sequence[str] | None = None,
                     *, ig_steps: int = 8) -> dict:
    """Agreement pooled over every output token of a corpus (:func:`pool`); empty lines
    are skipped."""
    found = [attribute(translator, text, None if targets is None else targets[k],
                       ig_steps=ig_steps)
             for k, text in enumerate(sources)
             if text.strip() and (targets is None or targets[k].strip())]
    return pool(found)


def pool(found: Sequence[dict]) -> dict:
    """Per pair of methods, over the output tokens of several :func:`attribute` results:
    the mean Spearman correlation, the share with the same top source token, and the
    number of output tokens."""
    pooled: dict[str, dict[str, list]] = {}
    for one in found:
        for pair, a in one["agreement"].items():
            into = pooled.setdefault(pair, {"spearman": [], "top1": []})
            into["spearman"] += [r for r in a["spearman"] if r is not None]
            into["top1"] += [a["top1"]] * len(a["spearman"])
    return {pair: {"spearman": round(float(np.mean(v["spearman"])), 4) if v["spearman"]
                   else None, "top1": round(float(np.mean(v["top1"])), 4),
                   "tokens": len(v["top1"])} for pair, v in pooled.items()}
