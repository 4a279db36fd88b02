"""``explain(trace, method, backend)``: attribute an answer (or a span of it) to its prompt."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..capability import check_compatible
from ..trace import Trace
from .forward import TargetScorer
from .methods import Attributor, make_attributor
from .record import Attribution, Granularity
from .sources import answer_targets, groups_of, sources_at, token_sources

DEFAULT_METHOD = "occlusion"


def explain(
    trace: Trace,
    method: str | Attributor = DEFAULT_METHOD,
    *,
    backend: Any,
    target: str | None = None,
    granularity: Granularity = "word",
    fields: dict[str, str] | None = None,
    batch_size: int = 16,
) -> Attribution:
    """Which parts of the prompt made the model say ``trace``'s answer (or its ``target`` text).

    Every visible answer token is a target unless ``target`` names a part of the answer. Sources are the
    prompt's tokens, words or components (``fields``: the values a template was filled with, each its own
    component). The model must be the one that produced the trace: its unperturbed log-probs are checked
    against the trace's before anything is attributed.
    """
    attributor = make_attributor(method)
    check_compatible([attributor], backend)
    scorer = TargetScorer(backend, trace, batch_size=batch_size)
    scorer.check()
    scorer.forwards = scorer.backwards = 0  # count the method's own passes (the check is one more forward)
    targets = answer_targets(trace, target)
    sources = sources_at(granularity, scorer, fields=fields)
    if attributor.per_token and granularity != "token":
        tokens = token_sources(scorer)
        scores, extras = attributor.attribute(scorer, targets, groups_of(tokens))
        by_token = Attribution(method=attributor.id, model_id=trace.model_id, prompt=trace.prompt, answer=trace.text,
                               sources=tokens, targets=targets, scores=np.asarray(scores).tolist(),
                               target_logprobs=_logprobs(trace, targets), extras=extras)
        result = by_token.aggregate(sources, granularity)
    else:
        scores, extras = attributor.attribute(scorer, targets, groups_of(sources))
        result = Attribution(method=attributor.id, model_id=trace.model_id, prompt=trace.prompt, answer=trace.text,
                             granularity=granularity, sources=sources, targets=targets,
                             scores=np.asarray(scores).tolist(), target_logprobs=_logprobs(trace, targets),
                             extras=extras)
    return result.model_copy(update={"extras": {**result.extras, "forwards": scorer.forwards,
                                                "backwards": scorer.backwards}})


def _logprobs(trace: Trace, targets: list[Any]) -> list[float]:
    return [float(sum(trace.logprobs[i] for i in t.tokens)) for t in targets]
