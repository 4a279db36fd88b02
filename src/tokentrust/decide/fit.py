"""Fit a :class:`~tokentrust.decide.policy.Policy` on a calibration run: ``tokentrust calibrate RUN
--target-risk α [--delta δ] (-e score | --calibrator conf.json) --out policy.json``.

Every threshold is chosen on the run, none by hand:

* ``abstain_below`` = :func:`~tokentrust.decide.risk.risk_threshold` (α, δ): with probability ≥ 1 − δ the
  error rate among answered (plain or hedged) questions is ≤ α;
* ``hedge_below`` and ``low_below`` (:func:`fit_bands`): the run's accuracy as a non-decreasing function of
  the probability (isotonic regression of correctness on it); the answer band starts at the lowest
  probability whose fitted accuracy is ≥ 0.8, the medium hedge at the lowest whose accuracy is ≥ 0.5 (the
  high / medium / low buckets of METHODS §7.2), both clipped to ``[abstain_below, 1]``.

The probability is the run's score ``-e`` (one that is a probability), or ``--calibrator``'s probability
of each row. The guarantee needs calibration data the calibrator never saw: fit the calibrator on one run
(or split) and the policy on another.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserInputError
from .decision import CALIBRATED, _describe, required_scores
from .policy import ANSWER_LEVEL, LOW_LEVEL, ClaimRule, Guarantee, Policy
from .risk import RiskControl, claim_filter_from_rows, risk_threshold

__all__ = ["fit_bands", "fit_claim_rule", "fit_policy", "policy_command", "run_probabilities"]

BANDS_HOW = (f"answer where the run's isotonic accuracy ≥ {ANSWER_LEVEL:g}, medium hedge where ≥ {LOW_LEVEL:g}, "
             "low hedge down to the risk-controlled threshold")


def fit_bands(probability: Any, correct: Any, *, floor: float = 0.0) -> tuple[float, float]:
    """``(hedge_below, low_below)``: the lowest probabilities whose isotonic-fitted accuracy on the run
    reaches :data:`ANSWER_LEVEL` and :data:`LOW_LEVEL` (1.0 when it never does), clipped to ``[floor, 1]``."""
    from sklearn.isotonic import IsotonicRegression

    p = np.asarray(probability, dtype=float)
    y = np.asarray(correct, dtype=float)
    keep = ~np.isnan(p)
    p, y = p[keep], y[keep]
    if p.size == 0:
        return 1.0, 1.0
    fitted = IsotonicRegression(increasing=True, y_min=0.0, y_max=1.0).fit(p, y).predict(p)

    def lowest(level: float) -> float:
        reach = p[fitted >= level - 1e-12]
        return float(min(max(reach.min(), floor), 1.0)) if reach.size else 1.0

    hedge = lowest(ANSWER_LEVEL)
    return hedge, min(lowest(LOW_LEVEL), hedge)


def run_probabilities(run_dir: str | Path, *, score: str | None = None, calibrator: Any = None
                      ) -> tuple[np.ndarray, np.ndarray, str, str]:
    """``(probability, correct, score id, model id)`` of a run's answers: the run's probability score
    ``score``, or ``calibrator``'s probability (NaN where a score is undefined)."""
    from ..bench.calibrate import run_model
    from ..bench.claims import measured_rows
    from ..bench.layout import SPEC_FILE, load_items
    from ..bench.spec import load_spec

    run_dir = Path(run_dir)
    items = load_items(run_dir)
    if load_spec(run_dir / SPEC_FILE).level == "claim":
        raise UserInputError(f"{run_dir} is a claim-level run; answer policies are fitted on answer-level runs "
                             "(on a claim-level run, calibrate --target-risk ε fits a claim filter)")
    rows = measured_rows(run_dir, items)
    if not rows:
        raise UserInputError(f"{run_dir} has no finished items")
    model = run_model(run_dir, rows) or "unknown"
    correct = np.array([bool(r["correct"]) for r in rows], dtype=float)
    present = sorted({k for r in rows for k in r["scores"]})
    if calibrator is not None:
        fitted_on = getattr(calibrator, "model_id_", None)
        if fitted_on is not None and fitted_on != model:
            raise UserInputError(f"this calibrator was fitted on answers of model {fitted_on!r}, but {run_dir} "
                                 f"holds answers of {model!r}")
        ids = required_scores(calibrator)
        missing = [s for s in ids if s not in present]
        if missing:
            raise UserInputError(f"{run_dir} has no scores for {', '.join(missing)} (the calibrator reads them); "
                                 f"present: {', '.join(present) or 'none'}")
        if hasattr(calibrator, "score_ids_"):  # a learned confidence reads whole rows (scores and trace)
            return np.asarray(calibrator.transform(rows), dtype=float), correct, CALIBRATED, model
        values = np.array([_value(r, ids[0]) for r in rows])
        prob = np.full(values.shape, np.nan)
        ok = ~np.isnan(values)
        if ok.any():
            prob[ok] = calibrator.transform(values[ok])
        return prob, correct, CALIBRATED, model
    if score is None:
        raise UserInputError("give the probability to threshold: -e <score> or --calibrator <file>")
    from ..estimators.base import build_estimator

    eid = build_estimator(score).id
    if eid not in present:
        raise UserInputError(f"{run_dir} has no scores for {eid!r}; present: {', '.join(present) or 'none'}")
    if not all(r["scores"][eid].get("is_probability") for r in rows if eid in r["scores"]):
        raise UserInputError(f"{eid} is not a probability; calibrate it first (tokentrust calibrate {run_dir} -e "
                             f"{score} --out conf.json on another run) and pass --calibrator conf.json")
    return np.array([_value(r, eid) for r in rows]), correct, eid, model


