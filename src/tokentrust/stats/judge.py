"""``judge`` similarity: the generating model asked whether two answers to the question mean the same.

1 for a yes, 0 for a no, 0.5 when its reply says neither; for when no other model is available. It asks the
backend new prompts, so it requires :attr:`~tokentrust.capability.Capability.GENERATION`. The reply length
is a parameter (``judge:max_new_tokens=<n>``, default 4): a longer reply can change what is read from it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..capability import Capability
from ..errors import CapabilityError, UserInputError
from ..registry import similarities
from .similarity import Similarity

JUDGE_PROMPT = (
    "Question: {question}\nAnswer A: {a}\nAnswer B: {b}\n"
    "Do answers A and B say the same thing in answer to the question? Reply with yes or no only."
)
_YES = re.compile(r"^\W*(yes|same|true|they do)\b", re.IGNORECASE)
_NO = re.compile(r"^\W*(no|not|different|false|they don't|they do not)\b", re.IGNORECASE)


def parse_yes_no(text: str) -> float:
    """1.0 for a yes, 0.0 for a no, NaN when the reply is neither."""
    if _YES.search(text):
        return 1.0
    if _NO.search(text):
        return 0.0
    return float("nan")


def ask_judge(backend: Any, question: str, pairs: Sequence[tuple[str, str]], *, max_new_tokens: int = 4
              ) -> np.ndarray:
    """The model's verdict on each ``(a, b)`` pair (one batched greedy call); unclear replies count 0.5."""
    if backend is None:
        raise CapabilityError("similarity 'judge' asks the generating model; pass backend=")
    if not pairs:
        return np.zeros(0)
    prompts = [JUDGE_PROMPT.format(question=question, a=a, b=b) for a, b in pairs]
    replies = backend.generate_many(prompts, max_new_tokens=max_new_tokens, temperature=0.0)
    return np.asarray([0.5 if np.isnan(v := parse_yes_no(r.text)) else v for r in replies], dtype=float)


def judge_matrix(backend: Any, question: str, texts: Sequence[str], *, max_new_tokens: int = 4) -> np.ndarray:
    """Ask the model once per unordered pair of ``texts`` (one batched call); unit diagonal."""
    m = len(texts)
    out = np.eye(m)
    pairs = [(i, j) for i in range(m) for j in range(i + 1, m)]
    pairs_text = [(texts[i], texts[j]) for i, j in pairs]
    verdicts = ask_judge(backend, question, pairs_text, max_new_tokens=max_new_tokens)
    for (i, j), v in zip(pairs, verdicts, strict=True):
        out[i, j] = out[j, i] = v
    return out


@similarities.register(name="judge")
@dataclass(frozen=True, kw_only=True)
class JudgeSimilarity(Similarity):
    """The generating model's yes/no verdict on whether two answers agree (reply of ``max_new_tokens``)."""

    forms = ("judge", "judge:max_new_tokens=<n>")
    default_threshold = 0.5
    judges_meaning = True
    requires = frozenset({Capability.GENERATION})
    max_new_tokens: int = 4

    def __post_init__(self) -> None:
        n = self.max_new_tokens
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise UserInputError(f"judge max_new_tokens must be an integer ≥ 1, got {self.max_new_tokens!r}")

    def matrix(self, texts: Sequence[str], *, question: str = "", backend: Any = None) -> np.ndarray:
        return judge_matrix(backend, question, texts, max_new_tokens=self.max_new_tokens)

    def pairs(self, a: Sequence[str], b: Sequence[str], *, question: str = "", backend: Any = None) -> np.ndarray:
        return ask_judge(backend, question, list(zip(a, b, strict=True)), max_new_tokens=self.max_new_tokens)

    def verdicts(self, a: Sequence[str], b: Sequence[str], *, question: str = "", backend: Any = None) -> list[str]:
        """The model's yes (``entail``), no (``contradict``) or unclear reply (``neutral``) for each pair."""
        agree = ask_judge(backend, question, list(zip(a, b, strict=True)), max_new_tokens=self.max_new_tokens)
        return ["entail" if v == 1.0 else "contradict" if v == 0.0 else "neutral" for v in agree]
