"""The OpenAI backend against a real llama.cpp server serving the embedded model's GGUF.

llama.cpp runs the Q4_1 weights with its quantised kernels (activations rounded to 8 bits for the dot
products); transformers runs the same weights de-quantised to fp32. The same tokens therefore get
log-probs that differ slightly; ``TOLERANCE`` bounds that difference (measured, see the test).
"""

from __future__ import annotations

import httpx
import numpy as np
import pytest

import tokentrust as tt
from tokentrust.backends.embedded import converted_path
from tokentrust.backends.openai import ChatTemplate, OpenAIBackend
from tokentrust.errors import CapabilityError

QUESTIONS = [
    "What is the capital of France?",
    "What is the capital of Japan?",
    "What is the capital of Australia?",
    "What is the capital of Canada?",
    "Name a primary colour.",
    "What is 2 + 3?",
]
# Measured (benchmarks/README.md): over 459 tokens of 32 greedy answers, |Δ log-prob| had mean 0.034,
# 99th percentile 0.22 and max 0.76 nats. The tolerances leave headroom over those figures; a wrong
# template, a BOS token too many or a misaligned token column shifts log-probs by whole nats.
MAX_TOLERANCE = 1.0
MEAN_TOLERANCE = 0.08


@pytest.fixture(scope="module")
def remote(llama_server):
    # llama-cpp-python's server penalises repeats by default (1.1); plain greedy decoding needs 1.0
    backend = OpenAIBackend.from_spec(llama_server.spec, concurrency=4, chat_template=str(converted_path()),
                                      extra_body={"repeat_penalty": 1.0})
    yield backend
    backend.close()


def test_capabilities_are_probed(remote):
    # llama-cpp-python's echo log-probs disagree with its own generation log-probs (see below): not trusted
    assert remote.capabilities == {tt.Capability.LOGPROBS, tt.Capability.TOP_LOGPROBS, tt.Capability.SAMPLING,
                                   tt.Capability.GENERATION, tt.Capability.STREAMING}
    assert remote._n_supported is False  # probed: it answers one choice whatever n is


def test_streamed_answer_equals_the_whole_answer(remote):
    items = list(remote.stream("What is the capital of France?", max_new_tokens=12))
    *records, trace = items
    whole = remote.generate("What is the capital of France?", max_new_tokens=12)
    assert isinstance(trace, tt.Trace) and records == trace.records()
    assert trace.text == whole.text and "".join(r.text for r in records) == trace.text
    assert trace.tokens == whole.tokens
    # llama.cpp's quantised kernels give the same tokens slightly different log-probs from one request to
    # the next (its prompt cache changes the batch it computes them in): the cross-backend tolerance applies
    delta = np.abs(np.array(trace.logprobs) - np.array(whole.logprobs))
    assert delta.max() < MAX_TOLERANCE and delta.mean() < MEAN_TOLERANCE
    assert whole.prompt_tokens > 5  # the server's usage count (llama.cpp sends none when streaming)
    assert trace.prompt_tokens in (None, whole.prompt_tokens)


def test_chat_template_matches_the_tokenizer(backend):
    messages = [tt.Message(role="user", content="What is the capital of France?")]
    ours = ChatTemplate.load(converted_path()).render(messages)
    assert ours == backend.tokenizer.apply_chat_template([m.model_dump() for m in messages],
                                                         add_generation_prompt=True, tokenize=False)


def _aligned(remote_trace: tt.Trace, local: tt.Trace) -> tuple[np.ndarray, np.ndarray]:
    """Log-probs of the tokens both traces share, position by position (stops at the first mismatch)."""
    a, b = [], []
    for tok_r, lp_r, tok_l, lp_l in zip(remote_trace.tokens, remote_trace.logprobs, local.tokens, local.logprobs,
                                        strict=False):
        if tok_r != tok_l:
            break
        a.append(lp_r)
        b.append(lp_l)
    return np.asarray(a), np.asarray(b)


