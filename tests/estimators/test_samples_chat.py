"""Samples are drawn in the trace's chat mode: a raw-prompt trace gets raw-prompt samples (embedded model)."""

import pytest

import tokentrust as tt
from tokentrust.stats.sampling import Samples

PROMPT = "Question: What is the capital of France?\nAnswer:"


@pytest.mark.parametrize("chat", [False, True])
def test_samples_follow_the_trace_chat_mode(backend, chat):
    trace = backend.generate(PROMPT, chat=chat, max_new_tokens=4)
    assert trace.config.chat is chat
    samples = tt.Context(trace, backend, seed=3).get(Samples(n=2, max_new_tokens=4))
    assert [s.config.chat for s in samples] == [chat, chat]
    direct = backend.sample(PROMPT, n=2, temperature=1.0, seed=3, max_new_tokens=4, chat=chat)
    assert [s.token_ids for s in samples] == [s.token_ids for s in direct]
