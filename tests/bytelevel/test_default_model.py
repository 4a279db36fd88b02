"""The byte-level model on the embedded default model: the prompt-boundary problem, healing, scoring, ensembles."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tokentrust.bytelevel import (
    ByteEnsemble,
    ByteLM,
    char_logprobs,
    healed_next_byte,
    sample_bytes,
    sample_trace,
    score_text,
)


def _naive_first_byte(backend, lm, text: str, byte: int) -> float:
    """Tokenise the prompt as is and read the next token: P(the next token starts with ``byte``)."""
    ids = list(lm.context) + backend.tokenizer(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        p = torch.softmax(backend.model(input_ids=torch.tensor([ids])).logits[0, -1].double(), -1).numpy()
    starts = [i for i, s in enumerate(lm.vocab.spellings) if s and s[0] == byte]
    return float(p[starts].sum())


def test_mid_token_prompt(backend):
    lm = ByteLM(backend)
    text = "def fib(n):\n    retu"
    nb = lm.next_byte(text)
    assert nb.probs.sum() == pytest.approx(1.0, abs=1e-9)
    assert nb.top(1)[0][0] == ord("r") and nb.probs[ord("r")] > 0.9
    assert 1 <= nb.forward_passes <= 4
    # the tokenised prompt ends with the token "retu", after which the model rarely writes "r..."
    assert _naive_first_byte(backend, lm, text, ord("r")) < 0.5 * nb.probs[ord("r")]
    healed = healed_next_byte(ByteLM(backend), text)
    assert healed.probs.sum() == pytest.approx(1.0, abs=1e-9) and healed.top(1)[0][0] == ord("r")
    assert healed.forward_passes <= 3  # the prompt, the backed-off prefix, the tokens that end exactly


def test_trailing_space_matches_untruncated(backend):
    x = "The capital of France is"
    nb = ByteLM(backend).next_byte(x + " ")
    fresh = ByteLM(backend)  # P(x " P") / P(x " ") from the untruncated strings, another cache
    ratio = math.exp(fresh.prefix_logprob(x + " P") - fresh.prefix_logprob(x + " "))
    assert nb.probs[ord("P")] * (1 - nb.end_prob) * nb.coverage == pytest.approx(ratio, rel=5e-3)
    assert nb.top(1)[0][0] == ord("P")
    assert _naive_first_byte(backend, fresh, x + " ", ord("P")) < 0.5 * nb.probs[ord("P")]


def test_string_logprob_covers_the_canonical_encoding(backend):
    lm = ByteLM(backend, "What is the capital of France?")
    answer = "Paris."
    ids = backend.tokenizer(answer, add_special_tokens=False)["input_ids"] + [backend.tokenizer.eos_token_id]
    canonical = sum(backend.token_logprobs([*lm.context, *ids])[len(lm.context) - 1:])
    byte_level = lm.string_logprob(answer)
    assert canonical - 1e-4 <= byte_level < canonical + 0.5
    chars = char_logprobs(lm, answer)
    assert sum(chars) == pytest.approx(lm.prefix_logprob(answer), abs=1e-9)
    trace = score_text(lm, answer, unit="word")
    assert trace.tokens[-1] == "<end>" and trace.special[-1]
    assert sum(trace.logprobs[:-1]) == pytest.approx(sum(chars), abs=1e-9)
    assert sum(trace.logprobs) == pytest.approx(byte_level, abs=1e-6)


def test_ensemble_of_models_with_different_tokenizers(backend, toy):
    prompt = "Say hi"
    members = [ByteLM(backend, prompt), ByteLM(toy, prompt)]
    assert len(members[0].vocab.spellings) != len(members[1].vocab.spellings)
    ens = ByteEnsemble(members)
    mean = ens.next_byte(b"").with_end()
    alone = [ByteLM(backend, prompt).next_byte(b"").with_end(), ByteLM(toy, prompt).next_byte(b"").with_end()]
    np.testing.assert_allclose(mean, np.mean(alone, axis=0), atol=1e-9)
    assert mean.sum() == pytest.approx(1.0)
    sample = sample_bytes(ens, max_bytes=3)
    assert len(sample.steps) == 3 and sample.steps[0].byte == int(np.argmax(mean))
    trace = sample_trace(sample, prompt)
    assert trace.text == sample.text and trace.model_id.startswith("bytes:ensemble(")