def test_greedy_chat_logprobs_agree_with_transformers(remote, backend):
    traces = remote.generate_many(QUESTIONS, max_new_tokens=24, top_k=5)
    diffs = []
    for q, trace in zip(QUESTIONS, traces, strict=True):
        assert trace.text and trace.tokens and trace.top_k == 5
        assert "".join(trace.tokens[i] for i in range(len(trace)) if not trace.special[i]).startswith(trace.text[:5])
        assert trace.entropy is None and trace.max_prob is None
        # greedy: the chosen token is the most probable alternative
        for lp, top in zip(trace.logprobs, trace.top_logprobs, strict=True):
            assert top and lp == pytest.approx(top[0], abs=1e-4)
        local = backend.score(q, trace.text, end_of_turn=False, top_k=1)
        remote_lp, local_lp = _aligned(trace, local)
        assert len(remote_lp) >= min(3, len(trace))
        diffs.append(np.abs(remote_lp - local_lp))
        # llama.cpp's greedy choice is (near) the argmax of the fp32 model too: quantisation only flips near-ties
        best = np.array([row[0] for row in local.top_logprobs[: len(local_lp)]])
        assert (best - local_lp).max() < MAX_TOLERANCE
    d = np.concatenate(diffs)
    print(f"\nllama.cpp (Q4_1) vs transformers (fp32): {d.size} tokens, max |Δ| {d.max():.4f}, mean {d.mean():.4f}")
    assert d.max() < MAX_TOLERANCE and d.mean() < MEAN_TOLERANCE


def test_completions_endpoint_and_order(remote):
    prompts = ["The capital of France is", "The capital of Italy is", "One, two, three,"]
    many = remote.generate_many(prompts, max_new_tokens=6, chat=False, top_k=3)
    one_by_one = [remote.generate(p, max_new_tokens=6, chat=False, top_k=3) for p in prompts]
    assert [t.text for t in many] == [t.text for t in one_by_one]
    for p, t in zip(prompts, many, strict=True):
        assert t.prompt == p and t.prompt_text == p and not t.config.chat
        assert "".join(t.tokens) == t.text
        assert t.offsets[-1][1] == len(t.text) and t.finish_reason == "length"
        assert all(len(row) == 3 for row in t.top_logprobs)
    assert "Paris" in many[0].text and "Rome" in many[1].text


def test_wrong_echo_logprobs_are_detected_and_scoring_refused(remote, backend, llama_server):
    # independent check: the server's prompt log-probs (echo) are far from the model's, its generation ones are not
    text = "The capital of France is Paris. The capital of Italy is Rome."
    body = httpx.post(f"{llama_server.url}/completions", timeout=60, json={
        "model": "smollm2", "prompt": text, "max_tokens": 1, "temperature": 0, "echo": True, "logprobs": 1}).json()
    echoed = np.asarray(body["choices"][0]["logprobs"]["token_logprobs"][1:14], dtype=float)
    truth = np.asarray(backend.token_logprobs(backend.tokenizer(text)["input_ids"]))
    assert np.abs(echoed - truth).mean() > 2.0
    with pytest.raises(CapabilityError, match="agree with its generation log-probs"):
        remote.score("What is the capital of France?", "Paris.")
    with pytest.raises(CapabilityError, match="p_true needs forced_scoring"):
        tt.check_compatible([tt.build_estimator("p_true")], remote)


def test_sampling_with_n(remote):
    samples = remote.sample("Say one random word.", n=4, temperature=1.5, seed=7, max_new_tokens=8)
    assert len(samples) == 4 and all(s.logprobs and s.config.temperature == 1.5 for s in samples)
    assert len({s.text for s in samples}) >= 2  # temperature 1.5 on an open question: not all the same
    # llama-cpp-python answers one choice whatever n is: the backend probed that and sent n requests
    # concurrently, each with its own seed so the answers differ
    assert remote._n_supported is False
    assert [s.config.seed for s in samples] == [7, 8, 9, 10]
    spec = "semantic_entropy:n_samples=4,similarity=lexical"
    result = tt.annotate(remote.generate("Say one random word.", max_new_tokens=8), [spec], backend=remote)
    assert np.isfinite(result[tt.build_estimator(spec).id].value)


def test_pmi_pass_is_refused_without_forced_scoring(remote):
    trace = remote.generate("What is the capital of France?", max_new_tokens=6)
    with pytest.raises(CapabilityError, match="needs forced_scoring"):
        remote.token_logprobs(trace.token_ids)
