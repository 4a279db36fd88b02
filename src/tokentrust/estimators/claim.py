"""Claim-level scores (METHODS.md §2.6, §11.9): one value per claim of the answer, spans = the claim's tokens.

Every claim estimator has a ``claims`` parameter, the claim extractor's spec (``sentences`` by default,
``llm:model=…``; :mod:`tokentrust.stats.claims`), which is part of its id. A claim that matched no token
gets NaN. Claim forms of token scores come from one generic reducer, :class:`ClaimForm`
(``claim_form:token=token_entropy,reduce=min``); ``claim_probability`` and ``claim_max_entropy`` are two
named presets of it.

Claim Conditioned Probability (Fadeeva et al. 2024) at three levels: ``token_ccp``, ``ccp`` (claims, the
stopwords of the Snowball English list skipped) and ``sequence_ccp`` (every token). The meaning-change
judge is any similarity that gives verdicts: ``embedding`` (offline default), ``nli:<model>`` (the paper's),
``judge`` (the generating model). ``context=fact_pref`` compares the claim's prefix ending in the emitted
token with the same prefix ending in the alternative (claim level only).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..capability import Capability
from ..errors import CapabilityError, UserInputError
from ..registry import estimators
from ..scores import Level, Scores
from ..stat import Context, Stat
from ..stats.claims import Claim, Claims, canonical_extractor, make_extractor, strip_token
from ..stats.sampling import question_text, require_backend
from ..stats.similarity import make_similarity
from ..trace import Trace
from .base import Estimator, build_estimator
from .ptrue import PROMPT as PTRUE_PROMPT

_ALTERNATIVES = frozenset({Capability.LOGPROBS, Capability.TOP_LOGPROBS})
_CONTEXTS = ("no_context", "fact_pref")
_REDUCTIONS = ("min", "mean", "product", "geometric_mean")


@functools.lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    """The Snowball English stopword list (package ``stopwords``), lower case."""
    from stopwords import get_stopwords

    return frozenset(w.lower() for w in get_stopwords("english"))


def is_stopword(token: str) -> bool:
    """True for a function word ("the", " of", "It"): CCP skips it at claim level."""
    return strip_token(token).lower() in stopwords()


# --------------------------------------------------------------------------- claim estimators: the base


@dataclass(frozen=True, kw_only=True)
class ClaimEstimator(Estimator):
    """One value per claim. ``claims`` = the extractor's spec (canonicalised, so equal extractors share an id)."""

    level = Level.CLAIM
    claims: str = "sentences"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "claims", canonical_extractor(self.claims))

    @property
    def requires(self) -> frozenset[Capability]:
        """What the score needs, plus generation when the generating model extracts the claims."""
        extractor = make_extractor(self.claims)
        asks_backend = extractor.uses_backend and not getattr(extractor, "model", "")
        return super().requires | ({Capability.GENERATION} if asks_backend else frozenset())

    @property
    def uses_models(self) -> bool:
        return super().uses_models or bool(getattr(make_extractor(self.claims), "model", ""))

    def claim_list(self, ctx: Context) -> tuple[Claim, ...]:
        return ctx.get(Claims(extractor=self.claims))

    def _claim_scores(self, ctx: Context, values: Sequence[float], raw: Sequence[float],
                      extras: dict[str, list[Any]] | None = None) -> Scores:
        spans = [list(c.token_indices) for c in self.claim_list(ctx)]
        return self._scores(ctx, np.asarray(values, dtype=float).reshape(-1),
                            np.asarray(raw, dtype=float).reshape(-1), spans=spans, extras=extras)


# --------------------------------------------------------------------------- generic reducer of token scores


def _reduce(values: np.ndarray, raw: np.ndarray, how: str) -> tuple[float, float]:
    """(value, raw) of one claim from its tokens' values and raws."""
    if len(values) == 0:
        return math.nan, math.nan
    if how == "min":
        i = int(np.nanargmin(values)) if not np.all(np.isnan(values)) else 0
        return float(values[i]), float(raw[i])
    if how == "mean":
        return float(np.mean(values)), float(np.mean(raw))
    logs = np.log(np.clip(values, 1e-300, None))
    total = float(logs.sum() if how == "product" else logs.mean())
    return math.exp(total), -total


