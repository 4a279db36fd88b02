"""Errors as OpenAI answers them: ``{"error": {"message", "type", "param", "code"}}`` with an HTTP status."""

from __future__ import annotations

import logging
from typing import Any

from fastapi.responses import JSONResponse

from ..backends.cancel import Cancelled
from ..errors import (
    BusyError,
    CapabilityError,
    ContextLengthError,
    ServerError,
    TokentrustError,
    UnknownNameError,
)

log = logging.getLogger("tokentrust.serve")


class APIError(Exception):
    """An error answered in OpenAI's shape with the given HTTP status (and ``Retry-After`` when given)."""

    def __init__(
        self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
        code: str | None = None, retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else {}
        if self.retry_after is not None:
            headers["Retry-After"] = str(max(1, round(self.retry_after)))
        return JSONResponse(self.body(), status_code=self.status, headers=headers or None)


def api_error_from(exc: BaseException) -> APIError:
    """Map tokentrust errors onto HTTP statuses; anything unexpected is a logged 500 without a traceback."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, Cancelled):
        if exc.timed_out:
            return APIError(504, f"{exc} (tokentrust serve --request-timeout); ask for fewer tokens or cheaper "
                            "scores", type="server_error", code="request_timeout")
        return APIError(499, str(exc), type="server_error", code="client_closed_request")
    if isinstance(exc, BusyError):
        return APIError(503, str(exc), type="server_error", code="server_busy", retry_after=exc.retry_after)
    if isinstance(exc, ServerError):
        refused = exc.status is not None and 400 <= exc.status < 500 and exc.status not in (401, 403, 408, 429)
        return APIError(exc.status if refused else 502, str(exc), type="upstream_error",  # type: ignore[arg-type]
                        code="upstream_rejected" if refused else "upstream_unavailable")
    if isinstance(exc, ContextLengthError):
        return APIError(400, str(exc), code="context_length_exceeded")
    if isinstance(exc, UnknownNameError):
        return APIError(400, str(exc), param="tokentrust.estimators", code="unknown_estimator")
    if isinstance(exc, CapabilityError):
        return APIError(400, str(exc), param="tokentrust.estimators", code="estimator_not_supported")
    if isinstance(exc, TokentrustError):
        return APIError(400, str(exc), code="invalid_value")
    log.error("internal error", exc_info=exc)
    return APIError(500, f"internal server error ({type(exc).__name__}); see the server log", type="server_error")
