"""The HTTP side of an OpenAI-compatible upstream server: JSON and streamed requests, with errors made clear.

Responses become traces through :mod:`tokentrust.openai_format` (shared with the OpenAI backend): the
upstream gives each chosen token's log-probability and up to 20 alternatives, never the full
distribution, so its traces are black-box (``entropy`` and the other distribution columns ``None``).
This client fails fast instead of retrying: a proxy answers 502 at once when its upstream is down.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx


class UpstreamError(Exception):
    """The upstream server is unreachable or answered with an error (shown to the client as 502/4xx)."""

    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Upstream:
    """Where requests go: base URL (ending in ``/v1``), the model name to ask for, an optional key."""

    base_url: str
    model: str
    api_key: str | None = None
    timeout: float = 300.0

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        self._client = httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=httpx.Timeout(self.timeout, connect=10.0)
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    def _fail(self, exc: Exception) -> UpstreamError:
        return UpstreamError(f"upstream server {self.base_url} is unreachable ({type(exc).__name__}: {exc})")

    @staticmethod
    def _error_from(response: httpx.Response, body: bytes) -> UpstreamError:
        try:
            message = json.loads(body)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = body[:300].decode("utf-8", "replace")
        status = response.status_code if 400 <= response.status_code < 500 else 502
        return UpstreamError(f"upstream server answered {response.status_code}: {message}", status)

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST a JSON body and return the parsed JSON answer; any failure is an :class:`UpstreamError`."""
        try:
            response = await self._client.post(path, json=body)
        except httpx.HTTPError as exc:
            raise self._fail(exc) from None
        if response.status_code != 200:
            raise self._error_from(response, response.content)
        try:
            return response.json()
        except ValueError:
            raise UpstreamError(f"upstream server {self.base_url} sent a response that is not JSON") from None

    async def stream(self, path: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """POST with ``stream: true`` and yield each server-sent ``data:`` chunk as parsed JSON."""
        try:
            async with self._client.stream("POST", path, json={**body, "stream": True}) as response:
                if response.status_code != 200:
                    raise self._error_from(response, await response.aread())
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    try:
                        yield json.loads(data)
                    except ValueError:
                        raise UpstreamError(f"upstream server sent an unreadable chunk: {data[:200]!r}") from None
        except httpx.HTTPError as exc:
            raise self._fail(exc) from None

    async def models(self) -> list[str]:
        """Model ids the upstream lists at ``/models``."""
        try:
            response = await self._client.get("/models")
        except httpx.HTTPError as exc:
            raise self._fail(exc) from None
        if response.status_code != 200:
            raise self._error_from(response, response.content)
        return [m["id"] for m in response.json().get("data", [])]
