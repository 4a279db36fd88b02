"""A byte trie of a vocabulary, stored as the token spellings in sorted order.

Every token whose spelling starts with some bytes sits in one contiguous run of the sorted spellings, so
"which tokens extend ``x[j:]``" is two binary searches and "which tokens spell a prefix of ``x[j:]``" is
one dictionary look-up per length. Per-position byte columns (the byte at offset ``k`` of each sorted
spelling) let a caller add up a next-token distribution by next byte with one ``bincount``.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np


class ByteTrie:
    """Token ids by spelling. ``spellings[i]`` is the bytes of token ``i`` (``None``: spells no text)."""

    def __init__(self, spellings: Sequence[bytes | None]) -> None:
        spelled = [(s, i) for i, s in enumerate(spellings) if s]
        spelled.sort()
        self.keys: list[bytes] = [s for s, _ in spelled]
        self.order: np.ndarray = np.fromiter((i for _, i in spelled), dtype=np.int64, count=len(spelled))
        self.lengths: np.ndarray = np.fromiter((len(s) for s in self.keys), dtype=np.int64, count=len(spelled))
        self.max_len: int = int(self.lengths.max(initial=0))
        self._exact: dict[bytes, list[int]] = {}
        for s, i in spelled:
            self._exact.setdefault(s, []).append(i)
        self._columns: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.keys)

    def exact(self, spelling: bytes) -> list[int]:
        """Token ids that spell exactly ``spelling`` (several when a vocabulary spells one text twice)."""
        return self._exact.get(spelling, [])

    def extending(self, prefix: bytes) -> tuple[int, int]:
        """``(lo, hi)``: the sorted positions of the tokens whose spelling starts with ``prefix``."""
        lo = bisect.bisect_left(self.keys, prefix)
        hi = lo
        if prefix:
            # The first key past the run: bump the prefix's last byte that is not 0xff.
            stripped = prefix.rstrip(b"\xff")
            if not stripped:
                hi = len(self.keys)
            else:
                upper = stripped[:-1] + bytes([stripped[-1] + 1])
                hi = bisect.bisect_left(self.keys, upper, lo)
        else:
            hi = len(self.keys)
        return lo, hi

    def prefixes_of(self, data: bytes) -> list[tuple[int, int]]:
        """``(token id, length)`` of every token whose spelling is a non-empty prefix of ``data``."""
        out = []
        for k in range(1, min(len(data), self.max_len) + 1):
            for tid in self._exact.get(data[:k], ()):
                out.append((tid, k))
        return out

    def column(self, k: int) -> np.ndarray:
        """The byte at offset ``k`` of every sorted spelling (``-1`` where the spelling is shorter)."""
        col = self._columns.get(k)
        if col is None:
            col = np.fromiter((s[k] if len(s) > k else -1 for s in self.keys), dtype=np.int16, count=len(self.keys))
            self._columns[k] = col
        return col
