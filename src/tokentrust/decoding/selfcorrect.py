"""Self-correction metrics (Confidence v.s. Critique, METHODS.md §10) of a reflect-and-revise loop.

For each question, ``samples`` first answers ``a`` are drawn and each one is revised once (greedy) after the
model is asked to review it. With ``P(a_i)`` the share of correct first answers and ``P(b_i | a_i)``,
``P(b_i | ¬a_i)`` the share of correct revisions among revisions of correct / wrong first answers:

* Confidence Level ``CL = Σ_i P(a_i)·P(b_i|a_i) / Σ_i P(a_i)`` (keeps right answers right),
* Critique Score ``CS = Σ_i (1−P(a_i))·P(b_i|¬a_i) / Σ_i (1−P(a_i))`` (turns wrong answers right),
* and ``Acc_2 = Acc_1·CL + (1−Acc_1)·CS``, which :func:`metrics` checks on the counts.

The revise policy accepts revisions only when the validated ``CS > 1 − CL``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..config import GenerationConfig
from ..errors import UserInputError

REVIEW_PROMPT = ("Review your previous answer and find problems with it. If it is wrong, give the correct "
                 "answer; if it is right, repeat it. Answer with the final answer only.")


@dataclass(frozen=True)
class ItemRevisions:
    """One question's first answers and revisions, judged: ``pairs[k] = (first correct, revision correct)``."""

    item_id: str
    pairs: tuple[tuple[bool, bool], ...]
    first_answers: tuple[str, ...] = ()
    revisions: tuple[str, ...] = ()

    @property
    def p_first(self) -> float:
        return sum(a for a, _ in self.pairs) / len(self.pairs)

    def p_revised_given(self, first: bool) -> float:
        """Share of correct revisions among revisions of first answers that were ``first``; 0 when none."""
        chosen = [b for a, b in self.pairs if a == first]
        return sum(chosen) / len(chosen) if chosen else 0.0


def metrics(items: Sequence[ItemRevisions]) -> dict[str, float]:
    """``acc_1``, ``acc_2`` (measured), ``confidence_level``, ``critique_score``, ``identity_gap`` (measured
    ``Acc_2`` minus ``Acc_1·CL + (1−Acc_1)·CS``: zero up to rounding) and ``revise`` (1.0 when ``CS > 1 − CL``).
    CL (CS) is NaN when no first answer was right (wrong)."""
    if not items or any(not i.pairs for i in items):
        raise UserInputError("self-correction metrics need at least one question with at least one answer")
    p = [i.p_first for i in items]
    keep = [i.p_revised_given(True) for i in items]
    fix = [i.p_revised_given(False) for i in items]
    right, wrong = sum(p), sum(1 - x for x in p)
    cl = sum(a * b for a, b in zip(p, keep, strict=True)) / right if right else math.nan
    cs = sum((1 - a) * b for a, b in zip(p, fix, strict=True)) / wrong if wrong else math.nan
    acc1 = right / len(items)
    acc2 = sum(sum(b for _, b in i.pairs) / len(i.pairs) for i in items) / len(items)
    predicted = acc1 * (0.0 if math.isnan(cl) else cl) + (1 - acc1) * (0.0 if math.isnan(cs) else cs)
    revise = float(not math.isnan(cl) and not math.isnan(cs) and cs > 1 - cl)
    return {"acc_1": acc1, "acc_2": acc2, "confidence_level": cl, "critique_score": cs,
            "identity_gap": acc2 - predicted, "revise": revise}


def revision_prompt(question: Any, answer: str) -> list[dict[str, str]]:
    """The reflect-and-revise conversation: the question, the first answer, the request to review it."""
    first = question if isinstance(question, list) else [{"role": "user", "content": question}]
    first = [m if isinstance(m, dict) else m.model_dump() for m in first]
    return [*first, {"role": "assistant", "content": answer}, {"role": "user", "content": REVIEW_PROMPT}]


def run(backend: Any, dataset: Any, *, samples: int = 4, temperature: float = 1.0, max_new_tokens: int = 32,
        seed: int = 0) -> list[ItemRevisions]:
    """Sample ``samples`` first answers per item, revise each once (greedy), judge both by the dataset's rule."""
    from ..bench.quality import judge

    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise UserInputError(f"--samples must be an integer ≥ 1, got {samples!r}")
    out = []
    revise_config = GenerationConfig(max_new_tokens=max_new_tokens, top_k=0)
    for item in dataset.items:
        firsts = [t.text for t in backend.sample(item.prompt, samples, temperature=temperature, seed=seed,
                                                 max_new_tokens=max_new_tokens, top_k=0)]
        revised = [t.text for t in backend.generate_many([revision_prompt(item.prompt, a) for a in firsts],
                                                         revise_config)]
        pairs = tuple((judge(dataset, a, item.references).correct, judge(dataset, b, item.references).correct)
                      for a, b in zip(firsts, revised, strict=True))
        out.append(ItemRevisions(item.id, pairs, tuple(firsts), tuple(revised)))
    return out
