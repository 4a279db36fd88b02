"""Request bodies of the OpenAI-compatible routes and the page's API, validated strictly.

Unknown fields are refused (``unknown_parameter``), as OpenAI does; every problem becomes a 400 in
OpenAI's error shape naming the parameter. ``tokentrust`` is the one extension field: estimator specs
(``name:key=value``) and the answer policy for this request.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..config import SEED_LIMIT
from .errors import APIError


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PolicyOptions(Strict):
    """Per-request answer policy: which probability-valued sequence score decides, and its thresholds."""

    score: str | None = None
    hedge_below: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)
    abstain_below: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)


class TokentrustOptions(Strict):
    """The extension parameter: estimator specs (``name:key=value``) and the answer policy."""

    estimators: list[str] | None = None
    policy: PolicyOptions | None = None


class TextPart(Strict):
    type: Literal["text"]
    text: str


class ChatMessage(Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = None


class StreamOptions(Strict):
    include_usage: bool = False


class Common(Strict):
    model: str = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2, allow_inf_nan=False)
    top_p: float | None = Field(None, gt=0, le=1, allow_inf_nan=False)
    n: Literal[1] | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    seed: int | None = Field(None, ge=0, lt=SEED_LIMIT)
    user: str | None = None
    presence_penalty: Literal[0] | None = None
    frequency_penalty: Literal[0] | None = None
    stop: None = None
    tokentrust: TokentrustOptions | None = None


class ChatRequest(Common):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool | None = False
    top_logprobs: int | None = Field(None, ge=0, le=20)


class CompletionRequest(Common):
    prompt: str | list[str]
    logprobs: int | None = Field(None, ge=0, le=20)
    echo: Literal[False] | None = None


class ScoreRequest(Strict):
    """A question and an answer the user already has (the page's "score" tab)."""

    prompt: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    chat: bool = True
    tokentrust: TokentrustOptions | None = None


_UNSUPPORTED = {"n": "only n=1 is supported", "stop": "stop sequences are not supported",
                "presence_penalty": "only 0 is supported", "frequency_penalty": "only 0 is supported",
                "echo": "echo is not supported"}
#: The valid range of each bounded number, named in the 400 when a value falls outside it.
RANGES = {"seed": f"an integer in [0, 2**63 - 1] = [0, {SEED_LIMIT - 1}]", "temperature": "a number in [0, 2]",
          "top_p": "a number in (0, 1]", "max_tokens": "an integer ≥ 1", "max_completion_tokens": "an integer ≥ 1",
          "top_logprobs": "an integer in [0, 20]",
          "tokentrust.policy.hedge_below": "a number in [0, 1]", "tokentrust.policy.abstain_below": "a number in [0, 1]"}


async def parse_body(request: Request, model: type[Strict]) -> Any:
    """The JSON body validated against ``model``; every problem is a 400 in OpenAI's error shape."""
    raw = await request.body()
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise APIError(400, f"request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise APIError(400, f"request body must be a JSON object, got {type(data).__name__}", code="invalid_json")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        param = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            raise APIError(400, f"unrecognized request argument supplied: {param}", param=param,
                           code="unknown_parameter") from None
        if err["type"] == "missing":
            raise APIError(400, f"missing required parameter: {param}", param=param,
                           code="missing_required_parameter") from None
        detail = _UNSUPPORTED.get(param) or (f"must be {RANGES[param]}" if param in RANGES else err["msg"])
        raise APIError(400, f"invalid value for {param}: {detail} (got {err.get('input')!r})", param=param,
                       code="invalid_value") from None
