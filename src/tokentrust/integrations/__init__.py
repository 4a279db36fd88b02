"""Confidence inside the frameworks people already call models through.

Each integration scores answers from what the framework hands back: the ``tokentrust`` extension when the
server is ``tokentrust serve`` (its trace and scores, the full distribution included), otherwise the
response's OpenAI log-probs (each chosen token's log-probability and its top-k alternatives; no entropy).

* :mod:`tokentrust.integrations.openai_sdk` (also ``tokentrust.openai``): ``wrap(OpenAI())``;
* :mod:`tokentrust.integrations.langchain`: ``with_confidence(chat_model)``, ``ConfidenceCallback``;
* :mod:`tokentrust.integrations.litellm`: ``ConfidenceLogger`` (a LiteLLM callback);
* :mod:`tokentrust.integrations.llamaindex`: ``score_response(reply)``, ``ConfidenceHandler``.

Submodules load on first use, so importing tokentrust imports none of these libraries.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .scoring import NoLogprobsWarning, ResponseScorer

_SUBMODULES = ("openai_sdk", "langchain", "litellm", "llamaindex")

__all__ = ["NoLogprobsWarning", "ResponseScorer", "langchain", "litellm", "llamaindex", "openai_sdk"]


def __getattr__(name: str) -> ModuleType:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
