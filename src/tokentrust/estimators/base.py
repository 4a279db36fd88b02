"""Estimator: a Stat that returns Scores, with a level, required capabilities and a canonical id."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np

from ..capability import TRACE_CAPABILITIES, Capability
from ..errors import UserInputError
from ..registry import estimators, instantiate, parse_spec, snake_case
from ..scores import Level, Scores
from ..stat import Context, Stat


@dataclass(frozen=True, kw_only=True)
class Estimator(Stat[Scores]):
    """Base class. Subclasses set ``level`` and ``needs`` and implement ``compute(ctx) -> Scores``.

    ``needs`` lists the capabilities every instance needs; :attr:`requires` is what *this* instance
    needs, which a subclass extends when a parameter asks for more (brainstormed samples, a judge model).
    ``token_form`` names the token-level estimator a sequence score aggregates, when there is one.
    The id is derived per class (``registry_id``, the snake_case class name); a subclass that would
    inherit its parent's id is refused, so two different computations never share a name.
    """

    level: ClassVar[Level]
    needs: ClassVar[frozenset[Capability]] = frozenset({Capability.LOGPROBS})
    token_form: ClassVar[type[Estimator] | None] = None
    is_probability: ClassVar[bool] = False
    registry_id: ClassVar[str] = "estimator"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        derived = snake_case(cls.__name__).lstrip("_")
        ancestors = {b.registry_id for b in cls.__mro__[1:] if issubclass(b, Estimator) and b is not Estimator}
        if derived in ancestors or derived in estimators:
            raise TypeError(f"{cls.__qualname__} would share the id {derived!r} of another estimator "
                            "(an ancestor or a registered one); give it its own name")
        cls.registry_id = derived

    def __post_init__(self) -> None:
        """Validate parameters (subclasses extend it and call ``super().__post_init__()``)."""

    @property
    def requires(self) -> frozenset[Capability]:
        """Capabilities this instance needs from the backend (or the trace)."""
        return self.needs

    @property
    def uses_models(self) -> bool:
        """True when computing it loads a model besides the generator (a sentence encoder, an NLI model)."""
        return False

    @property
    def needs_only_trace(self) -> bool:
        """Computable from a saved trace alone: no model pass, no sampling, no other model (cheap)."""
        return self.requires <= TRACE_CAPABILITIES and not self.uses_models

    @property
    def id(self) -> str:
        """Canonical id: the registry id plus every non-default parameter, e.g. ``logprob_quantile(alpha=0.1)``."""
        changed = [
            f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if getattr(self, f.name) != f.default
        ]
        return f"{self.registry_id}({', '.join(changed)})" if changed else self.registry_id

    def _scores(self, ctx: Context, values: Any, raw: Any, spans: list[list[int]] | None = None,
                extras: dict[str, list[Any]] | None = None) -> Scores:
        values = np.atleast_1d(np.asarray(values, dtype=float))
        raw = np.atleast_1d(np.asarray(raw, dtype=float))
        n = len(ctx.trace)
        if spans is None:
            spans = [list(range(n))] if self.level is Level.SEQUENCE else [[i] for i in range(n)]
        return Scores(
            estimator=self.id,
            level=self.level,
            spans=spans,
            values=values.tolist(),
            raw=raw.tolist(),
            is_probability=self.is_probability,
            extras=extras or {},
        )


@dataclass(frozen=True)
class TokenArrays:
    """The trace's columns as read-only float arrays (NaN where the trace lacks a column)."""

    logprobs: np.ndarray
    entropy: np.ndarray
    max_prob: np.ndarray
    margin: np.ndarray
    kurtosis: np.ndarray
    special: np.ndarray


@dataclass(frozen=True, kw_only=True)
class TokenColumns(Stat[TokenArrays]):
    """Numpy view of a trace's per-token columns, shared by every white-box estimator."""

    def compute(self, ctx: Context) -> TokenArrays:
        t = ctx.trace
        n = len(t)

        def col(values: list[float] | None) -> np.ndarray:
            return np.asarray(values, dtype=float) if values is not None else np.full(n, np.nan)

        return TokenArrays(
            logprobs=col(t.logprobs),
            entropy=col(t.entropy),
            max_prob=col(t.max_prob),
            margin=col(t.margin),
            kurtosis=col(t.kurtosis),
            special=np.asarray(t.special, dtype=bool),
        )


def text_tuple(name: str, value: Any) -> tuple[str, ...]:
    """A tuple-of-strings parameter (a list from a CLI spec becomes a tuple, so the estimator stays hashable);
    empty lists and blank entries are refused, naming the parameter."""
    if isinstance(value, str) or not isinstance(value, list | tuple) or not value:
        raise UserInputError(f"{name} must be a non-empty list of texts, got {value!r}")
    bad = [v for v in value if not isinstance(v, str) or not v.strip()]
    if bad:
        raise UserInputError(f"{name} must hold non-empty texts, got {bad[0]!r}")
    return tuple(value)


def build_estimator(spec: str | Estimator) -> Estimator:
    """An estimator from a spec string ``name:key=value,...`` (or pass an instance through)."""
    if isinstance(spec, Estimator):
        return spec
    name, kwargs = parse_spec(spec)
    cls = estimators.get(name)
    return instantiate(cls, kwargs, what=f"estimator {cls.registry_id!r}")
