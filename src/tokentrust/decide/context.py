"""Trust the document or the model's own knowledge? RCR and SCR (METHODS.md §8, Huang et al., ICLR 2025).

**RCR** (rule-based confidence reasoning) is a deterministic rule over three signals: the answer *with* the
document ``a_ctx``, the closed-book answer ``a_int`` with its internal confidence ``c_int`` (any answer-level
estimator, default ``msp``), and the context reliability ``c_ctx``: the model is shown the question, the
document and its own closed-book answer and asked whether the document is correct and consistent with what it
knows; ``c_ctx`` = P("True") normalised over True/False (the P(True) read-out of §3.4). ``a_int`` and ``a_ctx``
*agree* when the normalised text of one is a whole-word span of the other (:func:`answers_agree`). The rule is
§8 step 3 (an undefined score counts as 0):

==============  ========================================  ==========================
answers agree   ``c_ctx ≥ c_int`` (``c_int < θ`` if θ)    answer given (``source``)
==============  ========================================  ==========================
yes             not asked                                 ``a_ctx`` (``context``)
no              yes                                       ``a_ctx`` (``context``)
no              no                                        ``a_int`` (``internal``)
==============  ========================================  ==========================

With ``theta`` set, ``c_ctx`` is never computed (2 calls, else 3 on disagreement) and ``c_int`` may be any
score oriented higher = more confident; without it ``c_int`` must be a probability (it is compared with one).

**SCR** (self-guided confidence reasoning) is one prompt (:data:`SCR_PROMPT`): the model weighs its own
knowledge against the document and ends with ``Answer: …``; :func:`final_answer` reads that line. It makes no
explicit choice, so its ``source`` is read off the answer: ``context`` when it states the document's answer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..config import Float, Record
from ..errors import UserInputError

__all__ = [
    "POLICIES", "RCR", "RELIABILITY_PROMPT", "SCR", "SCR_PROMPT", "ContextChoice", "Source", "answers_agree",
    "apply_policy", "canonical_policy", "context_reliability", "context_summary", "final_answer", "parse_policy", "policy_prompts",
    "situated_faithfulness",
]

Source = Literal["context", "internal"]
POLICIES = ("none", "rcr", "scr")

RELIABILITY_PROMPT = (
    "Question: {question}\nYour own answer, without any document: {internal}\nDocument: {document}\n"
    "Is the document correct and consistent with what you know?\n (A) True\n (B) False\nThe document is:"
)
SCR_PROMPT = (
    "Here is a document that may contain mistakes.\nDocument: {document}\n\nQuestion: {question}\n\n"
    "Think about what you know yourself and how sure you are, and whether the document agrees with it. "
    "If you are sure and the document contradicts you, trust yourself; otherwise trust the document. "
    "Reply in three short lines:\nMy own answer: <answer>, sure or unsure\nDocument reliable: <yes or no>\n"
    "Answer: <the final answer only>"
)
_ANSWER_LINE = re.compile(r"(?<!own )\banswer\s*:\s*([^\n]*\S)", re.IGNORECASE)


def answers_agree(a: str, b: str) -> bool:
    """True when the normalised text of one answer is a whole-word span of the other (``contains`` both ways)."""
    from ..bench.quality import normalize

    x, y = normalize(a), normalize(b)
    return bool(x and y) and (f" {x} " in f" {y} " or f" {y} " in f" {x} ")


def final_answer(text: str) -> str:
    """What follows the last ``Answer:`` of an SCR reply (not ``My own answer:``), else the whole text."""
    found = [m.group(1) for m in _ANSWER_LINE.finditer(text)]
    return found[-1] if found else text.strip()


def context_reliability(backend: Any, *, question: str, document: str, internal: str, chat: bool = True) -> float:
    """``c_ctx``: P("True") that ``document`` is correct given the model's closed-book answer ``internal``."""
    prompt = RELIABILITY_PROMPT.format(question=question, document=document, internal=internal.strip())
    lp_true = backend.score(prompt, "True", chat=chat, end_of_turn=False).logprobs[0]
    lp_false = backend.score(prompt, "False", chat=chat, end_of_turn=False).logprobs[0]
    return float(1.0 / (1.0 + np.exp(lp_false - lp_true)))


