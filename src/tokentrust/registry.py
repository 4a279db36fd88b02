"""One registry class for every pluggable thing (estimators, metrics, datasets, …).

An entry is registered once, next to its code, under an id derived from its name
(``MeanTokenEntropy`` → ``mean_token_entropy``) plus optional aliases. Lookups of unknown
names raise :class:`UnknownNameError` with close matches. Specs use the CLI grammar
``name:key=value,key=value`` (see :func:`parse_spec`).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from .errors import UnknownNameError, UserInputError

T = TypeVar("T")


def snake_case(name: str) -> str:
    """``MeanTokenEntropy`` → ``mean_token_entropy``; ``PTrue`` → ``p_true``; ``MSP`` → ``msp``."""
    s = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    s = re.sub(r"(?<=[A-Z])(?=[A-Z][a-z])", "_", s)
    return s.lower()


def _parse_value(text: str) -> Any:
    """Parse a CLI value: JSON literals (numbers, true/false, null, lists) or a bare string."""
    lowered = text.strip()
    if lowered in ("True", "False"):
        return lowered == "True"
    try:
        return json.loads(lowered)
    except json.JSONDecodeError:
        return lowered


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Split ``"name:k=v,k2=v2"`` into ``("name", {"k": v, "k2": v2})``.

    Values are parsed as JSON where possible (``3``, ``0.5``, ``true``), else kept as strings.
    """
    name, _, rest = spec.strip().partition(":")
    if not name:
        raise UserInputError(f"empty name in spec {spec!r}; expected 'name' or 'name:key=value,...'")
    kwargs: dict[str, Any] = {}
    if rest:
        for part in rest.split(","):
            key, eq, value = part.partition("=")
            if not eq or not key.strip():
                raise UserInputError(
                    f"bad parameter {part!r} in spec {spec!r}; expected key=value pairs separated by commas"
                )
            kwargs[key.strip()] = _parse_value(value)
    return name.strip(), kwargs


class Registry(Generic[T]):
    """Name → object map with derived ids, aliases, did-you-mean errors and no silent overwrites."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    def register(
        self, obj: T | None = None, *, name: str | None = None, aliases: tuple[str, ...] = ()
    ) -> Any:
        """Register ``obj`` (usable bare as ``@reg.register`` or as ``@reg.register(aliases=(...))``)."""

        def add(target: T) -> T:
            key = name or snake_case(getattr(target, "__name__", str(target)))
            for candidate in (key, *aliases):
                if candidate in self._items or candidate in self._aliases:
                    raise ValueError(f"{self.kind} {candidate!r} is already registered")
            self._items[key] = target
            for alias in aliases:
                self._aliases[alias] = key
            try:
                target.registry_id = key  # type: ignore[attr-defined]
            except (AttributeError, TypeError):
                pass
            return target

        if obj is not None:
            return add(obj)
        return add

    def canonical(self, name: str) -> str:
        """The registered id for ``name`` or one of its aliases."""
        if name in self._items:
            return name
        if name in self._aliases:
            return self._aliases[name]
        valid = sorted([*self._items, *self._aliases])
        close = difflib.get_close_matches(name, valid, n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownNameError(f"unknown {self.kind} {name!r}.{hint} Valid: {', '.join(valid)}")

    def get(self, name: str) -> T:
        return self._items[self.canonical(name)]

    def names(self) -> list[str]:
        return sorted(self._items)

    def aliases(self) -> dict[str, str]:
        return dict(self._aliases)

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(sorted(self._items.items()))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._items or name in self._aliases)

    def __len__(self) -> int:
        return len(self._items)

    def build(self, spec: str, factory: Callable[[T, dict[str, Any]], Any] | None = None) -> Any:
        """Instantiate from a spec string: ``registry.build("semantic_entropy:n_samples=20")``."""
        name, kwargs = parse_spec(spec)
        target = self.get(name)
        if factory is not None:
            return factory(target, kwargs)
        try:
            return target(**kwargs)  # type: ignore[operator]
        except TypeError as exc:
            raise UserInputError(f"bad parameters for {self.kind} {name!r}: {exc}") from exc


# The registries. Entries register themselves next to their code; importing ``tokentrust`` imports
# every built-in module so these are complete after ``import tokentrust``.
estimators: Registry[Any] = Registry("estimator")
metrics: Registry[Any] = Registry("metric")
datasets: Registry[Any] = Registry("dataset")