@estimators.register
@dataclass(frozen=True, kw_only=True)
class ClaimForm(ClaimEstimator):
    """A token score reduced over each claim's tokens: ``min`` (raw of that token), ``mean``, or for
    probabilities ``product`` / ``geometric_mean`` (raw = −log of it). Any token-level estimator works."""

    token: str = "token_probability"
    reduce: str = "min"

    def __post_init__(self) -> None:
        super().__post_init__()
        est = self.token_estimator
        if est.level is not Level.TOKEN:
            raise UserInputError(f"{self.registry_id} needs a token-level estimator, got {self.token!r} "
                                 f"({est.level.value}-level)")
        if self.reduce not in _REDUCTIONS:
            raise UserInputError(f"reduce must be one of {', '.join(_REDUCTIONS)}, got {self.reduce!r}")
        if self.reduce in ("product", "geometric_mean") and not est.is_probability:
            raise UserInputError(f"reduce={self.reduce!r} needs a probability, and {est.id!r} is not one; "
                                 "use min or mean")
        object.__setattr__(self, "token", est.id)

    @property
    def token_estimator(self) -> Estimator:
        return build_estimator(self.token)

    @property
    def is_probability(self) -> bool:  # type: ignore[override]
        return self.token_estimator.is_probability

    @property
    def requires(self) -> frozenset[Capability]:
        return super().requires | self.token_estimator.requires

    @property
    def uses_models(self) -> bool:
        return super().uses_models or self.token_estimator.uses_models

    def compute(self, ctx: Context) -> Scores:
        token = ctx.get(self.token_estimator)
        values, raw = np.asarray(token.values, dtype=float), np.asarray(token.raw, dtype=float)
        pairs = [_reduce(values[c.token_indices], raw[c.token_indices], self.reduce) for c in self.claim_list(ctx)]
        return self._claim_scores(ctx, [v for v, _ in pairs], [r for _, r in pairs])


@estimators.register
@dataclass(frozen=True, kw_only=True)
class ClaimProbability(ClaimForm):
    """Probability of the claim's tokens: their product (``reduce=geometric_mean`` for the length-fair form)."""

    token: str = "token_probability"
    reduce: str = "product"


@estimators.register
@dataclass(frozen=True, kw_only=True)
class ClaimMaxEntropy(ClaimForm):
    """Highest token entropy in the claim: ``values`` = −max H, ``raw`` = max H (nats)."""

    token: str = "token_entropy"
    reduce: str = "min"


# --------------------------------------------------------------------------- CCP


def alternatives(trace: Trace, i: int) -> list[tuple[str, float]]:
    """Position ``i``'s alternatives as ``(text, log-prob)``: the emitted token first (inserted even when the
    top-k missed it), then the other top-k tokens, ``top_k`` in all."""
    k = max(len(trace.top_ids[i]), 1)
    out = [(trace.tokens[i], trace.logprobs[i])]
    for tid, text, lp in zip(trace.top_ids[i], trace.top_tokens[i], trace.top_logprobs[i], strict=True):
        if tid != trace.token_ids[i] and len(out) < k:
            out.append((text, lp))
    return out


def ccp_from(logprobs: Sequence[float], verdicts: Sequence[str]) -> float:
    """``Σ_E p / Σ_{E∪C} p`` over the alternatives (verdict of the emitted one is ``entail``)."""
    lp = np.asarray(logprobs, dtype=float)
    entail = lp[[v == "entail" for v in verdicts]]
    both = lp[[v in ("entail", "contradict") for v in verdicts]]
    return float(np.exp(np.logaddexp.reduce(entail) - np.logaddexp.reduce(both)))


