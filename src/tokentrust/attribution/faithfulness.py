"""How faithful an attribution is to the model (METHODS §5.1): ``faithfulness(attribution, backend, trace)``.

Three scores per target, each also divided by the same score of random attributions (> 1: better than
random): soft-normalised sufficiency (keeping the important sources softly keeps the answer's
distribution), soft-normalised comprehensiveness (softly removing them changes it), and the log-prob drop when
the top 20 % of the sources are deleted. A source removes all its tokens together, so any granularity works.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from ..errors import UndefinedMetricWarning, UserInputError
from ..trace import Trace
from .forward import TargetScorer
from .record import Attribution

RANDOM_KINDS: tuple[str, ...] = ("permute", "uniform")


def faithfulness(
    attribution: Attribution,
    backend: Any,
    trace: Trace,
    *,
    top_fraction: float = 0.2,
    random_attributions: int = 5,
    draws: int = 4,
    random: str = "permute",
    seed: int = 0,
    batch_size: int = 16,
) -> dict[str, Any]:
    """Soft-normalised sufficiency / comprehensiveness and delete-top-k drop of ``attribution`` for ``trace``.

    Scores are normalised to ``[0, 1]`` (negatives clipped, divided by the maximum) before soft masking;
    ``draws`` Bernoulli masks are averaged per score. ``top_fraction`` of the sources (at least one) are
    deleted for the drop [std]. Random attributions (``random_attributions`` of them, seeded by ``seed``) are
    ``permute``: the attribution's own scores shuffled over the sources (same masking budget, random ranking),
    or ``uniform``: the reference's ``softmax(U(0, 1))`` (METHODS §5.1). Keys: ``soft_sufficiency``,
    ``soft_comprehensiveness``, ``deletion_drop`` (means over targets), each with ``_random`` and ``_ratio``
    (mean / random mean; NaN with a warning when the random mean is not positive), and ``per_target``.
    """
    import torch

    from ._ops.faithfulness import deletion, distance, soft_faithfulness

    _check_params(top_fraction, random_attributions, draws, random, seed)
    scorer = TargetScorer(backend, trace, batch_size=batch_size)
    scorer.check()
    groups, spans = _check_match(attribution, trace, scorer)
    scores = torch.tensor(attribution.scores, dtype=torch.float64).reshape(len(spans), len(groups))
    if not bool(torch.isfinite(scores).all()):
        raise UserInputError("the attribution has NaN or infinite scores; faithfulness needs finite ones")
    gen = torch.Generator().manual_seed(seed)
    importance = torch.cat([scores[:, None], random_scores(scores, random_attributions, random, gen)], 1)

    q = scorer.reduced(scorer.prompt_embeds[None], lambda lp: lp)[0]

    def dist(masked: Any) -> Any:
        per = scorer.reduced(masked, lambda lp: distance(lp, q.to(lp.device)))
        return torch.stack([per[:, span].mean(-1) for span in spans], -1)

    soft = soft_faithfulness(dist, scorer.prompt_embeds, importance, groups, draws=draws, generator=gen,
                             baseline=scorer.baseline)
    k = max(1, math.ceil(top_fraction * len(groups)))
    drops = deletion(lambda keep: scorer.target_logprob(scorer.logprobs(scorer.masked(keep)), spans),
                     importance, groups, k, scorer.n_prompt)
    metrics = {"soft_sufficiency": soft["soft_ns"], "soft_comprehensiveness": soft["soft_nc"], "deletion_drop": drops}
    out: dict[str, Any] = {"method": attribution.method, "granularity": attribution.granularity, "k": k,
                           "random": random, "random_attributions": random_attributions, "draws": draws}
    for name, values in metrics.items():
        v = values.numpy()
        out[name], out[f"{name}_random"] = _mean(v[:, 0]), _mean(v[:, 1:])
        out[f"{name}_ratio"] = _ratio(out[name], out[f"{name}_random"], name)
    out["per_target"] = [
        {"target": t.text, "empty_sufficiency": float(soft["ss0"][i]),
         **{n: float(v[i, 0]) for n, v in metrics.items()},
         **{f"{n}_random": float(v[i, 1:].mean()) for n, v in metrics.items()}}
        for i, t in enumerate(attribution.targets)]
    out["forwards"] = scorer.forwards
    return out


def random_scores(scores: Any, n: int, kind: str, generator: Any) -> Any:
    """``(T, n, G)`` random attributions for ``scores`` ``(T, G)``: ``permute`` shuffles each row, ``uniform``
    draws ``softmax(U(0, 1))`` as the reference's evaluation does (METHODS §5.1)."""
    import torch

    t, g = scores.shape
    if kind == "uniform":
        return torch.softmax(torch.rand(t, n, g, generator=generator, dtype=torch.float64), -1)
    perm = torch.argsort(torch.rand(t, n, g, generator=generator), -1)
    return scores[:, None].expand(-1, n, -1).gather(-1, perm)


def _check_params(top_fraction: float, n_random: int, draws: int, random: str, seed: int) -> None:
    if not isinstance(top_fraction, (int, float)) or not 0 < top_fraction <= 1:
        raise UserInputError(f"top_fraction must be in (0, 1], got {top_fraction!r}")
    for name, value in (("random_attributions", n_random), ("draws", draws)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserInputError(f"{name} must be a positive integer, got {value!r}")
    if random not in RANDOM_KINDS:
        raise UserInputError(f"random must be one of {', '.join(RANDOM_KINDS)}, got {random!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UserInputError(f"seed must be a non-negative integer, got {seed!r}")


def _check_match(attribution: Attribution, trace: Trace, scorer: TargetScorer) -> tuple[list[list[int]], list[list[int]]]:
    """The sources' and targets' token indices, after checking the attribution explains this trace."""
    if attribution.answer != trace.text or attribution.model_id != trace.model_id:
        raise UserInputError("the attribution explains another answer or model than this trace")
    groups = [list(s.tokens) for s in attribution.sources]
    spans = [list(t.tokens) for t in attribution.targets]
    if not groups or not spans:
        raise UserInputError("the attribution has no sources or no targets")
    if any(not 0 <= i < scorer.n_prompt for g in groups for i in g) or any(
            not s or not all(0 <= i < scorer.n_answer for i in s) for s in spans):
        raise UserInputError("the attribution's token indices do not fit this trace's prompt and answer")
    return groups, spans


def _mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def _ratio(value: float, random: float, name: str) -> float:
    if not (math.isfinite(value) and math.isfinite(random)) or random <= 0:
        warnings.warn(f"{name}: the random attributions' mean is {random:.3g}, so the ratio is undefined; NaN returned",
                      UndefinedMetricWarning, stacklevel=3)
        return float("nan")
    return value / random
