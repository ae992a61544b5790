"""attnmt — sequence-to-sequence learning built around the attention mechanism."""

__version__ = "0.1.0"
