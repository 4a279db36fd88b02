"""The backend protocol and the capabilities estimators can require."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import Enum
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..errors import CapabilityError

if TYPE_CHECKING:
    from ..config import GenerationConfig
    from ..estimators.base import Estimator
    from ..trace import Trace

class Capability(str, Enum):
    """What a backend can give. Estimators declare the ones they need in ``requires``."""

    LOGPROBS = "logprobs"  # chosen-token log-probabilities
    TOP_LOGPROBS = "top_logprobs"  # top-k alternatives per step
    FULL_DISTRIBUTION = "full_distribution"  # the whole next-token distribution (exact entropy, kurtosis)
    SAMPLING = "sampling"  # several answers at temperature > 0
    GENERATION = "generation"  # answers to new prompts the estimator writes (verbalized, relative confidence)
    FORCED_SCORING = "forced_scoring"  # teacher-forced log-probs of a given answer / token sequence


#: What a saved white-box trace can carry by itself; estimators needing only these run without a model.
TRACE_CAPABILITIES = frozenset({Capability.LOGPROBS, Capability.TOP_LOGPROBS, Capability.FULL_DISTRIBUTION})


@runtime_checkable
class Backend(Protocol):
    """Anything that turns prompts into traces."""

    model_id: str

    @property
    def capabilities(self) -> frozenset[Capability]: ...

    def generate(self, prompt: object, config: GenerationConfig | None = None, **overrides: object) -> Trace: ...

    def generate_many(
        self, prompts: Sequence[object], config: GenerationConfig | None = None, **overrides: object
    ) -> list[Trace]: ...

    def sample(
        self, prompt: object, n: int = 10, *, temperature: float = 1.0, top_p: float = 1.0, seed: int = 0,
        max_new_tokens: int | None = None,
    ) -> list[Trace]: ...

    def score(self, prompt: object, answer: str | Sequence[int], *, chat: bool = True) -> Trace: ...

    def token_logprobs(self, token_ids: Sequence[int]) -> list[float]:
        """``log p(ids[t] | ids[<t])`` for ``t ≥ 1`` with no prompt at all (length ``len(ids) - 1``)."""
        ...


def check_compatible(estimators: Iterable[Estimator], backend: Backend | None, trace: Trace | None = None) -> None:
    """Fail before any generation if an estimator needs something the backend (or trace) lacks.

    Capabilities the trace already carries (e.g. an exact distribution recorded earlier) count as
    available even without a backend, so saved white-box traces can be re-scored offline.
    """
    available: set[Capability] = set(backend.capabilities) if backend is not None else set()
    if trace is not None:
        available |= {Capability.LOGPROBS, Capability.TOP_LOGPROBS} if trace.top_k else {Capability.LOGPROBS}
        if trace.has_distribution:
            available.add(Capability.FULL_DISTRIBUTION)
    problems = []
    for est in estimators:
        missing = sorted(c.value for c in set(est.requires) - available)
        if missing:
            problems.append(f"{est.id} needs {', '.join(missing)}")
    if problems:
        source = getattr(backend, "model_id", None) or "the saved trace (no backend)"
        raise CapabilityError(
            f"{'; '.join(problems)} — not available from {source}. "
            f"Available: {', '.join(sorted(c.value for c in available)) or 'nothing'}."
        )
