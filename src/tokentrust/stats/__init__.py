"""Shared statistics that several estimators pull through ``ctx.get`` (computed once per item).

``Samples`` draws extra answers, ``SimilarityMatrix``/``NliProbabilities`` compare them, ``SemanticClusters``
groups them by meaning. Heavy models (sentence encoders, NLI classifiers) are named by spec strings and
loaded once per process by :mod:`.resources`.
"""

from .clusters import SemanticClusters, greedy_clusters
from .sampling import AnswerTexts, Samples, question_text
from .similarity import NliProbabilities, SimilarityMatrix, similarity_backend

__all__ = [
    "AnswerTexts",
    "NliProbabilities",
    "Samples",
    "SemanticClusters",
    "SimilarityMatrix",
    "greedy_clusters",
    "question_text",
    "similarity_backend",
]
