"""``lexical`` similarity: ROUGE-L F-measure with Porter stemming (``lexical``, ``lexical:rougeL``) or
word-set Jaccard (``lexical:jaccard``). No model: cheap, and the same on every machine."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..errors import UserInputError
from ..registry import similarities
from . import resources
from .similarity import Similarity

METRICS = ("rougeL", "jaccard")


def jaccard(a: str, b: str) -> float:
    """|A ∩ B| / max(|A ∪ B|, 1) on lower-cased whitespace word sets (Lin et al.)."""
    sa, sb = set(a.lower().split()), set(b.lower().split())
    return len(sa & sb) / max(len(sa | sb), 1)


def rouge_l(a: str, b: str) -> float:
    """ROUGE-L F-measure of ``a`` and ``b`` with Porter stemming (the ``rouge-score`` package)."""
    return float(_rouge_scorer().score(a, b)["rougeL"].fmeasure)


def _rouge_scorer() -> Any:
    def build() -> Any:
        from rouge_score import rouge_scorer

        return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)

    return resources.load("lexical:rougeL", build)


@similarities.register(name="lexical")
@dataclass(frozen=True, kw_only=True)
class LexicalSimilarity(Similarity):
    """ROUGE-L F (``metric="rougeL"``, Porter stemming) or word-set Jaccard (``metric="jaccard"``)."""

    forms = ("lexical", "lexical:rougeL", "lexical:jaccard")
    default_threshold = 0.5
    metric: Literal["rougeL", "jaccard"] = "rougeL"

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise UserInputError(f"lexical metric {self.metric!r} is unknown; valid: {', '.join(METRICS)}")

    @classmethod
    def from_argument(cls, argument: str, spec: str) -> LexicalSimilarity:
        if argument and argument not in METRICS:
            raise UserInputError(f"unknown lexical similarity {spec!r}; valid: {', '.join(cls.forms)}")
        return cls(metric=argument or "rougeL")  # type: ignore[arg-type]

    @property
    def spec(self) -> str:
        return "lexical" if self.metric == "rougeL" else f"lexical:{self.metric}"

    def pair(self, a: str, b: str) -> float:
        """The similarity of two texts."""
        return jaccard(a, b) if self.metric == "jaccard" else rouge_l(a, b)

    def matrix(self, texts: Sequence[str], *, question: str = "", backend: Any = None) -> np.ndarray:
        m = len(texts)
        out = np.eye(m)
        for i in range(m):
            for j in range(i + 1, m):
                out[i, j] = out[j, i] = self.pair(texts[i], texts[j])
        return out

    def pairs(self, a: Sequence[str], b: Sequence[str], *, question: str = "", backend: Any = None) -> np.ndarray:
        return np.asarray([self.pair(x, y) for x, y in zip(a, b, strict=True)], dtype=float)
