"""Every API request's model work stops when its client disconnects or its wall-clock limit passes.

:class:`CancelOnDisconnect` gives each POST a :class:`~tokentrust.backends.cancel.CancelToken` (with the
server's ``request_timeout``) and makes it current for the request's code and worker threads. Once the body
is read it listens for the client's disconnect, streamed answer or not, and cancels the token: the
scheduler drops the request's rows at the next decoding step and a server backend closes its upstream
request, so the model is free for the next client.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..backends.cancel import CancelToken, cancellable


class CancelOnDisconnect:
    """ASGI middleware: a cancel token per POST request, cancelled when the client goes away."""

    def __init__(self, app: ASGIApp, timeout: float | None) -> None:
        self.app, self.timeout = app, timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        token = CancelToken(self.timeout)
        body_read, gone = asyncio.Event(), asyncio.Event()

        def disconnected() -> Message:
            token.cancel("the client disconnected")
            gone.set()
            return {"type": "http.disconnect"}

        async def app_receive() -> Message:
            if body_read.is_set():  # after the body only the disconnect can come; the watcher receives it
                await gone.wait()
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.disconnect":
                return disconnected()
            if not message.get("more_body", False):
                body_read.set()
            return message

        async def watch() -> None:
            await body_read.wait()
            while (await receive())["type"] != "http.disconnect":
                pass
            disconnected()

        with cancellable(token):
            watcher = asyncio.ensure_future(watch())
            try:
                await self.app(scope, app_receive, send)
            finally:
                watcher.cancel()
