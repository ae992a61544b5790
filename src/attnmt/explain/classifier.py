"""What a classifier looks at: the attention from the pooled position beside attributions.

An encoder-only classifier (BERT-style) decides from one vector, the state at the
``[CLS]`` position (``<s>``) or the mean of all states (``model.pooling``). For one
sentence :func:`explain_classifier` returns

- the label probabilities;
- ``attention`` (layers, heads, tokens): the self-attention weights from the pooled
  position to every token, in every layer and head — row ``[CLS]`` of each layer's
  attention, or the mean of all rows for mean pooling;
- ``methods``: how much each token mattered to the predicted label's log-probability,
  by four methods over the tokens (as :mod:`.attribution` does for translation):
  ``attention`` (the last layer's mean over heads, what the model pools from),
  ``input_x_gradient`` and ``integrated_gradients`` (Captum, on the token embeddings,
  from an all-zero baseline) and ``masking`` (the exact change when the token is taken
  out of every layer's attention, all tokens in one batch);
- their ``agreement`` (Spearman of magnitudes, same top token).
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import UserError
from ..models.base import padding_mask
from .attribution import METHODS, agreement


def pooled_attention(model, src: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(layers, heads, S): each layer's attention from the pooled position of one sentence."""
    layers = model.self_attention(src, lengths)[0]                      # (L, H, S, S)
    return layers[:, :, 0] if model.pooling == "cls" else layers.mean(2)


class _Label:
    """The log-probability of one label as a function of the token embeddings."""

    def __init__(self, model, src: torch.Tensor, lengths: torch.Tensor, label: int):
        self.model, self.src, self.lengths, self.label = model, src, lengths, label

    def __call__(self, embedded: torch.Tensor) -> torch.Tensor:
        b = embedded.size(0)
        logits = self.model(self.src.expand(b, -1), self.lengths.expand(b), embedded=embedded)
        return torch.log_softmax(logits.float(), -1)[:, self.label]

    @torch.no_grad()
    def masking(self) -> np.ndarray:
        """(S,): log p(label) with each token out of every attention, minus log p with all
        of them (row 0 of the batch masks nothing)."""
        n = self.src.size(1)
        keys = padding_mask(self.src, self.lengths).expand(n + 1, -1).clone()
        keys[torch.arange(1, n + 1), torch.arange(n)] = False
        logits = self.model(self.src.expand(n + 1, -1), self.lengths.expand(n + 1), keys=keys)
        logp = torch.log_softmax(logits.float(), -1)[:, self.label]
        return (logp[1:] - logp[0]).cpu().numpy()


def _gradients(fn: _Label, base: torch.Tensor, ig_steps: int) -> tuple[dict, float]:
    from captum.attr import InputXGradient, IntegratedGradients

    inputs = base.clone().requires_grad_()
    with torch.enable_grad():
        ixg = InputXGradient(fn).attribute(inputs)
        ig, delta = IntegratedGradients(fn).attribute(
            inputs, baselines=torch.zeros_like(inputs), n_steps=ig_steps,
            return_convergence_delta=True)
    return ({"input_x_gradient": ixg.sum(-1)[0].detach().cpu().numpy(),
             "integrated_gradients": ig.sum(-1)[0].detach().cpu().numpy()},
            float(delta.abs().max()))


def explain_classifier(classifier, text: str, *, attribution: bool = True,
                       ig_steps: int = 8) -> dict:
    """The numbers of the module docstring for ``text``; arrays are numpy."""
    if not text.strip():
        raise UserError("the text is empty; give a sentence to explain")
    model = classifier.model.eval()
    data = classifier._encode([text])
    b = data.batch(np.array([0]))
    src, lengths = b.src, b.src_lengths
    with torch.no_grad():
        probs = model(src, lengths).float().softmax(-1)[0]
    label = int(probs.argmax())
    attention = pooled_attention(model, src, lengths).float().cpu().numpy()
    out = {"text": text, "tokens": classifier.tokens_of(data),
           "labels": list(classifier.labels), "probabilities": probs.cpu().numpy(),
           "label": classifier.labels[label], "pooling": model.pooling,
           "attention": attention}
    if attribution:
        fn = _Label(model, src, lengths, label)
        with torch.no_grad():
            base = model.embed_tokens(src).float()
        scores, delta = _gradients(fn, base, ig_steps)
        methods = {"attention": attention[-1].mean(0), **scores, "masking": fn.masking()}
        pairs = agreement({m: v[None] for m, v in methods.items()})      # one "output" row
        out.update(methods={m: methods[m] for m in METHODS}, ig_steps=ig_steps, ig_delta=delta,
                   agreement={pair: {"spearman": a["spearman"][0], "top1": a["top1"]}
                              for pair, a in pairs.items()})
    return out


def describe_classifier(data: dict) -> list[str]:
    """Lines for the terminal: the label, then one row per token with the attention from
    the pooled position (mean of each layer's heads) and, when computed, the attributions."""
    probs = ", ".join(f"{name} {p:.3f}" for name, p in zip(data["labels"],
                                                            data["probabilities"]))
    source = "[CLS] position" if data["pooling"] == "cls" else "mean of all positions"
    lines = [f"label: {data['label']}   ({probs})",
             f"attention from the {source} per layer (mean of heads)"
             + ("; attributions for the label's log-probability" if "methods" in data else "")]
    layers = np.asarray(data["attention"]).mean(1)                   # (L, S)
    names = [m for m in METHODS if m != "attention" and m in data.get("methods", {})]
    lines.append(f"{'token':>14}" + "".join(f"{'L' + str(i):>7}" for i in range(len(layers)))
                 + "".join(f"{SHORT[m]:>9}" for m in names))
    for s, token in enumerate(data["tokens"]):
        lines.append(f"{token[:14]:>14}" + "".join(f"{layer[s]:7.3f}" for layer in layers)
                     + "".join(f"{data['methods'][m][s]:9.3f}" for m in names))
    if "agreement" in data:
        pairs = [f"{pair.replace('_', ' ')} {_rho(a['spearman'])}/{'yes' if a['top1'] else 'no'}"
                 for pair, a in data["agreement"].items()]
        lines.append("agreement (Spearman of magnitudes / same top token): " + "; ".join(pairs))
    return lines


SHORT = {"input_x_gradient": "x*grad", "integrated_gradients": "IG", "masking": "masking"}


def _rho(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f}"
