"""SAR by hand (METHODS.md §2.7): token relevance ``1 − g(x⊕s, x⊕s∖z_i)`` with word-set Jaccard as ``g``,
deletion by position, special tokens 0, normalised to sum 1; TokenSAR ``Σ −ℓ_i·R̃_i``; SAR over samples."""

import math

import numpy as np
import pytest
from _samples import QUESTION

import tokentrust as tt
from tokentrust.backends.replay import ReplayBackend
from tokentrust.estimators.sar import token_relevance, token_relevances, token_sar_value
from tokentrust.trace import Trace

Q = "Where is the Eiffel Tower?"
LOGPROBS = [-0.2, -1.0, -0.4, -2.0, -0.1]


def hand_trace(pieces: list[tuple[str, bool]], logprobs: list[float], prompt: str = Q) -> Trace:
    """A trace whose tokens are ``pieces`` (text, special); special tokens carry no answer text."""
    text, offsets, pos = "", [], 0
    for piece, special in pieces:
        if special:
            offsets.append((pos, pos))
        else:
            offsets.append((pos, pos + len(piece)))
            text += piece
            pos += len(piece)
    n = len(pieces)
    return Trace(model_id="hand", prompt=prompt, prompt_text=prompt, text=text, token_ids=list(range(n)),
                 tokens=[p for p, _ in pieces], offsets=offsets, logprobs=logprobs, special=[s for _, s in pieces],
                 top_k=0, top_ids=[[] for _ in pieces], top_tokens=[[] for _ in pieces],
                 top_logprobs=[[] for _ in pieces])


# "Paris, France" is one token here so that one deletion removes two words.
ANSWER = hand_trace([("It", False), (" is", False), (" in", False), (" Paris, France", False), ("<|im_end|>", True)],
                    LOGPROBS)


def word_jaccard(a: str, b: str) -> float:
    """Lin et al.'s Jaccard, written out: lower-cased whitespace word sets, |A∩B| / max(|A∪B|, 1)."""
    sa, sb = set(a.lower().split()), set(b.lower().split())
    return len(sa & sb) / max(len(sa | sb), 1)


def relevance_from_definition(trace: Trace, question: str) -> np.ndarray:
    r = np.zeros(len(trace))
    for i, (a, b) in enumerate(trace.offsets):
        if not trace.special[i]:
            r[i] = 1 - word_jaccard(f"{question} {trace.text}", f"{question} {trace.text[:a]}{trace.text[b:]}")
    return r / r.sum()


def test_token_relevance_by_hand():
    # x⊕s has 9 distinct words: where is the eiffel tower? it in paris, france
    #   without "It"            → 8 of 9 words left   → R = 1/9
    #   without " is"           → "is" is in the question too, nothing lost → R = 0
    #   without " in"           → R = 1/9
    #   without " Paris, France" → 7 of 9              → R = 2/9
    #   the special end token   → R = 0
    # Σ R = 4/9, so R̃ = (1/4, 0, 1/4, 1/2, 0).
    got = token_relevance(ANSWER, Q, "lexical:jaccard")
    np.testing.assert_allclose(got, [0.25, 0.0, 0.25, 0.5, 0.0], atol=1e-12)
    np.testing.assert_allclose(got, relevance_from_definition(ANSWER, Q), atol=1e-12)


def test_deletion_is_by_position():
    # "Paris" twice: deleting one occurrence leaves the other, so neither changes the word set
    trace = hand_trace([("Paris", False), (" Paris", False), (" France", False)], [-1.0] * 3)
    np.testing.assert_allclose(token_relevance(trace, Q, "lexical:jaccard"), [0.0, 0.0, 1.0], atol=1e-12)


def test_no_relevant_token_gives_uniform_weights_over_text_tokens():
    # every answer word is in the question: all R are 0, the special token keeps weight 0
    trace = hand_trace([("the", False), (" tower?", False), ("<|im_end|>", True)], [-1.0] * 3)
    np.testing.assert_allclose(token_relevance(trace, Q, "lexical:jaccard"), [0.5, 0.5, 0.0], atol=1e-12)


def test_batched_relevances_equal_one_at_a_time():
    other = hand_trace([("Rome", False), ("<|im_end|>", True)], [-0.5, -0.1])
    batch = token_relevances([ANSWER, other], Q, "lexical:jaccard")
    for trace, got in zip([ANSWER, other], batch, strict=True):
        np.testing.assert_allclose(got, token_relevance(trace, Q, "lexical:jaccard"), atol=1e-12)
    np.testing.assert_allclose(batch[1], [1.0, 0.0])


def test_token_sar_value_and_estimator_by_hand():
    # E_T = Σ −ℓ_i R̃_i = 0.2·¼ + 1.0·0 + 0.4·¼ + 2.0·½ + 0.1·0 = 1.15
    rel = np.array([0.25, 0.0, 0.25, 0.5, 0.0])
    assert token_sar_value(ANSWER, rel) == pytest.approx(1.15)
    est = tt.build_estimator("token_sar:similarity=lexical:jaccard")
    assert est.needs_only_trace  # log-probs and a lexical similarity: no model at all
    s = tt.Context(ANSWER).get(est)
    assert s.raw[0] == pytest.approx(1.15) and s.value == pytest.approx(-1.15)
    assert s.estimator == "token_sar(similarity='lexical:jaccard')"


def test_sar_over_recorded_samples_by_hand():
    # samples with their sequence log-probs (spread evenly over their words)
    samples, logprobs = ["Victor Hugo", "Victor Hugo", "Charles Dickens"], [-1.0, -1.0, -3.0]
    b = ReplayBackend.from_texts(QUESTION, "Victor Hugo", samples, sample_logprobs=logprobs)
    ctx = tt.Context(b.generate(QUESTION), b)
    t = 0.5
    s = ctx.get(tt.build_estimator(f"sar:n_samples=3,similarity=lexical:jaccard,t={t}"))
    # Each two-word sample: deleting either word leaves 5 of the 6 distinct words of x⊕s → R̃ = (½, ½),
    # so E_T = mean −ℓ = 0.5 for the Hugo samples and 1.5 for Dickens; p'_j = exp(−E_T).
    p = np.exp([-0.5, -0.5, -1.5])
    g = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=float)  # Jaccard of the answers themselves
    e = [-math.log(p[j] + sum(g[j, k] * p[k] for k in range(3) if k != j) / t) for j in range(3)]
    assert s.raw[0] == pytest.approx(np.mean(e)) and s.value == pytest.approx(-np.mean(e))
