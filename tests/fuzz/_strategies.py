"""Shared hypothesis strategies for the fuzz tests: arbitrary JSON, and valid documents mutated a little.

Every fuzz test runs derandomized (the same examples on every run, so a failure reproduces) with no example
database and no deadline (the machine is shared); each caps its own number of examples.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

FUZZ = settings(deadline=None, derandomize=True, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])

#: Numbers that break naive code: huge, negative, non-finite, fractional where integers are expected.
EDGE_NUMBERS = st.sampled_from([0, -1, 1, 2**31, 2**63, 2**64 + 1, -(2**63) - 1, 10**30, 1e308, -1e308, 0.5, -0.0,
                                float("nan"), float("inf"), float("-inf"), 1e-320])
SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | EDGE_NUMBERS
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12))
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path into ``value`` (``()`` is the whole document), containers and leaves alike."""
    yield path
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*path, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _paths(child, (*path, i))


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        doc = doc[key]
    return doc


@st.composite
def mutated(draw: st.DrawFn, base: Any, *, max_changes: int = 3, keys: list[str] | None = None) -> Any:
    """``base`` with one to ``max_changes`` edits: a value replaced by arbitrary JSON, deleted, or a key added."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, max_changes))):
        path = draw(st.sampled_from(list(_paths(doc))))
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if not path:
            if action == "replace":
                doc = draw(JSON)
            continue
        parent, key = _parent(doc, path), path[-1]
        if action == "replace":
            parent[key] = draw(JSON)
        elif action == "delete":
            del parent[key]
        else:
            target = parent[key]
            if isinstance(target, dict):
                target[draw(st.sampled_from(keys) if keys else st.text(max_size=8))] = draw(JSON)
            elif isinstance(target, list):
                target.append(draw(JSON) if not target or draw(st.booleans()) else copy.deepcopy(target[0]))
    return doc
