"""Small value objects (generation settings recorded in every trace) and where tokentrust keeps its files."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, field_validator

from .errors import UserInputError


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(x) for x in err["loc"]) or "value"
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where not in msg else msg)
    return "; ".join(parts)


def _nan_if_none(value: Any) -> Any:
    return math.nan if value is None else value


#: A float that reads JSON ``null`` as NaN, so records served with NaN written as ``null`` load back.
Float = Annotated[float, BeforeValidator(_nan_if_none)]


def jsonable(value: Any) -> Any:
    """A copy of plain JSON data with every NaN and infinity replaced by ``None`` (valid JSON for browsers)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


class Record(BaseModel):
    """Immutable pydantic record; constructor errors surface as :class:`UserInputError`."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise UserInputError(f"invalid {type(self).__name__}: {_validation_message(exc)}") from None

    def to_payload(self) -> dict[str, Any]:
        """The record as plain JSON data with NaN written as ``None`` (loads back with ``model_validate``)."""
        return jsonable(self.model_dump(mode="json"))


#: Seeds are integers in ``[0, SEED_LIMIT)``: every random generator used (torch, numpy, Python's) takes them,
#: with room for the ``seed + k`` of ``k`` samples.
SEED_LIMIT = 2**63
#: The largest temperature accepted (10 already makes sampling nearly uniform; OpenAI's API allows 2).
MAX_TEMPERATURE = 10.0


def check_seed(seed: int | None, name: str = "seed") -> int | None:
    """``seed`` unchanged when it is ``None`` or an integer in ``[0, 2**63)``; else a :class:`UserInputError`."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_LIMIT:
        raise UserInputError(f"{name} must be an integer in [0, 2**63 - 1] = [0, {SEED_LIMIT - 1}], got {seed!r}")
    return seed


class GenerationConfig(Record):
    """How an answer was produced. Recorded in the trace so a score can be traced to its settings.

    ``temperature == 0`` (or ``do_sample=False``) means greedy decoding. Scores are always taken from the
    raw distribution, before temperature / top-p warping, whatever these settings are.
    """

    max_new_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 10  # alternatives recorded per step, not a sampling filter
    seed: int | None = None
    chat: bool = True  # apply the tokenizer's chat template when it has one

    @field_validator("max_new_tokens")
    @classmethod
    def _positive_tokens(cls, v: int) -> int:
        if v <= 0:
            raise UserInputError(f"max_new_tokens must be ≥ 1, got {v}")
        return v

    @field_validator("temperature")
    @classmethod
    def _temperature(cls, v: float) -> float:
        if not 0 <= v <= MAX_TEMPERATURE:
            raise UserInputError(f"temperature must be in [0, {MAX_TEMPERATURE:g}] (0 = greedy), got {v}")
        return v

    @field_validator("seed")
    @classmethod
    def _seed(cls, v: int | None) -> int | None:
        return check_seed(v)

    @field_validator("top_p")
    @classmethod
    def _top_p(cls, v: float) -> float:
        if not 0 < v <= 1:
            raise UserInputError(f"top_p must be in (0, 1], got {v}")
        return v

    @field_validator("top_k")
    @classmethod
    def _top_k(cls, v: int) -> int:
        if not 0 <= v <= 1000:
            raise UserInputError(f"top_k (alternatives per token) must be in [0, 1000], got {v}")
        return v

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def cache_dir() -> Path:
    """Where tokentrust keeps converted models and caches: ``$TOKENTRUST_CACHE``, else
    ``$XDG_CACHE_HOME/tokentrust``, else ``~/.cache/tokentrust``. Imports nothing heavy."""
    env = os.environ.get("TOKENTRUST_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tokentrust"