class ContextChoice(Record):
    """What a context policy answered, which source won, and the signals it used (``None``: not computed)."""

    policy: str
    source: Source | None
    answer: str
    answer_context: str | None = None
    answer_internal: str | None = None
    agree: bool | None = None
    internal_confidence: Float | None = None
    context_reliability: Float | None = None


def _zero_if_undefined(value: float | None) -> float:
    return 0.0 if value is None or math.isnan(value) else float(value)


@dataclass(frozen=True, kw_only=True)
class RCR:
    """The RCR rule (module docstring): ``score`` gives ``c_int``; ``theta`` switches to ``c_int < θ``."""

    score: str = "msp"
    theta: float | None = None

    def __post_init__(self) -> None:
        from ..scores import Level

        if self.theta is not None and (isinstance(self.theta, bool) or not isinstance(self.theta, (int, float))
                                       or math.isnan(self.theta)):
            raise UserInputError(f"theta must be a number, got {self.theta!r}")
        if not isinstance(self.score, str):
            raise UserInputError(f"score must be an estimator name such as 'msp', got {self.score!r}")
        est = self.estimator
        if est.level is not Level.SEQUENCE:
            raise UserInputError(f"rcr needs an answer-level score for the internal confidence; {est.id} is "
                                 f"{est.level.value}-level")
        if self.theta is None and not est.is_probability:
            raise UserInputError(f"rcr compares {est.id} with a probability (the context reliability), so give a "
                                 "probability score (msp, p_true, …) or a threshold: rcr:score=…,theta=<value>")

    @property
    def estimator(self) -> Any:
        from ..estimators.base import build_estimator

        return build_estimator(self.score)

    def choose(self, *, agree: bool, internal_confidence: float | None, context_reliability: float | None) -> Source:
        """The truth table: agreeing answers → context; else context iff ``c_ctx ≥ c_int`` (or ``c_int < θ``)."""
        if agree:
            return "context"
        c_int = _zero_if_undefined(internal_confidence)
        if self.theta is not None:
            return "context" if c_int < self.theta else "internal"
        return "context" if _zero_if_undefined(context_reliability) >= c_int else "internal"

    def decide(self, backend: Any, *, question: str, document: str, with_context: Any, closed_book: Any,
               seed: int = 0) -> ContextChoice:
        """Apply the rule to two traces of the same question (with the document, closed-book)."""
        from ..stat import Context

        agree = answers_agree(with_context.text, closed_book.text)
        c_int = float(Context(closed_book, backend, seed=seed).get(self.estimator).values[0])
        c_ctx = None
        if not agree and self.theta is None:
            c_ctx = context_reliability(backend, question=question, document=document, internal=closed_book.text,
                                        chat=closed_book.config.chat)
        source = self.choose(agree=agree, internal_confidence=c_int, context_reliability=c_ctx)
        return ContextChoice(policy="rcr", source=source,
                             answer=(with_context if source == "context" else closed_book).text,
                             answer_context=with_context.text, answer_internal=closed_book.text, agree=agree,
                             internal_confidence=c_int, context_reliability=c_ctx)


@dataclass(frozen=True, kw_only=True)
class SCR:
    """SCR as a prompt template: one call; the answer is the reply's last ``Answer:`` line."""

    def prompt(self, *, document: str, question: str) -> str:
        return SCR_PROMPT.format(document=document, question=question)


def parse_policy(spec: str) -> RCR | SCR | None:
    """``"none"`` → None, ``"scr"``, ``"rcr"`` or ``"rcr:score=p_true"`` / ``"rcr:score=…,theta=0.5"``."""
    from ..registry import instantiate, parse_spec

    name, kwargs = parse_spec(spec)
    if name not in POLICIES:
        raise UserInputError(f"unknown context policy {name!r}; use none, rcr or scr (rcr:score=<estimator>,theta=<x>)")
    if name == "none" or name == "scr":
        if kwargs:
            raise UserInputError(f"context policy {name!r} takes no parameters, got {spec!r}")
        return SCR() if name == "scr" else None
    return instantiate(RCR, kwargs, what="context policy 'rcr'")


