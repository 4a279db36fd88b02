"""Pairwise similarity of answers: one registered class per kind, named by a spec string ``kind[:argument]``.

The kinds (each registered in :data:`tokentrust.registry.similarities` next to its code):

* ``embedding`` / ``embedding:<path or hub id>`` — cosine of sentence embeddings (:mod:`.embedding`);
* ``nli:<path or hub id>`` — mean two-way entailment probability of an NLI classifier (:mod:`.nli`);
* ``lexical`` / ``lexical:rougeL`` / ``lexical:jaccard`` — ROUGE-L F or word-set Jaccard (:mod:`.lexical`);
* ``judge`` / ``judge:max_new_tokens=<n>`` — the generating model asked whether two answers agree
  (:mod:`.judge`).

Stats hold the spec (a short hashable string, a cheap cache key) and build the kind with
:func:`make_similarity` when they compute; a kind is a small value object, and the heavy model it uses loads
once per process through :mod:`.resources`. Identical answers are similar by definition and compared once.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

from ..capability import Capability
from ..errors import UnknownNameError, UserInputError
from ..registry import parse_spec, similarities
from ..stat import Context, Stat
from .sampling import AnswerTexts, question_text


@dataclass(frozen=True, kw_only=True)
class Similarity:
    """One way to compare answers. A subclass is a frozen dataclass of its parameters with these class facts:

    * ``forms`` — the spec forms it accepts (error messages list them);
    * ``default_threshold`` — similarity at or above which two answers share a semantic cluster, or ``None``
      when it clusters by entailment labels instead (``entailment``);
    * ``entailment`` — it gives directional (entail, neutral, contradict) probabilities (:meth:`directional`);
    * ``requires`` — what it needs from the backend (the judge asks the generating model);
    * ``uses_models`` — it loads a model of its own (a sentence encoder, an NLI classifier);
    * ``judges_meaning`` — it tells a changed meaning from an unrelated text (:meth:`verdicts`, used by CCP).

    ``question`` is the question the texts answer: kinds that condition on it use it (NLI prefixes it, the
    judge shows it), the others ignore it. ``backend`` is the generating model, needed only by the judge.
    """

    registry_id: ClassVar[str] = "similarity"
    forms: ClassVar[tuple[str, ...]] = ()
    default_threshold: ClassVar[float | None] = 0.5
    entailment: ClassVar[bool] = False
    requires: ClassVar[frozenset[Capability]] = frozenset()
    uses_models: ClassVar[bool] = False
    judges_meaning: ClassVar[bool] = False

    @classmethod
    def from_argument(cls, argument: str, spec: str) -> Similarity:
        """The similarity for the part of ``spec`` after ``kind:`` (keyword form ``key=value,...`` by default)."""
        if not argument:
            return cls()
        try:
            _, kwargs = parse_spec(f"{cls.registry_id}:{argument}")
        except UserInputError:
            raise UserInputError(f"bad similarity {spec!r}; valid forms: {', '.join(cls.forms)}") from None
        unknown = sorted(set(kwargs) - {f.name for f in fields(cls)})
        if unknown:
            raise UserInputError(f"similarity {spec!r} has no parameter {', '.join(unknown)}; "
                                 f"valid forms: {', '.join(cls.forms)}")
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise UserInputError(f"bad similarity {spec!r}: {exc}; valid forms: {', '.join(cls.forms)}") from None

    @property
    def spec(self) -> str:
        """The canonical spec: two specs that compute the same thing have the same one (an estimator's id
        uses it, so ``lexical`` and ``lexical:rougeL`` are one estimator)."""
        changed = [f"{f.name}={getattr(self, f.name)}" for f in fields(self) if getattr(self, f.name) != f.default]
        return f"{self.registry_id}:{','.join(changed)}" if changed else self.registry_id

    def matrix(self, texts: Sequence[str], *, question: str = "", backend: Any = None) -> np.ndarray:
        """Symmetric ``(m, m)`` similarity in [0, 1] of ``texts`` (unit diagonal)."""
        raise NotImplementedError(f"{type(self).__name__}.matrix")

    def pairs(self, a: Sequence[str], b: Sequence[str], *, question: str = "", backend: Any = None) -> np.ndarray:
        """Similarity of ``a[i]`` with ``b[i]`` for every ``i`` (one batched call)."""
        raise NotImplementedError(f"{type(self).__name__}.pairs")

    def verdicts(self, a: Sequence[str], b: Sequence[str], *, question: str = "", backend: Any = None) -> list[str]:
        """Does ``b[i]`` keep the meaning of ``a[i]`` (``entail``), change it (``contradict``) or neither
        (``neutral``)? The meaning-change judge of CCP (METHODS.md §2.6), one batched call; kinds that cannot
        tell a change of meaning from unrelated text refuse."""
        raise UserInputError(f"similarity {self.registry_id!r} cannot tell a changed meaning from an unrelated one; "
                             "use nli:<local path or hub id>, embedding or judge")

    def directional(self, texts: Sequence[str], *, question: str = "") -> np.ndarray:
        """``(m, m, 3)`` probabilities (entail, neutral, contradict) of premise ``texts[i]`` → hypothesis
        ``texts[j]``; only entailment kinds give them."""
        raise UserInputError(f"similarity {self.registry_id!r} gives no entailment probabilities; "
                             "use nli:<local path or hub id>")


def similarity_forms() -> list[str]:
    """Every accepted spec form, kind by kind (for error messages and help)."""
    return [form for _, kind in similarities.items() for form in kind.forms]


def make_similarity(spec: str) -> Similarity:
    """The similarity named by ``spec`` (``kind`` or ``kind:<argument>``), validated. Cheap: loads no model."""
    if not isinstance(spec, str):
        raise UserInputError(f"a similarity is a spec string such as 'embedding', got {spec!r}")
    kind, _, argument = spec.partition(":")
    kind = kind.strip().lower()
    if kind not in similarities:
        close = difflib.get_close_matches(kind, similarities.names(), n=2, cutoff=0.6)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownNameError(f"unknown similarity {spec!r};{hint} valid: {', '.join(similarity_forms())}")
    return similarities.get(kind).from_argument(argument.strip(), spec)


def with_question(question: str, texts: Sequence[str]) -> list[str]:
    """``question + " " + text`` for every text (the text alone when there is no question)."""
    return [f"{question} {t}" if question else t for t in texts]


def _dedupe(texts: Sequence[str]) -> tuple[list[str], np.ndarray]:
    unique = list(dict.fromkeys(texts))
    pos = {t: i for i, t in enumerate(unique)}
    return unique, np.asarray([pos[t] for t in texts], dtype=int)


def combine_verdicts(forward: str, backward: str) -> str:
    """One verdict from NLI(a→b) and NLI(b→a) (LM-Polygraph's rule): equal → that one; entail against
    contradict → neutral; otherwise whichever of entail or contradict appears."""
    if forward == backward:
        return forward
    if {forward, backward} == {"entail", "contradict"}:
        return "neutral"
    return forward if forward != "neutral" else backward


def paired_similarity(spec: str, a: Sequence[str], b: Sequence[str], *, backend: Any = None,
                      question: str = "") -> np.ndarray:
    """Similarity of ``a[i]`` with ``b[i]`` for every ``i``, by the similarity ``spec`` (symmetric for NLI)."""
    if len(a) != len(b):
        raise ValueError(f"paired_similarity needs equal lengths, got {len(a)} and {len(b)}")
    if not a:
        return np.zeros(0)
    out = make_similarity(spec).pairs(list(a), list(b), question=question, backend=backend)
    return np.asarray(out, dtype=float)


@dataclass(frozen=True, kw_only=True)
class NliProbabilities(Stat[np.ndarray]):
    """``(m, m, 3)`` NLI probabilities (entail, neutral, contradict) of answer i → answer j, question prefixed."""

    texts: AnswerTexts = field(default_factory=AnswerTexts)
    similarity: str = "nli:microsoft/deberta-large-mnli"

    def compute(self, ctx: Context) -> np.ndarray:
        unique, idx = _dedupe(ctx.get(self.texts))
        p = make_similarity(self.similarity).directional(unique, question=question_text(ctx.trace))
        return p[np.ix_(idx, idx)]


@dataclass(frozen=True, kw_only=True)
class SimilarityMatrix(Stat[np.ndarray]):
    """Symmetric ``(m, m)`` similarity in [0, 1] of the answers in ``texts``, unit diagonal.

    An entailment similarity reads the shared :class:`NliProbabilities` (so clusters and graph scores pay
    for one NLI pass): ``½(p_entail(i→j) + p_entail(j→i))``.
    """

    texts: AnswerTexts = field(default_factory=AnswerTexts)
    similarity: str = "embedding"

    def compute(self, ctx: Context) -> np.ndarray:
        sim = make_similarity(self.similarity)
        if sim.entailment:
            w = ctx.get(NliProbabilities(texts=self.texts, similarity=self.similarity))[..., 0]
        else:
            unique, idx = _dedupe(ctx.get(self.texts))
            small = sim.matrix(unique, question=question_text(ctx.trace), backend=ctx.backend)
            w = np.asarray(small, dtype=float)[np.ix_(idx, idx)]
        w = np.clip((w + w.T) / 2, 0.0, 1.0)
        np.fill_diagonal(w, 1.0)
        return w
