"""P(True) (Kadavath et al., METHODS.md §3.4): the model judges its own answer; confidence = P("True").

The question and the trace's answer are put in LM-Polygraph's prompt; the two options ``True`` and ``False`` are
teacher-forced as the reply, and their first-token probabilities are normalised over the two (so the score does
not depend on how much mass other tokens take). ``n_brainstorm > 0`` lists that many sampled answers first
("Here are some ideas that were brainstormed"), which needs sampling; ``temperature`` is theirs, so it is
refused without them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..capability import Capability
from ..errors import UserInputError
from ..registry import estimators
from ..scores import Level, Scores
from ..stat import Context
from ..stats.sampling import Samples, question_text, require_backend
from .base import Estimator

PROMPT = (
    "Question: {question}\n{brainstorm}Possible answer: {answer}\n"
    "Is the possible answer:\n (A) True\n (B) False\nThe possible answer is:"
)


@estimators.register
@dataclass(frozen=True, kw_only=True)
class PTrue(Estimator):
    """``P(True)`` that the trace's answer is correct, as judged by the model itself (normalised over True/False)."""

    level = Level.SEQUENCE
    needs = frozenset({Capability.FORCED_SCORING})
    is_probability = True
    n_brainstorm: int = 0
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.n_brainstorm < 0:
            raise UserInputError(f"n_brainstorm must be ≥ 0, got {self.n_brainstorm}")
        if self.n_brainstorm:
            self.brainstorm  # noqa: B018  (validates temperature)
        elif self.temperature != 1.0:
            raise UserInputError(f"temperature={self.temperature!r} applies only when n_brainstorm > 0 "
                                 "(it is the brainstormed answers' sampling temperature)")

    @property
    def brainstorm(self) -> Samples:
        """The brainstormed answers listed before the trace's own."""
        return Samples(n=self.n_brainstorm, temperature=self.temperature)

    @property
    def requires(self) -> frozenset[Capability]:
        """Forced scoring, plus sampling when answers are brainstormed first."""
        return self.needs | ({Capability.SAMPLING} if self.n_brainstorm else set())

    def prompt(self, ctx: Context) -> str:
        brainstorm = ""
        if self.n_brainstorm:
            ideas = [t.text.strip() for t in ctx.get(self.brainstorm)]
            brainstorm = "Here are some ideas that were brainstormed:\n" + "\n".join(ideas) + "\n"
        return PROMPT.format(question=question_text(ctx.trace), brainstorm=brainstorm, answer=ctx.trace.text.strip())

    def compute(self, ctx: Context) -> Scores:
        backend: Any = require_backend(ctx, "p_true")
        prompt = self.prompt(ctx)
        chat = ctx.trace.config.chat
        lp_true = backend.score(prompt, "True", chat=chat, end_of_turn=False).logprobs[0]
        lp_false = backend.score(prompt, "False", chat=chat, end_of_turn=False).logprobs[0]
        p = float(1.0 / (1.0 + np.exp(lp_false - lp_true)))
        return self._scores(ctx, p, -np.log(max(p, 1e-300)))
