"""Relative confidence (Shrivastava et al., METHODS.md §3.6): pairwise matchups between questions.

The model is shown two (question, its own answer) pairs and asked which answer it is more confident is correct;
each reply is a game, and ratings come from **Bradley–Terry** (MLE, MM iteration with a weak prior) or **Elo**
(K = 32, start 1500, averaged over shuffled match orders). Ratings are ordinal: only their order means something.

Two ways to use it:

* over a batch — :func:`relative_confidence` ``(items, backend, matchups=10, method="bradley_terry")`` gives one
  score per item from ``matchups`` random opponents each, drawn within the batch (the method as published);
* per item — the :class:`RelativeConfidence` estimator plays the trace against a fixed reference pool of
  questions (``pool``, default :data:`REFERENCE_QUESTIONS`, answered by the same model in at most
  ``pool_max_new_tokens`` tokens and rated by a round robin once per process), so a single answer gets a score
  comparable across items (``relative_confidence`` in ``ask`` / ``bench``). The pool and its answer length
  change the scores, so they are parameters (``-e 'relative_confidence:pool=["What is 2+2?","Name a colour."]'``).

Replies that name neither question are skipped (counted in :class:`Matchups`), never read as a loss.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..capability import Capability
from ..errors import UserInputError
from ..registry import estimators
from ..scores import Level, Scores
from ..stat import Context
from ..stats import resources
from ..stats.sampling import question_text, require_backend
from ..trace import Trace
from .base import Estimator, text_tuple
from .verbalized import bradley_terry

COMPARE_PROMPT = (
    "Below are two questions, each with the answer you gave.\n\n"
    "Question 1: {q1}\nYour answer 1: {a1}\n\nQuestion 2: {q2}\nYour answer 2: {a2}\n\n"
    "For which of the two questions are you more confident that your answer is correct? Reply with 1 or 2 only."
)
REFERENCE_QUESTIONS: tuple[str, ...] = (
    "What is the capital of France?",
    "How many legs does a spider have?",
    "Who wrote the play Hamlet?",
    "What is the chemical symbol for gold?",
    "In which year did the Berlin Wall fall?",
    "What is the capital of Burkina Faso?",
    "Who was the 14th president of the United States?",
    "What is the atomic number of molybdenum?",
)
METHODS = ("bradley_terry", "elo")


@dataclass
class Matchups:
    """Game outcomes between players: ``(i, j, s)`` with ``s`` = 1 if i won, 0 if j won; ``skipped`` unclear replies."""

    games: list[tuple[int, int, float]] = field(default_factory=list)
    skipped: int = 0

    def wins(self, n: int) -> np.ndarray:
        w = np.zeros((n, n))
        for i, j, s in self.games:
            w[i, j] += s
            w[j, i] += 1 - s
        return w


def parse_choice(text: str) -> float:
    """1.0 when the reply picks question 1, 0.0 for question 2, NaN when it picks neither (or both)."""
    picks = set(re.findall(r"(?<![\d.])([12])(?![\d.])", text[:40]))
    if picks == {"1"}:
        return 1.0
    if picks == {"2"}:
        return 0.0
    return float("nan")


def play(backend: Any, pairs: Sequence[tuple[tuple[str, str], tuple[str, str]]], *, rng: random.Random) -> list[float]:
    """Ask the model about each pair (one batched call, order shuffled against position bias).

    Returns, per pair, 1.0 if the first pair won, 0.0 if the second, NaN if the reply was unclear.
    """
    prompts, flipped = [], []
    for first, second in pairs:
        flip = rng.random() < 0.5
        (q1, a1), (q2, a2) = (second, first) if flip else (first, second)
        prompts.append(COMPARE_PROMPT.format(q1=q1, a1=a1, q2=q2, a2=a2))
        flipped.append(flip)
    if not prompts:
        return []
    replies = backend.generate_many(prompts, max_new_tokens=4, temperature=0.0)
    out = []
    for r, flip in zip(replies, flipped, strict=True):
        s = parse_choice(r.text)
        out.append(1.0 - s if flip and not np.isnan(s) else s)
    return out


def elo(n: int, games: Sequence[tuple[int, int, float]], *, k: float = 32.0, initial: float = 1500.0,
        shuffles: int = 10, seed: int = 0, fixed: dict[int, float] | None = None) -> np.ndarray:
    """Elo ratings averaged over ``shuffles`` random game orders; players in ``fixed`` keep their rating."""
    rng = random.Random(seed)
    total = np.zeros(n)
    order = list(games)
    for _ in range(max(shuffles, 1)):
        rng.shuffle(order)
        r = np.full(n, initial, dtype=float)
        for i, v in (fixed or {}).items():
            r[i] = v
        for i, j, s in order:
            e = 1.0 / (1.0 + 10 ** ((r[j] - r[i]) / 400))
            if not fixed or i not in fixed:
                r[i] += k * (s - e)
            if not fixed or j not in fixed:
                r[j] -= k * (s - e)
        total += r
    return total / max(shuffles, 1)


def rate(n: int, matchups: Matchups, method: str, *, seed: int = 0) -> np.ndarray:
    """Ratings of ``n`` players: ``log π`` (Bradley–Terry) or Elo points."""
    if method == "elo":
        return elo(n, matchups.games, seed=seed)
    return np.log(bradley_terry(matchups.wins(n)))


def relative_confidence(items: Sequence[Trace | tuple[str, str]], backend: Any, *, matchups: int = 10,
                        method: Literal["bradley_terry", "elo"] = "bradley_terry", seed: int = 0) -> np.ndarray:
    """One relative-confidence score per item of a batch (higher = the model is surer of that answer).

    ``items`` are traces or ``(question, answer)`` pairs; each plays ``matchups`` games against random other
    items of the batch (``N·matchups`` model calls, batched).
    """
    if method not in METHODS:
        raise UserInputError(f"method {method!r} is unknown; valid: {', '.join(METHODS)}")
    if matchups < 1:
        raise UserInputError(f"matchups must be ≥ 1, got {matchups}")
    pairs = [(question_text(t), t.text.strip()) if isinstance(t, Trace) else t for t in items]
    n = len(pairs)
    if n < 2:
        raise UserInputError(f"relative confidence compares questions: give at least 2 items, got {n}")
    rng = random.Random(seed)
    schedule = [(i, rng.choice([j for j in range(n) if j != i])) for i in range(n) for _ in range(matchups)]
    result = Matchups()
    for (i, j), s in zip(schedule, play(backend, [(pairs[i], pairs[j]) for i, j in schedule], rng=rng), strict=True):
        if np.isnan(s):
            result.skipped += 1
        else:
            result.games.append((i, j, s))
    return rate(n, result, method, seed=seed)


@dataclass(frozen=True)
class ReferencePool:
    """Reference questions with the model's answers and their ratings (both methods)."""

    pairs: tuple[tuple[str, str], ...]
    bt_strength: np.ndarray
    elo: np.ndarray


