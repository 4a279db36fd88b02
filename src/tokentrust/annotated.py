"""``annotate(trace, estimators)``: run estimators on a trace and keep the result with it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from pydantic import Field

from .config import Record
from .decide.policy import Decision, Policy
from .decide.rationale import rationale_from_context
from .errors import TokentrustError, UnknownNameError
from .estimators.base import Estimator, build_estimator
from .registry import estimators
from .scores import Level, Scores
from .stat import Context
from .stats.claims import Claim, Claims
from .trace import Trace

if TYPE_CHECKING:
    from .backends.base import Backend

#: Sequence scores shown when the user names none: cheap, white-box, complementary.
DEFAULT_ESTIMATORS: tuple[str, ...] = (
    "maximum_sequence_probability",
    "geometric_mean_token_probability",
    "minimum_token_probability",
    "mean_token_entropy",
    "perplexity",
)


class Annotated(Record):
    """A trace, the scores computed on it and, when a policy was applied, what to tell the user.

    ``rationale``: one sentence on what the sampled answers disagreed about, when a clustered sampling score
    (semantic entropy, NumSemSets, …) found several meanings (:mod:`tokentrust.decide.rationale`).

    ``claims`` lists the answer's claims when a claim-level score was asked for, each with its text, character
    span, token indices and its value under every claim-level score (``claim.scores[estimator id]``).

    This is also the ``tokentrust`` object the confidence proxy adds to each reply, so a client loads it
    back with ``Annotated.model_validate(reply["tokentrust"])``. Renders itself in notebooks.
    """

    trace: Trace
    scores: list[Scores]
    claims: list[Claim] = Field(default_factory=list)
    decision: Decision | None = None
    rationale: str | None = None

    def __getitem__(self, estimator: str) -> Scores:
        """The scores of ``estimator``: its canonical id, an alias or a spec (``msp``, ``name:key=value``).

        A bare name or alias also finds the one score of that estimator computed with other parameters
        (``result["se"]`` after ``-e se:n_samples=5``); if there are several, the message lists them.
        """
        wanted = {estimator}
        name = estimator
        try:
            wanted.add(build_estimator(estimator).id)
            name = estimators.canonical(estimator.partition(":")[0].strip())
        except TokentrustError:
            pass
        for s in self.scores:
            if s.estimator in wanted:
                return s
        if ":" not in estimator:
            same = [s for s in self.scores if s.estimator.partition("(")[0] == name]
            if len(same) == 1:
                return same[0]
            if same:
                raise UnknownNameError(f"{estimator!r} was computed with several parameters here; give one of: "
                                       f"{', '.join(s.estimator for s in same)}")
        names = ", ".join(s.estimator for s in self.scores)
        raise UnknownNameError(f"no scores for {estimator!r} in this result; present: {names}")

    def __repr__(self) -> str:
        """One line: the start of the answer, its length, the model and each answer-level value."""
        text = self.trace.text if len(self.trace.text) <= 60 else self.trace.text[:57] + "..."
        values = ", ".join(f"{s.estimator}={s.values[0]:.4g}" for s in self.sequence_scores)
        rest = len(self.scores) - len(self.sequence_scores)
        more = f" (+{rest} token/claim-level)" if rest else ""
        decision = f", decision={self.decision.action}" if self.decision is not None else ""
        return (f"Annotated({text!r}, {len(self.trace)} tokens, model={self.trace.model_id!r}, "
                f"scores: {values or 'none'}{more}{decision})")

    __str__ = __repr__

    def decided(self, policy: Policy | None = None, calibrator: object = None) -> Annotated:
        """This result with :func:`~tokentrust.decide.decide`'s decision for its answer (``policy.score`` must
        be among the scores, or be the ``calibrator``'s probability, which is then added to the scores)."""
        from .decide.decision import calibrated

        decision, probability = calibrated(self, calibrator, policy)
        scores = self.scores if probability is None else [
            *(s for s in self.scores if s.estimator != probability.estimator), probability]
        return self.model_copy(update={"decision": decision, "scores": scores})

    @property
    def sequence_scores(self) -> list[Scores]:
        return [s for s in self.scores if s.level is Level.SEQUENCE]

    def _repr_html_(self) -> str:
        from .render.html import render_html

        return render_html(self)

    def __rich__(self) -> object:
        from .render.terminal import render_rich

        return render_rich(self)


def resolve_estimators(specs: Iterable[str | Estimator] | None) -> list[Estimator]:
    """Estimators from spec strings (``name:key=value``) or instances; ``None`` = the defaults."""
    chosen = DEFAULT_ESTIMATORS if specs is None else specs
    out: list[Estimator] = []
    for spec in chosen:
        est = build_estimator(spec)
        if est not in out:
            out.append(est)
    return out


def annotate(
    trace: Trace,
    estimators: Sequence[str | Estimator] | None = None,
    *,
    backend: Backend | None = None,
    seed: int = 0,
    with_token_forms: bool = True,
) -> Annotated:
    """Score ``trace`` with ``estimators`` (default :data:`DEFAULT_ESTIMATORS`).

    ``with_token_forms`` adds the token-level form of every sequence estimator that has one, so the
    text can be coloured by any chosen score. A ``backend`` is needed only for estimators that call the
    model again (PMI's prompt-free pass, sampling).
    """
    from .capability import check_compatible

    chosen = resolve_estimators(estimators)
    if with_token_forms:
        for est in list(chosen):
            form = est.token_form
            if form is not None and not any(type(e) is form for e in chosen):
                chosen.append(form(**_shared_params(est, form)))
    check_compatible(chosen, backend, trace)
    ctx = Context(trace, backend, seed=seed)
    scores = [ctx.get(est) for est in chosen]
    return Annotated(trace=trace, scores=scores, claims=_scored_claims(ctx, chosen, scores),
                     rationale=rationale_from_context(ctx, chosen))


def _scored_claims(ctx: Context, chosen: Sequence[Estimator], scores: Sequence[Scores]) -> list[Claim]:
    """The claims of every claim-level score, merged by (extractor, span, text), each with its values."""
    merged: dict[tuple[str, tuple[int, int], str], tuple[Claim, dict[str, float]]] = {}
    for est, s in zip(chosen, scores, strict=True):
        if s.level is not Level.CLAIM:
            continue
        for claim, value in zip(ctx.get(Claims(extractor=est.claims)), s.values, strict=True):  # type: ignore[attr-defined]
            key = (claim.extractor, claim.char_span, claim.text)
            merged.setdefault(key, (claim, {}))[1][s.estimator] = value
    return [claim.model_copy(update={"scores": values}) for claim, values in merged.values()]


def _shared_params(est: Estimator, form: type[Estimator]) -> dict[str, object]:
    from dataclasses import fields

    names = {f.name for f in fields(form)}
    return {f.name: getattr(est, f.name) for f in fields(est) if f.name in names}
