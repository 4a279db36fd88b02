"""A one-sentence rationale for a low-confidence answer: what the model's sampled answers disagreed about.

SaySelf (METHODS.md §10) summarises the inconsistency among sampled reasoning chains into a first-person
rationale. This is its inference-time, model-free form: the semantic clusters a sampling score already
computed (:class:`~tokentrust.stats.clusters.SemanticClusters`) name the meanings the answers fell into,
largest first, each by its first member with the words every representative shares cut away::

    I'm not sure: my answers varied between Canberra (6 of 10) and Sydney (4 of 10).

No model is called: :func:`rationale_from_context` reads the clusters and sample texts from the scoring
context only when a clustered score (semantic entropy, NumSemSets, …) already computed them.
:func:`~tokentrust.annotate` stores the sentence in ``Annotated.rationale``, so ``ask``, the proxy and the
notebook get it with the scores; :func:`~tokentrust.decide.decide` shows it when it hedges or abstains.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["disagreement", "rationale_from_context"]

_MAX_WORDS = 8


def _words(text: str) -> list[str]:
    return text.split()


def _core(texts: Sequence[str]) -> list[str]:
    """Each text without the leading and trailing words (and end punctuation) that all of them share."""
    tokens = [_words(re.sub(r"[.!?]+$", "", t.strip())) for t in texts]
    if len(tokens) < 2 or not all(tokens):
        return [" ".join(t) for t in tokens]
    head = 0
    while all(len(t) > head for t in tokens) and len({t[head].lower() for t in tokens}) == 1:
        head += 1
    tail = 0
    while (all(len(t) - head > tail for t in tokens)
           and len({t[len(t) - 1 - tail].lower() for t in tokens}) == 1):
        tail += 1
    out = [" ".join(t[head:len(t) - tail]) for t in tokens]
    return out if all(out) else [" ".join(t) for t in tokens]


def _short(text: str) -> str:
    words = _words(text)
    return " ".join(words[:_MAX_WORDS]) + ("…" if len(words) > _MAX_WORDS else "")


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def disagreement(texts: Sequence[str], clusters: Sequence[int], *, most: int = 3) -> str | None:
    """The sentence for sampled answers ``texts`` with cluster ids ``clusters``; ``None`` when they agree.

    Names at most ``most`` clusters (largest first, ties by first appearance), each with its count.
    """
    if len(texts) != len(clusters):
        raise ValueError(f"{len(texts)} texts but {len(clusters)} cluster ids")
    counts = Counter(int(c) for c in clusters)
    if len(counts) < 2:
        return None
    first = {}
    for i, c in enumerate(clusters):
        first.setdefault(int(c), i)
    order = sorted(counts, key=lambda c: (-counts[c], first[c]))
    shown = order[:most]
    names = _core([texts[first[c]] for c in shown])
    m = len(texts)
    parts = [f"{_short(name) or '(empty)'} ({counts[c]} of {m})" for c, name in zip(shown, names, strict=True)]
    if len(order) > most:
        parts.append(f"{len(order) - most} other answer{'s' if len(order) - most > 1 else ''}")
    return f"I'm not sure: my answers varied between {_join(parts)}."


def rationale_from_context(ctx: Any, estimators: Iterable[Any]) -> str | None:
    """The sentence from the first clustered estimator whose clusters ``ctx`` already holds (no new work)."""
    for est in estimators:
        stat = getattr(est, "semantic_clusters", None)
        if stat is None or stat not in ctx:
            continue
        return disagreement(list(ctx.get(stat.texts)), list(ctx.get(stat)))
    return None
