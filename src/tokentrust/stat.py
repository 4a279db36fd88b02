"""Statistics computed once per item and shared between estimators.

A :class:`Stat` is a frozen keyword-only dataclass whose instance *is* its cache key:
two estimators asking for ``Samples(n=10)`` share one sampling call, another ``n`` is another key.
:class:`Context` is the per-item memo that pulls stats lazily and detects cycles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np

from .errors import StatCycleError

if TYPE_CHECKING:
    from .backends.base import Backend
    from .trace import Trace

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class Stat(Generic[T]):
    """A quantity derived from a trace (and possibly the backend). Subclasses implement ``compute``."""

    def compute(self, ctx: Context) -> T:
        raise NotImplementedError(f"{type(self).__name__}.compute")


def _freeze(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        value.flags.writeable = False
    elif isinstance(value, tuple):
        for v in value:
            _freeze(v)
    elif hasattr(value, "__dataclass_fields__"):
        for name in value.__dataclass_fields__:
            _freeze(getattr(value, name))
    return value


class Context:
    """Per-item memo over a trace, an optional backend, optional references and a seed."""

    def __init__(
        self,
        trace: Trace,
        backend: Backend | None = None,
        *,
        references: list[str] | None = None,
        seed: int = 0,
    ) -> None:
        self.trace = trace
        self.backend = backend
        self.references = references
        self.seed = seed
        self._memo: dict[Stat[Any], Any] = {}
        self._active: list[Stat[Any]] = []

    def get(self, stat: Stat[T]) -> T:
        """Compute ``stat`` once for this item; later calls return the stored, read-only value."""
        if stat in self._memo:
            return self._memo[stat]
        if stat in self._active:
            chain = " -> ".join(repr(s) for s in [*self._active, stat])
            raise StatCycleError(f"statistic depends on itself: {chain}")
        self._active.append(stat)
        try:
            value = stat.compute(self)
        finally:
            self._active.pop()
        self._memo[stat] = _freeze(value)
        return value

    def __contains__(self, stat: object) -> bool:
        return stat in self._memo
