"""tokentrust: how far to trust each token, claim and answer a language model writes.

>>> import tokentrust as tt
>>> backend = tt.load()                                   # embedded SmolLM2-135M-Instruct
>>> trace = backend.generate("What is the capital of Australia?")
>>> result = tt.annotate(trace)                           # default white-box scores
>>> result["maximum_sequence_probability"].value
"""

from . import backends, calibration, estimators, metrics, registry  # noqa: F401  (register the built-ins)
from .annotated import DEFAULT_ESTIMATORS, Annotated, annotate
from .attribution import Attribution, explain
from .backends.base import Backend, RenderedPrompt
from .bench import datasets as _datasets  # noqa: F401  (registers the built-in datasets)
from .capability import Capability, check_compatible
from .config import GenerationConfig
from .decide import Decision, Policy
from .errors import (
    BusyError,
    CapabilityError,
    ContextLengthError,
    ModelLoadError,
    ServerError,
    StatCycleError,
    TokentrustError,
    UndefinedMetricWarning,
    UnknownNameError,
    UserInputError,
)
from .estimators.base import Estimator, build_estimator
from .loading import load
from .scores import Level, Scores
from .stat import Context, Stat
from .stats.claims import Claim, extract_claims
from .trace import Message, TokenRecord, Trace


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tokentrust")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


__version__ = _version()


def list_estimators() -> list[str]:
    """Ids of every registered estimator (``tokentrust.registry.estimators`` holds the classes)."""
    return registry.estimators.names()


__all__ = [
    "DEFAULT_ESTIMATORS",
    "Annotated",
    "Attribution",
    "Backend",
    "BusyError",
    "Capability",
    "CapabilityError",
    "Claim",
    "Context",
    "ContextLengthError",
    "Decision",
    "Estimator",
    "GenerationConfig",
    "Level",
    "Message",
    "ModelLoadError",
    "Policy",
    "RenderedPrompt",
    "Scores",
    "ServerError",
    "Stat",
    "StatCycleError",
    "TokenRecord",
    "TokentrustError",
    "Trace",
    "UndefinedMetricWarning",
    "UnknownNameError",
    "UserInputError",
    "__version__",
    "annotate",
    "build_estimator",
    "check_compatible",
    "explain",
    "extract_claims",
    "list_estimators",
    "load",
]

#: Modules loaded on first use (``tt.openai.wrap``, ``tt.integrations.litellm``), so that importing tokentrust
#: imports none of the frameworks they serve.
_LAZY_MODULES = {"openai": "tokentrust.integrations.openai_sdk", "integrations": "tokentrust.integrations"}


def __getattr__(name: str) -> object:
    if name in _LAZY_MODULES:
        import importlib

        return importlib.import_module(_LAZY_MODULES[name])
    raise AttributeError(f"module 'tokentrust' has no attribute {name!r}")
