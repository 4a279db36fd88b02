"""Scores for a response a framework already holds, as OpenAI-shaped JSON; shared by every integration.

Two routes, chosen per response:

* the server is ``tokentrust serve``: the response carries the ``tokentrust`` extension (the answer's full
  trace, its scores and decision), which is kept; scores named here that it lacks are computed on its trace;
* any other OpenAI-compatible server: the trace is built from the response's ``logprobs``
  (:meth:`~tokentrust.Trace.from_openai`) and scored in-process. Such a trace has each chosen token's
  log-probability and its top-k alternatives only, so scores that need the full distribution (entropy) or
  more model calls (sampling, P(True)) are refused when the scorer is made, not at the first answer.

A response without log-probs is passed through unscored, with one :class:`NoLogprobsWarning` per scorer.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..annotated import DEFAULT_ESTIMATORS, Annotated, annotate, resolve_estimators
from ..capability import Capability
from ..decide.policy import Policy
from ..errors import CapabilityError, TokentrustError, UserInputError
from ..estimators.base import Estimator, build_estimator
from ..openai_format import choice_entries
from ..registry import estimators as estimator_registry
from ..scores import Level
from ..trace import Message, Trace

#: What OpenAI log-probs carry: each chosen token's log-probability and its top-k alternatives.
LOGPROB_CAPABILITIES = frozenset({Capability.LOGPROBS, Capability.TOP_LOGPROBS})

EstimatorSpecs = Sequence[str | Estimator]
PolicyLike = Policy | str | Path


class NoLogprobsWarning(UserWarning):
    """A response came back without log-probs (the server does not give them), so it was left unscored."""


def _logprob_examples() -> str:
    names = [name for name, cls in estimator_registry.items()
             if isinstance(cls, type) and cls.level is Level.SEQUENCE and cls.needs <= LOGPROB_CAPABILITIES]
    return ", ".join(names[:6])


def logprob_estimators(specs: EstimatorSpecs | None) -> list[Estimator]:
    """The estimators for ``specs`` (default: those of :data:`DEFAULT_ESTIMATORS` log-probs allow); one that
    needs more than log-probs is refused, naming what it needs and scores that would do."""
    if specs is None:
        return [e for e in resolve_estimators(DEFAULT_ESTIMATORS) if e.requires <= LOGPROB_CAPABILITIES]
    chosen = resolve_estimators(specs)
    for est in chosen:
        missing = sorted(c.value for c in est.requires - LOGPROB_CAPABILITIES)
        if missing:
            raise CapabilityError(
                f"{est.id} needs {', '.join(missing)}, which OpenAI log-probs do not carry (only each chosen "
                f"token's log-probability and its top-k alternatives); choose scores computable from log-probs, "
                f"e.g. {_logprob_examples()}")
    return chosen


def load_policy(policy: PolicyLike | None) -> Policy | None:
    """A policy object, or one read from a JSON file (``Policy.load``); its score must come from log-probs."""
    if policy is None:
        return None
    if isinstance(policy, str | Path):
        policy = Policy.load(policy)
    if not isinstance(policy, Policy):
        raise UserInputError(f"policy must be a Policy or the path of a policy JSON file, got {policy!r}")
    decider = logprob_estimators([policy.score])[0]
    if decider.level is not Level.SEQUENCE or not decider.is_probability:
        raise UserInputError(f"policy score {policy.score!r} must be a sequence-level probability "
                             "(e.g. geometric_mean_token_probability, maximum_sequence_probability)")
    return policy


def prompt_of(request: Mapping[str, Any]) -> str | list[Message] | None:
    """The prompt of an OpenAI request's keyword arguments (chat messages or a completions prompt)."""
    messages = request.get("messages")
    if messages is not None:
        out = []
        for m in messages:
            m = m if isinstance(m, Mapping) else dict(m)
            content = m.get("content")
            if isinstance(content, list):
                content = "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
            out.append(Message(role=str(m.get("role", "user")), content="" if content is None else str(content)))
        return out
    prompt = request.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    return prompt if isinstance(prompt, str) else None


