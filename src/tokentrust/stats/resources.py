"""One instance per process of each heavy resource (sentence encoder, NLI model), keyed by its spec string.

Stats hold the spec (a short, hashable string), never the model, so they stay cheap cache keys.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_CACHE: dict[str, Any] = {}
_LOCK = threading.Lock()


def load(spec: str, factory: Callable[[], T]) -> T:
    """The resource named ``spec``, built by ``factory()`` on first use and reused afterwards."""
    with _LOCK:
        if spec not in _CACHE:
            _CACHE[spec] = factory()
        return _CACHE[spec]


def loaded() -> list[str]:
    """Specs of the resources loaded so far in this process."""
    return sorted(_CACHE)


def clear() -> None:
    """Forget every loaded resource (frees memory; the next use loads again)."""
    with _LOCK:
        _CACHE.clear()
