"""Planning one request before any model work: the scores to compute, the policy, the generation settings.

Everything a request asks for is checked here, against what the backend declares it can give, so a bad
estimator, a score the backend cannot serve or a too-long answer is a 400 before anything is generated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..annotated import DEFAULT_ESTIMATORS, resolve_estimators
from ..capability import check_compatible
from ..config import GenerationConfig
from ..decide.decision import required_scores
from ..decide.policy import Policy
from ..estimators.base import Estimator, build_estimator
from ..scores import Level
from ..trace import Message
from .errors import APIError
from .schemas import ChatRequest, Common, CompletionRequest, TokentrustOptions
from .state import ServeState


def check_policy_score(score: str) -> Estimator:
    """The estimator behind a policy score; it must be a sequence-level probability."""
    decider = build_estimator(score)
    if decider.level is not Level.SEQUENCE or not decider.is_probability:
        raise APIError(400, f"policy score {score!r} must be a sequence-level probability "
                       "(e.g. geometric_mean_token_probability, maximum_sequence_probability)",
                       param="tokentrust.policy.score", code="invalid_value")
    return decider


@dataclass(frozen=True)
class Rule:
    """How one request's answer is decided: the policy, and the calibrator whose probability it thresholds."""

    policy: Policy
    calibrator: Any = None


def plan(state: ServeState, opts: TokentrustOptions | None) -> tuple[list[Estimator], Rule]:
    """Estimators to run and the decision rule for one request (server defaults unless the request says
    otherwise: a request naming its own policy score decides on that score, without the calibrator).

    The default scores are those of :data:`~tokentrust.annotated.DEFAULT_ESTIMATORS` the backend can serve;
    named ones it cannot serve are refused, naming what is missing.
    """
    policy, calibrator = state.policy, state.calibrator
    if opts is not None and opts.policy is not None:
        changes = {k: v for k, v in opts.policy.model_dump().items() if v is not None}
        if "score" in changes:
            calibrator = None
        policy = policy.with_changes(**changes)
    chosen = resolve_estimators(opts.estimators if opts is not None and opts.estimators is not None else None)
    if opts is None or opts.estimators is None:
        caps = state.backend.capabilities
        chosen = [e for e in chosen if e.requires <= caps]
    if calibrator is not None:
        chosen += [e for e in resolve_estimators(required_scores(calibrator)) if e not in chosen]
    else:
        decider = check_policy_score(policy.score)
        if decider not in chosen:
            chosen.append(decider)
        policy = policy.with_changes(score=decider.id) if decider.id != policy.score else policy
    check_compatible(chosen, state.backend)
    return chosen, Rule(policy, calibrator)


def default_estimators(state: ServeState) -> list[Estimator]:
    """What a request that names no scores gets (the page ticks these)."""
    caps = state.backend.capabilities
    return [e for e in resolve_estimators(list(DEFAULT_ESTIMATORS)) if e.requires <= caps]


def max_tokens(state: ServeState, *values: int | None) -> int:
    given = next((v for v in values if v is not None), None)
    if given is None:
        return state.limits.default_max_tokens
    if given > state.limits.max_tokens:
        raise APIError(400, f"max_tokens is {given}; this server allows at most {state.limits.max_tokens}",
                       param="max_tokens", code="invalid_value")
    return given


def generation_config(state: ServeState, req: Common, tokens: int, *, chat: bool) -> GenerationConfig:
    """The request's settings; temperature defaults to 0 (greedy)."""
    return GenerationConfig(
        max_new_tokens=tokens, temperature=req.temperature or 0.0, top_p=req.top_p or 1.0, seed=req.seed,
        top_k=state.limits.top_k, chat=chat,
    )


def chat_prompt(req: ChatRequest) -> list[Message]:
    """The request's messages (``developer`` read as ``system``; text parts joined)."""
    return [
        Message(role="system" if m.role == "developer" else m.role,
                content=m.content if isinstance(m.content, str) else "".join(p.text for p in m.content))
        for m in req.messages
    ]


def completion_prompt(req: CompletionRequest) -> str:
    """The request's one prompt string (a list holding exactly one string is accepted)."""
    prompt = req.prompt
    if isinstance(prompt, list):
        if len(prompt) != 1:
            raise APIError(400, f"prompt must be one string (got a list of {len(prompt)})", param="prompt",
                           code="invalid_value")
        prompt = prompt[0]
    if not prompt.strip():
        raise APIError(400, "prompt is empty", param="prompt", code="invalid_value")
    return prompt