def _judge(ctx: Context, similarity: str, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """Verdicts of every distinct pair (one batched call). Empty texts are unrelated to anything (neutral)
    and equal texts keep the meaning (entail) without asking."""
    todo = list(dict.fromkeys(p for p in pairs if p[0] and p[1] and p[0] != p[1]))
    sim = make_similarity(similarity)
    got = sim.verdicts([a for a, _ in todo], [b for _, b in todo], question=question_text(ctx.trace),
                       backend=ctx.backend) if todo else []
    out = dict(zip(todo, got, strict=True))
    for a, b in pairs:
        if (a, b) not in out:
            out[a, b] = "entail" if a and a == b else "neutral"
    return out


@dataclass(frozen=True)
class PositionCcp:
    """CCP of one answer position: the value, whether every alternative was neutral, and the alternatives
    judged to change the meaning as ``(text, probability)``."""

    value: float
    all_neutral: bool
    changers: tuple[tuple[str, float], ...]


def position_ccp(alts: Sequence[tuple[str, float]], verdicts: Sequence[str]) -> PositionCcp:
    verdicts = ["entail", *verdicts[1:]]
    changers = tuple((strip_token(t), math.exp(lp)) for (t, lp), v in zip(alts, verdicts, strict=True)
                     if v == "contradict")
    return PositionCcp(ccp_from([lp for _, lp in alts], verdicts), all(v == "neutral" for v in verdicts[1:]),
                       changers)


@dataclass(frozen=True, kw_only=True)
class TokenCcpValues(Stat[tuple[PositionCcp, ...]]):
    """CCP of every answer position in ``no_context`` mode (bare stripped token texts compared); shared by
    the token, claim and sequence estimators. Special tokens (end of turn) count 1, all neutral."""

    similarity: str = "embedding"

    def compute(self, ctx: Context) -> tuple[PositionCcp, ...]:
        t = ctx.trace
        alts = [alternatives(t, i) for i in range(len(t))]
        pairs = [(strip_token(a[0][0]), strip_token(x)) for a in alts for x, _ in a[1:]]
        verdict = _judge(ctx, self.similarity, pairs)
        out = []
        for i, a in enumerate(alts):
            if t.special[i]:
                out.append(PositionCcp(1.0, True, ()))
                continue
            w0 = strip_token(a[0][0])
            out.append(position_ccp(a, ["entail", *(verdict[w0, strip_token(x)] for x, _ in a[1:])]))
        return tuple(out)


@dataclass(frozen=True, kw_only=True)
class _CcpParams(Estimator):
    needs = _ALTERNATIVES
    is_probability = True
    similarity: str = "embedding"

    def __post_init__(self) -> None:
        super().__post_init__()
        sim = make_similarity(self.similarity)
        if not sim.judges_meaning:
            sim.verdicts([], [])  # raises the clear "cannot tell" error of kinds without verdicts
        object.__setattr__(self, "similarity", sim.spec)

    @property
    def requires(self) -> frozenset[Capability]:
        return super().requires | make_similarity(self.similarity).requires

    @property
    def uses_models(self) -> bool:
        return super().uses_models or make_similarity(self.similarity).uses_models

    def positions(self, ctx: Context) -> tuple[PositionCcp, ...]:
        if not ctx.trace.top_k:
            raise CapabilityError(f"{self.registry_id} compares each token with its top-k alternatives; "
                                  "this trace has none (top_k=0): generate or score with --top-k ≥ 2")
        return ctx.get(TokenCcpValues(similarity=self.similarity))


def _changer_text(changers: Sequence[tuple[str, float]]) -> list[dict[str, Any]]:
    return [{"alternative": text, "prob": p} for text, p in changers]


@estimators.register
@dataclass(frozen=True, kw_only=True)
class TokenCcp(_CcpParams):
    """CCP of each token: probability mass of alternatives that keep its meaning over those that keep or change
    it (neutral ones dropped). ``raw`` = −CCP (LM-Polygraph's uncertainty). Extras: ``all_neutral``, ``changers``."""

    level = Level.TOKEN

    def compute(self, ctx: Context) -> Scores:
        pos = self.positions(ctx)
        v = np.asarray([p.value for p in pos])
        return self._scores(ctx, v, -v, extras={"all_neutral": [p.all_neutral for p in pos],
                                                  "changers": [_changer_text(p.changers) for p in pos]})


@estimators.register
@dataclass(frozen=True, kw_only=True)
class SequenceCcp(_CcpParams):
    """CCP of the whole answer: the product of every token's CCP (no stopword skip). ``raw`` = −CCP.
    Extra ``neutral_share``: the fraction of positions where every alternative was neutral."""

    level = Level.SEQUENCE
    token_form = TokenCcp

    def compute(self, ctx: Context) -> Scores:
        pos = [p for p, s in zip(self.positions(ctx), ctx.trace.special, strict=True) if not s]
        v = float(np.prod([p.value for p in pos])) if pos else 1.0
        share = float(np.mean([p.all_neutral for p in pos])) if pos else math.nan
        return self._scores(ctx, v, -v, extras={"neutral_share": [share]})


@estimators.register(aliases=("ccp",))
@dataclass(frozen=True, kw_only=True)
class ClaimConditionedProbability(_CcpParams, ClaimEstimator):
    """CCP of each claim: the product of its tokens' CCP, stopwords skipped (METHODS.md §2.6). ``raw`` = −CCP.
    Extras per claim: ``neutral_share`` (of its scored tokens, all alternatives neutral) and ``changers``
    (the alternatives that would change the claim, with the token they replace)."""

    token_form = TokenCcp
    context: Literal["no_context", "fact_pref"] = "no_context"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.context not in _CONTEXTS:
            raise UserInputError(f"context must be one of {', '.join(_CONTEXTS)}, got {self.context!r}")

    def _fact_pref(self, ctx: Context, claims: Sequence[Claim]) -> list[list[PositionCcp]]:
        t = ctx.trace
        jobs: list[tuple[list[tuple[str, float]], list[tuple[str, str]]]] = []
        for c in claims:
            prefix = ""
            for i in c.token_indices:
                a = alternatives(t, i)
                piece = t.text[slice(*t.offsets[i])]
                jobs.append((a, [((prefix + piece).strip(), (prefix + x).strip()) for x, _ in a[1:]]))
                prefix += piece
        verdict = _judge(ctx, self.similarity, [p for _, pairs in jobs for p in pairs])
        out, k = [], 0
        for c in claims:
            row = []
            for _ in c.token_indices:
                a, pairs = jobs[k]
                k += 1
                row.append(position_ccp(a, ["entail", *(verdict[p] for p in pairs)]))
            out.append(row)
        return out

    def compute(self, ctx: Context) -> Scores:
        claims = self.claim_list(ctx)
        if self.context == "fact_pref":
            if not ctx.trace.top_k:
                self.positions(ctx)  # raises the top-k error
            per_claim = self._fact_pref(ctx, claims)
        else:
            pos = self.positions(ctx) if claims else ()
            per_claim = [[pos[i] for i in c.token_indices] for c in claims]
        values, shares, changers = [], [], []
        for c, row in zip(claims, per_claim, strict=True):
            kept = [(i, p) for i, p in zip(c.token_indices, row, strict=True) if not is_stopword(ctx.trace.tokens[i])]
            values.append(float(np.prod([p.value for _, p in kept])) if c.token_indices else math.nan)
            shares.append(float(np.mean([p.all_neutral for _, p in kept])) if kept else math.nan)
            changers.append([{"token": i, "emitted": strip_token(ctx.trace.tokens[i]), **ch}
                             for i, p in kept for ch in _changer_text(p.changers)])
        v = np.asarray(values, dtype=float)
        return self._claim_scores(ctx, v, -v, extras={"neutral_share": shares, "changers": changers})


# --------------------------------------------------------------------------- P(True) per claim


@estimators.register
@dataclass(frozen=True, kw_only=True)
class ClaimPTrue(ClaimEstimator):
    """P(True) of each claim: the model judges the claim as a possible answer to the question (METHODS.md §3.4's
    prompt, normalised over True/False). ``raw`` = −log P(True)."""

    needs = frozenset({Capability.FORCED_SCORING})
    is_probability = True

    def compute(self, ctx: Context) -> Scores:
        claims = self.claim_list(ctx)
        backend: Any = require_backend(ctx, "claim_p_true") if claims else None
        chat = ctx.trace.config.chat
        values = []
        for c in claims:
            prompt = PTRUE_PROMPT.format(question=question_text(ctx.trace), brainstorm="", answer=c.text.strip())
            lp_true = backend.score(prompt, "True", chat=chat, end_of_turn=False).logprobs[0]
            lp_false = backend.score(prompt, "False", chat=chat, end_of_turn=False).logprobs[0]
            values.append(float(1.0 / (1.0 + np.exp(lp_false - lp_true))))
        v = np.asarray(values, dtype=float)
        return self._claim_scores(ctx, v, -np.log(np.clip(v, 1e-300, None)))


def with_claims_model(chosen: Sequence[Estimator], model: str | None) -> list[Estimator]:
    """``chosen`` with every claim-level estimator cutting claims with ``model`` (``llm:model=<model>``), the model
    loaded now so an unreachable one fails before any generation. ``None`` leaves them as they are."""
    import dataclasses

    if model is None:
        return list(chosen)
    if not any(isinstance(e, ClaimEstimator) for e in chosen):
        raise UserInputError("--claims-model applies to claim-level scores; add one, e.g. -e ccp")
    extractor = make_extractor(f"llm:model={model}")
    extractor.connect()
    return [dataclasses.replace(e, claims=extractor.spec) if isinstance(e, ClaimEstimator) else e for e in chosen]
