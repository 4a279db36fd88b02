"""``nli:<path or hub id>`` similarity: any 3-way sequence-classification NLI model.

The entail/neutral/contradict ids are read from the model's ``config.id2label``; both directions are scored,
and similarity = ½(p_entail(a→b) + p_entail(b→a)) (Lin et al.'s agreement weight, plain probabilities as
LM-Polygraph). Answers are prefixed with the question. Real choices: ``microsoft/deberta-large-mnli``,
``cross-encoder/nli-deberta-v3-small`` (local or cached). The classifier loads once per process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModelLoadError, UserInputError
from ..registry import similarities
from . import resources
from .similarity import Similarity, combine_verdicts, with_question

NLI_LABELS = ("entail", "neutral", "contradict")


def nli_label_ids(id2label: dict[Any, str], model: str = "model") -> tuple[int, int, int]:
    """Ids of the entail, neutral and contradict labels, read from a model config's ``id2label``."""
    found: dict[str, int] = {}
    for idx, label in id2label.items():
        name = str(label).lower()
        for want in NLI_LABELS:
            if name.startswith(want):
                found[want] = int(idx)
    missing = [w for w in NLI_LABELS if w not in found]
    if missing:
        raise ModelLoadError(
            f"{model} is not a 3-way NLI model: its id2label {dict(id2label)} lacks {', '.join(missing)} "
            "(labels must start with entail…, neutral, contradict…)"
        )
    return found["entail"], found["neutral"], found["contradict"]


class NliModel:
    """A loaded 3-way NLI classifier; ``probs(premises, hypotheses)`` gives columns (entail, neutral, contradict)."""

    def __init__(self, model: str, batch_size: int = 32) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model)
            self.model = AutoModelForSequenceClassification.from_pretrained(model).eval()
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot load NLI model {model!r}: {str(exc).splitlines()[0]}") from None
        self.name = model
        self.batch_size = batch_size
        self.label_ids = nli_label_ids(self.model.config.id2label, model)

    def probs(self, premises: Sequence[str], hypotheses: Sequence[str]) -> np.ndarray:
        import torch

        out = []
        for start in range(0, len(premises), self.batch_size):
            enc = self.tokenizer(
                list(premises[start : start + self.batch_size]), list(hypotheses[start : start + self.batch_size]),
                return_tensors="pt", padding=True, truncation=True,
            )
            with torch.no_grad():
                logits = self.model(**enc).logits.float()
            out.append(torch.softmax(logits, dim=-1)[:, list(self.label_ids)].numpy())
        return np.concatenate(out) if out else np.zeros((0, 3))

    def directional(self, texts: Sequence[str]) -> np.ndarray:
        """``P[i, j]`` = (entail, neutral, contradict) of premise ``texts[i]`` → hypothesis ``texts[j]``."""
        m = len(texts)
        out = np.zeros((m, m, 3))
        out[np.arange(m), np.arange(m)] = (1.0, 0.0, 0.0)
        pairs = [(i, j) for i in range(m) for j in range(m) if i != j]
        if pairs:
            p = self.probs([texts[i] for i, _ in pairs], [texts[j] for _, j in pairs])
            for (i, j), row in zip(pairs, p, strict=True):
                out[i, j] = row
        return out


@similarities.register(name="nli")
@dataclass(frozen=True, kw_only=True)
class NliSimilarity(Similarity):
    """Mean two-way entailment probability of the NLI classifier ``model`` (question prefixed).

    Clusters by entailment labels (``rule`` strict or lenient), so it has no default threshold.
    """

    forms = ("nli:<path or hub id>",)
    default_threshold = None
    entailment = True
    judges_meaning = True
    uses_models = True
    model: str

    def __post_init__(self) -> None:
        if not self.model:
            raise UserInputError("similarity 'nli' needs a model: nli:<local path or hub id>, "
                                 "e.g. nli:microsoft/deberta-large-mnli")

    @classmethod
    def from_argument(cls, argument: str, spec: str) -> NliSimilarity:
        return cls(model=argument)

    @property
    def spec(self) -> str:
        return f"nli:{self.model}"

    def classifier(self) -> NliModel:
        """The process-wide classifier (loaded on first use)."""
        return resources.load(f"nli:{self.model}", lambda: NliModel(self.model))

    def directional(self, texts: Sequence[str], *, question: str = "") -> np.ndarray:
        return self.classifier().directional(with_question(question, texts))

    def matrix(self, texts: Sequence[str], *, question: str = "", backend: Any = None) -> np.ndarray:
        p = self.directional(texts, question=question)[..., 0]
        return (p + p.T) / 2

    def pairs(self, a: Sequence[str], b: Sequence[str], *, question: str = "", backend: Any = None) -> np.ndarray:
        qa, qb = with_question(question, a), with_question(question, b)
        p = self.classifier().probs([*qa, *qb], [*qb, *qa])[:, 0]
        return (p[: len(a)] + p[len(a) :]) / 2

    def verdicts(self, a: Sequence[str], b: Sequence[str], *, question: str = "", backend: Any = None) -> list[str]:
        """Both directions classified (argmax label each), combined by :func:`combine_verdicts`; the texts are
        compared bare (CCP's ``no_context``), without the question."""
        if not a:
            return []
        p = self.classifier().probs([*a, *b], [*b, *a])
        labels = [NLI_LABELS[int(i)] for i in np.argmax(p, axis=1)]
        return [combine_verdicts(f, r) for f, r in zip(labels[: len(a)], labels[len(a) :], strict=True)]
