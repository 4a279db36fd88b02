"""Turn scores into what to tell the user: answer, hedge or abstain (METHODS.md §7), with a guarantee (§9.2).

:func:`decide` makes the decision; :class:`Policy` holds the bands, phrases and guarantee (JSON);
:mod:`.risk` chooses thresholds with a guarantee; :mod:`.fit` fits a policy on a run; :mod:`.rationale`
says what sampled answers disagreed about.
"""

from .decision import check_pairing, decide, required_scores
from .policy import ABSTAIN_TEXT, HEDGE_PREFIX, ClaimRule, Decision, Guarantee, Policy, hedged
from .rationale import disagreement
from .risk import ClaimFilter, RiskControl, claim_filter, claim_filter_from_rows, risk_threshold

__all__ = [
    "ABSTAIN_TEXT",
    "HEDGE_PREFIX",
    "ClaimFilter",
    "ClaimRule",
    "Decision",
    "Guarantee",
    "Policy",
    "RiskControl",
    "check_pairing",
    "claim_filter",
    "claim_filter_from_rows",
    "decide",
    "disagreement",
    "hedged",
    "required_scores",
    "risk_threshold",
]