def reference_pool(backend: Any, questions: Sequence[str] = REFERENCE_QUESTIONS, *, max_new_tokens: int = 32,
                   seed: int = 0) -> ReferencePool:
    """Answer the reference questions (greedy, ``max_new_tokens``) and rate them by a full round robin (once per
    process, model and setting)."""

    def build() -> ReferencePool:
        answers = backend.generate_many(list(questions), max_new_tokens=max_new_tokens, temperature=0.0)
        pairs = tuple((q, a.text.strip()) for q, a in zip(questions, answers, strict=True))
        schedule = [(i, j) for i in range(len(pairs)) for j in range(i + 1, len(pairs))]
        m = Matchups()
        outcomes = play(backend, [(pairs[i], pairs[j]) for i, j in schedule], rng=random.Random(seed))
        for (i, j), s in zip(schedule, outcomes, strict=True):
            if not np.isnan(s):
                m.games.append((i, j, s))
        return ReferencePool(pairs, bradley_terry(m.wins(len(pairs))), elo(len(pairs), m.games, seed=seed))

    digest = hashlib.sha256(json.dumps(list(questions)).encode()).hexdigest()[:16]
    return resources.load(f"relative-pool:{backend.model_id}:{digest}:{max_new_tokens}:{seed}", build)


def strength_against(pool_strength: np.ndarray, games: Sequence[tuple[int, float]], *, prior: float = 1.0,
                     iterations: int = 200) -> float:
    """Bradley–Terry strength of a new player against opponents of fixed strength (MM iteration, weak prior)."""
    dummy = float(np.mean(pool_strength))
    wins = sum(s for _, s in games) + prior
    pi = dummy
    for _ in range(iterations):
        denom = sum(1.0 / (pi + pool_strength[j]) for j, _ in games) + 2 * prior / (pi + dummy)
        pi = wins / denom
    return pi


@estimators.register
@dataclass(frozen=True, kw_only=True)
class RelativeConfidence(Estimator):
    """Relative confidence of the trace's answer from ``matchups`` games against a fixed reference pool.

    ``pool`` are the reference questions (a list is stored as a tuple), answered with at most
    ``pool_max_new_tokens`` tokens. ``values`` = ``raw`` = log Bradley–Terry strength relative to the pool
    (or Elo points); ordinal.
    """

    level = Level.SEQUENCE
    needs = frozenset({Capability.GENERATION})
    matchups: int = 8
    method: Literal["bradley_terry", "elo"] = "bradley_terry"
    pool: tuple[str, ...] = REFERENCE_QUESTIONS
    pool_max_new_tokens: int = 32

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise UserInputError(f"method {self.method!r} is unknown; valid: {', '.join(METHODS)}")
        if self.matchups < 1:
            raise UserInputError(f"matchups must be ≥ 1, got {self.matchups}")
        object.__setattr__(self, "pool", text_tuple("pool", self.pool))
        if isinstance(self.pool_max_new_tokens, bool) or not isinstance(self.pool_max_new_tokens, int) \
                or self.pool_max_new_tokens < 1:
            raise UserInputError(f"pool_max_new_tokens must be an integer ≥ 1, got {self.pool_max_new_tokens!r}")

    def compute(self, ctx: Context) -> Scores:
        backend: Any = require_backend(ctx, "relative_confidence")
        pool = reference_pool(backend, self.pool, max_new_tokens=self.pool_max_new_tokens, seed=0)
        rng = random.Random(ctx.seed)
        opponents = [rng.randrange(len(pool.pairs)) for _ in range(self.matchups)]
        me = (question_text(ctx.trace), ctx.trace.text.strip())
        outcomes = play(backend, [(me, pool.pairs[j]) for j in opponents], rng=rng)
        games = [(j, s) for j, s in zip(opponents, outcomes, strict=True) if not np.isnan(s)]
        if self.method == "elo":
            n = len(pool.pairs)
            fixed = {j: float(pool.elo[j]) for j in range(n)}
            value = float(elo(n + 1, [(n, j, s) for j, s in games], fixed=fixed, seed=ctx.seed)[n])
        else:
            value = float(np.log(strength_against(pool.bt_strength, games) / np.mean(pool.bt_strength)))
        return self._scores(ctx, value, value)

