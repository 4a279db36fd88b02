"""Sources and targets: the prompt's tokens, words and components, and the answer spans to explain.

Every prompt token the model read is a source, chat-template and special tokens included (reported, never
silently scored 0). Words merge subword pieces: a new word starts at a special token, after one, at a
token whose text starts with a space or a line break, and at punctuation. Components are named parts of
the prompt (:mod:`.components`).
"""

from __future__ import annotations

import unicodedata

from ..errors import UserInputError
from ..trace import Trace
from .forward import TargetScorer
from .record import Span


def _is_punct(text: str) -> bool:
    t = text.strip()
    return bool(t) and all(unicodedata.category(ch)[0] in "PS" for ch in t)


def token_sources(scorer: TargetScorer) -> list[Span]:
    """One source per prompt token: its text (special tokens by name) and whether it is special."""
    backend = scorer.backend
    special = getattr(backend, "special_ids", set())
    return [Span(text=backend.display(t), tokens=[j], special=t in special) for j, t in enumerate(scorer.prompt_ids)]


def word_sources(tokens: list[Span]) -> list[Span]:
    """Tokens merged into words (see the module docstring); a special token is a word of its own."""
    words: list[Span] = []
    for tok in tokens:
        prev = words[-1] if words else None
        starts = (prev is None or tok.special or prev.special or tok.text[:1].isspace() or not prev.text.strip()
                  or _is_punct(tok.text)
                  or _is_punct(prev.text))
        if starts:
            words.append(tok.model_copy())
        else:
            words[-1] = prev.model_copy(update={"text": prev.text + tok.text, "tokens": [*prev.tokens, *tok.tokens]})
    return words


def answer_targets(trace: Trace, target: str | None = None) -> list[Span]:
    """What to explain: every visible answer token, or the tokens covering the first occurrence of ``target``
    in the answer text (one span)."""
    visible = [i for i, s in enumerate(trace.special) if not s]
    if target is None:
        return [Span(text=trace.text[slice(*trace.offsets[i])] or trace.tokens[i], tokens=[i]) for i in visible]
    if not isinstance(target, str) or not target.strip():
        raise UserInputError(f"target must be a non-empty part of the answer, got {target!r}")
    start = trace.text.find(target.strip())
    if start < 0:
        raise UserInputError(f"target {target.strip()!r} is not in the answer {trace.text!r}; give a part of it")
    end = start + len(target.strip())
    tokens = [i for i in visible if trace.offsets[i][0] < end and trace.offsets[i][1] > start]
    return [Span(text=trace.text[start:end], tokens=tokens)]


def sources_at(granularity: str, scorer: TargetScorer, *, fields: dict[str, str] | None = None) -> list[Span]:
    """The sources at ``granularity`` (``token``, ``word`` or ``component``)."""
    tokens = token_sources(scorer)
    if granularity == "token":
        return tokens
    if granularity == "word":
        return word_sources(tokens)
    if granularity == "component":
        from .components import component_sources

        return component_sources(scorer, tokens, fields or {})
    raise UserInputError(f"granularity must be token, word or component, got {granularity!r}")


def groups_of(sources: list[Span]) -> list[list[int]]:
    """The prompt-token indices of each source (what a perturbation removes together)."""
    return [list(s.tokens) for s in sources]
