"""Exceptions and warnings raised by tokentrust.

Every error a user can cause derives from :class:`TokentrustError`, so a CLI or a
service can catch one class and print a message instead of a traceback::

    TokentrustError
    ├── UserInputError (also ValueError)         bad value given by the caller
    │   ├── UnknownNameError (also KeyError)     name not in a registry (with did-you-mean)
    │   └── ContextLengthError                   prompt longer than the model's context
    ├── ModelLoadError                           model path/package missing or unreadable
    ├── CapabilityError                          backend lacks what an estimator needs
    ├── ServerError                              a model server is unreachable or answered unusably
    ├── BusyError                                too many answers already wait for the model
    └── StatCycleError                           a Stat depends on itself

    UndefinedMetricWarning (UserWarning)         metric undefined on this input; NaN returned
"""

from __future__ import annotations


class TokentrustError(Exception):
    """Base class of every tokentrust error."""


class UserInputError(TokentrustError, ValueError):
    """A value given by the caller is out of range; the message names it and the valid range."""


class UnknownNameError(UserInputError, KeyError):
    """A name is not registered; the message lists close matches and the valid names."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class ContextLengthError(UserInputError):
    """The prompt does not fit in the model's context window."""


class ModelLoadError(TokentrustError):
    """A model could not be found or loaded."""


class CapabilityError(TokentrustError):
    """An estimator needs a capability (full distribution, sampling, …) the backend lacks."""


class ServerError(TokentrustError):
    """A model server could not be reached, refused the request, or answered with something unusable.

    ``status`` is the HTTP status it answered with, when it answered at all.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class BusyError(TokentrustError):
    """Too many answers already wait for the model; ``retry_after`` suggests when to try again (seconds)."""

    def __init__(self, message: str, *, retry_after: float | None = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StatCycleError(TokentrustError):
    """A statistic (directly or indirectly) depends on itself."""


class UndefinedMetricWarning(UserWarning):
    """A metric is undefined on its input (e.g. only one class); NaN is returned."""
