"""Token healing: the cheap approximation of the exact next-byte distribution (METHODS §6, "use" iii).

Back off the last token of the prompt's canonical encoding and keep only the next tokens whose bytes
start with what was removed. One or two forward passes instead of a cover search; it fixes the common
prompt-boundary cases (a prompt ending mid-word) but ignores every other encoding of the prefix.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import UserInputError
from .lm import ByteLM, NextByte


def _decodable_prefix(data: bytes) -> str:
    for cut in range(len(data), max(-1, len(data) - 4), -1):
        try:
            return data[:cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
    raise UserInputError(f"text {data[-12:]!r} is not UTF-8 before its last character; give UTF-8 text")


def healed_next_byte(lm: ByteLM, text: str | bytes) -> NextByte:
    """The next-byte distribution after ``text`` under token healing (``lm``'s model and context)."""
    before = lm.forward_passes
    target = lm.target(text)
    decodable = _decodable_prefix(target)
    tok = lm.backend.tokenizer
    with lm.backend.tokenizer_lock:
        ids = tok(decodable[1:] if lm.vocab.prefix_space else decodable, add_special_tokens=False)["input_ids"]
    base = tuple(ids[:-1])
    rest = target[len(lm.vocab.spell(base)):]
    trie = lm.vocab.trie
    logp, logprobs = lm.distribution(base)
    lo, hi = trie.extending(rest)
    cand = trie.order[lo:hi]
    p = np.exp(logprobs[cand].astype(np.float64))
    col = trie.column(len(rest))[lo:hi]
    nb = np.zeros(256)
    nb += np.bincount(col[col >= 0], weights=p[col >= 0], minlength=256)
    end = 0.0
    exact = [int(t) for t in cand[col < 0]]
    if exact:
        for t in exact:
            _, after = lm.distribution((*base, t))
            q = np.exp(after[trie.order].astype(np.float64))
            weight = math.exp(float(logprobs[t]))
            nb += weight * np.bincount(trie.column(0), weights=q, minlength=256)
            end += weight * sum(math.exp(float(after[i])) for i in lm.end_ids)
    covered = float(p.sum())
    total = float(nb.sum()) + end
    if total <= 0:
        raise UserInputError(f"no token of {lm.model_id} starts with {rest!r}")
    return NextByte(probs=nb / nb.sum(), end_prob=end / total,
                    prefix_logprob=logp + math.log(covered) - lm.lead_logprob,
                    coverage=total / covered, forward_passes=lm.forward_passes - before)
