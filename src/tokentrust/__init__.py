"""tokentrust: how far to trust each token, claim and answer a language model writes.

>>> import tokentrust as tt
>>> backend = tt.load()                                   # embedded SmolLM2-135M-Instruct
>>> trace = backend.generate("What is the capital of Australia?")
>>> result = tt.annotate(trace)                           # default white-box scores
>>> result["maximum_sequence_probability"].value
"""

from . import estimators as _estimators  # noqa: F401  (registers the built-in estimators)
from . import metrics as _metrics  # noqa: F401  (registers the built-in metrics)
from .annotated import DEFAULT_ESTIMATORS, Annotated, annotate
from .backends.base import Backend
from .capability import Capability, check_compatible
from .bench import datasets as _datasets  # noqa: F401  (registers the built-in datasets)
from .config import GenerationConfig
from .errors import (
    CapabilityError,
    ContextLengthError,
    ModelLoadError,
    StatCycleError,
    TokentrustError,
    UndefinedMetricWarning,
    UnknownNameError,
    UserInputError,
)
from .estimators.base import Estimator, build_estimator
from .loading import load
from .registry import estimators
from .scores import Level, Scores
from .stat import Context, Stat
from .trace import Message, Trace

__version__ = "0.1.0"


def list_estimators() -> list[str]:
    """Ids of every registered estimator."""
    return estimators.names()


__all__ = [
    "DEFAULT_ESTIMATORS",
    "Annotated",
    "Backend",
    "Capability",
    "CapabilityError",
    "Context",
    "ContextLengthError",
    "Estimator",
    "GenerationConfig",
    "Level",
    "Message",
    "ModelLoadError",
    "Scores",
    "Stat",
    "StatCycleError",
    "TokentrustError",
    "Trace",
    "UndefinedMetricWarning",
    "UnknownNameError",
    "UserInputError",
    "__version__",
    "annotate",
    "build_estimator",
    "check_compatible",
    "estimators",
    "list_estimators",
    "load",
]
