"""The special symbols every vocabulary shares, with fixed ids.

``<pad>`` 0, ``<unk>`` 1, ``<s>`` 2, ``</s>`` 3 — the tokenizers write them first,
the models pad with 0, the search starts from ``<s>`` and stops at ``</s>``.
"""

PAD, UNK, BOS, EOS = 0, 1, 2, 3
SPECIALS = ["<pad>", "<unk>", "<s>", "</s>"]
