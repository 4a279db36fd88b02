"""Brute force for the toy model: every token sequence, each scored by its own forward pass from scratch.

Independent of :mod:`tokentrust.bytelevel`: spellings from GPT-2's byte table, validity as "the tokenizer
encodes the decoded text back into exactly this sequence", no trie, no cache.
"""

from __future__ import annotations

import math
from functools import cache

import torch
from transformers.convert_slow_tokenizer import bytes_to_unicode


class BruteForce:
    def __init__(self, backend, context: tuple[int, ...], *, canonical: bool, sentencepiece: bool = False) -> None:
        self.backend, self.context, self.canonical, self.sp = backend, context, canonical, sentencepiece
        inverse = {c: b for b, c in bytes_to_unicode().items()}
        special = set(backend.tokenizer.all_special_ids)
        pieces = backend.tokenizer.convert_ids_to_tokens(list(range(len(backend.tokenizer))))
        if sentencepiece:  # "▁" is a space, "<0xNN>" one byte; the text carries one dummy leading space
            self.spell = {i: bytes([int(p[3:5], 16)]) if p.startswith("<0x") else p.replace("▁", " ").encode()
                          for i, p in enumerate(pieces) if i not in special}
        else:
            self.spell = {i: bytes(inverse[c] for c in p) for i, p in enumerate(pieces) if i not in special}
        self.logits = cache(self._logits)

    def _logits(self, ids: tuple[int, ...]) -> list[float]:
        with torch.no_grad():
            out = self.backend.model(input_ids=torch.tensor([list(self.context + ids)])).logits[0, -1]
        return torch.log_softmax(out.double(), -1).tolist()

    def logp(self, ids: tuple[int, ...]) -> float:
        return sum(self.logits(ids[:i])[t] for i, t in enumerate(ids))

    def valid(self, ids: tuple[int, ...]) -> bool:
        if not self.canonical:
            return True
        text = b"".join(self.spell[i] for i in ids).decode("utf-8")
        if self.sp:
            if not text.startswith(" "):
                return False
            text = text[1:]
        return list(self.backend.tokenizer(text, add_special_tokens=False)["input_ids"]) == list(ids)

    def inside(self, x: bytes) -> list[tuple[tuple[int, ...], int]]:
        """Every token sequence (valid or not) spelling a strict prefix of ``x``, with its length."""
        out, stack = [], [((), 0)]
        while stack:
            ids, n = stack.pop()
            out.append((ids, n))
            for t, s in self.spell.items():
                # long texts: prune prefixes that are not canonical themselves (BPE encodings are prefix-closed)
                if n + len(s) < len(x) and x[n:n + len(s)] == s and (len(x) < 16 or self.valid((*ids, t))):
                    stack.append(((*ids, t), n + len(s)))
        return out

    def prefix_prob(self, x: bytes) -> float:
        """P(text starts with x): sum over valid cover encodings."""
        total = 0.0
        for ids, n in self.inside(x):
            for t, s in self.spell.items():
                if (s[: len(x) - n] == x[n:]) and len(s) >= len(x) - n and self.valid((*ids, t)):
                    total += math.exp(self.logp((*ids, t)))
        return total

    def end_prob(self, x: bytes, end_ids) -> float:
        """P(text is exactly x, then ends)."""
        total = 0.0
        seqs = [ids for ids, n in self.inside(x)]
        for ids in seqs:
            for t in self.spell:
                full = (*ids, t)
                if b"".join(self.spell[i] for i in full) == x and self.valid(full):
                    total += sum(math.exp(self.logp(full) + self.logits(full)[e]) for e in end_ids)
        return total
