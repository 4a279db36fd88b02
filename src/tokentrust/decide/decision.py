"""``decide(annotated, calibrator, policy) -> Decision``: the one decision ``ask``, the notebook and the proxy make.

With a calibrator, the policy thresholds its calibrated probability (``calibrated_confidence``, from
:func:`tokentrust.calibration.apply_calibrator`); without one, the policy's own score, which must be among
the answer's scores. A calibrator or policy fitted on another model's answers, a policy fitted with another
calibrator, or a calibrator given to a policy on a raw score, is refused with one clear error
(:func:`check_pairing`, also called by ``ask`` and ``serve`` before any model work).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..calibration import CALIBRATED_ID
from ..errors import UserInputError
from .policy import Decision, Policy, calibrated_policy

if TYPE_CHECKING:
    from ..annotated import Annotated
    from ..scores import Scores

__all__ = ["calibrated", "check_pairing", "decide", "default_policy", "load_pair", "required_scores", "scores_needed"]

CALIBRATED = CALIBRATED_ID  # the estimator id of a calibrator's probability


def required_scores(calibrator: Any) -> list[str]:
    """The estimator ids a calibrator reads (a single-score map: one; a learned confidence: several)."""
    ids = getattr(calibrator, "score_ids_", None)
    if ids:
        return list(ids)
    one = getattr(calibrator, "score_id_", None)
    if one is None:
        raise UserInputError("this calibrator does not record which score it was fitted on (an older file); "
                             "refit it with `tokentrust calibrate`")
    return [one]


def _describe(calibrator: Any) -> str:
    return f"{calibrator.kind}({', '.join(required_scores(calibrator))})"


def default_policy(calibrator: Any = None) -> Policy:
    """``Policy()`` without a calibrator; with one, the bands for its calibrated probability."""
    return Policy() if calibrator is None else calibrated_policy(CALIBRATED)


def check_pairing(policy: Policy, calibrator: Any, model_id: str | None) -> None:
    """Refuse a policy or calibrator fitted for another model, and a calibrator the policy was not fitted
    with. ``model_id=None`` skips the model check."""
    g = policy.guarantee
    if model_id is not None and g is not None and g.model != model_id:
        raise UserInputError(f"this policy was fitted on answers of model {g.model!r}, but the answers come from "
                             f"{model_id!r}; fit one for that model with `tokentrust calibrate RUN --target-risk …`")
    fitted_on = getattr(calibrator, "model_id_", None)
    rule = policy.claims
    if model_id is not None and rule is not None and rule.model != model_id:
        raise UserInputError(f"this policy's claim filter was fitted on answers of model {rule.model!r}, but the "
                             f"answers come from {model_id!r}; fit one for that model on a claim-level run")
    if model_id is not None and fitted_on is not None and fitted_on != model_id:
        raise UserInputError(f"this calibrator was fitted on answers of model {fitted_on!r}, but the answers "
                             f"come from {model_id!r}; fit one for that model")
    if policy.score == CALIBRATED:
        if calibrator is None:
            used = f" ({g.calibrator})" if g is not None and g.calibrator else ""
            raise UserInputError(f"this policy thresholds a calibrated probability{used}; give the calibrator it "
                                 "was fitted with (--calibrator)")
        if g is not None and g.calibrator is not None and g.calibrator != _describe(calibrator):
            raise UserInputError(f"this policy was fitted with the calibrator {g.calibrator}, not "
                                 f"{_describe(calibrator)}; give that calibrator or refit the policy")
    elif calibrator is not None:
        raise UserInputError(f"this policy thresholds {policy.score!r}, not a calibrated probability; drop the "
                             "calibrator, or fit the policy with it (`tokentrust calibrate RUN --calibrator …`)")


def load_pair(calibrator_path: str | Path | None, policy_path: str | Path | None) -> tuple[Policy, Any]:
    """The policy and calibrator files ``ask`` and ``serve`` were given, read and checked against each other
    (the model is checked once it is known); a missing or corrupt file is one clear error."""
    calibrator = None
    if calibrator_path is not None:
        from ..calibration import load_calibrator

        calibrator = load_calibrator(calibrator_path)
        required_scores(calibrator)  # refuses a file that does not say which score it reads
    policy = Policy.load(policy_path) if policy_path is not None else default_policy(calibrator)
    check_pairing(policy, calibrator, None)
    return policy, calibrator


def scores_needed(policy: Policy, calibrator: Any) -> list[str]:
    """The estimator ids a decision needs computed: the calibrator's inputs, or the policy's score; and the
    claim rule's score when the policy filters claims."""
    needed = required_scores(calibrator) if calibrator is not None else [policy.score]
    return needed + [policy.claims.score] if policy.claims is not None else needed


def calibrated(annotated: Annotated, calibrator: Any, policy: Policy | None = None) -> tuple[Decision, Scores | None]:
    """The decision and, with a calibrator, the calibrated probability's scores (for display)."""
    policy = policy or default_policy(calibrator)
    check_pairing(policy, calibrator, annotated.trace.model_id)
    probability: Scores | None = None
    if calibrator is not None:
        from ..calibration import apply_calibrator

        probability = apply_calibrator(annotated, calibrator)
        value = probability.value
    else:
        value = annotated[policy.score].value
    return policy.decide(value, annotated.trace.text, rationale=annotated.rationale,
                         claims=annotated.claims if policy.claims is not None else None), probability


def decide(annotated: Annotated, calibrator: Any = None, policy: Policy | None = None) -> Decision:
    """What to tell the user about ``annotated``'s answer: ``action`` (answer / hedge / abstain), the
    ``probability`` it rests on and the ``phrase`` to show (:class:`~tokentrust.decide.policy.Decision`).

    ``policy`` defaults to :func:`default_policy`; ``calibrator`` is any calibrator from
    :func:`tokentrust.calibration.load_calibrator`. The decision carries ``Annotated.rationale`` (what the
    sampled answers disagreed about) when it hedges or abstains.
    """
    return calibrated(annotated, calibrator, policy)[0]
