"""Claims: the statements of an answer, each a span of its characters and tokens (METHODS.md §2.6).

A claim extractor is a registered, parameterised component (:data:`tokentrust.registry.claim_extractors`)
named by a spec string; the spec is part of every claim-level estimator's id:

* ``sentences`` (default, offline): sentences from pysbd's rule-based segmenter (each line on its own),
  then clauses at semicolons and at a comma before a coordinating conjunction (``", and "``, ``", but "``
  …) when both sides keep at least three words. A claim's text is exactly ``trace.text[start:end]``
  (leading bullets and conjunctions, trailing punctuation and spaces left out).
* ``llm`` / ``llm:model=<backend spec>``: an instruction model lists each sentence's atomic claims and the
  words of the sentence that support each (LM-Polygraph's prompts, one-shot); the words are matched into
  the sentence in order and the claim's tokens are those that overlap a matched character. Without
  ``model`` the generating backend is asked; ``model=openai:<url>#<name>`` asks any other model.

Both drop the last sentence when the answer was cut mid-sentence (``finish_reason == "length"`` and no
sentence terminator): an unfinished sentence yields hallucinated claims. Unlike LM-Polygraph, a complete
answer that simply ends without a full stop ("Canberra") keeps its last sentence. A claim that matches no
answer token keeps ``token_indices == []``: it is reported (its scores are NaN), never dropped.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from pydantic import Field

from ..config import Float, Record
from ..errors import CapabilityError, TokentrustError, UserInputError
from ..registry import claim_extractors, instantiate, parse_spec
from ..stat import Context, Stat
from ..trace import Trace

#: Characters that end a sentence (LM-Polygraph's separators, newline handled as a line break).
TERMINATORS = ".?!。？！"
_CLOSERS = "\"'”’)]»"
_CLAUSE_BREAK = re.compile(r"\s*;\s*|,\s+(?:and|but|or|nor|so|yet)\s+", re.IGNORECASE)
_LEADING = re.compile(r"^(?:\s|[-*•·–—>]\s*|\d{1,2}[.)]\s+|(?:and|but|or|nor|so|yet)\s+)+", re.IGNORECASE)
_TRAILING = re.compile(r"[\s,;:.!?。？！…]+$")
_MIN_CLAUSE_WORDS = 3


class Claim(Record):
    """One statement of an answer.

    ``char_span`` is the ``(start, end)`` range of ``trace.text`` it covers: for the ``sentences`` extractor
    ``text == trace.text[start:end]``; for ``llm`` the text is the model's restatement and the span covers
    the words it matched. ``token_indices`` are the answer tokens that express it (empty when none matched),
    ``sentence`` the index of the sentence it came from, ``extractor`` the extractor's spec. ``scores`` maps
    estimator ids to this claim's value, filled in by :func:`tokentrust.annotate`.
    """

    text: str
    char_span: tuple[int, int]
    token_indices: list[int]
    sentence: int
    extractor: str = "sentences"
    scores: dict[str, Float] = Field(default_factory=dict)


@functools.lru_cache(maxsize=8)
def _segmenter(language: str) -> Any:
    import pysbd

    try:
        return pysbd.Segmenter(language=language, clean=False, char_span=True)
    except ValueError as exc:
        raise UserInputError(f"no sentence segmenter for language {language!r}: {exc}") from None


def sentence_spans(text: str, *, language: str = "en") -> list[tuple[int, int]]:
    """``(start, end)`` of each sentence of ``text`` (whitespace trimmed): lines first, then pysbd within a line."""
    spans: list[tuple[int, int]] = []
    pos = 0
    for line in text.split("\n"):
        if line.strip():
            cursor = 0
            for seg in _segmenter(language).segment(line):
                piece = seg.sent.strip()
                if not piece:
                    continue
                start = line.find(piece, cursor)
                if start < 0:  # the segmenter changed the text; keep what maps back
                    continue
                cursor = start + len(piece)
                spans.append((pos + start, pos + cursor))
        pos += len(line) + 1
    return spans


def is_unfinished(sentence: str) -> bool:
    """True when ``sentence`` does not end with a terminator (closing quotes and brackets ignored)."""
    return not sentence.rstrip().rstrip(_CLOSERS).endswith(tuple(TERMINATORS))


def answer_sentences(text: str, *, finished: bool, language: str = "en") -> list[tuple[int, int]]:
    """The sentences claims are taken from: the last one is dropped when the answer was cut mid-sentence."""
    spans = sentence_spans(text, language=language)
    if spans and not finished and is_unfinished(text[slice(*spans[-1])]):
        spans = spans[:-1]
    return spans


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    piece = text[start:end]
    lead = _LEADING.match(piece)
    if lead:
        start += lead.end()
    trail = _TRAILING.search(text[start:end])
    if trail:
        end = start + trail.start()
    return start, max(start, end)


def _words(text: str) -> int:
    return len(re.findall(r"\w+", text))


def clause_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Clauses of the sentence ``text[start:end]``: split at ``;`` and at ``", <conjunction> "`` when both
    sides have at least three words; each clause trimmed of bullets, conjunctions and end punctuation."""
    pieces = []
    cursor = start
    for m in _CLAUSE_BREAK.finditer(text, start, end):
        left, right = text[cursor : m.start()], text[m.end() : end]
        if _words(left) >= _MIN_CLAUSE_WORDS and _words(right) >= _MIN_CLAUSE_WORDS:
            pieces.append((cursor, m.start()))
            cursor = m.end()
    pieces.append((cursor, end))
    out = []
    for a, b in pieces:
        a, b = _trim(text, a, b)
        if any(ch.isalnum() for ch in text[a:b]):
            out.append((a, b))
    return out