def _is_claim_run(run_dir: Path) -> bool:
    from ..bench.layout import SPEC_FILE
    from ..bench.spec import load_spec

    return load_spec(Path(run_dir) / SPEC_FILE).level == "claim"


def fit_claim_rule(run_dir: str | Path, *, epsilon: float, score: str | None) -> ClaimRule:
    """The conformal claim filter of a claim-level run (``bench --level claim``) on the claim score
    ``score``: a new answer keeps only true claims with probability ≥ 1 − ε (:func:`~.risk.claim_filter`)."""
    from ..bench.calibrate import run_model
    from ..bench.claims import measured_rows
    from ..bench.layout import load_items
    from ..estimators.base import build_estimator

    run_dir = Path(run_dir)
    items = load_items(run_dir)
    rows = measured_rows(run_dir, items)
    if not rows:
        raise UserInputError(f"{run_dir} has no labelled claims")
    present = sorted({k for r in rows for k in r["scores"]})
    if score is None:
        raise UserInputError(f"give the claim score to filter on with -e; present: {', '.join(present)}")
    eid = build_estimator(score).id
    if eid not in present:
        raise UserInputError(f"{run_dir} has no claim scores for {eid!r}; present: {', '.join(present)}")
    f = claim_filter_from_rows(rows, eid, epsilon=epsilon)
    return ClaimRule(score=eid, threshold=f.threshold, epsilon=f.epsilon, n=f.n, kept_share=f.kept_share,
                     answers_all_true=f.answers_all_true, run=str(run_dir), model=run_model(run_dir, items) or "unknown")


def _claims_command(run_dir: Path, estimators: list[str] | None, target_risk: float, base: Path | None,
                    out: Path | None, as_json: bool) -> None:
    """``calibrate CLAIM_RUN --target-risk ε -e <claim score> [--policy answer-policy.json]``: add a claim
    filter to a policy (the given one, else the default bands) and save it."""
    if estimators and len(estimators) > 1:
        raise UserInputError("a claim filter thresholds one claim score: give one -e")
    rule = fit_claim_rule(run_dir, epsilon=target_risk, score=estimators[0] if estimators else None)
    policy = (Policy.load(base) if base is not None else Policy()).model_copy(update={"claims": rule})
    path = out or Path(run_dir) / "claim-policy.json"
    policy.save(path)
    if as_json:
        sys.stdout.write(policy.model_dump_json(indent=2) + "\n")
        return
    sys.stdout.write(f"{rule.score}: keep claims above {rule.threshold:.4g}\n"
                     f"guarantee: {rule.summary()}; calibration answers with only true claims kept: "
                     f"{rule.answers_all_true:.0%}\npolicy: {path}\n")


