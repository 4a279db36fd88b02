"""Answer, hedge or abstain: turn one sequence-level probability into what to tell the user (METHODS.md §7).

A first-person hedge ("I'm not sure, but …") lowered over-reliance on wrong answers in a user study,
while an impersonal one did little (§7.1); hedging every answer carries no information, so the hedge is
tied to a score and thresholds (§7.2 suggests buckets such as < 0.5 low, 0.5–0.8 medium, > 0.8 high on a
calibrated probability). The number always travels with the phrase (§7.1 iii): :class:`Decision` holds both.

A :class:`Policy` has four bands on one probability ``p`` (the score it thresholds, by id):

==========  ===================================  ==========================================
band        when                                 action / default phrase
==========  ===================================  ==========================================
answer      ``p ≥ hedge_below``                  answer: the answer as it is
medium      ``low_below ≤ p < hedge_below``      hedge: "I'm not sure, but …"
low         ``abstain_below ≤ p < low_below``    hedge: "I'm really not sure, but …"
abstain     ``p < abstain_below`` or undefined   abstain: :data:`ABSTAIN_TEXT`
==========  ===================================  ==========================================

``low_below=None`` means no low band (``= abstain_below``). Phrases are templates with ``{answer}`` and
``{probability}`` (e.g. ``"I'm not sure ({probability:.0%}), but {answer}"``); text before ``{answer}``
continues the sentence, so the answer's first word is lower-cased when it is a common word.

``Policy()`` keeps the fixed, uncalibrated thresholds the proxy has always used (0.8 / 0.3 on the geometric
mean token probability). A policy fitted by :func:`tokentrust.decide.fit.fit_policy` (``tokentrust
calibrate RUN --target-risk α``) chooses all of its thresholds on a calibration run and records its
:class:`Guarantee`; it is saved and loaded as JSON (:meth:`Policy.save`, :meth:`Policy.load`).
"""

from __future__ import annotations

import json
import math
import string
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from ..config import Float, Record, _validation_message
from ..errors import UserInputError
from ..trace import Trace

Action = Literal["answer", "hedge", "abstain", "defer"]
Band = Literal["answer", "medium", "low", "abstain"]

HEDGE_PREFIX = "I'm not sure, but "
ABSTAIN_TEXT = "I don't know; I am not confident enough in any answer to give one."
DEFAULT_PHRASES: dict[str, str] = {
    "answer": "{answer}",
    "medium": HEDGE_PREFIX + "{answer}",
    "low": "I'm really not sure, but {answer}",
    "abstain": ABSTAIN_TEXT,
}
_BAND_ACTION: dict[str, Action] = {"answer": "answer", "medium": "hedge", "low": "hedge", "abstain": "abstain"}

# First words that start a sentence but are not names, so the hedge can continue the sentence in lower case.
_COMMON_STARTS = frozenset(
    ["the", "a", "an", "it", "its", "this", "that", "these", "those", "there", "they", "he", "she", "we", "you", "my", "our", "your", "his", "her", "their", "in", "on", "at", "yes", "no", "to", "for", "of", "from", "as", "so", "if", "when", "while", "some", "many", "most", "all", "one"]
)


def _continued(answer: str) -> str:
    """``answer`` stripped, its first word lower-cased when it is a common sentence start (not a name)."""
    stripped = answer.lstrip()
    first = stripped.split(maxsplit=1)[0].rstrip(",.;:!?") if stripped else ""
    if first.lower() in _COMMON_STARTS and first[:1].isupper() and first[1:] == first[1:].lower():
        stripped = stripped[0].lower() + stripped[1:]
    return stripped


def hedged(answer: str) -> str:
    """``"I'm not sure, but " + answer``, lower-casing the first word only when it is a common word."""
    if not answer.strip():
        return HEDGE_PREFIX.rstrip(", ") + "."
    return HEDGE_PREFIX + _continued(answer)


def fill(template: str, answer: str, probability: float) -> str:
    """A phrase template filled in: ``{answer}`` (continuing the sentence when text precedes it) and
    ``{probability}`` (a float in [0, 1]; NaN when undefined)."""
    head, found, _ = template.partition("{answer}")
    if found and head.strip():
        if not answer.strip():
            return head.rstrip(", ") + "."
        answer = _continued(answer)
    return template.format(answer=answer, probability=probability)