def tokens_covering(trace: Trace, chars: Sequence[tuple[int, int]]) -> list[int]:
    """Indices of the answer's visible tokens that overlap a non-space character of any ``(start, end)`` range."""
    out = []
    for i, (a, b) in enumerate(trace.offsets):
        if trace.special[i] or a == b:
            continue
        for start, end in chars:
            lo, hi = max(a, start), min(b, end)
            if lo < hi and trace.text[lo:hi].strip():
                out.append(i)
                break
    return out


@dataclass(frozen=True, kw_only=True)
class ClaimExtractor:
    """One way to cut an answer into claims; a frozen dataclass of its parameters (registered by kind)."""

    registry_id: ClassVar[str] = "claim_extractor"
    forms: ClassVar[tuple[str, ...]] = ()
    uses_backend: ClassVar[bool] = False
    language: str = "en"

    @property
    def spec(self) -> str:
        """Canonical spec (``sentences``, ``llm:model=…``): part of the ids of the estimators that use it."""
        changed = [f"{f.name}={getattr(self, f.name)}" for f in fields(self) if getattr(self, f.name) != f.default]
        return f"{self.registry_id}:{','.join(changed)}" if changed else self.registry_id

    def extract(self, trace: Trace, backend: Any = None) -> list[Claim]:
        raise NotImplementedError(f"{type(self).__name__}.extract")

    def connect(self) -> None:
        """Load and probe any model of its own now (nothing for offline extractors)."""


@claim_extractors.register(name="sentences")
@dataclass(frozen=True, kw_only=True)
class SentenceClaims(ClaimExtractor):
    """Sentences (pysbd) split into clauses; offline, no model. ``clauses=false`` keeps whole sentences."""

    forms = ("sentences", "sentences:clauses=false", "sentences:language=<pysbd language code>")
    clauses: bool = True

    def extract(self, trace: Trace, backend: Any = None) -> list[Claim]:
        text = trace.text
        claims = []
        for s, (start, end) in enumerate(answer_sentences(text, finished=_finished(trace), language=self.language)):
            spans = clause_spans(text, start, end) if self.clauses else [_trim(text, start, end)]
            for a, b in spans:
                if not any(ch.isalnum() for ch in text[a:b]):
                    continue
                claims.append(Claim(text=text[a:b], char_span=(a, b), token_indices=tokens_covering(trace, [(a, b)]),
                                    sentence=s, extractor=self.spec))
        return claims


EXTRACTION_PROMPT = """Please breakdown the sentence into independent claims.

Example:
Sentence: \"He was born in London and raised by his mother and father until 11 years old.\"
Claims:
- He was born in London.
- He was raised by his mother and father.
- He was raised by his mother and father until 11 years old.

Sentence: \"{sent}\"
Claims:"""

MATCHING_PROMPT = (
    "Given the fact, identify the corresponding words in the original sentence that help derive this fact. "
    "Please list all words that are related to the fact, in the order they appear in the original sentence, "
    "each word separated by comma.\nFact: {claim}\nSentence: {sent}\n"
    "Words from sentence that helps to derive the fact, separated by comma: "
)


def claim_lines(reply: str) -> list[str]:
    """The claims of an extraction reply: lines starting with ``- `` that are not "there aren't any claims"."""
    out = []
    for line in reply.split("\n"):
        line = line.strip()
        if line.startswith("- ") and "there aren't any claims" not in line.lower():
            claim = line[2:].strip()
            if claim:
                out.append(claim)
    return out


def match_words(sentence: str, words: Sequence[str]) -> list[tuple[int, int]] | None:
    """Greedy in-order match of ``words`` into ``sentence`` at word boundaries (LM-Polygraph's rule):
    the ``(start, end)`` of each, or ``None`` when a word is missing or out of order."""
    words = [w.strip() for w in words if w.strip()]
    out, pos = [], 0
    for word in words:
        while True:
            found = sentence.find(word, pos)
            if found < 0:
                return None
            end = found + len(word)
            left_ok = found == 0 or not sentence[found - 1].isalpha()
            right_ok = end >= len(sentence) or not sentence[end].isalpha()
            if left_ok and right_ok:
                out.append((found, end))
                pos = end
                break
            pos = found + 1
    return out or None


