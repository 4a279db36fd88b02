"""What a registered metric is, declared once by ``@metric(...)`` and read by every table of results.

:class:`MetricInfo` (``fn.info``) says what a metric is computed against (the binary ``correct`` label
or the continuous ``quality``), whether it needs probabilities, which way is better, its display label,
and the :class:`Column` s a benchmark reports for it (``selective_accuracy`` is one column per coverage).
A benchmark's ``metrics.json``, report page and terminal table are built from these declarations, so a
newly registered metric appears in all three without editing them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

__all__ = ["TARGETS", "Column", "MetricInfo", "Target"]

Target = Literal["correct", "quality"]
#: What a metric may be computed against, in the order tables group them.
TARGETS: tuple[Target, ...] = ("correct", "quality")


@dataclass(frozen=True, kw_only=True)
class Column:
    """One number a benchmark reports for a metric: the metric called with ``params``, saved as ``key``.

    ``key`` names the number in ``metrics.json`` (``"selective_accuracy@80"``); ``label`` heads its
    column in the report and the terminal table (``"acc@80%"``).
    """

    key: str
    label: str
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        for name in ("key", "label"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"a metric column needs a non-empty {name}, got {value!r}")
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))  # read-only copy


@dataclass(frozen=True, kw_only=True)
class MetricInfo:
    """A metric's metadata: what it is computed against, its orientation and how results show it.

    ``columns`` is empty for a metric that benchmarks do not report; ``terminal`` says whether its
    columns also appear in the short terminal table (the report page shows every column); ``note`` is a
    setting worth printing beside the number (``"15 equal-width bins"``).
    """

    id: str
    label: str
    target: Target
    higher_is_better: bool
    needs_probability: bool
    columns: tuple[Column, ...] = ()
    terminal: bool = True
    note: str = ""

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(
                f"metric {self.id!r}: target={self.target!r} is not valid; use one of {', '.join(TARGETS)}"
            )
        if not self.label.strip():
            raise ValueError(f"metric {self.id!r} needs a non-empty label")
        keys = [c.key for c in self.columns]
        if len(set(keys)) != len(keys):
            raise ValueError(f"metric {self.id!r} declares a column key twice: {keys}")

    def best(self, values: Iterable[float]) -> float:
        """The best of ``values`` by this metric's orientation (max, or min when lower is better)."""
        return max(values) if self.higher_is_better else min(values)