def _check_template(band: str, template: str) -> None:
    fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    if fields - {"answer", "probability"}:
        raise ValueError(f"phrase for {band!r} may only use {{answer}} and {{probability}}, got {template!r}")
    try:
        template.format(answer="x", probability=0.5)
    except (ValueError, IndexError, KeyError) as exc:
        raise ValueError(f"phrase for {band!r} is not a valid template ({exc}): {template!r}") from None


class Deferral(Record):
    """A cascade's check of the small model's answer (``tokentrust serve --defer-to``): the deferral ``rule``
    (:mod:`tokentrust.decide.cascade`), its ``score`` of the answer and the ``threshold`` below which it
    defers, the ``large`` model, and whether that model answered instead (``deferred``; its answer's
    ``trace``). ``note`` says why the small answer was kept although the rule deferred (the large model
    failed)."""

    rule: str
    score: Float
    threshold: Float
    large: str
    deferred: bool
    trace: Trace | None = None
    note: str | None = None


class Decision(Record):
    """What to do with one answer: the ``action``, the ``probability`` it was based on (the value of
    ``score``), the ``phrase`` to show, the ``band`` and the thresholds (saved with the answer in
    :class:`~tokentrust.Annotated`; an undefined probability is written as ``null``).

    ``value`` and ``text`` repeat ``probability`` and ``phrase`` for clients written before those names.
    ``rationale``: one sentence on what the model's sampled answers disagreed about, when it hedges or
    abstains and a sampling score found several meanings. ``guaranteed``: the policy's guarantees, if any.
    With a claim rule: ``claims`` (each claim, its value and whether it is kept) and ``kept_answer`` (the
    answer with the removed claims cut out, which the ``phrase`` is built from; no claim kept → abstain).
    In a cascade: ``cascade`` (the :class:`Deferral` check) and, when the large model answered (action
    ``defer``, ``phrase`` = its answer), ``deferred_to`` naming it.
    """

    action: Action
    score: str
    probability: Float
    phrase: str
    band: Band | None = None
    hedge_below: float
    low_below: float | None = None
    abstain_below: float
    rationale: str | None = None
    guaranteed: str | None = None
    claims: list[KeptClaim] = Field(default_factory=list)
    kept_answer: str | None = None
    deferred_to: str | None = None
    cascade: Deferral | None = None
    value: Float = math.nan
    text: str = ""

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            for new, old in (("probability", "value"), ("phrase", "text")):
                if new not in data and old in data:
                    data[new] = data[old]
                if old not in data and new in data:
                    data[old] = data[new]
        return data


class ClaimRule(Record):
    """Conformal claim filtering fitted on a claim-level run (:func:`tokentrust.decide.risk.claim_filter`):
    keep a claim iff its ``score`` is ``> threshold``; then a new answer keeps only true claims with
    probability ≥ ``1 − epsilon``. What it achieved on the ``n`` calibration answers: ``kept_share`` of
    their claims kept, ``answers_all_true`` of them with only true claims kept."""

    score: str
    threshold: float
    epsilon: float = Field(gt=0, lt=1)
    n: int
    kept_share: Float
    answers_all_true: float
    run: str
    model: str

    def keep(self, value: float) -> bool:
        """Is a claim with this value kept? (an undefined value is removed)."""
        return not math.isnan(value) and value > self.threshold

    def summary(self) -> str:
        return (f"every kept claim true with probability ≥ {1 - self.epsilon:g} (fitted on {self.n} answers of "
                f"{self.run}: kept {self.kept_share:.0%} of claims)")


class KeptClaim(Record):
    """One claim of a decided answer: its text and span, the value of the claim rule's score, kept or not."""

    text: str
    char_span: tuple[int, int]
    value: Float
    kept: bool
    sentence: int = 0