@claim_extractors.register(name="llm")
@dataclass(frozen=True, kw_only=True)
class ModelClaims(ClaimExtractor):
    """An instruction model lists atomic claims per sentence and the words that support each (greedy replies)."""

    forms = ("llm", "llm:model=<backend spec, e.g. openai:http://host:8000/v1#name>", "llm:max_new_tokens=<n>")
    uses_backend = True
    model: str = ""
    max_new_tokens: int = 128

    def __post_init__(self) -> None:
        if self.language != "en":
            raise UserInputError(f"claim extractor 'llm' has English prompts only, got language={self.language!r}")
        n = self.max_new_tokens
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise UserInputError(f"claim extractor 'llm' needs max_new_tokens ≥ 1, got {n!r}")

    def llm(self, backend: Any) -> Any:
        """The model that extracts: ``model`` (loaded once per process) or the generating backend."""
        if self.model:
            from ..loading import load
            from . import resources

            return resources.load(f"claims-model:{self.model}", lambda: load(self.model))
        if backend is None:
            raise CapabilityError("claim extractor 'llm' asks the generating model; pass backend= "
                                  "or name one: llm:model=<backend spec>")
        return backend

    def connect(self) -> None:
        """Load ``model`` and probe it now, so an unreachable one fails before any generation (one clear line)."""
        if not self.model:
            return
        try:
            self.llm(None).capabilities  # noqa: B018  (a server is probed on first use)
        except TokentrustError as exc:
            raise UserInputError(f"claims model {self.model!r}: {exc}") from None

    def _ask(self, llm: Any, prompts: list[str]) -> list[str]:
        if not prompts:
            return []
        return [t.text for t in llm.generate_many(prompts, max_new_tokens=self.max_new_tokens, temperature=0.0)]

    def extract(self, trace: Trace, backend: Any = None) -> list[Claim]:
        llm = self.llm(backend)
        text = trace.text
        sentences = answer_sentences(text, finished=_finished(trace))
        replies = self._ask(llm, [EXTRACTION_PROMPT.format(sent=text[a:b]) for a, b in sentences])
        found = [(s, claim) for s, reply in enumerate(replies) for claim in claim_lines(reply)]
        word_replies = self._ask(llm, [MATCHING_PROMPT.format(claim=c, sent=text[slice(*sentences[s])])
                                       for s, c in found])
        claims = []
        for (s, claim), reply in zip(found, word_replies, strict=True):
            start, end = sentences[s]
            matched = match_words(text[start:end], reply.strip().split(","))
            chars = [(start + a, start + b) for a, b in matched] if matched else []
            span = (chars[0][0], chars[-1][1]) if chars else (start, end)
            claims.append(Claim(text=claim, char_span=span, token_indices=tokens_covering(trace, chars),
                                sentence=s, extractor=self.spec))
        return claims


def _finished(trace: Trace) -> bool:
    return trace.finish_reason != "length"


def extractor_forms() -> list[str]:
    return [form for _, kind in claim_extractors.items() for form in kind.forms]


def make_extractor(spec: str | ClaimExtractor) -> ClaimExtractor:
    """The extractor named by ``spec`` (``sentences``, ``llm:model=…``), validated; loads no model."""
    if isinstance(spec, ClaimExtractor):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise UserInputError(f"a claim extractor is a spec string such as 'sentences', got {spec!r}")
    name, kwargs = parse_spec(spec)
    if name not in claim_extractors:
        raise UserInputError(f"unknown claim extractor {spec!r}; valid: {', '.join(extractor_forms())}")
    cls = claim_extractors.get(name)
    kwargs = {k: (str(v) if k == "model" else v) for k, v in kwargs.items()}
    return instantiate(cls, kwargs, what=f"claim extractor {spec!r}", forms=", ".join(cls.forms))


def canonical_extractor(spec: str) -> str:
    """The canonical spec of ``spec`` (validated)."""
    return make_extractor(spec).spec


@dataclass(frozen=True, kw_only=True)
class Claims(Stat[tuple[Claim, ...]]):
    """The trace's claims by ``extractor`` (a canonical spec), computed once per item and shared."""

    extractor: str = "sentences"

    def compute(self, ctx: Context) -> tuple[Claim, ...]:
        return tuple(make_extractor(self.extractor).extract(ctx.trace, ctx.backend))


def extract_claims(trace: Trace, extractor: str = "sentences", *, backend: Any = None) -> list[Claim]:
    """The claims of ``trace``'s answer (``backend`` only for model-based extraction without ``model=``)."""
    return make_extractor(extractor).extract(trace, backend)


def strip_token(text: str) -> str:
    """A token's text without surrounding punctuation, spaces and newlines (as CCP compares them)."""
    return text.strip(string.punctuation + " \n\t")
