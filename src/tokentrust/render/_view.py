"""What every renderer shows, computed once: per-token colour values, the least confident tokens, and the
claims (their colour, scores and CCP's meaning-changing alternatives) cut into pieces of the answer text."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Protocol

from ..scores import Level, Scores
from ..stats.claims import Claim
from ..trace import Trace


class ScoredAnswer(Protocol):
    """What a renderer reads of a result (:class:`~tokentrust.Annotated` is one): the trace and its scores."""

    @property
    def trace(self) -> Trace: ...

    @property
    def scores(self) -> Sequence[Scores]: ...

    @property
    def claims(self) -> Sequence[Claim]: ...


@dataclass(frozen=True)
class TokenView:
    index: int
    text: str
    special: bool
    prob: float  # chosen-token probability
    color_value: float  # value in [0, 1] used for the colour
    entropy: float | None
    alternatives: list[tuple[str, float]]  # (token text, probability), most likely first
    value: float = math.nan  # the colouring score's value at this token (higher = more trustworthy)
    raw: float = math.nan  # and its natural quantity (equal to ``value`` for a probability)


TOKEN_PROBABILITY = "token_probability"


@dataclass(frozen=True)
class ColourKey:
    """What the colours of one view mean: the colouring ``score`` and its scale. ``fixed``: a probability,
    coloured as it is on [0, 1]; otherwise the score was rescaled within this answer, its lowest value here
    (``low``, raw ``low_raw``) at one end and its highest (``high``, raw ``high_raw``) at the other."""

    score: str
    fixed: bool
    low: float = math.nan
    high: float = math.nan
    low_raw: float = math.nan
    high_raw: float = math.nan

    def scale_text(self, low_name: str = "0", high_name: str = "1") -> str:
        """The scale in words, ``low_name``/``high_name`` naming the colours at 0 and 1."""
        if self.fixed:
            return f"fixed scale: a probability, {low_name} = 0 … {high_name} = 1"
        if math.isnan(self.low):
            return "relative to this answer (no finite value to scale)"
        return (f"relative to this answer (not a probability, rescaled): {low_name} = lowest here "
                f"{_pair(self.low, self.low_raw)} … {high_name} = highest here {_pair(self.high, self.high_raw)}")

    def describe(self, low_name: str = "0", high_name: str = "1") -> str:
        """One line for a legend: the score and its scale."""
        return f"colour: {self.score} · {self.scale_text(low_name, high_name)}"


def fmt_value(x: float) -> str:
    return "missing" if math.isnan(x) else f"{x:.4g}"


def _pair(value: float, raw: float) -> str:
    """``value`` and, where it differs, ``raw`` (``-1.36 (raw 1.36)``)."""
    if math.isnan(raw) or raw == value:
        return fmt_value(value)
    return f"{fmt_value(value)} (raw {fmt_value(raw)})"


def value_text(score: str, value: float, raw: float) -> str:
    """``score = value`` and, where they differ, its raw quantity: what a tooltip says of the colouring score."""
    return f"{score} = {_pair(value, raw)}"


def colour_key(score: str, values: Sequence[float], raw: Sequence[float], is_probability: bool,
               skip: Sequence[bool] | None = None) -> ColourKey:
    """The :class:`ColourKey` of values coloured with :func:`scaled` (the same rule, the same skipped values)."""
    if is_probability:
        return ColourKey(score, True)
    skip = skip or [False] * len(values)
    finite = [i for i, v in enumerate(values) if not skip[i] and math.isfinite(v)]
    if not finite:
        return ColourKey(score, False)
    lo, hi = min(finite, key=lambda i: values[i]), max(finite, key=lambda i: values[i])
    return ColourKey(score, False, values[lo], values[hi], raw[lo], raw[hi])


def scaled(values: Sequence[float], is_probability: bool, skip: Sequence[bool] | None = None) -> list[float]:
    """Values in [0, 1] for colouring (the one rule for tokens and claims): probabilities as they are, other
    scores min-max scaled over the finite values not skipped; NaN stays NaN (grey)."""
    values = list(values)
    if is_probability:
        return values
    skip = skip or [False] * len(values)
    finite = [v for v, s in zip(values, skip) if not s and math.isfinite(v)]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
    span = hi - lo or 1.0
    return [(v - lo) / span if math.isfinite(v) else math.nan for v in values]


def _token_score(trace: Trace, colour_by: Scores | None) -> tuple[str, list[float], list[float], bool]:
    """The colouring score per token: its id, values, raw values and whether it is a probability (the chosen
    score if it is token-level, else the token probability)."""
    if colour_by is None or colour_by.level is not Level.TOKEN:
        probs = [math.exp(lp) for lp in trace.logprobs]
        return TOKEN_PROBABILITY, probs, probs, True
    return colour_by.estimator, list(colour_by.values), list(colour_by.raw), colour_by.is_probability


def color_values(trace: Trace, colour_by: Scores | None) -> list[float]:
    """Per-token values in [0, 1] for colouring: the chosen score if it is token-level (see :func:`scaled`),
    else the token probability."""
    _, values, _, is_probability = _token_score(trace, colour_by)
    return scaled(values, is_probability, trace.special)


def token_key(trace: Trace, colour_by: Scores | None = None) -> ColourKey:
    """The legend of the token colours (:func:`color_values`)."""
    name, values, raw, is_probability = _token_score(trace, colour_by)
    return colour_key(name, values, raw, is_probability, trace.special)


def token_views(trace: Trace, colour_by: Scores | None = None) -> list[TokenView]:
    _, values, raw, is_probability = _token_score(trace, colour_by)
    colours = scaled(values, is_probability, trace.special)
    views = []
    for i, tok in enumerate(trace.tokens):
        alts = [(t, math.exp(lp)) for t, lp in zip(trace.top_tokens[i], trace.top_logprobs[i])]
        views.append(
            TokenView(
                index=i,
                text=tok,
                special=trace.special[i],
                prob=math.exp(trace.logprobs[i]),
                color_value=colours[i],
                entropy=trace.entropy[i] if trace.entropy is not None else None,
                alternatives=alts,
                value=values[i],
                raw=raw[i],
            )
        )
    return views


def least_confident(views: list[TokenView], n: int = 3) -> list[TokenView]:
    """The ``n`` lowest-probability visible tokens, in answer order."""
    visible = [v for v in views if not v.special and v.text.strip()]
    worst = sorted(visible, key=lambda v: v.prob)[:n]
    return sorted(worst, key=lambda v: v.index)


# --------------------------------------------------------------------------- claims


@dataclass(frozen=True)
class Changer:
    """An alternative that would have changed a claim: ``emitted`` replaced by ``alternative`` (probability)."""

    token: int
    emitted: str
    alternative: str
    prob: float

    def __str__(self) -> str:
        return f"{self.emitted}→{self.alternative} {self.prob:.2f}"


@dataclass(frozen=True)
class ClaimView:
    """One claim as every view shows it."""

    number: int  # 1-based, the order of ``Annotated.claims``
    text: str
    char_span: tuple[int, int]
    token_indices: list[int]
    scores: dict[str, float]  # every claim-level score id → this claim's value (NaN when missing)
    color_value: float  # value in [0, 1] used for the colour
    changers: list[Changer]  # most probable first

    @property
    def matched(self) -> bool:
        return bool(self.token_indices)


@dataclass(frozen=True)
class Piece:
    """A run of answer characters with one token and one set of claims: ``token`` is the visible token the
    characters belong to (``None`` between tokens), ``claims`` the 0-based indices of the matched claims
    covering them. A visible token with no characters (part of a multi-byte character) is one empty piece."""

    start: int
    text: str
    token: int | None
    claims: tuple[int, ...]

    @property
    def end(self) -> int:
        return self.start + len(self.text)


def short_name(estimator: str) -> str:
    """An estimator id as a column header: its shortest alias (``ccp``) when it has one, else the id."""
    from ..registry import estimators

    aliases = estimators.aliases_of(estimator) if estimator in estimators else []
    return min(aliases, key=len) if aliases else estimator


def claim_scores(result: ScoredAnswer) -> list[Scores]:
    return [s for s in result.scores if s.level is Level.CLAIM]


def claim_colour_score(result: ScoredAnswer, colour_by: Scores | None = None) -> Scores | None:
    """The score that colours claims: ``colour_by`` when it is claim-level, else the first claim-level score."""
    if colour_by is not None and colour_by.level is Level.CLAIM:
        return colour_by
    return next(iter(claim_scores(result)), None)


def _rows_of(claims: Sequence[Claim], s: Scores) -> dict[int, int]:
    """Claim index → row of ``s`` (its claims in order, matched by token span)."""
    out, j = {}, 0
    for k, c in enumerate(claims):
        if s.estimator not in c.scores:
            continue
        while j < len(s.spans) and s.spans[j] != c.token_indices:
            j += 1
        if j == len(s.spans):
            break
        out[k] = j
        j += 1
    return out


def _changers(claims: Sequence[Claim], s: Scores | None) -> dict[int, list[Changer]]:
    if s is None or "changers" not in s.extras:
        return {}
    column = s.extras["changers"]
    return {k: sorted((Changer(int(c["token"]), str(c["emitted"]), str(c["alternative"]), float(c["prob"]))
                       for c in column[j]), key=lambda c: -c.prob)
            for k, j in _rows_of(claims, s).items()}


def claim_key(result: ScoredAnswer, colour_by: Scores | None = None) -> ColourKey | None:
    """The legend of the claim colours (:func:`claim_views`); ``None`` without a claim-level score."""
    colour = claim_colour_score(result, colour_by)
    if colour is None:
        return None
    rows = _rows_of(result.claims, colour)
    values = [c.scores.get(colour.estimator, math.nan) for c in result.claims]  # as claim_views colours them
    raw = [colour.raw[rows[k]] if k in rows else math.nan for k in range(len(result.claims))]
    return colour_key(colour.estimator, values, raw, colour.is_probability)


def claim_views(result: ScoredAnswer, colour_by: Scores | None = None) -> list[ClaimView]:
    """The claims of ``result`` with their scores, colour (:func:`claim_colour_score`, :func:`scaled`) and
    CCP's changers (of the colouring score if it has them, else of the first claim score that has)."""
    claims = list(result.claims)
    if not claims:
        return []
    colour = claim_colour_score(result, colour_by)
    ids = [s.estimator for s in claim_scores(result)]
    raw = [c.scores.get(colour.estimator, math.nan) if colour else math.nan for c in claims]
    values = scaled(raw, bool(colour and colour.is_probability))
    with_changers = [s for s in claim_scores(result) if "changers" in s.extras]
    source = colour if colour in with_changers else next(iter(with_changers), None)
    changers = _changers(claims, source)
    return [ClaimView(number=k + 1, text=c.text, char_span=c.char_span, token_indices=list(c.token_indices),
                      scores={i: c.scores.get(i, math.nan) for i in ids}, color_value=values[k],
                      changers=changers.get(k, []))
            for k, c in enumerate(claims)]


def pieces(trace: Trace, claims: Sequence[ClaimView] = ()) -> list[Piece]:
    """The answer text cut at token and claim boundaries, in order; concatenated they give ``trace.text``."""
    spans = [c.char_span if c.matched else (0, 0) for c in claims]
    bounds = sorted({b for span in spans for b in span})
    text, pos = trace.text, 0
    out: list[Piece] = []

    def cut(a: int, b: int, token: int | None) -> None:
        if a == b:
            if token is not None:
                out.append(Piece(a, "", token, ()))
            return
        points = [a, *(x for x in bounds if a < x < b), b]
        for x, y in pairwise(points):
            out.append(Piece(x, text[x:y], token, tuple(k for k, (s, e) in enumerate(spans) if s <= x and y <= e)))

    for i, (a, b) in enumerate(trace.offsets):
        if trace.special[i]:
            continue
        a, b = max(a, pos), max(b, pos)
        if a > pos:
            cut(pos, a, None)
        cut(a, b, i)
        pos = b
    if pos < len(text):
        cut(pos, len(text), None)
    return out
