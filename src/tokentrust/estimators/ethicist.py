"""Locally normalised confidence (Ethicist, METHODS.md §10): a calibrated confidence for "sample K, pick one".

Sample ``K`` answers and deduplicate them (exact text after stripping surrounding whitespace). A distinct answer
``u`` drawn ``n_u`` times with sequence probability ``p(u) = exp(Σ_t ℓ_t)`` (raw distribution, i.e.
``exp(−L·ℓ̄_u)`` with the mean token loss ``ℓ̄_u``) gets ``C(u) = n_u·p(u) / Σ_v n_v·p(v)``; the answer with the
highest ``C`` is the pick and ``C`` its confidence. Defaults follow the extraction runs (temperature 0.8,
top-p 0.7).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..registry import estimators
from ..scores import Level, Scores
from ..stat import Context
from ._sampled import SAMPLING_WITH_LOGPROBS, SampledEstimator


def dedupe_key(text: str) -> str:
    """The form two samples must share to count as one answer."""
    return text.strip()


def local_normalized_confidence(texts: Sequence[str], logprobs: Sequence[float]) -> dict[str, float]:
    """``C(u)`` for every distinct text: ``texts[i]`` was sampled with sequence log-probability ``logprobs[i]``.

    Duplicates share one ``p(u)`` (the first finite one, as equal token sequences score equally); the sum is
    taken in log space so long answers with tiny probabilities still normalise.
    """
    if len(texts) != len(logprobs) or not texts:
        raise ValueError(f"need one log-probability per text and at least one text, got {len(texts)} and "
                         f"{len(logprobs)}")
    counts: dict[str, int] = {}
    logp: dict[str, float] = {}
    for text, lp in zip(texts, logprobs, strict=True):
        key = dedupe_key(text)
        counts[key] = counts.get(key, 0) + 1
        if np.isfinite(lp) and key not in logp:
            logp[key] = float(lp)
    if not logp:
        raise ValueError("no sample has a finite log-probability")
    keys = list(counts)
    weights = np.array([np.log(counts[k]) + logp.get(k, -np.inf) for k in keys])
    weights -= np.logaddexp.reduce(weights)
    return dict(zip(keys, np.exp(weights).tolist(), strict=True))


def pick(confidence: dict[str, float]) -> tuple[str, float]:
    """The answer with the highest ``C`` (first seen on ties) and its ``C``."""
    best = max(confidence, key=confidence.__getitem__)
    return best, confidence[best]


@estimators.register
@dataclass(frozen=True, kw_only=True)
class LocalNormalizedConfidence(SampledEstimator):
    """Ethicist's ``C(u)`` of the answer among ``n_samples`` samples (0 when no sample reproduces it).
    ``values`` = ``raw`` = ``C``; ``extras["pick"]``: the highest-``C`` sample and ``extras["pick_confidence"]``."""

    level = Level.SEQUENCE
    needs = SAMPLING_WITH_LOGPROBS
    is_probability = True
    n_samples: int = 20
    temperature: float = 0.8
    top_p: float = 0.7

    def compute(self, ctx: Context) -> Scores:
        traces = ctx.get(self.samples)
        conf = local_normalized_confidence([t.text for t in traces], [float(np.sum(t.logprobs)) for t in traces])
        value = conf.get(dedupe_key(ctx.trace.text), 0.0)
        best, best_conf = pick(conf)
        return self._scores(ctx, value, value, extras={"pick": [best], "pick_confidence": [best_conf]})
