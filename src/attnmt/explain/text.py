"""The explainer's numbers as text: one output word's five steps for a terminal
(``attnmt explain``), from the dictionary :func:`attnmt.explain.numbers.explain` returns."""

from __future__ import annotations


def _bar(value: float, width: int = 20) -> str:
    return "█" * round(max(0.0, min(1.0, value)) * width)


def describe_rnn(data: dict, t: int) -> list[str]:
    s, lines = data["steps"][t], []
    states = data.get("states")
    if data["family"] == "fixed-context":
        c = s["context"]
        return [f"1. the encoder's final state is the one context vector c ({len(c)} numbers); "
                "every output word receives the same c",
                "2-4. no scores, no weights: the decoder cannot look back at the source"]
    lines.append(f"1. encoder states h̄ₛ: {len(states)} tokens × {len(states[0])} numbers")
    lines.append(f"2. scores ({data['formula']}), 3. softmax weights "
                 f"(sum {sum(s['weights']):.4f}):")
    for tok, score, w in zip(data["src_tokens"], s["scores"], s["weights"], strict=True):
        shown = "-inf (masked)" if score is None else f"{score:9.3f}"
        lines.append(f"   {tok:>14}  score {shown:>13}  weight {w:.3f} {_bar(w)}")
    top = max(range(len(s["weights"])), key=lambda i: s["weights"][i])
    lines.append(f"4. context cₜ = Σₛ aₜ(s) h̄ₛ: {len(s['context'])} numbers, the largest "
                 f"share from {data['src_tokens'][top]!r} ({s['weights'][top]:.3f})")
    return lines


def describe_transformer(data: dict, t: int, kind: str, layer: int | None,
                         head: int | None) -> list[str]:
    layers = range(len(data["layers_kv"])) if layer is None else [layer]
    lines = [f"{kind} attention, the weights of each layer and head (top 3):"]
    for ell in layers:
        if kind == "encoder":
            weights, labels = [h[t] for h in data["encoder_layers"][ell]["weights"]], \
                data["src_tokens"]
        else:
            weights = data["steps"][t]["layers"][ell][kind]["weights"]
            labels = data["src_tokens"] if kind == "cross" else \
                ["<s>", *data["tgt_tokens"]][: t + 1]
        for h, row in enumerate(weights):
            if head is not None and h != head:
                continue
            best = sorted(range(len(row)), key=lambda i: -row[i])[:3]
            silenced = " (silenced)" if [ell, h] in data["zeroed_heads"] else ""
            lines.append(f"   layer {ell} head {h}{silenced}: " +
                         ", ".join(f"{labels[i]} {row[i]:.2f}" for i in best))
    return lines


def describe(data: dict, t: int, kind: str = "cross", layer: int | None = None,
             head: int | None = None) -> list[str]:
    """The terminal's account of output word ``t``."""
    lines = [f"{data['family']} · {data['scorer'] or 'no attention'} · {data['formula']}",
             "source:      " + " ".join(f"{i}:{tok}" for i, tok in enumerate(data["src_tokens"])),
             f"translation: {data['translation']}"]
    if data["masked"] or data["zeroed_heads"]:
        lines.append(f"interventions: masked source positions {data['masked']}, silenced "
                     f"heads {data['zeroed_heads']}")
    if kind == "encoder":
        lines.append(f"encoder query position {t}: {data['src_tokens'][t]!r}")
        return lines + describe_transformer(data, t, kind, layer, head)
    lines.append(f"step {t} of 0..{len(data['steps']) - 1}: writing {data['tgt_tokens'][t]!r}")
    lines += describe_transformer(data, t, kind, layer, head) \
        if data["family"] == "transformer" else describe_rnn(data, t)
    s = data["steps"][t]
    lines.append("5. next word: " + ", ".join(f"{w} {p:.3f}" for w, p in s["top"]) +
                 f"  -> greedy writes {s['chosen']!r}")
    return lines


ATTRIBUTION_NAMES = {"attention": "attention", "input_x_gradient": "input×grad",
                     "integrated_gradients": "int. grads", "masking": "masking Δlogp"}


def describe_attribution(attr: dict, t: int) -> list[str]:
    """Output word ``t``'s row of every method, one column each, and how far the methods
    agree (Spearman's rank correlation of the magnitudes; at this word and the mean over
    the sentence)."""
    methods = list(attr["methods"])
    lines = [f"attention beside attribution for {attr['tgt_tokens'][t]!r} (the model "
             "without interventions):",
             f"   {'source':>14}  " + "  ".join(f"{ATTRIBUTION_NAMES[m]:>13}" for m in methods)]
    for s, tok in enumerate(attr["src_tokens"]):
        lines.append(f"   {tok:>14}  " + "  ".join(f"{attr['methods'][m][t][s]:13.3g}"
                                                  for m in methods))
    lines.append("agreement (Spearman of magnitudes: this word / the sentence's mean):")
    for pair, a in attr["agreement"].items():
        here = a["spearman"][t]
        shown = [("–" if x is None else f"{x:+.2f}") for x in (here, a["mean"])]
        names = " ~ ".join(ATTRIBUTION_NAMES[m] for m in pair.split("~"))
        lines.append(f"   {names:<30} {shown[0]:>6} / {shown[1]:>6}   same top token "
                     f"{100 * a['top1']:.0f}% of words")
    lines.append(f"(integrated gradients: {attr['ig_steps']} steps, largest completeness gap "
                 f"{attr['ig_delta']:.3f} nats)")
    return lines
