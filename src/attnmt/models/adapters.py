"""Cheap fine-tuning: frozen parts of a model, and LoRA adapters (Hu et al. 2022).

``train.freeze`` names parts of the network — ``embeddings`` (every token and position
table, and the output layer tied to them), any top-level part by its name (``encoder``,
``decoder``, ...) or one layer of a stack (``encoder.0``, ``decoder.2``) — whose weights
stay as they are. ``train.lora`` adds a trainable low-rank product ``B·A`` (rank r,
scaled by alpha / r) beside the chosen linear layers — the attention projections and/or
the feed-forward layers — and freezes everything else. The adapters come from the
``peft`` library; :func:`merge_lora` folds them into the weights, so decoding and export
see plain linear layers again.
"""

from __future__ import annotations

from torch import nn

from ..errors import ConfigError
from .attention import MultiHeadAttention
from .transformer import FeedForward

LORA_TARGETS = ("attention", "ffn")
LORA_DEFAULTS = {"rank": 8, "alpha": 16.0, "targets": list(LORA_TARGETS), "dropout": 0.0}


def parts(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """The parts ``train.freeze`` may name, each with its parameters."""
    found: dict[str, list[nn.Parameter]] = {
        "embeddings": [p for m in model.modules() if isinstance(m, nn.Embedding)
                       for p in m.parameters()]}
    for name, child in model.named_children():
        found[name] = list(child.parameters())
        if isinstance(child, nn.ModuleList):
            for i, layer in enumerate(child):
                found[f"{name}.{i}"] = list(layer.parameters())
    return {k: v for k, v in found.items() if v}


def _check_parts(available: dict, names: list[str]) -> None:
    for name in names:
        if name not in available:
            shown = ", ".join(n for n in available if not n[-1].isdigit())
            raise ConfigError(f"train.freeze: {name!r} is not a part of this model; its parts "
                              f"are {shown}, and a stack's layers by index (e.g. encoder.0)")


def freeze(model: nn.Module, names: list[str]) -> None:
    """Stop the gradients of the named parts; an unknown name is a one-line error listing
    the parts this model has."""
    available = parts(model)
    _check_parts(available, names)
    for name in names:
        for p in available[name]:
            p.requires_grad_(False)


def check_finetuning(cfg) -> None:
    """The one-line error :func:`apply_finetuning` would raise for a config, from the
    model's shape alone (built on the meta device: no memory, no weights), so a training
    run can check it before it writes anything."""
    import torch

    from . import build_for_task

    t = cfg.train
    if not (t.freeze or t.lora):
        return
    with torch.device("meta"):
        model = build_for_task(cfg.data.task, cfg.model, src_vocab=16, tgt_vocab=16,
                               n_labels=2)
    _check_parts(parts(model), list(t.freeze))
    if t.lora:
        lora_target_names(model, {**LORA_DEFAULTS, **t.lora}["targets"])


def lora_target_names(model: nn.Module, targets: list[str]) -> list[str]:
    """The full names of the linear layers LoRA adapts: the q, k, v and output projections
    of every attention (``attention``) and both layers of every feed-forward block
    (``ffn``)."""
    kinds = {"attention": MultiHeadAttention, "ffn": FeedForward}
    names = []
    for owner_name, owner in model.named_modules():
        if any(isinstance(owner, kinds[t]) for t in targets):
            names += [f"{owner_name}.{n}" for n, m in owner.named_children()
                      if isinstance(m, nn.Linear)]
    if not names:
        raise ConfigError(f"train.lora: this model ({type(model).__name__}) has no "
                          f"{' or '.join(targets)} layers to adapt; LoRA applies to "
                          "Transformer-family models")
    return names


def add_lora(model: nn.Module, *, rank: int, alpha: float, targets: list[str],
             dropout: float = 0.0) -> None:
    """Adapters beside the target layers (in place); only they stay trainable."""
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError:
        raise ConfigError("train.lora needs the peft package; pip install 'attnmt[finetune]'"
                          ) from None
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, bias="none",
                        target_modules=lora_target_names(model, targets))
    inject_adapter_in_model(config, model)
    for name, p in model.named_parameters():
        p.requires_grad_("lora_" in name)


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter into its layer's weight and put the plain layer back (in
    place): the model computes the same, with no trace of peft."""
    from peft.tuners.lora import LoraLayer

    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, LoraLayer):
                child.merge()
                setattr(parent, name, child.get_base_layer())
    return model


def apply_finetuning(model: nn.Module, train_cfg) -> None:
    """``train.freeze`` and ``train.lora`` of a config, on a freshly built model."""
    if train_cfg.lora:
        add_lora(model, **{**LORA_DEFAULTS, **train_cfg.lora})
    if train_cfg.freeze:
        freeze(model, list(train_cfg.freeze))


def trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def trainable_note(model: nn.Module) -> str:
    """`` (N trainable)`` when some weights are frozen, else nothing: for the log line."""
    n = trainable_parameters(model)
    return f" ({n:,} trainable)" if n < sum(p.numel() for p in model.parameters()) else ""
