"""Planning one request before any model work: the scores to compute, the policy, the generation settings.

Everything a request asks for is checked here, against what the backend declares it can give, so a bad
estimator, a score the backend cannot serve or a too-long answer is a 400 before anything is generated.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
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


#: Estimator parameters that count answers drawn (each bounded by ``Limits.max_samples``) and answer lengths
#: (each bounded by ``Limits.max_tokens``).
SAMPLE_PARAMS = ("n_samples", "n_brainstorm", "matchups")
LENGTH_PARAMS = ("max_new_tokens", "pool_max_new_tokens")


@dataclass(frozen=True)
class Cost:
    """What a request may generate at most: extra answers its scores draw and tokens over all passes."""

    samples: int
    tokens: int


def _passes(est: Estimator, budget: int) -> list[tuple[tuple[Any, ...], int, int]]:
    """``(key, answers, tokens each)`` of the extra generation passes of one estimator; passes with equal
    keys are shared between estimators (one sampling call serves every estimator asking for it)."""
    params = {f.name: getattr(est, f.name) for f in fields(est)}
    if "pool_max_new_tokens" in params:  # relative confidence: the reference pool's answers, then its games
        return [(("pool", params["pool"], params["pool_max_new_tokens"]), len(params["pool"]),
                 params["pool_max_new_tokens"]), (("games", est.id), params["matchups"], 1)]
    if "strategy" in params:  # verbalized confidence: one reply, or one per sample
        from ..estimators.verbalized import MAX_NEW_TOKENS

        each = params["max_new_tokens"] or MAX_NEW_TOKENS[params["strategy"]]
        n = params["n_samples"] if params["sampling"] != "none" else 1
        return [(("verbalized", est.id), n, each)]
    if "n_samples" in params:
        each = params["max_new_tokens"] or budget
        key = ("samples", params["n_samples"], params["temperature"], params["top_p"], each)
        return [(key, params["n_samples"], each)]
    if params.get("n_brainstorm"):
        return [(("samples", params["n_brainstorm"], params["temperature"], 1.0, budget), params["n_brainstorm"],
                 budget)]
    return []


def request_cost(estimators: list[Estimator], budget: int) -> Cost:
    """Answers and tokens one request may generate: its own answer of ``budget`` tokens, plus every extra
    pass its estimators need (sampled answers, verbalized replies, a relative-confidence pool)."""
    passes = {key: (n, each) for est in estimators for key, n, each in _passes(est, budget)}
    samples = sum(n for n, _ in passes.values())
    return Cost(samples=samples, tokens=budget + sum(n * each for n, each in passes.values()))


def check_cost(state: ServeState, estimators: list[Estimator], budget: int) -> Cost:
    """Refuse (400, naming the limit and the requested value) a request over this server's cost limits:
    a sampling parameter above ``max_samples``, an answer length above ``max_tokens``, or more than
    ``max_pass_tokens`` tokens over all passes."""
    lim = state.limits
    for est in estimators:
        params = {f.name: getattr(est, f.name) for f in fields(est)}
        for name in SAMPLE_PARAMS:
            if isinstance(params.get(name), int) and params[name] > lim.max_samples:
                raise APIError(400, f"estimator {est.id} asks for {name}={params[name]}; this server allows at "
                               f"most {lim.max_samples} samples per estimator", param="tokentrust.estimators",
                               code="cost_limit_exceeded")
        if "pool" in params and len(params["pool"]) > lim.max_samples:
            raise APIError(400, f"estimator {est.id} has a pool of {len(params['pool'])} questions; this server "
                           f"allows at most {lim.max_samples}", param="tokentrust.estimators",
                           code="cost_limit_exceeded")
        for name in LENGTH_PARAMS:
            if isinstance(params.get(name), int) and params[name] > lim.max_tokens:
                raise APIError(400, f"estimator {est.id} asks for {name}={params[name]}; this server allows at "
                               f"most {lim.max_tokens} tokens per answer", param="tokentrust.estimators",
                               code="cost_limit_exceeded")
    cost = request_cost(estimators, budget)
    if cost.tokens > lim.max_pass_tokens:
        raise APIError(400, f"this request may generate {cost.tokens} tokens over all passes (an answer of "
                       f"{budget} tokens and {cost.samples} extra answers for its scores); this server allows at "
                       f"most {lim.max_pass_tokens}: lower max_tokens, n_samples or max_new_tokens",
                       param="tokentrust.estimators", code="cost_limit_exceeded")
    return cost


def _named_models(est: Estimator) -> list[str]:
    """``name=value`` of each parameter of ``est`` that names a model other than its default: a claim
    extractor's ``model=`` (a backend spec: a folder, a hub id or a server URL) or an NLI / embedding model."""
    named = []
    for f in fields(est):
        value = getattr(est, f.name)
        if not isinstance(value, str) or value == f.default:
            continue
        kind, _, argument = value.partition(":")
        if (f.name == "claims" and "model=" in argument) or (
                f.name == "similarity" and kind.strip().lower() in ("nli", "embedding") and argument.strip()):
            named.append(f"{f.name}={value}")
    return named


