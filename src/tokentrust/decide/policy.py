"""Answer, hedge or abstain: turn one sequence-level confidence into what to tell the user (METHODS.md §7).

A first-person hedge ("I'm not sure, but …") lowered over-reliance on wrong answers in a user study,
while an impersonal one did little (§7.1); hedging every answer carries no information, so the hedge is
tied to a score and thresholds (§7.2 suggests buckets such as < 0.5 low, 0.5–0.8 medium, > 0.8 high on a
calibrated probability). The numeric score always travels with the phrase (§7.1 iii).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ..config import Float, Record
from ..errors import UserInputError

Action = Literal["answer", "hedge", "abstain"]

HEDGE_PREFIX = "I'm not sure, but "
ABSTAIN_TEXT = "I don't know; I am not confident enough in any answer to give one."

# First words that start a sentence but are not names, so the hedge can continue the sentence in lower case.
_COMMON_STARTS = frozenset(
    ["the", "a", "an", "it", "its", "this", "that", "these", "those", "there", "they", "he", "she", "we", "you", "my", "our", "your", "his", "her", "their", "in", "on", "at", "yes", "no", "to", "for", "of", "from", "as", "so", "if", "when", "while", "some", "many", "most", "all", "one"]
)


def hedged(answer: str) -> str:
    """``"I'm not sure, but " + answer``, lower-casing the first word only when it is a common word."""
    stripped = answer.lstrip()
    if not stripped:
        return HEDGE_PREFIX.rstrip(", ") + "."
    first = stripped.split(maxsplit=1)[0].rstrip(",.;:!?")
    if first.lower() in _COMMON_STARTS and first[:1].isupper() and first[1:] == first[1:].lower():
        stripped = stripped[0].lower() + stripped[1:]
    return HEDGE_PREFIX + stripped


class Decision(Record):
    """What to do with one answer, the score it was based on, and the text to show (saved with the answer
    in :class:`~tokentrust.Annotated`; an undefined score is written as ``null``)."""

    action: Action
    score: str
    value: Float
    hedge_below: float
    abstain_below: float
    text: str


@dataclass(frozen=True)
class Policy:
    """Thresholds on one probability-valued sequence score (an estimator id).

    ``value ≥ hedge_below`` → answer; ``abstain_below ≤ value < hedge_below`` → hedge; below
    ``abstain_below`` (or an undefined score) → abstain. ``0 ≤ abstain_below ≤ hedge_below ≤ 1``.
    """

    score: str = "geometric_mean_token_probability"
    hedge_below: float = 0.8
    abstain_below: float = 0.3

    def __post_init__(self) -> None:
        for name in ("hedge_below", "abstain_below"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0.0 <= v <= 1.0):
                raise UserInputError(f"{name} must be a probability in [0, 1], got {v!r}")
        if self.abstain_below > self.hedge_below:
            raise UserInputError(
                f"abstain_below ({self.abstain_below}) must not exceed hedge_below ({self.hedge_below})"
            )

    def decide(self, value: float, answer: str) -> Decision:
        """The action for an answer whose ``self.score`` is ``value``, with the phrasing to show."""
        if math.isnan(value) or value < self.abstain_below:
            action: Action = "abstain"
            text = ABSTAIN_TEXT
        elif value < self.hedge_below:
            action, text = "hedge", hedged(answer)
        else:
            action, text = "answer", answer
        return Decision(action=action, score=self.score, value=float(value), hedge_below=self.hedge_below,
                        abstain_below=self.abstain_below, text=text)

