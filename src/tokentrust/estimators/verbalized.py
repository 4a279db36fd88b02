"""Verbalised confidence (Xiong et al., METHODS.md §3.5): ask the model how sure it is, in words.

Three independent choices, all parameters of :class:`Verbalized`:

* ``strategy`` — how to ask: ``vanilla`` (answer + confidence), ``cot`` (reason step by step first),
  ``top_k`` (``k`` guesses with probabilities; confidence = P1), ``multi_step`` (a confidence per step;
  confidence = their product), ``self_probing`` (a separate query shows the trace's own answer and asks how
  likely it is correct).
* ``sampling`` — how many answers: ``none`` (one greedy query), ``self_random`` (``n_samples`` sampled
  replies at ``temperature``, one batched call), ``perturbation`` (``n_samples`` rephrasings of the request,
  greedy), ``misleading`` (query 0 plain, the others add a hint naming another answer — drawn from samples
  of the plain question, or a nearby number for numeric answers — and an instruction to ignore it).
* ``aggregation`` — how to combine them: ``consistency`` (share of replies agreeing with the target answer:
  the majority, or query 0's under misleading hints), ``avg_conf`` (confidence-weighted agreement),
  ``pair_rank`` (``top_k`` only: Bradley–Terry fit of the ranked guesses on the simplex; confidence = max P).

``values`` = ``raw`` = the confidence in [0, 1]; NaN when no reply states a readable confidence (a missing
confidence stays missing, never 0). A parameter that the chosen strategy and sampling would ignore
(``top_k`` without strategy top_k, ``temperature`` without self_random sampling, ``hints`` without misleading
sampling, …) is refused when it is not the default, so equal ids always mean equal computations.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np

from ..capability import Capability
from ..errors import UserInputError
from ..registry import estimators
from ..scores import Level, Scores
from ..stat import Context, Stat
from ..stats.sampling import Samples, question_text, require_backend
from ._confidence_text import (
    normalise_answer,
    parse_answer,
    parse_confidence,
    parse_step_confidences,
    parse_top_k,
)
from .base import Estimator, text_tuple

STRATEGIES = ("vanilla", "cot", "top_k", "multi_step", "self_probing")
SAMPLINGS = ("none", "self_random", "perturbation", "misleading")
AGGREGATIONS = ("consistency", "avg_conf", "pair_rank")

PROMPTS = {
    "vanilla": (
        "Answer the question and say how confident you are (0-100%) that your answer is correct. "
        "Reply in exactly this format, with no explanation.\n\n"
        "Example:\nQuestion: What is the capital of Italy?\nAnswer: Rome\nConfidence: 90%\n\n"
        "Question: {question}"
    ),
    "cot": (
        "Answer the question. First explain your reasoning step by step, then end with exactly two lines: "
        "'Answer: <answer>' and 'Confidence: <0-100>%' (how likely your answer is correct).\n\n"
        "Example:\nQuestion: What is the capital of Italy?\nReasoning: Italy's government sits in Rome.\n"
        "Answer: Rome\nConfidence: 90%\n\nQuestion: {question}"
    ),
    "top_k": (
        "Give your {k} best guesses for the question and the probability (0.0 to 1.0) that each is correct. "
        "Reply only in this format:\n{lines}\n\nQuestion: {question}"
    ),
    "multi_step": (
        "Answer the question in at most {steps} short steps. Write each step as "
        "'Step k: <reasoning> Confidence: <0-100>%'. Then write 'Answer: <answer>' and "
        "'Overall confidence: <0-100>%'.\n\nQuestion: {question}"
    ),
    "self_probing": (
        "Question: {question}\nProposed answer: {answer}\n"
        "How likely is the proposed answer to be correct? Explain briefly, then end with 'Confidence: <0-100>%'."
    ),
}
#: Rephrasings of the request for ``sampling="perturbation"`` (the first is the plain prompt).
PERTURBATIONS = (
    "{prompt}",
    "Please help with the following.\n{prompt}",
    "{prompt}\nTake care to be accurate.",
    "Here is a task for you.\n\n{prompt}",
    "I need an answer to a question.\n{prompt}",
    "{prompt}\nBe honest about your certainty.",
    "Task:\n{prompt}",
    "A quick question for you.\n{prompt}",
)
#: Hint phrases of increasing authority for ``sampling="misleading"`` (the default ``hints``).
HINTS: tuple[str, ...] = (
    "I think the answer should be", "My teacher tells me the answer is", "The textbook shows that the answer is",
    "An expert says that the answer is", "Latest research shows that the answer is", "Wikipedia claims that the answer is",
    "I read online that the answer is", "I vaguely remember the answer is", "I am 80% sure the answer is",
    "I am pretty sure the answer is", "Undoubtedly the answer is", "With my 100% confidence the answer is",
)
HINT_NOTE = "Note: the confidence should reflect how sure you are of your own answer, not of the hint."
MAX_NEW_TOKENS = {"vanilla": 32, "top_k": 64, "cot": 160, "multi_step": 160, "self_probing": 96}


@dataclass(frozen=True)
class Reply:
    """One parsed reply: the answer, its stated confidence (NaN if none), and the ranked guesses for top-k."""

    text: str
    answer: str
    confidence: float
    guesses: tuple[tuple[str, float], ...] = ()


def pair_rank(rankings: list[list[str]], *, iterations: int = 500) -> dict[str, float]:
    """Categorical ``P`` over answers maximising ``Σ_k Σ_{i ≻_k j} log(P_i / (P_i + P_j))`` (Bradley–Terry MM).

    In each ranking an answer beats those below it and every answer the ranking does not list. A weak prior
    (one virtual win and loss against a uniform dummy) keeps undefeated or winless answers finite.
    """
    items = sorted({a for r in rankings for a in r})
    if not items:
        return {}
    idx = {a: i for i, a in enumerate(items)}
    n = len(items)
    wins = np.zeros((n, n))
    for r in rankings:
        listed = [idx[a] for a in dict.fromkeys(r)]
        rest = [i for i in range(n) if i not in listed]
        for pos, i in enumerate(listed):
            for j in listed[pos + 1 :] + rest:
                wins[i, j] += 1
    return {a: float(v) for a, v in zip(items, bradley_terry(wins, iterations=iterations), strict=True)}


def bradley_terry(wins: np.ndarray, *, iterations: int = 500, prior: float = 1.0, tol: float = 1e-10) -> np.ndarray:
    """Bradley–Terry strengths ``π`` (summing to 1) from ``wins[i, j]`` = times i beat j (MM / Zermelo iteration).

    ``prior`` adds that many virtual wins and losses against a dummy player of strength ``1/n``.
    """
    wins = np.asarray(wins, dtype=float)
    n = len(wins)
    if n == 0:
        return np.zeros(0)
    games = wins + wins.T
    pi = np.full(n, 1.0 / n)
    dummy = 1.0 / n
    w = wins.sum(axis=1) + prior
    for _ in range(iterations):
        denom = (games / (pi[:, None] + pi[None, :])).sum(axis=1) + 2 * prior / (pi + dummy)
        new = w / denom
        new /= new.sum()
        if np.max(np.abs(new - pi)) < tol:
            pi = new
            break
        pi = new
    return pi


def _numeric_decoy(answer: str, rng: random.Random) -> str | None:
    try:
        a = float(answer.replace(",", ""))
    except ValueError:
        return None
    a_int = round(abs(a)) or 1
    off = 0
    while off == 0:
        off = rng.randint(-a_int, a_int)
    value = a + off
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@dataclass(frozen=True, kw_only=True)
class VerbalizedReplies(Stat[tuple[Reply, ...]]):
    """The parsed replies to the verbalised-confidence queries of one setting (shared across aggregations)."""

    strategy: str = "vanilla"
    sampling: str = "none"
    n_samples: int = 5
    temperature: float = 0.7
    top_k: int = 4
    steps: int = 3
    max_new_tokens: int | None = None
    hints: tuple[str, ...] = HINTS

    def prompt(self, ctx: Context) -> str:
        q = question_text(ctx.trace)
        if self.strategy == "top_k":
            lines = "\n".join(f"G{i}: <guess {i}>\nP{i}: <probability>" for i in range(1, self.top_k + 1))
            return PROMPTS["top_k"].format(question=q, k=self.top_k, lines=lines)
        return PROMPTS[self.strategy].format(question=q, steps=self.steps, answer=ctx.trace.text.strip())

    def compute(self, ctx: Context) -> tuple[Reply, ...]:
        backend: Any = require_backend(ctx, f"verbalized confidence ({self.strategy})")
        prompt = self.prompt(ctx)
        budget = self.max_new_tokens or MAX_NEW_TOKENS[self.strategy]
        if self.sampling == "self_random":
            traces = backend.sample(prompt, n=self.n_samples, temperature=self.temperature, seed=ctx.seed,
                                    max_new_tokens=budget)
            return tuple(self._parse(t.text) for t in traces)
        if self.sampling == "perturbation":
            prompts = [PERTURBATIONS[i % len(PERTURBATIONS)].format(prompt=prompt) for i in range(self.n_samples)]
        elif self.sampling == "misleading":
            first = self._parse(backend.generate(prompt, max_new_tokens=budget, temperature=0.0).text)
            prompts = self._hinted(ctx, prompt, first.answer)
            rest = backend.generate_many(prompts, max_new_tokens=budget, temperature=0.0) if prompts else []
            return (first, *(self._parse(t.text) for t in rest))
        else:
            prompts = [prompt]
        return tuple(self._parse(t.text) for t in backend.generate_many(prompts, max_new_tokens=budget,
                                                                          temperature=0.0))

    def _hinted(self, ctx: Context, prompt: str, answer: str) -> list[str]:
        rng = random.Random(ctx.seed)
        own = normalise_answer(answer)
        pool = [s.text.strip() for s in ctx.get(Samples(n=max(self.n_samples, 5), temperature=1.0,
                                                         max_new_tokens=32))]
        pool = [p for p in dict.fromkeys(pool) if p and normalise_answer(p) != own]
        out = []
        for i in range(1, self.n_samples):
            decoy = _numeric_decoy(answer, rng) or (rng.choice(pool) if pool else None)
            if decoy is None:
                break
            hint = f"Hint: {self.hints[(i - 1) % len(self.hints)]} {decoy}."
            out.append(f"{prompt}\n{hint}\n{HINT_NOTE}")
        return out

    def _parse(self, text: str) -> Reply:
        if self.strategy == "top_k":
            guesses = tuple(parse_top_k(text))
            if guesses:
                return Reply(text, guesses[0][0], guesses[0][1], guesses)
            return Reply(text, parse_answer(text), float("nan"))
        if self.strategy == "multi_step":
            steps = [s for s in parse_step_confidences(text) if not math.isnan(s)]
            conf = float(np.prod(steps)) if steps else parse_confidence(text)
            return Reply(text, parse_answer(text), conf)
        return Reply(text, parse_answer(text), parse_confidence(text))


@estimators.register(aliases=("verbalised",))
@dataclass(frozen=True, kw_only=True)
class Verbalized(Estimator):
    """The model's stated confidence (Xiong et al.): prompting ``strategy`` × ``sampling`` × ``aggregation``.

    ``hints`` are the phrases that introduce a misleading answer (``sampling="misleading"``; a list is stored as
    a tuple). Parameters the setting would ignore are refused unless they keep their default.
    """

    level = Level.SEQUENCE
    needs = frozenset({Capability.GENERATION})
    is_probability = True
    strategy: Literal["vanilla", "cot", "top_k", "multi_step", "self_probing"] = "vanilla"
    sampling: Literal["none", "self_random", "perturbation", "misleading"] = "none"
    aggregation: Literal["consistency", "avg_conf", "pair_rank"] = "avg_conf"
    n_samples: int = 5
    temperature: float = 0.7
    top_k: int = 4
    steps: int = 3
    max_new_tokens: int | None = None
    hints: tuple[str, ...] = HINTS

    def __post_init__(self) -> None:
        for name, value, valid in (("strategy", self.strategy, STRATEGIES), ("sampling", self.sampling, SAMPLINGS),
                                   ("aggregation", self.aggregation, AGGREGATIONS)):
            if value not in valid:
                raise UserInputError(f"{name} {value!r} is unknown; valid: {', '.join(valid)}")
        if self.aggregation == "pair_rank" and self.strategy != "top_k":
            raise UserInputError("aggregation 'pair_rank' needs ranked guesses: use strategy=top_k")
        if self.n_samples < 1 or self.top_k < 1 or self.steps < 1:
            raise UserInputError("n_samples, top_k and steps must be ≥ 1, got "
                                 f"{self.n_samples}, {self.top_k}, {self.steps}")
        if self.sampling == "self_random" and self.temperature <= 0:
            raise UserInputError(f"sampling needs temperature > 0, got {self.temperature}")
        object.__setattr__(self, "hints", text_tuple("hints", self.hints))
        self._refuse_ignored()

    def _refuse_ignored(self) -> None:
        """Refuse a non-default parameter that this strategy and sampling would not use (same id, same value)."""
        several_replies = ("when several replies are combined (sampling other than none, n_samples ≥ 2, "
                           "strategy other than self_probing)")
        several = self.sampling != "none" and self.n_samples >= 2 and self.strategy != "self_probing"
        applies = {  # parameter: (used in this setting, when it applies)
            "n_samples": (self.sampling != "none", "with sampling self_random, perturbation or misleading"),
            "temperature": (self.sampling == "self_random", "with sampling=self_random (other samplings are greedy)"),
            "top_k": (self.strategy == "top_k", "with strategy=top_k"),
            "steps": (self.strategy == "multi_step", "with strategy=multi_step"),
            "hints": (self.sampling == "misleading", "with sampling=misleading"),
            "aggregation": (several, several_replies),
        }
        defaults = {f.name: f.default for f in fields(self)}
        for name, (used, when) in applies.items():
            value = getattr(self, name)
            if not used and value != defaults[name]:
                raise UserInputError(f"{name}={value!r} applies only {when}; here strategy={self.strategy!r}, "
                                     f"sampling={self.sampling!r}")

    @property
    def requires(self) -> frozenset[Capability]:
        """Generation, plus sampling for the ``self_random`` and ``misleading`` sampling strategies."""
        return self.needs | ({Capability.SAMPLING} if self.sampling in ("self_random", "misleading") else set())

    def compute(self, ctx: Context) -> Scores:
        replies = ctx.get(VerbalizedReplies(
            strategy=self.strategy, sampling=self.sampling,
            n_samples=self.n_samples if self.sampling != "none" else 1, temperature=self.temperature,
            top_k=self.top_k, steps=self.steps, max_new_tokens=self.max_new_tokens, hints=self.hints,
        ))
        c = aggregate(list(replies), self.aggregation, misleading=self.sampling == "misleading",
                      probing=self.strategy == "self_probing")
        return self._scores(ctx, c, c)



def aggregate(replies: list[Reply], aggregation: str, *, misleading: bool = False, probing: bool = False) -> float:
    """One confidence from several parsed replies (see module doc); NaN when none states a confidence."""
    confs = np.asarray([r.confidence for r in replies], dtype=float)
    if len(replies) == 1 or probing:
        return float(np.nanmean(confs)) if np.any(~np.isnan(confs)) else float("nan")
    if aggregation == "pair_rank":
        p = pair_rank([[normalise_answer(g) for g, _ in r.guesses] or [normalise_answer(r.answer)] for r in replies])
        return max(p.values()) if p else float("nan")
    answers = [normalise_answer(r.answer) for r in replies]
    target = answers[0] if misleading else Counter(answers).most_common(1)[0][0]
    agree = np.asarray([a == target for a in answers], dtype=float)
    if aggregation == "consistency":
        return float(agree.mean())
    known = ~np.isnan(confs)
    if not known.any():
        return float("nan")
    total = confs[known].sum()
    return float((agree[known] * confs[known]).sum() / total) if total > 0 else 0.0
