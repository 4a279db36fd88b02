"""The proxy's cascade (``tokentrust serve --defer-to``): the served (small) model answers and is scored; when
the deferral rule of a :class:`~tokentrust.decide.cascade.CascadePolicy` says so, the large backend answers
instead (METHODS.md §2.8).

The reply then carries the large model's answer, and its ``tokentrust`` extension keeps the small answer's
trace and scores, with ``decision.action == "defer"``, ``decision.deferred_to`` naming the large model and
``decision.cascade`` (a :class:`~tokentrust.decide.policy.Deferral`) holding the rule, its score, the threshold
and the large answer's trace. A large model that fails (down, refusing the prompt) is never an error for the
client: the small answer is returned, decided as usual, with ``decision.cascade.note`` saying what failed.

Streaming: the small answer is generated in full and decided before the first token is sent; then either it or
the large answer (streamed as the large backend produces it) goes out token by token.

Without a cascade policy the rule is :data:`DEFAULT_RULE` (Chow-Average, the mean token log-prob of the small
answer) with :data:`DEFAULT_THRESHOLD` = ln 0.8: defer exactly when the geometric mean token probability is below
0.8, the level under which the default answer policy would hedge (so the large model answers instead of a
hedge). ``tokentrust cascade`` fits a threshold on a dataset instead (its ``policy.json``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..annotated import Annotated
from ..capability import Capability
from ..config import GenerationConfig
from ..decide.cascade import CascadePolicy
from ..decide.policy import Deferral
from ..errors import UserInputError
from ..estimators.base import Estimator
from ..trace import Message, TokenRecord, Trace

__all__ = ["DEFAULT_RULE", "DEFAULT_THRESHOLD", "ServeCascade", "answer_trace", "default_cascade_policy",
           "load_large"]

DEFAULT_RULE = "chow_average"
DEFAULT_THRESHOLD = math.log(0.8)

Prompt = str | list[Message]


def load_large(spec: str) -> Any:
    """The large backend for ``spec``: any backend spec (``openai:<url>#<model>``, a local folder, ``default``)
    or a bare ``http(s)://`` base URL (read as ``openai:<url>``). A server is asked to fail fast (one quick retry,
    5 s to connect), so a large model that is down costs a request little; an in-process model is put behind
    its batching scheduler."""
    from ..loading import load

    spec = spec.strip()
    if spec.startswith(("http://", "https://")):
        spec = "openai:" + spec
    if spec.startswith("openai:"):
        return load(spec, max_retries=1, backoff=0.2, connect_timeout=5.0, concurrency=64)
    return _scheduled(load(spec))


def default_cascade_policy(large: str, threshold: float | None = None) -> CascadePolicy:
    """:data:`DEFAULT_RULE` (the mean token log-prob) below ``threshold`` (default :data:`DEFAULT_THRESHOLD`;
    ``inf`` defers every answer, ``-inf`` none), deferring to ``large``."""
    if threshold is not None and math.isnan(threshold):
        raise UserInputError("the deferral threshold is NaN; give a mean token log-prob (≤ 0), inf or -inf")
    return CascadePolicy(rule=DEFAULT_RULE, threshold=DEFAULT_THRESHOLD if threshold is None else threshold,
                         large=large)


def _scheduled(backend: Any) -> Any:
    if callable(getattr(backend, "engine", None)):  # an in-process model: batch concurrent requests
        from ..backends.scheduler import scheduler_for

        return scheduler_for(backend)
    return backend


def answer_trace(answer: Annotated) -> Trace:
    """The trace whose text the client gets: the large model's when the answer was deferred, else the answer's."""
    d = answer.decision
    if d is not None and d.cascade is not None and d.cascade.deferred and d.cascade.trace is not None:
        return d.cascade.trace
    return answer.trace


def _message(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


@dataclass
class ServeCascade:
    """The large backend and the policy that decides when it answers instead of the served model.

    Build it with :meth:`create` (a spec or a backend, and a policy or the default rule)."""

    large: Any
    policy: CascadePolicy

    @classmethod
    def create(cls, large: str | Any, policy: CascadePolicy | None = None) -> ServeCascade:
        """``large``: a backend spec or URL (loaded with :func:`load_large`) or a backend. ``policy``: a cascade
        policy (``tokentrust cascade`` writes one; its ``large`` is only a record, ``large`` here decides);
        default :func:`default_cascade_policy`."""
        backend = load_large(large) if isinstance(large, str) else _scheduled(large)
        return cls(backend, policy if policy is not None else default_cascade_policy(str(backend.model_id)))

    @classmethod
    def serving(cls, small: Any, large: str | Any | None, policy: CascadePolicy | None = None) -> ServeCascade:
        """The cascade in front of the served ``small`` backend, which must give token log-probs (the rules
        read them); ``large`` defaults to the policy's ``large`` model."""
        if large is None:
            if policy is None:
                raise UserInputError("a cascade needs the large model (--defer-to) or a cascade policy naming it")
            large = policy.large
        if Capability.LOGPROBS not in small.capabilities:
            raise UserInputError(f"{small.model_id} gives no token log-probs, which the deferral rules read; "
                                 "serve a model that gives them to defer to a larger one")
        return cls.create(large, policy)

    @property
    def name(self) -> str:
        """The large model's id, as ``decision.deferred_to`` names it."""
        return str(self.large.model_id)

    def check(self, small: Annotated) -> Deferral:
        """The rule's verdict on a small answer (``deferred``: it should go to the large model)."""
        score = self.policy.score(small.trace)
        return Deferral(rule=self.policy.rule, score=score, threshold=self.policy.threshold, large=self.name,
                        deferred=not score >= self.policy.threshold)

    # ---- one request ---------------------------------------------------------------------------------
    def answer(self, small_backend: Any, prompt: Prompt, cfg: GenerationConfig, estimators: list[Estimator],
               rule: Any) -> Annotated:
        """The small answer, scored and decided; deferred to the large model when the rule says so."""
        small = _scored(small_backend, small_backend.generate(prompt, cfg), estimators, rule)
        check = self.check(small)
        if not check.deferred:
            return _with(small, check)
        try:
            large = self.large.generate(prompt, cfg)
        except Exception as exc:  # noqa: BLE001 — the small answer stands; the client is told why
            return self._kept(small, check, exc)
        return _deferred(small, check, large)

    def stream(self, small_backend: Any, prompt: Prompt, cfg: GenerationConfig, estimators: list[Estimator],
               rule: Any) -> Iterator[TokenRecord | Annotated]:
        """Token records, then the decided answer, as :meth:`answer` decides it: the small answer is generated
        in full first; the large one streams as it is produced (a failure before its first token falls back
        to the small answer, one after it is raised)."""
        small = _scored(small_backend, small_backend.generate(prompt, cfg), estimators, rule)
        check = self.check(small)
        if check.deferred:
            tokens = self._large_tokens(prompt, cfg)
            try:
                try:
                    first = next(tokens)
                except Exception as exc:  # noqa: BLE001 — nothing sent yet: the small answer stands
                    small = self._kept(small, check, exc)
                else:
                    item = first
                    while not isinstance(item, Trace):
                        yield item
                        item = next(tokens)
                    yield _deferred(small, check, item)
                    return
            finally:
                tokens.close()
        else:
            small = _with(small, check)
        yield from small.trace.records()
        yield small

    def _large_tokens(self, prompt: Prompt, cfg: GenerationConfig) -> Iterator[TokenRecord | Trace]:
        if Capability.STREAMING in self.large.capabilities:
            yield from self.large.stream(prompt, cfg)
            return
        trace = self.large.generate(prompt, cfg)
        yield from trace.records()
        yield trace

    def _kept(self, small: Annotated, check: Deferral, exc: BaseException) -> Annotated:
        note = (f"the rule deferred to {self.name}, which failed ({_message(exc)}); "
                f"this is the answer of {small.trace.model_id}")
        return _with(small, check.model_copy(update={"deferred": False, "note": note}))


def _scored(backend: Any, trace: Trace, estimators: list[Estimator], rule: Any) -> Annotated:
    from .routes import scored  # the routes' own scoring (and its checks)

    return scored(backend, trace, estimators, rule)


def _with(small: Annotated, check: Deferral) -> Annotated:
    assert small.decision is not None
    return small.model_copy(update={"decision": small.decision.model_copy(update={"cascade": check})})


def _deferred(small: Annotated, check: Deferral, large: Trace) -> Annotated:
    """The small answer's scores and decision, turned into ``defer`` with the large answer as the phrase."""
    assert small.decision is not None
    name = str(large.model_id or check.large)  # a server's model name is known once it answered
    decision = small.decision.model_copy(update={
        "action": "defer", "phrase": large.text, "text": large.text, "deferred_to": name,
        "cascade": check.model_copy(update={"deferred": True, "trace": large, "large": name}),
    })
    return small.model_copy(update={"decision": decision})