def merge_stream(chunks: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Streamed chunks (dicts) of one chat or completions answer merged into one non-streamed response:
    choice 0's text and log-prob entries joined in order, its finish reason, and the server's ``tokentrust``
    extension when a chunk carries the whole result."""
    chat = any(c.get("object") == "chat.completion.chunk" or any("delta" in ch for ch in c.get("choices") or [])
               for c in chunks)
    text, entries, finish, model, extension = [], [], None, None, None
    tokens: list[Any] = []
    token_logprobs: list[Any] = []
    tops: list[Any] = []
    seen_logprobs = False
    for chunk in chunks:
        model = chunk.get("model") or model
        ext = chunk.get("tokentrust")
        if isinstance(ext, Mapping) and "trace" in ext:
            extension = ext
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            piece = (choice.get("delta") or {}).get("content") if chat else choice.get("text")
            text.append(piece or "")
            finish = choice.get("finish_reason") or finish
            lp = choice.get("logprobs")
            if not lp:
                continue
            seen_logprobs = True
            if chat:
                entries.extend(lp.get("content") or [])
            else:
                tokens.extend(lp.get("tokens") or [])
                token_logprobs.extend(lp.get("token_logprobs") or [])
                tops.extend(lp.get("top_logprobs") or [])
    if chat:
        logprobs = {"content": entries} if seen_logprobs else None
        choice = {"index": 0, "message": {"role": "assistant", "content": "".join(text)}, "logprobs": logprobs,
                  "finish_reason": finish}
    else:
        logprobs = {"tokens": tokens, "token_logprobs": token_logprobs, "top_logprobs": tops} if seen_logprobs else None
        choice = {"index": 0, "text": "".join(text), "logprobs": logprobs, "finish_reason": finish}
    merged: dict[str, Any] = {"model": model, "choices": [choice]}
    if extension is not None:
        merged["tokentrust"] = extension
    return merged


def _settings(request: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The generation settings of a request that a trace records (numbers only; the prompt is given apart)."""
    if request is None:
        return None
    keys = ("max_tokens", "max_completion_tokens", "temperature", "top_p", "seed")
    settings: dict[str, Any] = {k: request[k] for k in keys
                                if isinstance(request.get(k), int | float) and not isinstance(request.get(k), bool)}
    settings["messages" if request.get("messages") is not None else "prompt"] = []
    return settings


class ResponseScorer:
    """Scores responses with chosen ``estimators`` and ``policy`` (module docstring); ``source`` names the
    integration in warnings. Made once per wrapped client or callback, so bad choices fail before any call."""

    def __init__(self, estimators: EstimatorSpecs | None = None, policy: PolicyLike | None = None, *,
                 source: str) -> None:
        self.named = None if estimators is None else logprob_estimators(estimators)
        self.policy = load_policy(policy)
        self.source = source
        chosen = list(self.named) if self.named is not None else logprob_estimators(None)
        decider = build_estimator((self.policy or Policy()).score)
        if decider not in chosen:
            chosen.append(decider)
        self.client_side = chosen
        self._warned = False

    def score(self, response: Mapping[str, Any], *, request: Mapping[str, Any] | None = None,
              prompt: Any = None) -> Annotated | None:
        """The scored answer of choice 0 of an OpenAI-shaped ``response`` (a dict), or ``None`` (warned once)
        when it carries no log-probs. ``request`` (the call's keyword arguments) supplies the prompt."""
        ext = response.get("tokentrust")
        if isinstance(ext, Mapping) and "trace" in ext:
            return self.from_server(ext)
        choices = response.get("choices")
        if not isinstance(choices, list) or not choices or choice_entries(choices[0]) is None:
            self.warn_missing()
            return None
        if prompt is None and request is not None:
            prompt = prompt_of(request)
        trace = Trace.from_openai(dict(response), request=_settings(request), prompt=prompt if prompt is not None else "")
        if len(trace) == 0:
            self.warn_missing()
            return None
        return self.from_trace(trace)

    def from_trace(self, trace: Trace) -> Annotated:
        """``trace`` scored in-process, with the decision of the policy (``Policy()`` unless one was given)."""
        return annotate(trace, self.client_side).decided(self.policy or Policy())

    def from_server(self, extension: Mapping[str, Any]) -> Annotated:
        """The proxy's result kept as it is; scores named here that it lacks are added (computed on its
        trace), and a policy given here replaces the proxy's decision."""
        result = Annotated.model_validate(extension)
        wanted = list(self.named or [])
        if self.policy is not None:
            wanted.append(build_estimator(self.policy.score))
        present = {s.estimator for s in result.scores}
        missing = [e for e in wanted if e.id not in present]
        if missing:
            extra = annotate(result.trace, missing).scores
            result = result.model_copy(update={"scores": [*result.scores,
                                                          *(s for s in extra if s.estimator not in present)]})
        return result.decided(self.policy) if self.policy is not None else result

    def warn_missing(self, reason: str | None = None) -> None:
        """One :class:`NoLogprobsWarning` per scorer: the answer is passed through unscored."""
        if self._warned:
            return
        self._warned = True
        reason = reason or ("the response carries no log-probs; the server must return them "
                            "(logprobs=True, top_logprobs=k)")
        warnings.warn(f"{self.source}: {reason}; passed through unscored", NoLogprobsWarning, stacklevel=3)

    def safely(self, response: Mapping[str, Any], **kwargs: Any) -> Annotated | None:
        """:meth:`score`, turning a malformed response into a warning instead of an error in the caller's code."""
        try:
            return self.score(response, **kwargs)
        except (TokentrustError, ValueError) as exc:  # ValueError: settings a trace cannot record
            warnings.warn(f"{self.source}: the response could not be scored ({exc}); passed through unscored",
                          NoLogprobsWarning, stacklevel=3)
            return None


def missing_library(module: str, package: str, extra: str) -> ModuleNotFoundError:
    """The error an integration raises when its library is not installed, naming the extra to install."""
    return ModuleNotFoundError(f"tokentrust.integrations.{module} needs {package}: "
                               f"pip install 'tokentrust[{extra}]'")
