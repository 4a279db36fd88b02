"""LlamaIndex: scores for the answers of its OpenAI LLM class (``llama_index.llms.openai.OpenAI`` and the
``OpenAILike`` class built on it), from the raw OpenAI response each answer keeps.

>>> from llama_index.llms.openai import OpenAI
>>> from tokentrust.integrations.llamaindex import ConfidenceHandler, score_response
>>> llm = OpenAI(model="gpt-4o-mini", api_base="http://127.0.0.1:8000/v1", api_key="-", logprobs=True,
...              top_logprobs=5)
>>> reply = llm.chat([ChatMessage(role="user", content="Hi")])
>>> score_response(reply)                       # the Annotated result (None, warned, without log-probs)
>>> handler = ConfidenceHandler()               # or score every call LlamaIndex makes:
>>> get_dispatcher().add_event_handler(handler) # from llama_index.core.instrumentation

``reply.raw`` is the SDK's response, so this is :meth:`Trace.from_openai` on it (through ``tokentrust serve``
the proxy's own result is kept). A stream's last reply holds only its last chunk, without the answer's
log-probs, so streamed calls pass through unscored, with one warning.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, PrivateAttr

from ..annotated import Annotated
from .scoring import EstimatorSpecs, PolicyLike, ResponseScorer, missing_library

try:
    from llama_index.core.instrumentation.event_handlers import BaseEventHandler
    from llama_index.core.instrumentation.events import BaseEvent
    from llama_index.core.instrumentation.events.llm import LLMChatEndEvent, LLMCompletionEndEvent
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise missing_library("llamaindex", "llama-index-core", "llamaindex") from exc

__all__ = ["ConfidenceHandler", "score_response"]


def _raw(response: Any) -> Mapping[str, Any] | None:
    raw = getattr(response, "raw", None)
    if hasattr(raw, "model_dump"):
        raw = raw.model_dump()
    if not isinstance(raw, Mapping) or raw.get("object") == "chat.completion.chunk":
        return None
    return raw


def _streamed(response: Any) -> bool:
    raw = getattr(response, "raw", None)
    return getattr(raw, "object", None) == "chat.completion.chunk" or (
        isinstance(raw, Mapping) and raw.get("object") == "chat.completion.chunk")


def _prompt(event: Any) -> Any:
    if isinstance(event, LLMCompletionEndEvent):
        return event.prompt
    return [{"role": str(getattr(m.role, "value", m.role)), "content": m.content or ""} for m in event.messages]


def score_response(response: Any, estimators: EstimatorSpecs | None = None, policy: PolicyLike | None = None,
                   *, prompt: Any = None, scorer: ResponseScorer | None = None) -> Annotated | None:
    """The scored answer of a LlamaIndex ``ChatResponse`` or ``CompletionResponse`` (from its ``raw`` OpenAI
    response), or ``None`` with one warning when it has no log-probs."""
    scorer = scorer or ResponseScorer(estimators, policy, source="tokentrust.integrations.llamaindex")
    raw = _raw(response)
    if raw is None:
        scorer.warn_missing("a streamed reply holds only its last chunk, not the answer's log-probs"
                            if _streamed(response) else None)
        return None
    request = {"prompt": prompt} if isinstance(prompt, str) else {"messages": prompt} if prompt else None
    return scorer.safely(raw, request=request)


class ConfidenceHandler(BaseEventHandler):
    """A LlamaIndex event handler scoring every LLM chat and completion call it sees; ``results`` maps each
    end event's ``span_id`` (or event id) to the :class:`~tokentrust.Annotated` result."""

    results: dict[str, Annotated] = Field(default_factory=dict)
    _scorer: ResponseScorer = PrivateAttr()

    def __init__(self, estimators: EstimatorSpecs | None = None, policy: PolicyLike | None = None) -> None:
        super().__init__()
        self._scorer = ResponseScorer(estimators, policy, source="ConfidenceHandler")

    @classmethod
    def class_name(cls) -> str:
        return "TokentrustConfidenceHandler"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        if not isinstance(event, LLMChatEndEvent | LLMCompletionEndEvent) or event.response is None:
            return
        result = score_response(event.response, prompt=_prompt(event), scorer=self._scorer)
        if result is not None:
            self.results[event.span_id or event.id_] = result
