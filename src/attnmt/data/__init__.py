"""Data: corpora, the dataset registry, synthetic tasks, tokenizers and batching."""
