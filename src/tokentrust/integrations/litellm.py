"""LiteLLM: a callback that scores every completion LiteLLM routes (its proxy included) and logs the scores.

>>> import litellm
>>> from tokentrust.integrations.litellm import ConfidenceLogger
>>> logger = ConfidenceLogger(estimators=["msp", "perplexity"])
>>> litellm.callbacks = [logger]
>>> litellm.completion(model="openai/smollm2", api_base="http://127.0.0.1:8000/v1", api_key="-",
...                    messages=[{"role": "user", "content": "Hi"}], logprobs=True, top_logprobs=5)
>>> logger.results[call_id]            # by litellm_call_id: the Annotated result

Each scored call's sequence scores and decision go into ``metadata["tokentrust"]`` of its standard logging
payload and of ``litellm_params`` (so loggers that run after this one record them with the call), and
are logged on the ``tokentrust.integrations.litellm`` logger. The request must ask for log-probs
(``logprobs=True, top_logprobs=k``). Through ``tokentrust serve`` the proxy's own result is kept (LiteLLM
keeps the extension on non-streamed responses). LiteLLM drops log-probs when it merges a stream, so streamed
calls pass through unscored, with one warning.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..annotated import Annotated
from .scoring import EstimatorSpecs, PolicyLike, ResponseScorer, missing_library

try:
    from litellm.integrations.custom_logger import CustomLogger
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise missing_library("litellm", "litellm", "litellm") from exc

__all__ = ["ConfidenceLogger", "summary"]

log = logging.getLogger(__name__)


def summary(result: Annotated) -> dict[str, Any]:
    """What is logged with a call: each sequence score's value and the decision (small enough for any logger)."""
    decision = result.decision
    return {
        "scores": {s.estimator: s.value for s in result.sequence_scores},
        "decision": None if decision is None else {"action": decision.action, "score": decision.score,
                                                   "probability": decision.probability},
    }


class ConfidenceLogger(CustomLogger):
    """A LiteLLM ``CustomLogger`` scoring every successful completion (sync and async hooks).

    ``results`` maps each call's ``litellm_call_id`` to its :class:`~tokentrust.Annotated`. ``estimators``:
    specs computable from log-probs (others are refused here); ``policy``: a :class:`~tokentrust.Policy`
    or its JSON file (default ``Policy()``, or the proxy's own decision).
    """

    def __init__(self, estimators: EstimatorSpecs | None = None, policy: PolicyLike | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scorer = ResponseScorer(estimators, policy, source="ConfidenceLogger")
        self.results: dict[str, Annotated] = {}

    def log_success_event(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any) -> None:
        self.record(kwargs, response_obj)

    async def async_log_success_event(self, kwargs: dict[str, Any], response_obj: Any, start_time: Any,
                                      end_time: Any) -> None:
        self.record(kwargs, response_obj)

    def record(self, kwargs: dict[str, Any], response_obj: Any) -> Annotated | None:
        """Score one call (its merged response when streamed) and log the scores with it."""
        call_id = str(kwargs.get("litellm_call_id") or id(response_obj))
        if call_id in self.results:  # both hooks may see one call
            return self.results[call_id]
        response = kwargs.get("complete_streaming_response") if kwargs.get("stream") else response_obj
        body = response.model_dump() if hasattr(response, "model_dump") else response
        if not isinstance(body, Mapping):
            return None
        if kwargs.get("stream") and not _has_logprobs(body):
            self.scorer.warn_missing("LiteLLM drops log-probs when it merges a stream (call without "
                                     "stream=True to score)")
            return None
        result = self.scorer.safely(body, request=kwargs)
        if result is None:
            return None
        self.results[call_id] = result
        logged = summary(result)
        for holder in (kwargs.get("standard_logging_object"), kwargs.get("litellm_params")):
            if isinstance(holder, dict):
                meta = holder.get("metadata")
                if meta is None:
                    meta = holder["metadata"] = {}
                if isinstance(meta, dict):
                    meta["tokentrust"] = logged
        log.info("litellm call %s (%s): %s", call_id, kwargs.get("model"), logged)
        return result



def _has_logprobs(body: Mapping[str, Any]) -> bool:
    ext = body.get("tokentrust")
    choices = body.get("choices") or []
    return (isinstance(ext, Mapping) and "trace" in ext) or bool(choices and choices[0].get("logprobs"))