def _policy_name(policy: RCR | SCR | None) -> str:
    return "none" if policy is None else type(policy).__name__.lower()


def canonical_policy(spec: str) -> str:
    """The spec checked and written one way: ``"none"``, ``"scr"``, ``"rcr"`` plus non-default parameters."""
    policy = parse_policy(spec)
    if not isinstance(policy, RCR):
        return _policy_name(policy)
    params = [f"score={policy.score}"] if policy.estimator.id != RCR().estimator.id else []
    params += [f"theta={policy.theta!r}"] if policy.theta is not None else []
    return "rcr" + (":" + ",".join(params) if params else "")


def policy_prompts(policy: RCR | SCR | None, prompt: Any, metadata: Mapping[str, Any]) -> list[Any]:
    """The prompts a policy generates for one item: [with document] (none), [with, closed-book] (rcr), [scr]."""
    if isinstance(policy, SCR):
        return [policy.prompt(document=metadata["document"], question=metadata["question"])]
    if isinstance(policy, RCR):
        return [prompt, metadata["question"]]
    return [prompt]


def apply_policy(policy: RCR | SCR | None, backend: Any, traces: Sequence[Any], metadata: Mapping[str, Any], *,
                 seed: int = 0) -> tuple[Any, ContextChoice]:
    """The trace to keep and the choice, from the traces of :func:`policy_prompts` (same order).

    ``metadata`` holds ``question`` and ``document``; ``document_answer`` (what the document states), when
    present, only labels SCR's source afterwards and is never shown to the model.
    """
    if isinstance(policy, RCR):
        choice = policy.decide(backend, question=metadata["question"], document=metadata["document"],
                               with_context=traces[0], closed_book=traces[1], seed=seed)
        return (traces[0] if choice.source == "context" else traces[1]), choice
    text = traces[0].text
    if policy is None:
        return traces[0], ContextChoice(policy="none", source="context", answer=text, answer_context=text)
    answer, stated = final_answer(text), metadata.get("document_answer")
    source: Source | None = None if stated is None else ("context" if answers_agree(answer, stated) else "internal")
    return traces[0], ContextChoice(policy=_policy_name(policy), source=source, answer=answer)


def _mean(values: list[bool]) -> float | None:
    return float(np.mean(values)) if values else None


def situated_faithfulness(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """``Acc_t`` (accuracy given a correct context), ``Acc_f`` (given a wrong one) and
    ``situated_faithfulness`` = (Acc_t + Acc_f) / 2, METHODS.md §8's definition; ``None`` when a side is empty.

    ``rows`` carry ``context_correct`` (rows where it is ``None`` are left out) and ``correct``.
    """
    rows = [r for r in rows if r.get("context_correct") is not None]
    acc_t = _mean([bool(r["correct"]) for r in rows if r["context_correct"]])
    acc_f = _mean([bool(r["correct"]) for r in rows if not r["context_correct"]])
    sf = None if acc_t is None or acc_f is None else (acc_t + acc_f) / 2
    return {"Acc_t": acc_t, "Acc_f": acc_f, "situated_faithfulness": sf,
            "n_t": sum(bool(r["context_correct"]) for r in rows),
            "n_f": sum(not r["context_correct"] for r in rows)}


def context_summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A run's context metrics from its items' context records (each with ``correct``): the policy,
    :func:`situated_faithfulness`, how often each source won, how often a wrong document's planted answer
    was given (``followed_wrong_document``), and RCR's two candidate answers' own accuracies."""
    out: dict[str, Any] = {"policy": rows[0]["policy"] if rows else None, **situated_faithfulness(rows),
                           "definition": "situated_faithfulness = (Acc_t + Acc_f) / 2 (METHODS.md §8)"}
    out["sources"] = {s: sum(r.get("source") == s for r in rows) for s in ("context", "internal")}
    out["followed_wrong_document"] = _mean([bool(r["follows_document"]) for r in rows
                                            if r.get("context_correct") is False and r.get("follows_document") is not None])
    for key in ("correct_context", "correct_internal"):
        out[f"acc_{key.removeprefix('correct_')}_answer"] = _mean([bool(r[key]) for r in rows
                                                                   if r.get(key) is not None])
    return out