def without(text: str, claims: list[KeptClaim]) -> str:
    """``text`` with its removed claims cut out. A sentence whose claims are all removed goes whole (up to
    the next sentence's first claim); a removed clause goes with the connective before it (``", and"``),
    or, first in its sentence, with the one after it, and the clause that now starts the sentence is
    capitalised. Whitespace left behind is tidied."""
    by_sentence: dict[int, list[KeptClaim]] = {}
    for c in sorted(claims, key=lambda c: c.char_span):
        by_sentence.setdefault(c.sentence, []).append(c)
    groups = [by_sentence[k] for k in sorted(by_sentence, key=lambda k: by_sentence[k][0].char_span[0])]
    cuts: list[tuple[int, int]] = []
    capitalise: set[int] = set()
    for n, group in enumerate(groups):
        if not any(c.kept for c in group):
            end = groups[n + 1][0].char_span[0] if n + 1 < len(groups) else len(text)
            cuts.append((group[0].char_span[0], end))
            continue
        first = next(i for i, c in enumerate(group) if c.kept)
        if first > 0:  # the clauses before the first kept one, with the connective after them
            cuts.append((group[0].char_span[0], group[first].char_span[0]))
            capitalise.add(group[first].char_span[0])
        cuts += [(group[i - 1].char_span[1], c.char_span[1]) for i, c in enumerate(group) if i > first and not c.kept]
    out, last = [], 0
    for start, end in sorted(cuts):
        if end > last:
            out.append(text[last:max(start, last)])
            last = end
    pieces = [*out, text[last:]]
    kept = "".join(pieces)
    # the first kept clause of a sentence whose first clause was cut: upper-case its first letter
    for pos in capitalise:
        shift = sum(min(end, pos) - min(start, pos) for start, end in _merged(cuts))
        at = pos - shift
        if 0 <= at < len(kept):
            kept = kept[:at] + kept[at].upper() + kept[at + 1:]
    return "\n".join(" ".join(line.split()) for line in kept.splitlines()).strip()


