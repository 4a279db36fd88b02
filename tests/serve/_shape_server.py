"""An OpenAI-compatible server that answers probes correctly and then whatever a test arms it with.

Used as the upstream of ``tokentrust serve --upstream``: its one-token probe answers carry log-probs (so the
proxy believes it has log-probs, top alternatives and streaming), while real requests get ``Shapes.body``
(not streamed) or the ``Shapes.chunks`` events (streamed, ``Shapes.pause`` seconds apart). Run as a script
(``python _shape_server.py PORT``) it streams a long well-formed answer slowly, for tests that kill it.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

MODEL = "shape-model"


def entry(token: str, logprob: float = -0.5) -> dict[str, Any]:
    """One well-formed chat log-prob entry with two alternatives."""
    return {"token": token, "logprob": logprob, "bytes": list(token.encode()),
            "top_logprobs": [{"token": token, "logprob": logprob}, {"token": "x", "logprob": logprob - 1}]}


def chunk(token: str, logprob: float = -0.5) -> dict[str, Any]:
    """One well-formed streamed chat chunk bringing ``token``."""
    return {"object": "chat.completion.chunk", "model": MODEL,
            "choices": [{"index": 0, "delta": {"content": token}, "logprobs": {"content": [entry(token, logprob)]},
                         "finish_reason": None}]}


def answer(text: str = "Hi") -> dict[str, Any]:
    return {"object": "chat.completion", "model": MODEL, "choices": [{
        "index": 0, "message": {"role": "assistant", "content": text}, "logprobs": {"content": [entry(text)]},
        "finish_reason": "length"}], "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}


@dataclass
class Shapes:
    """What real (not probe) requests get; ``None`` keeps the well-formed answer."""

    body: Any = None
    chunks: list[Any] | None = None
    pause: float = 0.0
    delay: float = 0.0  # seconds before a real non-streamed answer
    received: list[dict[str, Any]] = field(default_factory=list)


def make_app(shapes: Shapes) -> FastAPI:
    app = FastAPI()

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": MODEL, "object": "model"}]}

    @app.post("/v1/{path:path}")
    async def post(path: str, request: Request) -> Any:
        body = await request.json()
        probe = body.get("max_tokens") == 1
        if not probe:
            shapes.received.append(body)
        if body.get("stream"):
            chunks = [chunk("Hi")] if probe or shapes.chunks is None else shapes.chunks

            async def events() -> Any:
                for c in chunks:
                    yield f"data: {c if isinstance(c, str) else json.dumps(c)}\n\n"
                    if not probe and shapes.pause:
                        await asyncio.sleep(shapes.pause)
                yield "data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")
        if path == "completions":  # echo probes: no prompt log-probs here
            return JSONResponse({"error": {"message": "echo is not supported"}}, status_code=400)
        if not probe and shapes.delay:
            await asyncio.sleep(shapes.delay)
        return JSONResponse(answer() if probe or shapes.body is None else shapes.body)

    return app


if __name__ == "__main__":  # a slow, well-formed upstream on PORT, to be killed mid-answer
    import uvicorn

    words = [f" word{i}" for i in range(400)]
    uvicorn.run(make_app(Shapes(chunks=[chunk(w) for w in words], pause=0.1, delay=60)), host="127.0.0.1",
                port=int(sys.argv[1]), log_level="warning")
