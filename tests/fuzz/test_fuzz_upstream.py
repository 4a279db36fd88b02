"""Fuzz what an OpenAI-compatible server may answer: whole responses and streamed chunks, valid ones mutated.

Property: :func:`~tokentrust.openai_format.traces_from_openai` and
:func:`~tokentrust.openai_format.chunk_records` either give traces whose token spans run in order inside the
answer text (streamed records tile it), or refuse with one :class:`TokentrustError` naming the bad field;
never another exception.
"""

from __future__ import annotations

import copy
import json

from _strategies import FUZZ, JSON, mutated
from hypothesis import given, settings
from hypothesis import strategies as st

from tokentrust import Trace
from tokentrust.errors import TokentrustError
from tokentrust.openai_format import chunk_records, traces_from_openai


def _entry(token: str, logprob: float) -> dict:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode()),
            "top_logprobs": [{"token": token, "logprob": logprob, "bytes": list(token.encode())},
                             {"token": "Syd", "logprob": -2.5, "bytes": [83, 121, 100]}]}


CHAT = {"id": "c1", "object": "chat.completion", "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "Canberra."},
                     "logprobs": {"content": [_entry("Can", -0.1), _entry("berra", -0.02), _entry(".", -0.3)]}}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}}
COMPLETION = {"id": "c2", "object": "text_completion", "model": "m",
              "choices": [{"index": 0, "text": " Canberra", "finish_reason": "length",
                           "logprobs": {"tokens": [" Can", "berra"], "token_logprobs": [-0.1, -0.02],
                                        "top_logprobs": [{" Can": -0.1, " Syd": -2.5}, {"berra": -0.02}],
                                        "text_offset": [0, 4]}}]}
CHUNKS = [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Can"},
                        "logprobs": {"content": [_entry("Can", -0.1)]}}]},
          {"choices": [{"index": 0, "delta": {"content": "berra"}, "logprobs": {"content": [_entry("berra", -0.02)]}}]},
          {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 9}}]
REQUEST = {"model": "m", "messages": [{"role": "user", "content": "Capital of Australia?"}], "max_tokens": 8,
           "logprobs": True, "top_logprobs": 2, "temperature": 0}


def _tiles(trace: Trace) -> None:
    """Token spans run in order inside the text without overlap (a server's tokens may not cover it all)."""
    ends = [0] + [end for _, end in trace.offsets]
    assert all(ends[i] <= start <= end for i, (start, end) in enumerate(trace.offsets))
    assert ends[-1] <= len(trace.text)


@settings(FUZZ, max_examples=300)
@given(st.one_of(mutated(CHAT, keys=["choices", "logprobs", "content", "message", "delta", "text", "index"]),
                 mutated(COMPLETION, keys=["choices", "logprobs", "tokens", "top_logprobs", "text_offset"]), JSON),
       st.booleans())
def test_responses_parse_or_are_refused(response, as_text):
    body = json.dumps(response, allow_nan=True) if as_text else response
    try:
        traces = traces_from_openai(body, request=REQUEST)
    except TokentrustError as exc:
        assert str(exc).strip()
        return
    for trace in traces:
        _tiles(trace)
        assert Trace.from_json(trace.to_json()).to_json() == trace.to_json()  # NaN log-probs: compare as JSON


@settings(FUZZ, max_examples=200)
@given(st.integers(0, len(CHUNKS) - 1), mutated(CHUNKS[0], keys=["choices", "delta", "logprobs", "content"]),
       st.booleans())
def test_stream_chunks_tile_the_text_or_are_refused(position, bad, chat):
    chunks = copy.deepcopy(CHUNKS)
    chunks[position] = bad
    text, records = "", []
    for chunk in chunks:
        if not isinstance(chunk, dict):
            continue  # the backend refuses a non-object chunk before it gets here
        try:
            new, text, _ = chunk_records(chunk, text, records, chat=chat)
        except TokentrustError as exc:
            assert str(exc).strip()
            return
        records += new
    ends = [0] + [r.offset[1] for r in records]
    assert all(r.offset[0] == ends[i] for i, r in enumerate(records)) and ends[-1] <= len(text)
