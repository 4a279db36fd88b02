"""The attribution record: how much each prompt span drove each answer span, saved like a trace.

An :class:`Attribution` is a ``targets × sources`` matrix of scores with the method's identity. Targets are
answer token spans (one per answer token, or a chosen span); sources are prompt spans at one granularity:
``token`` (every prompt token the model read, chat-template and special tokens included), ``word``
(subword pieces merged) or ``component`` (named parts: system prompt, template formatting, user fields).
Scores are oriented *higher = pushed the target's log-probability up*. Aggregating to a coarser granularity
sums the scores of the sources it merges (attributions are additive for every method here: occlusion and
Shapley of a merged source are approximated by the sum of its parts' scores, which the record says in
``extras["aggregated_from"]``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from ..config import Float, Record
from ..errors import UserInputError

Granularity = Literal["token", "word", "component"]
GRANULARITIES: tuple[str, ...] = ("token", "word", "component")


class Span(Record):
    """A source or target: its text, the token indices it covers (prompt tokens for sources, answer tokens
    for targets) and, for a component, its name (``system``, ``template``, ``user``, a template field)."""

    text: str
    tokens: list[int]
    name: str = ""
    special: bool = False


class Attribution(Record):
    """Scores of ``sources`` (prompt spans) for ``targets`` (answer spans) by one method.

    ``scores[i][j]`` is source ``j``'s contribution to target ``i``'s log-probability;
    ``target_logprobs[i]`` is that log-probability as the trace recorded it (the sum over the target's
    tokens), so every method explains the number the user saw. ``extras`` holds per-method diagnostics
    (integrated gradients' completeness gap, ReAGent's convergence flags, Shapley's standard errors …).
    """

    method: str
    model_id: str
    prompt: Any
    answer: str
    granularity: Granularity = "token"
    sources: list[Span]
    targets: list[Span]
    scores: list[list[Float]]
    target_logprobs: list[Float]
    extras: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> Attribution:
        if len(self.scores) != len(self.targets) or len(self.target_logprobs) != len(self.targets):
            raise ValueError(f"{len(self.targets)} targets need as many score rows ({len(self.scores)}) "
                             f"and target log-probs ({len(self.target_logprobs)})")
        bad = [i for i, row in enumerate(self.scores) if len(row) != len(self.sources)]
        if bad:
            raise ValueError(f"score row {bad[0]} has {len(self.scores[bad[0]])} entries for {len(self.sources)} sources")
        return self

    # ---- reading ---------------------------------------------------------------------------------------
    def row(self, target: int | str) -> list[float]:
        """The scores for one target: its index, or the text of a target span."""
        return list(self.scores[self._target_index(target)])

    def _target_index(self, target: int | str) -> int:
        if isinstance(target, int):
            if not 0 <= target < len(self.targets):
                raise UserInputError(f"target {target} out of range: there are {len(self.targets)} targets")
            return target
        for i, t in enumerate(self.targets):
            if t.text.strip() == str(target).strip():
                return i
        valid = ", ".join(repr(t.text.strip()) for t in self.targets[:10])
        raise UserInputError(f"no target {target!r}; targets: {valid}")

    def top_sources(self, target: int | str = -1, k: int = 5) -> list[tuple[Span, float]]:
        """The ``k`` sources with the largest scores for ``target`` (default: the last target), largest first."""
        i = len(self.targets) - 1 if target == -1 else self._target_index(target)
        pairs = [(s, v) for s, v in zip(self.sources, self.scores[i], strict=True) if not math.isnan(v)]
        return sorted(pairs, key=lambda p: -p[1])[:k]

    # ---- aggregation -------------------------------------------------------------------------------------
    def aggregate(self, groups: Sequence[Span], granularity: Granularity) -> Attribution:
        """The same attribution over coarser sources: each group (a :class:`Span` listing the prompt tokens it
        merges) scores the sum of its tokens' scores. Needs a token-level attribution; every token must fall
        in exactly one group."""
        if self.granularity != "token":
            raise UserInputError(f"aggregate needs a token-level attribution, this one is {self.granularity}-level")
        index = {s.tokens[0]: j for j, s in enumerate(self.sources)}
        seen = sorted(t for g in groups for t in g.tokens)
        if seen != sorted(index):
            raise UserInputError("the groups must cover every source token exactly once")
        scores = [[math.fsum(row[index[t]] for t in g.tokens) for g in groups] for row in self.scores]
        extras = {**self.extras, "aggregated_from": "token"}
        return self.model_copy(update={"sources": list(groups), "scores": scores, "granularity": granularity,
                                       "extras": extras})

    def merge(self, other: Attribution) -> Attribution:
        """Targets of both attributions in one record (same method, model, prompt and sources)."""
        for key in ("method", "model_id", "prompt", "granularity", "sources"):
            if getattr(self, key) != getattr(other, key):
                raise UserInputError(f"cannot merge attributions with different {key}")
        return self.model_copy(update={"targets": [*self.targets, *other.targets],
                                       "scores": [*self.scores, *other.scores],
                                       "target_logprobs": [*self.target_logprobs, *other.target_logprobs]})

    # ---- display ---------------------------------------------------------------------------------------------
    def _repr_html_(self) -> str:
        from ..render.attribution import render_attribution_html

        return render_attribution_html(self)

    def __rich__(self) -> object:
        from ..render.attribution import render_attribution_rich

        return render_attribution_rich(self)

    # ---- files ---------------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.model_dump_json(indent=1), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Attribution:
        try:
            return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise UserInputError(f"cannot read attribution {path}: {exc.strerror or exc}") from None
