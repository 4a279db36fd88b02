"""Load: concurrent streaming clients against the in-process model all complete, with correct answers.

Generation is serialised, so every concurrent stream must equal the answer the model gives alone.
(The 32-client figure is measured by benchmarks/serve_load.py.)
"""

from __future__ import annotations

import asyncio

import openai

CLIENTS = 8
QUESTIONS = ["What is the capital of France?", "What is 2 + 2?", "Name a fruit.", "What colour is the sky?"]


def test_eight_concurrent_streaming_clients(server, backend):
    expected = {q: backend.generate(q, max_new_tokens=8).text for q in QUESTIONS}

    async def one(client: openai.AsyncOpenAI, question: str) -> tuple[str, str, dict]:
        stream = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": question}], max_tokens=8, stream=True)
        text, final = "", None
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
                ext = chunk.model_extra.get("tokentrust") or {}
                if "action" in ext:
                    final = ext
        return question, text, final

    async def main() -> list[tuple[str, str, dict]]:
        async with openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0,
                                      timeout=300) as client:
            return await asyncio.gather(*(one(client, QUESTIONS[i % len(QUESTIONS)]) for i in range(CLIENTS)))

    results = asyncio.run(main())
    assert len(results) == CLIENTS
    for question, text, final in results:
        assert text == expected[question]
        assert final is not None and final["action"]["action"] in {"answer", "hedge", "abstain"}
        assert "".join(t["text"] for t in final["tokens"]) == text
