"""A real uvicorn server on 127.0.0.1 in a background thread, on a free port, for tests."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

API_KEY = "test-key-123"


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


closed_port = free_port  # read as: a port where a connection is refused


class RunningServer:
    """A uvicorn server on its own socket and thread; ``url`` is its base (no trailing slash)."""

    def __init__(self, app) -> None:
        self.app = app
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> RunningServer:  # noqa: PYI034
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


async def stream_chat(client, question: str, max_tokens: int) -> tuple[str, str, dict | None]:
    """Stream one chat answer from ``tokentrust serve`` with an ``openai.AsyncOpenAI`` client:
    ``(question, streamed text, the final tokentrust extension)``."""
    stream = await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": question}], max_tokens=max_tokens, stream=True)
    text, final = "", None
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            ext = chunk.model_extra.get("tokentrust") or {}
            if "decision" in ext:
                final = ext
    return question, text, final