def check_models(estimators: list[Estimator]) -> None:
    """Refuse (400) a request's estimator that names a model of its own: a client may not make the server
    load a folder or hub id, or call a URL with the server's keys. Only the models it was started with."""
    for est in estimators:
        named = _named_models(est)
        if named:
            raise APIError(400, f"estimator {est.id} names another model ({', '.join(named)}); a request may use "
                           "only this server's own models: drop the model (claims=llm uses the served model; "
                           "similarity=embedding, lexical or judge)", param="tokentrust.estimators",
                           code="model_not_allowed")


def plan(state: ServeState, opts: TokentrustOptions | None, tokens: int | None = None
         ) -> tuple[list[Estimator], Rule]:
    """Estimators to run and the decision rule for one request (server defaults unless the request says
    otherwise: a request naming its own policy score decides on that score, without the calibrator).

    The default scores are those of :data:`~tokentrust.annotated.DEFAULT_ESTIMATORS` the backend can serve;
    named ones it cannot serve are refused, naming what is missing, and so is a request over the cost
    limits (:func:`check_cost`; ``tokens``: the answer's budget, by default the server's ``max_tokens``).
    """
    policy, calibrator = state.policy, state.calibrator
    if opts is not None and opts.policy is not None:
        changes = {k: v for k, v in opts.policy.model_dump().items() if v is not None}
        if "score" in changes:
            calibrator = None
        policy = policy.with_changes(**changes)
    chosen = resolve_estimators(opts.estimators if opts is not None and opts.estimators is not None else None)
    if opts is not None and opts.estimators is not None:
        check_models(chosen)
    if opts is None or opts.estimators is None:
        caps = state.backend.capabilities
        chosen = [e for e in chosen if e.requires <= caps]
    if calibrator is not None:
        chosen += [e for e in resolve_estimators(required_scores(calibrator)) if e not in chosen]
    else:
        decider = check_policy_score(policy.score)
        check_models([decider])
        if decider not in chosen:
            chosen.append(decider)
        policy = policy.with_changes(score=decider.id) if decider.id != policy.score else policy
    if policy.claims is not None:  # the policy's claim filter needs its claim score
        chosen += [e for e in resolve_estimators([policy.claims.score]) if e not in chosen]
    check_compatible(chosen, state.backend)
    check_cost(state, chosen, tokens if tokens is not None else state.limits.max_tokens)
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
    """The request's messages (``developer`` read as ``system``; text parts joined). A user message with no
    text (empty or only whitespace) is refused, as ``tokentrust ask`` refuses an empty prompt."""
    messages = [
        Message(role="system" if m.role == "developer" else m.role,
                content=m.content if isinstance(m.content, str) else "".join(p.text for p in m.content))
        for m in req.messages
    ]
    for i, m in enumerate(messages):
        if m.role == "user" and not m.content.strip():
            raise APIError(400, f"messages.{i}.content is empty; a user message needs some text",
                           param=f"messages.{i}.content", code="invalid_value")
    return messages


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
