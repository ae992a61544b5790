"""The key/value cache of a self-attention layer during incremental decoding."""

from __future__ import annotations

import torch
from torch import Tensor


class LayerCache:
    """One decoder layer's self-attention keys and values for the positions decoded so far.

    The buffers are allocated ahead and grow by doubling, so a decoding step writes its
    one new position in place instead of copying the whole past with ``torch.cat``
    (quadratic in the output length). Beam search's reorder (``index_select``) copies
    the buffers into new ones; a step never changes a cache another state still holds
    except by writing past that state's length.
    """

    def __init__(self, k: Tensor | None = None, v: Tensor | None = None, length: int = 0,
                 pos: Tensor | None = None):
        self.k, self.v, self.length, self.pos = k, v, length, pos

    def extend(self, k: Tensor, v: Tensor, pos: Tensor | None = None
               ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Append k, v (B, H, T, dh) — and their positions ``pos`` (B|1, T), kept for ALiBi;
        return the keys, values and positions of every position so far."""
        end = self.length + k.size(2)
        if self.k is None or end > self.k.size(2):
            self._grow(k, v, max(16, 2 * end), pos is not None)
        self.k[:, :, self.length:end] = k
        self.v[:, :, self.length:end] = v
        if pos is not None:
            self.pos[:, self.length:end] = pos
        self.length = end
        kept = self.pos[:, :end] if self.pos is not None else None
        return self.k[:, :, :end], self.v[:, :, :end], kept

    def _grow(self, k: Tensor, v: Tensor, capacity: int, positions: bool) -> None:
        b, h, _, dh = k.shape
        new_k, new_v = k.new_empty(b, h, capacity, dh), v.new_empty(b, h, capacity, dh)
        new_pos = torch.zeros(b, capacity, dtype=torch.long, device=k.device) \
            if positions else None
        if self.k is not None:
            new_k[:, :, :self.length] = self.k[:, :, :self.length]
            new_v[:, :, :self.length] = self.v[:, :, :self.length]
            if positions:
                new_pos[:, :self.length] = self.pos[:, :self.length]
        self.k, self.v, self.pos = new_k, new_v, new_pos

    def index_select(self, dim: int, rows: Tensor) -> LayerCache:
        """The cache of the batch rows ``rows`` (``dim`` must be 0), as ``select_state``
        asks of every part of a state."""
        if self.k is None:
            return LayerCache()
        pos = self.pos.index_select(0, rows) if self.pos is not None else None
        return LayerCache(self.k.index_select(dim, rows), self.v.index_select(dim, rows),
                          self.length, pos)