def _merged(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


class Guarantee(Record):
    """How a policy was fitted: with probability ≥ ``1 − delta`` the error rate among answered (hedged or
    not) questions is ≤ ``alpha`` (abstain below the threshold); what it achieved on the ``n`` calibration
    items (``coverage``: answered share, ``risk``: error rate among them, ``upper``: its Clopper–Pearson
    bound), the run folder and model it was fitted on, the calibrator (``kind(score)``) if any, and how the
    hedge bands were chosen."""

    alpha: float = Field(gt=0, lt=1)
    delta: float = Field(gt=0, lt=1)
    n: int
    n_answered: int
    coverage: float
    risk: float
    upper: float
    run: str
    model: str
    calibrator: str | None = None
    bands: str = ""

    def summary(self) -> str:
        return (f"error among answered ≤ {self.alpha:g} with probability ≥ {1 - self.delta:g} "
                f"(fitted on {self.n} items of {self.run}: answered {self.coverage:.0%}, error {self.risk:.1%})")


class Policy(Record):
    """Bands on one probability-valued sequence score (module docstring), their phrases, and the
    guarantee they were fitted under. ``0 ≤ abstain_below ≤ low_below ≤ hedge_below ≤ 1``.

    ``score``: an estimator id, or ``calibrated_confidence`` for a calibrator's output. ``claims``: a
    conformal claim filter (``tokentrust calibrate CLAIM_RUN --target-risk ε -e <claim score>``): claims it
    removes are cut from the answer before the phrase is built.
    """

    score: str = "geometric_mean_token_probability"
    hedge_below: float = 0.8
    abstain_below: float = 0.3
    low_below: float | None = None
    phrases: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_PHRASES))
    guarantee: Guarantee | None = None
    claims: ClaimRule | None = None
    version: Literal[1] = 1

    @model_validator(mode="after")
    def _check(self) -> Policy:
        for name in ("hedge_below", "abstain_below", "low_below"):
            v = getattr(self, name)
            if v is not None and not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {v!r}")
        if self.abstain_below > self.hedge_below:
            raise ValueError(f"abstain_below ({self.abstain_below}) must not exceed hedge_below ({self.hedge_below})")
        if self.low_below is not None and not self.abstain_below <= self.low_below <= self.hedge_below:
            raise ValueError(f"low_below ({self.low_below}) must lie between abstain_below ({self.abstain_below}) "
                             f"and hedge_below ({self.hedge_below})")
        unknown = set(self.phrases) - set(DEFAULT_PHRASES)
        if unknown:
            raise ValueError(f"phrases has unknown band(s) {sorted(unknown)}; bands are {list(DEFAULT_PHRASES)}")
        for band, template in self.phrases.items():
            _check_template(band, template)
        return self

    def with_changes(self, **changes: Any) -> Policy:
        """A copy with ``changes`` applied and checked; changed thresholds or score drop the guarantee."""
        if any(k in changes for k in ("score", "hedge_below", "abstain_below", "low_below")):
            changes.setdefault("guarantee", None)
        return Policy(**{**self.model_dump(), **changes})

    def band(self, probability: float) -> Band:
        low = self.abstain_below if self.low_below is None else self.low_below
        if math.isnan(probability) or probability < self.abstain_below:
            return "abstain"
        if probability < low:
            return "low"
        return "medium" if probability < self.hedge_below else "answer"

    def phrase(self, band: Band, answer: str, probability: float) -> str:
        return fill(self.phrases.get(band, DEFAULT_PHRASES[band]), answer, probability)

    def decide(self, value: float, answer: str, *, rationale: str | None = None,
               claims: list[Any] | None = None) -> Decision:
        """The decision for an answer whose ``self.score`` is ``value``, with the phrase to show.

        ``rationale`` is kept only when the answer is hedged or abstained. ``claims``: the answer's
        :class:`~tokentrust.Claim` records; with a claim rule, those it removes are cut from the answer
        (a claim without a value for the rule's score is removed).
        """
        band = self.band(float(value))
        kept_claims: list[KeptClaim] = []
        kept_answer = None
        if self.claims is not None and claims is not None:
            rule = self.claims
            for c in claims:
                v = float(c.scores.get(rule.score, math.nan))
                kept_claims.append(KeptClaim(text=c.text, char_span=c.char_span, value=v, kept=rule.keep(v),
                                             sentence=c.sentence))
            kept_answer = without(answer, kept_claims)
            answer = kept_answer
            if kept_claims and not any(k.kept for k in kept_claims):
                band = "abstain"
        action = _BAND_ACTION[band]
        guarantees = [g.summary() for g in (self.guarantee, self.claims) if g is not None]
        return Decision(
            action=action, band=band, score=self.score, probability=float(value),
            phrase=self.phrase(band, answer, float(value)), hedge_below=self.hedge_below, low_below=self.low_below,
            abstain_below=self.abstain_below, rationale=rationale if action != "answer" else None,
            guaranteed="; ".join(guarantees) or None, claims=kept_claims, kept_answer=kept_answer,
        )

    # -- JSON -----------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Write the policy as JSON (UTF-8)."""
        Path(path).write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Policy:
        """Read a policy written by :meth:`save`; a missing, corrupt or foreign file is one clear error."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise UserInputError(f"cannot read policy {path}: {exc.strerror or exc}") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise UserInputError(f"{path} is not a tokentrust policy (not JSON: {exc})") from None
        if not isinstance(data, dict) or "score" not in data or "hedge_below" not in data:
            raise UserInputError(f"{path} is not a tokentrust policy (no score and thresholds); write one with "
                                 "`tokentrust calibrate RUN --target-risk 0.1 --out policy.json`")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise UserInputError(f"{path} is not a valid tokentrust policy: {_validation_message(exc)}") from None


#: The accuracy an answer needs to be given plainly, and below which a hedge is "low" (METHODS §7.2).
ANSWER_LEVEL = 0.8
LOW_LEVEL = 0.5


def calibrated_policy(score: str) -> Policy:
    """The bands for a calibrated probability with no fitted policy: the §7.2 levels as thresholds (answer
    ≥ 0.8, medium ≥ 0.5, low below) and no abstention, which needs a guarantee (``calibrate --target-risk``)."""
    return Policy(score=score, hedge_below=ANSWER_LEVEL, low_below=LOW_LEVEL, abstain_below=0.0)

