"""What a backend can give, and the check that every estimator gets what it needs before any work starts.

Shared by backends (which declare ``capabilities``), estimators (which declare ``requires``) and anything
else that calls a model (attributors, decision policies), so none of them imports another to agree on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from typing import TYPE_CHECKING, Any

from .errors import CapabilityError

if TYPE_CHECKING:
    from .trace import Trace


class Capability(str, Enum):
    """What a backend can give. Estimators declare the ones they need in ``requires``."""

    LOGPROBS = "logprobs"  # chosen-token log-probabilities
    TOP_LOGPROBS = "top_logprobs"  # top-k alternatives per step
    FULL_DISTRIBUTION = "full_distribution"  # the whole next-token distribution (exact entropy, kurtosis)
    SAMPLING = "sampling"  # several answers at temperature > 0
    GENERATION = "generation"  # answers to new prompts the estimator writes (verbalized, relative confidence)
    FORCED_SCORING = "forced_scoring"  # teacher-forced log-probs of a given answer / token sequence
    STREAMING = "streaming"  # answers token by token as they are generated
    GRADIENTS = "gradients"  # gradients of log-probs with respect to the prompt's embeddings (in process)
    ATTENTIONS = "attentions"  # the model's attention weights (in process; computed only when asked)


#: What a saved white-box trace can carry by itself; estimators needing only these run without a model.
TRACE_CAPABILITIES = frozenset({Capability.LOGPROBS, Capability.TOP_LOGPROBS, Capability.FULL_DISTRIBUTION})


def trace_capabilities(trace: Trace) -> frozenset[Capability]:
    """What a recorded trace carries by itself (log-probs, alternatives, the exact distribution's columns)."""
    found = {Capability.LOGPROBS, Capability.TOP_LOGPROBS} if trace.top_k else {Capability.LOGPROBS}
    if trace.has_distribution:
        found.add(Capability.FULL_DISTRIBUTION)
    return frozenset(found)


def check_compatible(needers: Iterable[Any], backend: Any | None, trace: Trace | None = None) -> None:
    """Fail before any generation if something (an estimator: ``.id``, ``.requires``) needs what is missing.

    Capabilities the trace already carries (e.g. an exact distribution recorded earlier) count as
    available even without a backend, so saved white-box traces can be re-scored offline.
    """
    available: set[Capability] = set(backend.capabilities) if backend is not None else set()
    if trace is not None:
        available |= trace_capabilities(trace)
    problems = []
    for item in needers:
        missing = sorted(c.value for c in set(item.requires) - available)
        if missing:
            problems.append(f"{item.id} needs {', '.join(missing)}")
    if problems:
        source = getattr(backend, "model_id", None) or "the saved trace (no backend)"
        raise CapabilityError(
            f"{'; '.join(problems)} — not available from {source}. "
            f"Available: {', '.join(sorted(c.value for c in available)) or 'nothing'}."
        )
