"""Turn scores into what to tell the user: answer, hedge or abstain (METHODS.md §7)."""

from .policy import ABSTAIN_TEXT, HEDGE_PREFIX, Decision, Policy, hedged

__all__ = ["ABSTAIN_TEXT", "HEDGE_PREFIX", "Decision", "Policy", "hedged"]