def _value(row: dict[str, Any], eid: str) -> float:
    v = row["scores"].get(eid, {}).get("value")
    return float("nan") if v is None else float(v)


def fit_policy(run_dir: str | Path, *, alpha: float, delta: float = 0.05, score: str | None = None,
               calibrator: Any = None, phrases: dict[str, str] | None = None) -> tuple[Policy, RiskControl]:
    """The policy for a run (module docstring) and the risk control behind its abstain threshold."""
    p, y, sid, model = run_probabilities(run_dir, score=score, calibrator=calibrator)
    rc = risk_threshold(p, y, alpha=alpha, delta=delta)
    hedge, low = fit_bands(p, y, floor=rc.threshold)
    guarantee = Guarantee(alpha=alpha, delta=delta, n=rc.n, n_answered=rc.n_answered, coverage=rc.coverage,
                          risk=rc.risk, upper=rc.upper, run=str(run_dir), model=model,
                          calibrator=_describe(calibrator) if calibrator is not None else None, bands=BANDS_HOW)
    extra = {"phrases": phrases} if phrases else {}
    policy = Policy(score=sid, hedge_below=hedge, low_below=low, abstain_below=rc.threshold, guarantee=guarantee,
                    **extra)
    return policy, rc


def policy_command(run_dir: Path, estimators: list[str] | None, calibrator_path: Path | None,
                   target_risk: float | None, delta: float, out: Path | None, as_json: bool,
                   base: Path | None = None) -> None:
    """What ``tokentrust calibrate RUN --target-risk α`` does: fit, save (``--out``, default
    ``RUN/answer-policy.json``) and print the policy. On a claim-level run, a claim filter with ε = α,
    added to the ``base`` policy (``--policy``) or the default bands (default ``RUN/claim-policy.json``)."""
    if target_risk is None:
        raise UserInputError("--calibrator fits an answer policy on its probability; add --target-risk α (e.g. 0.1)")
    if _is_claim_run(run_dir):
        if calibrator_path is not None:
            raise UserInputError(f"{run_dir} is a claim-level run: its claim filter reads a claim score (-e), "
                                 "not a calibrator")
        return _claims_command(run_dir, estimators, target_risk, base, out, as_json)
    if base is not None:
        raise UserInputError("--policy adds a claim filter to an answer policy: give a claim-level run "
                             "(tokentrust bench --level claim)")
    calibrator = None
    if calibrator_path is not None:
        from ..calibration import load_calibrator

        calibrator = load_calibrator(calibrator_path)
    if estimators and len(estimators) > 1:
        raise UserInputError("a policy thresholds one probability: give one -e, or a learned --calibrator")
    if estimators and calibrator is not None:
        raise UserInputError("give -e <score> or --calibrator <file>, not both (the calibrator names its scores)")
    policy, rc = fit_policy(run_dir, alpha=target_risk, delta=delta, score=estimators[0] if estimators else None,
                            calibrator=calibrator)
    path = out or Path(run_dir) / "answer-policy.json"
    policy.save(path)
    if as_json:
        sys.stdout.write(policy.model_dump_json(indent=2) + "\n")
        return
    g = policy.guarantee
    assert g is not None
    low = policy.low_below if policy.low_below is not None else policy.abstain_below
    sys.stdout.write(
        f"{policy.score}{f' ({g.calibrator})' if g.calibrator else ''}: abstain below {policy.abstain_below:.3f}, "
        f"low hedge below {low:.3f}, medium hedge below {policy.hedge_below:.3f}\n"
        f"guarantee: {g.summary()}; upper bound {g.upper:.3f}; {len(rc.tested)} thresholds tested\n"
        f"policy: {path}\n")
