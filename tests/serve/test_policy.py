"""Answer / hedge / abstain decisions and the first-person hedge (METHODS.md §7.1)."""

from __future__ import annotations

import math

import pytest

from tokentrust.decide.policy import ABSTAIN_TEXT, Policy, hedged
from tokentrust.errors import UserInputError


@pytest.mark.parametrize(
    ("value", "action"),
    [(0.95, "answer"), (0.8, "answer"), (0.7999, "hedge"), (0.3, "hedge"), (0.2999, "abstain"), (0.0, "abstain"),
     (math.nan, "abstain")],
)
def test_thresholds_pick_the_action(value, action):
    d = Policy(hedge_below=0.8, abstain_below=0.3).decide(value, "Canberra.")
    assert d.action == action
    assert d.text == {"answer": "Canberra.", "hedge": "I'm not sure, but Canberra.", "abstain": ABSTAIN_TEXT}[action]
    assert d.to_payload()["value"] == (None if math.isnan(value) else value)


def test_hedge_continues_the_sentence_without_lowercasing_names():
    assert hedged("The capital is Canberra.") == "I'm not sure, but the capital is Canberra."
    assert hedged("Canberra is the capital.") == "I'm not sure, but Canberra is the capital."
    assert hedged("NASA did it.") == "I'm not sure, but NASA did it."
    assert hedged("  It is 4.") == "I'm not sure, but it is 4."


def test_thresholds_are_checked():
    with pytest.raises(UserInputError, match="hedge_below"):
        Policy(hedge_below=1.5)
    with pytest.raises(UserInputError, match="must not exceed"):
        Policy(hedge_below=0.4, abstain_below=0.6)
