"""Inference: the search (greedy, beam, sampling) over the model contract, the translator
that turns text into translations and attention, the CTranslate2 engine behind the same
interface, evaluation on a split, and the metrics (sacreBLEU, exact match, by length)."""
