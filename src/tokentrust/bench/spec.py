"""A benchmark run spec: one TOML file, validated by pydantic, in the command line's own grammar.

.. code-block:: toml

    dataset = "capitals"            # built-in name, a .jsonl/.csv file, or hf:<name>
    limit = 200                     # first N items (omit for all)
    model = "./my-model"            # omit for the embedded SmolLM2-135M-Instruct
    estimators = ["msp", "logprob_quantile:alpha=0.05"]   # omit for the white-box defaults; ["all"]
    max_new_tokens = 24
    batch_size = 16                 # omit to let the backend choose from the model's size and free memory
    out = "runs/r1"                 # omit for runs/<dataset>-<model>-<timestamp>
    seed = 0

``temperature``, ``top_p``, ``top_k`` (alternatives recorded per token), ``chat``, ``correctness`` (a
rule overriding the dataset's, e.g. ``"chrf>=50"``) and ``cache`` (the generation cache file) are
optional too. ``level = "claim"`` measures claim-level scores on the answers' claims (cut by ``claims``, an
extractor spec, default ``"sentences"``), labelled by the dataset's facts or by checking them against each
item's ``reference`` text with ``claim_judge`` (``"auto"``, ``"embedding"``, ``"judge"``, ``"nli:<model>"``).
``context_policy`` (``"none"``, ``"rcr"``, ``"rcr:score=p_true"``, ``"scr"``) decides between a dataset's context
document and the model's own answer (datasets with documents, e.g. ``capitals_in_context``; see
:mod:`tokentrust.decide.context`). Every value is checked here, before a model is loaded; errors name the key and the
valid values. :meth:`RunSpec.identity` is what must match for a run folder to be resumed.
"""

from __future__ import annotations

import json

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from ..config import GenerationConfig, _validation_message, check_seed
from ..errors import UserInputError

__all__ = ["RunSpec", "load_spec"]


class RunSpec(BaseModel):
    """Everything that defines a benchmark run. Construct with keywords or :func:`load_spec`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dataset: str
    limit: int | None = None
    seed: int = 0
    model: str | None = None
    estimators: list[str] | None = None
    max_new_tokens: int = 24
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 10
    chat: bool = True
    correctness: str | None = None
    batch_size: int | None = None  # rows decoded at once; None: the backend's own (from model size and memory)
    out: str | None = None
    cache: str | None = None
    level: Literal["sequence", "claim"] = "sequence"
    claims: str = "sentences"
    claim_judge: str = "auto"
    context_policy: str = "none"  # none | rcr[:score=…,theta=…] | scr: documents datasets only (decide.context)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise UserInputError(f"invalid run spec: {_validation_message(exc)}") from None
        self.generation_config()  # max_new_tokens, temperature, top_p, top_k checked with their own messages
        if self.context_policy != "none" and self.level == "claim":
            raise UserInputError("invalid run spec: context_policy applies to answer-level runs, not level = 'claim'")

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("dataset is empty; give a built-in name (e.g. 'capitals') or a .jsonl/.csv file")
        return v.strip()

    @field_validator("seed")
    @classmethod
    def _seed(cls, v: int) -> int:
        return check_seed(v)  # type: ignore[return-value]

    @field_validator("limit")
    @classmethod
    def _limit(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError(f"limit must be ≥ 1 (or omitted for every item), got {v}")
        return v

    @field_validator("batch_size")
    @classmethod
    def _batch(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {v}")
        return v

    @field_validator("estimators")
    @classmethod
    def _estimators(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            if not v:
                raise ValueError("estimators is empty; omit it for the defaults or name at least one")
            if any(not s.strip() for s in v):
                raise ValueError("an estimator spec is empty")
        return v

    @field_validator("claims")
    @classmethod
    def _claims(cls, v: str) -> str:
        from ..stats.claims import canonical_extractor

        return canonical_extractor(v)

    @field_validator("context_policy")
    @classmethod
    def _context_policy(cls, v: str) -> str:
        from ..decide.context import canonical_policy

        return canonical_policy(v)

    @field_validator("correctness")
    @classmethod
    def _correctness(cls, v: str | None) -> str | None:
        from .quality import check_rule

        return None if v is None else check_rule(v)

    def generation_config(self) -> GenerationConfig:
        """The config every answer is generated with (the seed counts only when sampling)."""
        return GenerationConfig(
            max_new_tokens=self.max_new_tokens, temperature=self.temperature, top_p=self.top_p,
            top_k=self.top_k, chat=self.chat, seed=self.seed if self.temperature > 0 else None,
        )

    def identity(self) -> dict[str, Any]:
        """The fields that define the results (not where they go, how they are batched or cached)."""
        return self.model_dump(exclude={"out", "batch_size", "cache"})

    def to_toml(self) -> str:
        """TOML text that :func:`load_spec` reads back to an equal spec (``None`` fields are left out)."""
        lines = []
        for key, value in self.model_dump().items():
            if value is not None:
                lines.append(f"{key} = {_toml_value(value)}")
        return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def load_spec(path: str | Path, **overrides: Any) -> RunSpec:
    """Read a TOML run spec; ``overrides`` (e.g. from command-line options) replace its values."""
    path = Path(path).expanduser()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserInputError(f"cannot read run spec {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserInputError(f"{path} is not valid TOML: {exc}") from None
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return RunSpec(**data)
    except UserInputError as exc:
        raise UserInputError(f"{path}: {exc}") from None
