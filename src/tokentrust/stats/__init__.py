"""Shared statistics that several estimators pull through ``ctx.get`` (computed once per item).

``Samples`` draws extra answers, ``SimilarityMatrix``/``NliProbabilities`` compare them, ``SemanticClusters``
groups them by meaning. Similarities are named by spec strings (``embedding``, ``nli:<model>``, ``lexical``,
``judge``), one registered class per kind; heavy models (sentence encoders, NLI classifiers) load once per
process by :mod:`.resources`.
"""

from . import claims, embedding, judge, lexical, nli  # noqa: F401  (register the similarity and claim kinds)
from .clusters import SemanticClusters, greedy_clusters
from .sampling import AnswerTexts, Samples, question_text
from .similarity import NliProbabilities, Similarity, SimilarityMatrix, make_similarity

__all__ = [
    "AnswerTexts",
    "NliProbabilities",
    "Samples",
    "SemanticClusters",
    "Similarity",
    "SimilarityMatrix",
    "greedy_clusters",
    "make_similarity",
    "question_text",
]
