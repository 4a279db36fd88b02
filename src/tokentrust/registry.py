"""One registry class for every pluggable thing (estimators, metrics, datasets, similarities, …).

An entry is registered once, next to its code, under an id derived from its name
(``MeanTokenEntropy`` → ``mean_token_entropy``) plus optional aliases. An entry whose code is heavy to
import (a backend that needs torch) is registered *lazily* as ``"module:attribute"`` and imported on first
use. Registering a taken id or alias raises; looking up an unknown name raises :class:`UnknownNameError`
with close matches. Specs use the CLI grammar ``name:key=value,key=value`` (see :func:`parse_spec`).
"""

from __future__ import annotations

import difflib
import importlib
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
    stripped = text.strip()
    if stripped in ("True", "False"):
        return stripped == "True"
    try:
        return json.loads(stripped)
    except json.JSONDecodeError:
        return stripped


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside brackets, braces or quotes (``a=[1,2],b=x`` → two parts)."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Split ``"name:k=v,k2=v2"`` into ``("name", {"k": v, "k2": v2})``.

    Values are parsed as JSON where possible (``3``, ``0.5``, ``true``, ``[1, 2]``), else kept as strings;
    commas inside brackets or quotes do not separate parameters. A value may itself contain ``:`` and ``=``
    (``similarity=nli:/models/x``): only the first ``:`` and each parameter's first ``=`` split.
    """
    if not isinstance(spec, str):
        raise UserInputError(f"a spec must be a string like 'name' or 'name:key=value', got {spec!r}")
    name, _, rest = spec.strip().partition(":")
    name = name.strip()
    if not name:
        raise UserInputError(f"empty name in spec {spec!r}; expected 'name' or 'name:key=value,...'")
    kwargs: dict[str, Any] = {}
    if rest.strip():
        for part in _split_top_level(rest):
            key, eq, value = part.partition("=")
            key = key.strip()
            if not eq or not key:
                raise UserInputError(
                    f"bad parameter {part!r} in spec {spec!r}; expected key=value pairs separated by commas"
                )
            if key in kwargs:
                raise UserInputError(f"parameter {key!r} is given twice in spec {spec!r}")
            kwargs[key] = _parse_value(value)
    return name, kwargs


def _expected(hint: Any) -> str:
    """``float`` → ``a number``; ``Literal['a', 'b']`` → ``one of 'a', 'b'``; ``int | None`` → ``an integer or null``."""
    import types
    import typing

    words = {float: "a number", int: "an integer", bool: "true or false", str: "a text", type(None): "null"}
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(hint))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_expected(h) for h in typing.get_args(hint))
    return words.get(hint, getattr(hint, "__name__", str(hint)))


def _check_types(cls: Any, kwargs: dict[str, Any], what: str) -> None:
    """Refuse a parameter whose value does not have its field's declared type, naming the parameter, the value
    and the type (``alpha=abc`` for a float would otherwise fail inside the class with a bare ``TypeError``).
    Scalars are checked strictly (``"0.5"`` is not a number, ``true`` is not an integer); containers are left
    to the class, as a spec writes a tuple as a list."""
    import typing
    from dataclasses import MISSING, fields

    from pydantic import TypeAdapter, ValidationError

    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - an annotation that cannot be resolved is left to the class to check
        return
    defaults = {f.name: f.default for f in fields(cls)}
    for key, value in kwargs.items():
        hint = hints.get(key)
        if hint is None or hint is Any:
            continue
        if typing.get_origin(hint) in (tuple, list, set, frozenset, dict):
            continue  # lists stand for tuples in a spec; the class checks their items itself
        try:
            TypeAdapter(hint).validate_python(value, strict=True)
        except ValidationError:
            default = defaults.get(key, MISSING)
            shown = "" if default is MISSING else f" (default {default!r})"
            raise UserInputError(f"{what}: parameter {key} must be {_expected(hint)}, got {value!r}{shown}") from None
        except Exception:  # noqa: BLE001, S112 - a type pydantic cannot check is left to the class
            continue


def instantiate(cls: Any, kwargs: dict[str, Any], *, what: str, forms: str = "") -> Any:
    """``cls(**kwargs)`` for a dataclass named by a spec, refusing unknown parameters and values of the wrong type,
    and turning bad values into one :class:`UserInputError` naming ``what`` (``"estimator 'msp'"``), the
    parameter, the value and what is valid (the valid parameters, or ``forms``)."""
    from dataclasses import fields

    unknown = sorted(set(kwargs) - {f.name for f in fields(cls)})
    if unknown:
        valid = forms or ", ".join(sorted(f.name for f in fields(cls))) or "none"
        raise UserInputError(f"{what} has no parameter {', '.join(unknown)}; valid: {valid}")
    _check_types(cls, kwargs, what)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise UserInputError(f"bad parameters for {what}: {exc}") from None


class Registry(Generic[T]):
    """Name → object map with derived ids, aliases, lazy entries, did-you-mean errors and no silent overwrites."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T | str] = {}  # a str value is a lazy "module:attribute" target
        self._aliases: dict[str, str] = {}

    def _claim(self, key: str, aliases: tuple[str, ...]) -> None:
        names = (key, *aliases)
        if len(set(names)) != len(names):
            raise ValueError(f"{self.kind} {key!r}: its id and aliases {aliases!r} repeat a name")
        for candidate in names:
            if not candidate or candidate in self._items or candidate in self._aliases:
                raise ValueError(f"{self.kind} {candidate!r} is already registered (or empty)")

    def register(
        self, obj: T | None = None, *, name: str | None = None, aliases: tuple[str, ...] = ()
    ) -> Any:
        """Register ``obj`` (usable bare as ``@reg.register`` or as ``@reg.register(aliases=(...))``).

        The id is ``name`` or the snake_case of ``obj.__name__``; a class also gets it as ``registry_id``
        unless it already derives its own (estimators do, per class).
        """

        def add(target: T) -> T:
            key = name or getattr(target, "registry_id", None) or snake_case(getattr(target, "__name__", ""))
            self._claim(key, aliases)
            self._items[key] = target
            for alias in aliases:
                self._aliases[alias] = key
            if getattr(target, "registry_id", None) != key:
                try:
                    target.registry_id = key  # type: ignore[attr-defined]
                except (AttributeError, TypeError):
                    pass
            return target

        if obj is not None:
            return add(obj)
        return add

    def register_lazy(self, name: str, target: str, *, aliases: tuple[str, ...] = ()) -> None:
        """Register ``"package.module:attribute"`` (``attribute`` may be dotted, ``Class.method``) under
        ``name``; it is imported on first :meth:`get`."""
        if ":" not in target:
            raise ValueError(f"lazy target {target!r} must read 'module:attribute'")
        self._claim(name, aliases)
        self._items[name] = target
        for alias in aliases:
            self._aliases[alias] = name

    def canonical(self, name: str) -> str:
        """The registered id for ``name`` or one of its aliases."""
        if name in self._items:
            return name
        if name in self._aliases:
            return self._aliases[name]
        valid = sorted([*self._items, *self._aliases])
        close = difflib.get_close_matches(str(name), valid, n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownNameError(f"unknown {self.kind} {name!r}.{hint} Valid: {', '.join(valid)}")

    def get(self, name: str) -> T:
        key = self.canonical(name)
        target = self._items[key]
        if isinstance(target, str):
            module, _, attribute = target.partition(":")
            target = importlib.import_module(module)
            for part in attribute.split("."):
                target = getattr(target, part)
            self._items[key] = target
        return target  # type: ignore[return-value]

    def names(self) -> list[str]:
        return sorted(self._items)

    def aliases(self) -> dict[str, str]:
        return dict(self._aliases)

    def aliases_of(self, name: str) -> list[str]:
        """Every alias of the entry ``name`` (sorted)."""
        key = self.canonical(name)
        return sorted(a for a, target in self._aliases.items() if target == key)

    def items(self) -> Iterator[tuple[str, T]]:
        """``(id, entry)`` in id order; lazy entries are imported."""
        return iter([(key, self.get(key)) for key in sorted(self._items)])

    def in_registration_order(self) -> Iterator[tuple[str, T]]:
        """``(id, entry)`` in the order they were registered (for tables whose columns follow the code)."""
        return iter([(key, self.get(key)) for key in list(self._items)])

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._items or name in self._aliases)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self)} entries)"

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
similarities: Registry[Any] = Registry("similarity")
calibrators: Registry[Any] = Registry("calibrator")
backends: Registry[Any] = Registry("backend")
claim_extractors: Registry[Any] = Registry("claim extractor")
attributors: Registry[Any] = Registry("attribution method")
