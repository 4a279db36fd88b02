"""The benchmark's metric columns, read from the metric registry.

Every registered metric whose :class:`~tokentrust.metrics.info.MetricInfo` declares columns is
reported: ``metrics.json`` stores each column under its key, the report page shows every column and
the terminal table those of metrics marked ``terminal``. Nothing here names a metric, so registering
a new one (``@metric(...)``) adds it to all three.

Columns are ordered by group (against ``correct``, against ``quality``, then the probability-only
metrics), then in the order the metrics were registered (ROC-AUC first), then in the order a metric
declares its columns.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from .. import registry as _registry
from ..errors import UndefinedMetricWarning
from ..metrics.info import TARGETS, Column, MetricInfo, Target
from ..registry import Registry

__all__ = ["MetricColumn", "MetricGroup", "best_values", "metric_columns", "metric_groups", "metric_notes"]

#: Keys of ``metrics.json``'s per-score rows that are counts, not metrics.
COUNT_KEYS = ("n", "n_missing")

ORIENTATION_NOTE = "every score is oriented higher = more trustworthy"

_AGAINST = MappingProxyType({
    "correct": "against the binary `correct` label",
    "quality": "against the continuous `quality`",
})


@dataclass(frozen=True, kw_only=True)
class MetricColumn:
    """One column of the benchmark table: a declared :class:`Column` of a registered metric."""

    column: Column
    info: MetricInfo
    fn: Callable[..., float]

    @property
    def key(self) -> str:
        return self.column.key

    @property
    def label(self) -> str:
        return self.column.label

    def applies(self, *, is_probability: bool) -> bool:
        """Whether the column has a value for a score (probability-only metrics skip other scores)."""
        return is_probability or not self.info.needs_probability

    def compute(self, correct: np.ndarray, quality: np.ndarray, score: np.ndarray) -> float | None:
        """The metric of ``score`` against its target; ``None`` where it is undefined (NaN)."""
        target = correct if self.info.target == "correct" else quality
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            value = self.fn(target, score, **self.column.params)
        return None if value is None or math.isnan(value) else float(value)


def metric_columns(registry: Registry[Any] | None = None) -> tuple[MetricColumn, ...]:
    """Every column the benchmark reports, from ``registry`` (default :data:`tokentrust.registry.metrics`).

    Raises ``ValueError`` when two metrics declare the same column key, or one uses a count key.
    """
    registry = registry if registry is not None else _registry.metrics
    infos = sorted(  # stable: registration order within a group
        ((fn.info, fn) for _, fn in registry.in_registration_order() if getattr(fn, "info", None) is not None),
        key=lambda pair: (pair[0].needs_probability, TARGETS.index(pair[0].target)),
    )
    columns: list[MetricColumn] = []
    owner: dict[str, str] = {key: "the item counts" for key in COUNT_KEYS}
    for info, fn in infos:
        for column in info.columns:
            if column.key in owner:
                raise ValueError(
                    f"metric {info.id!r} declares the column {column.key!r}, "
                    f"already taken by {owner[column.key]}; give the column another key"
                )
            owner[column.key] = f"metric {info.id!r}"
            columns.append(MetricColumn(column=column, info=info, fn=fn))
    return tuple(columns)


@dataclass(frozen=True, kw_only=True)
class MetricGroup:
    """Metrics read the same way: the same target, probability requirement and orientation."""

    target: Target
    needs_probability: bool
    higher_is_better: bool
    metrics: tuple[MetricInfo, ...]

    def describe(self, *, labels: bool = False) -> str:
        """One line on how to read these metrics; notes name metrics by id, or by label if ``labels``."""
        text = _AGAINST[self.target]
        if self.needs_probability:
            text += ", only for scores that are probabilities"
        text += "; higher is better" if self.higher_is_better else "; lower is better"
        notes = [f"{m.label if labels else m.id}: {m.note}" for m in self.metrics if m.note]
        return f"{text} ({'; '.join(notes)})" if notes else text

    def names(self, *, labels: bool = False) -> str:
        return ", ".join(m.label if labels else m.id for m in self.metrics)


def metric_groups(columns: Iterable[MetricColumn]) -> list[MetricGroup]:
    """The metrics behind ``columns``, grouped by how they are read, in column order."""
    groups: dict[tuple[str, bool, bool], list[MetricInfo]] = {}
    for col in columns:
        info = col.info
        members = groups.setdefault((info.target, info.needs_probability, info.higher_is_better), [])
        if info not in members:
            members.append(info)
    return [
        MetricGroup(target=t, needs_probability=p, higher_is_better=h, metrics=tuple(m))  # type: ignore[arg-type]
        for (t, p, h), m in groups.items()
    ]


def metric_notes(columns: Iterable[MetricColumn]) -> dict[str, str]:
    """``metrics.json``'s ``metric_notes``: the orientation, then how to read each group of metrics."""
    notes = {"orientation": ORIENTATION_NOTE}
    notes.update({group.names(): group.describe() for group in metric_groups(columns)})
    return notes


def best_values(rows: Iterable[Mapping[str, Any]], columns: Iterable[MetricColumn]) -> dict[str, float]:
    """Each column's best value over ``rows`` by its metric's orientation; columns with no value are left out."""
    rows = list(rows)
    best: dict[str, float] = {}
    for col in columns:
        values = [r[col.key] for r in rows if r.get(col.key) is not None and not math.isnan(r[col.key])]
        if values:
            best[col.key] = col.info.best(values)
    return best
